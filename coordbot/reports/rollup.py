"""Roll-ups for a period (an ISO week, or the time since the last joint meeting): where every task and
department stands, what changed, and what needs a decision.

Read in a fixed number of queries (see ``QUERIES``) whatever the plan's size: rows come back as plain tuples
(Core selects of the columns used, never ORM objects) and everything else is pure Python over them. Quota
observations are summed in SQL per target and date range (see ``_observation_sums``): a province-size plan has
tens of thousands of them. Colour and "behind the trajectory" come from
:mod:`coordbot.plan.progress`, the same definitions the reminder engine and chat commands use.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import re
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Text, case, func, literal, literal_column
from sqlalchemy import cast as sql_cast
from sqlalchemy import select as sa_select  # for more than four columns: sqlmodel's is typed for four at most
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from coordbot.core.db import row_id
from coordbot.core.events import Event, EventType
from coordbot.plan.models import (
    OPEN_STATUSES,
    Colour,
    Contact,
    CrossRequest,
    Department,
    Extension,
    Meeting,
    Observation,
    Plan,
    ProgressReport,
    Role,
    Target,
    Task,
    TaskDepartment,
    TaskGroup,
    TaskStatus,
)
from coordbot.plan.progress import (
    REPLY_WINDOW_WORKDAYS,
    Assessment,
    QuotaProgress,
    assess,
    counting_window,
    period_bounds,
    quota_progress,
)
from coordbot.plan.queries import counted_targets
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import POLICY_KINDS
from coordbot.scheduling.models import OccurrenceStatus, ReminderOccurrence

QUERIES = 13  # what build_rollup issues, whatever the plan's size (a test holds it to this)
CHANGE_TYPES = (
    EventType.TASK_ASSIGNED,
    EventType.TASK_UPDATED,
    EventType.TASK_ARCHIVED,
    EventType.TASK_COLOUR_CHANGED,
    EventType.TASK_OVERDUE,
    EventType.TASK_ESCALATED,
    EventType.TASK_REPORTED_DONE,
    EventType.TASK_BLOCKED,
    EventType.TASK_CLOSED,
    EventType.EXTENSION_REQUESTED,
    EventType.EXTENSION_APPROVED,
    EventType.EXTENSION_REJECTED,
    EventType.CROSSREQUEST_OPENED,
    EventType.CROSSREQUEST_CLOSED,
    EventType.MEETING_RECORDED,
)
STALE_REQUEST_DAYS = 5  # an open request for help older than this goes to the leaders
_WEEK = re.compile(r"^(\d{4})-W(\d{1,2})$")
MAIN_NUMERALS = "一二三四五六七八九十"
MAX_BUCKETS = 64  # date ranges the observation sums are split at; beyond this, one range per day
# Plain strings: looking a member up on an enum class costs more than the comparison, and these are compared
# for every task of the plan (StrEnum members equal their values).
_BLOCKED, _CLOSED = TaskStatus.BLOCKED.value, TaskStatus.CLOSED.value


# ---- periods --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days [start, end] in the plan's time zone; ``kind`` is week or meeting."""

    start: date
    end: date
    label: str
    tz: str = "Asia/Shanghai"
    kind: str = "week"

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(0), ZoneInfo(self.tz))

    @property
    def until(self) -> datetime:  # exclusive
        return datetime.combine(self.end + timedelta(days=1), time(0), ZoneInfo(self.tz))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def parse_week(text: str) -> tuple[int, int]:
    """'2026-W48' -> (2026, 48); ValueError naming the expected form otherwise."""
    m = _WEEK.match(text.strip())
    if not m:
        raise ValueError(f"expected an ISO week like 2026-W48, got {text!r}")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} has no ISO week {week}") from None
    return year, week


def week_period(*, plan: Plan, now: datetime, week: str | None = None) -> Period:
    """The ISO week named (default: the current week in the plan's time zone)."""
    tz = plan.timezone or "Asia/Shanghai"
    if week is None:
        iso = now.astimezone(ZoneInfo(tz)).date().isocalendar()
        year, num = iso.year, iso.week
    else:
        year, num = parse_week(week)
    start = date.fromisocalendar(year, num, 1)
    return Period(start, start + timedelta(days=6), f"{year}-W{num:02d}", tz, "week")


def meeting_period(*, session: Session, plan: Plan, meeting_date: date, since: date | None = None) -> Period:
    """From the day after the last recorded meeting before ``meeting_date`` (or the plan's start) to it."""
    if since is None:
        last = session.exec(
            select(col(Meeting.held_on))
            .where(Meeting.plan_id == plan.id, Meeting.held_on < meeting_date)
            .order_by(col(Meeting.held_on).desc())
        ).first()
        since = last + timedelta(days=1) if last else plan.start_date
    if since > meeting_date:
        raise ValueError(f"the period start {since} is after the meeting date {meeting_date}")
    return Period(since, meeting_date, meeting_date.isoformat(), plan.timezone or "Asia/Shanghai", "meeting")


# ---- what a roll-up holds -----------------------------------------------------------------------


class _TaskRow(NamedTuple):
    """The Task columns a roll-up reads (``assess`` reads status and due_date)."""

    id: int
    group_id: int
    code: str
    title: str
    kind: str
    lead_department_id: int
    status: str
    progress: int
    colour_reason: str
    due_date: date | None
    original_due_date: date | None
    escalation_level: int
    last_report_at: datetime | None
    archived_at: datetime | None
    responsible_leader: str  # 责任领导: shown with the task's lines


class _TargetRow(NamedTuple):
    """The Target columns ``quota_progress`` and ``period_bounds`` read."""

    id: int
    task_id: int | None
    metric: str
    name: str
    unit: str
    comparator: str
    value: float | None
    baseline: float | None
    period: str
    start_date: date | None
    due_date: date | None
    measure: str
    about: bool
    tolerance: float | None


class _ObsSum(NamedTuple):
    """Plain increments of whole numbers of one target in one date range (summed in SQL)."""

    first: date
    last: date
    total: float


class _Obs(NamedTuple):
    """The fields of an Observation that quota_progress reads, without building ORM objects."""

    id: int
    target_id: int
    value: float
    mode: str
    observed_on: date
    recorded_at: datetime
    voided: bool


