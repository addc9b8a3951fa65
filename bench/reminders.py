"""How fast reminders are generated, claimed and dispatched, next to the database's raw write rate.

    .venv/bin/python bench/reminders.py [--postgres URL] [--occurrences 10000]

For SQLite (a temporary file) and PostgreSQL (a scratch database created and dropped on the server at
--postgres, default the local test server), it measures in one run:
  * baseline: a plain executemany INSERT and UPDATE of the same number of rows into a bare table;
  * generation: sync_reminders creating the occurrences from the policy (1 department, N/10 contacts,
    10 weekly recurring tasks, a one-week window);
  * dispatch: ReminderEngine ticks sending every due occurrence to a no-delay in-memory channel, with one
    process and with two processes sharing the database.
Target: 10,000 occurrences generated and dispatched in under 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
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


def run_backend(name: str, url: str, n: int) -> None:
    ins, upd = baseline(url, n)
    gen_s, created = seed(url, n)
    one_s, sent1 = dispatch(url)
    reset(url)
    two_s, sent2 = dispatch_two(url)
    print(f"\n== {name}: {created} occurrences")
    print(f"  baseline      INSERT {ins:>9,.0f} rows/s   UPDATE {upd:>9,.0f} rows/s")
    gen_rate = created / gen_s
    print(f"  generate      {gen_s:6.2f} s   {gen_rate:>9,.0f} occ/s   ({gen_rate / ins:.2f}× raw INSERT)")
    print(f"  dispatch ×1   {one_s:6.2f} s   {sent1 / one_s:>9,.0f} occ/s   ({sent1 / one_s / upd:.2f}× raw UPDATE)")
    rate2 = sum(sent2) / two_s
    print(f"  dispatch ×2   {two_s:6.2f} s   {rate2:>9,.0f} occ/s   split {sent2} (incl. process start)")
    total = gen_s + one_s
    verdict = "OK" if total < 10 and sent1 == created and sum(sent2) == created else "MISSED"
    print(f"  generate + dispatch (1 process): {total:.2f} s for {created}  target < 10 s: {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--occurrences", type=int, default=10_000)
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_backend("SQLite", f"sqlite:///{tmp}/bench.db", args.occurrences)
    if args.skip_postgres:
        return
    admin = make_engine(args.postgres).execution_options(isolation_level="AUTOCOMMIT")
    name = f"coordbot_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run_backend("PostgreSQL", make_url(args.postgres).set(database=name).render_as_string(False), args.occurrences)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
