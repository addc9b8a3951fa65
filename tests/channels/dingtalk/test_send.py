"""Sending through the fake DingTalk: markdown and its split, the token's life, numbered options, files, groups,
every class of error, and the QPS limit kept."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ContentRejectedError,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
)
from coordbot.channels.dingtalk import MAX_MARKDOWN_CHARS, DingTalkChannel
from coordbot.testing.fake_dingtalk import FakeDingTalk, RateLimits

from .conftest import APP_KEY, APP_SECRET, GROUP, WANG, ZHAO

STATUS = (
    (Button("✅ 已完成", "done", "o7"), Button("🟢 正常推进", "on_track", "o7")),
    (Button("🔴 受阻", "blocked", "o7"),),
)


async def test_markdown_message_reaches_the_user(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    delivery = await channel.send(Outbound(WANG, "<b>任务2.1 加大行政保护力度</b>\n请报送本周进展"))
    [msg] = dt.sent_to(WANG)
    assert msg["msgKey"] == "sampleMarkdown"
    assert msg["param"] == {
        "title": "任务2.1 加大行政保护力度",
        "text": "**任务2.1 加大行政保护力度**  \n请报送本周进展",
    }
    assert (delivery.channel, delivery.ref) == ("dingtalk", msg["processQueryKey"])


async def test_the_request_is_dingtalks_shape(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    seen: list[dict[str, object]] = []
    original = dt._message

    def spy(body: dict[str, object]) -> object:
        seen.append(body)
        return original(body)

    dt._message = spy  # type: ignore[method-assign,assignment]
    await channel.send(Outbound(WANG, "你好"))
    [body] = seen
    assert body["robotCode"] == APP_KEY and body["userIds"] == [WANG] and body["msgKey"] == "sampleMarkdown"
    assert isinstance(body["msgParam"], str) and json.loads(body["msgParam"]) == {"title": "你好", "text": "你好"}


async def test_a_long_message_goes_out_in_parts_in_order(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    text = "\n".join(f"{i:04d} " + "本周完成了检查工作" * 20 for i in range(120))
    delivery = await channel.send(Outbound(WANG, text, buttons=STATUS))
    sent = dt.sent_to(WANG)
    assert len(sent) > 1 and all(len(m["text"]) <= MAX_MARKDOWN_CHARS for m in sent)
    joined = "  \n".join(m["text"] for m in sent)
    assert joined.index("0000 ") < joined.index("0119 ") < joined.index("1. ✅ 已完成")
    assert sent[-1]["text"].endswith("3. 🔴 受阻")  # the options close the last part
    assert delivery.ref == sent[-1]["processQueryKey"]


async def test_the_token_is_cached_and_fetched_once_for_concurrent_senders(
    channel: DingTalkChannel, dt: FakeDingTalk
) -> None:
    await asyncio.gather(*(channel.send(Outbound(WANG, f"第{i}条")) for i in range(10)))
    await channel.send(Outbound(ZHAO, "再一条"))
    assert dt.token_requests == 1 and len(dt.sent) == 11


async def test_an_expired_token_is_replaced_without_failing_the_send(
    channel: DingTalkChannel, dt: FakeDingTalk
) -> None:
    await channel.send(Outbound(WANG, "一"))
    dt.expire_tokens()  # DingTalk now answers InvalidAuthentication for the cached token
    await channel.send(Outbound(WANG, "二"))
    assert dt.token_requests == 2
    assert [m["text"] for m in dt.sent_to(WANG)] == ["一", "二"]
    assert [c[3] for c in dt.calls if c[1].endswith("batchSend")] == ["", "InvalidAuthentication", ""]


async def test_a_token_refused_twice_is_an_auth_error(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    dt.fail_next(2, "InvalidAuthentication", status=400, message="不合法的access_token")
    with pytest.raises(ChannelAuthError):
        await channel.send(Outbound(WANG, "x"))
    assert dt.token_requests == 2


async def test_the_token_is_renewed_before_it_expires(dt: FakeDingTalk) -> None:
    dt.token_ttl = 301  # less than the 300 s margin plus a second: each token is renewed at half its life
    ch = DingTalkChannel(app_key=APP_KEY, app_secret=APP_SECRET, base_url=dt.url, oapi_url=dt.url)
    try:
        await ch.send(Outbound(WANG, "a"))
        ch._token.expires_at = time.monotonic() - 1  # as if 150 s had passed
        await ch.send(Outbound(WANG, "b"))
    finally:
        await ch.close()
    assert dt.token_requests == 2
    assert not [c for c in dt.calls if c[3] == "InvalidAuthentication"]  # never used a token DingTalk refuses


async def test_numbered_options_and_the_number_that_presses_one(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    await channel.send(Outbound(WANG, "<b>任务2.1</b> 请报送进展", buttons=STATUS))
    [msg] = dt.sent_to(WANG)
    assert msg["text"].split("  \n")[-4:] == ["请回复数字选择：", "1. ✅ 已完成", "2. 🟢 正常推进", "3. 🔴 受阻"]
    assert channel.choices.press(WANG, "2") == STATUS[0][1]
    assert channel.choices.press(WANG, "回复3") == STATUS[1][0]
    assert channel.choices.press(ZHAO, "2") is None  # options are per address
    assert channel.choices.press(WANG, "4") is None


async def test_a_document_is_uploaded_and_sent_as_a_file(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    content = b"PK\x03\x04 fake docx bytes" * 100
    delivery = await channel.send(Outbound(WANG, "本周简报见附件", document=("周报-2026-03-02.docx", content)))
    text_msg, file_msg = dt.sent_to(WANG)
    assert text_msg["text"] == "本周简报见附件"
    assert file_msg["msgKey"] == "sampleFile" and file_msg["file"] == content
    assert file_msg["param"]["fileName"] == "周报-2026-03-02.docx" and file_msg["param"]["fileType"] == "docx"
    assert delivery.ref == file_msg["processQueryKey"]


async def test_upload_with_an_expired_token_is_retried(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    await channel.send(Outbound(WANG, "先发一条"))
    dt.expire_tokens()
    await channel.send(Outbound(WANG, "", document=("a.pdf", b"%PDF-1.4")))
    assert dt.sent_to(WANG)[-1]["msgKey"] == "sampleFile" and dt.token_requests == 2


async def test_a_file_type_dingtalk_refuses_is_content_rejected(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    with pytest.raises(ContentRejectedError):
        await channel.send(Outbound(WANG, "", document=("notes.exe", b"MZ")))


async def test_a_group_conversation_goes_through_the_group_api(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    await channel.send(Outbound(GROUP, "本周汇总"))
    [msg] = dt.sent_to(GROUP)
    assert msg["text"] == "本周汇总"
    assert [c[1] for c in dt.calls] == ["/v1.0/oauth2/accessToken", "/v1.0/robot/groupMessages/send"]


# ---- errors ----


async def test_an_unknown_user_is_a_permanent_address_problem(channel: DingTalkChannel) -> None:
    with pytest.raises(PermanentChannelError) as info:
        await channel.send(Outbound("left.the.company", "x"))
    assert type(info.value) is PermanentChannelError and info.value.address_problem


async def test_an_unknown_group_is_a_permanent_address_problem(channel: DingTalkChannel) -> None:
    with pytest.raises(PermanentChannelError) as info:
        await channel.send(Outbound("cidGone==", "x"))
    assert info.value.address_problem


async def test_a_flow_controlled_user_is_transient(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    dt.flow_control(WANG)
    with pytest.raises(TransientChannelError) as info:
        await channel.send(Outbound(WANG, "x"))
    assert info.value.retry_after and info.value.retry_after > 0
    assert dt.sent_to(WANG) == []
    await channel.send(Outbound(WANG, "x"))  # next time it goes through
    assert len(dt.sent_to(WANG)) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "Forbidden.AccessDenied.QpsLimitForApi"),
        (403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
        (429, "Throttling"),
    ],
)
async def test_throttling_is_transient_with_retry_after(
    channel: DingTalkChannel, dt: FakeDingTalk, status: int, code: str
) -> None:
    dt.fail_next(1, code, status=status)
    with pytest.raises(TransientChannelError) as info:
        await channel.send(Outbound(WANG, "x"))
    assert info.value.retry_after == 1.0


async def test_server_errors_and_outages_are_transient(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    dt.fail_next(1, "ServiceUnavailable", status=503)
    with pytest.raises(TransientChannelError):
        await channel.send(Outbound(WANG, "x"))
    dt.outage()
    with pytest.raises(TransientChannelError):
        await channel.send(Outbound(WANG, "x"))
    dt.outage(False)
    await channel.send(Outbound(WANG, "x"))


async def test_an_unreachable_server_is_transient(dt: FakeDingTalk) -> None:
    ch = DingTalkChannel(app_key=APP_KEY, app_secret=APP_SECRET, base_url="http://127.0.0.1:9", oapi_url=dt.url)
    try:
        with pytest.raises(TransientChannelError):
            await ch.send(Outbound(WANG, "x"))
    finally:
        await ch.close()


async def test_wrong_app_credentials_are_an_auth_error(dt: FakeDingTalk) -> None:
    ch = DingTalkChannel(app_key=APP_KEY, app_secret="wrong", base_url=dt.url, oapi_url=dt.url)
    try:
        with pytest.raises(ChannelAuthError) as info:
            await ch.send(Outbound(WANG, "x"))
    finally:
        await ch.close()
    assert not info.value.address_problem and "invalidClientIdOrSecret" in str(info.value)
    assert "wrong" not in str(info.value)  # the secret is not in the message


async def test_a_wrong_robot_code_is_an_auth_error(dt: FakeDingTalk) -> None:
    ch = DingTalkChannel(app_key=APP_KEY, app_secret=APP_SECRET, robot_code="dingother", base_url=dt.url)
    try:
        with pytest.raises(ChannelAuthError):
            await ch.send(Outbound(WANG, "x"))
    finally:
        await ch.close()


async def test_a_missing_permission_is_an_auth_error(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    dt.fail_next(1, "Forbidden.AccessDenied.AccessTokenPermissionDenied", status=403, message="没有调用该接口的权限")
    with pytest.raises(ChannelAuthError):
        await channel.send(Outbound(WANG, "x"))


async def test_a_refused_message_is_content_rejected(channel: DingTalkChannel, dt: FakeDingTalk) -> None:
    dt.fail_next(1, "invalidParameter.msgParam.invalid", status=400, message="msgParam长度超过限制")
    with pytest.raises(ContentRejectedError) as info:
        await channel.send(Outbound(WANG, "x"))
    assert not info.value.address_problem


async def test_an_empty_message_is_content_rejected(channel: DingTalkChannel) -> None:
    with pytest.raises(ContentRejectedError):
        await channel.send(Outbound(WANG, ""))


# ---- the QPS limit ----


async def test_a_burst_is_paced_under_dingtalks_qps(dt: FakeDingTalk) -> None:
    dt.rate_limits = RateLimits(enabled=True, qps=20)
    ch = DingTalkChannel(app_key=APP_KEY, app_secret=APP_SECRET, base_url=dt.url, oapi_url=dt.url)
    started = time.monotonic()
    try:
        await asyncio.gather(*(ch.send(Outbound(WANG if i % 2 else ZHAO, f"提醒{i}")) for i in range(30)))
    finally:
        await ch.close()
    elapsed = time.monotonic() - started
    assert dt.rate_limited == 0 and len(dt.sent) == 30
    assert 29 / 20 <= elapsed < 29 / 20 * 1.5  # paced, and not much slower than the limit


async def test_the_fake_refuses_an_unpaced_burst(dt: FakeDingTalk) -> None:
    """The test above could fail: without pacing, DingTalk's 20 per second is exceeded."""
    dt.rate_limits = RateLimits(enabled=True, qps=20)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{dt.url}/v1.0/oauth2/accessToken", json={"appKey": APP_KEY, "appSecret": APP_SECRET}
        ) as r:
            token = (await r.json())["accessToken"]
        body = {
            "robotCode": APP_KEY,
            "userIds": [WANG],
            "msgKey": "sampleMarkdown",
            "msgParam": json.dumps({"title": "t", "text": "x"}),
        }

        async def post() -> int:
            async with http.post(
                f"{dt.url}/v1.0/robot/oToMessages/batchSend", json=body, headers={"x-acs-dingtalk-access-token": token}
            ) as r:
                return r.status

        statuses = await asyncio.gather(*(post() for _ in range(25)))
    assert statuses.count(200) == 20 and statuses.count(403) == 5 and dt.rate_limited == 5
