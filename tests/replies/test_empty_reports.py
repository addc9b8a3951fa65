"""A reply with nothing to record (``2.1``, ``2.1 👍🎉✅``, ``2.1 ？``, ``2.1 <b></b>``) changes nothing and asks back
with the reminder's buttons; and a reply longer than the parser reads is told what was read (issue 13)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.base import Inbound, Reply
from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.loader import load_plan_file
from coordbot.plan.models import Contact, Department, Observation, ProgressReport, Task, TaskStatus
from coordbot.replies.conversation import Conversation
from coordbot.replies.models import InboundMessage
from coordbot.replies.parser import MAX_CHARS
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import ReminderKind, ReminderOccurrence

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
EMPTY = ["2.1", "2.1 👍🎉✅", "2.1 ？", "2.1 <b></b>", "任务2.1：", "【2.1】 ？？"]
STATUS_ACTIONS = ["done", "on_track", "at_risk", "blocked", "report"]


@pytest.fixture
def conv(engine: Engine, minimal_plan_path: Path) -> Conversation:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=load_plan_file(minimal_plan_path))
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add(Contact(department_id=amr.id, name="联络员", address="1001"))  # amr leads 2.1
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        task.escalation_level = 2  # silent so far: the ladder reached the office
    return Conversation(engine=engine, calendar=WorkCalendar(ROOT / "config" / "holidays"), clock=FakeClock(NOW))


def _say(conv: Conversation, uid: str, text: str = "", **kw: Any) -> Reply | None:
    return conv.handle(
        Inbound(
            channel="telegram",
            external_id=uid,
            chat_id="1001",
            sender_id="1001",
            text=text,
            **{"message_ref": f"1001:{uid}", **kw},
        )
    )


def _task(engine: Engine, code: str = "2.1") -> dict[str, Any]:
    with Session(engine) as s:
        return s.exec(select(Task).where(Task.code == code)).one().model_dump()


def _buttons(reply: Reply) -> list[tuple[str, str]]:
    return [(b.action, b.ref) for row in reply.buttons for b in row]


@pytest.mark.parametrize("text", EMPTY)
def test_a_reply_without_information_changes_nothing_and_asks_with_buttons(
    conv: Conversation, engine: Engine, text: str
) -> None:
    before = _task(engine)
    assert before["status"] == TaskStatus.ASSIGNED and before["last_report_at"] is None
    reply = _say(conv, "u1", text)
    assert reply is not None
    assert "已记录" not in reply.text
    assert "任务2.1" in reply.text and "没有可记录的进展" in reply.text
    task_id = before["id"]
    assert _buttons(reply) == [(a, f"t{task_id}") for a in STATUS_ACTIONS]  # the reminders' buttons
    after = _task(engine)
    assert after == before  # no task field: status, progress, colour, escalation level, last_report_at
    assert after["escalation_level"] == 2
    with Session(engine) as s:
        assert s.exec(select(ProgressReport)).all() == []
        assert s.exec(select(Observation)).all() == []
        [inbound] = s.exec(select(InboundMessage)).all()  # stored, for de-duplication
        assert inbound.external_id == "u1"
    assert _say(conv, "u1", text) is None  # a redelivery is still recognised


def test_the_buttons_of_the_question_record_what_the_contact_chooses(conv: Conversation, engine: Engine) -> None:
    question = _say(conv, "u1", "2.1 👍")
    assert question is not None
    refs = dict(_buttons(question))
    ask = _say(conv, "u2", kind="callback", callback_action="report", callback_ref=refs["report"])
    assert ask is not None and ask.ask_reply and "任务2.1" in ask.text
    assert _task(engine)["escalation_level"] == 2  # asking for the text changes nothing either

    answer = _say(conv, "u3", kind="callback", callback_action="on_track", callback_ref=refs["on_track"])
    assert answer is not None and "已记录：任务2.1，正常推进" in answer.text
    task = _task(engine)
    assert (task["status"], task["escalation_level"]) == (TaskStatus.IN_PROGRESS, 0)
    assert task["last_report_at"] is not None


def test_an_empty_answer_to_a_reminder_asks_with_that_reminders_buttons(conv: Conversation, engine: Engine) -> None:
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        contact = s.exec(select(Contact).where(Contact.address == "1001")).one()
        occ = ReminderOccurrence(
            task_id=task.id,
            contact_id=contact.id,
            kind=ReminderKind.PERIODIC,
            fire_at=NOW - timedelta(hours=1),
            status="sent",
            message_ref="1001:77",
        )
        s.add(occ)
        s.flush()
        occ_id = occ.id
    before = _task(engine)
    reply = _say(conv, "u1", "👍🎉✅", reply_to_ref="1001:77")
    assert reply is not None and "没有可记录的进展" in reply.text
    assert _buttons(reply) == [(a, f"o{occ_id}") for a in STATUS_ACTIONS]
    assert _task(engine) == before
    done = _say(conv, "u2", kind="callback", callback_action="done", callback_ref=f"o{occ_id}")
    assert done is not None and "已记录：任务2.1，已完成" in done.text
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        assert report.reminder_id == occ_id


def test_a_task_button_from_someone_who_may_not_report_on_it_is_refused(conv: Conversation, engine: Engine) -> None:
    with session_scope(engine) as s:
        sci = s.exec(select(Department).where(Department.code == "sci")).one()
        s.add(Contact(department_id=sci.id, name="科委联络员", address="1002"))
    task_id = _task(engine)["id"]
    other = conv.handle(
        Inbound(
            channel="telegram",
            external_id="x1",
            chat_id="1002",
            sender_id="1002",
            kind="callback",
            callback_action="done",
            callback_ref=f"t{task_id}",
        )
    )
    assert other is not None and "已记录" not in other.text
    assert _task(engine)["status"] == TaskStatus.ASSIGNED


def test_a_slash_report_without_information_asks_too(conv: Conversation, engine: Engine) -> None:
    before = _task(engine)
    reply = _say(conv, "u1", "/report 2.1 ？", kind="command", command="report", args="2.1 ？")
    assert reply is not None and "没有可记录的进展" in reply.text
    assert _task(engine) == before


def test_a_reply_longer_than_what_is_read_says_so(conv: Conversation, engine: Engine) -> None:
    text = "2.1 本周开展双随机检查2项。" + "另附检查情况说明。" * 1200  # over 10,000 characters
    assert len(text) > 10_000
    reply = _say(conv, "u1", text)
    assert reply is not None and "已记录：任务2.1" in reply.text
    assert f"消息共{len(text) - 4}字" in reply.text and f"只分析了前{MAX_CHARS}字" in reply.text
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        assert report.text == text[4:]  # stored whole (without the task code)
        [inbound] = s.exec(select(InboundMessage)).all()
        assert inbound.text == text
    short = _say(conv, "u2", "2.1 本周开展双随机检查1项")
    assert short is not None and "只分析了" not in short.text
