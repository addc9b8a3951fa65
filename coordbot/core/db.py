"""Database: engines for SQLite (default, embedded) and PostgreSQL, sessions, and alembic upgrades."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

from coordbot.core.paths import migrations_dir

try:
    import fcntl
except ImportError:  # Windows: threads still queue on the gate, processes on SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("coordbot.db")

MIGRATIONS_DIR = migrations_dir()
SQLITE_BUSY_SECONDS = 30


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the settings coordbot relies on (WAL, foreign keys, busy timeout on SQLite)."""
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False, "factory": _GatedConnection},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # connect_timeout: a server that does not answer (a network cut, not a refusal) is an error in seconds,
    # so what waits on it (an inbound update, a stop) is not held forever.
    given = "connect_timeout" in u.query
    timeout = {"connect_timeout": 5} if u.get_backend_name() == "postgresql" and not given else {}
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=timeout)


def _sqlite_on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy, not pysqlite, decide when transactions begin, so BEGIN IMMEDIATE below is honoured.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_on_begin(conn) -> None:  # type: ignore[no-untyped-def]
    # One writer at a time: take the write lock at the start so read-then-write never deadlocks.
    dbapi = conn.connection.dbapi_connection
    if isinstance(dbapi, _GatedConnection):
        dbapi.enter_gate()
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if isinstance(dbapi, _GatedConnection):
            dbapi.leave_gate()
        raise


class _WriterGate:
    """The writers of a database file queue here for its write lock: threads on a lock, processes on a file lock.

    SQLite's busy handler polls with sleeps growing to 100 ms, so writers contending for BEGIN IMMEDIATE
    wait far longer than the transaction ahead of them (measured with threads: 68 ms average, 1.9 s worst,
    for transactions of a few ms; two processes: 34 ms p99, 530 ms worst). Threads get a lock that hands over
    at once, processes (the chat worker beside the main one) an flock on ``<database>-writer.lock`` (two
    processes writing back to back, measured: 1.8 ms p99, 2.6 ms worst). The gate only orders the writers:
    BEGIN IMMEDIATE still takes SQLite's own lock, so a writer that passes without the gate is still correct.
    """

    __slots__ = ("fd", "lock", "owner", "path")

    def __init__(self, path: str) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None
        self.path = path + "-writer.lock"
        self.fd: int | None = None

    def lock_file(self, deadline: float) -> bool:
        """Take the file lock (the thread lock is held); False if the deadline passed or there is no file."""
        if fcntl is None:
            return False
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:  # a read-only directory: SQLite's own locking still applies
                log.warning("no writer lock file %s (%s): processes wait on SQLite's busy handler", self.path, exc)
                return False
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        # Busy: wait in the kernel's queue (fair, handed over at once; polling let the other process take it
        # again and again), on a helper thread so the wait has a deadline.
        fd, taken, gate = self.fd, threading.Event(), threading.Lock()
        state = {"abandoned": False}

        def take() -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with gate:
                if state["abandoned"]:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    return
                taken.set()

        threading.Thread(target=take, name="sqlite-writer-lock", daemon=True).start()
        if taken.wait(max(0.0, deadline - time.monotonic())):
            return True
        with gate:
            if taken.is_set():
                return True
            state["abandoned"] = True
        return False

    def unlock_file(self) -> None:
        if fcntl is not None and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


_GATES: dict[str, _WriterGate] = {}
_GATES_LOCK = threading.Lock()
os.register_at_fork(after_in_child=_GATES.clear)  # a lock held at fork time would never be released


def _gate_for(database: Any) -> _WriterGate | None:
    name = os.fspath(database) if isinstance(database, str | os.PathLike) else ""
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    key = os.path.realpath(name)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = _WriterGate(key)
        return gate


class _GatedConnection(sqlite3.Connection):
    """A pysqlite connection that holds its file's writer gate from BEGIN to COMMIT / ROLLBACK / close."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._gate = _gate_for(database)
        self._holding = False
        self._file_locked = False

    def enter_gate(self) -> None:
        gate = self._gate
        if gate is None or self._holding or gate.owner == threading.get_ident():
            return  # this thread already writes on another connection: SQLite's busy handling decides, as before
        deadline = time.monotonic() + SQLITE_BUSY_SECONDS
        if gate.lock.acquire(timeout=SQLITE_BUSY_SECONDS):
            gate.owner = threading.get_ident()
            self._holding = True
            self._file_locked = gate.lock_file(deadline)
        # else: a holder that never finished; BEGIN IMMEDIATE then waits (and fails) as it would without the gate

    def leave_gate(self) -> None:
        if self._holding:
            self._holding = False
            assert self._gate is not None
            if self._file_locked:
                self._file_locked = False
                self._gate.unlock_file()
            self._gate.owner = None
            self._gate.lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_gate()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_gate()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_gate()


class _HasId(Protocol):
    @property
    def id(self) -> int | None: ...


def row_id(row: _HasId) -> int:
    """The primary key of a row that has been flushed (SQLModel types ``id`` as optional until then)."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: flush the session first")
    return row.id


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


InsertOrIgnore = postgresql.Insert | sqlite.Insert


def insert_or_ignore(bind: Session | Connection | Engine, table: Table, *, key: Sequence[str]) -> InsertOrIgnore:
    """``INSERT INTO table … ON CONFLICT (key) DO NOTHING`` in the dialect of ``bind`` (PostgreSQL or SQLite).

    Add ``.values(…)`` / ``.returning(…)`` as needed; the returned statement is built once per dialect,
    table and key (building a statement costs more than running it on SQLite).
    """
    dialect = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    return _insert_or_ignore(dialect, table, tuple(key))


@lru_cache(maxsize=32)
def _insert_or_ignore(dialect: str, table: Table, key: tuple[str, ...]) -> InsertOrIgnore:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(key))


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").exists():
        raise RuntimeError(f"migrations folder not found at {MIGRATIONS_DIR}; reinstall coordbot (pip install .)")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with alembic (idempotent).

    A database already at the head is recognised without alembic: loading it (and mako, its templates) only
    to find nothing to do would keep several MiB in every long-running process (bench/memory.py)."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


_REVISION = re.compile(r"^revision(?:: str)? = ['\"]([^'\"]+)['\"]", re.M)
_DOWN_REVISION = re.compile(r"^down_revision(?:: [^=]+)? = (.+)$", re.M)


def _script_heads() -> set[str] | None:
    """The revisions no migration file revises, read from the files' headers; None when unsure."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if rev is None or down is None:
            return None  # not the shape alembic writes: let alembic decide
        revisions.add(rev.group(1))
        revised.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return (revisions - revised) or None


def _at_head(engine: Engine) -> bool:
    heads = _script_heads()
    if heads is None:
        return False
    try:
        with engine.connect() as conn:
            current = {row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
    except Exception:  # no alembic_version table yet: a new database
        return False
    return current == heads


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
