"""Fixtures for the Feishu channel: coordbot's adapter against the fake Open Platform over real HTTP.

``fs`` is the fake (rate limits on); ``settings`` points the adapter at it; ``events`` serves coordbot's
``/feishu/events`` (the front end's routes on coordbot's own web app) on a free port and tells the fake to
push there. ``Recorder`` is the ``handle`` callable for front-end tests that need no database.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from coordbot.channels.base import Inbound, Reply
from coordbot.channels.feishu import EVENTS_PATH, FeishuChannel, FeishuFrontend, open_sender
from coordbot.core.config import Secret, Settings
from coordbot.testing.fake_feishu import FakeFeishu, RateLimits
from coordbot.web.app import make_web_app, start_site

APP_ID = "cli_a1b2c3d4e5f60718"
APP_SECRET = "s3cret-app-secret"
VERIFICATION_TOKEN = "v3rification-token"
ENCRYPT_KEY = "enc-key-for-feishu-tests"

WANG = "ou_7d8a6e6df7621556ce0d21922b676706"  # amr contact
ZHAO = "ou_2b1c0a9d8e7f6a5b4c3d2e1f0a9b8c7d"
HIDDEN = "ou_0000000000000000000000000000dead"  # outside the app's availability
GROUP = "oc_84983ff6516d731e5b5f68d4ea2e1da5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def fs() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu(
        app_id=APP_ID,
        app_secret=APP_SECRET,
        verification_token=VERIFICATION_TOKEN,
        encrypt_key=ENCRYPT_KEY,
        rate_limits=RateLimits(),
    ) as server:
        server.add_user(WANG, "王敏")
        server.add_user(ZHAO, "赵磊")
        server.add_user(HIDDEN, "路人", visible=False)
        server.add_group(GROUP, "市场监管局工作群")
        yield server


def feishu_settings(fs: FakeFeishu, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "feishu_app_id": APP_ID,
        "feishu_app_secret": Secret(APP_SECRET),
        "feishu_verification_token": Secret(VERIFICATION_TOKEN),
        "feishu_encrypt_key": Secret(ENCRYPT_KEY),
        "feishu_base_url": fs.base_url,
    }
    values.update(overrides)
    # Each front end its own inbound spool: nothing one test leaves there is replayed by the next.
    values.setdefault("spool_dir", Path(tempfile.mkdtemp(prefix="coordbot-test-spool-")))
    return Settings(**values)


@pytest.fixture
def settings(fs: FakeFeishu) -> Settings:
    return feishu_settings(fs)


@pytest.fixture
async def channel(settings: Settings) -> AsyncIterator[FeishuChannel]:
    async with open_sender(settings) as ch:
        yield ch


@dataclass
class Recorder:
    """The front end's ``handle``: keeps every Inbound and answers with ``reply`` (or ``answer(inbound)``)."""

    reply: Reply | None = None
    answer: Callable[[Inbound], Awaitable[Reply | None]] | None = None
    seen: list[Inbound] = field(default_factory=list)

    async def __call__(self, inbound: Inbound) -> Reply | None:
        self.seen.append(inbound)
        if self.answer is not None:
            return await self.answer(inbound)
        return self.reply


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def serve_events(fs: FakeFeishu, fe: FeishuFrontend) -> web.AppRunner:
    port = free_port()
    runner = await start_site(make_web_app(fe.webhook_routes()), "127.0.0.1", port)
    fs.event_url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
    return runner


@pytest.fixture
async def frontend(fs: FakeFeishu, settings: Settings, recorder: Recorder) -> AsyncIterator[FeishuFrontend]:
    """coordbot's Feishu front end with a recording handler, its events endpoint served on coordbot's web app."""
    fe = FeishuFrontend(settings, recorder)
    await fe.start()
    runner = await serve_events(fs, fe)
    try:
        yield fe
    finally:
        await runner.cleanup()
        await fe.stop()
