"""The running bot's wiring: rescheduling after changes, and when the weekly digest goes out."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.base import MemoryChannel
from coordbot.core import events
from coordbot.core.clock import FakeClock
from coordbot.core.config import Settings
from coordbot.core.db import session_scope
from coordbot.plan import actions, service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department, Task
from coordbot.runtime import make_runtime
from coordbot.scheduling.models import ReminderOccurrence

TZ = ZoneInfo("Asia/Shanghai")


def _runtime(engine: Engine, db_url: str, now: datetime):
    rt = make_runtime(Settings(database_url=db_url), engine, clock=FakeClock(now))
    rt.channels["telegram"] = MemoryChannel("telegram")
    rt.build_reminders()
    return rt


async def test_an_approved_extension_reschedules_at_the_next_tick(
    engine: Engine, db_url: str, minimal_plan: LoadedPlan
) -> None:
    now = datetime(2026, 3, 2, 8, 0, tzinfo=TZ)
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add(Contact(department_id=amr.id, name="联络员甲", address="1001"))
    rt = _runtime(engine, db_url, now)
    rt.reminders.sync()
    unsubscribe = events.subscribe("extension.approved", rt.note_change)
    try:
        with session_scope(engine) as s:
            task = s.exec(select(Task).where(Task.code == "1.1")).one()
            ext = actions.request_extension(
                session=s, task=task, new_due=date(2026, 3, 20), reason="资金", contact=None
            )
            actions.decide_extension(session=s, extension=ext, approve=True, decided_by="office")
    finally:
        unsubscribe()
    assert rt.changed
    await rt.tick()  # regenerates before claiming: the new deadline's reminders exist at once
    assert not rt.changed
    with Session(engine) as s:
        t11 = s.exec(select(Task).where(Task.code == "1.1")).one()
        kinds = {o.kind for o in s.exec(select(ReminderOccurrence).where(ReminderOccurrence.task_id == t11.id))}
    assert kinds == {"before_due"}


def test_weekly_digest_goes_out_on_the_weeks_last_working_day(engine: Engine, db_url: str, minimal_plan) -> None:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add(Contact(department_id=amr.id, name="办公室", role="office", address="9000"))

    def queued(day: date) -> int:
        rt = _runtime(engine, db_url, datetime(day.year, day.month, day.day, 16, 0, tzinfo=TZ))
        return rt.weekly_digest()

    assert queued(date(2026, 3, 12)) == 0  # Thursday: Friday is a working day
    assert queued(date(2026, 3, 13)) == 1  # Friday
    assert queued(date(2026, 3, 13)) == 0  # once per week
    # National Day 2026: Oct 1-7 off, Thu Oct 8 and Fri Oct 9 working: the digest waits for Friday the 9th.
    assert queued(date(2026, 10, 8)) == 0
    assert queued(date(2026, 10, 9)) == 1
    # The week of Sep 28: Mon-Wed working, Thu Oct 1 - Sun off: Wednesday Sep 30 is the week's last working day.
    assert queued(date(2026, 9, 29)) == 0
    assert queued(date(2026, 9, 30)) == 1
