"""apply_report, revise_report and undo_report on their own: each field they change, and undo restoring it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.core.events import Event, EventType
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, CrossRequest, Department, Observation, ProgressReport, Task
from coordbot.replies.apply import SNAPSHOT_FIELDS, apply_report, revise_report, undo_report
from coordbot.replies.parser import Status
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import ReminderKind, ReminderOccurrence

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def calendar() -> WorkCalendar:
    return WorkCalendar(ROOT / "config" / "holidays")


@pytest.fixture
def s(session: Session, minimal_plan: LoadedPlan) -> Iterator[Session]:
    """The minimal plan with a contact for amr (lead of 1.1, 2.1) and one for finance (co of 1.1)."""
    service.import_plan(session=session, loaded=minimal_plan)
    depts = {d.code: d for d in session.exec(select(Department))}
    session.add(Contact(department_id=depts["amr"].id, name="amr联络员", address="1001"))  # type: ignore[arg-type]
    session.add(Contact(department_id=depts["finance"].id, name="finance联络员", address="1003"))  # type: ignore[arg-type]
    session.commit()
    yield session


def _task(s: Session, code: str) -> Task:
    return s.exec(select(Task).where(Task.code == code)).one()


def _contact(s: Session, address: str) -> Contact:
    return s.exec(select(Contact).where(Contact.address == address)).one()


def _fields(task: Task) -> dict[str, Any]:
    return {name: getattr(task, name) for name in SNAPSHOT_FIELDS}


def _events(s: Session, *types: EventType) -> list[Event]:
    s.flush()
    return list(s.exec(select(Event).where(col(Event.type).in_(types)).order_by(col(Event.id))))


def _apply(s: Session, calendar: WorkCalendar, code: str, text: str, *, address: str = "1001", **kw: Any):  # type: ignore[no-untyped-def]
    return apply_report(
        session=s, task=_task(s, code), contact=_contact(s, address), text=text, now=NOW, calendar=calendar, **kw
    )


def test_a_report_stores_what_it_said_and_moves_the_task(s: Session, calendar: WorkCalendar) -> None:
    task = _task(s, "2.1")
    task.escalation_level = 2
    before = _fields(task)
    applied = _apply(s, calendar, "2.1", "本周开展专项行动3项，总体进度40%", source_ref="1001:7")

    report = applied.report
    assert report.id is not None and report.task_id == task.id
    assert (report.contact_id, report.department_id) == (_contact(s, "1001").id, task.lead_department_id)
    assert (report.received_at, report.text, report.source, report.source_ref) == (
        NOW,
        "本周开展专项行动3项，总体进度40%",
        "chat",
        "1001:7",
    )
    assert report.percent == 40 and report.parsed["percent"] == 40
    assert report.previous == {**before, "last_report_at": None}
    assert (task.status, task.progress, task.last_report_at, task.escalation_level) == ("in_progress", 40, NOW, 0)
    assert task.updated_at == NOW

    [obs] = s.exec(select(Observation)).all()
    assert (obs.value, obs.mode, obs.report_id, obs.observed_on, obs.voided) == (
        3.0,
        "increment",
        report.id,
        NOW.date(),
        False,
    )
    assert [(t.metric, v, m) for t, v, m in applied.quantities] == [("special_actions", 3.0, "increment")]
    assert [(q.metric, q.actual, q.goal) for q in applied.quotas] == [("special_actions", 3.0, 10)]
    assert applied.quota_lines == ["special_actions"]
    [reported] = _events(s, EventType.PROGRESS_REPORTED)
    assert reported.payload["report"] == report.id and reported.payload["quantities"] == [
        ["special_actions", 3.0, "increment"]
    ]
    assert [e.payload["metric"] for e in _events(s, EventType.OBSERVATION_RECORDED)] == ["special_actions"]


def test_a_done_report_from_the_lead_sets_reported_done(s: Session, calendar: WorkCalendar) -> None:
    applied = _apply(s, calendar, "2.1", "", status=Status.DONE, source="button")
    task = applied.task
    assert (applied.report.status, task.status, task.progress, task.colour) == ("done", "reported_done", 100, "green")
    assert [e.task_id for e in _events(s, EventType.TASK_REPORTED_DONE)] == [task.id]


def test_a_blocked_report_turns_the_task_red(s: Session, calendar: WorkCalendar) -> None:
    applied = _apply(s, calendar, "2.1", "", status=Status.BLOCKED)
    assert (applied.task.status, applied.task.colour, applied.task.colour_reason) == ("blocked", "red", "blocked")
    assert len(_events(s, EventType.TASK_BLOCKED)) == 1
    assert len(_events(s, EventType.TASK_COLOUR_CHANGED)) == 1


def test_a_co_departments_report_is_recorded_but_does_not_move_the_task(s: Session, calendar: WorkCalendar) -> None:
    task = _task(s, "1.1")  # lead amr, co finance
    task.escalation_level = 1
    status, progress = task.status, task.progress
    applied = _apply(s, calendar, "1.1", "", status=Status.DONE, address="1003")
    assert applied.report.department_id == _contact(s, "1003").department_id
    assert (task.status, task.progress) == (status, progress)
    assert (task.last_report_at, task.escalation_level) == (NOW, 0)
    assert _events(s, EventType.TASK_REPORTED_DONE) == []


def test_conflicting_status_words_are_asked_about_not_guessed(s: Session, calendar: WorkCalendar) -> None:
    task = _task(s, "2.1")
    applied = _apply(s, calendar, "2.1", "已完成，但受阻")
    assert "conflicting_status" in applied.ambiguities
    assert applied.report.status is None and task.status == "in_progress"


def test_a_request_for_help_queues_a_message_to_the_other_department(s: Session, calendar: WorkCalendar) -> None:
    applied = _apply(s, calendar, "2.1", "需区财政局配合")
    assert [d.code for d in applied.help_departments] == ["finance"]
    [req] = s.exec(select(CrossRequest)).all()
    assert (req.report_id, req.status, req.text) == (applied.report.id, "open", "需区财政局配合")
    [occ] = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.kind == ReminderKind.CROSS_REQUEST)).all()
    assert (occ.contact_id, occ.detail, occ.task_id) == (_contact(s, "1003").id, str(req.id), applied.task.id)
    assert "区市场监管局" in occ.body


def test_undo_restores_the_task_exactly_and_voids_what_the_report_added(s: Session, calendar: WorkCalendar) -> None:
    task = _task(s, "2.1")
    task.status, task.progress, task.colour, task.colour_reason = "in_progress", 20, "yellow", "behind_quota"
    task.escalation_level, task.last_report_at = 1, NOW - timedelta(days=7)
    before = _fields(task)
    applied = _apply(s, calendar, "2.1", "专项行动完成3项，进度60%，需区财政局配合")
    assert _fields(task) != before

    undone = undo_report(session=s, report=applied.report, now=NOW + timedelta(hours=1), actor="contact:1")
    assert undone is task and _fields(task) == before
    assert applied.report.voided
    assert [o.voided for o in s.exec(select(Observation))] == [True]
    [req] = s.exec(select(CrossRequest)).all()
    assert (req.status, req.closed_at) == ("withdrawn", NOW + timedelta(hours=1))
    assert [e.payload["report"] for e in _events(s, EventType.PROGRESS_UNDONE)] == [applied.report.id]
    with pytest.raises(ValueError, match="already undone"):
        undo_report(session=s, report=applied.report, now=NOW, actor="contact:1")


def test_only_the_latest_report_can_be_undone(s: Session, calendar: WorkCalendar) -> None:
    first = _apply(s, calendar, "2.1", "进度30%").report
    _apply(s, calendar, "2.1", "进度50%")
    with pytest.raises(ValueError, match="later report"):
        undo_report(session=s, report=first, now=NOW, actor="contact:1")
    assert not first.voided


def test_a_revision_rewrites_the_report_in_place(s: Session, calendar: WorkCalendar) -> None:
    task = _task(s, "2.1")
    before = _fields(task)
    applied = _apply(s, calendar, "2.1", "专项行动完成3项，进度40%，需区财政局配合")
    report = applied.report
    later = NOW + timedelta(minutes=5)
    revised = revise_report(session=s, report=report, text="专项行动完成5项，进度50%", now=later, calendar=calendar)

    assert revised.report is report and len(s.exec(select(ProgressReport)).all()) == 1
    assert (report.text, report.percent, report.received_at) == ("专项行动完成5项，进度50%", 50, NOW)  # time kept
    assert report.previous == {**before, "last_report_at": None}  # still the task before the first version
    assert (task.progress, task.last_report_at) == (50, later)
    observations = s.exec(select(Observation).order_by(col(Observation.id))).all()
    assert [(o.value, o.voided) for o in observations] == [(3.0, True), (5.0, False)]
    assert [(q.metric, q.actual) for q in revised.quotas] == [("special_actions", 5.0)]
    [req] = s.exec(select(CrossRequest)).all()
    assert req.status == "withdrawn"  # the edit no longer asks for help
    assert len(_events(s, EventType.PROGRESS_REVISED)) == 1

    undo_report(session=s, report=report, now=later, actor="contact:1")
    assert _fields(task) == before


def test_a_revision_that_still_asks_for_help_keeps_the_request(s: Session, calendar: WorkCalendar) -> None:
    report = _apply(s, calendar, "2.1", "需区财政局配合").report
    revise_report(session=s, report=report, text="进度30%，需区财政局配合", now=NOW, calendar=calendar)
    [req] = s.exec(select(CrossRequest)).all()
    assert req.status == "open"
    assert len(s.exec(select(ReminderOccurrence)).all()) == 1  # no second notice


def test_a_revision_by_button_sets_the_status(s: Session, calendar: WorkCalendar) -> None:
    report = _apply(s, calendar, "2.1", "进度30%").report
    applied = revise_report(session=s, report=report, text=report.text, now=NOW, calendar=calendar, status=Status.DONE)
    assert (applied.report.status, applied.task.status, applied.task.progress) == ("done", "reported_done", 100)


def test_a_report_runs_the_same_statements_as_before(engine: Engine, s: Session, calendar: WorkCalendar) -> None:
    """bench/updates.py measures this path: splitting apply_report did not add a statement."""
    _apply(s, calendar, "2.1", "专项行动完成1项")  # warm the identity map as a worker's session would be
    s.commit()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        _apply(s, calendar, "2.1", "专项行动完成3项，进度40%")
        s.flush()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # As measured on the unsplit apply_report (PostgreSQL sends the events as one batched INSERT).
    expected = "SELECT SELECT SELECT SELECT SELECT INSERT INSERT UPDATE SELECT INSERT"
    expected += " INSERT" if engine.dialect.name == "sqlite" else ""
    assert [x for x in statements if x != "BEGIN"] == expected.split()
