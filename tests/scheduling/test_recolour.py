"""plan.actions.recolour on its own: the colour rules applied to a task, with the events a change writes."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.core.events import Event, EventType
from coordbot.plan.actions import recolour
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Task
from coordbot.plan.progress import QuotaProgress

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TODAY = NOW.date()


def _quota(actual: float, expected: float | None) -> QuotaProgress:
    return QuotaProgress("m", "指标", "项", "annual", actual, 10, expected, date(2026, 1, 1), date(2026, 12, 31))


def _recolour(s: Session, task: Task, *, quotas=(), until_due=None, last=None):  # type: ignore[no-untyped-def]
    return recolour(
        session=s,
        task=task,
        quotas=list(quotas),
        today=TODAY,
        workdays_until_due=until_due,
        last_report_status=last,
        now=NOW,
    )


def _events(s: Session) -> list[tuple[str, dict]]:
    s.flush()
    colour_events = col(Event.type).in_([EventType.TASK_COLOUR_CHANGED, EventType.TASK_OVERDUE])
    return [(e.type, e.payload) for e in s.exec(select(Event).where(colour_events).order_by(col(Event.id)))]


@pytest.fixture
def task(engine: Engine, loaded_plan: LoadedPlan) -> Task:
    with Session(engine) as s:
        t = s.exec(select(Task).where(Task.code == "2.1")).one()
        s.expunge(t)
    return t


@pytest.mark.parametrize(
    ("change", "kwargs", "colour", "reason"),
    [
        ({"status": "blocked"}, {}, "red", "blocked"),
        ({"status": "in_progress"}, {"until_due": 3}, "yellow", "due_soon"),
        ({"status": "in_progress"}, {"until_due": 4}, "green", ""),
        ({"status": "in_progress"}, {"last": "at_risk"}, "yellow", "reported_at_risk"),
        ({"status": "in_progress"}, {"quotas": [_quota(0, 1)]}, "yellow", "behind_quota"),
        ({"status": "in_progress"}, {"quotas": [_quota(1, 1)]}, "green", ""),
        ({"status": "reported_done", "due_date": date(2026, 2, 1)}, {}, "green", ""),
    ],
)
def test_the_colour_rules(engine: Engine, task: Task, change: dict, kwargs: dict, colour: str, reason: str) -> None:
    with Session(engine) as s:
        s.add(task)
        for name, value in change.items():
            setattr(task, name, value)
        task.colour, task.colour_reason = "green", ""
        assessment, changed = _recolour(s, task, **kwargs)
        assert (assessment.colour, assessment.reason) == (colour, reason)
        assert (task.colour, task.colour_reason) == (colour, reason)
        assert changed == ((colour, reason) != ("green", ""))
        events = _events(s)
        if changed:
            assert events == [(EventType.TASK_COLOUR_CHANGED, {"old": "green", "new": colour, "reason": reason})]
        else:
            assert events == []


def test_turning_overdue_is_recorded_once(engine: Engine, task: Task) -> None:
    with Session(engine) as s:
        s.add(task)
        task.status, task.due_date = "in_progress", date(2026, 2, 27)
        assessment, changed = _recolour(s, task, until_due=-1)
        assert (assessment.colour, assessment.reason, assessment.overdue, changed) == ("red", "overdue", True, True)
        assert [t for t, _ in _events(s)] == [EventType.TASK_COLOUR_CHANGED, EventType.TASK_OVERDUE]
        assert _events(s)[1][1] == {"due": "2026-02-27"}
        assert _recolour(s, task, until_due=-1)[1] is False  # no change: no event
        assert len(_events(s)) == 2
