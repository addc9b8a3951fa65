"""The registry finds the DingTalk adapter from the settings, and its entry points work as the runtime uses them."""

from __future__ import annotations

from coordbot.channels import registry
from coordbot.channels.base import Outbound, Reply
from coordbot.channels.dingtalk import CALLBACK_PATH, DingTalkChannel, DingTalkFrontend
from coordbot.core.config import Secret
from coordbot.testing.fake_dingtalk import FakeDingTalk

from .conftest import WANG, dingtalk_settings


async def test_configured_by_app_key_and_secret_and_sends(dt: FakeDingTalk) -> None:
    settings = dingtalk_settings(dt)
    [adapter] = [a for a in registry.configured(settings) if a.name == "dingtalk"]
    async with adapter.open_sender(settings) as channel:
        assert isinstance(channel, DingTalkChannel) and channel.name == "dingtalk"
        await channel.send(Outbound(WANG, "一次性发送"))
    assert [m["text"] for m in dt.sent_to(WANG)] == ["一次性发送"]
    assert adapter.frontend is not None

    async def handle(_: object) -> Reply | None:
        return None

    fe = adapter.frontend(settings, handle)
    assert isinstance(fe, DingTalkFrontend)
    assert [r.path for r in fe.webhook_routes()] == [CALLBACK_PATH]
    await fe.stop()


def test_not_configured_without_the_secret(dt: FakeDingTalk) -> None:
    settings = dingtalk_settings(dt, dingtalk_app_secret=Secret(""))
    assert "dingtalk" not in [a.name for a in registry.configured(settings)]
