"""Fan-out by e-mail: ``n`` reminder mails to 200 addresses over coordbot's one SMTP connection.

    .venv/bin/python bench/channel_scenarios/email.py [n] [time_scale]

Mail servers publish no single limit; hosted government and enterprise mail (Tencent Exmail, Aliyun, Coremail)
throttle a sender at the order of ten messages a second and answer ``451 4.7.0`` beyond it. The fake SMTP
server (aiosmtpd on 127.0.0.1) runs that as a sliding second and the adapter paces itself at the same rate
(``SEND_RATE_PER_SECOND``). At 10/s 1,000 mails take 100 s, so ``time_scale`` (default 5: 50 mails a second)
speeds up both the fake's limit and the adapter's pace by the same factor. Much faster than that, the bench
measures the CPU instead of the pacing: client and fake server share one process (about 14 ms of work per
mail on a busy 2-core machine: MIME built, sent, received over the one connection), so at time_scale 10 the
ratio was 1.46 and at 5 it was 1.06.

The ideal is the limit as a steady rate, ``n / rate`` seconds: the adapter spaces mails evenly (a burst at the
start would only be answered with 451 by a server counting a sliding second).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file would be the standard library's
# ``email`` for everything imported below: take the folder off before importing anything that uses it.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncio  # noqa: E402
import time  # noqa: E402

from coordbot.channels.base import Button, Outbound  # noqa: E402
from coordbot.channels.email import SEND_RATE_PER_SECOND, EmailChannel  # noqa: E402
from coordbot.core.config import Secret, Settings  # noqa: E402
from coordbot.scheduling.engine import send_with_retry  # noqa: E402
from coordbot.testing.fake_email import FakeSMTP, RateLimits  # noqa: E402

OFFICE = "office@example.gov.cn"
PASSWORD = "bench-smtp-secret"
ADDRESSES = 200
CONCURRENCY = 32  # the reminder engine's default


def _reminder(i: int) -> Outbound:
    address = f"liaison{i % ADDRESSES:03d}@dept{i % 20:02d}.example.gov.cn"
    text = (
        f"<b>任务{i % 40 + 1}.1 加大行政保护力度</b>\n请报送本周进展（截止周五 17:00）。\n"
        f"· 专项行动：今年 {i % 10}/10 项\n\n请直接回复本邮件报送进展，或回复下方数字。"
    )
    if i % 3:
        return Outbound(address, text)
    buttons = ((Button("✅ 已完成", "done", f"o{i}"), Button("🟢 正常推进", "on_track", f"o{i}")),)
    return Outbound(address, text, buttons=buttons)


async def fanout(n: int = 1000, time_scale: float = 5.0) -> dict[str, float]:
    rate = SEND_RATE_PER_SECOND * time_scale
    async with FakeSMTP(users={OFFICE: PASSWORD}, rate_limits=RateLimits(per_second=rate)) as fake:
        settings = Settings(
            smtp_host=fake.host,
            smtp_port=fake.port,
            smtp_username=OFFICE,
            smtp_password=Secret(PASSWORD),
            smtp_security="none",
            mail_from=f"联席会议办公室 <{OFFICE}>",
            imap_password=Secret("bench-imap-secret"),
        )
        channel = EmailChannel(settings, rate_per_second=rate)
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> bool:
            async with semaphore:
                try:
                    await send_with_retry(channel, _reminder(i))
                except Exception:  # counted as not sent
                    return False
                return True

        try:
            started = time.monotonic()
            results = await asyncio.gather(*(one(i) for i in range(n)))
            elapsed = time.monotonic() - started
        finally:
            await channel.close()
        ideal = n / rate
        return {
            "elapsed": round(elapsed, 3),
            "ideal": round(ideal, 3),
            "ratio": round(elapsed / ideal, 3),
            "rate_limited": float(fake.rate_limited),
            "sent": float(sum(results)),
            "delivered": float(len(fake.received)),
            "time_scale": time_scale,
        }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(asyncio.run(fanout(int(args[0]) if args else 1000, float(args[1]) if len(args) > 1 else 5.0)))
