"""Fixtures for the WeCom channel: the fake WeCom server, coordbot's adapter pointed at it, and coordbot's
callback served on 127.0.0.1 with the fake's admin-console URL set to it (verified like the console does).

``wecom`` has its rate limits off (the functional tests are about behaviour; the rate-limit tests turn them
on). ``serve_frontend(handle)`` serves a :class:`WeComFrontend` around any ``handle``; ``runtime_frontend``
wires the real runtime (conversation, reminders) on the minimal plan, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.engine import Engine

from coordbot.channels.base import Inbound, InboundHandler, Reply
from coordbot.channels.wecom import WeComChannel, WeComFrontend, channel_from
from coordbot.core.clock import FakeClock
from coordbot.core.config import Secret, Settings
from coordbot.plan.loader import LoadedPlan
from coordbot.runtime import Runtime, make_runtime
from coordbot.testing.fake_wecom import FakeWeCom, RateLimits
from coordbot.web.app import make_web_app, start_site

from ..conftest import HOLIDAYS, free_port

CORP_ID = "ww1436e0e65a779aee"
AGENT_ID = 1000002
SECRET = "app-secret-for-tests"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
WANG = "WangMin"  # amr contact
ZHAO = "ZhaoLei"
OUTSIDER = "LiuYang"  # exists but outside the app's visible range


def wecom_settings(server: FakeWeCom, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "wecom_corp_id": CORP_ID,
        "wecom_agent_id": str(AGENT_ID),
        "wecom_secret": Secret(SECRET),
        "wecom_token": Secret(TOKEN),
        "wecom_aes_key": Secret(AES_KEY),
        "wecom_base_url": server.base_url,
        "holidays_dir": HOLIDAYS,
        "tick_seconds": 3600.0,
        "handler_processes": 0,
    }
    values.update(overrides)
    # Each front end its own inbound spool: nothing one test leaves there is replayed by the next.
    values.setdefault("spool_dir", Path(tempfile.mkdtemp(prefix="coordbot-test-spool-")))
    return Settings(**values)


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(rate_limits=RateLimits(enabled=False)) as server:
        server.add_user(WANG, "王敏")
        server.add_user(ZHAO, "赵磊")
        server.add_user(OUTSIDER, "刘洋", visible=False)
        yield server


@pytest.fixture
async def channel(wecom: FakeWeCom) -> AsyncIterator[WeComChannel]:
    ch = channel_from(wecom_settings(wecom))
    try:
        yield ch
    finally:
        await ch.close()


class Recorder:
    """A ``handle`` that keeps every Inbound and answers with what ``answer`` says."""

    def __init__(self, answer: Callable[[Inbound], Reply | None] | None = None) -> None:
        self.inbound: list[Inbound] = []
        self.answer = answer or (lambda _: None)

    async def __call__(self, inbound: Inbound) -> Reply | None:
        self.inbound.append(inbound)
        return self.answer(inbound)


ServeFrontend = Callable[..., Any]


@pytest.fixture
def serve_frontend(wecom: FakeWeCom) -> Callable[..., Any]:
    """``async with serve_frontend(handle) as fe``: coordbot's callback on a free port, set on the fake."""

    @asynccontextmanager
    async def _serve(handle: InboundHandler, **settings: Any) -> AsyncIterator[WeComFrontend]:
        fe = WeComFrontend(wecom_settings(wecom, **settings), handle)
        port = free_port()
        runner = await start_site(make_web_app(fe.webhook_routes()), "127.0.0.1", port)
        await fe.start()
        try:
            await wecom.set_callback(f"http://127.0.0.1:{port}/wecom/callback")
            yield fe
        finally:
            await fe.stop()
            await runner.cleanup()

    return _serve


@pytest.fixture
async def runtime_frontend(
    wecom: FakeWeCom, db_url: str, engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan
) -> AsyncIterator[tuple[Runtime, WeComFrontend]]:
    """The real runtime with WeCom as its channel, its callback served and registered on the fake."""
    settings = wecom_settings(wecom, database_url=db_url)
    runtime = make_runtime(settings, engine, clock=clock)
    fe = WeComFrontend(settings, runtime.handle)
    runtime.channels["wecom"] = fe.channel
    await runtime.conversation_runner().start()
    port = free_port()
    runner: web.AppRunner = await start_site(make_web_app(fe.webhook_routes()), "127.0.0.1", port)
    await fe.start()
    await wecom.set_callback(f"http://127.0.0.1:{port}/wecom/callback")
    try:
        yield runtime, fe
    finally:
        await fe.stop()
        await runner.cleanup()
        await runtime.close()


Say = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def say(wecom: FakeWeCom, runtime_frontend: tuple[Runtime, WeComFrontend]) -> Say:
    """``await say(user, text)``: the user writes; returns what the bot sent them in answer."""
    _, fe = runtime_frontend

    async def _say(user: str, text: str) -> list[dict[str, Any]]:
        before = len(wecom.sent_to(user))
        sent = await wecom.user_sends(user, text)
        assert sent["delivery"].status == 200, sent["delivery"]
        await fe.drain()
        return wecom.sent_to(user)[before:]

    return _say
