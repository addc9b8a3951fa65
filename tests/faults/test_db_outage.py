"""Issue 17, item 5: replies sent while the database is unreachable are kept (spooled before Telegram is told
they arrived) and stored exactly once when it answers again, also across a restart in the middle.

Real ``coordbot run`` processes poll the fake Bot API; PostgreSQL is reached through a proxy the test cuts
(the shared server stays up). The outage is a few seconds, not 60: the spool does not care how long it lasts,
and the retry backoff is capped at 5 s, so a longer one only waits longer. SQLite has no such outage.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from coordbot.core.config import Secret, Settings
from coordbot.core.db import make_engine
from coordbot.runtime import make_runtime, serve

from ._inbound import HOLIDAYS, TOKEN, answered, answers, free_port, report, running, sends, start_bot, world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
OUTAGE = float(os.environ.get("COORDBOT_FAULT_OUTAGE_SECONDS", "4"))
REPLIERS = 4
EACH = 3


def _replies(user: int) -> list[str]:
    return [f"2.1 本周开展双随机检查{k + 1}次（联络员{user}）" for k in range(EACH)]


async def test_replies_during_a_database_outage_are_stored_exactly_once_after_it(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    async with world(request, "postgresql", tmp_path, contacts=REPLIERS + 1) as w, running(w) as bot:
        assert w.proxy is not None
        repliers = w.users[:REPLIERS]
        w.proxy.down()
        sent = [u for user in repliers for u in sends(w.server, user, _replies(user))]
        # Telegram is told they arrived (the next getUpdates confirms them) although nothing can be stored.
        await w.server.wait_until_consumed(timeout=10)
        await asyncio.sleep(OUTAGE)
        assert all(answers(w.server, u) == [] for u in repliers), "answered while the database was away?"
        w.proxy.up()
        back = time.monotonic()
        took = await w.wait_stored(sent, timeout=20)
        for user in repliers:  # every reply answered once, now that it is stored
            await w.server.wait_for_messages(user, EACH, timeout=10)
        stopped_in = await bot.sigterm()
    stored = Counter(w.stored(sent))
    report(
        "database outage",
        outage_s=OUTAGE,
        replies=len(sent),
        stored=sum(stored.values()),
        stored_after_recovery_s=f"{took:.2f}",
        answered_after_recovery_s=f"{time.monotonic() - back:.2f}",
        stop_s=f"{stopped_in:.2f}",
    )
    assert sorted(stored) == sorted(str(u) for u in sent) and set(stored.values()) == {1}
    assert [len(answers(w.server, u)) for u in repliers] == [EACH] * REPLIERS  # none twice
    assert w.spooled() == 0


@pytest.mark.parametrize("cut", ["refused", "silent"])
async def test_a_restart_during_the_outage_loses_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, cut: str
) -> None:
    """Stopped while the database is away (refusing, or silent: connections that hang): the spool keeps the
    replies, the stop still ends within 10 s, and the next run stores them."""
    async with world(request, "postgresql", tmp_path, contacts=REPLIERS + 1) as w:
        assert w.proxy is not None
        async with running(w) as bot:
            w.proxy.down(silent=cut == "silent")
            sent = [u for user in w.users[:REPLIERS] for u in sends(w.server, user, _replies(user))]
            await w.server.wait_until_consumed(timeout=10)
            if cut == "silent":
                await asyncio.sleep(1.0)  # the updates in hand are waiting on the database
            stopped_in = await bot.sigterm()
        in_spool = w.spooled()
        assert in_spool == len(sent), f"{in_spool} of {len(sent)} in the spool after the stop"
        w.proxy.up()
        bot = await start_bot(w, "second")
        try:
            took = await w.wait_stored(sent, timeout=25)
            await answered(w, w.users[-1], "/help", timeout=10, bot=bot)
            await bot.sigterm()
        finally:
            bot.kill()
    stored = Counter(w.stored(sent))
    report(
        f"restart during the outage ({cut})",
        spooled_at_stop=in_spool,
        stop_s=f"{stopped_in:.2f}",
        replayed_s=f"{took:.2f}",
    )
    assert stopped_in < 10.0
    assert sorted(stored) == sorted(str(u) for u in sent) and set(stored.values()) == {1}
    assert w.spooled() == 0


async def test_webhook_updates_during_the_outage_get_200_only_once_spooled_and_are_stored_after_it(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Webhook mode (serve() in this process: a real process would need an https:// webhook URL): Telegram's
    deliveries during the outage are answered 200, because they are in the spool, and stored once it ends."""
    async with world(request, "postgresql", tmp_path, contacts=REPLIERS + 1) as w:
        assert w.proxy is not None
        port = free_port()
        settings = Settings(
            database_url=w.bot_url,
            holidays_dir=HOLIDAYS,
            telegram_token=Secret(TOKEN),
            telegram_base_url=w.server.base_url,
            telegram_mode="webhook",
            webhook_url=f"http://127.0.0.1:{port}",
            webhook_secret=Secret("faults-webhook-secret"),
            web_port=port,
            tick_seconds=3600.0,
            handler_processes=0,
            spool_dir=tmp_path / "spool",
        )
        engine = make_engine(w.bot_url)
        stop = asyncio.Event()
        serving = asyncio.create_task(serve(make_runtime(settings, engine), stop=stop))
        try:
            await w.server.wait_for(lambda: bool(w.server.webhook_url), timeout=20)
            await answered(w, w.users[-1], "/help", timeout=20)
            w.proxy.down()
            repliers = w.users[:REPLIERS]
            sent = [u for user in repliers for u in sends(w.server, user, _replies(user))]
            await w.server.wait_until_consumed(timeout=10)
            during = [d for d in w.server.webhook_deliveries if d.update_id in sent]
            await asyncio.sleep(OUTAGE / 2)
            w.proxy.up()
            took = await w.wait_stored(sent, timeout=20)
            for user in repliers:
                await w.server.wait_for_messages(user, EACH, timeout=10)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 15)
            engine.dispose()
    stored = Counter(w.stored(sent))
    report("webhook database outage", replies=len(sent), stored=sum(stored.values()), stored_after_s=f"{took:.2f}")
    assert {d.status for d in during} == {200} and len(during) == len(sent)  # each delivered once, answered 200
    assert sorted(stored) == sorted(str(u) for u in sent) and set(stored.values()) == {1}
    assert [len(answers(w.server, u)) for u in repliers] == [EACH] * REPLIERS