@dataclass(slots=True)
class QuotaLine:
    metric: str
    name: str
    unit: str
    period: str
    actual: float
    goal: float | None
    expected: float | None
    added: float  # counted in this period
    behind: bool
    reached: bool
    task_code: str | None
    reported: bool = True  # anything counted in the window: False means "no data yet", not zero

    @property
    def share(self) -> float | None:
        return self.actual / self.goal if self.goal else None

    @property
    def expected_share(self) -> float | None:
        return self.expected / self.goal if self.goal and self.expected is not None else None


@dataclass(slots=True)
class RequestLine:
    task_code: str
    task_title: str
    from_dept: str
    to_dept: str
    text: str
    created_on: date
    age_days: int
    status: str
    task_leader: str = ""  # the task's 责任领导, when the plan names one


@dataclass(slots=True)
class ExtensionLine:
    task_code: str
    task_title: str
    status: str  # requested | approved | rejected
    original_due: date | None
    old_due: date | None
    new_due: date
    reason: str
    requested_on: date
    decided_on: date | None


@dataclass(slots=True)
class ChangeLine:
    at: datetime
    type: str
    task_code: str | None
    task_title: str
    payload: dict[str, Any]


@dataclass(slots=True)
class TaskLine:
    id: int
    code: str
    title: str
    group_code: str
    kind: str
    lead_code: str
    lead: str
    co: list[str]
    status: str
    colour: str
    reason: str  # the assessment's reason (overdue, blocked, due_soon, behind_quota …)
    no_reply: bool  # reminders went out in the period and nothing came back
    progress: int
    progress_start: int
    reports: int
    last_report_at: datetime | None
    due_date: date | None
    original_due_date: date | None
    overdue_days: int
    quotas: list[QuotaLine]
    reminders_sent: int
    reminders_answered: int
    requests: list[RequestLine]
    reported_done_in_period: bool
    closed_in_period: bool
    escalation_level: int
    progress_basis: str = "report"  # report | quota: no percent reported, so progress follows the quotas
    leader: str = ""  # 责任领导 named by the plan (a person or a post)

    @property
    def progress_change(self) -> int:
        return self.progress - self.progress_start

    @property
    def reasons(self) -> list[str]:
        # "unreported" (past the reply window) already says what "no_reply" would
        no_reply = self.no_reply and self.reason != "unreported"
        return [r for r in (self.reason, "no_reply" if no_reply else "") if r]

    @property
    def extended(self) -> bool:
        return self.original_due_date is not None and self.due_date != self.original_due_date


@dataclass(slots=True)
class GroupLine:
    code: str
    title: str
    kind: str
    number: str  # （一） for main groups; "" for safeguards
    tasks: list[TaskLine]

    @property
    def colours(self) -> dict[str, int]:
        c = Counter(t.colour for t in self.tasks)
        return {k: c.get(k, 0) for k in ("red", "yellow", "green")}


@dataclass(slots=True)
class DepartmentLine:
    code: str
    name: str
    lead_tasks: int
    co_tasks: int
    reminders_sent: int
    reminders_answered: int
    reports: int
    red: int
    yellow: int

    @property
    def rate(self) -> float | None:
        return self.reminders_answered / self.reminders_sent if self.reminders_sent else None

    @property
    def silent(self) -> bool:
        return self.reminders_sent > 0 and self.reminders_answered == 0


@dataclass(slots=True)
class Decision:
    """Something only leaders or the meeting can settle."""

    kind: str  # extension | blocked | stale_request | overdue | silent_department
    task_code: str | None
    subject: str
    detail: dict[str, Any]


@dataclass(slots=True)
class Rollup:
    plan: Plan
    period: Period
    as_of: date
    generated_at: datetime
    groups: list[GroupLine]
    departments: list[DepartmentLine]
    goals: list[QuotaLine]
    requests: list[RequestLine]  # open requests for help
    extensions: list[ExtensionLine]  # requested or decided in the period, or still waiting
    changes: list[ChangeLine]
    last_meeting: Meeting | None
    decisions: list[Decision] = field(default_factory=list)

    @property
    def tasks(self) -> list[TaskLine]:
        return [t for g in self.groups for t in g.tasks]

    def by_colour(self, colour: str) -> list[TaskLine]:
        return [t for t in self.tasks if t.colour == colour]

    @property
    def quotas(self) -> list[QuotaLine]:
        return [q for t in self.tasks for q in t.quotas]

    @property
    def overdue(self) -> list[TaskLine]:
        return [t for t in self.tasks if t.overdue_days > 0]

    @property
    def blocked(self) -> list[TaskLine]:
        return [t for t in self.tasks if t.status == _BLOCKED]

    @property
    def escalated(self) -> list[TaskLine]:
        """Red because silence went up the ladder (neither overdue nor blocked: those are listed as such)."""
        return [t for t in self.tasks if t.colour == Colour.RED and t.reason == "escalated"]

    @property
    def completions(self) -> list[TaskLine]:
        return [t for t in self.tasks if t.reported_done_in_period]

    @property
    def closures(self) -> list[TaskLine]:
        return [t for t in self.tasks if t.closed_in_period]

    @property
    def silent_departments(self) -> list[DepartmentLine]:
        return [d for d in self.departments if d.silent]

    @property
    def counts(self) -> dict[str, Any]:
        tasks = self.tasks
        colours = Counter(t.colour for t in tasks)
        sent = sum(d.reminders_sent for d in self.departments)
        answered = sum(d.reminders_answered for d in self.departments)
        # one pass over the tasks for what the properties (overdue, blocked, quotas …) would each walk
        closed = reports = reported = overdue = blocked = behind = completions = closures = 0
        for t in tasks:
            if t.status == _CLOSED:
                closed += 1
            elif t.status == _BLOCKED:
                blocked += 1
            if t.reports:
                reports += t.reports
                reported += 1
            if t.overdue_days > 0:
                overdue += 1
            if t.quotas:
                behind += sum(1 for q in t.quotas if q.behind)
            if t.reported_done_in_period:
                completions += 1
            if t.closed_in_period:
                closures += 1
        return {
            "tasks": len(tasks),
            "red": colours.get("red", 0),
            "yellow": colours.get("yellow", 0),
            "green": colours.get("green", 0),
            "closed": closed,
            "reports": reports,
            "tasks_reported": reported,
            "reminders_sent": sent,
            "reminders_answered": answered,
            "response_rate": answered / sent if sent else None,
            "overdue": overdue,
            "blocked": blocked,
            "open_requests": len(self.requests),
            "behind_quotas": behind,
            "completions": completions,
            "closures": closures,
            "extensions": len(self.extensions),
            "silent_departments": len(self.silent_departments),
        }


