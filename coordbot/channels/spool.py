"""Inbound updates kept on local disk until the database has them, and handed out fairly between chats.

``Spool`` is a small SQLite file under the spool directory (``spool_dir``): an update received from a platform
is written there (fsynced) *before* the platform is told it arrived (the polling offset moves on, the webhook
answers 200), and deleted once the conversation has stored it in the database. A process killed or stopped
in between, or a database that cannot be reached, loses nothing: what is in the spool is replayed, in order,
by the next process (or as soon as the database answers again). Exactly once comes from the database: the
conversation de-duplicates on (channel, external id) in the transaction that stores the message, so a replay
of an update that was stored just before a crash is a no-op. The spool itself keeps one row per update id.

``FairQueue`` hands the spooled updates to a fixed number of workers: one chat at a time each (a chat's
messages in arrival order), chats served round-robin, so a chat with hundreds waiting holds one worker and
every other chat is served next. When the handler says the database is unreachable (:class:`InboundDeferred`)
the queue pauses and tries the same update again with backoff; nothing is dropped.

Bounds: the queue keeps only (sequence number, chat) per waiting update in memory (the payload stays on
disk); ``max_pending`` updates in all (beyond it the front end stops taking more from the platform, which
keeps them) and ``max_per_chat`` for one chat (beyond it the front end drops that chat's excess, counted).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from coordbot.channels.base import Channel, Inbound, InboundDeferred, InboundHandler, send_reply
from coordbot.core.config import Settings

log = logging.getLogger("coordbot.channels.spool")

T = TypeVar("T")

SLOTS = 16  # instances sharing one spool directory each take a slot of their own
MAX_ATTEMPTS = 3  # an update whose handling fails (not a deferral) this many times is given up, with an error
DEFER_FIRST = 0.25  # seconds before the first retry of a deferred update; doubling up to ``defer_max``
DEFER_MAX = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    update_key TEXT NOT NULL UNIQUE,
    chat TEXT NOT NULL,
    verdict TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One update waiting in the spool."""

    seq: int
    key: str  # the platform's update id
    chat: str
    verdict: str  # what the front end decided on arrival (e.g. answer it, or not: over the flood limit)
    payload: str  # the update as received (JSON)
    attempts: int


@dataclass(frozen=True, slots=True)
class Incoming:
    key: str
    chat: str
    verdict: str
    payload: str


class SpoolBusyError(RuntimeError):
    """Every slot of the spool directory is held by another running instance."""


class Spool:
    """The durable journal of one front end's inbound updates (see the module's docstring).

    All file work runs on one thread of its own, so a fsync never blocks the event loop and never waits
    behind the conversation's threads.
    """

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_file: IO[str] | None = None
        for slot in range(1, SLOTS + 1):
            path = directory / (f"{name}.sqlite3" if slot == 1 else f"{name}-{slot}.sqlite3")
            lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held open for the process's life
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            self._lock_file, self.path = lock, path
            break
        else:
            raise SpoolBusyError(f"all {SLOTS} spool slots in {directory} are held by running instances")
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"spool-{name}")
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the platform is told
        self._db.execute("PRAGMA secure_delete=ON")  # what was handled (an invite code, say) is overwritten
        self._db.execute(_SCHEMA)
        fsync_dir(directory)
        self._closed = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # ---- writes ----

    async def add(self, items: Sequence[Incoming]) -> list[Spooled]:
        """Write ``items`` in one transaction (fsynced); returns those that were new, in order."""
        if not items:
            return []
        return await self._run(self._add, list(items))

    def _add(self, items: list[Incoming]) -> list[Spooled]:
        now = time.time()
        added: list[Spooled] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for it in items:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO inbound (update_key, chat, verdict, payload, received_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (it.key, it.chat, it.verdict, it.payload, now),
                )
                if cur.rowcount:
                    assert cur.lastrowid is not None
                    added.append(Spooled(cur.lastrowid, it.key, it.chat, it.verdict, it.payload, 0))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return added

    def done(self, seq: int) -> None:
        """``seq`` is stored in the database: forget it. Queued on the spool's thread at once, so an update
        that arrives again after this is spooled anew (and found stored by the conversation)."""
        if not self._closed:
            self._thread.submit(self._delete, seq)

    def _delete(self, seq: int) -> None:
        # Not fsynced: a delete lost in a power cut only means a replay, which the database finds stored.
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("DELETE FROM inbound WHERE seq = ?", (seq,))
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    async def failed(self, seq: int) -> int:
        """Count a failed attempt at ``seq``; returns the attempts so far."""

        def bump() -> int:
            self._db.execute("UPDATE inbound SET attempts = attempts + 1 WHERE seq = ?", (seq,))
            row = self._db.execute("SELECT attempts FROM inbound WHERE seq = ?", (seq,)).fetchone()
            return int(row[0]) if row else MAX_ATTEMPTS

        return await self._run(bump)

    # ---- reads ----

    async def load(self, seq: int) -> Spooled | None:
        def one() -> Spooled | None:
            row = self._db.execute(
                "SELECT seq, update_key, chat, verdict, payload, attempts FROM inbound WHERE seq = ?", (seq,)
            ).fetchone()
            return Spooled(*row) if row else None

        return await self._run(one)

    async def waiting(self) -> list[tuple[int, str]]:
        """(seq, chat) of every update still in the spool, oldest first: what a previous run left."""

        def rows() -> list[tuple[int, str]]:
            return [(int(s), str(c)) for s, c in self._db.execute("SELECT seq, chat FROM inbound ORDER BY seq")]

        return await self._run(rows)

    async def count(self) -> int:
        return await self._run(lambda: int(self._db.execute("SELECT count(*) FROM inbound").fetchone()[0]))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._run(self._db.close)
        self._thread.shutdown(wait=True)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the slot


