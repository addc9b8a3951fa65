"""Idle memory: ``coordbot run`` against a bare python-telegram-bot bot, both polling the same fake Bot API.

Run: .venv/bin/python bench/memory.py [--rounds 2] [--settle 4] [--handler-processes N]

Both run as real processes (``coordbot run`` with SQLite, the shipped plan and the default settings, apart from
the database, the token, the fake server's URL and an ephemeral web port); the fake Bot API
(``coordbot.testing.fake_telegram``) runs in this process. Once a bot has polled the server and then sat
idle for ``--settle`` seconds, its RSS and PSS are summed over its whole process tree (the main process, its
conversation workers, multiprocessing's resource tracker), read from ``/proc/<pid>/smaps_rollup``. PSS
counts shared pages once across the tree, so it is the fairer sum; RSS is what ``ps`` shows.

The baseline, measured in the same run (alternated, ``--rounds`` times each, medians): a bare PTB bot that
polls and echoes. Target (issue 19): coordbot's idle PSS within 2x the bare bot's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits  # noqa: E402

TOKEN = "123456:MEMORY-bench"
PLAN = ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"
HOLIDAYS = ROOT / "config" / "holidays"

# The baseline: the smallest useful PTB bot (polling, one echo handler), as its documentation writes it.
BARE_BOT = """
import sys
from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.bot.send_message(update.effective_chat.id, update.effective_message.text or "?")

app = ApplicationBuilder().token(sys.argv[1]).base_url(sys.argv[2]).build()
app.add_handler(MessageHandler(filters.ALL, echo))
app.run_polling(poll_interval=0.0, timeout=10)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def memory(pid: int) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, processes) summed over the process tree of ``pid``."""
    rss = pss = 0
    procs = 0
    for p in tree(pid):
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        procs += 1
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name == "Rss":
                rss += int(rest.split()[0])
            elif name == "Pss":
                pss += int(rest.split()[0])
    return rss / 1024, pss / 1024, procs


async def idle(server: FakeBotAPI, cmd: list[str], env: dict[str, str], settle: float) -> tuple[float, float, int]:
    """Start ``cmd``, wait until it polls, let it sit idle, measure, stop it."""
    polls = len(server.calls_to("getUpdates"))
    proc = await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        try:
            await server.wait_for(lambda: len(server.calls_to("getUpdates")) > polls + 1, timeout=120)
        except Exception:
            err = b""
            if proc.returncode is not None and proc.stderr is not None:
                err = await proc.stderr.read()
            raise RuntimeError(f"{cmd[:3]} never polled: {err.decode(errors='replace')[-2000:]}") from None
        await asyncio.sleep(settle)
        samples = []
        for _ in range(3):
            samples.append(memory(proc.pid))
            await asyncio.sleep(0.5)
        return max(samples, key=lambda s: s[1])
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the bare bot and coordbot (default 2)")
    ap.add_argument("--settle", type=float, default=4.0, help="idle seconds after the first poll (default 4)")
    ap.add_argument("--handler-processes", type=int, help="override coordbot's default worker processes")
    args = ap.parse_args(argv)
    python = sys.executable
    coordbot = [python, "-m", "coordbot", "run"]
    bare: list[tuple[float, float, int]] = []
    ours: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
            env.update(
                COORDBOT_DATABASE_URL=f"sqlite:///{tmp}/memory.db",
                COORDBOT_PLAN_FILE=str(PLAN),
                COORDBOT_HOLIDAYS_DIR=str(HOLIDAYS),
                COORDBOT_TELEGRAM_TOKEN=TOKEN,
                COORDBOT_TELEGRAM_BASE_URL=server.base_url,
                COORDBOT_OUTPUT_DIR=f"{tmp}/out",
            )
            if args.handler_processes is not None:
                env["COORDBOT_HANDLER_PROCESSES"] = str(args.handler_processes)
            for _ in range(args.rounds):
                bare.append(await idle(server, [python, "-c", BARE_BOT, TOKEN, server.base_url], env, args.settle))
                env["COORDBOT_WEB_PORT"] = str(_free_port())
                ours.append(await idle(server, coordbot, env, args.settle))

    def med(rows: list[tuple[float, float, int]], i: int) -> float:
        return statistics.median(r[i] for r in rows)

    b_rss, b_pss, o_rss, o_pss = med(bare, 0), med(bare, 1), med(ours, 0), med(ours, 1)
    print(f"\nidle memory after {args.settle:.0f} s polling the fake Bot API (median of {args.rounds}, alternated)")
    print(f"  bare PTB echo bot (baseline)  RSS {b_rss:6.1f} MiB   PSS {b_pss:6.1f} MiB   {bare[-1][2]} process(es)")
    print(f"  coordbot run (SQLite)         RSS {o_rss:6.1f} MiB   PSS {o_pss:6.1f} MiB   {ours[-1][2]} process(es)")
    ratio = o_pss / b_pss
    verdict = "met" if ratio <= 2 else "NOT met"
    print(f"  ratio: PSS {ratio:.2f}x, RSS {o_rss / b_rss:.2f}x   (target PSS <= 2x: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
