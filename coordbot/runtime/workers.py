"""Where the conversation runs: in a thread beside the event loop, or in worker processes.

Handling one update is about 2 ms of Python (parsing, the ORM, templates). In a thread it shares the GIL with
the event loop that receives updates and sends answers, so the two take turns on one core and hand the GIL
over at every database call. A worker process runs it on another core: bench/updates.py measured
200 -> 370 updates/s on SQLite (2 cores).

Whichever runs it, the caller's clock stamps the update and the events it committed reach this process's
subscribers (the scheduler re-plans reminders on them), as they would after a commit here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from coordbot.channels.base import Inbound, InboundDeferred, Reply
from coordbot.core import events
from coordbot.core.clock import Clock
from coordbot.core.logformat import log_context

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from coordbot.replies.conversation import Conversation

log = logging.getLogger("coordbot.workers")


class ConversationRunner(Protocol):
    async def start(self) -> None: ...

    async def handle(self, msg: Inbound, *, now: datetime) -> Reply | None: ...

    async def close(self) -> None: ...


# The database cannot be reached (refused, dropped, timed out, locked): the update is kept and offered again.
_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)


@contextlib.contextmanager
def deferred_while_unreachable() -> Iterator[None]:
    """Turn "the database is not there" into :class:`InboundDeferred` (plain and picklable: it crosses from a
    worker process), so the front end keeps the update instead of losing it. Nothing of the URL is said."""
    try:
        yield
    except _UNREACHABLE as exc:
        orig = getattr(exc, "orig", None) or exc
        reason = (str(orig).strip().splitlines() or [""])[0][:160]
        raise InboundDeferred(f"the database is unreachable ({type(orig).__name__}: {reason})") from None


class ThreadRunner:
    """The conversation in a thread of this process (the database work must not block the event loop).

    Given a factory, it builds the conversation at the first update: a process whose updates all go to its
    workers never imports the conversation, the parser and their tables."""

    def __init__(self, conversation: Conversation | Callable[[], Conversation]) -> None:
        self._conversation = conversation
        self._lock = threading.Lock()

    @property
    def conversation(self) -> Conversation:
        if callable(self._conversation) and not hasattr(self._conversation, "handle"):
            with self._lock:  # two first updates at once build it once
                if callable(self._conversation) and not hasattr(self._conversation, "handle"):
                    self._conversation = self._conversation()
        return cast("Conversation", self._conversation)

    async def start(self) -> None:
        return None

    async def handle(self, msg: Inbound, *, now: datetime) -> Reply | None:
        return await asyncio.to_thread(self._handle, msg, now)

    def _handle(self, msg: Inbound, now: datetime) -> Reply | None:
        with deferred_while_unreachable():
            return self.conversation.handle(msg, now=now)

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to build its own Conversation (plain values: it crosses processes)."""

    database_url: str
    holidays_dir: Path
    timezone: str
    locale: str
    log_format: str = "text"
    log_level: int = logging.WARNING  # the main process's (``-v``): a worker's INFO lines are not lost


def build_conversation(config: WorkerConfig, engine: Engine, *, clock: Clock | None = None) -> Conversation:
    """The one place a Conversation is built, in this process or in a worker: the same collaborators."""
    from coordbot.replies.conversation import Conversation
    from coordbot.reports.digest import chat_reports
    from coordbot.scheduling.calendar import WorkCalendar

    return Conversation(
        engine=engine,
        calendar=WorkCalendar(config.holidays_dir, tz=config.timezone),
        clock=clock,
        default_locale=config.locale,
        reports=chat_reports,
    )


CLOSE_SECONDS = 2.0  # how long a stop waits for the worker processes to finish the update each holds


