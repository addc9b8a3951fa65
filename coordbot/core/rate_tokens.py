"""Rate-limit tokens shared by every process on one PostgreSQL database (DESIGN decision 9).

A limit "at most ``capacity`` sends in any ``window`` seconds" is ``capacity`` rows of ``rate_token`` under one
key. A send takes a free row (one atomic UPDATE … RETURNING, ``FOR UPDATE SKIP LOCKED``) before its request
goes out and gives it back after the answer has come, free again ``window`` seconds later. A token is held
from before the platform receives the request until after it has, so any window of the platform's own
clock holds at most ``capacity`` sends, however late a process wakes or a request travels. Times are the
database server's clock (``clock_timestamp()``), so the processes' clocks need not agree. A token held
by a process that died comes back when its lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Field, SQLModel

from coordbot.core.db import normalise_url

log = logging.getLogger("coordbot.db")

NOW = "extract(epoch FROM clock_timestamp())::float8"
# A token taken and never given back (its process died mid-send) is free again after this: longer than a send
# takes (python-telegram-bot gives up on a request after 5 s connecting and 5 s reading), short enough that a
# crash holds up its chats only briefly. A send that outlives it risks a 429, which is retried.
LEASE_SECONDS = 10.0


class RateToken(SQLModel, table=True):
    __tablename__ = "rate_token"

    key: str = Field(primary_key=True, max_length=96)
    slot: int = Field(primary_key=True)
    free_at: float = 0.0  # epoch seconds on the database server's clock
    holder: str | None = Field(default=None, max_length=64)


# Takes one free token of every key asked for, or none (a send needs them all); says per key whether one was
# free, how many rows it has (made on first use) and how long until its next token given back is free.
_TAKE = text(
    f"""
    WITH want AS (
        SELECT * FROM unnest(CAST(:keys AS varchar[])) AS w(key)
    ), pick AS (
        SELECT p.key, p.slot FROM want w CROSS JOIN LATERAL (
            SELECT t.key, t.slot FROM rate_token t
            WHERE t.key = w.key AND t.free_at <= {NOW}
            ORDER BY t.free_at LIMIT 1 FOR UPDATE SKIP LOCKED
        ) p
    ), took AS (
        UPDATE rate_token r SET free_at = {NOW} + :lease, holder = :holder
        FROM pick WHERE r.key = pick.key AND r.slot = pick.slot
            AND (SELECT count(*) FROM pick) = (SELECT count(*) FROM want)
        RETURNING r.key, r.slot
    )
    SELECT w.key,
           (SELECT slot FROM took WHERE took.key = w.key) AS slot,
           EXISTS (SELECT 1 FROM pick WHERE pick.key = w.key) AS free,
           (SELECT count(*) FROM rate_token t WHERE t.key = w.key) AS tokens,
           (SELECT min(free_at) FROM rate_token t WHERE t.key = w.key AND t.holder IS NULL) - {NOW} AS wait
    FROM want w
    """
)
_CREATE = text(
    "INSERT INTO rate_token (key, slot, free_at) SELECT :key, s, 0 FROM generate_series(0, :capacity - 1) AS s "
    "ON CONFLICT DO NOTHING"
)
_GIVE = text(
    f"""
    UPDATE rate_token r SET free_at = {NOW} + v.w, holder = NULL
    FROM unnest(CAST(:keys AS varchar[]), CAST(:slots AS integer[]), CAST(:windows AS float8[])) AS v(key, slot, w)
    WHERE r.key = v.key AND r.slot = v.slot AND r.holder = :holder
    """
)
_PAUSE = text(f"UPDATE rate_token SET free_at = greatest(free_at, {NOW} + :seconds) WHERE key = :key")


@dataclass(frozen=True)
class Limit:
    key: str
    capacity: int
    window: float  # seconds a token given back stays taken


@dataclass
class Taken:
    """What one take did: the slots taken (every key's, or none), and for each key not free, how long until
    one of its tokens may be (None: every one is in flight)."""

    slots: dict[str, int]
    short: dict[str, float | None]


class SharedTokens:
    """The token rows of one database, used from a thread (``asyncio.to_thread``): each call is one statement."""

    def __init__(self, engine: Engine, holder: str) -> None:
        self.engine = engine
        self.holder = holder[:64]

    def take(self, limits: Sequence[Limit], lease: float = LEASE_SECONDS) -> Taken:
        """Take one free token of each limit, all or none; rows are made on first use."""
        keys = [lim.key for lim in limits]
        with self.engine.connect() as conn:
            rows: list[Any] = list(conn.execute(_TAKE, {"keys": keys, "lease": lease, "holder": self.holder}))
            missing = [lim for lim, row in zip(limits, rows, strict=True) if row.tokens < lim.capacity]
            for lim in missing:
                conn.execute(_CREATE, {"key": lim.key, "capacity": lim.capacity})
        if missing:
            return Taken({}, {lim.key: 0.0 for lim in missing})
        slots = {row.key: row.slot for row in rows if row.slot is not None}
        short = {row.key: (None if row.wait is None else max(0.0, float(row.wait))) for row in rows if not row.free}
        return Taken(slots, short)

    def give(self, limits: Sequence[Limit], slots: dict[str, int]) -> None:
        """Give tokens back after their send has ended: each free again its limit's window from now."""
        given = [lim for lim in limits if lim.key in slots]
        if not given:
            return
        with self.engine.connect() as conn:
            conn.execute(
                _GIVE,
                {
                    "keys": [lim.key for lim in given],
                    "slots": [slots[lim.key] for lim in given],
                    "windows": [lim.window for lim in given],
                    "holder": self.holder,
                },
            )

    def pause(self, key: str, seconds: float) -> None:
        """No token of ``key`` is free for ``seconds`` (the platform asked us to wait)."""
        with self.engine.connect() as conn:
            conn.execute(_PAUSE, {"key": key, "seconds": seconds})


def shares_tokens(database_url: str) -> bool:
    """Whether processes on this database share their limits: PostgreSQL (several instances); SQLite has one."""
    return make_url(normalise_url(database_url)).get_backend_name() == "postgresql"


def open_shared_tokens(database_url: str) -> SharedTokens:
    """The shared tokens on a database engine of their own (a send must not queue behind a long query): each
    statement its own transaction (autocommit: one round trip, no BEGIN and COMMIT), no ping on checkout."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    engine = create_engine(normalise_url(database_url), pool_size=4, max_overflow=8, isolation_level="AUTOCOMMIT")
    return SharedTokens(engine, holder=holder)