def group_number(position: int) -> str:
    """（一）…（十）, then （11） for an unusually long plan."""
    return f"（{MAIN_NUMERALS[position]}）" if position < len(MAIN_NUMERALS) else f"（{position + 1}）"


def heading_number(position: int) -> str:
    """一、二、… for top-level headings."""
    return f"{MAIN_NUMERALS[position]}、" if position < len(MAIN_NUMERALS) else f"{position + 1}、"


# ---- building ------------------------------------------------------------------------------------


@contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while a roll-up's rows and lines are built. They are tens of thousands of
    containers that live until the roll-up is done, so the collector, triggered by the count of containers
    allocated, would walk every object of the process (a full collection, most of a province-size digest's
    Python time) to find nothing to free. Reference counting still frees everything; cycles wait until the
    roll-up is built. (Mercurial does the same for its large containers: util.nogc.)"""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build_rollup(
    *,
    session: Session,
    plan: Plan,
    period: Period,
    now: datetime,
    calendar: WorkCalendar | None = None,
) -> Rollup:
    """Where the plan stands at the end of ``period`` (or now, if earlier), and what happened during it."""
    with _no_gc():
        return _build_rollup(session=session, plan=plan, period=period, now=now, calendar=calendar)


def _build_rollup(
    *,
    session: Session,
    plan: Plan,
    period: Period,
    now: datetime,
    calendar: WorkCalendar | None,
) -> Rollup:
    span = _span(period, now)
    calendar = calendar or WorkCalendar(tz=period.tz)
    rows = _load_rows(session, plan=plan, period=period, span=span)
    return _RollupBuilder(plan, period, now, span, calendar, rows).build()


class _Span(NamedTuple):
    """The days and times a roll-up counts: where things stand on ``as_of`` (the period's last day, or today if
    earlier) against ``day_before`` the period; reports, reminders and events from ``since`` to ``until``
    (exclusive, never after now)."""

    tz: ZoneInfo
    as_of: date
    day_before: date
    since: datetime
    until: datetime


def _span(period: Period, now: datetime) -> _Span:
    tz = ZoneInfo(period.tz)
    today = now.astimezone(tz).date()
    return _Span(
        tz=tz,
        as_of=min(period.end, today),
        day_before=period.start - timedelta(days=1),
        since=period.since,
        until=min(period.until, max(now, period.since)),
    )


# ---- loading: the QUERIES queries, rows as plain tuples -------------------------------------------


@dataclass(slots=True)
class _Rows:
    """What a roll-up reads from the database, as ``_load_rows`` returns it (query numbers in brackets)."""

    departments: dict[int, Any]  # [1] id -> (id, code, name, short_name)
    groups: Sequence[TaskGroup]  # [2] by position
    tasks: list[_TaskRow]  # [3] by position
    co_rows: Sequence[Any]  # [4] (task_id, department_id) of co-responsible departments
    numeric_targets: list[_TargetRow]  # [5] the targets with a number to reach, by id
    sums: dict[int, list[_ObsSum]]  # [6] see _observation_sums
    obs: dict[int, list[_Obs]]  # [7] see _observation_sums
    reports: Sequence[Any]  # [8] see _report_rows
    reminders: Sequence[Any]  # [9] (id, task_id, department_id, sent_at)
    requests: Sequence[CrossRequest]  # [10]
    extensions: Sequence[Extension]  # [11]
    event_rows: list[Any]  # [12] (at, type, task_id, payload)
    last_meeting: Meeting | None  # [13]


def _load_rows(session: Session, *, plan: Plan, period: Period, span: _Span) -> _Rows:
    """Every row the roll-up needs, in ``QUERIES`` queries whatever the plan's size."""
    pid = plan.id
    plan_tasks = select(col(Task.id)).where(Task.plan_id == pid)
    since, until = span.since, span.until
    # Column selects run on the session's connection (Core rows, none of the ORM's per-row work); flush first,
    # as session.exec() would.
    if session.autoflush:
        session.flush()
    conn = session.connection()

    # 1-5: the plan's shape
    departments = {
        row[0]: row
        for row in conn.execute(select(Department.id, Department.code, Department.name, Department.short_name))
    }
    groups = session.exec(select(TaskGroup).where(TaskGroup.plan_id == pid).order_by(col(TaskGroup.position))).all()
    tasks = _task_rows(conn, pid)
    co_rows = conn.execute(
        select(TaskDepartment.task_id, TaskDepartment.department_id).where(
            col(TaskDepartment.task_id).in_(plan_tasks), TaskDepartment.role == "co"
        )
    ).all()
    # plan.queries' rule of a counted target (it reads value and comparator, which _TargetRow has)
    numeric_targets = cast("list[_TargetRow]", counted_targets(cast("list[Target]", _target_rows(conn, pid))))
    # 6-7: observations counted up to the roll-up date: sums per date range, and the rows themselves for
    # the targets whose running totals or fractions need them in order
    sums, obs = _observation_sums(
        session, plan=plan, targets=numeric_targets, dates=(span.as_of, span.day_before), as_of=span.as_of
    )
    return _Rows(
        departments=departments,
        groups=groups,
        tasks=tasks,
        co_rows=co_rows,
        numeric_targets=numeric_targets,
        sums=sums,
        obs=obs,
        reports=_report_rows(conn, plan_tasks, since),  # 8
        reminders=_reminder_rows(conn, plan_tasks, since, until),  # 9
        requests=_request_rows(session, plan_tasks, since),  # 10
        extensions=_extension_rows(session, plan_tasks, since, until),  # 11
        event_rows=_event_rows(conn, pid, since, until),  # 12
        last_meeting=_last_meeting(session, pid, period.end),  # 13
    )


