"""Several coordbot processes on one PostgreSQL database: every occurrence sent once, none lost.

Real OS processes (``coordbot reminders dispatch``) send through the real Telegram channel to the fake Bot
API server running in this test, so "sent" means a message a chat actually received.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from coordbot.core.db import make_engine, session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department, Task
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

from .conftest import HOLIDAYS

pytestmark = pytest.mark.slow
TOKEN = "424242:MULTIPROCESS"
CONTACTS = 500
PER_CONTACT = 2  # 1,000 occurrences; two per chat keeps Telegram's 1 message/s per chat from dominating


def _seed(url: str, plan: LoadedPlan, server: FakeBotAPI) -> list[int]:
    engine = make_engine(url)
    now = datetime.now(UTC)  # the processes run on the system clock: due now, well within the grace
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=plan)
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        contacts = [Contact(department_id=amr.id, name=f"c{i}", address=str(20_000 + i)) for i in range(CONTACTS)]
        s.add_all(contacts)
        office = Contact(department_id=amr.id, name="office", role="office", address="19999")
        s.add(office)
        s.flush()
        for c in [*contacts, office]:
            server.add_user(int(c.address), f"user{c.address}")
        s.add_all(
            ReminderOccurrence(
                plan_id=task.plan_id,
                task_id=task.id,
                contact_id=c.id,
                kind="before_due",
                fire_at=now - timedelta(minutes=k),
                ref_date=task.due_date,
                detail=str(k + 1),
            )
            for c in contacts
            for k in range(PER_CONTACT)
        )
    engine.dispose()
    return []


def _env(url: str, server: FakeBotAPI, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
    env.update(
        COORDBOT_CONFIG=str(Path(os.devnull)),
        COORDBOT_DATABASE_URL=url,
        COORDBOT_TELEGRAM_TOKEN=TOKEN,
        COORDBOT_TELEGRAM_BASE_URL=server.base_url,
        COORDBOT_TELEGRAM_RATE_PER_SECOND="1000",
        COORDBOT_HOLIDAYS_DIR=str(HOLIDAYS),
        **extra,
    )
    return env


async def _dispatch(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coordbot",
        "reminders",
        "dispatch",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _texts_per_chat(server: FakeBotAPI) -> Counter[tuple[int, str]]:
    """(chat, message text) counts: each occurrence's text is unique within its chat."""
    return Counter((m["chat"]["id"], m["text"]) for m in server.sent_messages() if m["chat"]["id"] != 19999)


def _occurrences(url: str) -> list[ReminderOccurrence]:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.kind == "before_due")).all()
    engine.dispose()
    return list(rows)


async def test_two_processes_send_each_occurrence_exactly_once(pg_url: str, minimal_plan: LoadedPlan) -> None:
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        _seed(pg_url, minimal_plan, server)
        env = _env(pg_url, server)
        procs = [await _dispatch(env) for _ in range(2)]
        outputs = [await asyncio.wait_for(p.communicate(), timeout=240) for p in procs]
        for p, (_out, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err.decode()[-2000:]
        claimed = [int(out.decode().split("claimed ")[1].split(",")[0]) for out, _ in outputs]

        texts = _texts_per_chat(server)
        assert len(texts) == CONTACTS * PER_CONTACT  # none lost
        assert set(texts.values()) == {1}  # none twice
        rows = _occurrences(pg_url)
        assert {r.status for r in rows} == {"sent"}
        refs = [r.message_ref for r in rows]
        assert len(set(refs)) == len(refs) == CONTACTS * PER_CONTACT
        server_refs = {f"{m['chat']['id']}:{m['message_id']}" for m in server.sent_messages()}
        assert set(refs) <= server_refs
        assert sum(claimed) == CONTACTS * PER_CONTACT
        assert min(claimed) > 0, f"both processes should have shared the work: {claimed}"


@pytest.mark.parametrize("delivery", ["at-least-once", "at-most-once"])
async def test_sigkill_mid_sending_then_restart(pg_url: str, minimal_plan: LoadedPlan, delivery: str) -> None:
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        _seed(pg_url, minimal_plan, server)
        env = _env(pg_url, server, COORDBOT_LEASE_SECONDS="2", COORDBOT_DELIVERY=delivery)
        # Slow every send a little so the kill lands in the middle of a batch.
        server.delay_next("sendMessage", 0.01, times=10**6)
        victim = await _dispatch(env)
        await server.wait_for(lambda: len(server.sent_messages()) >= 300, timeout=120)
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        killed_at = len(server.sent_messages())
        assert killed_at < CONTACTS * PER_CONTACT, "the kill must land before the end"
        rows = _occurrences(pg_url)
        in_flight = {r.id for r in rows if r.status == "claimed"}
        assert in_flight, "some occurrences were claimed and not yet recorded when the process died"

        await asyncio.sleep(2.5)  # the dead worker's lease runs out
        survivor = await _dispatch(env)
        _out, err = await asyncio.wait_for(survivor.communicate(), timeout=240)
        assert survivor.returncode == 0, err.decode()[-2000:]

        texts = _texts_per_chat(server)
        rows = {r.id: r for r in _occurrences(pg_url)}
        assert not [r for r in rows.values() if r.status in ("pending", "claimed")]
        duplicates = sum(n - 1 for n in texts.values())
        if delivery == "at-least-once":
            # Every occurrence delivered; only those in flight at the kill may have arrived twice.
            assert len(texts) == CONTACTS * PER_CONTACT
            assert {r.status for r in rows.values()} == {"sent"}
            assert duplicates <= len(in_flight)
        else:
            # Never twice; what was in flight is failed and the office is told, the rest is sent.
            assert duplicates == 0
            failed = {i for i, r in rows.items() if r.status == "failed"}
            assert failed == in_flight
            assert all(r.status == "sent" for i, r in rows.items() if i not in in_flight)
            [notice] = server.sent_messages(19999)  # one notice for the lot, not one per reminder
            assert f"{len(in_flight)}条提醒可能未送达" in notice["text"]
