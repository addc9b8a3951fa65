"""Where a task stands, read from the database: its quota progress and its latest report.

The one loader of both for the chat (confirmations, /tasks), the reminders and the 督办 review, so they
agree on what a task has counted and on which report is its latest. The arithmetic is ``plan.progress``'s
(pure functions over rows); this module only decides what to load, with as few statements as it can:
a progress report runs these on every reply.

(The weekly roll-ups load a whole plan's observations for two dates at once and keep their own bulk path.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, or_
from sqlalchemy import select as sa_select  # for more than four columns: sqlmodel's is typed for four at most
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from coordbot.core.db import row_id
from coordbot.plan.models import Observation, Plan, ProgressReport, Target, Task
from coordbot.plan.progress import QuotaProgress, counting_window, quota_progress

# ---- targets ---------------------------------------------------------------------------------------

# Statements run on every report, built once (building a statement costs more than running it on SQLite).
LIVE_TARGETS = (
    select(Target)
    .where(Target.task_id == bindparam("task_id"), col(Target.archived_at).is_(None))
    .order_by(col(Target.id))
)
LIVE_TARGETS_OF_TASKS = (
    select(Target)
    .where(col(Target.task_id).in_(bindparam("task_ids", expanding=True)), col(Target.archived_at).is_(None))
    .order_by(col(Target.task_id), col(Target.id))
)
_NUMERIC_TARGETS = (
    select(Target)
    .where(Target.task_id == bindparam("task_id"), col(Target.archived_at).is_(None))
    .order_by(col(Target.metric))
)


def is_counted(target: Target) -> bool:
    """A target with a number to reach (>=, <= or ==): it has quota progress; a qualitative one has not."""
    return target.value is not None and target.comparator != "qualitative"


def counted_targets(targets: Iterable[Target]) -> list[Target]:
    return [t for t in targets if is_counted(t)]


def numeric_targets(*, session: Session, task_id: int) -> list[Target]:
    """A task's live counted targets in a stable order (by metric: button indexes refer to it)."""
    return counted_targets(session.exec(_NUMERIC_TARGETS, params={"task_id": task_id}))


# ---- quota progress --------------------------------------------------------------------------------

# What quota_progress reads of an observation. Plain rows, not ORM instances: a busy target gains an
# observation with every report, and building instances for all of them was most of a report's cost.
_OBSERVATION_COLUMNS = (
    col(Observation.target_id),
    col(Observation.id),
    col(Observation.value),
    col(Observation.mode),
    col(Observation.observed_on),
    col(Observation.recorded_at),
    col(Observation.voided),
)
_EXACT = 2.0**53  # sums of whole numbers below this are exact in floating point, in any order
_SUMMED_CHUNK = 128  # targets per summing statement; statements are built for powers of two up to it


def load_quota_progress(
    *, session: Session, targets: Sequence[Target], plan_of: Callable[[Target], Plan], today: date
) -> list[QuotaProgress]:
    """``quota_progress`` on ``today`` of each counted target (``counted_targets(targets)``, in that order).

    ``plan_of(target)``: the plan of the target's task (its period bounds the counting). Summed in the
    database where that is exact, from the observations otherwise; observations not yet flushed are not seen.
    """
    counted = counted_targets(targets)
    if not counted:
        return []
    ids = [row_id(t) for t in counted]
    bounds = {tid: (plan_of(t).start_date, plan_of(t).end_date) for tid, t in zip(ids, counted, strict=True)}
    windows = {tid: counting_window(t, today, *bounds[tid]) for tid, t in zip(ids, counted, strict=True)}
    # Rates and growth are read (their latest value), never summed.
    counts = {tid for tid, t in zip(ids, counted, strict=True) if t.measure == "count"}
    summed = _summed(session, {tid: w for tid, w in windows.items() if tid in counts})
    rows = _observations(session, [tid for tid in ids if tid not in summed])
    return [
        quota_progress(
            t,
            rows.get(tid, ()),
            on=today,
            plan_start=bounds[tid][0],
            plan_end=bounds[tid][1],
            actual=summed.get(tid),
        )
        for tid, t in zip(ids, counted, strict=True)
    ]


def task_quota_progress(*, session: Session, task: Task, today: date) -> list[QuotaProgress]:
    """A task's quota progress on ``today`` (one line per counted target, in target order)."""
    plan = session.get(Plan, task.plan_id)
    assert plan is not None
    targets = list(session.exec(LIVE_TARGETS, params={"task_id": task.id}))
    return load_quota_progress(session=session, targets=targets, plan_of=lambda _target: plan, today=today)


def tasks_quota_progress(*, session: Session, tasks: Sequence[Task], today: date) -> dict[int, list[QuotaProgress]]:
    """``task_quota_progress`` of many tasks with a few statements in all (a task list is one line per task)."""
    out: dict[int, list[QuotaProgress]] = {row_id(t): [] for t in tasks}
    if not out:
        return out
    counted = counted_targets(session.exec(LIVE_TARGETS_OF_TASKS, params={"task_ids": list(out)}))
    plans = {row_id(t): session.get(Plan, t.plan_id) for t in tasks}  # from the identity map after the first

    def plan_of(target: Target) -> Plan:
        plan = plans[_task_id(target)]
        assert plan is not None  # task.plan_id is a foreign key
        return plan

    progress = load_quota_progress(session=session, targets=counted, plan_of=plan_of, today=today)
    for target, line in zip(counted, progress, strict=True):
        out[_task_id(target)].append(line)
    return out


