"""An invite code is kept only hashed: the inbound message of "绑定 CODE" is stored as "绑定 ****"."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.wecom import WeComFrontend
from coordbot.replies.models import InboundMessage
from coordbot.runtime import Runtime

from .conftest import WANG, Say


async def test_the_bind_message_is_stored_without_its_code(
    runtime_frontend: tuple[Runtime, WeComFrontend], engine: Engine, say: Say, invite: Callable[..., str]
) -> None:
    code = invite("amr", name="王敏")
    [welcome] = await say(WANG, f"绑定 {code}")
    assert "欢迎" in welcome["text"], welcome["text"]
    with Session(engine) as s:
        stored = [m.text for m in s.exec(select(InboundMessage))]
    assert stored == ["绑定 ****"]
