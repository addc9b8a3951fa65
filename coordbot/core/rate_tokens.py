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
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Field, SQLModel

from coordbot.core.db import make_engine, normalise_url

log = logging.getLogger("coordbot.db")

NOW = "extract(epoch FROM clock_timestamp())::float8"
LEASE_SECONDS = 60.0  # a token taken and never given back (the process died mid-send) is free again after this


class RateToken(SQLModel, table=True):
    __tablename__ = "rate_token"

    key: str = Field(primary_key=True, max_length=96)
    slot: int = Field(primary_key=True)
    free_at: float = 0.0  # epoch seconds on the database server's clock
    holder: str | None = Field(default=None, max_length=64)


_TAKE = text(
    f"""
    WITH pick AS (
        SELECT key, slot FROM rate_token
        WHERE key = :key AND free_at <= {NOW}
        ORDER BY free_at LIMIT 1 FOR UPDATE SKIP LOCKED
    ), took AS (
        UPDATE rate_token r SET free_at = {NOW} + :lease, holder = :holder
        FROM pick WHERE r.key = pick.key AND r.slot = pick.slot
        RETURNING r.slot
    )
    SELECT (SELECT slot FROM took) AS slot,
           (SELECT min(free_at) FROM rate_token WHERE key = :key AND holder IS NULL) - {NOW} AS wait,
           (SELECT count(*) FROM rate_token WHERE key = :key) AS tokens
    """
)
_CREATE = text(
    "INSERT INTO rate_token (key, slot, free_at) SELECT :key, s, 0 FROM generate_series(0, :capacity - 1) AS s "
    "ON CONFLICT DO NOTHING"
)
_GIVE = text(
    f"UPDATE rate_token SET free_at = {NOW} + :window, holder = NULL "
    "WHERE key = :key AND slot = :slot AND holder = :holder"
)
_PAUSE = text(f"UPDATE rate_token SET free_at = greatest(free_at, {NOW} + :seconds) WHERE key = :key")


class SharedTokens:
    """The token rows of one database, used from a thread (``asyncio.to_thread``): each call is one statement."""

    def __init__(self, engine: Engine, holder: str) -> None:
        self.engine = engine
        self.holder = holder[:64]

    def take(self, key: str, capacity: int, lease: float = LEASE_SECONDS) -> tuple[int | None, float | None]:
        """Take a free token of ``key``: (its slot, None), or (None, seconds until one may be free, or None when
        every token is in flight). ``capacity`` rows are made on first use."""
        with self.engine.begin() as conn:
            row: Any = conn.execute(_TAKE, {"key": key, "lease": lease, "holder": self.holder}).one()
            if row.slot is None and row.tokens < capacity:
                conn.execute(_CREATE, {"key": key, "capacity": capacity})
                return None, 0.0
        return row.slot, (None if row.slot is not None or row.wait is None else max(0.0, float(row.wait)))

    def give(self, key: str, slot: int, window: float) -> None:
        """Give a token back after its send has ended: free again ``window`` seconds from now."""
        with self.engine.begin() as conn:
            conn.execute(_GIVE, {"key": key, "slot": slot, "window": window, "holder": self.holder})

    def pause(self, key: str, seconds: float) -> None:
        """No token of ``key`` is free for ``seconds`` (the platform asked us to wait)."""
        with self.engine.begin() as conn:
            conn.execute(_PAUSE, {"key": key, "seconds": seconds})


def shares_tokens(database_url: str) -> bool:
    """Whether processes on this database share their limits: PostgreSQL (several instances); SQLite has one."""
    return make_url(normalise_url(database_url)).get_backend_name() == "postgresql"


def open_shared_tokens(database_url: str) -> SharedTokens:
    """The shared tokens on a database engine of their own (a send must not queue behind a long query)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return SharedTokens(make_engine(database_url), holder=holder)
