"""Real ``coordbot run`` processes against the fake Bot API, for the fault tests (outages, timeouts, kills,
catch-up): the world seeded in the database, the processes started with a configured clock, and what the fake
server received counted per chat.

Time is scaled through configuration, never waited for: ``clock_start`` puts the process on a Monday morning
just before the 09:30 reminders, ``clock_speed`` makes its minutes pass in seconds (so the engine's real
back-offs, leases and grace windows apply), and ``tick_seconds`` makes its clock tick often.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from coordbot.core.db import make_engine, session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department, Plan, Task
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_telegram import FakeBotAPI

ROOT = Path(__file__).resolve().parents[2]
HOLIDAYS = ROOT / "config" / "holidays"
TOKEN = "424242:FAULT-suite"
FIRST_CHAT = 30_001
MONDAY = "2026-03-02T{}:00+08:00"  # a working Monday: 2.1 and 2.2 ask for progress at 09:30
CATCH_UP_MARK = "机器人离线期间"
RUNNING = re.compile(r"coordbot running: .*clock at (\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(
    url: str,
    plan: LoadedPlan,
    server: FakeBotAPI,
    contacts: int,
    *,
    due_11: date | None = date(2026, 3, 16),
    policy: dict[str, Any] | None = None,
) -> list[int]:
    """The plan, ``contacts`` bound contacts of amr (chat ids from FIRST_CHAT) known to the fake server; task
    1.1 due on ``due_11`` (Mon 2026-03-16: its "10 working days before" reminder is Monday's 09:30, beside the
    weekly request of 2.1 and 2.2, so each contact gets two messages that morning). Returns the chat ids."""
    engine = make_engine(url)
    chats = [FIRST_CHAT + i for i in range(contacts)]
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=plan)
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add_all(Contact(department_id=amr.id, name=f"联络员{c}", address=str(c)) for c in chats)
        if due_11 is not None:
            task = s.exec(select(Task).where(Task.code == "1.1")).one()
            task.due_date = due_11
        if policy is not None:
            for p in s.exec(select(Plan)):
                p.reminder_policy = {**(p.reminder_policy or {}), **policy}
    engine.dispose()
    for c in chats:
        server.add_user(c, f"user{c}")
    return chats


def settings_env(url: str, server: FakeBotAPI, **settings: str | float | int) -> dict[str, str]:
    """The environment of a ``coordbot run``: this database, the fake server, no settings file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
    values: dict[str, Any] = {
        "config": os.devnull,
        "database_url": url,
        "telegram_token": TOKEN,
        "telegram_base_url": server.base_url,
        "holidays_dir": HOLIDAYS,
        "tick_seconds": 0.2,
        # The conversation in a thread: these processes receive no chat updates to speak of, and a worker process
        # costs each start a second interpreter (test_sigkill.py runs with one, to see it end with the parent).
        "handler_processes": 0,
        **settings,
    }
    env.update({f"COORDBOT_{k.upper()}": str(v) for k, v in values.items()})
    return env


@dataclass
class Bot:
    """One ``coordbot -v run`` process, its output in files (never a pipe that could fill and block it)."""

    proc: asyncio.subprocess.Process
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def running(self, timeout: float = 60.0) -> datetime:
        """Until it logged 'coordbot running' (its clock ticks from now on); the time its clock said then."""
        deadline = time.monotonic() + timeout
        while (found := RUNNING.search(self.output())) is None:
            if self.proc.returncode is not None:
                raise AssertionError(f"coordbot run ended ({self.proc.returncode}):\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"coordbot run not up within {timeout} s:\n{self.output()[-3000:]}")
            await asyncio.sleep(0.02)
        return datetime.fromisoformat(found.group(1))

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then SIGKILL if it does not end in time; its exit code. Its log (at -v: every request URL,
        the retries and tracebacks of the faults) must not hold the bot token (issue 17, item 8)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        leaks = self.output().count(TOKEN.split(":", 1)[1])
        assert leaks == 0, f"the bot token appears {leaks} times in the log of coordbot run (pid {self.pid})"
        return int(self.proc.returncode or 0)


async def start(env: dict[str, str], log: Path) -> Bot:
    """``coordbot -v run`` with ``env``, on a web port of its own (two processes at once must not share one)."""
    env = {**env, "COORDBOT_WEB_PORT": str(free_port())}
    out = log.open("wb")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coordbot", "-v", "run", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    finally:
        out.close()  # the child has its own copy
    return Bot(proc, log)


def children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return [p for p in found if alive(p)]


def alive(pid: int) -> bool:
    """Running, not a zombie (a container's init may never reap what it inherits)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def received(server: FakeBotAPI, chats: list[int]) -> Counter[tuple[int, str]]:
    """(chat, text) -> how many times the chat got that message. Each reminder's text is unique in its chat."""
    wanted = set(chats)
    return Counter((m["chat"]["id"], m["text"]) for m in server.sent_messages() if m["chat"]["id"] in wanted)


def duplicates(counts: Counter[tuple[int, str]]) -> int:
    return sum(n - 1 for n in counts.values())


def occurrences(url: str) -> list[ReminderOccurrence]:
    engine = make_engine(url)
    with Session(engine) as s:
        rows = list(s.exec(select(ReminderOccurrence)).all())
    engine.dispose()
    return rows


async def wait_until(predicate: Any, timeout: float, what: str, *, bots: tuple[Bot, ...] = ()) -> float:
    """Seconds it took until ``predicate()``; fails naming ``what`` (with the processes' last output)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            tails = "\n".join(f"--- pid {b.pid}:\n{b.output()[-2500:]}" for b in bots)
            raise AssertionError(f"{what}: not within {timeout} s\n{tails}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started
