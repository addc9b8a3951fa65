"""Fan-out of reminders per channel, against each platform's own limits, next to the limit-set ideal.

    .venv/bin/python bench/channels.py [--messages 1000] [--only wecom,email]

For every channel it runs ``bench/channel_scenarios/<channel>.py``'s ``fanout(n)``: the channel's fake server
(real HTTP on 127.0.0.1, its rate limits on), coordbot's adapter sending ``n`` reminder-like messages the way
the reminder engine does (concurrently, through ``send_with_retry``). The baseline is the ideal the limits
allow for the same messages, computed from the limits in the same run; a scenario whose real limits would take
hours (20 messages a minute per group robot) runs on a scaled clock and says so (``time_scale``).
Goal: elapsed ≤ 1.15 × the ideal, and no rate-limit answer from the platform.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHANNELS = ("wecom", "dingtalk", "feishu", "email", "robots")
GOAL = 1.15


def _scenario(name: str) -> Any:
    return importlib.import_module(f"bench.channel_scenarios.{name}")


async def run(names: list[str], messages: int) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        try:
            scenario = _scenario(name)
        except ModuleNotFoundError as exc:
            rows.append({"channel": name, "error": f"no scenario ({exc.name})"})
            continue
        result = await scenario.fanout(messages)
        rows.append({"channel": name, **result})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--only", default="", help="comma-separated channels (default: all)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(CHANNELS)
    rows = asyncio.run(run(names, args.messages))
    print(f"fan-out of {args.messages} reminders per channel (goal: ≤ {GOAL}× the limit-set ideal, 0 rate-limited)")
    header = ("channel", "sent", "elapsed s", "ideal s", "ratio", "429s", "scale")
    print("{:<10} {:>6} {:>10} {:>9} {:>7} {:>5} {:>6}  verdict".format(*header))
    for r in rows:
        if "error" in r:
            print(f"{r['channel']:<10} {r['error']}")
            continue
        met = r["ratio"] <= GOAL and r["rate_limited"] == 0 and r["sent"] == args.messages
        print(
            f"{r['channel']:<10} {int(r['sent']):>6} {r['elapsed']:>10.2f} {r['ideal']:>9.2f} {r['ratio']:>6.2f}×"
            f" {int(r['rate_limited']):>5} {r.get('time_scale', 1):>6.3g}  {'met' if met else 'NOT met'}"
        )
    return 0  # the figures are the result, not the exit code


if __name__ == "__main__":
    sys.exit(main())
