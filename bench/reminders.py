"""How fast reminders are generated, claimed and dispatched, next to the database's raw write rate.

    .venv/bin/python bench/reminders.py [--postgres URL] [--sizes 25000,50000,100000] [--skip-postgres]

For SQLite (a temporary file) and PostgreSQL (a scratch database created and dropped on the server at
--postgres, default the local test server), at each size N (a fresh database each) it measures in one run:
  * baseline: a plain executemany INSERT and UPDATE of N rows into a bare table;
  * generation: sync_reminders creating the occurrences from the policy (1 department, N/10 contacts,
    10 weekly recurring tasks, a one-week window);
  * dispatch: ReminderEngine ticks sending every due occurrence to a no-delay in-memory channel, with one
    process; at the smallest size also with two processes sharing the database.
Targets (issue 19): the largest size (100,000) generated + dispatched in under 30 s on each database, and
linear growth: the time per 1,000 occurrences at the largest size within 1.25x of that at the smallest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import select  # noqa: E402

from coordbot.channels.base import MemoryChannel  # noqa: E402
from coordbot.core.clock import FakeClock  # noqa: E402
from coordbot.core.db import make_engine, session_scope, upgrade  # noqa: E402
from coordbot.plan import service  # noqa: E402
from coordbot.plan.loader import parse_plan_text  # noqa: E402
from coordbot.plan.models import Contact, Department  # noqa: E402
from coordbot.scheduling.calendar import WorkCalendar  # noqa: E402
from coordbot.scheduling.engine import ReminderEngine, sync_reminders  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, 8, 0, tzinfo=TZ)  # a Monday before the 09:30 requests
AFTER = datetime(2026, 3, 9, 8, 0, tzinfo=TZ)  # a week later: every request of the week is due
HOLIDAYS = ROOT / "config" / "holidays"


def plan_text(tasks: int) -> str:
    rows = "\n".join(
        f'      - {{code: "1.{i}", title: 任务{i}, lead: d, kind: recurring}}' for i in range(1, tasks + 1)
    )
    return f"""plan: {{code: bench, title: 基准方案, start: 2026-01-01, end: 2026-12-31}}
departments: [{{code: d, name: 基准部门}}]
groups:
  - code: "1"
    title: 基准任务组
    tasks:
{rows}
"""


def baseline(url: str, n: int) -> tuple[float, float]:
    """Rows per second for a plain INSERT and UPDATE (executemany) of n rows."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_raw"))
        conn.execute(text("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, status VARCHAR(16), at VARCHAR(40))"))
    rows = [{"id": i, "status": "pending", "at": "2026-03-02T09:30:00+08:00"} for i in range(n)]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO bench_raw (id, status, at) VALUES (:id, :status, :at)"), rows)
    t1 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("UPDATE bench_raw SET status = 'sent' WHERE id = :id"), [{"id": i} for i in range(n)])
    t2 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE bench_raw"))
    engine.dispose()
    return n / (t1 - t0), n / (t2 - t1)


def seed(url: str, n: int) -> tuple[float, int]:
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=parse_plan_text(plan_text(10), "bench.yaml"))
        dept = s.exec(select(Department)).one()
        s.add_all(Contact(department_id=dept.id, name=f"c{i}", address=str(i)) for i in range(n // 10))
    cal = WorkCalendar(HOLIDAYS)
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        report = sync_reminders(session=s, calendar=cal, now=START, horizon=timedelta(days=7))
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed, report.created


def dispatch(url: str) -> tuple[float, int]:
    engine = make_engine(url)
    channel = MemoryChannel("telegram")
    eng = ReminderEngine(
        engine=engine,
        channels={"telegram": channel},
        calendar=WorkCalendar(HOLIDAYS),
        clock=FakeClock(AFTER),
        batch_size=500,
        grace=timedelta(days=30),
    )
    t0 = time.perf_counter()
    report = asyncio.run(eng.tick())
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed, report.sent


def _worker(url: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    out.put(dispatch(url))


def dispatch_two(url: str) -> tuple[float, list[int]]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, out)) for _ in range(2)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return time.perf_counter() - t0, [sent for _, sent in results]


def reset(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE reminder_occurrence SET status='pending', claimed_by=NULL, lease_until=NULL, "
                "sent_at=NULL, message_ref=NULL, attempts=0"
            )
        )
        conn.execute(text("DELETE FROM event WHERE type = 'reminder.sent'"))
    engine.dispose()


def run_size(url: str, n: int, *, two: bool) -> dict[str, float]:
    ins, upd = baseline(url, n)
    gen_s, created = seed(url, n)
    one_s, sent1 = dispatch(url)
    r = {"n": created, "ins": ins, "upd": upd, "gen": gen_s, "one": one_s, "ok": float(sent1 == created)}
    if two:
        reset(url)
        two_s, sent2 = dispatch_two(url)
        r.update(two=two_s, two_sent=float(sum(sent2)), split=float(min(sent2)))
        r["ok"] = float(r["ok"] and sum(sent2) == created)
    return r


def run_backend(name: str, fresh_url: Callable[[], contextlib.AbstractContextManager[str]], sizes: list[int]) -> None:
    results = []
    for i, n in enumerate(sizes):
        with fresh_url() as url:
            results.append(run_size(url, n, two=i == 0))
    print(f"\n== {name}")
    print("  occurrences   raw INSERT   raw UPDATE   generate   dispatch   total   per 1k   vs raw INSERT+UPDATE")
    for r in results:
        total = r["gen"] + r["one"]
        raw = r["n"] / r["ins"] + r["n"] / r["upd"]  # the baseline: writing and updating the same rows bare
        print(
            f"  {r['n']:>11,.0f} {r['ins']:>9,.0f}/s {r['upd']:>9,.0f}/s {r['gen']:>8.2f} s {r['one']:>8.2f} s"
            f" {total:>6.2f} s {total / r['n'] * 1000:>6.3f} s   {total / raw:6.1f}x"
            + ("" if r["ok"] else "   (NOT every occurrence sent!)")
        )
    first = results[0]
    if "two" in first:
        print(
            f"  dispatch x2 at {first['n']:,.0f}: {first['two']:.2f} s (incl. process start), "
            f"{first['two_sent']:,.0f} sent, the smaller share {first['split']:,.0f}"
        )
    big, small = results[-1], results[0]
    total = big["gen"] + big["one"]
    per_big, per_small = total / big["n"], (small["gen"] + small["one"]) / small["n"]
    print(
        f"  target: {big['n']:,.0f} generated + dispatched < 30 s: {total:.2f} s, "
        f"{'met' if total < 30 and big['ok'] else 'NOT met'}"
    )
    growth = per_big / per_small
    print(
        f"  target: linear (per 1k at {big['n']:,.0f} within 1.25x of per 1k at {small['n']:,.0f}): "
        f"{growth:.2f}x, {'met' if growth <= 1.25 else 'NOT met'}"
    )


@contextlib.contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/bench.db"


def postgres_urls(server: str) -> Callable[[], contextlib.AbstractContextManager[str]]:
    @contextlib.contextmanager
    def scratch() -> Iterator[str]:
        admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
        name = f"coordbot_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server).set(database=name).render_as_string(False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    return scratch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--sizes", default="25000,50000,100000", help="occurrences per run, comma-separated")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    if not args.skip_sqlite:
        run_backend("SQLite", sqlite_url, sizes)
    if not args.skip_postgres:
        run_backend("PostgreSQL", postgres_urls(args.postgres), sizes)


if __name__ == "__main__":
    main()
