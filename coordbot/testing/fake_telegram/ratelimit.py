"""Telegram's documented flood limits as sliding windows on a monotonic clock."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass
class RateLimits:
    """Limits for "sendMessage-type" calls; mutable at runtime (``server.rate_limits.enabled = False``).

    ``slack`` shortens every window a little so a client that sleeps exactly ``1 / rate`` seconds is not
    punished for timer jitter; a burst still fails.
    """

    enabled: bool = True
    global_per_second: int = 30
    per_chat_interval: float = 1.0
    group_per_minute: int = 20
    slack: float = 0.05


class RateLimiter:
    """Decides whether one more send is allowed; only accepted sends are recorded."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._global: deque[float] = deque()
        self._last_per_chat: dict[int, float] = {}
        self._group: dict[int, deque[float]] = {}

    def check(self, chat_id: int, is_group: bool, now: float) -> int | None:
        """Return ``retry_after`` (>= 1) if the send must be refused, else record the send and return None."""
        lim = self.limits
        if not lim.enabled:
            return None
        waits: list[float] = []

        window = max(0.0, 1.0 - lim.slack)
        while self._global and self._global[0] <= now - window:
            self._global.popleft()
        if len(self._global) >= lim.global_per_second:
            waits.append(self._global[len(self._global) - lim.global_per_second] + window - now)

        last = self._last_per_chat.get(chat_id)
        interval = max(0.0, lim.per_chat_interval - lim.slack)
        if last is not None and now - last < interval:
            waits.append(last + lim.per_chat_interval - now)

        group_q: deque[float] | None = None
        if is_group:
            group_q = self._group.setdefault(chat_id, deque())
            gwindow = max(0.0, 60.0 - lim.slack)
            while group_q and group_q[0] <= now - gwindow:
                group_q.popleft()
            if len(group_q) >= lim.group_per_minute:
                waits.append(group_q[len(group_q) - lim.group_per_minute] + 60.0 - now)

        if waits:
            return max(1, math.ceil(max(waits)))
        self._global.append(now)
        self._last_per_chat[chat_id] = now
        if group_q is not None:
            group_q.append(now)
        return None

    def reset(self) -> None:
        self._global.clear()
        self._last_per_chat.clear()
        self._group.clear()
