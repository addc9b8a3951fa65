"""What the inbound fault tests share: a real ``coordbot run`` process polling the fake Bot API, a database it
reaches through a TCP proxy the test can cut (PostgreSQL), and counts of what was stored and what was sent.

The proxy stands between coordbot and the shared PostgreSQL server, so an outage is the test's alone: while
"down" it closes every connection it carries and every new one at once (coordbot sees the server hang up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from coordbot.core.db import make_engine, session_scope
from coordbot.plan import service
from coordbot.plan.loader import load_plan_file
from coordbot.plan.models import Contact, Department
from coordbot.replies.models import InboundMessage
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

ROOT = Path(__file__).resolve().parents[2]
HOLIDAYS = ROOT / "config" / "holidays"
PLAN = ROOT / "tests" / "data" / "plans" / "minimal.yaml"
TOKEN = "777001:FAULTS-inbound"
FIRST_USER = 30_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TcpProxy:
    """127.0.0.1:<port> -> target; ``down()`` hangs up on everyone (and on whoever connects) until ``up()``;
    ``down(silent=True)`` instead holds every connection open and answers nothing, as a cut network does."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.is_up = True
        self.silent = False  # while down: hold connections open and answer nothing (a network cut)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_up:
            while self.silent and not self.is_up:
                await asyncio.sleep(0.1)
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if not self.is_up:
                        continue  # silent: swallowed
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def down(self, *, silent: bool = False) -> None:
        self.is_up, self.silent = False, silent
        if silent:
            return  # connections stay open, unanswered
        for w in list(self._writers):
            if w.transport is not None:
                w.transport.abort()
        self._writers.clear()

    def up(self) -> None:
        if self.silent:  # what was held hangs up now: those sessions are broken
            for w in list(self._writers):
                if w.transport is not None:
                    w.transport.abort()
            self._writers.clear()
        self.is_up, self.silent = True, False

    async def close(self) -> None:
        self.silent = False
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class World:
    """One backend's database (as the test reads it, and as coordbot reaches it), the fake Bot API, the
    contacts (Telegram user ids) and where the bot's process keeps its spool and logs."""

    backend: str
    url: str  # direct
    bot_url: str  # through the proxy on PostgreSQL
    server: FakeBotAPI
    tmp: Path
    proxy: TcpProxy | None = None
    users: list[int] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
        env.update(
            COORDBOT_CONFIG=os.devnull,
            COORDBOT_DATABASE_URL=self.bot_url,
            COORDBOT_TELEGRAM_TOKEN=TOKEN,
            COORDBOT_TELEGRAM_BASE_URL=self.server.base_url,
            COORDBOT_HOLIDAYS_DIR=str(HOLIDAYS),
            COORDBOT_SPOOL_DIR=str(self.tmp / "spool"),
            COORDBOT_WEB_PORT=str(free_port()),
            COORDBOT_TICK_SECONDS="3600",  # no reminders in these tests: only what people send
            **extra,
        )
        return env

    def stored(self, update_ids: list[int] | None = None) -> list[str]:
        """external ids of the stored Telegram messages (of ``update_ids`` only, when given)."""
        engine = make_engine(self.url)
        try:
            with Session(engine) as s:
                q = select(InboundMessage.external_id).where(InboundMessage.channel == "telegram")
                if update_ids is not None:
                    q = q.where(col(InboundMessage.external_id).in_([str(u) for u in update_ids]))
                return list(s.exec(q))
        finally:
            engine.dispose()

    def spooled(self) -> int:
        """Updates waiting in the bot's spool files (read while the bot is stopped)."""
        total = 0
        for path in (self.tmp / "spool").glob("*.sqlite3"):
            with contextlib.closing(sqlite3.connect(path)) as db:
                total += db.execute("SELECT count(*) FROM inbound").fetchone()[0]
        return total

    async def wait_stored(self, update_ids: list[int], timeout: float) -> float:
        """Seconds until every one of ``update_ids`` is stored; fails with the count after ``timeout``."""
        started = time.monotonic()
        while True:
            got = await asyncio.to_thread(self.stored, update_ids)
            if len(got) >= len(update_ids):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                pytest.fail(f"{len(got)} of {len(update_ids)} updates stored after {timeout:.0f} s")
            await asyncio.sleep(0.2)


