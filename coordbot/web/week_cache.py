"""The week's roll-up of a plan, kept in the process until the next event is written.

``reports.rollup.build_rollup`` reads the whole plan (a province-size one: hundreds of milliseconds); the
dashboard asks for the same week over and over between writes. Every state change writes an ``Event`` row in
its transaction (DESIGN, decision 3), so the event log's *revision* says whether anything a roll-up reads may
have changed. The cache is per process and keyed by that revision (read by one cheap query per request), so a
write by any process — the bot, a worker, another web instance on PostgreSQL — invalidates it at the next
request.

The revision is the highest ``Event.id`` *and* how many events sit among the last ``REVISION_WINDOW`` ids: on
PostgreSQL ids are handed out before commit, so a transaction may commit an id below one already seen; the
count sees it land (within the window). ``MAX_AGE`` bounds what the revision could still miss (a transaction
left open across more than the window's events, or clocks of several processes apart).

What is kept holds no ORM objects (they expire with their session): the period, the groups of task lines,
the counts and the silent departments, all plain values the pages only read.

A kept province-size roll-up is some 27,000 objects (5,000 task lines, their lists) in a process of ~200,000;
the collector's cost is the process's, not the roll-up's: ``web.collector`` keeps a page's short-lived objects
from setting off full collections. Nothing here touches the collector (an earlier ``gc.collect()`` and
``gc.freeze()`` after each build cost a full collection per write and froze the bot's objects too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from coordbot.core.events import Event
from coordbot.plan.models import Plan
from coordbot.reports.rollup import DepartmentLine, GroupLine, Period, build_rollup, week_period
from coordbot.scheduling.calendar import WorkCalendar

REVISION_WINDOW = 10_000
MAX_AGE = 60.0  # seconds (monotonic)
MAX_ENTRIES = 8  # plans (and weeks) kept; the oldest goes first

Revision = tuple[int, int]


def event_revision(session: Session) -> Revision:
    """(highest event id, events among the last REVISION_WINDOW ids): one index range query."""
    top = sa_select(func.coalesce(func.max(col(Event.id)), 0)).scalar_subquery()
    row = session.connection().execute(
        sa_select(func.coalesce(func.max(col(Event.id)), 0), func.count(col(Event.id))).where(
            col(Event.id) > top - REVISION_WINDOW
        )
    )
    high, count = row.one()
    return int(high or 0), int(count or 0)


@dataclass(frozen=True, slots=True)
class WeekRollup:
    """What the dashboard reads of a week's roll-up, detached from any session."""

    plan_id: int
    period: Period
    as_of: date
    generated_at: datetime
    groups: list[GroupLine]
    counts: dict[str, Any]
    silent_departments: list[DepartmentLine]
    revision: Revision


@dataclass
class WeekRollupCache:
    """Per process (one per desk); thread-safe, since pages read the database on worker threads."""

    max_age: float = MAX_AGE
    clock: Callable[[], float] = time.monotonic
    builds: int = 0  # how many roll-ups were built (tests and the benchmark read it)
    _entries: dict[tuple[int, str, date], tuple[float, WeekRollup]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, *, session: Session, plan: Plan, now: datetime, calendar: WorkCalendar) -> WeekRollup:
        """This week's roll-up of ``plan`` as of ``now``: the kept one if no event was written since, else built."""
        period = week_period(plan=plan, now=now)
        # as_of (today) is in the key: colours, due-soon and overdue days move with the date, not with events
        key = (int(plan.id or 0), period.label, now.astimezone(calendar.tz).date())
        revision = event_revision(session)
        with self._lock:  # one build at a time: concurrent misses wait for it rather than each building
            kept = self._entries.get(key)
            if kept is not None and kept[1].revision == revision and self.clock() - kept[0] < self.max_age:
                return kept[1]
            rollup = build_rollup(session=session, plan=plan, period=period, now=now, calendar=calendar)
            week = WeekRollup(
                plan_id=key[0],
                period=rollup.period,
                as_of=rollup.as_of,
                generated_at=rollup.generated_at,
                groups=rollup.groups,
                counts=rollup.counts,
                silent_departments=rollup.silent_departments,
                revision=revision,
            )
            self.builds += 1
            self._entries.pop(key, None)
            self._entries[key] = (self.clock(), week)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            return week
