"""The Bot API down (issue 17, item 2): real ``coordbot run`` against the fake Bot API, counting what it received.

Scaled time: the process's clock starts on Monday 2026-03-02 at 09:25 and runs 60 times as fast as the wall clock
(``clock_speed``), so one real second is a minute of the bot's: the Bot API goes down before the 09:30 reminders
are due and stays down until 300 s after (the outage of "300 s" lasts 5 real seconds past 09:30), the engine's
back-off of 1, 2, 4 … minutes takes 1, 2, 4 … seconds, and the default 24 h grace window is 24 real minutes (every
reminder still useful). With a grace window of "2m" (2 real seconds) an outage of 600 s outlasts the reminders'
use: they are folded into one catch-up message per contact instead. A send's own retries within a tick (tenacity)
run on the wall clock, unscaled: a few real seconds, minutes of the bot's.
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
    MONDAY,
    TOKEN,
    duplicates,
    occurrences,
    received,
    seed,
    settings_env,
    start,
    wait_until,
)

pytestmark = pytest.mark.slow
SPEED = 60  # the bot's clock: one real second is one of its minutes
OUTAGE = 300  # seconds of the bot's clock
CONTACTS = 30
MESSAGES = 3  # each contact's Monday 09:30: the weekly requests of 2.1 and 2.2, and 1.1's "10 working days" one
DUE = datetime.fromisoformat(MONDAY.format("09:30"))


async def _outage(
    db_url: str,
    plan: LoadedPlan,
    tmp_path: Path,
    mode: str,
    policy: dict[str, str] | None = None,
    outage: float = OUTAGE,
) -> tuple[FakeBotAPI, list[int], dict[str, float], int]:
    """Start the bot before 09:30 on its clock, take the Bot API down for OUTAGE, bring it back, wait until every
    contact got what it should; the server (stopped), the chats, timings and one more chat that blocked the bot
    (a permanent error, beside the outage's transient ones)."""
    figures: dict[str, float] = {}
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        chats = seed(db_url, plan, server, CONTACTS + 1, policy=policy)
        blocked = chats.pop()
        server.block(blocked)
        env = settings_env(
            db_url,
            server,
            clock_start=MONDAY.format("09:25"),
            clock_speed=SPEED,
            lease_seconds=3600,
            telegram_rate_per_second=1000,
        )
        bot = await start(env, tmp_path / "bot.log")
        try:
            clock = await bot.running()  # its clock then (a moment ago)
            await server.go_down(mode)
            assert not server.calls_to("sendMessage"), f"the bot came up at {clock} on its clock: start it earlier"
            # Down from before the reminders are due (09:30) until OUTAGE seconds after, on the bot's clock.
            await asyncio.sleep((DUE - clock).total_seconds() / SPEED + outage / SPEED)
            figures["calls while down"] = len([c for c in server.calls if c.status == 502])
            assert not server.sent_messages(), "nothing may take effect while the Bot API is down"
            await server.come_up()
            up = time.monotonic()
            expected = CONTACTS * (MESSAGES if policy is None else 1)
            await wait_until(
                lambda: len(received(server, chats)) >= expected, 30, "every reminder after the outage", bots=(bot,)
            )
            figures["delivered after recovery, s"] = time.monotonic() - up
            await asyncio.sleep(1.5)  # a duplicate or a second catch-up would arrive now
        finally:
            assert await bot.stop() == 0, bot.output()[-3000:]
    return server, chats, figures, blocked


async def test_bot_api_refused_300_s_loses_nothing(db_url: str, minimal_plan: LoadedPlan, tmp_path: Path) -> None:
    await _lose_nothing(db_url, minimal_plan, tmp_path, "refused")


async def test_bot_api_answering_502_for_300_s_loses_nothing(
    pg_url: str, minimal_plan: LoadedPlan, tmp_path: Path
) -> None:
    await _lose_nothing(pg_url, minimal_plan, tmp_path, "502")


async def _lose_nothing(db_url: str, minimal_plan: LoadedPlan, tmp_path: Path, mode: str) -> None:
    server, chats, figures, blocked = await _outage(db_url, minimal_plan, tmp_path, mode)
    counts = received(server, chats)
    lost = CONTACTS * MESSAGES - len(counts)
    everyone = [o for o in occurrences(db_url) if o.fire_at <= DUE]
    refused = [o for o in everyone if str(o.contact_id) == str(_contact_id(db_url, blocked))]
    rows = [o for o in everyone if o not in refused]
    statuses = {o.status for o in rows}
    forbidden = [c for c in server.calls_to("sendMessage", status=403) if c.params.get("chat_id") == blocked]
    print(
        f"\nBot API down {OUTAGE} s ({mode}): {CONTACTS * MESSAGES} messages due, lost {lost}, duplicates "
        f"{duplicates(counts)}, failed {sum(o.status == 'failed' for o in rows)}; tries per row up to "
        f"{max(o.attempts for o in rows)}; {figures['calls while down']:.0f} requests answered 502 meanwhile; "
        f"all delivered {figures['delivered after recovery, s']:.1f} s (real) after the API came back; the chat "
        f"that blocked the bot: {len(forbidden)} x 403, its reminders {sorted(o.status for o in refused)}"
    )
    assert lost == 0 and duplicates(counts) == 0
    assert statuses == {"sent"}, statuses  # never failed while the platform was merely down
    assert max(o.attempts for o in rows) >= 2  # they were tried during the outage, and again after it
    assert all(len({t for (c, t) in counts if c == chat}) == MESSAGES for chat in chats)
    # The chat that blocked the bot: failed at its first 403 (its other reminders cancelled), never retried.
    assert "failed" in {o.status for o in refused} and {o.status for o in refused} <= {"failed", "cancelled"}
    assert 1 <= len(forbidden) <= MESSAGES


async def test_an_outage_past_the_grace_window_becomes_one_catch_up_per_contact(
    db_url: str, minimal_plan: LoadedPlan, tmp_path: Path
) -> None:
    # 600 s: longer than the few real seconds a send's own retries (tenacity, each waiting for the chat's
    # 1 s slot) span, which are not scaled: else the last of them may still reach a reminder, late, as itself.
    server, chats, figures, _blocked = await _outage(
        db_url, minimal_plan, tmp_path, "refused", policy={"grace": "2m"}, outage=2 * OUTAGE
    )
    counts = received(server, chats)
    catch_ups = {chat: sum(n for (c, t), n in counts.items() if c == chat and CATCH_UP_MARK in t) for chat in chats}
    others = [t for (_c, t) in counts if CATCH_UP_MARK not in t]
    rows = occurrences(db_url)
    print(
        f"\nBot API down {2 * OUTAGE} s past a 120 s grace: catch-ups per contact {sorted(set(catch_ups.values()))}, "
        f"reminders sent one by one {len(others)}, failed {sum(o.status == 'failed' for o in rows)}; "
        f"delivered {figures['delivered after recovery, s']:.1f} s after the API came back"
    )
    assert set(catch_ups.values()) == {1}  # exactly one each, none lost
    assert others == []  # past their use: folded, not sent one by one after the outage
    assert all("3条提醒" in t for (_c, t) in counts)  # the three reminders of the morning
    assert {o.status for o in rows if o.folded_into_id is not None} == {"cancelled"}


def _contact_id(url: str, chat: int) -> int:
    from sqlmodel import Session, select

    from coordbot.core.db import make_engine
    from coordbot.plan.models import Contact

    engine = make_engine(url)
    with Session(engine) as s:
        contact_id = s.exec(select(Contact.id).where(Contact.address == str(chat))).one()
    engine.dispose()
    assert contact_id is not None
    return contact_id
