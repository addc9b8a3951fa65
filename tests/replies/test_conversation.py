"""The conversation core without a channel: asking back when a number fits more than one target."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.base import Inbound
from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.loader import parse_plan_text
from coordbot.plan.models import Contact, CrossRequest, Department, Observation, ProgressReport, Target, Task
from coordbot.replies.conversation import Conversation
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import ReminderKind, ReminderOccurrence

ROOT = Path(__file__).resolve().parents[2]
SECOND_TARGET = """          - metric: navigation_projects
            name: 专利导航项目
            unit: 项
            value: 5
            period: annual
"""


def _conversation(engine: Engine, minimal_plan_path: Path) -> Conversation:
    text = minimal_plan_path.read_text(encoding="utf-8")
    text = text.replace(
        "            aliases: [专项行动, 双随机检查]\n", "            aliases: [专项行动, 双随机检查]\n" + SECOND_TARGET
    )
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=parse_plan_text(text, "two-targets.yaml"))
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add(Contact(department_id=amr.id, name="联络员", address="1001"))
    clock = FakeClock(datetime(2026, 3, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    return Conversation(engine=engine, calendar=WorkCalendar(ROOT / "config" / "holidays"), clock=clock)


def _say(conv: Conversation, uid: str, text: str = "", **kw):  # type: ignore[no-untyped-def]
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


def test_a_number_that_fits_two_targets_is_asked_about_not_guessed(engine: Engine, minimal_plan_path: Path) -> None:
    conv = _conversation(engine, minimal_plan_path)
    reply = _say(conv, "u1", "2.1 本周完成3项")
    assert "“3项”计入哪个指标？" in reply.text
    choices = [b for row in reply.buttons for b in row if b.action == "setqty"]
    assert [b.label for b in choices] == ["专利导航项目", "专项行动和双随机检查"]
    with Session(engine) as s:
        assert s.exec(select(Observation)).all() == []  # nothing counted before the answer

    answer = _say(conv, "u2", kind="callback", callback_action="setqty", callback_ref=choices[1].ref)
    assert "已计入：专项行动和双随机检查 +3（今年3/10项）" in answer.text
    again = _say(conv, "u3", kind="callback", callback_action="setqty", callback_ref=choices[0].ref)
    assert "该操作已失效" in again.text  # one number, counted once
    with Session(engine) as s:
        [obs] = s.exec(select(Observation)).all()
        target = s.get(Target, obs.target_id)
        assert (target.metric, obs.value, obs.voided) == ("special_actions", 3.0, False)

    undo = next(b for row in reply.buttons for b in row if b.action == "undo")
    assert "已撤销" in _say(conv, "u4", kind="callback", callback_action="undo", callback_ref=undo.ref).text
    with Session(engine) as s:
        assert [o.voided for o in s.exec(select(Observation))] == [True]  # undo takes the chosen count too


def test_a_stranger_cannot_answer_the_question(engine: Engine, minimal_plan_path: Path) -> None:
    conv = _conversation(engine, minimal_plan_path)
    reply = _say(conv, "u1", "2.1 本周完成3项")
    choice = next(b for row in reply.buttons for b in row if b.action == "setqty")
    with session_scope(engine) as s:
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add(Contact(department_id=amr.id, name="另一位", address="2002"))
    other = conv.handle(
        Inbound(
            channel="telegram",
            external_id="x1",
            chat_id="2002",
            sender_id="2002",
            kind="callback",
            callback_action="setqty",
            callback_ref=choice.ref,
        )
    )
    assert "该操作已失效" in other.text
    with Session(engine) as s:
        assert s.exec(select(Observation)).all() == []


def test_undo_after_an_edit_voids_every_count_and_withdraws_the_request(
    engine: Engine, minimal_plan_path: Path
) -> None:
    """What a report added carries its id: an edit replaces it, and undo then takes back what is left."""
    conv = _conversation(engine, minimal_plan_path)
    with session_scope(engine) as s:
        finance = s.exec(select(Department).where(Department.code == "finance")).one()
        s.add(Contact(department_id=finance.id, name="财政局联络员", address="3003"))
    with Session(engine) as s:
        before = s.exec(select(Task).where(Task.code == "2.1")).one()
        state = (before.status, before.progress, before.colour, before.last_report_at)
    first = _say(conv, "u1", "2.1 本周开展双随机检查2项，需要区财政局协调经费")
    assert "已记录：任务2.1" in first.text
    edited = _say(conv, "u2", "2.1 本周开展双随机检查3项，需要区财政局协调经费", kind="edited", message_ref="1001:u1")
    assert edited is not None and "已记录：任务2.1" in edited.text
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        assert "observations" not in report.previous and "requests" not in report.previous
        counts = sorted((o.value, o.voided) for o in s.exec(select(Observation)))
        assert counts == [(2.0, True), (3.0, False)]  # the edit replaced the count in place
        assert [r.status for r in s.exec(select(CrossRequest))] == ["open"]  # asked once, not again
        notices = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.kind == ReminderKind.CROSS_REQUEST))
        assert len(notices.all()) == 1

    undo = next(b for row in edited.buttons for b in row if b.action == "undo")
    assert "已撤销" in _say(conv, "u3", kind="callback", callback_action="undo", callback_ref=undo.ref).text
    with Session(engine) as s:
        assert [o.voided for o in s.exec(select(Observation))] == [True, True]
        assert [r.status for r in s.exec(select(CrossRequest))] == ["withdrawn"]
        after = s.exec(select(Task).where(Task.code == "2.1")).one()
        assert (after.status, after.progress, after.colour, after.last_report_at) == state