def _task_rows(conn: Connection, pid: int | None) -> list[_TaskRow]:
    return list(
        map(
            _TaskRow._make,
            conn.execute(
                select(*(getattr(Task, f) for f in _TaskRow._fields))
                .where(Task.plan_id == pid)
                .order_by(col(Task.position), col(Task.id))
            ),
        )
    )


def _target_rows(conn: Connection, pid: int | None) -> list[_TargetRow]:
    return list(
        map(
            _TargetRow._make,
            conn.execute(
                select(*(getattr(Target, f) for f in _TargetRow._fields))
                .where(Target.plan_id == pid, col(Target.archived_at).is_(None))
                .order_by(col(Target.id))
            ),
        )
    )


def _report_rows(conn: Connection, plan_tasks: SelectOfScalar[int | None], since: datetime) -> Sequence[Any]:
    """Reports from the period's start on (those after its end tell the progress at its end), by time
    (ix_report_received): (task_id, received_at, department_id, status, previous as text, reminder_id,
    superseded_by_id)."""
    return conn.execute(
        sa_select(
            col(ProgressReport.task_id),
            col(ProgressReport.received_at),
            col(ProgressReport.department_id),
            col(ProgressReport.status),
            sql_cast(ProgressReport.previous, Text),  # decoded only for the reports that tell a progress
            col(ProgressReport.reminder_id),
            col(ProgressReport.superseded_by_id),
        )
        .where(
            _by_time(ProgressReport.task_id).in_(plan_tasks),
            col(ProgressReport.received_at) >= since,
            ~col(ProgressReport.voided),
        )
        .order_by(col(ProgressReport.received_at), col(ProgressReport.id))
    ).all()


def _reminder_rows(
    conn: Connection, plan_tasks: SelectOfScalar[int | None], since: datetime, until: datetime
) -> Sequence[Any]:
    """Reminders to departments' contacts sent in the period, by status and time (ix_reminder_sent)."""
    return conn.execute(
        select(ReminderOccurrence.id, ReminderOccurrence.task_id, Contact.department_id, ReminderOccurrence.sent_at)
        .join(Contact, col(Contact.id) == ReminderOccurrence.contact_id)
        .where(
            _by_time(ReminderOccurrence.task_id).in_(plan_tasks),
            ReminderOccurrence.status == OccurrenceStatus.SENT,
            col(ReminderOccurrence.kind).in_(POLICY_KINDS),
            Contact.role == Role.CONTACT,
            col(ReminderOccurrence.sent_at) >= since,
            col(ReminderOccurrence.sent_at) < until,
        )
    ).all()


def _request_rows(session: Session, plan_tasks: SelectOfScalar[int | None], since: datetime) -> Sequence[CrossRequest]:
    """Requests for help still open, or opened in the period."""
    return session.exec(
        select(CrossRequest)
        .where(col(CrossRequest.task_id).in_(plan_tasks))
        .where((col(CrossRequest.status) == "open") | (col(CrossRequest.created_at) >= since))
        .order_by(col(CrossRequest.created_at))
    ).all()


def _extension_rows(
    session: Session, plan_tasks: SelectOfScalar[int | None], since: datetime, until: datetime
) -> Sequence[Extension]:
    """Extensions waiting, or requested or decided in the period."""
    return session.exec(
        select(Extension)
        .where(col(Extension.task_id).in_(plan_tasks))
        .where(
            (col(Extension.status) == "requested")
            | ((col(Extension.requested_at) >= since) & (col(Extension.requested_at) < until))
            | ((col(Extension.decided_at) >= since) & (col(Extension.decided_at) < until))
        )
        .order_by(col(Extension.requested_at))
    ).all()


def _event_rows(conn: Connection, pid: int | None, since: datetime, until: datetime) -> list[Any]:
    """The event log for the period: (at, type, task_id, payload). By type and time (ix_event_type_at): the plan
    is checked here, since a condition on plan_id leads SQLite to ix_event_plan_id and every progress report
    the plan ever had."""
    return [
        row[:4]
        for row in conn.execute(
            sa_select(col(Event.at), col(Event.type), col(Event.task_id), col(Event.payload), col(Event.plan_id))
            .where(col(Event.type).in_(CHANGE_TYPES), col(Event.at) >= since, col(Event.at) < until)
            .order_by(col(Event.at), col(Event.id))
        )
        if row[4] == pid
    ]


def _last_meeting(session: Session, pid: int | None, end: date) -> Meeting | None:
    """The last meeting before the period ends."""
    return session.exec(
        select(Meeting).where(Meeting.plan_id == pid, Meeting.held_on <= end).order_by(col(Meeting.held_on).desc())
    ).first()


# ---- building: pure Python over the rows ---------------------------------------------------------


@dataclass(slots=True)
class _ReportTally:
    """The period's reports and reminders counted per task and department (see ``_tally_reports``)."""

    in_period: dict[int, list[Any]]  # task id -> its reports in the period, in order
    first_after_end: dict[int, Any]  # task id -> its first report after the period
    reports_by_dept: Counter[int]
    sent_by_task: Counter[int]
    answered_by_task: Counter[int]
    sent_by_dept: Counter[int]
    answered_by_dept: Counter[int]
    first_unanswered: dict[int, datetime]  # task id -> the first reminder of the period no report followed

    def progress_at_start(self, t: _TaskRow, period_reports: list[Any]) -> int:
        r = period_reports[0] if period_reports else self.first_after_end.get(t.id)
        return _progress_before(r, t) if r else t.progress

    def progress_at_end(self, t: _TaskRow) -> int:
        r = self.first_after_end.get(t.id)
        return _progress_before(r, t) if r else t.progress


def _last_live_status(period_reports: list[Any]) -> str | None:
    """The status of the last of a task's period reports (in received order) that was not superseded."""
    return next((r[3] for r in reversed(period_reports) if r[6] is None), None)


def _progress_before(r: Any, t: _TaskRow) -> int:
    """The progress a report found (its ``previous``), or the task's own when it recorded none."""
    previous = json.loads(r[4]) if r[4] is not None else None
    return int((previous or {}).get("progress", t.progress))


