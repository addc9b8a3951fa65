"""Nothing secret in the logs (issue 17, item 8): the whole bot at DEBUG, in webhook and polling mode, logs
neither the bot token (httpx logs every request URL), nor the webhook secret (setWebhook's parameters), nor an
invite code (python-telegram-bot logs the updates it reads); the stored inbound text has the code masked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.telegram import WEBHOOK_PATH
from coordbot.core.clock import FakeClock
from coordbot.core.config import Settings
from coordbot.replies.models import InboundMessage
from coordbot.runtime import make_runtime, serve
from coordbot.testing.fake_telegram import FakeBotAPI

from .conftest import TOKEN, WANG, WEBHOOK_SECRET, ZHAO, Handled, Person, free_port


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Every record of the process at DEBUG, formatted as ``coordbot -vv`` does, into a file."""
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_a_conversation_at_debug_logs_no_token_secret_or_invite_code(
    mode: str,
    debug_log: Path,
    make_settings: Callable[..., Settings],
    engine: Engine,
    clock: FakeClock,
    loaded_plan: Any,
    handled: Handled,
    fast_client_limits: None,
    server: FakeBotAPI,
    person: Callable[..., Person],
    invite: Callable[..., str],
) -> None:
    port = free_port()
    settings = make_settings(telegram_mode=mode, webhook_url=f"http://127.0.0.1:{port}", web_port=port)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(make_runtime(settings, engine, clock=clock), stop=stop))
    codes = [invite("amr", name="王敏"), invite("sci", name="赵磊")]
    try:
        if mode == "webhook":
            await server.wait_for(lambda: server.webhook_url.endswith(WEBHOOK_PATH))
        wang, zhao = person(WANG), person(ZHAO)
        assert "欢迎，王敏" in (await wang.say(f"/start {codes[0]}"))["text"]
        assert "欢迎，赵磊" in (await zhao.say(f"/start@coordbot_test_bot {codes[1]}"))["text"]
        await wang.say("/start wrong-code-0123456789abcdef")
        assert "已记录：任务2.1" in (await wang.say("2.1 本周开展双随机检查2项"))["text"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    logged = debug_log.read_text(encoding="utf-8")
    # The log saw the requests and the updates (else this test would prove nothing).
    assert "getMe" in logged and ("setWebhook" in logged if mode == "webhook" else "getUpdates" in logged)
    assert "127.0.0.1" in logged
    for secret in (TOKEN, TOKEN.split(":")[1], WEBHOOK_SECRET, *codes, "wrong-code-0123456789abcdef"):
        assert secret not in logged, f"{secret!r} logged: " + next(ln for ln in logged.splitlines() if secret in ln)
    with Session(engine) as s:
        stored = [m.text for m in s.exec(select(InboundMessage).order_by(InboundMessage.id))]  # type: ignore[arg-type]
    assert stored[:3] == ["/start ****", "/start@coordbot_test_bot ****", "/start ****"]
    assert not any(code in text for code in codes for text in stored)
