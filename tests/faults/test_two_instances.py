"""Two ``coordbot run`` on one PostgreSQL database keep Telegram's limits together (issue 17, item 1).

Real processes send through the real Telegram channel to the fake Bot API running in this test with
Telegram's limits on (30/s overall, 1/s per chat, 20/min per group: excess answered 429), and the test counts
what the server received: every reminder once, none twice, no 429.

600 reminders here, not the 2,000 of the issue: at Telegram's 30 messages/s 2,000 take 67 s at the least,
too long for the suite; ``bench/fanout.py`` (scenario c) sends the 2,000 the same way.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from coordbot.core.db import make_engine, session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department, Plan
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

pytestmark = pytest.mark.slow
HOLIDAYS = Path(__file__).resolve().parents[2] / "config" / "holidays"
TOKEN = "171717:TWOINSTANCES"
CHATS = 200
PER_CHAT = 3  # 600 reminders: 20 s at Telegram's 30/s
FIRST = 50_000


def _seed(url: str, plan: LoadedPlan) -> Counter[tuple[int, str]]:
    """A contact per chat and PER_CHAT notices each, in an interleaved order, due tomorrow (made due once both
    processes are up); the (chat, text) pairs the server must receive once each."""
    engine = make_engine(url)
    expected: Counter[tuple[int, str]] = Counter()
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=plan)
        organisation = s.exec(select(Plan.organisation_id)).one()  # the plan's own organisation
        # leads no task: the policy schedules nothing for it
        dept = Department(organisation_id=organisation, code="fanout", name="扇出部门")
        s.add(dept)
        s.flush()
        contacts = [Contact(department_id=dept.id, name=f"c{i}", address=str(FIRST + i)) for i in range(CHATS)]
        s.add_all(contacts)
        s.flush()
        for k in range(PER_CHAT):
            for c in contacts:
                body = f"第{k}条提醒 {c.address}"
                expected[(int(c.address or 0), body)] += 1
                s.add(ReminderOccurrence(contact_id=c.id, kind="notice", fire_at=tomorrow, body=body))
    engine.dispose()
    return expected


def _env(url: str, server: FakeBotAPI) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
    env.update(
        COORDBOT_CONFIG=os.devnull,
        COORDBOT_DATABASE_URL=url,
        COORDBOT_TELEGRAM_TOKEN=TOKEN,
        COORDBOT_TELEGRAM_BASE_URL=server.base_url,
        # Webhook mode: two instances do not take each other's getUpdates; the address is never called.
        COORDBOT_TELEGRAM_MODE="webhook",
        COORDBOT_WEBHOOK_URL="https://127.0.0.1:9/",
        COORDBOT_WEBHOOK_SECRET="two-instances",
        COORDBOT_WEB_PORT="0",
        COORDBOT_TICK_SECONDS="0.5",
        COORDBOT_HANDLER_PROCESSES="0",
        COORDBOT_HOLIDAYS_DIR=str(HOLIDAYS),
    )
    return env


async def test_two_instances_send_every_reminder_once_within_telegrams_limits(
    pg_url: str, minimal_plan: LoadedPlan
) -> None:
    expected = _seed(pg_url, minimal_plan)
    engine = make_engine(pg_url)
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=True)) as server:
        for i in range(CHATS):
            server.add_user(FIRST + i, f"u{i}")
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "coordbot",
                "run",
                env=_env(pg_url, server),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        try:
            await server.wait_for(lambda: len(server.calls_to("setWebhook")) >= 2, timeout=60)  # both are up
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE reminder_occurrence SET fire_at = :now WHERE kind = 'notice'"),
                    {"now": datetime.now(UTC)},
                )
            total = sum(expected.values())
            await server.wait_for(lambda: len(server.calls_to("sendMessage", status=200)) >= total, timeout=90)
            await asyncio.sleep(1.0)  # a message sent twice would have arrived by now
        finally:
            for p in procs:
                if p.returncode is None:
                    p.terminate()
            errors = [(await asyncio.wait_for(p.communicate(), timeout=30))[1].decode(errors="replace") for p in procs]

        calls = server.calls_to("sendMessage")
        got = Counter((int(c.params["chat_id"]), str(c.params["text"]).strip()) for c in calls if c.status == 200)
        lost = [k for k in expected if k not in got]
        duplicated = {k: n for k, n in got.items() if n > 1}
        refused = [c for c in calls if c.status == 429]
        assert not lost, f"{len(lost)} lost, e.g. {lost[:3]}; received e.g. {list(got)[:3]}; {errors[0][-1500:]}"
        assert not duplicated, f"{len(duplicated)} duplicated, e.g. {list(duplicated.items())[:3]}"
        assert not refused, f"{len(refused)} x 429"
        assert set(got) == set(expected)

    with Session(engine) as s:
        notices = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.kind == "notice")).all()
        workers = {o.claimed_by.split(":")[1] for o in notices if o.claimed_by}
        assert {o.status for o in s.exec(select(ReminderOccurrence).where(ReminderOccurrence.kind == "notice"))} == {
            "sent"
        }
    engine.dispose()
    assert len(workers) == 2, "both processes should have shared the work"