def _tally_reports(reports: Sequence[Any], reminders: Sequence[Any], until: datetime) -> _ReportTally:
    """Reports: counts in the period, progress at both ends; reminders: sent and answered."""
    in_period: dict[int, list[Any]] = defaultdict(list)
    first_after_end: dict[int, Any] = {}
    answered: set[int] = set()
    reports_by_task_dept: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    reports_by_dept: Counter[int] = Counter()
    for r in reports:
        task_id, at, dept_id = r[0], r[1], r[2]
        if at < until:
            in_period[task_id].append(r)
            if r[5] is not None:
                answered.add(r[5])
            reports_by_task_dept[(task_id, dept_id)].append(at)
            reports_by_dept[dept_id] += 1
        elif task_id not in first_after_end:
            first_after_end[task_id] = r
    sent_by_task: Counter[int] = Counter()
    answered_by_task: Counter[int] = Counter()
    sent_by_dept: Counter[int] = Counter()
    answered_by_dept: Counter[int] = Counter()
    # A reminder is answered when a report names it, or when the department reports on the task before the
    # next reminder on it (or the period's end): a late report answers one reminder, not every missed one.
    chains: dict[tuple[int, int], list[tuple[datetime, int]]] = defaultdict(list)
    first_unanswered: dict[int, datetime] = {}
    for rem_id, task_id, dept_id, sent_at in reminders:
        chains[(task_id, dept_id)].append((sent_at, rem_id))
        # any report on the task answers the reminders before it (a co-department's too: it resets the ladder)
        reported = in_period.get(task_id)
        if reported and reported[-1][1] >= sent_at:
            continue
        if task_id not in first_unanswered or sent_at < first_unanswered[task_id]:
            first_unanswered[task_id] = sent_at
    for (task_id, dept_id), chain in chains.items():
        chain.sort()
        times = reports_by_task_dept.get((task_id, dept_id), [])
        for i, (sent_at, rem_id) in enumerate(chain):
            nxt = chain[i + 1][0] if i + 1 < len(chain) else until
            ok = rem_id in answered or bisect_left(times, nxt) > bisect_left(times, sent_at)
            sent_by_task[task_id] += 1
            sent_by_dept[dept_id] += 1
            if ok:
                answered_by_task[task_id] += 1
                answered_by_dept[dept_id] += 1
    return _ReportTally(
        in_period=in_period,
        first_after_end=first_after_end,
        reports_by_dept=reports_by_dept,
        sent_by_task=sent_by_task,
        answered_by_task=answered_by_task,
        sent_by_dept=sent_by_dept,
        answered_by_dept=answered_by_dept,
        first_unanswered=first_unanswered,
    )


class _QuotaCounter:
    """Quota lines: a target's progress on the roll-up date and the day before the period, from the summed
    observation ranges (or, for running totals and fractions, the rows in order)."""

    __slots__ = ("_day_before", "_end", "_obs", "_start", "_sums", "_window", "as_of")

    def __init__(self, plan: Plan, rows: _Rows, span: _Span) -> None:
        self._start, self._end = plan.start_date, plan.end_date  # the plan's first and last days
        self._sums, self._obs = rows.sums, rows.obs
        self.as_of, self._day_before = span.as_of, span.day_before
        # the counting window and trajectory with nothing counted, per goal, dates and day, with the window's
        # first day and its last counted one (its last, or the day if earlier)
        self._window: dict[tuple[Any, ...], tuple[QuotaProgress, date, date]] = {}

    def progress_on(self, tg: _TargetRow, on: date) -> QuotaProgress:
        target = cast(Target, tg)  # quota_progress reads only the columns _TargetRow has
        rows = self._obs.get(tg.id)
        if rows is not None:  # running totals or fractions: the rows in order, as everywhere else
            return quota_progress(target, rows, on=on, plan_start=self._start, plan_end=self._end)
        # Whole increments only: the counting window and trajectory with nothing counted (the same for every
        # target with the same goal and dates), plus the summed ranges that make up the window.
        key = (tg.comparator, tg.value, tg.baseline, tg.period, tg.start_date, tg.due_date, on)
        window = self._window.get(key)
        if window is None:
            q = quota_progress(target, (), on=on, plan_start=self._start, plan_end=self._end)
            start, end = q.period_start, q.period_end
            assert start is not None and end is not None  # quota_progress always gives the window
            window = self._window[key] = (q, start, min(end, on))
        q, lo, hi = window
        added = sum(r.total for r in self._sums.get(tg.id, ()) if lo <= r.first and r.last <= hi)
        return dataclasses.replace(q, metric=tg.metric, name=tg.name, unit=tg.unit, actual=q.actual + added)

    def reported(self, tg: _TargetRow, on: date) -> bool:
        """Whether anything was counted in the target's window on ``on`` (else its figure is no data, not 0)."""
        start, stop, _ = counting_window(cast(Target, tg), on, self._start, self._end)
        rows = self._obs.get(tg.id)
        if rows is not None:
            return any(not o.voided and start <= o.observed_on <= stop for o in rows)
        return any(start <= r.first and r.last <= stop for r in self._sums.get(tg.id, ()))

    def line(self, tg: _TargetRow, code: str | None) -> QuotaLine:
        q = self.progress_on(tg, self.as_of)
        before = self.progress_on(tg, self._day_before)
        # A new counting window (1 January for an annual quota) starts from zero, not from last year.
        added = q.actual - before.actual if before.period_start == q.period_start else q.actual
        return QuotaLine(
            metric=q.metric,
            name=q.name,
            unit=q.unit,
            period=q.period,
            actual=q.actual,
            goal=q.goal,
            expected=q.expected,
            added=added,
            behind=q.behind,
            reached=q.reached,
            task_code=code,
            reported=self.reported(tg, self.as_of),
        )


class _Changes(NamedTuple):
    """The period's event log as change lines, and the tasks reported done or closed in it."""

    lines: list[ChangeLine]
    done: set[int]
    closed: set[int]


