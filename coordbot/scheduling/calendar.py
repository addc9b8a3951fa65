"""China's working-day calendar (DESIGN decision 6) and sending-window arithmetic.

Working days come from the ``chinesecalendar`` package (statutory holidays and make-up working days,
调休) for the years it covers. For a year it does not cover yet the calendar assumes Monday–Friday, applies
the office's override file ``<overrides_dir>/<year>.yaml`` and logs one warning per year. An override file
for a covered year applies too: the office's corrections win over the package.

Override file format (see ``config/holidays/README.md``)::

    source: 国务院办公厅关于2027年部分节假日安排的通知      # optional, free text
    holidays:
      - 2027-01-01                                         # a single day off
      - {from: 2027-02-06, to: 2027-02-12, name: 春节}     # an inclusive range
    workdays:
      - 2027-02-14                                         # a make-up working day (调休上班)

All wall-clock computations happen in one IANA timezone (``Asia/Shanghai`` by default); every datetime
returned is timezone-aware and naive datetimes passed in are rejected with ``ValueError``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar
import yaml

from coordbot.plan.policy import QuietHours

__all__ = [
    "DEFAULT_TZ",
    "WorkCalendar",
    "ensure_aware",
    "get_zone",
    "local",
]

log = logging.getLogger("coordbot.scheduling")

DEFAULT_TZ = "Asia/Shanghai"

# The package's public tables: {date: holiday name}. Reading them directly instead of calling
# chinese_calendar.is_workday() per date, because that function recomputes min/max over the whole table
# on every call (~40 µs), which alone would blow the planning budget for a multi-year plan.
_CN_HOLIDAYS = chinese_calendar.holidays
_CN_WORKDAYS = chinese_calendar.workdays
_CN_YEARS = range(min(_CN_HOLIDAYS).year, max(_CN_HOLIDAYS).year + 1)

# Guard for loops that search for a working day: no real calendar has a month without one, so hitting
# this means an override file declared (nearly) a whole year off.
_MAX_SEARCH_DAYS = 366


def get_zone(tz: str | ZoneInfo) -> ZoneInfo:
    """Return the ZoneInfo for an IANA name; ValueError (not KeyError) for an unknown name."""
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {tz!r}: expected an IANA name such as 'Asia/Shanghai'") from exc


def ensure_aware(dt: datetime, what: str = "datetime") -> datetime:
    """Return ``dt`` unchanged if it is timezone-aware, else raise ValueError.

    Naive datetimes are refused rather than guessed: guessing the zone is how reminders end up an hour
    (or eight hours) off.
    """
    if not isinstance(dt, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {dt.isoformat()}")
    return dt


def local(dt: datetime, tz: str | ZoneInfo = DEFAULT_TZ) -> datetime:
    """Convert an aware datetime to the wall clock of ``tz``; ValueError on a naive datetime."""
    return ensure_aware(dt).astimezone(get_zone(tz))


@dataclass(frozen=True)
class _Overrides:
    holidays: frozenset[date]
    workdays: frozenset[date]
    path: Path | None  # None when no file exists for the year


class WorkCalendar:
    """China's working days with office overrides, plus "next allowed sending time" arithmetic.

    ``is_workday`` results are cached per date and override files are read once per year, so a calendar
    is cheap to query in tight loops. Keep one instance per process (or per plan); it is not thread-safe
    for the first query of a year, which is harmless (the worst case is reading a file twice).
    """

    def __init__(self, overrides_dir: Path | None = None, tz: str = DEFAULT_TZ) -> None:
        self.overrides_dir = Path(overrides_dir) if overrides_dir is not None else None
        self.tzname = tz
        self.tz = get_zone(tz)
        self._cache: dict[date, bool] = {}
        self._overrides: dict[int, _Overrides] = {}
        self._warned_years: set[int] = set()

    # ---- working days -------------------------------------------------------------------------------

    @staticmethod
    def is_officially_covered(year: int) -> bool:
        """True if the installed chinesecalendar package has the official schedule for ``year``."""
        return year in _CN_YEARS

    def is_workday(self, d: date) -> bool:
        """True if ``d`` is a working day (make-up weekend days count, statutory holidays do not)."""
        if isinstance(d, datetime):
            # A datetime's date depends on the zone it is read in; make the caller say which.
            raise ValueError(f"is_workday takes a date, got datetime {d.isoformat()}; use local(dt).date()")
        cached = self._cache.get(d)
        if cached is not None:
            return cached
        result = self._compute_workday(d)
        self._cache[d] = result
        return result

    def _compute_workday(self, d: date) -> bool:
        ov = self._overrides_for(d.year)
        covered = d.year in _CN_YEARS
        if not covered:
            self._warn_uncovered(d.year, ov)
        if d in ov.workdays:
            return True
        if d in ov.holidays:
            return False
        if covered:
            return d in _CN_WORKDAYS or (d.weekday() < 5 and d not in _CN_HOLIDAYS)
        return d.weekday() < 5

    def _warn_uncovered(self, year: int, ov: _Overrides) -> None:
        if year in self._warned_years:
            return
        self._warned_years.add(year)
        if self.overrides_dir is None:
            where = f"no overrides directory is configured: fill config/holidays/{year}.yaml and pass that folder"
        else:
            target = self.overrides_dir / f"{year}.yaml"
            if ov.path is None:
                where = f"fill {target} (file not found)"
            else:
                where = (
                    f"using {len(ov.holidays)} holidays and {len(ov.workdays)} make-up workdays "
                    f"from {target}; keep it in line with the State Council notice"
                )
        log.warning(
            "No official working-day calendar for %d (chinesecalendar covers %d-%d): assuming Monday-Friday "
            "working days plus office overrides; %s.",
            year,
            _CN_YEARS.start,
            _CN_YEARS.stop - 1,
            where,
        )

    def _overrides_for(self, year: int) -> _Overrides:
        ov = self._overrides.get(year)
        if ov is None:
            ov = self._load_overrides(year)
            self._overrides[year] = ov
        return ov

    def _load_overrides(self, year: int) -> _Overrides:
        empty = _Overrides(frozenset(), frozenset(), None)
        if self.overrides_dir is None:
            return empty
        path = self.overrides_dir / f"{year}.yaml"
        if not path.is_file():
            return empty
        holidays, workdays = load_override_file(path, year)
        return _Overrides(frozenset(holidays), frozenset(workdays), path)

    def next_workday(self, d: date, *, include_today: bool = True) -> date:
        """The first working day on or after ``d`` (strictly after it with ``include_today=False``)."""
        cur = d if include_today else d + timedelta(days=1)
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_workday(cur):
                return cur
            cur += timedelta(days=1)
        raise ValueError(f"no working day within {_MAX_SEARCH_DAYS} days after {d}; check the override files")

    def previous_workday(self, d: date, *, include_today: bool = True) -> date:
        """The last working day on or before ``d`` (strictly before it with ``include_today=False``)."""
        cur = d if include_today else d - timedelta(days=1)
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_workday(cur):
                return cur
            cur -= timedelta(days=1)
        raise ValueError(f"no working day within {_MAX_SEARCH_DAYS} days before {d}; check the override files")

    def add_workdays(self, d: date, n: int) -> date:
        """The ``n``-th working day after ``d`` (``n`` < 0: the ``|n|``-th working day before ``d``).

        ``d`` itself is never counted, so this works for a non-working ``d`` too: 1 working day before a
        Sunday deadline is the Friday (or the last working day before a holiday). ``n == 0`` returns ``d``
        unchanged, even on a holiday; use ``next_workday``/``previous_workday`` to roll.
        """
        step = timedelta(days=1 if n > 0 else -1)
        cur = d
        remaining = abs(n)
        guard = remaining * 7 + _MAX_SEARCH_DAYS  # loose bound: even Spring Festival is < 2 weeks off
        while remaining:
            cur += step
            if self.is_workday(cur):
                remaining -= 1
            guard -= 1
            if guard < 0:
                raise ValueError(f"cannot add {n} working days to {d}; check the override files")
        return cur

    def workdays_between(self, a: date, b: date) -> int:
        """Signed count of working days from ``a`` to ``b``, the inverse of ``add_workdays``.

        For ``b >= a`` it counts working days in ``(a, b]`` ("due in 1 working day" = tomorrow if tomorrow
        is a working day); for ``b < a`` it is minus the count in ``[b, a)``. Hence
        ``add_workdays(a, workdays_between(a, b)) == b`` whenever ``b`` is a working day.
        """
        if b >= a:
            return sum(1 for x in _days(a + timedelta(days=1), b) if self.is_workday(x))
        return -sum(1 for x in _days(b, a - timedelta(days=1)) if self.is_workday(x))

    def workdays_in(self, start: date, end: date) -> Iterator[date]:
        """Working days in the inclusive range ``[start, end]``, in order."""
        return (x for x in _days(start, end) if self.is_workday(x))

    # ---- wall clock ---------------------------------------------------------------------------------

    def local(self, dt: datetime, tz: str | ZoneInfo | None = None) -> datetime:
        """``dt`` on the wall clock of ``tz`` (default: the calendar's zone)."""
        return local(dt, self.tz if tz is None else tz)

    def at(self, d: date, t: time, tz: str | ZoneInfo | None = None) -> datetime:
        """Aware datetime for wall-clock ``t`` on ``d`` in ``tz`` (default: the calendar's zone).

        Built with ``datetime.combine`` on the local date, never by adding days to an aware datetime
        through UTC, so 09:30 stays 09:30 across a DST change.
        """
        return datetime.combine(d, t, tzinfo=self.tz if tz is None else get_zone(tz))

    def next_send_time(
        self, dt: datetime, quiet: QuietHours | None = None, *, tz: str | ZoneInfo | None = None
    ) -> datetime:
        """The earliest moment at or after ``dt`` that is inside the sending window on a working day.

        ``dt`` is returned as is (converted to the local zone) when it is already allowed; before the
        window on a working day it moves to that day's window start; otherwise to the window start of the
        next working day. ``tz`` is the zone whose wall clock the window refers to (default: the
        calendar's own); working days are always China's.
        """
        quiet = quiet or QuietHours()
        zone = self.tz if tz is None else get_zone(tz)
        loc = local(dt, zone)
        d = loc.date()
        if self.is_workday(d):
            t = loc.time().replace(tzinfo=None)
            if quiet.contains(t):
                return loc
            if t < quiet.start:
                return datetime.combine(d, quiet.start, tzinfo=zone)
        return datetime.combine(self.next_workday(d, include_today=False), quiet.start, tzinfo=zone)


def _days(start: date, end: date) -> Iterator[date]:
    cur = start
    one = timedelta(days=1)
    while cur <= end:
        yield cur
        cur += one


# ---- override files ---------------------------------------------------------------------------------

_TOP_KEYS = ("source", "holidays", "workdays")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_RANGE_KEYS = ("from", "to", "name")


def load_override_file(path: Path, year: int | None = None) -> tuple[set[date], set[date]]:
    """Parse an override file into (holidays, workdays).

    Raises ValueError naming the file, the 1-based line and what was expected. Every date must lie in
    ``year`` (the file name's year): a stray 2026 date in ``2027.yaml`` is a copy-paste slip, and it would
    silently never apply because the file is only read for 2027 dates.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read holiday override file: {exc}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    return _OverrideParser(path, year).parse(root)


class _OverrideParser:
    """Walks the composed YAML node tree (not the loaded data) so errors can cite line numbers."""

    def __init__(self, path: Path, year: int | None) -> None:
        self.path = path
        self.year = year

    def fail(self, node: yaml.Node | None, expected: str) -> ValueError:
        line = f" line {node.start_mark.line + 1}:" if node is not None else ""
        return ValueError(f"{self.path}:{line} expected {expected}")

    def parse(self, root: yaml.Node | None) -> tuple[set[date], set[date]]:
        holidays: set[date] = set()
        workdays: set[date] = set()
        if root is None:  # empty file: nothing to override
            return holidays, workdays
        if not isinstance(root, yaml.MappingNode):
            raise self.fail(root, "a mapping with keys 'holidays' and 'workdays'")
        seen: set[str] = set()
        day_lines: dict[date, tuple[str, yaml.Node]] = {}
        for key_node, value_node in root.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in _TOP_KEYS:
                raise self.fail(key_node, f"one of the keys {', '.join(_TOP_KEYS)}, got {key!r}")
            if key in seen:
                raise self.fail(key_node, f"'{key}' only once")
            seen.add(key)
            if key == "source":
                if not isinstance(value_node, yaml.ScalarNode):
                    raise self.fail(value_node, "'source' to be a line of text")
                continue
            target = holidays if key == "holidays" else workdays
            for item, d in self._entries(key, value_node):
                other = day_lines.get(d)
                if other is not None and other[0] != key:
                    also = other[1].start_mark.line + 1
                    raise self.fail(item, f"{d} in only one of 'holidays' and 'workdays' (also line {also})")
                day_lines[d] = (key, item)
                target.add(d)
        return holidays, workdays

    def _entries(self, key: str, node: yaml.Node) -> Iterator[tuple[yaml.Node, date]]:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return  # "holidays:" with nothing under it
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"'{key}' to be a list (one '- YYYY-MM-DD' per line, or [] when empty)")
        for item in node.value:
            if isinstance(item, yaml.ScalarNode):
                yield item, self._date(item, f"a date YYYY-MM-DD in '{key}'")
            elif key == "holidays" and isinstance(item, yaml.MappingNode):
                yield from ((item, d) for d in self._range(item))
            else:
                if key == "holidays":
                    raise self.fail(item, "a date YYYY-MM-DD or {from: YYYY-MM-DD, to: YYYY-MM-DD, name: ...}")
                raise self.fail(item, "a date YYYY-MM-DD (make-up working day)")

    def _range(self, node: yaml.MappingNode) -> list[date]:
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in _RANGE_KEYS:
                raise self.fail(key_node, f"a holiday range with keys from, to, name; got {key!r}")
            fields[key] = value_node
        if "from" not in fields or "to" not in fields:
            raise self.fail(node, "a holiday range with both 'from' and 'to' dates")
        name = fields.get("name")
        if name is not None and not isinstance(name, yaml.ScalarNode):
            raise self.fail(name, "'name' to be text, e.g. 春节")
        start = self._date(fields["from"], "'from' to be a date YYYY-MM-DD")
        end = self._date(fields["to"], "'to' to be a date YYYY-MM-DD")
        if end < start:
            raise self.fail(node, f"'from' ({start}) on or before 'to' ({end})")
        return list(_days(start, end))

    def _date(self, node: yaml.Node, expected: str) -> date:
        raw = node.value if isinstance(node, yaml.ScalarNode) else None
        # fromisoformat alone would also take 20270101 or week dates; insist on the readable form.
        if raw is None or not _DATE_RE.match(raw.strip()):
            raise self.fail(node, f"{expected}, got {raw!r}")
        try:
            d = date.fromisoformat(raw.strip())
        except ValueError:
            raise self.fail(node, f"{expected}, got {raw!r} (no such day)") from None
        if self.year is not None and d.year != self.year:
            raise self.fail(node, f"a date in {self.year} (this file only covers {self.year}), got {d}")
        return d
