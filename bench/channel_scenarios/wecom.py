"""Fan-out through the WeCom self-built app (企业微信 / 政务微信), against the fake WeCom with its limits on.

WeCom's binding limit for reminders is per member: 30 messages in a minute and 1000 in an hour from one app
(the excess is dropped without an error, so a dropped message counts as rate-limited here). Two hundred
members getting five messages each would fit every member's first minute and measure nothing, so the ``n``
messages go to ``MEMBERS`` members in turn (n/20 each: 50 for n = 1000, two windows per member). Real
limits would make that take a minute, so the fake's windows and the adapter's are shortened by the same
``TIME_SCALE`` (reported as ``time_scale``); the ideal uses the same factor. Every third message has the
five status buttons (a ``template_card``), the rest are markdown.

The ideal is WeCom's own bound with nothing else in the way: the k-th message to a member leaves at the
earliest moment all of its windows allow (bursts allowed), with zero latency. The adapter sends to one
member one at a time and counts a message from when WeCom answered, so it stays under WeCom's count
whatever the latency; that, and the 32 slots of the engine, is what the ratio measures.
Measured on the 2-core machine: see the report of ``bench/channels.py --only wecom``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coordbot.channels.base import Button, Outbound  # noqa: E402
from coordbot.channels.wecom import RateLimits, channel_from  # noqa: E402
from coordbot.core.config import Secret, Settings  # noqa: E402
from coordbot.scheduling.engine import send_with_retry  # noqa: E402
from coordbot.testing.fake_wecom import FakeWeCom  # noqa: E402
from coordbot.testing.fake_wecom import RateLimits as FakeLimits  # noqa: E402

TIME_SCALE = 1 / 6  # a minute lasts 10 s
MEMBERS = 20
CONCURRENCY = 32  # the reminder engine's default
SECRET = "bench-secret"


def ideal_seconds(count: int, windows: tuple[tuple[int, float], ...]) -> float:
    """When the last of ``count`` messages may leave at the earliest, under sliding windows (zero latency)."""
    times: list[float] = []
    for k in range(count):
        times.append(max([0.0] + [times[k - n] + seconds for n, seconds in windows if k >= n]))
    return times[-1] if times else 0.0


def _message(i: int, member: str) -> Outbound:
    task = f"{i % 40 + 1}.{i % 3 + 1}"
    if i % 3 == 0:
        text = f"<b>任务{task} 加大行政保护力度</b>\n请报送本周进展\n专项行动和双随机检查：今年 {i % 10}/10 项"
        status = (
            (Button("✅ 已完成", "done", f"o{i}"), Button("🟢 正常推进", "on_track", f"o{i}")),
            (Button("🟡 有风险", "at_risk", f"o{i}"), Button("🔴 受阻", "blocked", f"o{i}")),
        )
        return Outbound(member, text, buttons=status)
    text = f"<b>督办提醒</b>：任务{task} 本周五到期，请回复本消息报送进展（第{i}条）。"
    return Outbound(member, text)


async def fanout(n: int = 1000) -> dict[str, float]:
    limits = FakeLimits(time_scale=TIME_SCALE)
    async with FakeWeCom(secret=SECRET, rate_limits=limits) as server:
        members = [f"member{i:03d}" for i in range(MEMBERS)]
        for m in members:
            server.add_user(m)
        settings = Settings(
            wecom_corp_id=server.corp_id,
            wecom_agent_id=str(server.agent_id),
            wecom_secret=Secret(SECRET),
            wecom_base_url=server.base_url,
        )
        channel = channel_from(settings, rate_limits=RateLimits(time_scale=TIME_SCALE))
        plan = [_message(i, members[i % MEMBERS]) for i in range(n)]  # in turn, like the engine's round robin
        semaphore = asyncio.Semaphore(CONCURRENCY)
        delivered = 0

        async def one(message: Outbound) -> None:
            nonlocal delivered
            async with semaphore:
                try:
                    await send_with_retry(channel, message)
                except Exception:
                    return
                delivered += 1

        try:
            await channel.access_token()  # the engine's channel is warm too
            started = time.monotonic()
            await asyncio.gather(*(one(m) for m in plan))
            elapsed = time.monotonic() - started
        finally:
            await channel.close()
        per_member = max(sum(1 for m in plan if m.address == a) for a in members)
        member_windows = (
            (limits.member_per_minute, 60 * TIME_SCALE),
            (limits.member_per_hour, 3600 * TIME_SCALE),
        )
        api_windows = ((limits.api_per_minute, 60 * TIME_SCALE), (limits.api_per_hour, 3600 * TIME_SCALE))
        ideal = max(ideal_seconds(per_member, member_windows), ideal_seconds(n, api_windows))
        received = sum(len(server.sent_to(m)) for m in members)
        return {
            "elapsed": elapsed,
            "ideal": ideal,
            "ratio": elapsed / ideal if ideal else float("inf"),
            "rate_limited": float(server.rate_limited + len(server.dropped)),
            "sent": float(min(delivered, received)),
            "time_scale": TIME_SCALE,
        }


if __name__ == "__main__":
    print(asyncio.run(fanout()))
