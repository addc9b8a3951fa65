"""Fan-out with Telegram's limits on: coordbot's real dispatch against the fake Bot API over real HTTP.

    .venv/bin/python bench/fanout.py [--postgres URL] [--only a,a20,b,c]

The fake Bot API runs in this process with Telegram's limits enforced (30 messages/s overall, 1 message/s per
chat, 20 messages/min per group; excess answered 429 with retry_after). coordbot sends from other processes:
  * a   — 600 reminders to 200 private chats: the engine (ReminderEngine.tick, the real Telegram channel on
          python-telegram-bot) in one process on SQLite;
  * a20 — 60 reminders to 20 private chats (three per chat: the per-chat 1 s gap decides);
  * b   — 600 reminders to 200 chats of which 20 are groups, same set-up as a;
  * c   — 2,000 reminders to 200 private chats from two ``coordbot run`` processes sharing one PostgreSQL
          database (a scratch database created and dropped at --postgres, default the local test server).
Reminders are queued in a shuffled order (seeded), as due rows of many tasks are.

For each scenario: elapsed (from the moment the reminders are due — the tick's start, or for c the moment
both processes are up and the rows are made due — to the last message the server accepted), the limit-set
ideal (the least time the three limits allow for that set of messages: ceil(n/30) - 1 seconds overall, k - 1
seconds for a chat's k messages, 60 s per 20 more for a group), the ratio, the 429s the server answered, lost
and duplicated messages (counted from what the server accepted), and met / NOT met against the goal
(<= 1.15x the ideal and 0 x 429). Exits 0: the figures are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import select  # noqa: E402

from coordbot.core.db import make_engine, session_scope, upgrade  # noqa: E402
from coordbot.plan import service  # noqa: E402
from coordbot.plan.loader import parse_plan_text  # noqa: E402
from coordbot.plan.models import Contact, Department, Plan  # noqa: E402
from coordbot.scheduling.models import ReminderOccurrence  # noqa: E402
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits  # noqa: E402

TOKEN = "555:FANOUT"
HOLIDAYS = ROOT / "config" / "holidays"
GOAL_RATIO = 1.15
FIRST_USER, FIRST_GROUP = 30_000, -40_000
WARM_UP_CHAT = 29_999  # gets the warm-up messages (a process's first statements and templates are compiled)
PLAN = """plan: {code: fanout, title: 扇出基准, start: 2026-01-01, end: 2026-12-31}
departments: [{code: d, name: 基准部门}]
groups:
  - code: "1"
    title: 基准任务组
    tasks:
      - {code: "1.1", title: 任务1, lead: d, kind: recurring}
