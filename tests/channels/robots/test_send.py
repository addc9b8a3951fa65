"""The group-robot adapter against the fake webhooks: sending and rendering, splitting at each platform's
limit, signatures, rate limits, error classes and WeCom's file upload."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import urllib.parse
from typing import Any

import aiohttp
import pytest

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ContentRejectedError,
    NoChannelError,
    Outbound,
    TransientChannelError,
)
from coordbot.channels.robots import (
    FEISHU_BODY_BYTES,
    _hmac_b64,
    dingtalk_sign,
    feishu_sign,
    render_lines,
)
from coordbot.core.config import Settings
from coordbot.scheduling.engine import send_with_retry
from coordbot.testing.fake_robots import FakeRobots

from .conftest import DING_SECRET, DING_TOKEN, SCALE, WECOM_KEY, Opener, write_robots

KINDS = [("wecom_robot", "amr-group"), ("dingtalk_robot", "office-group"), ("feishu_robot", "leaders")]
NOTICE = (
    '<b>督办提醒</b>：任务1.1 <i>完善政策体系</i> 本周五到期，详见 <a href="https://example.gov.cn/t/1.1">任务页</a>。'
)


# ---- signatures: the vendors' recipes, checked against OpenSSL (an implementation independent of ours) ----


def test_signatures_match_known_answers() -> None:
    # DingTalk's own published sample (its login-free signature: HMAC-SHA256 of the timestamp keyed by the
    # secret, base64, URL-encoded) pins the HMAC/base64 primitive both robot signatures are built on.
    assert urllib.parse.quote_plus(_hmac_b64(b"testappSecret", b"1546084445901")) == (
        "HCbG3xNE3vzhO%2Bu7qCUL1jS5hsu2n5r2cFhnTrtyDAE%3D"
    )
    # printf '1700000000000\nSEC0123456789abcdef' | openssl dgst -sha256 -hmac 'SEC0123456789abcdef' -binary | base64
    assert dingtalk_sign("SEC0123456789abcdef", 1700000000000) == "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="
    # printf '' | openssl dgst -sha256 -hmac "$(printf '1700000000\nfeishu-secret')" -binary | base64
    assert feishu_sign("feishu-secret", 1700000000) == "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU="
    # the two platforms put key and message the other way round: the same inputs sign differently
    assert dingtalk_sign("s", 1) != _hmac_b64(b"1\ns", b"")


# ---- sending and rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "robot"), KINDS)
async def test_each_kind_sends_markdown(fake: FakeRobots, sender: Opener, kind: str, robot: str) -> None:
    async with sender(kind) as channel:
        delivery = await channel.send(Outbound(robot, NOTICE))
    assert delivery.channel == kind and delivery.ref.startswith(f"{robot}:")
    [msg] = fake.sent_to(robot)
    assert "**督办提醒**" in msg["text"]
    assert "[任务页](https://example.gov.cn/t/1.1)" in msg["text"]
    assert "<b>" not in msg["text"] and "&" not in msg["text"]
    if kind == "wecom_robot":
        assert msg["msgtype"] == "markdown" and "完善政策体系" in msg["text"]  # no italics in WeCom markdown
        assert "*完善政策体系*" not in msg["text"]
    elif kind == "dingtalk_robot":
        assert (
            msg["msgtype"] == "markdown" and msg["title"] == "督办提醒：任务1.1 完善政策体系 本周五到期，详见 任务页。"
        )
        assert "*完善政策体系*" in msg["text"]
    else:
        assert msg["msgtype"] == "interactive" and "*完善政策体系*" in msg["text"]
        assert msg["body"]["card"]["elements"][0]["tag"] == "markdown"


@pytest.mark.parametrize(("kind", "robot"), [("dingtalk_robot", "plain-ding"), ("feishu_robot", "plain-feishu")])
async def test_unsigned_robots_send_without_a_signature(
    fake: FakeRobots, sender: Opener, kind: str, robot: str
) -> None:
    async with sender(kind) as channel:
        await channel.send(Outbound(robot, "无加签的机器人"))
    [msg] = fake.sent_to(robot)
    assert "sign" not in msg["body"] and "无加签的机器人" in msg["text"]


def test_rendering_keeps_styles_per_line_and_unescapes() -> None:
    [a, b] = render_lines("<b>一 &amp; 二\n三</b> <code>x&lt;1</code>", "wecom_robot")
    assert a.markdown == "**一 & 二**" and b.markdown == "**三** `x<1`"
    assert b.plain == "三 x<1"
    [line] = render_lines("<s>删</s><u>下</u><pre>p</pre>", "feishu_robot")
    assert line.markdown == "~~删~~下p"


async def test_buttons_are_dropped(fake: FakeRobots, sender: Opener) -> None:
    buttons = ((Button("已完成", "done", "o1"), Button("需协调", "blocked", "o1")),)
    async with sender("wecom_robot") as channel:
        await channel.send(Outbound("amr-group", "跨部门协办请求", buttons=buttons, ask_reply=True))
    [msg] = fake.sent_to("amr-group")
    assert msg["text"] == "跨部门协办请求"


# ---- splitting at the byte limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "robot", "limit"), [("wecom_robot", "amr-group", 4096), ("dingtalk_robot", "office-group", 15_000)]
)
async def test_long_text_splits_between_lines_under_the_byte_limit(
    fake: FakeRobots, sender: Opener, kind: str, robot: str, limit: int
) -> None:
    lines = [f"<b>第{i}行</b>：" + "进展情况" * 20 for i in range(limit // 200)]  # ~250 bytes a line
    async with sender(kind) as channel:
        await channel.send(Outbound(robot, "\n".join(lines)))
    sent = fake.sent_to(robot)
    assert len(sent) >= 2
    assert all(len(m["text"].encode()) <= limit for m in sent)
    got = [line.rstrip() for m in sent for line in m["text"].split("\n")]
    assert got == [f"**第{i}行**：" + "进展情况" * 20 for i in range(len(lines))]  # every line whole, in order


async def test_a_line_longer_than_a_message_is_cut_between_characters(fake: FakeRobots, sender: Opener) -> None:
    text = "长" * 3000 + "尾"  # 9,003 bytes on one line
    async with sender("wecom_robot") as channel:
        await channel.send(Outbound("amr-group", text))
    sent = [m["text"] for m in fake.sent_to("amr-group")]
    assert [len(s.encode()) for s in sent] == [4095, 4095, 813]  # 1365 characters of 3 bytes fit in 4096
    assert "".join(sent) == text


async def test_feishu_splits_under_its_20_kb_body(fake: FakeRobots, sender: Opener) -> None:
    lines = ["飞书" * 100 + f" {i}" for i in range(80)]  # ~48 KB of text
    async with sender("feishu_robot") as channel:
        await channel.send(Outbound("leaders", "\n".join(lines)))
    sent = fake.sent_to("leaders")
    assert len(sent) == 3
    assert "\n".join(m["text"] for m in sent) == "\n".join(lines)
    import json

    assert all(len(json.dumps(m["body"], ensure_ascii=False).encode()) <= FEISHU_BODY_BYTES for m in sent)


async def test_the_fake_refuses_what_the_platforms_refuse(fake: FakeRobots) -> None:
    """The limits the splitting tests rely on are really enforced by the fake."""
    async with aiohttp.ClientSession() as s:
        over = {"msgtype": "markdown", "markdown": {"content": "字" * 1366}}
        async with s.post(f"{fake.base_url}/cgi-bin/webhook/send", params={"key": WECOM_KEY}, json=over) as r:
            assert (await r.json())["errcode"] == 40058
        body = {"msg_type": "text", "content": {"text": "x" * (FEISHU_BODY_BYTES + 1)}}
        async with s.post(f"{fake.base_url}/open-apis/bot/v2/hook/unsigned-hook", json=body) as r:
            assert r.status == 400 and (await r.json())["code"] == 9499


# ---- signatures accepted and refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "robot", "field"),
    [("dingtalk_robot", "office-group", "access_token"), ("feishu_robot", "leaders", "token")],
)
async def test_a_wrong_secret_is_an_auth_error(
    fake: FakeRobots, tmp_path: Any, kind: str, robot: str, field: str
) -> None:
    from coordbot.channels.robots import open_sender

    entry = {"kind": kind, field: fake.robot(robot).credential, "secret": "SECwrong"}
    path = write_robots(tmp_path / "wrong.yaml", fake.base_url, **{robot: entry})
    async with open_sender(Settings(robots_file=path), kind, time_scale=SCALE) as channel:
        with pytest.raises(ChannelAuthError, match=r"19021|310000"):
            await channel.send(Outbound(robot, "hi"))
    assert fake.sent_to(robot) == []


@pytest.mark.parametrize(("kind", "robot"), [("dingtalk_robot", "office-group"), ("feishu_robot", "leaders")])
async def test_a_clock_over_an_hour_off_is_refused(fake: FakeRobots, sender: Opener, kind: str, robot: str) -> None:
    async with sender(kind, wall_clock=lambda: time.time() - 3700) as channel:
        with pytest.raises(ChannelAuthError):
            await channel.send(Outbound(robot, "hi"))
    async with sender(kind, wall_clock=lambda: time.time() - 3500) as channel:
        await channel.send(Outbound(robot, "hi"))  # within the hour: accepted


async def test_the_dingtalk_sign_travels_url_encoded_once(fake: FakeRobots) -> None:
    """A sign with '+' and '/' sent raw would arrive with spaces; the fake decodes the query once, as DingTalk."""
    ts = int(time.time() * 1000)
    while "+" not in (sign := dingtalk_sign(DING_SECRET, ts)):
        ts += 1
    query = f"access_token={DING_TOKEN}&timestamp={ts}&sign={sign}"  # not encoded
    body = {"msgtype": "text", "text": {"content": "x"}}
    async with aiohttp.ClientSession() as s, s.post(f"{fake.base_url}/robot/send?{query}", json=body) as r:
        assert (await r.json()) == {"errcode": 310000, "errmsg": "sign not match"}
    expected = base64.b64encode(
        hmac.new(DING_SECRET.encode(), f"{ts}\n{DING_SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert sign == expected


# ---- rate limits --------------------------------------------------------------------------------------


def _max_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@pytest.mark.parametrize(
    ("kind", "robot", "count", "windows"),
    [
        ("wecom_robot", "amr-group", 45, [(20, 60.0)]),
        ("dingtalk_robot", "office-group", 45, [(20, 60.0)]),
        ("feishu_robot", "leaders", 130, [(5, 1.0), (100, 60.0)]),
    ],
)
async def test_the_bucket_keeps_each_robot_under_its_limits(
    fake: FakeRobots, sender: Opener, kind: str, robot: str, count: int, windows: list[tuple[int, float]]
) -> None:
    async with sender(kind) as channel:
        started = time.monotonic()
        await asyncio.gather(*(channel.send(Outbound(robot, f"第{i}条")) for i in range(count)))
        elapsed = time.monotonic() - started
    assert fake.rate_limited == 0
    sent = fake.sent_to(robot)
    assert len(sent) == count
    times = [m["t"] for m in sent]
    for n, seconds in windows:
        assert _max_in_window(times, seconds * SCALE) <= n
    # it really waited: the last message could not go out before the limits allow
    assert elapsed >= (count - 1) // windows[-1][0] * windows[-1][1] * SCALE


async def test_going_over_is_refused_by_the_fake_and_dingtalk_then_throttles(fake: FakeRobots, sender: Opener) -> None:
    async with aiohttp.ClientSession() as s:
        codes = []
        for _ in range(21):
            body = {"msgtype": "text", "text": {"content": "x"}}
            async with s.post(f"{fake.base_url}/robot/send", params={"access_token": "unsigned-token"}, json=body) as r:
                codes.append((await r.json())["errcode"])
    assert codes == [0] * 20 + [130101]
    async with sender("dingtalk_robot") as channel:
        with pytest.raises(TransientChannelError) as caught:
            await channel.send(Outbound("plain-ding", "被限流"))
    assert caught.value.retry_after == pytest.approx(600 * SCALE)
    # ten (scaled) minutes of throttling: a minute later the robot still refuses
    await asyncio.sleep(61 * SCALE)
    async with aiohttp.ClientSession() as s:
        body = {"msgtype": "text", "text": {"content": "x"}}
        async with s.post(f"{fake.base_url}/robot/send", params={"access_token": "unsigned-token"}, json=body) as r:
            assert (await r.json())["errcode"] == 130101


# ---- error classes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "robot", "code", "error"),
    [
        ("wecom_robot", "amr-group", 45009, TransientChannelError),
        ("wecom_robot", "amr-group", -1, TransientChannelError),
        ("wecom_robot", "amr-group", 93000, ChannelAuthError),
        ("wecom_robot", "amr-group", 93004, ChannelAuthError),
        ("wecom_robot", "amr-group", 40058, ContentRejectedError),
        ("wecom_robot", "amr-group", 44004, ContentRejectedError),
        ("dingtalk_robot", "office-group", 130101, TransientChannelError),
        ("dingtalk_robot", "office-group", 310000, ChannelAuthError),
        ("dingtalk_robot", "office-group", 300001, ChannelAuthError),
        ("dingtalk_robot", "office-group", 40035, ContentRejectedError),
        ("dingtalk_robot", "office-group", 400013, ContentRejectedError),
        ("feishu_robot", "leaders", 11232, TransientChannelError),
        ("feishu_robot", "leaders", 19021, ChannelAuthError),
        ("feishu_robot", "leaders", 19024, ChannelAuthError),
        ("feishu_robot", "leaders", 9499, ContentRejectedError),
    ],
)
async def test_platform_codes_map_onto_the_engines_outcomes(
    fake: FakeRobots, sender: Opener, kind: str, robot: str, code: int, error: type[Exception]
) -> None:
    fake.fail_next(robot, code, "injected")
    async with sender(kind) as channel:
        with pytest.raises(error) as caught:
            await channel.send(Outbound(robot, "hi"))
    assert type(caught.value) is error
    assert not getattr(caught.value, "address_problem", False)  # never the group's fault: it is our config


@pytest.mark.parametrize(("kind", "robot"), KINDS)
async def test_gateway_errors_and_outages_are_transient_and_retried(
    fake: FakeRobots, sender: Opener, kind: str, robot: str
) -> None:
    fake.fail_next(robot, 0, status=502)
    async with sender(kind) as channel:
        with pytest.raises(TransientChannelError, match="HTTP 502"):
            await channel.send(Outbound(robot, "hi"))
        fake.fail_next(robot, 0, status=503)
        await send_with_retry(channel, Outbound(robot, "重试后送达"), tries=2)  # the engine's retry gets it through
        fake.outage()
        with pytest.raises(TransientChannelError):
            await channel.send(Outbound(robot, "hi"))
        fake.outage(False)
    assert [m["text"] for m in fake.sent_to(robot)] == ["重试后送达"]


async def test_a_removed_robot_and_a_network_error_never_show_the_key(fake: FakeRobots, sender: Opener) -> None:
    fake.remove("amr-group")
    async with sender("wecom_robot") as channel:
        with pytest.raises(ChannelAuthError) as caught:
            await channel.send(Outbound("amr-group", "hi"))
        assert "93000" in str(caught.value) and WECOM_KEY not in str(caught.value)
        await fake.stop()
        with pytest.raises(TransientChannelError) as caught2:
            await channel.send(Outbound("amr-group", "hi"))
        assert WECOM_KEY not in str(caught2.value) and "key=" not in str(caught2.value)


async def test_unknown_robot_names_and_kinds_are_no_channel(fake: FakeRobots, sender: Opener) -> None:
    async with sender("wecom_robot") as channel:
        with pytest.raises(NoChannelError, match="no robot named 'nobody'"):
            await channel.send(Outbound("nobody", "hi"))
        with pytest.raises(NoChannelError, match="is a dingtalk_robot"):
            await channel.send(Outbound("office-group", "hi"))


# ---- files (WeCom only) ------------------------------------------------------------------------------


async def test_wecom_uploads_a_file_and_sends_it(fake: FakeRobots, sender: Opener) -> None:
    content = b"PK\x03\x04" + b"docx" * 100
    async with sender("wecom_robot") as channel:
        assert channel.limits.files
        await channel.send(Outbound("amr-group", "本周简报见附件", document=("简报.docx", content)))
    text, file = fake.sent_to("amr-group")
    assert text["text"] == "本周简报见附件"
    assert (file["msgtype"], file["text"], file["content"]) == ("file", "简报.docx", content)
    async with sender("dingtalk_robot") as channel:
        assert not channel.limits.files and not channel.limits.buttons
        await channel.send(Outbound("office-group", "简报", document=("简报.docx", content)))  # the text only
    assert [m["msgtype"] for m in fake.sent_to("office-group")] == ["markdown"]
