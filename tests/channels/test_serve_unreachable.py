"""``serve()`` when the Bot API cannot be reached at start-up: it retries with backoff, one log line per
attempt, and polls as soon as the platform answers (it used to exit 1 with a traceback; issue 18)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.engine import Engine

from coordbot.core.clock import FakeClock
from coordbot.core.config import Secret, Settings
from coordbot.plan.loader import LoadedPlan
from coordbot.runtime import make_runtime, serve
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

from .conftest import BOT_NAME, HOLIDAYS, TOKEN, free_port


async def _logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 10.0) -> list[str]:
    async with asyncio.timeout(timeout):
        while not (lines := [r.getMessage() for r in caplog.records if text in r.getMessage()]):
            await asyncio.sleep(0.02)
    return lines


async def test_serve_retries_an_unreachable_bot_api_and_polls_once_it_answers(
    db_url: str, engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan, caplog: pytest.LogCaptureFixture
) -> None:
    api_port = free_port()
    settings = Settings(
        database_url=db_url,
        holidays_dir=HOLIDAYS,
        telegram_token=Secret(TOKEN),
        telegram_base_url=f"http://127.0.0.1:{api_port}/bot",
        telegram_mode="polling",
        web_port=free_port(),
        tick_seconds=3600.0,
        handler_processes=0,
    )
    caplog.set_level(logging.INFO, logger="coordbot")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(make_runtime(settings, engine, clock=clock), stop=stop))
    try:
        [first] = await _logged(caplog, "cannot start")
        assert first.startswith(f"telegram: cannot start (Telegram at http://127.0.0.1:{api_port}/bot is not reachable")
        assert first.endswith("attempt 1, retrying in 1 s") and TOKEN not in first
        assert not task.done()  # still trying, not exited
        async with FakeBotAPI(
            token=TOKEN, bot_username=BOT_NAME, rate_limits=RateLimits(enabled=False), port=api_port
        ) as server:
            await _logged(caplog, "coordbot running")  # polling started: the clock runs after the front ends
            assert [c.method for c in server.calls[:2]] == ["getMe", "deleteWebhook"]
            assert await _logged(caplog, f"telegram: polling mode as @{BOT_NAME}")
            stop.set()
            await asyncio.wait_for(task, 10)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