class ProcessRunner:
    """The conversation in worker processes, each with its own engine; one update at a time per worker."""

    def __init__(self, config: WorkerConfig, processes: int) -> None:
        if processes < 1:
            raise ValueError("ProcessRunner needs at least one process")
        self.config = config
        self.processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        # spawn, not fork: the parent runs threads (the event loop's executor, the database pool's).
        return concurrent.futures.ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.config, os.getpid()),
        )

    async def start(self) -> None:
        """Start the workers now, so the first update does not wait for Python to start and import."""
        self._pool = self._new_pool()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, _ready) for _ in range(self.processes)))

    async def handle(self, msg: Inbound, *, now: datetime) -> Reply | None:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = self._new_pool()
        pool = self._pool
        try:
            reply, committed = await loop.run_in_executor(pool, _handle_in_worker, msg, now)
        except concurrent.futures.BrokenExecutor:
            # A worker died (killed, out of memory). Run the update again on a fresh pool: if the worker died
            # before its commit, this handles it; if after, de-duplication on the update id makes it a no-op.
            log.error("a conversation worker died; starting new ones")
            if self._pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            reply, committed = await loop.run_in_executor(self._pool, _handle_in_worker, msg, now)
        events.dispatch([events.Event(**data) for data in committed])
        return reply

    async def close(self) -> None:
        """Let the workers finish what they hold, for ``CLOSE_SECONDS`` at most (a stop must end in seconds, and
        a worker waiting on a database that does not answer never would); then they are killed. What they held
        is not lost: its update was not stored, so it is still in the front end's spool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True), CLOSE_SECONDS)
        except TimeoutError:
            busy = list(getattr(pool, "_processes", {}).values())
            log.warning("%d conversation worker(s) still busy %.0f s into the stop: ended", len(busy), CLOSE_SECONDS)
            for proc in busy:
                with contextlib.suppress(OSError, ValueError):
                    proc.kill()


class OnDemandRunner:
    """A thread while updates come one at a time; the worker processes once they overlap, until they have been
    idle for ``idle_seconds``. A worker costs as much memory again as the main process (spawned: it imports
    everything itself; bench/memory.py), and it pays only under load (bench/updates.py), so an idle coordbot
    holds none. While the workers start (about a second), updates are handled in the thread."""

    def __init__(
        self,
        conversation: Conversation | Callable[[], Conversation],
        config: WorkerConfig,
        processes: int,
        *,
        idle_seconds: float,
        busy: int = 2,
    ) -> None:
        self.thread = ThreadRunner(conversation)
        self.process = ProcessRunner(config, processes)
        self.idle_seconds = idle_seconds
        self.busy = busy  # updates in flight at once that call for the workers
        self.running = False  # the workers are up and take the updates
        self._starting: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._last = time.monotonic()

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap())

    async def ready(self) -> None:
        """Start the workers now (if they are not up) and wait until they take updates."""
        if not self.running:
            await self._begin()

    def _begin(self) -> asyncio.Task[None]:
        if self._starting is None:
            self._starting = asyncio.create_task(self._start_workers())
        return self._starting

    async def _start_workers(self) -> None:
        try:
            await self.process.start()
            self.running = True
            self._last = time.monotonic()  # the idle time counts from when they could first take an update
            log.info("conversation workers started (%d update(s) at once)", self._in_flight)
        except Exception:  # the thread goes on handling updates; the next burst tries again
            log.exception("conversation workers did not start")
            await self.process.close()
        finally:
            self._starting = None

    async def handle(self, msg: Inbound, *, now: datetime) -> Reply | None:
        self._in_flight += 1
        self._last = time.monotonic()
        try:
            if self.running:
                return await self.process.handle(msg, now=now)
            if self._in_flight >= self.busy:
                self._begin()
            return await self.thread.handle(msg, now=now)
        finally:
            self._in_flight -= 1
            self._last = time.monotonic()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, min(self.idle_seconds / 4, 30.0)))
            idle = time.monotonic() - self._last
            if self.running and self._in_flight == 0 and idle >= self.idle_seconds:
                self.running = False  # from here on updates go to the thread, so none is left in a worker
                await self.process.close()
                log.info("conversation workers stopped after %.0f s idle", idle)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        self.running = False
        await self.process.close()


def make_runner(
    *,
    conversation: Conversation | Callable[[], Conversation],
    config: WorkerConfig,
    processes: int,
    idle_seconds: float = 0.0,
) -> ConversationRunner:
    """Worker processes when asked for and the database can be shared between processes; else a thread.

    ``idle_seconds`` > 0: the workers start only when updates overlap and stop after that long idle."""
    url = make_url(config.database_url)
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    if processes < 1 or in_memory:
        return ThreadRunner(conversation)
    if idle_seconds > 0:
        return OnDemandRunner(conversation, config, processes, idle_seconds=idle_seconds)
    return ProcessRunner(config, processes)


# ---- inside a worker process -------------------------------------------------------------------------

_conversation: Conversation | None = None
_committed: list[events.Event] = []


# How often a worker looks whether its parent is still there (the watchdog, where no parent-death signal is).
ORPHAN_POLL_SECONDS = 0.5


def _init_worker(config: WorkerConfig, parent_pid: int) -> None:
    global _conversation
    from coordbot.core.db import make_engine
    from coordbot.core.logformat import configure_logging
    from coordbot.core.logs import database_password, install_redaction

    # Ctrl-C reaches the whole process group: the main process stops the workers when it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    configure_logging(config.log_level, config.log_format)
    install_redaction(extra=(database_password(config.database_url),))
    _conversation = build_conversation(config, make_engine(config.database_url))
    events.subscribe("*", _committed.append)


def _die_with_parent(parent_pid: int) -> None:
    """A killed main process (SIGKILL, out of memory) cannot shut its pool down: the workers end themselves.

    On Linux the kernel signals the worker as its parent dies (PR_SET_PDEATHSIG). It does so when the *thread*
    that started the worker ends, too, so the signal is SIGUSR2 and the handler exits only once the worker
    has really been orphaned (re-parented before the signal comes). A watchdog thread polling the parent's
    pid covers every platform and the moment between spawn and prctl.
    """

    def orphaned() -> bool:
        return os.getppid() != parent_pid

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            signal.signal(signal.SIGUSR2, lambda *_: os._exit(1) if orphaned() else None)
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGUSR2, 0, 0, 0)
    if orphaned():  # the parent died before we could ask to be told
        os._exit(1)

    def watch() -> None:
        while not orphaned():
            time.sleep(ORPHAN_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="coordbot-orphan-watchdog", daemon=True).start()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _ready() -> bool:
    return _conversation is not None


def _handle_in_worker(msg: Inbound, now: datetime) -> tuple[Reply | None, list[dict[str, Any]]]:
    if _conversation is None:
        raise RuntimeError("conversation worker used before its initializer ran")
    _committed.clear()
    try:
        with log_context(update_id=msg.external_id, channel=msg.channel), deferred_while_unreachable():
            reply = _conversation.handle(msg, now=now)
        return reply, [events.snapshot(ev) for ev in _committed]
    finally:
        _committed.clear()
