"""A report that settles a blocker closes the requests for help it needed (or asks when unsure), and the
requested department is told through the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from coordbot.core.events import Event, EventType
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, CrossRequest, Department, Task
from coordbot.replies.apply import Applied, apply_report, requests_note, undo_report
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import ReminderOccurrence

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
BLOCKED = "需区财政局配合落实贴息资金，目前受阻"


@pytest.fixture
def calendar() -> WorkCalendar:
    return WorkCalendar(ROOT / "config" / "holidays")


@pytest.fixture
def s(session: Session, minimal_plan: LoadedPlan) -> Iterator[Session]:
    service.import_plan(session=session, loaded=minimal_plan)
    depts = {d.code: d for d in session.exec(select(Department))}
    session.add(Contact(department_id=depts["amr"].id, name="amr联络员", address="1001"))  # type: ignore[arg-type]
    session.add(Contact(department_id=depts["finance"].id, name="finance联络员", address="1003"))  # type: ignore[arg-type]
    session.commit()
    yield session


def _report(s: Session, calendar: WorkCalendar, text: str, *, minutes: int) -> Applied:
    task = s.exec(select(Task).where(Task.code == "2.1")).one()
    contact = s.exec(select(Contact).where(Contact.address == "1001")).one()
    return apply_report(
        session=s, task=task, contact=contact, text=text, now=NOW + timedelta(minutes=minutes), calendar=calendar
    )


def _request(s: Session) -> CrossRequest:
    return s.exec(select(CrossRequest)).one()


def _closing_notices(s: Session) -> list[ReminderOccurrence]:
    finance = s.exec(select(Contact).where(Contact.address == "1003")).one()
    return list(
        s.exec(
            select(ReminderOccurrence).where(
                ReminderOccurrence.contact_id == finance.id, ReminderOccurrence.kind == "notice"
            )
        )
    )


def test_a_settling_report_closes_the_request_and_tells_the_helper(s: Session, calendar: WorkCalendar) -> None:
    _report(s, calendar, BLOCKED, minutes=0)
    assert _request(s).status == "open"
    applied = _report(s, calendar, "贴息资金已落实，恢复正常推进", minutes=60)
    req = _request(s)
    assert (req.status, req.closed_at) == ("closed", NOW + timedelta(minutes=60))
    assert applied.closed_requests == [req] and applied.unsure_requests == []
    [notice] = _closing_notices(s)
    assert "任务2.1" in notice.body and "已办结" in notice.body and "贴息资金已落实" in notice.body
    [event] = s.exec(select(Event).where(Event.type == EventType.CROSSREQUEST_CLOSED)).all()
    assert event.payload["request"] == req.id and event.payload["report"] == applied.report.id
    finance = s.exec(select(Department).where(Department.code == "finance")).one()
    assert event.department_id == finance.id
    assert "已办结" in requests_note(s, applied, "zh") and "区财政局" in requests_note(s, applied, "zh")


def test_back_on_track_without_saying_so_asks_and_the_answer_closes(s: Session, calendar: WorkCalendar) -> None:
    _report(s, calendar, BLOCKED, minutes=0)
    applied = _report(s, calendar, "本周开展专项行动1项，正常推进", minutes=60)
    assert _request(s).status == "open" and applied.unsure_requests == [_request(s)]
    assert "2.1 已解决" in requests_note(s, applied, "zh")  # the question says how to answer
    assert _closing_notices(s) == []
    _report(s, calendar, "2.1 已解决", minutes=120)
    assert _request(s).status == "closed" and len(_closing_notices(s)) == 1


def test_still_waiting_keeps_the_request_open(s: Session, calendar: WorkCalendar) -> None:
    _report(s, calendar, BLOCKED, minutes=0)
    applied = _report(s, calendar, "贴息资金尚未落实，仍受阻", minutes=60)
    assert _request(s).status == "open" and applied.closed_requests == []
    assert requests_note(s, applied, "zh") == ""
    assert _closing_notices(s) == []


def test_undo_of_the_settling_report_reopens_the_request(s: Session, calendar: WorkCalendar) -> None:
    _report(s, calendar, BLOCKED, minutes=0)
    applied = _report(s, calendar, "贴息资金已落实，恢复正常推进", minutes=60)
    undo_report(session=s, report=applied.report, now=NOW + timedelta(minutes=90), actor="contact")
    req = _request(s)
    assert (req.status, req.closed_at) == ("open", None)
    closed = s.exec(select(Event).where(col(Event.type) == EventType.CROSSREQUEST_CLOSED)).all()
    assert len(closed) == 1  # the closing stays in the log; the undo is its own event
