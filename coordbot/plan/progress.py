"""Where a task stands: quota progress against its trajectory, colour (RAG) with its reason, deadlines.

Pure functions over rows already loaded, so the reminder engine, chat commands and reports share one
definition of "behind", "at risk" and "overdue".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from coordbot.plan.models import Colour, Target, Task, TaskStatus

# A quota counts as behind when it is below this share of where the straight-line trajectory says it
# should be by now: small dips early in a year are normal.
BEHIND_TOLERANCE = 0.85
AT_RISK_WORKDAYS = 3
# 督查督办: a reminder has a reply window of its own day and this many working days after it; still unanswered
# after that, the task turns yellow. Escalation (``Task.escalation_level`` ≥ 1, silence up the ladder) turns it red. See
# docs/colours.md.
REPLY_WINDOW_WORKDAYS = 2


class ObservationLike(Protocol):
    """What is read of an observation: an ``Observation``, or a row of just these columns (cheaper to load)."""

    @property
    def id(self) -> int | None: ...
    @property
    def value(self) -> float: ...
    @property
    def mode(self) -> str: ...
    @property
    def observed_on(self) -> date: ...
    @property
    def recorded_at(self) -> datetime: ...
    @property
    def voided(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class QuotaProgress:
    metric: str
    name: str
    unit: str
    period: str
    actual: float
    goal: float | None
    expected: float | None  # where the trajectory says it should be on the date
    period_start: date | None
    period_end: date | None
    measure: str = "count"  # rate / growth: ``actual`` is the latest reported value, never pro-rated
    has_value: bool = True  # rate / growth: whether any value was reported in the period
    about: bool = False  # 左右: the goal is approximate (wording)
    tolerance: float = 0.0  # ± the plan allows: reached within it

    @property
    def behind(self) -> bool:
        return (
            self.expected is not None
            and self.expected > 0
            and self.actual + self.tolerance < self.expected * BEHIND_TOLERANCE
        )

    @property
    def reached(self) -> bool:
        return self.goal is not None and self.actual + self.tolerance >= self.goal


def period_bounds(target: Target, on: date, plan_start: date, plan_end: date) -> tuple[date, date]:
    """The counting window of a target on a date: the calendar year, the whole plan period, or up to due."""
    if target.period == "annual":
        return date(on.year, 1, 1), date(on.year, 12, 31)
    start = target.start_date or plan_start
    end = target.due_date or plan_end
    return start, end


def actual_value(observations: Iterable[ObservationLike], start: date, end: date, baseline: float = 0.0) -> float:
    """Counted value in [start, end]: the last reported total, plus the increments reported after it."""
    rows = sorted(
        (o for o in observations if not o.voided and start <= o.observed_on <= end),
        key=lambda o: (o.observed_on, o.recorded_at, o.id or 0),
    )
    value = baseline
    for o in rows:
        value = o.value if o.mode == "total" else value + o.value
    return value


def latest_value(observations: Iterable[ObservationLike], start: date, end: date) -> float | None:
    """A rate's value in [start, end]: the last one reported (an increment is read as the new level too)."""
    rows = sorted(
        (o for o in observations if not o.voided and start <= o.observed_on <= end),
        key=lambda o: (o.observed_on, o.recorded_at, o.id or 0),
    )
    return rows[-1].value if rows else None


def counting_window(target: Target, on: date, plan_start: date, plan_end: date) -> tuple[date, date, float]:
    """The observations counted on ``on`` (those in [start, stop]) and the value counting starts from."""
    start, end = period_bounds(target, on, plan_start, plan_end)
    baseline = (target.baseline or 0.0) if target.period == "at-date" else 0.0
    return start, min(end, on), baseline


