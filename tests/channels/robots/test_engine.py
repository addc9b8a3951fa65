"""Through the real ReminderEngine: a department's group contact (role group, channel wecom_robot, address =
the robot's name) receives a queued notice by the engine's tick, over HTTP to the fake WeCom webhook."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department, Role
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import ReminderEngine
from coordbot.scheduling.models import OccurrenceStatus, ReminderKind, ReminderOccurrence
from coordbot.scheduling.outbox import add_occurrence
from coordbot.testing.fake_robots import FakeRobots

from .conftest import Opener

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOLIDAYS = Path(__file__).resolve().parents[3] / "config" / "holidays"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)  # a Monday


async def test_a_group_contact_gets_a_notice_through_its_robot(
    engine: Engine, minimal_plan: LoadedPlan, fake: FakeRobots, sender: Opener
) -> None:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        group = Contact(
            department_id=amr.id, name="市场监管局工作群", role=Role.GROUP, channel="wecom_robot", address="amr-group"
        )  # type: ignore[arg-type]
        s.add(group)
        s.flush()
        add_occurrence(
            session=s,
            contact_id=group.id,  # type: ignore[arg-type]
            kind=ReminderKind.NOTICE,
            fire_at=NOW,
            body="联席会议定于周三下午召开，请各部门准备本月进展。",
        )
    async with sender("wecom_robot") as channel:
        reminders = ReminderEngine(
            engine=engine, channels={"wecom_robot": channel}, calendar=WorkCalendar(HOLIDAYS), clock=FakeClock(NOW)
        )
        report = await reminders.tick()
    assert (report.sent, report.failed, report.errors) == (1, 0, [])
    [msg] = fake.sent_to("amr-group")
    assert msg["msgtype"] == "markdown" and "联席会议定于周三下午召开" in msg["text"]
    with Session(engine) as s:
        occ = s.exec(select(ReminderOccurrence)).one()
        assert (occ.status, occ.channel) == (OccurrenceStatus.SENT, "wecom_robot")
        assert occ.message_ref.startswith("amr-group:")
