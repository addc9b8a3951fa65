"""What a plan file says about reminders: the ``reminders:`` settings, parsed and checked (pure values).

A ``ReminderPolicy`` is read from the plan's and each task's ``reminders:`` mapping; the loader builds one at
import time so a bad setting is refused with its line, and the scheduler (:mod:`coordbot.scheduling.policy`)
turns it into fire times. ``QuietHours`` is the daily sending window a policy names.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any, TypeGuard

__all__ = ["QuietHours", "ReminderPolicy"]


@dataclass(frozen=True)
class QuietHours:
    """The daily sending window: messages go out from ``start`` (inclusive) to ``end`` (exclusive).

    Everything outside the window, and every non-working day, is quiet. The window cannot wrap midnight
    (no one wants a 23:00–07:00 *sending* window for a government office).
    """

    start: time = time(9, 0)
    end: time = time(18, 0)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time):
                raise ValueError(f"QuietHours.{name} must be a datetime.time, got {value!r}")
            if value.tzinfo is not None:
                raise ValueError(f"QuietHours.{name} must be a local wall-clock time without tzinfo")
        if not self.start < self.end:
            raise ValueError(f"QuietHours start {self.start:%H:%M} must be before end {self.end:%H:%M}")

    def contains(self, t: time) -> bool:
        return self.start <= t < self.end


# ---- value parsers ---------------------------------------------------------------------------------
# Each parser takes either the typed value or its YAML spelling and returns the normalised typed value,
# raising ValueError("expected ..., got ..."). __post_init__ runs them too, so a policy built in code is
# checked exactly like one read from a plan file.

_WEEKDAYS: dict[str, int] = {}
for _i, _names in enumerate(
    (
        ("monday", "mon", "周一", "星期一"),
        ("tuesday", "tue", "周二", "星期二"),
        ("wednesday", "wed", "周三", "星期三"),
        ("thursday", "thu", "周四", "星期四"),
        ("friday", "fri", "周五", "星期五"),
        ("saturday", "sat", "周六", "星期六"),
        ("sunday", "sun", "周日", "周天", "星期日", "星期天"),
    )
):
    for _n in _names:
        _WEEKDAYS[_n] = _i

_PERIODIC = {
    "weekly": "weekly",
    "每周": "weekly",
    "biweekly": "biweekly",
    "每两周": "biweekly",
    "双周": "biweekly",
    "monthly": "monthly",
    "每月": "monthly",
    "off": "off",
    "关闭": "off",
}
_CHECKPOINTS = {
    "quarterly": "quarterly",
    "每季度": "quarterly",
    "monthly": "monthly",
    "每月": "monthly",
    "off": "off",
    "关闭": "off",
}
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})\Z")
_DURATION_RE = re.compile(
    r"(?:(?P<d>\d+)\s*(?:d|天|日))?\s*(?:(?P<h>\d+)\s*(?:h|小时|时))?\s*(?:(?P<m>\d+)\s*(?:m|min|分钟|分))?\Z"
)


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)  # YAML `yes` must not count as 1


def _workday_offsets(v: Any) -> tuple[int, ...]:
    expected = "a list of whole numbers of working days between 1 and 366, e.g. [10, 5, 1]"
    items = [v] if _is_int(v) else v
    if not isinstance(items, list | tuple) or not all(_is_int(x) and 1 <= x <= 366 for x in items):
        raise ValueError(f"expected {expected}, got {v!r}")
    return tuple(sorted(set(items), reverse=True))


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _int_at_least(minimum: int) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        if not _is_int(v) or v < minimum:
            raise ValueError(f"expected a whole number ≥ {minimum}, got {v!r}")
        return v

    return parse


def _choice(table: dict[str, str]) -> Callable[[Any], str]:
    names = sorted(set(table.values()))

    def parse(v: Any) -> str:
        if v is False:  # YAML 1.1 reads an unquoted `off` as false
            return "off"
        if isinstance(v, str) and v.strip().lower() in table:
            return table[v.strip().lower()]
        raise ValueError(f"expected one of {', '.join(names)}, got {v!r}")

    return parse


def _weekday(v: Any) -> int:
    if _is_int(v) and 0 <= v <= 6:
        return v
    if isinstance(v, str) and v.strip().lower() in _WEEKDAYS:
        return _WEEKDAYS[v.strip().lower()]
    raise ValueError(f"expected a weekday: 0-6 (0 = Monday), monday..sunday or 周一..周日, got {v!r}")


def _time_of_day(v: Any) -> time:
    if isinstance(v, time):
        if v.tzinfo is not None:
            raise ValueError(f"expected a local wall-clock time without timezone, got {v!r}")
        return v
    if _is_int(v):
        # PyYAML reads unquoted 9:30 / 18:00 as base-60 integers (570 / 1080). Say so instead of guessing.
        raise ValueError(f'expected a time "HH:MM", got the number {v}; quote the time in YAML, e.g. "09:30"')
    m = _TIME_RE.match(v.strip()) if isinstance(v, str) else None
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f'expected a time "HH:MM" such as "09:30", got {v!r}')
    return time(int(m.group(1)), int(m.group(2)))


def _quiet(v: Any) -> QuietHours:
    expected = 'a sending window "09:00-18:00" or {start: "09:00", end: "18:00"}'
    if isinstance(v, QuietHours):
        return v
    if isinstance(v, str):
        parts = re.split(r"\s*(?:-|–|~|～|至)\s*", v.strip())
        if len(parts) != 2:
            raise ValueError(f"expected {expected}, got {v!r}")
        start, end = parts
    elif isinstance(v, Mapping) and set(v) == {"start", "end"}:
        start, end = v["start"], v["end"]
    else:
        raise ValueError(f"expected {expected}, got {v!r}")
    start_t, end_t = _time_of_day(start), _time_of_day(end)
    if not start_t < end_t:
        raise ValueError(f"expected the window start before its end, got {v!r}")
    return QuietHours(start_t, end_t)


def _grace(v: Any) -> timedelta:
    expected = 'a duration such as "24h", "3d", "90m" or "1d12h"'
    if isinstance(v, timedelta):
        if v < timedelta(0):
            raise ValueError(f"expected a duration of zero or more, got {v!r}")
        return v
    if isinstance(v, str) and v.strip() == "0":
        return timedelta(0)
    m = _DURATION_RE.match(v.strip().lower()) if isinstance(v, str) and v.strip() else None
    if m is None or not any(m.groupdict().values()):
        raise ValueError(f"expected {expected}, got {v!r}")
    d, h, mins = (int(m.group(g) or 0) for g in ("d", "h", "m"))
    return timedelta(days=d, hours=h, minutes=mins)


DEFAULT_QUIET = QuietHours(time(9), time(18))  # a module constant: frozen, safe to share as a default

_PARSERS: dict[str, Callable[[Any], Any]] = {
    "before_workdays": _workday_offsets,
    "on_due_day": _boolean,
    "overdue_every_workdays": _int_at_least(1),
    "overdue_max": _int_at_least(0),
    "periodic": _choice(_PERIODIC),
    "periodic_weekday": _weekday,
    "send_time": _time_of_day,
    "checkpoints": _choice(_CHECKPOINTS),
    "event_lead_workdays": _workday_offsets,
    "quiet": _quiet,
    "grace": _grace,
    "escalate_after_unanswered": _int_at_least(1),
}


@dataclass(frozen=True)
class ReminderPolicy:
    """How often and when a task's contact is reminded. Defaults are the office's house rules.

    Fields are validated and normalised on construction (offsets sorted descending and de-duplicated,
    weekday names to 0..6, "24h" to a timedelta) so a bad value fails where it is written, not at 03:00
    in the scheduler.
    """

    before_workdays: tuple[int, ...] = (10, 5, 1)  # one-off tasks: N working days before the deadline
    on_due_day: bool = True
    overdue_every_workdays: int = 2  # then every N working days while overdue
    overdue_max: int = 10  # stop after that many overdue reminders (escalation takes over)
    periodic: str = "weekly"  # weekly | biweekly | monthly | off   (recurring & metric tasks)
    periodic_weekday: int = 0  # Monday
    send_time: time = time(9, 30)
    checkpoints: str = "quarterly"  # quota checkpoints: quarterly | monthly | off
    event_lead_workdays: tuple[int, ...] = (10, 3)  # dated events (4.26, 3.15): working days ahead
    quiet: QuietHours = DEFAULT_QUIET  # sending window 09:00-18:00 on working days
    grace: timedelta = timedelta(hours=24)  # catch-up: missed reminders younger than this are still sent
    escalate_after_unanswered: int = 2

    def __post_init__(self) -> None:
        for name, parse in _PARSERS.items():
            value = getattr(self, name)
            try:
                normalised = parse(value)
            except ValueError as exc:
                raise ValueError(f"ReminderPolicy.{name}: {exc}") from None
            object.__setattr__(self, name, normalised)  # frozen: normalise once, here
        if not self.quiet.contains(self.send_time):
            # Otherwise a due-day reminder at 19:00 would silently move to the next working morning,
            # i.e. after the deadline.
            raise ValueError(
                f"ReminderPolicy.send_time: expected a time inside the sending window "
                f"{self.quiet.start:%H:%M}-{self.quiet.end:%H:%M}, got {self.send_time:%H:%M}"
            )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, *, base: ReminderPolicy | None = None, where: str = ""
    ) -> ReminderPolicy:
        """Overlay the ``reminders:`` mapping of a plan file on ``base`` (default: the house rules).

        Call it twice to merge levels: ``plan = ReminderPolicy.from_mapping(plan_map, where="plan
        reminders")`` then ``ReminderPolicy.from_mapping(task_map, base=plan, where="task 2.1 reminders")``.
        Keys are the field names; times are "HH:MM", ``grace`` like "24h"/"3d", ``periodic_weekday``
        like "monday"/"周一"/0, ``quiet`` like "09:00-18:00". An empty/null mapping returns ``base``.
        Raises ValueError naming ``where``, the key and what is expected.
        """
        base = base if base is not None else cls()
        label = where or "reminder policy"
        if data is None:
            return base
        if not isinstance(data, Mapping):
            raise ValueError(f"{label}: expected a mapping of reminder settings, got {data!r}")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            parse = _PARSERS.get(key) if isinstance(key, str) else None
            if parse is None:
                hint = difflib.get_close_matches(str(key), _PARSERS, n=1)
                did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ValueError(f"{label}: unknown key {key!r}{did_you_mean}; expected one of {', '.join(_PARSERS)}")
            try:
                changes[key] = parse(value)
            except ValueError as exc:
                raise ValueError(f"{label}: {key}: {exc}") from None
        try:
            return dataclasses.replace(base, **changes)
        except ValueError as exc:  # cross-field checks (send_time vs quiet)
            raise ValueError(f"{label}: {exc}") from None
