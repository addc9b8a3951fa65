"""The signed HTTP callback: what a robot message becomes, what is refused (wrong sign, stale or replayed
headers) and what is acknowledged without being handled (authentic but unreadable bodies)."""

from __future__ import annotations

import json
import logging
import time

import pytest

from coordbot.channels.base import Button, Inbound, Outbound, Reply
from coordbot.channels.dingtalk import DingTalkChannel, DingTalkFrontend
from coordbot.testing.fake_dingtalk import FakeDingTalk, sign

from .conftest import APP_KEY, APP_SECRET, GROUP, WANG, ServeFrontend, dingtalk_settings

OPTIONS = ((Button("✅ 已完成", "done", "o42"), Button("🔴 受阻", "blocked", "o42")),)


class Recorder:
    """The ``handle`` the front end is given: keeps every Inbound and answers with a fixed reply."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.seen: list[Inbound] = []
        self.reply = reply

    async def __call__(self, inbound: Inbound) -> Reply | None:
        self.seen.append(inbound)
        return self.reply


@pytest.fixture
async def setup(dt: FakeDingTalk, serve_frontend: ServeFrontend) -> tuple[DingTalkFrontend, Recorder]:
    recorder = Recorder(Reply("收到"))
    channel = DingTalkChannel(app_key=APP_KEY, app_secret=APP_SECRET, base_url=dt.url, oapi_url=dt.url, qps=1000)
    fe = await serve_frontend(DingTalkFrontend(dingtalk_settings(dt), recorder, channel=channel))
    return fe, recorder


async def test_a_text_message_becomes_an_inbound_and_is_answered(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk
) -> None:
    fe, recorder = setup
    body = await dt.user_sends(WANG, "本周开展双随机检查2项")
    await fe.drain()
    [inbound] = recorder.seen
    assert inbound == Inbound(
        channel="dingtalk",
        external_id=body["msgId"],
        chat_id=WANG,
        sender_id=WANG,
        sender_name="王敏",
        kind="message",
        text="本周开展双随机检查2项",
    )
    assert [m["text"] for m in dt.sent_to(WANG)] == ["收到"]


async def test_bind_code_is_a_start_command(setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk) -> None:
    fe, recorder = setup
    await dt.user_sends(WANG, "绑定 Ab3dEf6hJk")
    await dt.user_sends(WANG, "/tasks 2.1")
    await fe.drain()
    bind, tasks = recorder.seen
    assert (bind.kind, bind.command, bind.start_code) == ("command", "start", "Ab3dEf6hJk")
    assert (tasks.kind, tasks.command, tasks.args) == ("command", "tasks", "2.1")


async def test_a_group_message_answers_in_the_group(setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk) -> None:
    fe, recorder = setup
    await dt.user_sends(WANG, "/tasks", conversation_id=GROUP)
    await fe.drain()
    [inbound] = recorder.seen
    assert (inbound.chat_id, inbound.sender_id, inbound.is_group, inbound.text) == (GROUP, WANG, True, "/tasks")
    assert [m["text"] for m in dt.sent_to(GROUP)] == ["收到"] and dt.sent_to(WANG) == []


async def test_the_number_reply_presses_the_numbered_option(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk
) -> None:
    fe, recorder = setup
    await fe.channel.send(Outbound(WANG, "<b>任务2.1</b> 请报送进展", buttons=OPTIONS))
    [offer] = dt.sent_to(WANG)
    await dt.user_presses(WANG, offer, 1)
    await dt.user_sends(WANG, "9")  # no such option: plain text
    await fe.drain()
    pressed, nine = recorder.seen
    assert (pressed.kind, pressed.callback_action, pressed.callback_ref, pressed.text) == (
        "callback",
        "blocked",
        "o42",
        "2",
    )
    assert (nine.kind, nine.text) == ("message", "9")


async def test_an_alert_without_text_is_said_in_the_chat(dt: FakeDingTalk, serve_frontend: ServeFrontend) -> None:
    channel = DingTalkChannel(app_key=APP_KEY, app_secret=APP_SECRET, base_url=dt.url, oapi_url=dt.url, qps=1000)
    fe = await serve_frontend(
        DingTalkFrontend(dingtalk_settings(dt), Recorder(Reply("", alert="已记录")), channel=channel)
    )
    await dt.user_sends(WANG, "1")
    await fe.drain()
    assert [m["text"] for m in dt.sent_to(WANG)] == ["已记录"]


# ---- refused before the body is read ----


async def test_a_wrong_sign_is_refused_and_logged_without_the_body(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    _fe, recorder = setup
    body = dt.message_body(WANG, "机密内容 绑定 Ab3dEf6hJk")
    with caplog.at_level(logging.DEBUG):
        status, _ = await dt.post_callback(body, sign_value=sign(str(int(time.time() * 1000)), "not-the-secret"))
    assert status == 403 and recorder.seen == []
    assert "wrong sign" in caplog.text and "机密内容" not in caplog.text and APP_SECRET not in caplog.text


async def test_a_missing_sign_is_refused(setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk) -> None:
    status, _ = await dt.post_callback(dt.message_body(WANG, "x"), sign_value="")
    assert status == 403


@pytest.mark.parametrize("offset_ms", [-3_600_000 - 5_000, 3_600_000 + 5_000])
async def test_a_timestamp_outside_the_hour_is_refused(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk, offset_ms: int
) -> None:
    _fe, recorder = setup
    status, _ = await dt.post_callback(dt.message_body(WANG, "x"), timestamp_ms=int(time.time() * 1000) + offset_ms)
    assert status == 403 and recorder.seen == []


async def test_a_timestamp_within_the_hour_is_accepted(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk
) -> None:
    fe, recorder = setup
    status, _ = await dt.post_callback(dt.message_body(WANG, "x"), timestamp_ms=int(time.time() * 1000) - 3_500_000)
    await fe.drain()
    assert status == 200 and len(recorder.seen) == 1


async def test_captured_headers_with_another_body_are_refused(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk
) -> None:
    fe, recorder = setup
    ts = int(time.time() * 1000)
    first = dt.message_body(WANG, "本周进展")
    assert (await dt.post_callback(first, timestamp_ms=ts))[0] == 200
    forged = dt.message_body(WANG, "绑定 Ab3dEf6hJk")
    assert (await dt.post_callback(forged, timestamp_ms=ts))[0] == 403
    assert (await dt.post_callback(first, timestamp_ms=ts))[0] == 200  # DingTalk delivering it again
    await fe.drain()
    assert [i.text for i in recorder.seen] == ["本周进展"]  # handled once


# ---- authentic but unreadable: acknowledged (so DingTalk stops redelivering), logged, not handled ----


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b"[1, 2, 3]",
        json.dumps({"msgtype": "text", "text": {"content": "no ids"}}).encode(),
        json.dumps({"msgId": "m1", "senderStaffId": WANG, "conversationType": "1", "msgtype": "picture"}).encode(),
        json.dumps({"msgId": "m2", "senderStaffId": WANG, "msgtype": "text", "text": "not an object"}).encode(),
    ],
)
async def test_a_malformed_authentic_body_is_acknowledged_and_not_handled(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    fe, recorder = setup
    with caplog.at_level(logging.INFO, logger="coordbot.channels.dingtalk"):
        status, _ = await dt.post_callback(raw)
    await fe.drain()
    assert status == 200 and recorder.seen == []
    assert caplog.records and "no ids" not in caplog.text and "not an object" not in caplog.text


async def test_rich_text_and_voice_recognition_are_read(
    setup: tuple[DingTalkFrontend, Recorder], dt: FakeDingTalk
) -> None:
    fe, recorder = setup
    rich = dt.message_body(WANG, "")
    rich.update(msgtype="richText", content={"richText": [{"text": "本周"}, {"downloadCode": "x"}, {"text": "完成"}]})
    voice = dt.message_body(WANG, "")
    voice.update(msgtype="audio", content={"recognition": "已经完成了", "downloadCode": "y", "duration": 3})
    for body in (rich, voice):
        assert (await dt.post_callback(body))[0] == 200
    await fe.drain()
    assert [i.text for i in recorder.seen] == ["本周完成", "已经完成了"]
