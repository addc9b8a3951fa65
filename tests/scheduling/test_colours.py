"""Silence changes the colour (docs/colours.md): unreported past the reply window → yellow, escalated → red,
a report restores it; and the 督办 ladder counts reminders per contact and day, folding a leader's lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType
from coordbot.plan.models import Contact, Observation, Target, Task
from coordbot.plan.progress import REPLY_WINDOW_WORKDAYS, assess
from coordbot.replies.apply import apply_report
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.escalation import review_tasks
from coordbot.scheduling.models import ReminderOccurrence

from .conftest import at

TODAY = date(2026, 3, 5)


def _task(**fields: object) -> Task:
    t = Task(plan_id=1, group_id=1, code="2.1", title="专项行动", lead_department_id=1, status="in_progress")
    for k, v in fields.items():
        setattr(t, k, v)
    return t


@pytest.mark.parametrize(
    ("fields", "unanswered", "colour", "reason"),
    [
        ({}, None, "green", ""),  # every reminder answered
        ({}, REPLY_WINDOW_WORKDAYS, "green", ""),  # still inside the reply window
        ({}, REPLY_WINDOW_WORKDAYS + 1, "yellow", "unreported"),  # past it
        ({"escalation_level": 1}, REPLY_WINDOW_WORKDAYS + 1, "red", "escalated"),  # to the leader
        ({"escalation_level": 2}, None, "red", "escalated"),  # to the office
        ({"due_date": date(2026, 3, 4)}, None, "red", "overdue"),
        ({"due_date": date(2026, 3, 4), "escalation_level": 1}, None, "red", "overdue"),  # overdue says more
        ({"status": "reported_done", "escalation_level": 1}, 9, "green", ""),  # done: nothing to chase
        ({"escalation_level": 0}, None, "green", ""),  # a report reset the ladder and answered the reminders
    ],
)
def test_silence_and_escalation_colour_a_task(fields: dict, unanswered: int | None, colour: str, reason: str) -> None:
    a = assess(_task(**fields), (), today=TODAY, workdays_until_due=None, workdays_unanswered=unanswered)
    assert (a.colour, a.reason) == (colour, reason)


def _remind(engine: Engine, contact_id: int, code: str, *times: datetime, kind: str = "periodic") -> None:
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == code)).one()
        for t in times:
            s.add(
                ReminderOccurrence(
                    plan_id=task.plan_id,
                    task_id=task.id,
                    contact_id=contact_id,
                    kind=kind,
                    fire_at=t,
                    status="sent",
                    sent_at=t,
                    created_at=t,
                )
            )


def _on_trajectory(engine: Engine, code: str) -> None:
    """The task's quotas reached (a total reported before): its colour speaks of silence only."""
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == code)).one()
        for tg in s.exec(select(Target).where(Target.task_id == task.id)):
            s.add(Observation(target_id=tg.id, value=tg.value or 0, mode="total", observed_on=date(2026, 3, 1)))


def _state(engine: Engine, code: str) -> tuple[str, str, int]:
    with Session(engine) as s:
        t = s.exec(select(Task).where(Task.code == code)).one()
        return t.colour, t.colour_reason, t.escalation_level


def _review(engine: Engine, calendar: WorkCalendar, now: datetime) -> None:
    with session_scope(engine) as s:
        review_tasks(session=s, calendar=calendar, now=now)


def _escalation_bodies(engine: Engine, contact_id: int) -> list[str]:
    with Session(engine) as s:
        rows = s.exec(
            select(ReminderOccurrence).where(
                ReminderOccurrence.contact_id == contact_id, ReminderOccurrence.kind == "escalation"
            )
        ).all()
        return [r.body for r in rows]


