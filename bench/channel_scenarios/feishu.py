"""Fan-out over Feishu: ``n`` reminder-like messages to 200 people through the adapter, against the fake Open
Platform with its rate limits on (50/s and 1000/min per app, 5/s per receiver), sent the way the engine
sends (32 at a time, ``send_with_retry``, interleaved by recipient).

    .venv/bin/python -m bench.channel_scenarios.feishu [n]
"""

from __future__ import annotations

import asyncio
import math
import sys
import time

from coordbot.channels.base import Button, Outbound
from coordbot.channels.feishu import open_sender
from coordbot.core.config import Secret, Settings
from coordbot.scheduling.engine import send_with_retry
from coordbot.testing.fake_feishu import FakeFeishu, RateLimits

ADDRESSES = 200
CONCURRENCY = 32  # the ReminderEngine's default


def ideal_seconds(n: int, limits: RateLimits, addresses: int) -> float:
    """The shortest span, first send to last, the platform's sliding windows allow for ``n`` sends spread
    evenly over ``addresses``: each full window of sends is followed by the next one window later."""
    s = limits.time_scale
    full_minutes, rest = divmod(n, limits.app_per_minute)
    if rest == 0 and full_minutes:
        full_minutes, rest = full_minutes - 1, limits.app_per_minute
    app = 60.0 * s * full_minutes + (math.ceil(rest / limits.app_per_second) - 1) * s
    per_address = math.ceil(n / addresses)
    per_receiver = (math.ceil(per_address / limits.per_receiver_per_second) - 1) * s
    return max(app, per_receiver, 1e-3)


async def fanout(n: int = 1000) -> dict[str, float]:
    limits = RateLimits()
    async with FakeFeishu(rate_limits=limits) as fs:
        users = [f"ou_{i:032x}" for i in range(ADDRESSES)]
        for u in users:
            fs.add_user(u)
        settings = Settings(
            feishu_app_id=fs.app_id,
            feishu_app_secret=Secret(fs.app_secret),
            feishu_base_url=fs.base_url,
        )
        messages = []
        for i in range(n):
            buttons: tuple[tuple[Button, ...], ...] = ()
            if i % 2 == 0:
                buttons = ((Button("✅ 已完成", "done", f"o{i}"), Button("🔴 受阻", "blocked", f"o{i}")),)
            text = f"<b>任务{i % 40}.{i % 7}</b> 加大行政保护力度\n请报送本周进展（第{i}条）"
            messages.append(Outbound(users[i % ADDRESSES], text, buttons=buttons))
        gate = asyncio.Semaphore(CONCURRENCY)
        sent = 0

        async with open_sender(settings) as channel:
            await channel.tokens.get()  # the token is fetched before the clock starts, as in a running bot

            async def one(message: Outbound) -> None:
                nonlocal sent
                async with gate:
                    await send_with_retry(channel, message)
                    sent += 1

            start = time.monotonic()
            await asyncio.gather(*(one(m) for m in messages))
            elapsed = time.monotonic() - start
        ideal = ideal_seconds(n, limits, ADDRESSES)
        return {
            "elapsed": round(elapsed, 3),
            "ideal": round(ideal, 3),
            "ratio": round(elapsed / ideal, 3),
            "rate_limited": float(fs.rate_limited),
            "sent": float(sent),
            "delivered": float(len(fs.messages)),
            "time_scale": limits.time_scale,
        }


if __name__ == "__main__":
    print(asyncio.run(fanout(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)))