def _task_id(target: Target) -> int:
    """The task of a target loaded as a task's (``LIVE_TARGETS_OF_TASKS``); a plan-level goal has none."""
    if target.task_id is None:
        raise ValueError(f"target {target.metric!r} is a plan-level goal, not a task's")
    return target.task_id


def _summed(session: Session, windows: dict[int, tuple[date, date, float]]) -> dict[int, float]:
    """Counted values the database can sum exactly: targets whose window holds only whole-number increments.

    ``actual_value`` adds in time order from the baseline; with whole numbers and no running total (累计) in
    the window, any order gives the same float, so one aggregate row per target replaces loading them all.
    """
    items = list(windows.items())
    stats: dict[int, Any] = {}
    for first in range(0, len(items), _SUMMED_CHUNK):
        chunk = items[first : first + _SUMMED_CHUNK]
        size = 1 << (len(chunk) - 1).bit_length()  # padded with the last window: a few cached statements
        chunk += chunk[-1:] * (size - len(chunk))
        params: dict[str, Any] = {}
        for i, (tid, (start, stop, _)) in enumerate(chunk):
            params[f"t{i}"], params[f"a{i}"], params[f"b{i}"] = tid, start, stop
        stats.update((row[0], row[1:]) for row in session.execute(_summed_statement(size), params))
    out: dict[int, float] = {}
    for tid, (_, _, baseline) in items:
        count, total, magnitude, totals, fractional = stats.get(tid, (0, 0.0, 0.0, 0, 0))
        if not count:
            out[tid] = baseline
        elif not totals and not fractional and float(baseline).is_integer() and abs(baseline) + magnitude < _EXACT:
            out[tid] = baseline + float(total)
    return out


@lru_cache(maxsize=16)
def _summed_statement(windows: int) -> Select[int, int, float, Any, Any, Any]:
    """``_summed``'s query for that many targets, built once: building it cost ten times running it."""
    in_window = [
        and_(
            col(Observation.target_id) == bindparam(f"t{i}"),
            col(Observation.observed_on) >= bindparam(f"a{i}"),
            col(Observation.observed_on) <= bindparam(f"b{i}"),
        )
        for i in range(windows)
    ]
    value = col(Observation.value)
    return (
        sa_select(
            col(Observation.target_id),
            func.count(),
            func.sum(value),
            func.sum(func.abs(value)),
            func.sum(case((col(Observation.mode) == "total", 1), else_=0)),
            func.sum(case((value != func.round(value), 1), else_=0)),
        )
        .where(~col(Observation.voided), or_(*in_window))
        .group_by(col(Observation.target_id))
    )


def _observations(session: Session, target_ids: Sequence[int]) -> dict[int, list[Any]]:
    """The live observations of these targets (rows with Observation's attribute names), by target id."""
    by_target: dict[int, list[Any]] = {tid: [] for tid in target_ids}
    if by_target:
        live = col(Observation.target_id).in_(list(by_target)), ~col(Observation.voided)
        for row in session.execute(sa_select(*_OBSERVATION_COLUMNS).where(*live)):
            by_target[row.target_id].append(row)
    return by_target


# ---- latest report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestReport:
    task_id: int
    id: int
    received_at: datetime
    status: str | None
    text: str


def _latest_reports_statement() -> Select[int, int | None, datetime, str | None, str]:
    r = aliased(ProgressReport)
    latest = (
        select(r.id)
        .where(r.task_id == Task.id, ~col(r.voided), col(r.superseded_by_id).is_(None))
        .order_by(col(r.received_at).desc(), col(r.id).desc())
        .limit(1)
        .correlate(Task)
        .scalar_subquery()
    )
    ids = select(latest).where(col(Task.id).in_(bindparam("task_ids", expanding=True)))
    return sa_select(
        col(ProgressReport.task_id),
        col(ProgressReport.id),
        col(ProgressReport.received_at),
        col(ProgressReport.status),
        col(ProgressReport.text),
    ).where(col(ProgressReport.id).in_(ids))


_LATEST_REPORTS = _latest_reports_statement()  # built once: an alias is costly to build


def latest_reports(*, session: Session, task_ids: Iterable[int]) -> dict[int, LatestReport]:
    """Each task's latest live report (not undone, not superseded): the newest received, then the newest id.

    A report received earlier can be stored later (replies are handled concurrently), so the highest id is
    not the latest. One indexed look-up per task (task_id, received_at), whatever its number of reports.
    """
    ids = list(task_ids)
    if not ids:
        return {}
    return {
        row.task_id: LatestReport(row.task_id, row.id, row.received_at, row.status, row.text)
        for row in session.execute(_LATEST_REPORTS, {"task_ids": ids})
    }
