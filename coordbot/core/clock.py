"""Clocks: the system clock in production, a settable one in tests and the accelerated demo."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware time")
        self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


class ScaledClock:
    """A clock that says ``start`` when first read and from then on runs ``speed`` times as fast as the wall
    clock (from the first reading, so however long a process takes to start, it begins at ``start``).

    What the ``clock_start`` / ``clock_speed`` settings give a real ``coordbot run`` process in the fault tests
    and demos: a Monday 09:25 whatever the day, and minutes that pass in seconds, so retry back-offs, leases
    and grace windows keep their real values and a test still takes seconds.
    """

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock needs a timezone-aware start time")
        if not speed > 0:
            raise ValueError(f"ScaledClock speed must be > 0, got {speed!r}")
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._t0: float | None = None

    def now(self) -> datetime:
        t = time.monotonic()
        if self._t0 is None:
            self._t0 = t
        return self._start + timedelta(seconds=(t - self._t0) * self._speed)


def configured_clock(start: str, speed: float = 1.0) -> Clock:
    """The system clock, or a :class:`ScaledClock` from an ISO time with its offset (``clock_start``)."""
    if not start:
        return SystemClock() if speed == 1.0 else ScaledClock(datetime.now(UTC), speed)
    return ScaledClock(datetime.fromisoformat(start), speed)


def utcnow() -> datetime:
    return datetime.now(UTC)
