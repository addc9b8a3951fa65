"""Receiving: the /feishu/events endpoint's checks (signature, replay window, token, decryption), the URL
verification, messages and card presses as Inbounds, fast acknowledgement."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from coordbot.channels.base import Button, Inbound, Outbound, Reply
from coordbot.channels.feishu import CALLBACK_WAIT, FeishuChannel, FeishuFrontend, decrypt, signature
from coordbot.testing.fake_feishu import FakeFeishu

from .conftest import ENCRYPT_KEY, GROUP, WANG, Recorder


def test_feishu_published_decryption_vector() -> None:
    # open.feishu.cn event-subscription-guide ... encrypt-key-encryption-configuration-case: "test key"
    assert decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", "test key") == "hello world"


def test_signature_is_sha256_of_timestamp_nonce_key_and_raw_body() -> None:
    import hashlib

    body = b'{"encrypt":"abc"}'
    expected = hashlib.sha256(b"1700000000" + b"n0nce" + b"k" + body).hexdigest()
    assert signature("1700000000", "n0nce", "k", body) == expected


async def test_url_verification_echoes_the_challenge(frontend: FeishuFrontend, fs: FakeFeishu) -> None:
    status, answer = await fs.verify_url()
    assert status == 200 and answer == {"challenge": fs.events_sent[-1]["challenge"]}
    status, answer = await fs.verify_url(encrypt=False)
    assert status == 200 and answer == {"challenge": fs.events_sent[-1]["challenge"]}


async def test_url_verification_with_a_wrong_token_is_refused(frontend: FeishuFrontend, fs: FakeFeishu) -> None:
    status, _ = await fs.verify_url(token="someone-else")
    assert status == 401


async def test_a_message_becomes_an_inbound_and_the_reply_goes_back_by_open_id(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder
) -> None:
    recorder.reply = Reply("<b>已记录</b>：任务2.1")
    status, answer = await fs.user_sends(WANG, "本周开展检查2项", reply_to="om_reminder_1")
    assert (status, answer) == (200, {"msg": "success"})
    await frontend.drain()
    [inbound] = recorder.seen
    event = fs.events_sent[-1]
    assert inbound == Inbound(
        channel="feishu",
        external_id=event["header"]["event_id"],
        chat_id=WANG,
        sender_id=WANG,
        text="本周开展检查2项",
        reply_to_ref="om_reminder_1",
        message_ref=event["event"]["message"]["message_id"],
    )
    [reply] = fs.sent_to(WANG)
    assert reply["msg_type"] == "post" and reply["text"] == "已记录：任务2.1"


async def test_a_group_message_mentioning_the_bot(frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder) -> None:
    await fs.user_sends(WANG, "任务2.2 本周新增试点5家", chat_id=GROUP, mention_bot=True)
    await frontend.drain()
    [inbound] = recorder.seen
    assert (inbound.chat_id, inbound.sender_id, inbound.is_group) == (GROUP, WANG, True)
    assert inbound.text == "任务2.2 本周新增试点5家"


async def test_binding_words_and_commands(frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder) -> None:
    await fs.user_sends(WANG, "绑定 AbCdEf123456")
    await fs.user_sends(WANG, "/tasks 本周")
    await frontend.drain()
    bind, tasks = recorder.seen
    assert (bind.kind, bind.command, bind.start_code) == ("command", "start", "AbCdEf123456")
    assert (tasks.kind, tasks.command, tasks.args) == ("command", "tasks", "本周")


async def test_a_redelivered_event_is_handled_once(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder
) -> None:
    event = fs.message_event(WANG, "一次")
    assert (await fs.push(event))[0] == 200
    assert (await fs.push(event))[0] == 200
    await frontend.drain()
    assert len(recorder.seen) == 1


async def test_a_wrong_signature_is_refused_and_logged_without_the_body(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="coordbot.channels.feishu")
    status, _ = await fs.push(fs.message_event(WANG, "机密内容"), tamper=True)
    assert status == 401
    await frontend.drain()
    assert recorder.seen == []
    assert "wrong signature" in caplog.text
    assert "encrypt" not in caplog.text and "机密" not in caplog.text


async def test_a_stale_timestamp_is_refused(frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder) -> None:
    old = str(int(time.time()) - 600)
    status, _ = await fs.push(fs.message_event(WANG, "重放"), timestamp=old)
    assert status == 401
    future = str(int(time.time()) + 600)
    assert (await fs.push(fs.message_event(WANG, "重放"), timestamp=future))[0] == 401
    assert recorder.seen == []


async def test_unsigned_or_plaintext_events_are_refused(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder
) -> None:
    assert (await fs.push(fs.message_event(WANG, "无签名"), sign=False))[0] == 401
    assert (await fs.push(fs.message_event(WANG, "明文"), encrypt=False, sign=False))[0] == 401
    assert recorder.seen == []


async def test_an_event_encrypted_with_another_key_is_refused(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder
) -> None:
    fs.encrypt_key = "not-" + ENCRYPT_KEY  # signature and encryption both with the wrong key
    assert (await fs.push(fs.message_event(WANG, "x")))[0] == 401
    assert recorder.seen == []


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"encrypt": "bm90IGFlcw=="}', b'{"encrypt": "%%%"}', b"[1, 2]"],
)
async def test_a_malformed_but_authentic_body_is_acknowledged(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder, raw: bytes
) -> None:
    status, _ = await fs.push({}, raw=raw)
    assert status == 200  # signed by Feishu: acknowledged so it is not redelivered forever
    assert recorder.seen == []


async def test_an_authentic_event_with_a_broken_inner_shape_is_acknowledged(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder
) -> None:
    event = fs.message_event(WANG, "x")
    event["event"]["message"]["content"] = "{broken"
    assert (await fs.push(event))[0] == 200
    assert recorder.seen == []


async def test_a_card_press_is_a_callback_with_the_buttons_action_and_a_toast(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder
) -> None:
    await frontend.channel.send(Outbound(WANG, "任务2.1 请报送", buttons=((Button("🔴 受阻", "blocked", "o42"),),)))
    [card] = fs.sent_to(WANG)
    recorder.reply = Reply("已记录：任务2.1，受阻", alert="已记录：任务2.1，受阻")
    status, answer = await fs.user_presses(WANG, card, 0)
    assert status == 200 and answer == {"toast": {"type": "info", "content": "已记录：任务2.1，受阻"}}
    await frontend.drain()
    [press] = recorder.seen
    assert (press.kind, press.callback_action, press.callback_ref) == ("callback", "blocked", "o42")
    assert (press.sender_id, press.chat_id, press.message_ref, press.is_group) == (
        WANG,
        WANG,
        card["message_id"],
        False,
    )
    assert fs.sent_to(WANG)[-1]["text"] == "已记录：任务2.1，受阻"


async def test_a_slow_press_is_answered_in_time_and_its_reply_follows(
    frontend: FeishuFrontend, fs: FakeFeishu, recorder: Recorder, channel: FeishuChannel
) -> None:
    async def slow(inbound: Inbound) -> Reply:
        await asyncio.sleep(CALLBACK_WAIT + 0.3)
        return Reply("处理完毕", alert="处理完毕")

    recorder.answer = slow
    await frontend.channel.send(Outbound(WANG, "x", buttons=((Button("✅ 已完成", "done", "o1"),),)))
    start = time.monotonic()
    status, answer = await fs.user_presses(WANG, fs.sent_to(WANG)[0], 0)
    assert status == 200 and answer == {} and time.monotonic() - start < 3.0
    await fs.wait_for_messages(WANG, 2)
    assert fs.sent_to(WANG)[-1]["text"] == "处理完毕"
