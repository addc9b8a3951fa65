"""Three days down (issue 17, item 6): coordbot ran on Monday 2026-03-02 until 09:00 (it planned the fortnight's
reminders), then nothing ran until Thursday 10:00, when one process — or two at once on PostgreSQL — start again.
Every reminder missed by more than the 24 h grace window is folded into one catch-up message per contact, across
processes and claim batches; Thursday's 09:30 reminder, within the grace, is sent as itself. Counted in what the
fake Bot API received.

The clock is moved by configuration (``clock_start``), at the wall clock's speed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import pytest

from coordbot.plan.loader import LoadedPlan
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

from ._outage_procs import (
    CATCH_UP_MARK,
    TOKEN,
    Bot,
    duplicates,
    occurrences,
    received,
    seed,
    settings_env,
    start,
    wait_until,
)

pytestmark = pytest.mark.slow
CONTACTS = 60
# 1.1 is due Mon 03-16: reminders 10, 9, 8 and 7 working days before, at 09:30 on Mon 03-02 to Thu 03-05; beside
# Monday's weekly requests of 2.1 and 2.2. On Thursday at 10:00, five per contact are older than 24 h.
POLICY = {"before_workdays": [10, 9, 8, 7]}
MISSED = 5
MONDAY = "2026-03-02T09:00:00+08:00"
THURSDAY = "2026-03-05T10:00:00+08:00"


async def _three_days_down(db_url: str, plan: LoadedPlan, tmp_path: Path, processes: int) -> tuple[dict, float]:
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        chats = seed(db_url, plan, server, CONTACTS, policy=POLICY)
        env = settings_env(db_url, server, telegram_rate_per_second=1000, clock_start=MONDAY)
        before = await start(env, tmp_path / "monday.log")
        try:
            await before.running()  # its housekeeping planned the reminders
        finally:
            assert await before.stop() == 0, before.output()[-3000:]
        planned = [o for o in occurrences(db_url) if o.fire_at < datetime.fromisoformat(THURSDAY)]
        assert len(planned) == CONTACTS * (MISSED + 1) and not server.sent_messages()

        env = {**env, "COORDBOT_CLOCK_START": THURSDAY}
        bots: list[Bot] = []
        began = time.monotonic()
        try:
            bots = list(await asyncio.gather(*(start(env, tmp_path / f"thursday-{i}.log") for i in range(processes))))
            await asyncio.gather(*(b.running() for b in bots))
            await wait_until(
                lambda: len(received(server, chats)) >= 2 * CONTACTS,
                60,
                "a catch-up and Thursday's reminder for every contact",
                bots=tuple(bots),
            )
            took = time.monotonic() - began
            await asyncio.sleep(1.5)  # a second catch-up would arrive now
        finally:
            for b in bots:
                assert await b.stop() == 0, b.output()[-3000:]
        return {"counts": received(server, chats), "chats": chats}, took


def _check(db_url: str, result: dict, took: float, processes: int) -> None:
    counts, chats = result["counts"], result["chats"]
    catch_ups = {c: sum(n for (chat, t), n in counts.items() if chat == c and CATCH_UP_MARK in t) for c in chats}
    fresh = {
        c: sum(n for (chat, t), n in counts.items() if chat == c and "距完成期限还有7个工作日" in t) for c in chats
    }
    rows = occurrences(db_url)
    print(
        f"\n3 days down, {processes} process(es), {CONTACTS} contacts x {MISSED} missed reminders: catch-ups per "
        f"contact {sorted(set(catch_ups.values()))}, Thursday's reminder per contact {sorted(set(fresh.values()))}, "
        f"duplicates {duplicates(counts)}; all sent {took:.1f} s after the start"
    )
    assert set(catch_ups.values()) == {1}  # exactly one catch-up message per contact
    assert set(fresh.values()) == {1}
    assert all(f"{MISSED}条提醒" in t for (_c, t) in counts if CATCH_UP_MARK in t)  # none split off, none lost
    assert duplicates(counts) == 0
    assert len([o for o in rows if o.kind == "catch_up"]) == CONTACTS
    assert len([o for o in rows if o.folded_into_id is not None]) == CONTACTS * MISSED


async def test_three_days_down_one_catch_up_per_contact(db_url: str, minimal_plan: LoadedPlan, tmp_path: Path) -> None:
    result, took = await _three_days_down(db_url, minimal_plan, tmp_path, 1)
    _check(db_url, result, took, 1)


async def test_three_days_down_two_processes_one_catch_up_per_contact(
    pg_url: str, minimal_plan: LoadedPlan, tmp_path: Path
) -> None:
    result, took = await _three_days_down(pg_url, minimal_plan, tmp_path, 2)
    _check(pg_url, result, took, 2)