def _changes(event_rows: list[Any], task_by_id: dict[int, _TaskRow]) -> _Changes:
    done_in_period: set[int] = set()
    closed_in_period: set[int] = set()
    changes: list[ChangeLine] = []
    for at, type_, task_id, payload in event_rows:
        t = task_by_id.get(task_id) if task_id else None
        if type_ == EventType.TASK_REPORTED_DONE and task_id:
            done_in_period.add(task_id)
        elif type_ == EventType.TASK_CLOSED and task_id:
            closed_in_period.add(task_id)
        changes.append(ChangeLine(at, type_, t.code if t else None, t.title if t else "", payload or {}))
    return _Changes(changes, done_in_period, closed_in_period)


def _workdays_until(calendar: WorkCalendar, as_of: date) -> Callable[[date | None], int | None]:
    """The working days from ``as_of`` to a due date, as assess() needs them (memoised per due date)."""
    memo: dict[date, int] = {}

    def workdays_until(due: date | None) -> int | None:
        # assess() only asks "within 3 working days?": beyond 3 weeks the calendar-day count (an upper bound
        # that no holiday run brings down to 3) answers it without walking the calendar for every task. Past
        # the due date assess() answers "overdue" (or green for a finished task) before it asks, so the
        # (negative) day count stands in for a walk back over the calendar.
        if due is None:
            return None
        days = (due - as_of).days
        if days > 21 or days < 0:
            return days
        if due not in memo:
            memo[due] = calendar.workdays_between(as_of, due)
        return memo[due]

    return workdays_until