def spool_dir(settings: Settings) -> Path:
    """Where the spool lives: ``spool_dir`` when set, else beside a SQLite database file, else var/spool."""
    if settings.spool_dir is not None:
        return settings.spool_dir
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).parent / "spool"
    return Path("var/spool")


def spool_name(adapter: str, account: str) -> str:
    """A spool file's name: the adapter and its account (a bot's id), so another bot never replays it."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in account)[:64]
    return f"{adapter}-{safe}" if safe else adapter


class FairQueue:
    """Spooled updates to ``work``, one chat at a time per worker, chats round-robin (see the module)."""

    def __init__(
        self,
        spool: Spool,
        work: Callable[[Spooled], Awaitable[None]],
        *,
        name: str,
        workers: int = 8,
        max_pending: int = 20_000,
        max_per_chat: int = 1_000,
        defer_max: float = DEFER_MAX,
    ) -> None:
        self.spool = spool
        self.work = work
        self.name = name
        self.workers = workers
        self.max_pending = max_pending
        self.max_per_chat = max_per_chat
        self.defer_max = defer_max
        self._chats: dict[str, deque[int]] = {}
        self._ready: deque[str] = deque()  # chats with something waiting that no worker holds
        self._pending = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._resume_at = 0.0  # monotonic: while the database is away, no worker starts before this
        self._backoff = 0.0
        self._deferred_since: float | None = None
        self.stats = {"handled": 0, "deferred": 0, "replayed": 0, "given_up": 0}

    # ---- filling ----

    def __len__(self) -> int:
        return self._pending

    @property
    def full(self) -> bool:
        return self._pending >= self.max_pending

    def backlog(self, chat: str) -> int:
        q = self._chats.get(chat)
        return len(q) if q is not None else 0

    def push(self, seq: int, chat: str) -> None:
        q = self._chats.get(chat)
        if q is None:
            q = self._chats[chat] = deque()
            self._ready.append(chat)
        q.append(seq)
        self._pending += 1
        self._wake.set()

    async def start(self) -> None:
        """Queue what a previous run left in the spool (first, in its order), then start the workers."""
        left = await self.spool.waiting()
        for seq, chat in left:
            self.push(seq, chat)
        if left:
            log.warning(
                "%s: %d update(s) left in the spool by an earlier run; handling them first", self.name, len(left)
            )
            self.stats["replayed"] += len(left)
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self.name}-inbound-{i}") for i in range(self.workers)
        ]

    # ---- working ----

    async def _next_chat(self) -> str | None:
        while not self._stopping:
            wait = self._resume_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, 0.5))
                continue
            if self._ready:
                return self._ready.popleft()
            self._wake.clear()
            await self._wake.wait()
        return None

    async def _worker(self) -> None:
        while (chat := await self._next_chat()) is not None:
            q = self._chats[chat]
            seq = q[0]
            try:
                outcome = await self._one(seq)
            except asyncio.CancelledError:
                raise
            except Exception:  # the spool itself failing (disk): keep the update, pause, try again
                log.exception("%s: the spool could not be read or written; trying again shortly", self.name)
                self._resume_at = max(self._resume_at, time.monotonic() + self.defer_max)
                outcome = "again"
            if outcome != "again":
                q.popleft()
                self._pending -= 1
            if q:
                # Back in line behind every other chat waiting; a retry after a deferral keeps its place.
                (self._ready.appendleft if outcome == "again" else self._ready.append)(chat)
                self._wake.set()
            else:
                del self._chats[chat]

    async def _one(self, seq: int) -> str:
        entry = await self.spool.load(seq)
        if entry is None:  # already handled (a done mark raced the load): nothing to do
            return "done"
        try:
            await self.work(entry)
        except InboundDeferred as exc:
            self._defer(exc)
            return "again"
        except asyncio.CancelledError:
            raise
        except Exception:
            attempts = await self.spool.failed(seq)
            if attempts < MAX_ATTEMPTS:
                log.exception("%s: update %s failed (attempt %d); trying again", self.name, entry.key, attempts)
                self._resume_at = max(self._resume_at, time.monotonic() + DEFER_FIRST)
                return "again"
            log.exception("%s: update %s failed %d times; given up", self.name, entry.key, attempts)
            self.stats["given_up"] += 1
            self.spool.done(seq)
            return "done"
        self._recovered()
        self.stats["handled"] += 1
        self.spool.done(seq)
        return "done"

    def _defer(self, exc: InboundDeferred) -> None:
        self.stats["deferred"] += 1
        self._backoff = min(self.defer_max, self._backoff * 2 if self._backoff else DEFER_FIRST)
        self._resume_at = max(self._resume_at, time.monotonic() + self._backoff)
        if self._deferred_since is None:
            self._deferred_since = time.monotonic()
            log.warning(
                "%s: %s; updates are kept in the spool (%d waiting) and handled when it answers again",
                self.name,
                exc,
                self._pending,
            )
        else:
            log.info(
                "%s: still deferred (%s); %d waiting, next try in %.1f s", self.name, exc, self._pending, self._backoff
            )

    def _recovered(self) -> None:
        self._backoff = 0.0
        if self._deferred_since is not None:
            log.warning(
                "%s: the handler answers again after %.1f s; handling the %d update(s) waiting",
                self.name,
                time.monotonic() - self._deferred_since,
                self._pending,
            )
            self._deferred_since = None

    async def close(self, timeout: float) -> None:
        """Finish the updates in hand within ``timeout`` seconds; what is still running then is cancelled (it
        stays in the spool, as does everything not started: the next run handles it)."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        if self._pending:
            log.info("%s: %d update(s) stay in the spool for the next run", self.name, self._pending)


def fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable too (a fresh spool on a fresh disk)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class DurableInbound:
    """For the webhook adapters (WeCom, DingTalk, Feishu): an :class:`Inbound` is spooled before the callback is
    answered, then handled through a :class:`FairQueue` and answered with :func:`send_reply`. ``accept``
    returns False when it could not be spooled (not started, full, the disk failing): the adapter then answers
    with an error status, and the platform sends the callback again."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        handle: InboundHandler,
        channel: Callable[[], Channel],
        *,
        account: str = "",
        alert_as_text: bool = False,
        workers: int = 8,
    ) -> None:
        self.name = name
        self.account = account
        self.settings = settings
        self.handle = handle
        self.channel = channel  # a callable: some adapters build their channel on first use
        self.alert_as_text = alert_as_text
        self.workers = workers
        self.spool: Spool | None = None
        self.queue: FairQueue | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self.dropped = 0

    async def start(self) -> None:
        if self.queue is None:
            self.spool = Spool(spool_dir(self.settings), spool_name(self.name, self.account))
            self.queue = FairQueue(self.spool, self._work, name=self.name, workers=self.workers)
            await self.queue.start()

    async def accept(self, inbound: Inbound) -> bool:
        if self.queue is None:
            await self.start()
        assert self.spool is not None and self.queue is not None
        if self.queue.full:
            return False
        if self.queue.backlog(inbound.chat_id) >= self.queue.max_per_chat:
            self.dropped += 1
            log.warning(
                "%s: message %s dropped: its chat has %d waiting",
                self.name,
                inbound.external_id,
                self.queue.max_per_chat,
            )
            return True
        payload = json.dumps(dataclasses.asdict(inbound), ensure_ascii=False)
        try:
            added = await self.spool.add([Incoming(inbound.external_id, inbound.chat_id, "pass", payload)])
        except Exception as exc:
            log.error("%s: message %s not spooled (%s)", self.name, inbound.external_id, type(exc).__name__)
            return False
        for entry in added:
            self.queue.push(entry.seq, entry.chat)
        return True

    async def _work(self, entry: Spooled) -> None:
        inbound = Inbound(**json.loads(entry.payload))
        reply = await self.handle(inbound)  # InboundDeferred: the queue keeps it
        if reply is None:
            return
        # Sent beside the queue: a chat waiting on its send limit holds up no worker.
        task = asyncio.create_task(send_reply(self.channel(), inbound, reply, alert_as_text=self.alert_as_text))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def drain(self) -> None:
        """Wait until everything accepted so far is handled and answered (tests)."""
        while (self.queue is not None and len(self.queue)) or self._answering:
            if self._answering:
                await asyncio.wait(set(self._answering))
            else:
                await asyncio.sleep(0.01)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: what is in hand gets ``timeout`` seconds, answers under way a little more; the rest stays in
        the spool for the next run."""
        if self.queue is not None:
            await self.queue.close(timeout)
        if self._answering:
            _, late = await asyncio.wait(set(self._answering), timeout=1.5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.spool is not None:
            await self.spool.close()
        self.spool = self.queue = None
