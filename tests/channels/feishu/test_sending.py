"""Sending through the Open Platform: rendering, splitting, tokens, cards, files, errors, uuid, rate limits."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ContentRejectedError,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
)
from coordbot.channels.feishu import MAX_TEXT, FeishuChannel, open_sender
from coordbot.scheduling.engine import send_with_retry
from coordbot.testing.fake_feishu import FakeFeishu

from .conftest import GROUP, HIDDEN, WANG, ZHAO, feishu_settings

STATUS = (
    (Button("✅ 已完成", "done", "o17"), Button("🟢 正常推进", "on_track", "o17")),
    (Button("🔴 受阻", "blocked", "o17"),),
)


async def test_html_becomes_a_post_with_styles_links_and_code(channel: FeishuChannel, fs: FakeFeishu) -> None:
    text = (
        '<b>任务2.1</b> 加大&amp;保护\n请 <i>本周</i> <u>报送</u> <s>旧</s> <a href="https://x.cn/a?b=1">说明</a>\n'
        "<pre>x = 1</pre>"
    )
    delivery = await channel.send(Outbound(WANG, text))
    [msg] = fs.sent_to(WANG)
    assert delivery.ref == msg["message_id"] and delivery.channel == "feishu"
    assert msg["msg_type"] == "post" and msg["receive_id_type"] == "open_id"
    para = msg["content"]["zh_cn"]["content"]
    assert para[0][0] == {"tag": "text", "text": "任务2.1", "style": ["bold"]}
    assert para[0][1] == {"tag": "text", "text": " 加大&保护"}
    styles = {e["text"]: e.get("style") for e in para[1]}
    assert styles["本周"] == ["italic"] and styles["报送"] == ["underline"] and styles["旧"] == ["lineThrough"]
    assert {"tag": "a", "href": "https://x.cn/a?b=1", "text": "说明"} in para[1]
    assert para[2] == [{"tag": "code_block", "language": "PLAIN_TEXT", "text": "x = 1"}]


async def test_plain_text_goes_as_text_and_groups_by_chat_id(channel: FeishuChannel, fs: FakeFeishu) -> None:
    await channel.send(Outbound(WANG, "本周进展如何？"))
    await channel.send(Outbound(GROUP, "各单位请报送"))
    assert [(m["msg_type"], m["content"]) for m in fs.sent_to(WANG)] == [("text", {"text": "本周进展如何？"})]
    [g] = fs.sent_to(GROUP)
    assert g["receive_id_type"] == "chat_id"


async def test_long_text_is_split_at_lines_within_the_body_limit(channel: FeishuChannel, fs: FakeFeishu) -> None:
    lines = [f"<b>第{i}行</b> " + "进展情况说明" * 40 for i in range(200)]
    await channel.send(Outbound(WANG, "\n".join(lines)))
    parts = fs.sent_to(WANG)
    assert len(parts) > 1
    got = [line for p in parts for line in p["text"].split("\n")]
    assert got == [f"第{i}行 " + "进展情况说明" * 40 for i in range(200)]  # whole lines, none broken or lost
    for p in parts:
        assert len(p["text"]) <= MAX_TEXT
        assert all(e["style"] == ["bold"] for para in p["content"]["zh_cn"]["content"] for e in para[:1])


async def test_one_huge_line_is_cut_between_characters(channel: FeishuChannel, fs: FakeFeishu) -> None:
    await channel.send(Outbound(WANG, "<b>" + "汉" * 25_000 + "</b>"))
    parts = fs.sent_to(WANG)
    assert "".join(p["text"] for p in parts) == "汉" * 25_000
    assert len(parts) == 5


async def test_the_token_is_fetched_once_and_renewed_when_refused(channel: FeishuChannel, fs: FakeFeishu) -> None:
    await channel.send(Outbound(WANG, "一"))
    await channel.send(Outbound(WANG, "二"))
    assert fs.token_requests == 1
    fs.expire_tokens()  # the platform no longer takes it (99991663): renewed, the send does not fail
    await channel.send(Outbound(WANG, "三"))
    assert fs.token_requests == 2
    assert [m["text"] for m in fs.sent_to(WANG)] == ["一", "二", "三"]
    assert [c[3] for c in fs.calls if c[1] == "messages"] == [0, 0, 99991663, 0]


async def test_concurrent_sends_share_one_token_request(channel: FeishuChannel, fs: FakeFeishu) -> None:
    await asyncio.gather(*(channel.send(Outbound(u, "并发")) for u in (WANG, ZHAO, GROUP)))
    assert fs.token_requests == 1


async def test_a_token_refused_again_after_renewal_is_an_auth_error(channel: FeishuChannel, fs: FakeFeishu) -> None:
    fs.fail_next(2, 99991663, msg="Invalid access token for authorization.")
    with pytest.raises(ChannelAuthError):
        await channel.send(Outbound(WANG, "x"))
    assert fs.token_requests == 2


async def test_a_wrong_app_secret_is_an_auth_error(fs: FakeFeishu) -> None:
    from coordbot.core.config import Secret

    async with open_sender(feishu_settings(fs, feishu_app_secret=Secret("wrong"))) as ch:
        with pytest.raises(ChannelAuthError, match="10014"):
            await ch.send(Outbound(WANG, "x"))


async def test_buttons_make_a_card_with_an_action_module_per_row(channel: FeishuChannel, fs: FakeFeishu) -> None:
    await channel.send(Outbound(WANG, "<b>任务2.1</b> 请报送本周进展", buttons=STATUS))
    [card] = fs.sent_to(WANG)
    assert card["msg_type"] == "interactive"
    assert "schema" not in card["content"]  # card JSON 1.0: 2.0 has no action module
    assert card["content"]["elements"][0] == {
        "tag": "div",
        "text": {"tag": "lark_md", "content": "**任务2.1** 请报送本周进展"},
    }
    assert [e["tag"] for e in card["content"]["elements"]] == ["div", "action", "action"]
    assert card["buttons"] == [
        ("✅ 已完成", {"action": "done:o17"}),
        ("🟢 正常推进", {"action": "on_track:o17"}),
        ("🔴 受阻", {"action": "blocked:o17"}),
    ]


async def test_a_document_is_uploaded_and_sent_as_a_file(channel: FeishuChannel, fs: FakeFeishu) -> None:
    data = b"PK\x03\x04 docx bytes" * 100
    delivery = await channel.send(Outbound(WANG, "本周简报见附件", document=("简报.docx", data)))
    text, file_msg = fs.sent_to(WANG)
    assert text["text"] == "本周简报见附件"
    assert file_msg["msg_type"] == "file" and delivery.ref == file_msg["message_id"]
    assert file_msg["file"]["data"] == data and file_msg["file"]["file_name"] == "简报.docx"
    assert file_msg["file"]["file_type"] == "stream"


@pytest.mark.parametrize(
    ("address", "code", "status", "error"),
    [
        (HIDDEN, None, None, PermanentChannelError),  # 230013 outside the availability
        (WANG, 230002, 400, PermanentChannelError),
        (WANG, 230053, 400, PermanentChannelError),
        (WANG, 230025, 400, ContentRejectedError),
        (WANG, 230001, 400, ContentRejectedError),
        (WANG, 230099, 400, ContentRejectedError),
        (WANG, 99991672, 400, ChannelAuthError),
        (WANG, 230020, 400, TransientChannelError),
        (WANG, 99991400, 429, TransientChannelError),
        (WANG, 11232, 400, TransientChannelError),
    ],
)
async def test_error_codes_map_onto_the_engine_outcomes(
    channel: FeishuChannel,
    fs: FakeFeishu,
    address: str,
    code: int | None,
    status: int | None,
    error: type[Exception],
) -> None:
    if code is not None:
        fs.fail_next(1, code, status=status or 400)
    with pytest.raises(error) as caught:
        await channel.send(Outbound(address, "x"))
    if error is PermanentChannelError:
        assert caught.value.address_problem  # type: ignore[attr-defined]
    if error is ContentRejectedError or error is ChannelAuthError:
        assert not caught.value.address_problem  # type: ignore[attr-defined]


async def test_429_honours_the_reset_header(channel: FeishuChannel, fs: FakeFeishu) -> None:
    fs.fail_next(1, 99991400, status=429)
    with pytest.raises(TransientChannelError) as caught:
        await channel.send(Outbound(WANG, "x"))
    assert caught.value.retry_after == 1.0


async def test_an_outage_is_transient(channel: FeishuChannel, fs: FakeFeishu) -> None:
    fs.outage()
    with pytest.raises(TransientChannelError):
        await channel.send(Outbound(WANG, "x"))
    fs.outage(False)
    await channel.send(Outbound(WANG, "x"))


async def test_a_retry_after_a_lost_answer_is_not_sent_twice(channel: FeishuChannel, fs: FakeFeishu) -> None:
    fs.lose_next_answer()  # Feishu sent it, the answer never arrived: the engine's retry reuses the uuid
    delivery = await send_with_retry(channel, Outbound(WANG, "<b>提醒</b> 请报送", buttons=STATUS))
    [msg] = fs.sent_to(WANG)
    assert delivery.ref == msg["message_id"]
    assert len([c for c in fs.calls if c[1] == "messages"]) == 2


async def test_the_same_text_sent_again_later_is_a_new_message(channel: FeishuChannel, fs: FakeFeishu) -> None:
    await channel.send(Outbound(WANG, "已撤销任务2.1"))
    await channel.send(Outbound(WANG, "已撤销任务2.1"))
    first, second = fs.sent_to(WANG)
    assert first["uuid"] != second["uuid"] and len(first["uuid"]) <= 50


async def test_sends_keep_the_per_user_and_app_limits(channel: FeishuChannel, fs: FakeFeishu) -> None:
    start = time.monotonic()
    await asyncio.gather(*(channel.send(Outbound(WANG, f"第{i}条")) for i in range(12)))
    elapsed = time.monotonic() - start
    assert fs.rate_limited == 0
    assert elapsed >= 2.0  # 5 per second to one person: 12 need more than two seconds
    assert sorted(m["text"] for m in fs.sent_to(WANG)) == sorted(f"第{i}条" for i in range(12))


async def test_a_card_press_value_is_json_in_the_content(channel: FeishuChannel, fs: FakeFeishu) -> None:
    await channel.send(Outbound(WANG, "x", buttons=STATUS))
    body = json.loads(fs.messages[-1]["content"]["elements"][1]["actions"][0]["value"]["action"].join(['"', '"']))
    assert body == "done:o17"


async def test_a_fan_out_keeps_the_app_limit_of_50_per_second(channel: FeishuChannel, fs: FakeFeishu) -> None:
    people = [f"ou_{i:032x}" for i in range(40)]
    for p in people:
        fs.add_user(p)
    start = time.monotonic()
    await asyncio.gather(*(channel.send(Outbound(people[i % 40], f"提醒{i}")) for i in range(120)))
    elapsed = time.monotonic() - start
    assert fs.rate_limited == 0 and len(fs.messages) == 120
    assert elapsed >= 2.0  # 120 at 50 per second: the third window opens two seconds after the first
