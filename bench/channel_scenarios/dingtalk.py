"""Fan-out through the DingTalk enterprise app robot: ``n`` reminders to 200 contacts, one batchSend each.

    .venv/bin/python bench/channel_scenarios/dingtalk.py [n] [time_scale]

DingTalk's limit is per app and API: 20 calls in a second (标准版; 专业版 40, 专属版 60), and reminders are
personal, so each goes out in its own ``oToMessages/batchSend``. The fake server runs that limit (a sliding
second, 403 ``QpsLimitForAppkeyAndApi`` past it); coordbot's adapter paces itself to stay under it. At the
real limit 1,000 messages take about 50 s, which is short enough to measure as it is: ``time_scale`` (default
1, the real limit) divides the second of both the fake and the adapter for a quicker look.

The ideal is the limit itself with nothing else in the way: 20 calls at once, then 20 more each second
(bursts allowed), zero latency, so the last of ``n`` leaves at ``((n - 1) // qps)`` seconds. The adapter's
strict spacing (a little under the limit, so jitter never puts 21 calls in DingTalk's second) is what the
ratio measures.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coordbot.channels import dingtalk  # noqa: E402
from coordbot.channels.base import Button, Outbound  # noqa: E402
from coordbot.core.config import Secret, Settings  # noqa: E402
from coordbot.scheduling.engine import send_with_retry  # noqa: E402
from coordbot.testing.fake_dingtalk import FakeDingTalk, RateLimits  # noqa: E402

APP_KEY = "dingbenchappkey"
APP_SECRET = "bench-app-secret"
QPS = 20  # 标准版
ADDRESSES = 200
CONCURRENCY = 32  # the reminder engine's default


def _reminder(i: int) -> Outbound:
    address = f"user{i % ADDRESSES:03d}"
    text = f"<b>任务{i % 40 + 1}.1 加大行政保护力度</b>\n请报送本周进展（截止周五 17:00）。\n今年 {i % 10}/10 项"
    if i % 3:
        return Outbound(address, text)
    buttons = ((Button("✅ 已完成", "done", f"o{i}"), Button("🟢 正常推进", "on_track", f"o{i}")),)
    return Outbound(address, text, buttons=buttons)


async def fanout(n: int = 1000, time_scale: float = 1.0) -> dict[str, float]:
    qps = round(QPS / time_scale)
    async with FakeDingTalk(APP_KEY, APP_SECRET, rate_limits=RateLimits(enabled=True, qps=qps)) as fake:
        for u in range(ADDRESSES):
            fake.add_user(f"user{u:03d}", f"联络员{u}")
        settings = Settings(
            dingtalk_app_key=APP_KEY,
            dingtalk_app_secret=Secret(APP_SECRET),
            dingtalk_base_url=fake.url,
            dingtalk_oapi_url=fake.url,
        )
        original_qps = dingtalk.DEFAULT_QPS
        dingtalk.DEFAULT_QPS = float(qps)  # the adapter's pace, scaled like the fake's second (no setting yet)
        try:
            async with dingtalk.open_sender(settings) as channel:
                await channel.access_token()  # fetched once before the clock starts (not a message)
                semaphore = asyncio.Semaphore(CONCURRENCY)

                async def one(i: int) -> bool:
                    async with semaphore:
                        try:
                            await send_with_retry(channel, _reminder(i))
                        except Exception:  # counted as not sent
                            return False
                        return True

                started = time.monotonic()
                results = await asyncio.gather(*(one(i) for i in range(n)))
                elapsed = time.monotonic() - started
        finally:
            dingtalk.DEFAULT_QPS = original_qps
        ideal = max((n - 1) // qps, 1) * 1.0
        return {
            "elapsed": round(elapsed, 3),
            "ideal": ideal,
            "ratio": round(elapsed / ideal, 3),
            "rate_limited": float(fake.rate_limited),
            "sent": float(sum(results)),
            "time_scale": time_scale,
        }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(asyncio.run(fanout(int(args[0]) if args else 1000, float(args[1]) if len(args) > 1 else 1.0)))
