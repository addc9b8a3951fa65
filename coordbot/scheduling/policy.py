"""Reminder planning: which reminders a task gets and when (pure; no database, no clock).

``plan_reminders`` turns a ``TaskSchedule`` and its ``ReminderPolicy`` (the plan file's settings, read by
:mod:`coordbot.plan.policy`) into ``PlannedReminder`` rows for a time window. The caller
stores them as occurrences keyed on (task, kind, fire_at) (DESIGN decision 1), so planning the same window
twice, or overlapping windows, yields the same rows and never a duplicate.

Rules, all in the plan's timezone and China's working-day calendar (decision 6):

* one-off task with a deadline ``due``:
    - the *working deadline* is ``due`` if it is a working day, else the last working day before it
      (a deadline on 10月4日 during National Day means the work must be in before the holiday);
    - ``before_due``: ``N`` working days before the working deadline for each N in ``before_workdays``
      (counted from the working deadline, so "1 working day before" never coincides with the due-day
      reminder);
    - ``due_today``: on the working deadline (if ``on_due_day``);
    - ``overdue``: on the ``k·E``-th working day after ``due`` for k = 1..``overdue_max``
      (E = ``overdue_every_workdays``); then escalation takes over. Planned regardless of task status:
      the sender skips them for tasks already reported done.
  A one-off task without ``due`` gets no deadline reminders (events still apply).
* recurring / metric task: ``periodic`` progress requests on ``periodic_weekday`` (weekly; biweekly
  counted from the task start; monthly = the first such weekday of each month), rolled forward to the next
  working day when that day is off, dropped if the rolled day is after the task's end.
* any task with ``has_quota``: ``checkpoint`` on the last working day of each quarter (or month),
  ``ref_date`` the period's last calendar day.
* recurring / metric task with dated targets (``target_dates``: 到2026年末达到…, a cumulative quota's end):
  ``before_due`` ``N`` working days before each date's working deadline for each N in ``before_workdays``,
  and ``due_today`` on it (if ``on_due_day``); ``ref_date`` the target's date. No overdue reminders: the
  task goes on after the date, and the periodic requests and escalation follow it.
* recurring / metric / ongoing task with ``every`` (quarterly, half-yearly): the same before each
  quarter's (half-year's) last day, a deadline that comes round (每季度报送).
* any task with ``milestones`` (节点): ``before_due`` and ``due_today`` for each milestone's date, like a
  dated target (no overdue: the task's own deadline has those).
* any task with ``events``: ``event_ahead`` ``N`` working days before each yearly occurrence inside
  [start, end] for each N in ``event_lead_workdays``.

Every fire time is ``send_time`` on the computed day, then moved by ``WorkCalendar.next_send_time`` out of
quiet hours and non-working days. Nothing fires on a day before the task's ``start`` (the task did not
exist yet). Two reminders of the same kind landing on the same fire time collapse into one (keeping the
later ``ref_date``; differing details are joined with 、).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from coordbot.plan.policy import ReminderPolicy
from coordbot.scheduling.calendar import WorkCalendar, ensure_aware, get_zone

__all__ = [
    "REMINDER_KINDS",
    "TASK_KINDS",
    "PlannedReminder",
    "TaskSchedule",
    "plan_reminders",
]

TASK_KINDS = ("one-off", "recurring", "metric", "ongoing")
# Tasks that go on (no deadline of their own): periodic requests, and reminders before dated targets.
CONTINUING_KINDS = ("recurring", "metric", "ongoing")
REMINDER_KINDS = ("before_due", "due_today", "overdue", "periodic", "checkpoint", "event_ahead")

_MMDD_RE = re.compile(r"(\d{2})-(\d{2})\Z")


@dataclass(frozen=True)
class TaskSchedule:
    """The scheduling view of a task, built by the caller from the database row.

    ``events`` also accepts the plan format's ``{"name": ..., "day": "MM-DD"}`` dicts and lists (as read
    from YAML/JSON); they are normalised to tuples. ``due`` is used for one-off tasks only.
    """

    code: str
    kind: str  # "one-off" | "recurring" | "metric" | "ongoing"
    start: date  # task active period (plan period by default)
    end: date
    due: date | None  # one-off deadline
    events: tuple[tuple[str, str], ...] = ()  # (name, "MM-DD") yearly events, e.g. ("世界知识产权日", "04-26")
    has_quota: bool = False  # annual/cumulative quota → checkpoints
    target_dates: tuple[date, ...] = ()  # dated targets of a recurring or metric task → before_due
    every: str = ""  # "quarterly" | "half-yearly": a deadline at each period's end (每季度, 每半年) → before_due
    milestones: tuple[date, ...] = ()  # 节点 inside the task, of any kind → before_due and due_today

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.code}: kind must be one of {', '.join(TASK_KINDS)}, got {self.kind!r}")
        for name in ("start", "end", "due"):
            value = getattr(self, name)
            if value is None and name == "due":
                continue
            if not isinstance(value, date) or isinstance(value, datetime):
                raise ValueError(f"task {self.code}: {name} must be a date, got {value!r}")
        if self.end < self.start:
            raise ValueError(f"task {self.code}: end {self.end} is before start {self.start}")
        # Accept what the database stores ({name, day} dicts) and YAML lists; keep the field hashable.
        events = tuple(
            (e.get("name"), e.get("day")) if isinstance(e, Mapping) else tuple(e) if isinstance(e, list) else e
            for e in self.events
        )
        object.__setattr__(self, "events", events)
        try:
            _parse_events(events)
        except ValueError as exc:
            raise ValueError(f"task {self.code}: {exc}") from None


def _parse_events(events: tuple[tuple[str, str], ...]) -> tuple[tuple[str, int, int], ...]:
    """(name, month, day) for each (name, "MM-DD") event; ValueError for a malformed one."""
    parsed = []
    for item in events:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and item[0]):
            raise ValueError(f"event must be (name, 'MM-DD'), got {item!r}")
        name, mmdd = item
        m = _MMDD_RE.match(mmdd) if isinstance(mmdd, str) else None
        month, day = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        try:
            date(2000, month, day)  # a leap year: 02-29 is allowed and simply skipped in common years
        except ValueError:
            raise ValueError(f"event {name!r} date must be 'MM-DD', got {mmdd!r}") from None
        parsed.append((name, month, day))
    return tuple(parsed)


_event_days = functools.lru_cache(maxsize=1024)(_parse_events)  # planning re-reads the same tasks often


@dataclass(frozen=True)
class PlannedReminder:
    """One reminder occurrence. (kind, fire_at) is unique per task."""

    kind: str  # "before_due" | "due_today" | "overdue" | "periodic" | "checkpoint" | "event_ahead"
    fire_at: datetime  # aware, already moved out of quiet hours / non-working days
    ref_date: date  # the deadline / period / event date it is about (message text and unique key)
    # before_due: working days before ("10"); overdue: working days after due ("4");
    # periodic: the cadence ("weekly"); checkpoint: "Q2" or "M06"; event_ahead: the event name.
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in REMINDER_KINDS:
            raise ValueError(f"unknown reminder kind {self.kind!r}")
        ensure_aware(self.fire_at, "PlannedReminder.fire_at")

    def sort_key(self) -> tuple[datetime, str, date, str]:
        return (self.fire_at, self.kind, self.ref_date, self.detail)


def plan_reminders(
    task: TaskSchedule,
    policy: ReminderPolicy,
    cal: WorkCalendar,
    *,
    window_start: datetime,
    window_end: datetime,
    tz: str,
) -> list[PlannedReminder]:
    """Reminders for ``task`` with ``window_start <= fire_at < window_end``, sorted and de-duplicated.

    The result depends only on the arguments (not on the window's position relative to the task), so
    adjacent windows partition the full plan: planning [a, b) and [b, c) gives exactly the rows of [a, c).
    ``tz`` is the plan's timezone: ``send_time`` and the quiet hours are wall-clock times there.
    """
    ensure_aware(window_start, "window_start")
    ensure_aware(window_end, "window_end")
    if window_end < window_start:
        raise ValueError(f"window_end {window_end.isoformat()} is before window_start {window_start.isoformat()}")
    zone = get_zone(tz)
    found: dict[tuple[str, datetime], PlannedReminder] = {}
    # Fire times only move later than send_time on their day, so a day whose send_time is already past
    # the window end cannot contribute; periodic anchors stop there.
    last_day = window_end.astimezone(zone).date()

    def add(kind: str, day: date, ref: date, detail: str) -> None:
        if day < task.start or day > last_day:
            return
        fire = cal.next_send_time(datetime.combine(day, policy.send_time, tzinfo=zone), policy.quiet, tz=zone)
        if not window_start <= fire < window_end:
            return
        key = (kind, fire)
        old = found.get(key)
        if old is None:
            found[key] = PlannedReminder(kind, fire, ref, detail)
            return
        details = list(dict.fromkeys(x for x in (*old.detail.split("、"), detail) if x))
        found[key] = PlannedReminder(kind, fire, max(old.ref_date, ref), "、".join(details))

    if task.kind == "one-off" and task.due is not None:
        _plan_deadline(task.due, policy, cal, add)
    for milestone in sorted(set(task.milestones)):
        if task.start <= milestone <= task.end and (task.due is None or milestone < task.due):
            _plan_target_date(milestone, policy, cal, add)
    if task.kind in CONTINUING_KINDS:
        days = set(task.target_dates)
        if task.every:
            days.update(day for day, _ in _period_ends(task.start, task.end, task.every))
        for target_day in sorted(days):
            if task.start <= target_day <= task.end:
                _plan_target_date(target_day, policy, cal, add)
    if task.kind in CONTINUING_KINDS and policy.periodic != "off":
        for anchor in _periodic_anchors(task.start, min(task.end, last_day), policy):
            day = cal.next_workday(anchor)
            if day <= task.end:
                add("periodic", day, anchor, policy.periodic)
    if task.has_quota and policy.checkpoints != "off":
        for period_end, label in _period_ends(task.start, task.end, policy.checkpoints):
            add("checkpoint", cal.previous_workday(period_end), period_end, label)
    for name, month, day_of_month in _event_days(task.events):
        for year in range(task.start.year, task.end.year + 1):
            try:
                occurrence = date(year, month, day_of_month)
            except ValueError:  # 02-29 in a common year
                continue
            if task.start <= occurrence <= task.end:
                for n in policy.event_lead_workdays:
                    add("event_ahead", cal.add_workdays(occurrence, -n), occurrence, name)
    return sorted(found.values(), key=PlannedReminder.sort_key)


def _plan_target_date(
    day: date, policy: ReminderPolicy, cal: WorkCalendar, add: Callable[[str, date, date, str], None]
) -> None:
    """A dated target inside a task that goes on: reminded before its date like a deadline, never overdue."""
    working_day = cal.previous_workday(day)
    for n in policy.before_workdays:
        add("before_due", cal.add_workdays(working_day, -n), day, str(n))
    if policy.on_due_day:
        add("due_today", working_day, day, "")


def _plan_deadline(
    due: date, policy: ReminderPolicy, cal: WorkCalendar, add: Callable[[str, date, date, str], None]
) -> None:
    working_due = cal.previous_workday(due)  # deadline on a holiday: act on the last working day before it
    for n in policy.before_workdays:
        add("before_due", cal.add_workdays(working_due, -n), due, str(n))
    if policy.on_due_day:
        add("due_today", working_due, due, "")
    day = due
    for k in range(1, policy.overdue_max + 1):
        day = cal.add_workdays(day, policy.overdue_every_workdays)  # incremental: O(total), not O(k²)
        add("overdue", day, due, str(k * policy.overdue_every_workdays))


def _periodic_anchors(start: date, end: date, policy: ReminderPolicy) -> Iterator[date]:
    """Nominal days of the periodic request in [start, end], before rolling off holidays."""
    wd = policy.periodic_weekday
    if policy.periodic in ("weekly", "biweekly"):
        step = timedelta(days=7 if policy.periodic == "weekly" else 14)
        cur = start + timedelta(days=(wd - start.weekday()) % 7)
        while cur <= end:
            yield cur
            cur += step
    elif policy.periodic == "monthly":
        year, month = start.year, start.month
        while date(year, month, 1) <= end:
            first = date(year, month, 1)
            anchor = first + timedelta(days=(wd - first.weekday()) % 7)
            if start <= anchor <= end:
                yield anchor
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _period_ends(start: date, end: date, cadence: str) -> Iterator[tuple[date, str]]:
    """(last calendar day of the period, label) for quarter/month ends inside [start, end]."""
    year, month = start.year, start.month
    while date(year, month, 1) <= end:
        next_first = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
        last = next_first - timedelta(days=1)
        if start <= last <= end:
            if cadence == "monthly":
                yield last, f"M{month:02d}"
            elif cadence == "half-yearly":
                if month % 6 == 0:
                    yield last, f"H{month // 6}"
            elif month % 3 == 0:
                yield last, f"Q{month // 3}"
        year, month = next_first.year, next_first.month
