"""Telegram's delivery limits, enforced on our side so the server never has to refuse us.

At most 30 messages per second overall, one per second to a chat, 20 per minute to a group. PTB's
AIORateLimiter has the overall and group limits but not the per-chat one. Here each limit is a pool of
tokens: "``capacity`` sends in any ``window`` seconds" is ``capacity`` tokens, a send takes one of each pool
it falls under (its chat's, its group's, the overall one) before its request goes out and gives them back
when the answer has come, free again ``window`` seconds later. A token is held across the moment Telegram
receives the request, so any window on Telegram's side holds at most ``capacity`` of them however long a
request waited or travelled (a gap counted from the request going out, not from its arrival, drew a 429
whenever one request travelled slower than the next). Bursts up to a limit are allowed, as Telegram allows
them: 20 groups each get a message within the same second, and a group its first 20 messages a second apart.

One process keeps its pools in memory. Several processes on one PostgreSQL database share them through the
``rate_token`` table (:mod:`coordbot.core.rate_tokens`), so their sends together keep every limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from coordbot.core import metrics
from coordbot.core.rate_tokens import SharedTokens

log = logging.getLogger("coordbot.channels.telegram")

# Methods that deliver a message to a chat: those are what Telegram counts.
SENDING = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "sendMediaGroup",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendAnimation",
        "sendSticker",
        "sendLocation",
        "sendContact",
        "sendPoll",
        "copyMessage",
        "forwardMessage",
    }
)


UNLIMITED = 1000  # a pool of more tokens a second than this is no limit (tests and benchmarks open the limits)
POLL = 0.02  # seconds between looks at a shared pool whose every token is in flight


class _Pool:
    """``capacity`` tokens in this process; a token given back is free again ``window`` seconds later."""

    def __init__(self, capacity: float, window: float) -> None:
        self.capacity = capacity
        self.window = window
        self.in_flight = 0
        self.returns: deque[float] = deque()  # when the tokens given back are free again, oldest first
        self.paused_until = 0.0
        self.lock = asyncio.Lock()  # waiters take their turn in the order they came
        self.changed = asyncio.Event()

    def _wait(self, now: float) -> float | None:
        """Seconds until a token is free (0: now), or None while every token is in flight."""
        while self.returns and self.returns[0] <= now:
            self.returns.popleft()
        if now < self.paused_until:
            return self.paused_until - now
        if self.in_flight + len(self.returns) < self.capacity:
            return 0.0
        return self.returns[0] - now if self.returns else None

    def idle(self, now: float) -> bool:
        return not self.lock.locked() and self.in_flight == 0 and self._wait(now) == 0.0 and not self.returns

    async def take(self) -> None:
        async with self.lock:
            while (wait := self._wait(time.monotonic())) != 0.0:
                if wait is None:
                    self.changed.clear()
                    await self.changed.wait()
                else:
                    await asyncio.sleep(wait)
            self.in_flight += 1

    async def give(self, _slot: int | None) -> None:
        self.in_flight -= 1
        self.returns.append(time.monotonic() + self.window)
        self.changed.set()

    async def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class _SharedPool:
    """The same pool kept in the database, for every process on it; this process's own waiters queue here
    first, so one of them at a time asks the database."""

    def __init__(self, tokens: SharedTokens, key: str, capacity: float, window: float) -> None:
        self.tokens = tokens
        self.key = key
        self.capacity = int(capacity)
        self.window = window
        self.lock = asyncio.Lock()
        self.changed = asyncio.Event()
        self.in_flight = 0

    def idle(self, now: float) -> bool:
        return not self.lock.locked() and self.in_flight == 0

    async def take(self) -> int:
        async with self.lock:
            while True:
                slot, wait = await asyncio.to_thread(self.tokens.take, self.key, self.capacity)
                if slot is not None:
                    self.in_flight += 1
                    return slot
                if wait is None or wait <= 0:  # in flight (here or elsewhere), or taken meanwhile: look again
                    self.changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), POLL)
                else:
                    await asyncio.sleep(wait)

    async def give(self, slot: int | None) -> None:
        assert slot is not None
        self.in_flight -= 1
        await asyncio.to_thread(self.tokens.give, self.key, slot, self.window)
        self.changed.set()

    async def pause(self, seconds: float) -> None:
        await asyncio.to_thread(self.tokens.pause, self.key, seconds)


Pool = _Pool | _SharedPool


class TelegramRateLimiter(BaseRateLimiter[int]):
    def __init__(
        self,
        *,
        overall_per_second: float = 30,
        chat_interval: float = 1.0,
        group_per_minute: float = 20,
        max_retries: int = 2,
        shared: Callable[[], SharedTokens] | None = None,
        key: str = "telegram",
    ) -> None:
        self._overall_per_second = overall_per_second
        self._chat_interval = chat_interval
        self._group_per_minute = group_per_minute
        self._max_retries = max_retries
        self._shared_factory = shared  # built on initialize: a database engine of its own
        self._shared: SharedTokens | None = None
        self._key = key
        self._overall: Pool | None = None
        self._chats: dict[int | str, tuple[Pool, Pool | None]] = {}
        self._retry_gate = asyncio.Event()
        self._retry_gate.set()

    async def initialize(self) -> None:
        """Open the shared pools' database when the limits are shared across processes."""
        if self._shared_factory is not None and self._shared is None:
            self._shared = self._shared_factory()

    async def shutdown(self) -> None:
        """Close the shared pools' database."""
        shared, self._shared = self._shared, None
        self._overall = None
        self._chats.clear()
        if shared is not None:
            await asyncio.to_thread(shared.engine.dispose)

    def _pool(self, key: str, capacity: float, window: float) -> Pool | None:
        if capacity / window > UNLIMITED:
            return None
        if self._shared is not None:
            return _SharedPool(self._shared, f"{self._key}:{key}", capacity, window)
        return _Pool(capacity, window)

    def _pools(self, chat_id: int | str) -> list[Pool]:
        """The pools a send to ``chat_id`` takes a token of: the chat's, a group's, the overall one, in this
        order (a send never holds an overall token while it waits for its chat)."""
        if self._overall is None:
            self._overall = self._pool("all", self._overall_per_second, 1.0)
        pools = self._chats.get(chat_id)
        if pools is None:
            group = isinstance(chat_id, str) or chat_id < 0
            chat = self._pool(f"chat:{chat_id}", 1, self._chat_interval) or _Pool(1, 0.0)
            pools = (chat, self._pool(f"group:{chat_id}", self._group_per_minute, 60.0) if group else None)
            if len(self._chats) > 10_000:  # forget chats with nothing in flight or waiting
                now = time.monotonic()
                for k in [k for k, (c, g) in self._chats.items() if c.idle(now) and (g is None or g.idle(now))]:
                    del self._chats[k]
            self._chats[chat_id] = pools
        return [p for p in (*pools, self._overall) if p is not None]

    async def _acquire(self, chat_id: int | str) -> list[tuple[Pool, int | None]]:
        """Take a token of each pool the send falls under, waiting as long as that takes."""
        held: list[tuple[Pool, int | None]] = []
        try:
            for pool in self._pools(chat_id):
                held.append((pool, await pool.take()))
        except BaseException:
            await self._release(held)
            raise
        return held

    async def _release(self, held: list[tuple[Pool, int | None]]) -> None:
        for pool, slot in reversed(held):
            await pool.give(slot)

    async def _pause_all(self, seconds: float) -> None:
        if self._overall is not None:
            await self._overall.pause(seconds)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Take the send's tokens, call, give them back once answered; a 429 waits retry_after and tries again."""
        max_retries = self._max_retries if rate_limit_args is None else rate_limit_args
        chat_id = data.get("chat_id")
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id)  # type: ignore[arg-type]
        limited = endpoint in SENDING and chat_id is not None
        for attempt in range(max_retries + 1):
            await self._retry_gate.wait()
            held = await self._acquire(chat_id) if limited else []  # type: ignore[arg-type]
            try:
                result = await callback(*args, **kwargs)
            except RetryAfter as exc:
                await self._release(held)
                if attempt == max_retries:
                    raise  # counted where the error arrives (coordbot.core.metrics.timed_send)
                metrics.RATE_LIMITED.labels("telegram").inc()
                pause = exc._retry_after.total_seconds() + 0.1
                log.info("Telegram asked to retry after %.1fs", pause)
                await self._pause_all(pause)  # other processes sharing the pools wait too
                self._retry_gate.clear()  # hold every other request too: the limit is per bot
                try:
                    await asyncio.sleep(pause)
                finally:
                    self._retry_gate.set()
                continue
            except BaseException:
                await self._release(held)
                raise
            await self._release(held)
            return result
        raise AssertionError("unreachable")  # pragma: no cover