def seed(url: str, server: FakeBotAPI, contacts: int) -> list[int]:
    """The minimal plan and ``contacts`` bound amr contacts on Telegram (also users of the fake server)."""
    engine = make_engine(url)
    users = [FIRST_USER + i for i in range(contacts)]
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=load_plan_file(PLAN))
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add_all(
            Contact(department_id=amr.id, name=f"联络员{i}", role="contact", channel="telegram", address=str(uid))
            for i, uid in enumerate(users)
        )
    engine.dispose()
    for i, uid in enumerate(users):
        server.add_user(uid, f"联络员{i}")
    return users


@contextlib.asynccontextmanager
async def world(request: pytest.FixtureRequest, backend: str, tmp: Path, contacts: int) -> AsyncIterator[World]:
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=False)) as server:
        if backend == "sqlite":
            path = tmp / "coordbot.db"
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
            url = f"sqlite:///{path}"
            w = World(backend, url, url, server, tmp)
            w.users = seed(url, server, contacts)
            yield w
            return
        url = request.getfixturevalue("pg_url")
        u = make_url(url)
        proxy = TcpProxy(u.host or "127.0.0.1", u.port or 5432)
        await proxy.start()
        try:
            bot_url = u.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            w = World(backend, url, bot_url, server, tmp, proxy)
            w.users = seed(url, server, contacts)
            yield w
        finally:
            await proxy.close()


@dataclass
class Bot:
    """A running ``coordbot run``; its output goes to files (a pipe nobody reads would stall its logging)."""

    proc: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def sigterm(self, timeout: float = 30.0) -> float:
        """Send SIGTERM; seconds until the process ended (it must end with 0)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            pytest.fail(f"coordbot run did not stop within {timeout:.0f} s of SIGTERM:\n{self.output()}")
        took = time.monotonic() - started
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}:\n{self.output()}"
        return took

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def start_bot(w: World, name: str = "bot", **env: str) -> Bot:
    log = w.tmp / f"{name}.log"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "coordbot",
            "-v",  # INFO: the stop's steps and the spool's counts are in the log a failure shows
            "run",
            env=w.env(**env),
            cwd=w.tmp,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    return Bot(proc, log)


@contextlib.asynccontextmanager
async def running(w: World, name: str = "bot", **env: str) -> AsyncIterator[Bot]:
    """A bot process that answers (checked with a /help); killed at the end if the test did not stop it."""
    bot = await start_bot(w, name, **env)
    try:
        await answered(w, w.users[-1], "/help", timeout=20, bot=bot)
        yield bot
    finally:
        bot.kill()
        await bot.proc.wait()


async def answered(w: World, user: int, text: str, *, timeout: float, bot: Bot | None = None) -> float:
    """``user`` writes ``text``; seconds until the bot's next message to them arrives."""
    before = len(w.server.sent_messages(user))
    started = time.monotonic()
    w.server.user_sends(user, text)
    try:
        await w.server.wait_for_messages(user, before + 1, timeout=timeout)
    except TimeoutError:
        pytest.fail(f"no answer to {text!r} within {timeout:.0f} s" + (f":\n{bot.output()}" if bot else ""))
    return time.monotonic() - started


def answers(server: FakeBotAPI, user: int) -> list[str]:
    return [m.get("text", "") for m in server.sent_messages(user)]


def sends(server: FakeBotAPI, user: int, texts: list[str]) -> Iterator[int]:
    for t in texts:
        yield int(server.user_sends(user, t)["update_id"])


def report(line: str, **figures: Any) -> None:
    """A measured figure, printed for the run's log (pytest -s or the CI output)."""
    print(f"\n[faults] {line}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
