"""Sending through the fake WeCom: message types, splitting, the token, buttons, files and errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ContentRejectedError,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
    decode_button,
)
from coordbot.channels.wecom import MAX_MARKDOWN_BYTES, WeComChannel, channel_from
from coordbot.core.config import Secret
from coordbot.testing.fake_wecom import FakeWeCom

from .conftest import AGENT_ID, OUTSIDER, WANG, ZHAO, wecom_settings

STATUS = (
    (Button("✅ 已完成", "done", "o7"), Button("🟢 正常推进", "on_track", "o7")),
    (Button("🟡 有风险", "at_risk", "o7"), Button("🔴 受阻", "blocked", "o7"), Button("✍️ 填报进展", "report", "o7")),
)


async def test_formatted_text_goes_as_markdown(wecom: FakeWeCom, channel: WeComChannel) -> None:
    delivery = await channel.send(Outbound(WANG, "<b>任务2.1</b> 请报送本周进展"))
    [msg] = wecom.sent_to(WANG)
    assert (msg["msgtype"], msg["agentid"], msg["text"]) == ("markdown", AGENT_ID, "**任务2.1** 请报送本周进展")
    assert delivery.channel == "wecom" and delivery.ref == msg["msgid"]


async def test_plain_text_goes_as_text(wecom: FakeWeCom, channel: WeComChannel) -> None:
    await channel.send(Outbound(WANG, "已记录 &lt;2项&gt;"))
    [msg] = wecom.sent_to(WANG)
    assert (msg["msgtype"], msg["text"]) == ("text", "已记录 <2项>")


async def test_text_only_channel(wecom: FakeWeCom) -> None:
    ch = channel_from(wecom_settings(wecom), markdown=False)
    try:
        await ch.send(Outbound(WANG, '<b>粗</b> <a href="https://x.example">链接</a>'))
    finally:
        await ch.close()
    [msg] = wecom.sent_to(WANG)
    assert (msg["msgtype"], msg["text"]) == ("text", "粗 链接 (https://x.example)")


async def test_long_text_is_split_at_2048_bytes(wecom: FakeWeCom, channel: WeComChannel) -> None:
    lines = [f"<b>第{i}项</b> 本周开展双随机检查，发现问题已整改" for i in range(120)]
    delivery = await channel.send(Outbound(WANG, "\n".join(lines)))
    sent = wecom.sent_to(WANG)
    assert len(sent) > 1
    assert all(m["msgtype"] == "markdown" and len(m["text"].encode()) <= MAX_MARKDOWN_BYTES for m in sent)
    assert "\n".join(m["text"] for m in sent).count("**第") == 120
    assert delivery.ref == sent[-1]["msgid"]
    long_text = "无格式" * 2000  # text is truncated by WeCom over 2048 bytes: we never let it come to that
    await channel.send(Outbound(ZHAO, long_text))
    assert not any(m.get("truncated") for m in wecom.sent_to(ZHAO))
    assert "".join(m["text"] for m in wecom.sent_to(ZHAO)) == long_text


async def test_buttons_go_as_a_button_card(wecom: FakeWeCom, channel: WeComChannel) -> None:
    text = "<b>任务2.1 加大行政保护力度</b>\n请报送本周进展\n专项行动和双随机检查：今年 0/10 项"
    delivery = await channel.send(Outbound(WANG, text, buttons=STATUS))
    [msg] = wecom.sent_to(WANG)
    card = msg["template_card"]
    assert msg["msgtype"] == "template_card" and card["card_type"] == "button_interaction"
    assert card["main_title"]["title"] == "任务2.1 加大行政保护力度"
    assert card["sub_title_text"] == "请报送本周进展\n专项行动和双随机检查：今年 0/10 项"
    assert [b["text"] for b in card["button_list"]] == [b.label for row in STATUS for b in row]
    assert [decode_button(b["key"]) for b in card["button_list"]] == [(b.action, b.ref) for row in STATUS for b in row]
    assert delivery.ref == msg["msgid"]
    await channel.send(Outbound(WANG, text, buttons=STATUS))
    assert wecom.sent_to(WANG)[1]["template_card"]["task_id"] != card["task_id"]  # unique per message


async def test_text_too_long_for_a_card_goes_first(wecom: FakeWeCom, channel: WeComChannel) -> None:
    text = "任务2.1 加大行政保护力度\n" + "本周进展说明，" * 40
    await channel.send(Outbound(WANG, text, buttons=STATUS))
    first, card = wecom.sent_to(WANG)
    assert first["msgtype"] == "text" and first["text"] == text
    assert card["msgtype"] == "template_card"
    assert card["template_card"]["main_title"]["title"] == "任务2.1 加大行政保护力度"


async def test_more_buttons_than_a_card_holds_are_numbered(wecom: FakeWeCom, channel: WeComChannel) -> None:
    picks = tuple((Button(f"1.{i} 任务{i}", "pick", f"i9:1.{i}"),) for i in range(1, 8))
    await channel.send(Outbound(WANG, "是哪一项任务？", buttons=picks))
    [msg] = wecom.sent_to(WANG)
    assert msg["msgtype"] == "text"
    assert msg["text"].splitlines()[:4] == ["是哪一项任务？", "", "请回复数字选择：", "1. 1.1 任务1"]
    pressed = channel.choices.press(WANG, "7")
    assert pressed is not None and (pressed.action, pressed.ref) == ("pick", "i9:1.7")


async def test_an_overlong_button_key_falls_back_to_numbers(wecom: FakeWeCom, channel: WeComChannel) -> None:
    await channel.send(Outbound(WANG, "选择", buttons=((Button("长", "pick", "x" * 1100),),)))
    assert wecom.sent_to(WANG)[0]["msgtype"] == "text"


async def test_file_is_uploaded_then_sent(wecom: FakeWeCom, channel: WeComChannel) -> None:
    content = b"PK\x03\x04 docx bytes" * 10
    delivery = await channel.send(Outbound(WANG, "本周简报", document=("简报.docx", content)))
    text, file = wecom.sent_to(WANG)
    assert text["text"] == "本周简报"
    assert file["msgtype"] == "file" and (file["file_name"], file["file_content"]) == ("简报.docx", content)
    assert delivery.ref == file["msgid"]
    [upload] = wecom.calls_to("media/upload")
    assert upload.params == {"type": "file", "filename": "简报.docx"}


async def test_the_token_is_cached(wecom: FakeWeCom, channel: WeComChannel) -> None:
    for i in range(3):
        await channel.send(Outbound(WANG, f"消息{i}"))
    assert len(wecom.calls_to("gettoken")) == 1
    assert "corpsecret" not in wecom.calls_to("gettoken")[0].params  # the fake logs no secrets either


async def test_an_expired_token_is_renewed_once_for_all(wecom: FakeWeCom, channel: WeComChannel) -> None:
    await channel.send(Outbound(WANG, "第一条"))
    wecom.expire_tokens()  # WeCom ended it early (another process asked for one, or the clock)
    await asyncio.gather(*(channel.send(Outbound(WANG, f"并发{i}")) for i in range(10)))
    assert len(wecom.sent_to(WANG)) == 11
    assert [c.errcode for c in wecom.calls_to("gettoken")] == [0, 0]  # single flight: one renewal
    assert sum(c.errcode == 42001 for c in wecom.calls_to("message/send")) >= 1


async def test_the_token_is_renewed_before_it_expires(wecom: FakeWeCom) -> None:
    wecom.token_lifetime = 2.0
    ch = channel_from(wecom_settings(wecom))
    try:
        await ch.send(Outbound(WANG, "一"))
        await asyncio.sleep(2.05)
        await ch.send(Outbound(WANG, "二"))
    finally:
        await ch.close()
    assert len(wecom.calls_to("gettoken")) == 2
    assert not any(c.errcode == 42001 for c in wecom.calls_to("message/send"))  # renewed before, not after


@pytest.mark.parametrize("code", [40014, 42001, 40001])
async def test_token_codes_refresh_and_retry(wecom: FakeWeCom, channel: WeComChannel, code: int) -> None:
    await channel.send(Outbound(WANG, "一"))
    wecom.fail_next(1, code, path="message/send")
    await channel.send(Outbound(WANG, "二"))
    assert [m["text"] for m in wecom.sent_to(WANG)] == ["一", "二"]
    assert len(wecom.calls_to("gettoken")) == 2


async def test_token_still_refused_after_renewal_is_an_auth_error(wecom: FakeWeCom, channel: WeComChannel) -> None:
    wecom.fail_next(2, 40014, path="message/send")
    with pytest.raises(ChannelAuthError):
        await channel.send(Outbound(WANG, "一"))


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (-1, TransientChannelError),
        (45009, TransientChannelError),
        (45033, TransientChannelError),
        (60011, PermanentChannelError),
        (81013, PermanentChannelError),
        (40013, ChannelAuthError),
        (48002, ChannelAuthError),
        (60020, ChannelAuthError),
        (44004, ContentRejectedError),
        (45002, ContentRejectedError),
    ],
)
async def test_errcodes_map_onto_channel_errors(
    wecom: FakeWeCom, channel: WeComChannel, code: int, error: type[Exception]
) -> None:
    await channel.access_token()
    wecom.fail_next(1, code, path="message/send")
    with pytest.raises(error) as info:
        await channel.send(Outbound(WANG, "一"))
    assert type(info.value) is error  # exactly: an address problem is not content, nor auth
    if error is TransientChannelError:
        assert info.value.retry_after
    assert channel.name == "wecom"


async def test_a_user_outside_the_visible_range_is_unreachable(wecom: FakeWeCom, channel: WeComChannel) -> None:
    with pytest.raises(PermanentChannelError) as info:
        await channel.send(Outbound(OUTSIDER, "一"))
    assert info.value.address_problem
    with pytest.raises(PermanentChannelError):
        await channel.send(Outbound("NoSuchUser", "一"))


async def test_a_wrong_secret_is_an_auth_error(wecom: FakeWeCom) -> None:
    ch = channel_from(wecom_settings(wecom, wecom_secret=Secret("wrong")))
    try:
        with pytest.raises(ChannelAuthError) as info:
            await ch.send(Outbound(WANG, "一"))
    finally:
        await ch.close()
    assert not info.value.address_problem and "wrong" not in str(info.value)


async def test_an_outage_is_transient_and_the_retry_asks_for_the_duplicate_check(
    wecom: FakeWeCom, channel: WeComChannel
) -> None:
    await channel.access_token()
    with wecom.outage(), pytest.raises(TransientChannelError):
        await channel.send(Outbound(WANG, "提醒"))
    await channel.send(Outbound(WANG, "提醒"))
    [retry] = wecom.calls_to("message/send")
    assert retry.params["enable_duplicate_check"] == 1
    await channel.send(Outbound(WANG, "提醒"))  # a later, certain send of the same: no check
    assert "enable_duplicate_check" not in wecom.calls_to("message/send")[-1].params


async def test_the_fake_drops_duplicates_like_wecom(wecom: FakeWeCom, channel: WeComChannel) -> None:
    body = {"touser": WANG, "msgtype": "text", "agentid": AGENT_ID, "text": {"content": "同一条"}}
    token = await channel.access_token()
    for _ in range(2):
        async with channel._http().post(
            f"{wecom.base_url}/cgi-bin/message/send",
            params={"access_token": token},
            data=json.dumps({**body, "enable_duplicate_check": 1}),
        ) as resp:
            assert (await resp.json())["errcode"] == 0
    assert len(wecom.sent_to(WANG)) == 1 and wecom.dropped[0].reason == "duplicate"


async def test_an_empty_message_is_refused_before_sending(wecom: FakeWeCom, channel: WeComChannel) -> None:
    with pytest.raises(ContentRejectedError):
        await channel.send(Outbound(WANG, "  "))
    assert not wecom.calls_to("message/send")


async def test_buttons_without_text_still_make_a_valid_card(wecom: FakeWeCom, channel: WeComChannel) -> None:
    await channel.send(Outbound(WANG, "", buttons=((Button("撤销", "undo", "p3"),),)))
    [msg] = wecom.sent_to(WANG)
    assert msg["template_card"]["main_title"]["title"] == "请回复数字选择："