def quota_progress(
    target: Target,
    observations: Iterable[ObservationLike],
    *,
    on: date,
    plan_start: date,
    plan_end: date,
    actual: float | None = None,
) -> QuotaProgress:
    """``actual``: the counted value when the caller already has it, exactly as ``actual_value`` would give it
    for these observations (then ``observations`` is not read)."""
    start, end = period_bounds(target, on, plan_start, plan_end)
    _, stop, baseline = counting_window(target, on, plan_start, plan_end)
    if target.measure != "count":
        # A rate or a growth is a level, read at the period's end: the latest report, no trajectory (a 6.5%
        # growth is not "2% by April").
        return QuotaProgress(
            metric=target.metric,
            name=target.name,
            unit=target.unit,
            period=target.period,
            actual=latest if (latest := latest_value(observations, start, stop)) is not None else baseline,
            goal=target.value,
            expected=None,
            period_start=start,
            period_end=end,
            measure=target.measure,
            has_value=latest is not None,
            about=target.about,
            tolerance=target.tolerance or 0.0,
        )
    if actual is None:
        actual = actual_value(observations, start, stop, baseline)
    expected = None
    # A level to reach by a date (每万人口…达到30件) has a trajectory only from a known baseline; counts
    # (quotas) start from zero. Counts are whole: one conference a year is not "behind" in March.
    has_trajectory = target.period != "at-date" or target.baseline is not None
    if target.value is not None and target.comparator == ">=" and end > start and has_trajectory:
        elapsed = max(0, min((on - start).days + 1, (end - start).days + 1))
        share = elapsed / ((end - start).days + 1)
        expected = baseline + (target.value - baseline) * share
        if target.period != "at-date":
            expected = float(int(expected))
    return QuotaProgress(
        metric=target.metric,
        name=target.name,
        unit=target.unit,
        period=target.period,
        actual=actual,
        goal=target.value,
        expected=expected,
        period_start=start,
        period_end=end,
        about=target.about,
        tolerance=target.tolerance or 0.0,
    )


@dataclass(frozen=True, slots=True)
class Assessment:
    colour: Colour
    # overdue | blocked | escalated | due_soon | unreported | reported_at_risk | behind_quota | "" (on track)
    reason: str
    overdue: bool


def assess(
    task: Task,
    quotas: Sequence[QuotaProgress],
    *,
    today: date,
    workdays_until_due: int | None,
    last_report_status: str | None = None,
    workdays_unanswered: int | None = None,
) -> Assessment:
    """Colour by the office's rules (docs/colours.md), the first that applies:

    red: overdue, blocked, or escalated to a leader or the office (``task.escalation_level`` ≥ 1);
    yellow: due within 3 working days and not done, unreported past the reply window (``workdays_unanswered``,
    the working days from the first reminder no report followed to today, above ``REPLY_WINDOW_WORKDAYS``;
    None when every reminder was answered), reported at risk, or behind a quota's trajectory; green otherwise.
    Closed, reported-done and suspended tasks are green. A report restores the colour: it resets the escalation
    level and answers the reminders.
    """
    if task.status in (TaskStatus.CLOSED, TaskStatus.REPORTED_DONE, TaskStatus.SUSPENDED):
        return Assessment(Colour.GREEN, "", False)
    overdue = task.due_date is not None and task.due_date < today
    if overdue:
        return Assessment(Colour.RED, "overdue", True)
    if task.status == TaskStatus.BLOCKED:
        return Assessment(Colour.RED, "blocked", False)
    if task.escalation_level >= 1:
        return Assessment(Colour.RED, "escalated", False)
    if workdays_until_due is not None and workdays_until_due <= AT_RISK_WORKDAYS:
        return Assessment(Colour.YELLOW, "due_soon", False)
    if workdays_unanswered is not None and workdays_unanswered > REPLY_WINDOW_WORKDAYS:
        return Assessment(Colour.YELLOW, "unreported", False)
    if last_report_status == "at_risk":
        return Assessment(Colour.YELLOW, "reported_at_risk", False)
    if any(q.behind for q in quotas):
        return Assessment(Colour.YELLOW, "behind_quota", False)
    return Assessment(Colour.GREEN, "", False)
