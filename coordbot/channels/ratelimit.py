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
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from coordbot.core import metrics
from coordbot.core.rate_tokens import Limit, SharedTokens

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


UNLIMITED = 1000  # a limit of this many sends a second or more is no limit (tests and benchmarks open the limits)
POLL = 0.02  # seconds between looks at a shared pool whose every token is in flight


def _limited(capacity: float, window: float) -> bool:
    return window > 0 and capacity / window < UNLIMITED


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

    def give(self) -> None:
        self.in_flight -= 1
        self.returns.append(time.monotonic() + self.window)
        self.changed.set()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class _SharedLimits:
    """The pools kept in the database for every process on it: one statement takes all of a send's tokens (or
    none), one gives them back. In this process a chat's sends queue on a lock of their own, and takes go
    one at a time: the first waiting for the overall limit keeps its turn, one waiting for its chat does not."""

    def __init__(self, tokens: SharedTokens) -> None:
        self.tokens = tokens
        self.gate = asyncio.Lock()
        self.changed = asyncio.Event()
        self.chats: dict[str, asyncio.Lock] = {}

    def _chat_lock(self, key: str) -> asyncio.Lock:
        lock = self.chats.get(key)
        if lock is None:
            if len(self.chats) > 10_000:
                for k in [k for k, v in self.chats.items() if not v.locked()]:
                    del self.chats[k]
            lock = self.chats[key] = asyncio.Lock()
        return lock

    async def _pause(self, wait: float | None) -> None:
        if wait is None or wait <= 0:  # in flight (here or elsewhere), or just taken by another: look again soon
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), POLL)
        else:
            await asyncio.sleep(wait)

    async def _take(self, limits: list[Limit], overall: str | None) -> dict[str, int]:
        while overall is None:  # the chat's own limit only (its lock is held): no turn to keep
            taken = await asyncio.to_thread(self.tokens.take, limits)
            if taken.slots:
                return taken.slots
            waits = list(taken.short.values())
            await self._pause(None if None in waits else max(w for w in waits if w is not None))
        while True:
            async with self.gate:
                while True:
                    taken = await asyncio.to_thread(self.tokens.take, limits)
                    if taken.slots:
                        return taken.slots
                    if set(taken.short) - {overall}:
                        break  # the chat or its group is not free: wait without holding up other chats
                    await self._pause(taken.short[overall or ""])
            waits = [w for k, w in taken.short.items() if k != overall]
            await self._pause(None if None in waits else max(w for w in waits if w is not None))

    @contextlib.asynccontextmanager
    async def hold(self, chat: str, limits: list[Limit], overall: str | None) -> AsyncIterator[None]:
        async with self._chat_lock(chat):
            slots = await self._take(limits, overall) if limits else {}
            try:
                yield
            finally:
                await asyncio.to_thread(self.tokens.give, limits, slots)
                self.changed.set()

    async def pause(self, key: str, seconds: float) -> None:
        await asyncio.to_thread(self.tokens.pause, key, seconds)


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
        self._shared_factory = shared  # opened on initialize: a database engine of its own
        self._shared: _SharedLimits | None = None
        self._key = key
        self._overall: _Pool | None = None
        self._chats: dict[int | str, tuple[_Pool, _Pool | None]] = {}
        self._retry_gate = asyncio.Event()
        self._retry_gate.set()

    async def initialize(self) -> None:
        """Open the shared pools' database when the limits are shared across processes."""
        if self._shared_factory is not None and self._shared is None:
            self._shared = _SharedLimits(self._shared_factory())

    async def shutdown(self) -> None:
        """Close the shared pools' database."""
        shared, self._shared = self._shared, None
        if shared is not None:
            await asyncio.to_thread(shared.tokens.engine.dispose)

    def _limits(self, chat_id: int | str) -> list[tuple[str, float, float]]:
        """(name, capacity, window) of each limit a send to ``chat_id`` falls under: its chat's, a group's,
        the overall one, in this order (a send never holds an overall token while it waits for its chat);
        a limit opened up beyond ``UNLIMITED`` a second is left out."""
        group = isinstance(chat_id, str) or chat_id < 0
        limits = [(f"chat:{chat_id}", 1.0, self._chat_interval)]
        if group:
            limits.append((f"group:{chat_id}", self._group_per_minute, 60.0))
        limits.append(("all", self._overall_per_second, 1.0))
        return [lim for lim in limits if _limited(lim[1], lim[2])]

    def _pools(self, chat_id: int | str) -> list[_Pool]:
        if self._overall is None:
            self._overall = _Pool(self._overall_per_second, 1.0)
        pools = self._chats.get(chat_id)
        if pools is None:
            group = isinstance(chat_id, str) or chat_id < 0
            # A chat's sends take their turn even with its limit opened up (a window of 0): in order.
            chat = _Pool(1, self._chat_interval if _limited(1, self._chat_interval) else 0.0)
            pools = (chat, _Pool(self._group_per_minute, 60.0) if group else None)
            if len(self._chats) > 10_000:  # forget chats with nothing in flight or waiting
                now = time.monotonic()
                for k in [k for k, (c, g) in self._chats.items() if c.idle(now) and (g is None or g.idle(now))]:
                    del self._chats[k]
            self._chats[chat_id] = pools
        chat_pool, group_pool = pools
        rest = (p for p in (group_pool, self._overall) if p is not None and _limited(p.capacity, p.window))
        return [chat_pool, *rest]

    @contextlib.asynccontextmanager
    async def _hold(self, chat_id: int | str) -> AsyncIterator[None]:
        """Hold a token of each limit the send falls under, from before its request goes out until its answer
        has come; waiting as long as that takes."""
        if self._shared is not None:
            limits = [Limit(f"{self._key}:{name}", int(cap), window) for name, cap, window in self._limits(chat_id)]
            overall = next((lim.key for lim in limits if lim.key.endswith(":all")), None)
            async with self._shared.hold(f"chat:{chat_id}", limits, overall):
                yield
            return
        held: list[_Pool] = []
        try:
            for pool in self._pools(chat_id):
                await pool.take()
                held.append(pool)
            yield
        finally:
            for pool in reversed(held):
                pool.give()

    async def _pause_all(self, seconds: float) -> None:
        if self._shared is not None:
            await self._shared.pause(f"{self._key}:all", seconds)
        elif self._overall is not None:
            self._overall.pause(seconds)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Hold the send's tokens while calling; a 429 waits retry_after and tries again."""
        max_retries = self._max_retries if rate_limit_args is None else rate_limit_args
        chat_id = data.get("chat_id")
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id)  # type: ignore[arg-type]
        limited = endpoint in SENDING and chat_id is not None
        for attempt in range(max_retries + 1):
            await self._retry_gate.wait()
            try:
                if not limited:
                    return await callback(*args, **kwargs)
                async with self._hold(chat_id):  # type: ignore[arg-type]
                    return await callback(*args, **kwargs)
            except RetryAfter as exc:
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
        raise AssertionError("unreachable")  # pragma: no cover