class _RollupBuilder:
    """One roll-up's lines from its loaded rows: ``build`` runs one method per part of the roll-up."""

    __slots__ = ("calendar", "co", "codes", "names", "now", "period", "plan", "rows", "span", "task_by_id")

    def __init__(
        self, plan: Plan, period: Period, now: datetime, span: _Span, calendar: WorkCalendar, rows: _Rows
    ) -> None:
        self.plan, self.period, self.now, self.span, self.calendar, self.rows = plan, period, now, span, calendar, rows
        self.names = {i: short_name or name for i, _code, name, short_name in rows.departments.values()}
        self.codes = {i: code for i, code, _name, _short in rows.departments.values()}
        self.task_by_id = {t.id: t for t in rows.tasks}
        co: dict[int, list[int]] = defaultdict(list)
        for task_id, dept_id in rows.co_rows:
            co[task_id].append(dept_id)
        self.co = co

    def build(self) -> Rollup:
        rows = self.rows
        tally = _tally_reports(rows.reports, rows.reminders, self.span.until)
        quotas = _QuotaCounter(self.plan, rows, self.span)
        targets_by_task: dict[int | None, list[_TargetRow]] = defaultdict(list)
        for tg in rows.numeric_targets:
            targets_by_task[tg.task_id].append(tg)
        request_lines, open_requests = self.request_lines()
        extension_lines = self.extension_lines()
        changes = _changes(rows.event_rows, self.task_by_id)
        lines_by_group = self.task_lines(tally, quotas, targets_by_task, request_lines, changes)
        group_lines = self.group_lines(lines_by_group)
        dept_lines = self.department_lines(group_lines, tally)
        goals = [quotas.line(tg, None) for tg in targets_by_task.get(None, [])]
        rollup = Rollup(
            plan=self.plan,
            period=self.period,
            as_of=self.span.as_of,
            generated_at=self.now,
            groups=group_lines,
            departments=dept_lines,
            goals=goals,
            requests=open_requests,
            extensions=extension_lines,
            changes=changes.lines,
            last_meeting=rows.last_meeting,
        )
        rollup.decisions = decisions_needed(rollup)
        return rollup

    def request_lines(self) -> tuple[dict[int, list[RequestLine]], list[RequestLine]]:
        """Requests for help per task, and the open ones."""
        task_by_id, dname, tz, as_of = self.task_by_id, self.names.__getitem__, self.span.tz, self.span.as_of
        request_lines: dict[int, list[RequestLine]] = defaultdict(list)
        open_requests: list[RequestLine] = []
        for cr in self.rows.requests:
            t = task_by_id.get(cr.task_id)
            if t is None:
                continue
            created = cr.created_at.astimezone(tz).date()
            line = RequestLine(
                task_code=t.code,
                task_title=t.title,
                from_dept=dname(cr.from_department_id),
                to_dept=dname(cr.to_department_id),
                text=cr.text,
                created_on=created,
                age_days=(as_of - created).days,
                status=cr.status,
                task_leader=t.responsible_leader,
            )
            request_lines[cr.task_id].append(line)
            if cr.status == "open":
                open_requests.append(line)
        return request_lines, open_requests

    def extension_lines(self) -> list[ExtensionLine]:
        task_by_id, tz = self.task_by_id, self.span.tz
        return [
            ExtensionLine(
                task_code=task_by_id[e.task_id].code,
                task_title=task_by_id[e.task_id].title,
                status=e.status,
                original_due=task_by_id[e.task_id].original_due_date,
                old_due=e.old_due,
                new_due=e.new_due,
                reason=e.reason,
                requested_on=e.requested_at.astimezone(tz).date(),
                decided_on=e.decided_at.astimezone(tz).date() if e.decided_at else None,
            )
            for e in self.rows.extensions
            if e.task_id in task_by_id
        ]

    def task_lines(
        self,
        tally: _ReportTally,
        quotas: _QuotaCounter,
        targets_by_task: dict[int | None, list[_TargetRow]],
        request_lines: dict[int, list[RequestLine]],
        changes: _Changes,
    ) -> dict[int, list[TaskLine]]:
        """A line per task not archived before the period, with its assessment, per group id (in task order)."""
        since, as_of = self.span.since, self.span.as_of
        codes, names, co = self.codes, self.names, self.co
        in_period, sent_by_task, answered_by_task = tally.in_period, tally.sent_by_task, tally.answered_by_task
        progress_at_start, progress_at_end = tally.progress_at_start, tally.progress_at_end
        quota_line = quotas.line
        done_in_period, closed_in_period = changes.done, changes.closed
        workdays_until = _workdays_until(self.calendar, as_of)
        first_unanswered, tz = tally.first_unanswered, self.span.tz
        quiet_memo: dict[date, int] = {}  # working days from a reminder's day to as_of (few distinct days)
        no_reports: list[Any] = []
        # assess() reads the task's status and due date, the working days to it, the latest report's status and
        # whether a quota is behind: tasks alike in these are assessed once
        assessed: dict[tuple[Any, ...], Assessment] = {}
        lines_by_group: dict[int, list[TaskLine]] = defaultdict(list)
        for t in self.rows.tasks:
            if t.archived_at is not None and t.archived_at < since:
                continue  # archived before the period: history, not news
            tid = t.id
            targets_of = targets_by_task.get(tid)
            quotas_of = [quota_line(tg, t.code) for tg in targets_of] if targets_of else []
            period_reports = in_period.get(tid, no_reports)
            # The latest report as coordbot.plan.queries.latest_reports defines it (the newest received, then the
            # newest id; not undone, not superseded), found in the rows loaded already, not by a query per task:
            # they come in that order with undone ones left out, so it is the last of the period's that no
            # other report superseded.
            last_status = None
            if period_reports:
                last = period_reports[-1]
                last_status = last[3] if last[6] is None else _last_live_status(period_reports)
            if last_status is None and t.colour_reason == "reported_at_risk":
                last_status = "at_risk"  # the latest report, older than the period, said so
            until_due = workdays_until(t.due_date)
            counted = [_as_progress(q) for q in quotas_of if q.period != "qualitative"] if quotas_of else ()
            quiet = None
            first = first_unanswered.get(tid)
            if first is not None:
                day = first.astimezone(tz).date()
                if day not in quiet_memo:
                    quiet_memo[day] = self.calendar.workdays_between(day, as_of)
                # assess() only asks "past the reply window?": one value stands for every day past it
                quiet = min(quiet_memo[day], REPLY_WINDOW_WORKDAYS + 1)
            escalated = t.escalation_level >= 1
            key = (t.status, t.due_date, until_due, last_status, any(q.behind for q in counted), quiet, escalated)
            a = assessed.get(key)
            if a is None:
                a = assessed[key] = assess(
                    cast(Task, t),  # assess reads status, due_date and escalation_level
                    counted,
                    today=as_of,
                    workdays_until_due=until_due,
                    last_report_status=last_status,
                    workdays_unanswered=quiet,
                )
            is_open = t.status in OPEN_STATUSES
            sent, ok = sent_by_task.get(tid, 0), answered_by_task.get(tid, 0)
            co_ids = co.get(tid)
            progress, progress_start = progress_at_end(t), progress_at_start(t, period_reports)
            basis = "report"
            if progress == 0 and quotas_of:
                # no percent reported: "进度 0%" beside "5/10 done" contradicts it; the quotas say where it is
                shares = [(q.actual, q.added, q.goal) for q in quotas_of if q.goal and q.reported]
                if shares:
                    basis = "quota"
                    progress = _mean_share(shares, added=False)
                    progress_start = _mean_share(shares, added=True)
            lines_by_group[t.group_id].append(
                TaskLine(
                    id=tid,
                    code=t.code,
                    title=t.title,
                    group_code="",
                    kind=t.kind,
                    lead_code=codes[t.lead_department_id],
                    lead=names[t.lead_department_id],
                    co=[names[d] for d in co_ids] if co_ids else [],
                    status=t.status,
                    colour=a.colour,
                    reason=a.reason,
                    no_reply=is_open and sent > 0 and not period_reports,
                    progress=progress,
                    progress_start=progress_start,
                    reports=len(period_reports),
                    last_report_at=period_reports[-1][1] if period_reports else t.last_report_at,
                    due_date=t.due_date,
                    original_due_date=t.original_due_date,
                    overdue_days=(as_of - t.due_date).days if a.overdue and t.due_date else 0,
                    quotas=quotas_of,
                    reminders_sent=sent,
                    reminders_answered=ok,
                    requests=request_lines.get(tid, []),
                    reported_done_in_period=tid in done_in_period,
                    closed_in_period=tid in closed_in_period,
                    escalation_level=t.escalation_level,
                    progress_basis=basis,
                    leader=t.responsible_leader,
                )
            )
        return lines_by_group

    def group_lines(self, lines_by_group: dict[int, list[TaskLine]]) -> list[GroupLine]:
        """The groups with tasks to show, main groups numbered （一）, （二） … in plan order."""
        group_lines: list[GroupLine] = []
        main_pos = 0
        for g in self.rows.groups:
            number = ""
            if g.kind == "main":
                number = group_number(main_pos)
                main_pos += 1
            items = lines_by_group.get(row_id(g), [])
            for item in items:
                item.group_code = g.code
            if items:
                group_lines.append(GroupLine(g.code, g.title, g.kind, number, items))
        return group_lines

    def department_lines(self, group_lines: list[GroupLine], tally: _ReportTally) -> list[DepartmentLine]:
        """Every department with tasks, reminders or reports, the most lead tasks first."""
        tasks, task_by_id, co, codes = self.rows.tasks, self.task_by_id, self.co, self.codes
        departments, dname = self.rows.departments, self.names.__getitem__
        sent_by_dept, answered_by_dept = tally.sent_by_dept, tally.answered_by_dept
        reports_by_dept = tally.reports_by_dept
        lead_count: Counter[int] = Counter(t.lead_department_id for t in tasks if t.archived_at is None)
        co_count: Counter[int] = Counter(d for tid, ds in co.items() if task_by_id[tid].archived_at is None for d in ds)
        colour_by_dept: dict[int, Counter[str]] = defaultdict(Counter)
        for gl in group_lines:
            for tl in gl.tasks:
                colour_by_dept[task_by_id[tl.id].lead_department_id][tl.colour] += 1
        involved = set(lead_count) | set(co_count) | set(sent_by_dept) | set(reports_by_dept)
        return sorted(
            (
                DepartmentLine(
                    code=codes[d],
                    name=dname(d),
                    lead_tasks=lead_count.get(d, 0),
                    co_tasks=co_count.get(d, 0),
                    reminders_sent=sent_by_dept.get(d, 0),
                    reminders_answered=answered_by_dept.get(d, 0),
                    reports=reports_by_dept.get(d, 0),
                    red=colour_by_dept[d]["red"],
                    yellow=colour_by_dept[d]["yellow"],
                )
                for d in involved
                if d in departments
            ),
            key=lambda x: (-x.lead_tasks, x.code),
        )


