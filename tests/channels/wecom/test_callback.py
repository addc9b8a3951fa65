"""The callback URL: verification, decryption, what each message becomes, and what is refused."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from coordbot.channels.base import Button, Inbound, Outbound, Reply
from coordbot.core.config import Secret
from coordbot.testing.fake_wecom import FakeWeCom

from .conftest import WANG, ZHAO, Recorder, ServeFrontend


async def test_the_console_verifies_the_url(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    async with serve_frontend(Recorder()):
        assert wecom.callback_url.endswith("/wecom/callback")  # set_callback raised otherwise


async def test_a_text_message_becomes_an_inbound(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    rec = Recorder()
    async with serve_frontend(rec) as fe:
        sent = await wecom.user_sends(WANG, "本周开展双随机检查2项")
        assert (sent["delivery"].status, sent["delivery"].body) == (200, "success")
        await fe.drain()
    [msg] = rec.inbound
    assert (msg.channel, msg.external_id, msg.sender_id, msg.chat_id) == ("wecom", sent["MsgId"], WANG, WANG)
    assert (msg.kind, msg.text, msg.message_ref) == ("message", "本周开展双随机检查2项", sent["MsgId"])


async def test_bind_and_commands(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    rec = Recorder()
    async with serve_frontend(rec) as fe:
        await wecom.user_sends(WANG, "绑定 Ab3dEf7hJk")
        await wecom.user_sends(WANG, "/tasks 2.1")
        await fe.drain()
    bind, tasks = rec.inbound
    assert (bind.kind, bind.command, bind.start_code) == ("command", "start", "Ab3dEf7hJk")
    assert (tasks.kind, tasks.command, tasks.args) == ("command", "tasks", "2.1")


async def test_the_reply_goes_back_through_the_api(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    extra = Outbound(ZHAO, "王敏报送了任务2.1")
    rec = Recorder(lambda m: Reply("<b>已记录：任务2.1</b>", extra=[extra]))
    async with serve_frontend(rec) as fe:
        await wecom.user_sends(WANG, "任务2.1 完成")
        await fe.drain()
    assert [m["text"] for m in wecom.sent_to(WANG)] == ["**已记录：任务2.1**"]
    assert [m["text"] for m in wecom.sent_to(ZHAO)] == ["王敏报送了任务2.1"]


async def test_a_pressed_card_button_comes_back_as_a_callback(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    def answer(m: Inbound) -> Reply | None:
        if m.kind == "callback":
            return Reply("", alert="已记录：受阻")
        return Reply("任务2.2", buttons=((Button("✅ 已完成", "done", "o12"), Button("🔴 受阻", "blocked", "o12")),))

    rec = Recorder(answer)
    async with serve_frontend(rec) as fe:
        await wecom.user_sends(WANG, "任务")
        await fe.drain()
        [card] = wecom.sent_to(WANG)
        pressed = await wecom.user_presses(WANG, card, 1)
        await fe.drain()
    press = rec.inbound[-1]
    assert (press.kind, press.callback_action, press.callback_ref) == ("callback", "blocked", "o12")
    assert press.sender_id == WANG and press.message_ref == pressed["TaskId"]
    assert wecom.sent_to(WANG)[-1]["text"] == "已记录：受阻"  # the toast, as a message: a card has none


async def test_a_number_presses_a_numbered_option(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    picks = tuple((Button(f"任务1.{i}", "pick", f"i5:1.{i}"),) for i in range(1, 9))
    rec = Recorder(lambda m: Reply("是哪一项？", buttons=picks) if m.kind == "message" and m.text == "进展" else None)
    async with serve_frontend(rec) as fe:
        await wecom.user_sends(WANG, "进展")
        await fe.drain()
        assert "8. 任务1.8" in wecom.sent_to(WANG)[0]["text"]
        await wecom.user_sends(WANG, "回复3")
        await wecom.user_sends(ZHAO, "3")  # nothing was offered to Zhao: a plain message
        await fe.drain()
    wang, zhao = rec.inbound[1:]
    assert (wang.kind, wang.callback_action, wang.callback_ref) == ("callback", "pick", "i5:1.3")
    assert (zhao.kind, zhao.text) == ("message", "3")


async def test_events_without_an_answer_are_acknowledged(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    rec = Recorder()
    async with serve_frontend(rec) as fe:
        delivery = await wecom.user_enters(WANG)
        await fe.drain()
    assert delivery.status == 200 and rec.inbound == []


async def test_a_bad_signature_is_refused(
    wecom: FakeWeCom, serve_frontend: ServeFrontend, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    async with serve_frontend(rec) as fe:
        with caplog.at_level(logging.INFO, "coordbot.channels.wecom"):
            sent = await wecom.user_sends(WANG, "秘密内容", signature="0" * 40)
        await fe.drain()
    assert sent["delivery"].status == 403 and rec.inbound == []
    assert "bad signature" in caplog.text and "秘密内容" not in caplog.text and "Encrypt" not in caplog.text


@pytest.mark.parametrize("age", [301, -301, 3600])
async def test_a_replay_outside_five_minutes_is_refused(
    wecom: FakeWeCom, serve_frontend: ServeFrontend, caplog: pytest.LogCaptureFixture, age: int
) -> None:
    rec = Recorder()
    async with serve_frontend(rec) as fe:
        with caplog.at_level(logging.INFO, "coordbot.channels.wecom"):
            sent = await wecom.user_sends(WANG, "旧消息", timestamp=int(time.time()) - age)
            fresh = await wecom.user_sends(WANG, "新消息", timestamp=int(time.time()) - 200)
        await fe.drain()
    assert sent["delivery"].status == 403 and fresh["delivery"].status == 200
    assert [m.text for m in rec.inbound] == ["新消息"]
    assert "timestamp" in caplog.text and "旧消息" not in caplog.text


async def test_a_message_for_another_corp_is_refused(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    rec = Recorder()
    async with serve_frontend(rec):
        sent = await wecom.user_sends(WANG, "别家的", receive_id="wwanothercorp")
    assert sent["delivery"].status == 403 and rec.inbound == []


async def test_a_body_without_ciphertext_is_refused(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    async with serve_frontend(Recorder()):
        delivery = await wecom.post_callback("<xml/>", raw_body=b"<xml><Content>plain</Content></xml>")
    assert delivery.status == 403


@pytest.mark.parametrize(
    "plaintext",
    [
        "not xml at all",
        "<xml><MsgType>text</MsgType></xml>",  # no sender
        "<xml><FromUserName>WangMin</FromUserName><MsgType>text</MsgType><Content>x</Content></xml>",  # no MsgId
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml>&a;</xml>',
    ],
)
async def test_an_authentic_but_unreadable_message_is_acknowledged(
    wecom: FakeWeCom, serve_frontend: ServeFrontend, caplog: pytest.LogCaptureFixture, plaintext: str
) -> None:
    rec = Recorder()
    async with serve_frontend(rec) as fe:
        with caplog.at_level(logging.INFO, "coordbot.channels.wecom"):
            delivery = await wecom.post_callback(plaintext)
        await fe.drain()
    assert (delivery.status, delivery.body) == (200, "success")  # or WeCom sends it again and again
    assert len(wecom.callbacks) == 1 and rec.inbound == []
    assert "not understood" in caplog.text and plaintext not in caplog.text


async def test_url_verification_with_a_bad_signature_is_refused(
    wecom: FakeWeCom, serve_frontend: ServeFrontend
) -> None:
    async with serve_frontend(Recorder()):
        url = wecom.callback_url
        assert wecom._client is not None
        params: dict[str, Any] = {"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1"}
        async with wecom._client.get(url, params={**params, "echostr": wecom.envelope.seal("123")}) as resp:
            assert resp.status == 403


async def test_the_ack_does_not_wait_for_the_handler(wecom: FakeWeCom, serve_frontend: ServeFrontend) -> None:
    release = asyncio.Event()

    async def slow(_: Inbound) -> Reply | None:
        await release.wait()  # the conversation takes longer than WeCom's 5 s
        return Reply("好")

    async with serve_frontend(slow) as fe:
        wecom.callback_timeout = 1.0
        sent = await wecom.user_sends(WANG, "你好")
        assert sent["delivery"].status == 200 and len(wecom.callbacks) == 1  # no retry
        release.set()
        await fe.drain()
    assert [m["text"] for m in wecom.sent_to(WANG)] == ["好"]


async def test_without_token_and_key_the_app_only_sends(wecom: FakeWeCom) -> None:
    from coordbot.channels.wecom import WeComFrontend

    from .conftest import wecom_settings

    fe = WeComFrontend(wecom_settings(wecom, wecom_token=Secret(""), wecom_aes_key=Secret("")), Recorder())
    try:
        assert fe.webhook_routes() == []
        await fe.start()
        await fe.channel.send(Outbound(WANG, "只发不收"))
    finally:
        await fe.stop()
    assert [m["text"] for m in wecom.sent_to(WANG)] == ["只发不收"]


async def test_the_registry_wires_the_adapter(wecom: FakeWeCom) -> None:
    from coordbot.channels import registry
    from coordbot.channels.wecom import WeComChannel, WeComFrontend

    from .conftest import wecom_settings

    settings = wecom_settings(wecom)
    [adapter] = [a for a in registry.configured(settings) if a.name == "wecom"]
    assert adapter.frontend is not None
    fe = adapter.frontend(settings, Recorder())
    assert isinstance(fe, WeComFrontend) and [r.path for r in fe.webhook_routes()] == ["/wecom/callback"] * 2
    await fe.stop()
    async with adapter.open_sender(settings) as sender:
        assert isinstance(sender, WeComChannel)
        await sender.send(Outbound(WANG, "一次性"))
    assert wecom.sent_to(WANG)[-1]["text"] == "一次性"
