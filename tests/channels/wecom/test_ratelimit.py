"""WeCom drops, without an error, messages over 30 a minute or 1000 an hour to one member: the adapter
must never send them. The fake counts what it dropped; windows are scaled down (the same factor on both
sides) so a test takes seconds."""

from __future__ import annotations

import asyncio

from coordbot.channels.base import Outbound
from coordbot.channels.wecom import RateLimits, WeComRateLimiter, Window, _Log, channel_from
from coordbot.testing.fake_wecom import FakeWeCom
from coordbot.testing.fake_wecom import RateLimits as FakeLimits

from .conftest import WANG, ZHAO, wecom_settings

SCALE = 0.005  # a minute is 0.3 s


async def test_200_messages_to_one_member_none_dropped(wecom: FakeWeCom) -> None:
    wecom.rate_limits = FakeLimits(time_scale=SCALE)
    ch = channel_from(wecom_settings(wecom), rate_limits=RateLimits(time_scale=SCALE, margin=0.02))
    try:
        await asyncio.gather(*(ch.send(Outbound(WANG, f"提醒{i}")) for i in range(200)))
        await asyncio.gather(*(ch.send(Outbound(ZHAO, f"提醒{i}")) for i in range(10)))
    finally:
        await ch.close()
    assert wecom.dropped == [] and wecom.rate_limited == 0
    assert sorted(m["text"] for m in wecom.sent_to(WANG)) == sorted(f"提醒{i}" for i in range(200))
    times = [m["t"] for m in wecom.sent_to(WANG)]
    window = 60 * SCALE
    assert max(sum(1 for t in times if start <= t < start + window) for start in times) <= 30


async def test_without_the_limiter_wecom_would_drop(wecom: FakeWeCom) -> None:
    """The test above can fail: the same burst with the adapter's limits lifted loses messages."""
    wecom.rate_limits = FakeLimits(time_scale=SCALE)
    lifted = RateLimits(per_member=(Window(10_000, 60),), time_scale=SCALE, margin=0)
    ch = channel_from(wecom_settings(wecom), rate_limits=lifted)
    try:
        await asyncio.gather(*(ch.send(Outbound(WANG, f"提醒{i}")) for i in range(60)))
    finally:
        await ch.close()
    assert len(wecom.sent_to(WANG)) == 30 and len(wecom.dropped) == 30
    assert {d.reason for d in wecom.dropped} == {"member_minute"}


async def test_the_api_limit_is_kept_too(wecom: FakeWeCom) -> None:
    wecom.rate_limits = FakeLimits(api_per_minute=20, time_scale=SCALE)
    limits = RateLimits(per_api=(Window(20, 60), Window(150_000, 3600)), time_scale=SCALE, margin=0.02)
    ch = channel_from(wecom_settings(wecom), rate_limits=limits)
    try:
        await asyncio.gather(*(ch.send(Outbound(u, f"提醒{i}")) for i in range(15) for u in (WANG, ZHAO)))
    finally:
        await ch.close()
    assert wecom.rate_limited == 0 and len(wecom.sent_to(WANG)) == len(wecom.sent_to(ZHAO)) == 15


def test_the_hour_window_counts_too() -> None:
    windows = (Window(30, 60.0), Window(1000, 3600.0))
    log = _Log()
    # 1000 sends, 30 a minute for 34 minutes: the hour is full until the first one is an hour old.
    t = 0.0
    for i in range(1000):
        t = (i // 30) * 60.0 + (i % 30) * 0.1
        log.times.append(t)
    now = t + 61.0
    assert log.wait(windows, 1.0, 0.0, now) == 3600.0 - now
    assert log.wait(windows, 1.0, 1.0, now) == 3601.0 - now  # the margin on top


async def test_limiter_spaces_a_burst_by_the_window() -> None:
    limiter = WeComRateLimiter(RateLimits(per_member=(Window(3, 60),), time_scale=0.002, margin=0.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    stamps = []
    for _ in range(7):
        async with limiter.member("u"):
            stamps.append(loop.time() - started)
    window = 60 * 0.002
    assert stamps[2] < window / 2  # the first three at once
    assert stamps[3] >= window and stamps[6] >= 2 * window
