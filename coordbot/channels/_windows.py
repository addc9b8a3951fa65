"""Sliding-window rate limits as a platform counts requests on arrival (Feishu's app and receiver limits,
the group robots' limits).

A request holds a place from the moment it is sent until the window's length after its answer came back:
the platform saw it somewhere in between, so however the network delays one request against another, no
window on the platform's side holds more than the limit (a token bucket, or stamps taken at sending, would
let network jitter push two requests closer together than we spaced them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence


class SlidingWindows:
    """At most ``n`` requests in any ``seconds`` window, for each (n, seconds) given; FIFO.

    A request holds its slot while in flight and the slot is stamped when the answer came back, so the
    platform (which saw the request somewhere between our send and its answer) never counts more than ``n``
    in a window of ``seconds``, however long a request took. ``pause`` holds every request until a time
    (after the platform said we went over).
    """

    def __init__(self, windows: Sequence[tuple[int, float]], clock: Callable[[], float] = time.monotonic) -> None:
        self.windows = [(n, seconds, deque[float]()) for n, seconds in windows]
        self.clock = clock
        self._inflight = 0
        self._not_before = 0.0
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()

    def _wait(self, now: float) -> float | None:
        """Seconds until one more request may start; None when only a request in flight can free a slot."""
        wait = self._not_before - now
        for n, seconds, stamps in self.windows:
            while stamps and stamps[0] <= now - seconds:
                stamps.popleft()
            excess = len(stamps) + self._inflight - n + 1  # stamps that must age out first
            if excess <= 0:
                continue
            if excess > len(stamps):
                return None
            wait = max(wait, stamps[excess - 1] + seconds - now)
        return wait

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                wait = self._wait(self.clock())
                if wait is None:
                    self._released.clear()
                    await self._released.wait()
                elif wait > 0:
                    await asyncio.sleep(wait)
                else:
                    self._inflight += 1
                    return

    def release(self) -> None:
        now = self.clock()
        self._inflight -= 1
        for _, _, stamps in self.windows:
            stamps.append(now)
        self._released.set()

    def pause(self, seconds: float) -> None:
        self._not_before = max(self._not_before, self.clock() + seconds)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
