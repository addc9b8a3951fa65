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
from coordbot.plan.models import Contact, Department, Observation, Target
from coordbot.replies.conversation import Conversation
from coordbot.scheduling.calendar import WorkCalendar

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
            message_ref=f"1001:{uid}",
            **kw,
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