"""


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    private: int
    groups: int
    per_chat: int
    instances: int  # 1: the engine in one process on SQLite; 2: two `coordbot run` on PostgreSQL


SCENARIOS = {
    s.key: s
    for s in (
        Scenario("a", "private chats only", 200, 0, 3, 1),
        Scenario("a20", "few chats (per-chat gap decides)", 20, 0, 3, 1),
        Scenario("b", "mix with 10% groups", 180, 20, 3, 1),
        Scenario("c", "two instances on PostgreSQL", 200, 0, 10, 2),
    )
}


def chats(s: Scenario) -> list[int]:
    return [FIRST_USER + i for i in range(s.private)] + [FIRST_GROUP - i for i in range(s.groups)]


def ideal_seconds(per_chat: Counter[int], rate: float = 30, gap: float = 1.0, group_per_minute: int = 20) -> float:
    """The least time from the first message to the last that Telegram's limits allow for this set."""
    n = sum(per_chat.values())
    overall = math.ceil(n / rate) - 1  # 30 in any second: a burst each second
    chat = max(
        (k - 1) * gap if c > 0 else max((k - 1) * gap, 60.0 * ((k - 1) // group_per_minute))
        for c, k in per_chat.items()
    )
    return float(max(overall, chat))


# ---- databases -----------------------------------------------------------------------------------


@contextmanager
def database(postgres: str | None) -> Iterator[str]:
    if postgres is None:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/fanout.db"
            upgrade(make_engine(url))
            yield url
        return
    name = f"coordbot_fanout_{uuid.uuid4().hex[:8]}"
    admin = make_engine(postgres).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, s: Scenario, fire_at: datetime) -> Counter[tuple[int, str]]:
    """The plan, one contact per chat and ``per_chat`` notices each in a shuffled order, due at ``fire_at``, and
    two warm-up notices due now; the bodies expected."""
    engine = make_engine(url)
    expected: Counter[tuple[int, str]] = Counter()
    with session_scope(engine) as session:
        service.import_plan(session=session, loaded=parse_plan_text(PLAN, "fanout.yaml"))
        organisation = session.exec(select(Plan.organisation_id)).one()  # the plan's own organisation
        # leads no task: the policy schedules nothing for it
        dept = Department(organisation_id=organisation, code="fanout", name="扇出部门")
        session.add(dept)
        session.flush()
        contacts = [Contact(department_id=dept.id, name=f"c{c}", address=str(c)) for c in chats(s)]
        warm = Contact(department_id=dept.id, name="warm-up", address=str(WARM_UP_CHAT))
        session.add_all([*contacts, warm])
        session.flush()
        for k in range(2):
            session.add(ReminderOccurrence(contact_id=warm.id, kind="notice", fire_at=datetime.now(UTC), body=f"w{k}"))
        rows = [(c, k) for c in contacts for k in range(s.per_chat)]
        random.Random(19).shuffle(rows)
        for i, (c, k) in enumerate(rows):
            body = f"扇出提醒 {c.address}-{k}"
            expected[(int(c.address or 0), body)] += 1
            session.add(
                ReminderOccurrence(
                    contact_id=c.id,
                    kind="notice",
                    fire_at=fire_at + timedelta(microseconds=i),  # the queue's order
                    body=body,
                )
            )
    engine.dispose()
    return expected


# ---- the sending side ----------------------------------------------------------------------------


def make_due(url: str) -> float:
    """Make the scenario's notices due now; when that was (CLOCK_MONOTONIC: the same in every process)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE reminder_occurrence SET fire_at = :now WHERE kind = 'notice' AND status = 'pending'"),
            {"now": datetime.now(UTC) - timedelta(seconds=1)},
        )
    engine.dispose()
    return time.monotonic()


def engine_child(url: str, base_url: str) -> None:
    """ReminderEngine ticks through the real Telegram channel: one for the warm-up notices, then (timed) one for
    the scenario's; prints when they were made due."""
    from coordbot.channels.telegram import open_sender
    from coordbot.core.config import Secret, Settings
    from coordbot.scheduling.calendar import WorkCalendar
    from coordbot.scheduling.engine import ReminderEngine

    async def main() -> None:
        settings = Settings(
            database_url=url, holidays_dir=HOLIDAYS, telegram_token=Secret(TOKEN), telegram_base_url=base_url
        )
        engine = make_engine(url)
        async with open_sender(settings) as channel:
            reminders = ReminderEngine(
                engine=engine, channels={"telegram": channel}, calendar=WorkCalendar(HOLIDAYS), grace=timedelta(days=1)
            )
            await reminders.tick()  # the warm-up notices
            started = make_due(url)
            report = await reminders.tick()
            print(json.dumps({"started": started, "sent": report.sent, "failed": report.failed}), flush=True)
        engine.dispose()

    asyncio.run(main())


def run_env(url: str, base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
    env.update(
        COORDBOT_CONFIG=os.devnull,
        COORDBOT_DATABASE_URL=url,
        COORDBOT_TELEGRAM_TOKEN=TOKEN,
        COORDBOT_TELEGRAM_BASE_URL=base_url,
        # Webhook mode: two instances do not fight over getUpdates; nothing calls the (unused) address.
        COORDBOT_TELEGRAM_MODE="webhook",
        COORDBOT_WEBHOOK_URL="https://127.0.0.1:9/",
        COORDBOT_WEBHOOK_SECRET="fanout-secret",
        COORDBOT_WEB_PORT="0",
        COORDBOT_TICK_SECONDS="0.2",
        COORDBOT_HANDLER_PROCESSES="0",
        COORDBOT_HOLIDAYS_DIR=str(HOLIDAYS),
    )
    return env


async def start_instances(url: str, server: FakeBotAPI, count: int) -> list[asyncio.subprocess.Process]:
    """``count`` ``coordbot run`` processes, returned once each has registered its webhook (is up)."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "coordbot",
            "run",
            env=run_env(url, server.base_url),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    await server.wait_for(lambda: len(server.calls_to("setWebhook")) >= count, timeout=120)
    return procs


async def stop_instances(procs: list[asyncio.subprocess.Process]) -> list[str]:
    errors = []
    for p in procs:
        if p.returncode is None:
            p.terminate()
    for p in procs:
        try:
            _, err = await asyncio.wait_for(p.communicate(), timeout=30)
        except TimeoutError:
            p.kill()
            _, err = await p.communicate()
        errors.append(err.decode(errors="replace"))
    return errors


# ---- one scenario ----------------------------------------------------------------------------------


def sent_calls(server: FakeBotAPI) -> list[Any]:
    return server.calls_to("sendMessage")


async def run_scenario(s: Scenario, postgres: str) -> dict[str, Any]:
    expected_total = (s.private + s.groups) * s.per_chat
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=True)) as server:
        for c in [WARM_UP_CHAT, *chats(s)]:
            if c > 0:
                server.add_user(c, f"u{c}")
            else:
                server.add_group(c, f"群{-c}")
        with database(postgres if s.instances > 1 else None) as url:
            errors: list[str] = []
            if s.instances == 1:
                expected = seed(url, s, datetime.now(UTC) + timedelta(days=1))  # made due after the warm-up
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "_engine",
                    url,
                    server.base_url,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(child.communicate(), timeout=900)
                if child.returncode != 0:
                    print(err.decode(errors="replace")[-3000:], file=sys.stderr)
                started = json.loads(out.decode().strip().splitlines()[-1])["started"]
            else:
                expected = seed(url, s, datetime.now(UTC) + timedelta(days=1))  # not due until both are up
                procs = await start_instances(url, server, s.instances)
                await server.wait_for(lambda: len(server.sent_messages(WARM_UP_CHAT)) >= 2, timeout=60)
                started = make_due(url)

                def accepted() -> int:
                    return sum(1 for c in sent_calls(server) if c.status == 200)

                with suppress(TimeoutError):  # what did not arrive is counted as lost below
                    await server.wait_for(lambda: accepted() >= expected_total, timeout=600)
                await asyncio.sleep(1.0)  # anything sent twice arrives by now
                errors = await stop_instances(procs)
        if s.instances > 1 and sum(1 for c in sent_calls(server) if c.status == 200) < expected_total + 2:
            for e in errors:  # something was not sent: show why
                print(e[-3000:], file=sys.stderr)
        calls = [c for c in sent_calls(server) if int(c.params["chat_id"]) != WARM_UP_CHAT]
        got = Counter(
            (int(c.params["chat_id"]), _body(str(c.params.get("text", "")))) for c in calls if c.status == 200
        )
        ok = [c.t for c in calls if c.status == 200]
        per_chat = Counter(chat for chat, _ in expected.elements())
        ideal = ideal_seconds(per_chat)
        elapsed = (max(ok) - started) if ok else float("nan")
        first = (min(ok) - started) if ok else float("nan")
        lost = sum(max(0, n - got.get(k, 0)) for k, n in expected.items())
        dup = sum(max(0, n - expected.get(k, 0)) for k, n in got.items())
        n429 = sum(1 for c in calls if c.status == 429)
        return {
            "scenario": s.key,
            "title": s.title,
            "messages": expected_total,
            "elapsed": elapsed,
            "first": first,
            "ideal": ideal,
            "ratio": elapsed / ideal if ideal else float("nan"),
            "429": n429,
            "lost": lost,
            "duplicated": dup,
        }


def _body(rendered: str) -> str:
    """The notice's body (``扇出提醒 <chat>-<k>``) out of the rendered text."""
    start = rendered.find("扇出提醒 ")
    return rendered[start:].split()[0] + " " + rendered[start:].split()[1] if start >= 0 else rendered


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("COORDBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run, comma-separated")
    args = parser.parse_args(argv)
    print(f"fan-out with Telegram's limits on (goal: <= {GOAL_RATIO}x the limit-set ideal and 0 x 429)")
    head = f"{'':4} {'scenario':34} {'msgs':>5} {'elapsed':>8} {'ideal':>6} {'ratio':>6}"
    print(f"{head} {'429':>4} {'lost':>4} {'dup':>4}")
    for key in args.only.split(","):
        r = await run_scenario(SCENARIOS[key.strip()], args.postgres)
        met = r["ratio"] <= GOAL_RATIO and r["429"] == 0 and r["lost"] == 0 and r["duplicated"] == 0
        print(
            f"{r['scenario']:4} {r['title']:34} {r['messages']:5d} {r['elapsed']:7.2f}s {r['ideal']:5.1f}s "
            f"{r['ratio']:5.2f}x {r['429']:4d} {r['lost']:4d} {r['duplicated']:4d}  {'met' if met else 'NOT met'}"
            f"  (first message after {r['first']:.2f}s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_engine":
        engine_child(sys.argv[2], sys.argv[3])
        sys.exit(0)
    asyncio.run(main())
    sys.exit(0)