def test_silence_turns_yellow_then_red_and_a_report_restores(
    engine: Engine, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    contact = bind("amr", address="c-amr")
    leader = bind("amr", role="leader", address="l-amr")
    _on_trajectory(engine, "2.1")
    _remind(engine, contact, "2.1", at(2026, 3, 2, 9, 30))  # Monday
    _review(engine, calendar, at(2026, 3, 4, 17))  # Wednesday: two working days on, inside the window
    assert _state(engine, "2.1") == ("green", "", 0)
    _review(engine, calendar, at(2026, 3, 5, 10))  # Thursday: past it
    assert _state(engine, "2.1") == ("yellow", "unreported", 0)
    _remind(engine, contact, "2.1", at(2026, 3, 9, 9, 30))  # the second silent week: to the leader
    _review(engine, calendar, at(2026, 3, 9, 10))
    assert _state(engine, "2.1") == ("red", "escalated", 1)
    with Session(engine) as s:
        changes = s.exec(
            select(Event).where(Event.type == EventType.TASK_COLOUR_CHANGED).order_by(col(Event.id))
        ).all()
        task_id = s.exec(select(Task.id).where(Task.code == "2.1")).one()
        # one change per review: green → yellow (silence), yellow → red (escalated in the same review)
        assert [(e.payload["new"], e.payload["reason"]) for e in changes if e.task_id == task_id] == [
            ("yellow", "unreported"),
            ("red", "escalated"),
        ]
    assert any("任务2.1" in b and "已连续2次提醒未报送进展" in b for b in _escalation_bodies(engine, leader))

    with session_scope(engine) as s:  # the contact reports: the ladder resets and the colour comes back
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        apply_report(
            session=s,
            task=task,
            contact=s.get(Contact, contact),
            text="本周开展专项行动1项，正常推进",
            now=at(2026, 3, 9, 11),
            calendar=calendar,
        )
    assert _state(engine, "2.1") == ("green", "", 0)
    _review(engine, calendar, at(2026, 3, 12, 10))  # the answered reminders no longer count
    assert _state(engine, "2.1") == ("green", "", 0)


def test_reminders_sent_together_count_once(engine: Engine, bind: Callable[..., int], calendar: WorkCalendar) -> None:
    contact = bind("amr", address="c-amr")
    other = bind("amr", address="c-amr-2")  # a department's second contact, reminded at the same minute
    leader = bind("amr", role="leader", address="l-amr")
    monday = at(2026, 3, 2, 9, 30)
    _remind(engine, contact, "2.1", monday)
    _remind(engine, contact, "2.1", monday, kind="checkpoint")  # folded into the same morning's message
    _remind(engine, other, "2.1", monday)
    _review(engine, calendar, at(2026, 3, 2, 10))
    assert _state(engine, "2.1")[2] == 0  # one reminder, not three: nothing to escalate yet
    assert not any("任务2.1" in b for b in _escalation_bodies(engine, leader))
    _remind(engine, contact, "2.1", at(2026, 3, 9, 9, 30))
    _review(engine, calendar, at(2026, 3, 9, 10))
    assert _state(engine, "2.1")[2] == 1
    with Session(engine) as s:
        [escalated] = [
            e
            for e in s.exec(select(Event).where(Event.type == EventType.TASK_ESCALATED))
            if e.payload["reason"] == "unanswered"
        ]
        assert escalated.payload["unanswered"] == 2


def test_a_leader_gets_one_message_with_one_line_per_department_and_reason(
    engine: Engine, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    contact = bind("amr", address="c-amr")
    leader = bind("amr", role="leader", address="l-amr")
    for code in ("2.1", "2.2"):
        _remind(engine, contact, code, at(2026, 3, 2, 9, 30), at(2026, 3, 9, 9, 30))
    _review(engine, calendar, at(2026, 3, 9, 10))
    [body] = _escalation_bodies(engine, leader)
    lines = [line for line in body.splitlines() if line.startswith("·")]
    silent = [line for line in lines if "已连续2次提醒未报送进展" in line]
    assert len(silent) == 1 and "共2项" in silent[0] and "任务2.1" in silent[0] and "任务2.2" in silent[0]
    assert any("任务1.1" in line and "已逾期" in line for line in lines)  # 1.1 is overdue: its own line
    assert body.startswith("【督办】3项任务需要关注")


def test_one_morning_to_a_whole_department_is_one_reminder(
    engine: Engine, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    """Issue 17, item 9: a morning's dispatch to 150 chats of one department said "已连续150次". Counted per contact
    and reminder moment: the 150 sends of 09:30-09:35 are one reminder, the next Monday's the second."""
    contacts = [bind("amr", address=f"c-amr-{i}") for i in range(150)]
    leader = bind("amr", role="leader", address="l-amr")
    for i, contact in enumerate(contacts):  # at Telegram's 30/s and more: spread over the morning's minutes
        _remind(engine, contact, "2.1", at(2026, 3, 2, 9, 30 + i // 30))
    _review(engine, calendar, at(2026, 3, 2, 10))
    assert _state(engine, "2.1")[2] == 0
    for contact in contacts:
        _remind(engine, contact, "2.1", at(2026, 3, 9, 9, 30))
    _review(engine, calendar, at(2026, 3, 9, 10))
    assert _state(engine, "2.1")[2] == 1
    bodies = [b for b in _escalation_bodies(engine, leader) if "任务2.1" in b]
    assert bodies and all("已连续2次提醒未报送进展" in b for b in bodies), bodies
