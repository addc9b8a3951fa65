"""Report benchmark: digest and briefing build times for the shipped plan and a synthetic province-size plan
(200 departments, 5,000 tasks, 125,000 / 250,000 / 500,000 progress reports: one database per size), on SQLite
and PostgreSQL, next to a same-run baseline: one SQL aggregate over the same plan's progress reports (count and
latest per task of that plan).

Run: .venv/bin/python bench/reports.py [--postgres URL] [--no-postgres] [--sizes 125000,250000,500000]

Measurement conveniences (they do not change what is timed): ``--sqlite-file F`` / ``--pg-database NAME`` keep
the loaded benchmark databases (one per size: F.<size>, NAME_<size>) and reuse them on the next run instead of
reloading (~30-50 s at 500k); ``--rounds N`` (default 5) alternates aggregate and digest N times and takes the
medians; the briefing is built 3 times (median) for the largest size only; ``--no-briefing`` skips it;
``--no-sqlite`` skips SQLite.

Targets (issue 19): the digest within 3x the aggregate at every size; the briefing (DOCX + HTML with charts)
for the province plan under 5 s, median of 3. A scratch SQLite file and scratch PostgreSQL databases are
created and dropped.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

import coordbot.models  # noqa: E402, F401
from coordbot.core.db import make_engine, session_scope, upgrade  # noqa: E402
from coordbot.plan import service  # noqa: E402
from coordbot.plan.loader import load_plan_file  # noqa: E402
from coordbot.plan.models import Plan  # noqa: E402
from coordbot.reports.briefing import build_briefing  # noqa: E402
from coordbot.reports.digest import build_digest  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 27, 17, 0, tzinfo=TZ)
SINCE = date(2025, 12, 29)  # the briefing covers the quarter
# The baseline: what the digest must at least read, in one statement, over the same plan's reports.
AGGREGATE = (
    "SELECT task_id, count(*), max(received_at) FROM progress_report "
    "WHERE task_id IN (SELECT id FROM task WHERE plan_id = :plan) GROUP BY task_id"
)
PLAN_FILE = ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"


def _copy_or_insert(engine: Engine, table: str, columns: list[str], rows: list[tuple]) -> None:
    """COPY on PostgreSQL, executemany on SQLite: the fastest bulk path of each."""
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
            raw.commit()
        finally:
            raw.close()
        return
    marks = ", ".join("?" for _ in columns)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        cur.execute("COMMIT")
    finally:
        raw.close()


def build_big_plan(engine: Engine, *, departments: int, tasks: int, reports: int, seed: int = 6) -> None:
    rnd = random.Random(seed)
    start, end = date(2024, 1, 1), date(2026, 12, 31)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    now = NOW.astimezone(UTC)
    span = (now - t0).total_seconds()
    with session_scope(engine) as s:
        s.execute(
            text(
                "INSERT INTO plan (id, code, title, issuer, document_no, timezone, start_date, end_date, source_file, "
                "source_sha256, reminder_policy, created_at, updated_at) "
                "VALUES (1000, 'province', '省级知识产权强省建设方案', '省人民政府', '', "
                "'Asia/Shanghai', :s, :e, '', '', '{}', :n, :n)"
            ),
            {"s": start, "e": end, "n": now},
        )
    dept_rows = [(10000 + i, f"d{i}", f"省第{i}厅局", f"第{i}厅", "government", "[]", now) for i in range(departments)]
    _copy_or_insert(
        engine, "department", ["id", "code", "name", "short_name", "kind", "aliases", "created_at"], dept_rows
    )
    contacts = [
        (10000 + i, 10000 + i, f"联络员{i}", "contact", "telegram", f"x{i}", "zh", True, False, now)
        for i in range(departments)
    ]
    _copy_or_insert(
        engine,
        "contact",
        [
            "id",
            "department_id",
            "name",
            "role",
            "channel",
            "address",
            "language",
            "active",
            "unreachable",
            "created_at",
        ],
        contacts,
    )
    groups = [(10000 + g, 1000, f"G{g}", f"第{g + 1}组任务", "main" if g < 5 else "safeguard", g) for g in range(6)]
    _copy_or_insert(engine, "task_group", ["id", "plan_id", "code", "title", "kind", "position"], groups)
    statuses = ["in_progress"] * 80 + ["blocked"] * 3 + ["reported_done"] * 5 + ["closed"] * 7 + ["assigned"] * 5
    task_rows, co_rows, target_rows = [], [], []
    for i in range(tasks):
        tid = 100000 + i
        due = end if i % 7 else start + timedelta(days=rnd.randrange(700, 1000))
        task_rows.append(
            (
                tid,
                1000,
                10000 + i % 6,
                f"T{i}",
                f"任务{i}",
                "",
                "",
                10000 + rnd.randrange(departments),
                "stated",
                "recurring",
                start,
                due,
                due,
                rnd.choice(statuses),
                rnd.randrange(100),
                "green",
                "",
                "[]",
                "{}",
                i,
                "plan",
                "{}",
                0,
                now,
                now,
            )
        )
        co_rows.append((tid, 10000 + rnd.randrange(departments), "stated"))
        if i % 5 == 0:
            annual = i % 10 == 0
            target_rows.append(
                (
                    100000 + i,
                    1000,
                    tid,
                    f"m{i}",
                    f"指标{i}",
                    "项",
                    ">=",
                    100.0,
                    None,
                    "annual" if annual else "cumulative",
                    start,
                    end,
                    "[]",
                    "",
                    "",
                    None,
                )
            )
    _copy_or_insert(
        engine,
        "task",
        [
            "id",
            "plan_id",
            "group_id",
            "code",
            "title",
            "description",
            "source_text",
            "lead_department_id",
            "assignment",
            "kind",
            "start_date",
            "due_date",
            "original_due_date",
            "status",
            "progress",
            "colour",
            "colour_reason",
            "dated_events",
            "reminder_policy",
            "position",
            "origin",
            "file_values",
            "escalation_level",
            "created_at",
            "updated_at",
        ],
        task_rows,
    )
    co_rows = list({(a, b): (a, b, c) for a, b, c in co_rows}.values())
    _copy_or_insert(engine, "task_department", ["task_id", "department_id", "assignment"], co_rows)
    _copy_or_insert(
        engine,
        "target",
        [
            "id",
            "plan_id",
            "task_id",
            "metric",
            "name",
            "unit",
            "comparator",
            "value",
            "baseline",
            "period",
            "start_date",
            "due_date",
            "aliases",
            "description",
            "source_text",
            "archived_at",
        ],
        target_rows,
    )
    lead = {r[0]: r[7] for r in task_rows}
    report_rows, obs_rows, event_rows = [], [], []
    for i in range(reports):
        tid = 100000 + rnd.randrange(tasks)
        at = t0 + timedelta(seconds=span * (i / reports))  # in time order, like real ids
        dept = lead[tid]
        report_rows.append(
            (
                1_000_000 + i,
                tid,
                dept,
                dept,
                at,
                "本周进展",
                "chat",
                "in_progress",
                rnd.randrange(100),
                "{}",
                '{"progress": 10}',
                False,
            )
        )
        event_rows.append((1_000_000 + i, at, "progress.reported", 1000, tid, dept, "system", "{}"))
        if (tid - 100000) % 5 == 0 and i % 2 == 0:
            obs_rows.append(
                (1_000_000 + i, 100000 + tid - 100000, 1.0, "increment", at.astimezone(TZ).date(), "report", False, at)
            )
    _copy_or_insert(
        engine,
        "progress_report",
        [
            "id",
            "task_id",
            "contact_id",
            "department_id",
            "received_at",
            "text",
            "source",
            "status",
            "percent",
            "parsed",
            "previous",
            "voided",
        ],
        report_rows,
    )
    _copy_or_insert(
        engine,
        "observation",
        ["id", "target_id", "value", "mode", "observed_on", "source", "voided", "recorded_at"],
        obs_rows,
    )
    _copy_or_insert(
        engine, "event", ["id", "at", "type", "plan_id", "task_id", "department_id", "actor", "payload"], event_rows
    )
    # weekly reminders to every lead contact over the quarter
    rem_rows = []
    rid = 1_000_000
    for week in range(13):
        fire = datetime.combine(SINCE + timedelta(weeks=week), datetime.min.time(), TZ).replace(hour=9, minute=30)
        for tid in range(100000, 100000 + tasks):
            rem_rows.append((rid, 1000, tid, lead[tid], "periodic", fire, "sent", 1, fire, "", "", fire, ""))
            rid += 1
    _copy_or_insert(
        engine,
        "reminder_occurrence",
        [
            "id",
            "plan_id",
            "task_id",
            "contact_id",
            "kind",
            "fire_at",
            "status",
            "attempts",
            "sent_at",
            "detail",
            "body",
            "created_at",
            "error",
        ],
        rem_rows,
    )
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in (
                "plan",
                "department",
                "contact",
                "task_group",
                "task",
                "target",
                "progress_report",
                "observation",
                "event",
                "reminder_occurrence",
            ):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
            conn.execute(text("ANALYZE"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")


def median_time(fn, repeat: int = 3) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Median, min and max seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def measure(engine: Engine, plan_code: str, label: str, *, rounds: int, briefing: bool) -> dict[str, float]:
    """Aggregate and digest alternated ``rounds`` times (medians); the briefing 3 times when asked for."""
    with Session(engine, expire_on_commit=False) as s:
        plan = s.exec(select(Plan).where(Plan.code == plan_code)).one()
        s.execute(text(AGGREGATE), {"plan": plan.id}).all()  # warm: caches, statement compilation
        build_digest(session=s, plan=plan, now=NOW, store=False).render("html")
        aggs, digests = [], []
        for _ in range(rounds):
            aggs.append(median_time(lambda: s.execute(text(AGGREGATE), {"plan": plan.id}).all(), 1)[0])
            digests.append(
                median_time(lambda: build_digest(session=s, plan=plan, now=NOW, store=False).render("html"), 1)[0]
            )
        agg, digest = statistics.median(aggs), statistics.median(digests)
        md = brief = lo = hi = float("nan")
        if briefing:
            md = median_time(
                lambda: build_briefing(
                    session=s, plan=plan, meeting_date=NOW.date(), since=SINCE, now=NOW, with_charts=False
                ).to_markdown(),
                3,
            )[0]

            def full() -> None:
                doc = build_briefing(session=s, plan=plan, meeting_date=NOW.date(), since=SINCE, now=NOW)
                doc.to_docx()
                doc.to_html()

            brief, lo, hi = median_time(full, 3)
    result = {"agg": agg, "digest": digest, "ratio": digest / agg, "md": md, "brief": brief, "lo": lo, "hi": hi}
    print(_line(label, result), flush=True)
    return result


def _line(label: str, r: dict[str, float]) -> str:
    line = f"{label:<40} aggregate {r['agg'] * 1000:8.1f} ms | digest {r['digest'] * 1000:8.1f} ms ({r['ratio']:5.1f}x)"
    if r["brief"] == r["brief"]:  # not NaN
        line += (
            f" | briefing md {r['md']:5.2f} s | docx+html+charts {r['brief']:5.2f} s"
            f" (range {r['lo']:.2f}-{r['hi']:.2f})"
        )
    return line


def _loaded(engine: Engine) -> bool:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT count(*) FROM plan WHERE code = 'province'")).scalar() == 1
        except Exception:
            return False


def load(engine: Engine, name: str, reports: int) -> None:
    if _loaded(engine):
        upgrade(engine)  # new migrations (indexes) apply to a reused database too
        print(f"[{name}] reusing the loaded benchmark database ({reports:,} reports)")
        return
    upgrade(engine)
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=load_plan_file(PLAN_FILE), now=NOW - timedelta(days=90))
    t = time.perf_counter()
    build_big_plan(engine, departments=200, tasks=5000, reports=reports)
    print(f"[{name}] synthetic plan with {reports:,} reports loaded in {time.perf_counter() - t:.1f} s", flush=True)


def run_size(
    engine: Engine, name: str, reports: int, *, rounds: int, briefing: bool, shipped: bool
) -> dict[str, float]:
    load(engine, name, reports)
    if shipped:  # 18 tasks and no reports: the ratio is shown, but no goal is set on it
        measure(
            engine,
            "songjiang-ip-2024-2026",
            f"[{name}] shipped plan (18 tasks, no goal)",
            rounds=rounds,
            briefing=False,
        )
    return measure(engine, "province", f"[{name}] province, {reports:,} reports", rounds=rounds, briefing=briefing)


def verdicts(name: str, results: dict[int, dict[str, float]], briefing: bool) -> None:
    print(f"[{name}] targets:")
    for n, r in results.items():
        ok = r["ratio"] <= 3
        print(
            f"  digest <= 3x the same plan's aggregate at {n:>9,} reports: {r['ratio']:4.1f}x  "
            f"{'met' if ok else 'NOT met'}"
        )
    if briefing:
        big = results[max(results)]
        ok = big["brief"] < 5
        print(
            f"  briefing (docx+html+charts) < 5 s, median of 3, at {max(results):,}: {big['brief']:.2f} s  "
            f"{'met' if ok else 'NOT met'}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--sizes", default="125000,250000,500000", help="progress reports per database, comma-separated")
    ap.add_argument("--sqlite-file", type=Path, help="keep the SQLite benchmark databases here (+.<size>); reuse")
    ap.add_argument("--pg-database", help="keep the PostgreSQL benchmark databases under this name (+_<size>); reuse")
    ap.add_argument("--rounds", type=int, default=5, help="aggregate/digest alternations per size (medians)")
    ap.add_argument("--no-briefing", action="store_true", help="time the aggregate and the digest only")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    briefing = not args.no_briefing

    def opts(n: int) -> dict[str, Any]:
        return {"rounds": args.rounds, "briefing": briefing and n == sizes[-1], "shipped": n == sizes[0]}

    if not args.no_sqlite:
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                path = Path(f"{args.sqlite_file}.{n}") if args.sqlite_file else Path(tmp) / f"bench-{n}.db"
                engine = make_engine(f"sqlite:///{path}")
                results[n] = run_size(engine, "sqlite", n, **opts(n))
                engine.dispose()
                if not args.sqlite_file:
                    path.unlink()
        verdicts("sqlite", results, briefing)
    if args.no_postgres:
        return
    admin = make_engine(args.postgres).execution_options(isolation_level="AUTOCOMMIT")
    results = {}
    try:
        for n in sizes:
            name = f"{args.pg_database}_{n}" if args.pg_database else f"coordbot_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                if not exists:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                engine = make_engine(make_url(args.postgres).set(database=name).render_as_string(hide_password=False))
                results[n] = run_size(engine, "postgresql", n, **opts(n))
                engine.dispose()
            finally:
                if not args.pg_database:
                    with admin.connect() as conn:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        verdicts("postgresql", results, briefing)
    finally:
        admin.dispose()


if __name__ == "__main__":
    main()