def _by_time(task_id: Any) -> ColumnElement[int]:
    """``task_id + 0``: the same value, but no index on task_id applies, so the time condition picks the index.
    Filtering a period's rows to the plan's tasks (a hash or list lookup per row) is cheaper than an index
    probe per task, which SQLite otherwise chooses for ``task_id IN (the plan's tasks)``."""
    return col(task_id) + literal_column("0", Integer)


def _observation_sums(
    session: Session, *, plan: Plan, targets: list[_TargetRow], dates: tuple[date, ...], as_of: date
) -> tuple[dict[int, list[_ObsSum]], dict[int, list[_Obs]]]:
    """Observations of ``targets`` up to ``as_of``, in two queries whatever their number.

    The first sums them per target and date range, the ranges cut at every counting window's first day and
    at the day after its last (``period_bounds`` on each of ``dates``), so every window is a union of ranges.
    Sums of plain increments of whole numbers are exact in any order; a target with a running total, a
    fraction or a fractional baseline gets its rows instead (the second query), to be counted in order by
    ``quota_progress`` exactly as the rest of coordbot counts them."""
    plan_start, plan_end = plan.start_date, plan.end_date
    cuts: set[date] = set()
    for tg in targets:
        for on in dates:
            start, end = period_bounds(cast(Target, tg), on, plan_start, plan_end)
            cuts.update((start, min(end, on) + timedelta(days=1)))
    edges = sorted(d for d in cuts if d <= as_of)
    day = col(Observation.observed_on)
    bucket: Any = (
        case(*((day < edge, literal(i, Integer)) for i, edge in enumerate(edges)), else_=literal(len(edges), Integer))
        if len(edges) <= MAX_BUCKETS
        else day
    )
    plain = (col(Observation.mode) == "increment") & (col(Observation.value) == func.round(Observation.value))
    mine = col(Observation.target_id).in_(select(Target.id).where(Target.plan_id == plan.id))
    counted = (~col(Observation.voided), day <= as_of)
    conn = session.connection()
    sums: dict[int, list[_ObsSum]] = defaultdict(list)
    exact: set[int] = {
        tg.id
        for tg in targets
        if (tg.period == "at-date" and tg.baseline is not None and not float(tg.baseline).is_integer())
        or tg.measure != "count"  # a rate's latest value, not a sum: its rows
    }
    for target_id, first, last, total, irregular in conn.execute(
        sa_select(
            col(Observation.target_id),
            func.min(day),
            func.max(day),
            func.sum(Observation.value),
            func.sum(case((plain, 0), else_=1)),
        )
        .where(mine, *counted)
        .group_by(col(Observation.target_id), bucket)
    ):
        if irregular:
            exact.add(target_id)
        sums[target_id].append(_ObsSum(_as_date(first), _as_date(last), float(total)))
    obs: dict[int, list[_Obs]] = {tid: [] for tid in exact}
    # the targets are the plan's already: no plan condition, so none is scanned for when there are none
    for row in conn.execute(
        sa_select(
            col(Observation.id),
            col(Observation.target_id),
            col(Observation.value),
            col(Observation.mode),
            col(Observation.observed_on),
            col(Observation.recorded_at),
            col(Observation.voided),
        ).where(*counted, col(Observation.target_id).in_(sorted(exact)))
    ):
        obs[row[1]].append(_Obs._make(row))
    return sums, obs


def _as_date(value: Any) -> date:
    # min()/max() of a date column come back as text on SQLite
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _mean_share(shares: list[tuple[float, float, float]], *, added: bool) -> int:
    """The quotas' mean share of their goals in whole percent (each at most 100): at the period's end, or
    before what was added in it (``added``)."""
    total = sum(min(1.0, max(0.0, (actual - (add if added else 0.0)) / goal)) for actual, add, goal in shares)
    return int(total / len(shares) * 100)


def _as_progress(q: QuotaLine) -> QuotaProgress:
    return QuotaProgress(q.metric, q.name, q.unit, q.period, q.actual, q.goal, q.expected, None, None)


def decisions_needed(rollup: Rollup) -> list[Decision]:
    """What the leaders or the meeting must settle: waiting extensions, blockers, stale requests for help,
    overdue tasks, tasks escalated for silence and departments that did not answer at all. With blockers and
    overdue tasks, the escalated ones make every red task."""
    out: list[Decision] = []
    for e in rollup.extensions:
        if e.status == "requested":
            out.append(
                Decision(
                    "extension",
                    e.task_code,
                    e.task_title,
                    {"old_due": e.old_due, "new_due": e.new_due, "reason": e.reason},
                )
            )
    for t in rollup.blocked:
        out.append(
            Decision(
                "blocked",
                t.code,
                t.title,
                {"lead": t.lead, "helpers": [r.to_dept for r in t.requests if r.status == "open"]},
            )
        )
    blocked_codes = {t.code for t in rollup.blocked}
    for r in rollup.requests:
        if r.age_days >= STALE_REQUEST_DAYS and r.task_code not in blocked_codes:
            out.append(
                Decision(
                    "stale_request",
                    r.task_code,
                    r.task_title,
                    {"from": r.from_dept, "to": r.to_dept, "days": r.age_days},
                )
            )
    for t in rollup.overdue:
        out.append(Decision("overdue", t.code, t.title, {"lead": t.lead, "days": t.overdue_days, "due": t.due_date}))
    for t in rollup.escalated:
        out.append(Decision("escalated", t.code, t.title, {"lead": t.lead, "level": t.escalation_level}))
    for d in rollup.silent_departments:
        out.append(Decision("silent_department", None, d.name, {"sent": d.reminders_sent}))
    return out


def exceptions(tasks: Iterable[TaskLine]) -> list[TaskLine]:
    """Red first, then yellow; within a colour the longest overdue and lowest progress first."""
    order: dict[str, int] = {Colour.RED: 0, Colour.YELLOW: 1}
    return sorted(
        (t for t in tasks if t.colour in order),
        key=lambda t: (order[t.colour], -t.overdue_days, t.progress, t.code),
    )
