"""Fixtures for the DingTalk channel: coordbot's adapter against the fake DingTalk open platform over HTTP.

``dt`` is a running :class:`FakeDingTalk` (rate limits off: these tests are about behaviour; the rate-limit
tests turn them on). ``channel`` is a :class:`DingTalkChannel` sending to it. ``serve_frontend`` puts a
front end's callback route on a real port and points the fake's callbacks at it. Waiting is by events:
``DingTalkFrontend.drain()`` returns once every accepted callback was handled and answered.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from coordbot.channels.dingtalk import CALLBACK_PATH, DingTalkChannel, DingTalkFrontend
from coordbot.core.config import Secret, Settings
from coordbot.testing.fake_dingtalk import FakeDingTalk, RateLimits
from coordbot.web.app import make_web_app, start_site

ROOT = Path(__file__).resolve().parents[3]
HOLIDAYS = ROOT / "config" / "holidays"
APP_KEY = "dingk7xq2test0appkey"
APP_SECRET = "Xy9-fake_AppSecret_for_the_tests_0123456789abcdefABCDEF"
WANG = "wangmin01"  # amr's liaison officer (lead of 2.1 and 2.2)
ZHAO = "zhaolei02"
GROUP = "cidAmrWorkGroup0000000000=="
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def dt() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk(APP_KEY, APP_SECRET, rate_limits=RateLimits(enabled=False)) as fake:
        fake.add_user(WANG, "王敏")
        fake.add_user(ZHAO, "赵磊")
        fake.add_group(GROUP, "市场监管局工作群", (WANG, ZHAO))
        yield fake


def dingtalk_settings(dt: FakeDingTalk, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "holidays_dir": HOLIDAYS,
        "dingtalk_app_key": APP_KEY,
        "dingtalk_app_secret": Secret(APP_SECRET),
        "dingtalk_base_url": dt.url,
        "dingtalk_oapi_url": dt.url,
        "tick_seconds": 3600.0,
        "handler_processes": 0,
    }
    values.update(overrides)
    # Each front end its own inbound spool: nothing one test leaves there is replayed by the next.
    values.setdefault("spool_dir", Path(tempfile.mkdtemp(prefix="coordbot-test-spool-")))
    return Settings(**values)


@pytest.fixture
async def channel(dt: FakeDingTalk) -> AsyncIterator[DingTalkChannel]:
    ch = DingTalkChannel(app_key=APP_KEY, app_secret=APP_SECRET, base_url=dt.url, oapi_url=dt.url, qps=1000)
    try:
        yield ch
    finally:
        await ch.close()


ServeFrontend = Callable[[DingTalkFrontend], Awaitable[DingTalkFrontend]]


@pytest.fixture
async def serve_frontend(dt: FakeDingTalk) -> AsyncIterator[ServeFrontend]:
    """serve(frontend) -> the front end, its callback listening and the fake calling it."""
    runners: list[web.AppRunner] = []
    frontends: list[DingTalkFrontend] = []

    async def serve(fe: DingTalkFrontend) -> DingTalkFrontend:
        port = free_port()
        runners.append(await start_site(make_web_app(fe.webhook_routes()), "127.0.0.1", port))
        dt.callback_url = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
        await fe.start()
        frontends.append(fe)
        return fe

    yield serve
    for fe in frontends:
        await fe.stop()
    for runner in runners:
        await runner.cleanup()
