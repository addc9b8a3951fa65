"""Read timeouts after Telegram accepted (issue 17, item 3): the fake Bot API sends the message, then holds its
answer longer than python-telegram-bot's 5 s read timeout. Telegram has no idempotency key, so a reminder whose
answer never came is sent again (at least once) — but only that one: a contact's messages go out one after the
other, and once a chat was slow to answer the next sends to it wait up to 60 s for their answer instead of
timing out and being doubled too. Duplicates are counted in what the server received: at most one per chat.

Scaled time as in test_outage.py (the bot's clock at 60 times the wall clock: its one-minute back-off before the
retry is a real second); the stalls and timeouts are real seconds.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from coordbot.plan.loader import LoadedPlan
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

from ._outage_procs import MONDAY, TOKEN, duplicates, occurrences, received, seed, settings_env, start, wait_until

pytestmark = pytest.mark.slow
SLOW, FAST = 6, 6  # chats whose first two sends are answered late, and chats answered at once
MESSAGES = 3  # each contact's 09:30 reminders
STALL = 6.0  # seconds an accepted send's answer is held (PTB gives up after 5)
DUE = datetime.fromisoformat(MONDAY.format("09:30"))


async def _run(db_url: str, plan: LoadedPlan, tmp_path: Path, delivery: str) -> dict[str, object]:
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        chats = seed(db_url, plan, server, SLOW + FAST)
        slow = chats[:SLOW]
        for chat in slow:
            server.stall_next("sendMessage", STALL, times=2, chat_id=chat)
        env = settings_env(
            db_url,
            server,
            clock_start=MONDAY.format("09:28"),
            clock_speed=60,
            lease_seconds=3600,
            telegram_rate_per_second=1000,
            delivery=delivery,
        )
        bot = await start(env, tmp_path / "bot.log")
        try:
            await bot.running()
            began = time.monotonic()
            # every reminder reached its chat at least once, and nothing is left to retry
            await wait_until(
                lambda: (
                    len(received(server, chats)) >= MESSAGES * len(chats)
                    and not [o for o in occurrences(db_url) if o.status in ("pending", "claimed") and o.fire_at <= DUE]
                ),
                60,
                "every reminder delivered and recorded",
                bots=(bot,),
            )
            took = time.monotonic() - began
            await _settle()
        finally:
            assert await bot.stop() == 0, bot.output()[-3000:]
        counts = received(server, chats)
        unconfirmed = sum(int(n) for n in re.findall(r"tick: .*?(\d+) unconfirmed", bot.output()))
        timeouts = len([c for c in server.calls_to("sendMessage") if c.params.get("chat_id") in slow])
        return {
            "counts": counts,
            "chats": chats,
            "slow": slow,
            "took": took,
            "unconfirmed": unconfirmed,
            "requests to slow chats": timeouts,
        }


async def _settle() -> None:
    import asyncio

    await asyncio.sleep(1.5)  # a late duplicate would arrive now


def _per_chat(counts, chats):  # type: ignore[no-untyped-def]
    return {chat: sum(n - 1 for (c, _t), n in counts.items() if c == chat) for chat in chats}


async def test_read_timeouts_double_at_most_one_message_per_chat(
    db_url: str, minimal_plan: LoadedPlan, tmp_path: Path
) -> None:
    r = await _run(db_url, minimal_plan, tmp_path, "at-least-once")
    counts, chats, slow = r["counts"], r["chats"], r["slow"]
    per_chat = _per_chat(counts, chats)
    lost = MESSAGES * len(chats) - len(counts)  # type: ignore[arg-type]
    rows = [o for o in occurrences(db_url) if o.kind != "catch_up"]
    print(
        f"\nread timeouts after accepting, {SLOW} slow chats x 2 stalled answers ({STALL} s > 5 s): lost {lost}, "
        f"duplicates {duplicates(counts)} (per slow chat {sorted({per_chat[c] for c in slow})}, per other chat "  # type: ignore[arg-type]
        f"{sorted({per_chat[c] for c in chats if c not in slow})}), the engine's unconfirmed sends "  # type: ignore[attr-defined]
        f"{r['unconfirmed']}; all delivered and recorded in {r['took']:.1f} s"
    )
    assert lost == 0
    assert max(per_chat.values()) <= 1  # bounded: at most one copy per chat
    assert all(per_chat[c] == 0 for c in chats if c not in slow)  # type: ignore[attr-defined]
    assert duplicates(counts) == r["unconfirmed"]  # type: ignore[arg-type]  # counted by the engine as well
    assert {o.status for o in rows if o.fire_at.isoformat() <= "2026-03-02T01:30:00+00:00"} == {"sent"}


async def test_read_timeouts_at_most_once_never_double(pg_url: str, minimal_plan: LoadedPlan, tmp_path: Path) -> None:
    r = await _run(pg_url, minimal_plan, tmp_path, "at-most-once")
    counts, slow = r["counts"], r["slow"]
    failed = [o for o in occurrences(pg_url) if o.status == "failed"]
    print(
        f"\nread timeouts, at-most-once: duplicates {duplicates(counts)}, reminders failed as possibly not "  # type: ignore[arg-type]
        f"delivered {len(failed)} (the engine's unconfirmed sends {r['unconfirmed']})"
    )
    assert duplicates(counts) == 0  # type: ignore[arg-type]
    assert len(failed) == r["unconfirmed"] == len(slow)  # type: ignore[arg-type]  # one per slow chat, none doubled
    assert all(o.error.startswith("unconfirmed: ") for o in failed)
