"""Fan-out through the group webhook robots (WeCom 群机器人, DingTalk and Feishu 自定义机器人).

A robot is one group's address, and its limits are per robot: 20 messages a minute (WeCom, DingTalk), 5 a
second and 100 a minute (Feishu). Two hundred robots getting five messages each would fit every robot's first
minute and measure nothing, so the ``n`` messages go to ``ROBOTS`` robots (4 WeCom, 3 DingTalk, 3 Feishu)
in turn, about n/10 each: several windows per robot, where the bucket has to do its work. Real limits would
make 1,000 such messages take minutes, so the fake server's windows and the adapter's are shortened by the
same ``TIME_SCALE`` (reported as ``time_scale``); the ideal uses the same factor.

The ideal is the platforms' own bound with nothing else in the way: the k-th message to a robot goes out at
the earliest moment every window allows (``n`` in any ``seconds``, bursts allowed), with zero latency. The
adapter's windows are a second longer and count a slot from the moment the answer came back, so it stays
under the platforms' count whatever the latency; that margin is what the ratio measures.

``ratio_<kind>`` compares each kind's slowest robot with its own ideal. Feishu's robots (5 a second) finish
with the 20-a-minute robots, far behind their own ideal: like the engine, the fan-out has 32 slots, and most
of them are held by messages waiting for a WeCom or DingTalk window (head-of-line blocking across robots).
Measured on the 2-core machine: elapsed 24.9 s for an ideal of 24.0 s (ratio 1.04), no rate-limit answer.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coordbot.channels.base import Button, Outbound  # noqa: E402
from coordbot.channels.robots import KINDS, PLATFORM_LIMITS, open_sender  # noqa: E402
from coordbot.core.config import Settings  # noqa: E402
from coordbot.scheduling.engine import send_with_retry  # noqa: E402
from coordbot.testing.fake_robots import FakeRobots  # noqa: E402

TIME_SCALE = 1 / 10  # a minute lasts 6 s
ROBOTS = {"wecom_robot": 4, "dingtalk_robot": 3, "feishu_robot": 3}
CONCURRENCY = 32  # the reminder engine's default


def ideal_seconds(count: int, windows: tuple[tuple[int, float], ...]) -> float:
    """When the last of ``count`` messages may leave at the earliest, under sliding windows (zero latency)."""
    times: list[float] = []
    for k in range(count):
        times.append(max([0.0] + [times[k - n] + seconds for n, seconds in windows if k >= n]))
    return times[-1] if times else 0.0


def _robots_file(directory: Path, server: FakeRobots) -> tuple[Path, list[tuple[str, str]]]:
    entries: dict[str, dict[str, str]] = {}
    robots: list[tuple[str, str]] = []
    for kind, count in ROBOTS.items():
        for i in range(count):
            name = f"{kind.split('_')[0]}-group-{i}"
            if kind == "wecom_robot":
                server.add_wecom(name, f"key-{name}")
                entries[name] = {"kind": kind, "key": f"key-{name}"}
            elif kind == "dingtalk_robot":
                server.add_dingtalk(name, f"token-{name}", secret=f"SEC{name}")
                entries[name] = {"kind": kind, "access_token": f"token-{name}", "secret": f"SEC{name}"}
            else:
                server.add_feishu(name, f"hook-{name}", secret=f"secret-{name}")
                entries[name] = {"kind": kind, "token": f"hook-{name}", "secret": f"secret-{name}"}
            entries[name]["base_url"] = server.base_url
            robots.append((kind, name))
    path = directory / "robots.yaml"
    path.write_text(yaml.safe_dump(entries), encoding="utf-8")
    return path, robots


def _message(i: int, robot: str) -> Outbound:
    text = (
        f"<b>督办提醒</b>（第{i}条）：任务{i % 40 + 1}.{i % 3 + 1} 本周五到期，请在群内提醒联络员按时报送进展。"
        "\n进展报送请回复各自的提醒消息。"
    )
    buttons = ((Button("已完成", "done", f"o{i}"), Button("需协调", "blocked", f"o{i}")),) if i % 3 == 0 else ()
    return Outbound(robot, text, buttons=buttons)


async def fanout(n: int = 1000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeRobots(time_scale=TIME_SCALE) as server:
            path, robots = _robots_file(Path(tmp), server)
            settings = Settings(robots_file=path)
            # in turn over the robots, as the engine's round robin interleaves recipients
            plan = [(robots[i % len(robots)], _message(i, robots[i % len(robots)][1])) for i in range(n)]
            per_robot = Counter(name for (_, name), _ in plan)
            semaphore = asyncio.Semaphore(CONCURRENCY)
            finished: dict[str, float] = {}
            delivered = 0
            failed = 0

            async with (
                open_sender(settings, "wecom_robot", time_scale=TIME_SCALE) as wecom,
                open_sender(settings, "dingtalk_robot", time_scale=TIME_SCALE) as dingtalk,
                open_sender(settings, "feishu_robot", time_scale=TIME_SCALE) as feishu,
            ):
                channels = {"wecom_robot": wecom, "dingtalk_robot": dingtalk, "feishu_robot": feishu}

                async def one(kind: str, name: str, message: Outbound) -> None:
                    nonlocal delivered, failed
                    async with semaphore:
                        try:
                            await send_with_retry(channels[kind], message)
                        except Exception:
                            failed += 1
                            return
                        delivered += 1
                        finished[name] = time.monotonic() - started

                started = time.monotonic()
                await asyncio.gather(*(one(kind, name, msg) for (kind, name), msg in plan))
                elapsed = time.monotonic() - started

            ideal_by_robot = {
                name: ideal_seconds(per_robot[name], PLATFORM_LIMITS[kind]) * TIME_SCALE for kind, name in robots
            }
            ideal = max(ideal_by_robot.values())
            result: dict[str, float] = {
                "elapsed": round(elapsed, 3),
                "ideal": round(ideal, 3),
                "ratio": round(elapsed / ideal, 3) if ideal else float("inf"),
                "rate_limited": float(server.rate_limited),
                "sent": float(delivered),
                "failed": float(failed),
                "time_scale": TIME_SCALE,
                "robots": float(len(robots)),
            }
            for kind in KINDS:  # each kind's slowest robot against its own ideal
                names = [name for k, name in robots if k == kind]
                done = max(finished.get(name, elapsed) for name in names)
                kind_ideal = max(ideal_by_robot[name] for name in names)
                result[f"ratio_{kind}"] = round(done / kind_ideal, 3) if kind_ideal else float("inf")
            return result


if __name__ == "__main__":
    print(asyncio.run(fanout(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)))
