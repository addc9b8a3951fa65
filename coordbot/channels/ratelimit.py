"""Telegram's delivery limits, enforced on our side so the server never has to refuse us.

At most 30 messages per second overall, one per second to a chat, 20 per minute to a group. PTB's
AIORateLimiter has the overall and group limits but not the per-chat one, and its buckets allow bursts
that a sliding window counts against us; here every limit is a strict spacing (a leaky bucket of size one),
so any window of the stated length holds at most the stated number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from coordbot.core import metrics

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


class _ChatSlot:
    __slots__ = ("interval", "lock", "next_at")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.lock = asyncio.Lock()
        self.next_at = 0.0


class TelegramRateLimiter(BaseRateLimiter[int]):
    def __init__(
        self,
        *,
        overall_per_second: float = 30,
        chat_interval: float = 1.0,
        group_per_minute: float = 20,
        max_retries: int = 2,
    ) -> None:
        self._overall = AsyncLimiter(1, 1 / overall_per_second)
        self._chat_interval = chat_interval
        self._group_interval = 60 / group_per_minute
        self._max_retries = max_retries
        # Per chat: a lock (one sender waits for the chat at a time) and when the chat may be written next,
        # counted from the moment a request really goes out, not from when it began waiting for the
        # overall slot (a send that waited long for that slot would otherwise leave the chat's next
        # message too little room, and Telegram answers 429).
        self._chats: dict[int | str, _ChatSlot] = {}
        self._retry_gate = asyncio.Event()
        self._retry_gate.set()

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    def _chat_slot(self, chat_id: int | str) -> _ChatSlot:
        now = time.monotonic()
        slot = self._chats.get(chat_id)
        if slot is None:
            group = isinstance(chat_id, str) or (isinstance(chat_id, int) and chat_id < 0)
            slot = _ChatSlot(self._group_interval if group else self._chat_interval)
            if len(self._chats) > 10_000:  # forget chats idle for a while (nobody waiting, next send long free)
                idle = [k for k, v in self._chats.items() if not v.lock.locked() and now - v.next_at > 120]
                for k in idle:
                    del self._chats[k]
            self._chats[chat_id] = slot
        return slot

    async def _acquire(self, chat_id: int | str) -> None:
        """Wait until both the chat and the overall limit allow a send now, and book it."""
        slot = self._chat_slot(chat_id)
        async with slot.lock:
            delay = slot.next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self._overall:
                pass
            slot.next_at = time.monotonic() + slot.interval

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Wait for the chat's and the overall slot, then call; a 429 waits retry_after and tries again."""
        max_retries = self._max_retries if rate_limit_args is None else rate_limit_args
        chat_id = data.get("chat_id")
        with contextlib.suppress(TypeError, ValueError):
            chat_id = int(chat_id)  # type: ignore[arg-type]
        limited = endpoint in SENDING and chat_id is not None
        for attempt in range(max_retries + 1):
            await self._retry_gate.wait()
            if limited:
                await self._acquire(chat_id)  # type: ignore[arg-type]
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == max_retries:
                    raise  # counted where the error arrives (coordbot.core.metrics.timed_send)
                metrics.RATE_LIMITED.labels("telegram").inc()
                pause = exc._retry_after.total_seconds() + 0.1
                log.info("Telegram asked to retry after %.1fs", pause)
                self._retry_gate.clear()  # hold every other request too: the limit is per bot
                try:
                    await asyncio.sleep(pause)
                finally:
                    self._retry_gate.set()
        raise AssertionError("unreachable")  # pragma: no cover
