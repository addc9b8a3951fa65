"""Rate and growth targets reported in chat (issue 15): the parser reads 增长4.2% as growth, not completion, so the
conversation takes it as the value of the task's growth target; a completion percent is not that value; a
percent that may be either is asked about, with a button per rate target and one for progress."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.base import Button, Inbound
from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType
from coordbot.plan import service
from coordbot.plan.loader import parse_plan_text
from coordbot.plan.models import Contact, Department, Observation, ProgressReport, Target, Task
from coordbot.replies.apply import SNAPSHOT_FIELDS
from coordbot.replies.conversation import Conversation
from coordbot.scheduling.calendar import WorkCalendar

ROOT = Path(__file__).resolve().parents[2]
RATES = ROOT / "tests" / "data" / "plans" / "rates.yaml"
FINANCE, AMR = "2001", "2002"  # chat ids of the two departments' contacts


def _conversation(engine: Engine, when: datetime | None = None) -> Conversation:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=parse_plan_text(RATES.read_text(encoding="utf-8"), "rates.yaml"))
        for code, address in (("finance", FINANCE), ("amr", AMR)):
            dept = s.exec(select(Department).where(Department.code == code)).one()
            s.add(Contact(department_id=dept.id, name=f"{code}联络员", address=address))
    clock = FakeClock(when or datetime(2026, 10, 20, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    return Conversation(engine=engine, calendar=WorkCalendar(ROOT / "config" / "holidays"), clock=clock)


def _say(conv: Conversation, who: str, uid: str, text: str = "", **kw: Any) -> Any:
    return conv.handle(
        Inbound(
            channel="telegram",
            external_id=uid,
            chat_id=who,
            sender_id=who,
            text=text,
            **{"message_ref": f"{who}:{uid}", **kw},
        )
    )


def _press(conv: Conversation, who: str, uid: str, button: Button) -> Any:
    return _say(conv, who, uid, kind="callback", callback_action=button.action, callback_ref=button.ref)


def _buttons(reply: Any, action: str) -> list[Button]:
    return [b for row in reply.buttons for b in row if b.action == action]


def _observations(engine: Engine) -> list[tuple[str, str, float, str]]:
    """(metric, unit, value, mode) of every live observation."""
    with Session(engine) as s:
        rows = s.exec(
            select(Target.metric, Target.unit, Observation.value, Observation.mode)
            .join(Target, col(Target.id) == Observation.target_id)
            .where(~col(Observation.voided))
            .order_by(col(Observation.id))
        ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _task(engine: Engine, code: str) -> Task:
    with Session(engine) as s:
        return s.exec(select(Task).where(Task.code == code)).one()


def test_a_growth_rate_is_recorded_as_the_growth_targets_value(engine: Engine) -> None:
    conv = _conversation(engine)
    reply = _say(conv, FINANCE, "u1", "1.1 今年前三季度增长4.2%")
    assert _observations(engine) == [("revenue_growth", "%", 4.2, "total")]
    # the confirmation: the value against the target with its tolerance, judged at the year's end
    assert "已记录：任务1.1，区级一般公共预算收入增长4.2%（目标增长6.5%左右±0.5%，期末考核）" in reply.text
    assert "累计4.2" not in reply.text and "序时" not in reply.text
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        assert report.percent is None  # not completion
        [event] = s.exec(select(Event).where(Event.type == EventType.OBSERVATION_RECORDED)).all()
        assert (event.payload["value"], event.payload["unit"]) == (4.2, "%")
    assert _task(engine, "1.1").progress == 0


def test_a_fall_is_a_negative_growth(engine: Engine) -> None:
    conv = _conversation(engine)
    _say(conv, FINANCE, "u1", "1.1 受减税影响，前三季度同比下降1.2%")
    assert _observations(engine) == [("revenue_growth", "%", -1.2, "total")]


def test_a_completion_percent_on_a_growth_task_is_not_taken_as_the_rate(engine: Engine) -> None:
    conv = _conversation(engine)
    reply = _say(conv, FINANCE, "u1", "1.1 已完成年度目标的80%")
    assert _observations(engine) == []  # 80 is not the growth
    assert "进度80%" in reply.text and not _buttons(reply, "setrate")
    assert _task(engine, "1.1").progress == 80
    # both in one reply: each where it belongs
    _say(conv, FINANCE, "u2", "1.1 前三季度增长4.2%，完成全年目标的65%")
    assert _observations(engine) == [("revenue_growth", "%", 4.2, "total")]
    assert _task(engine, "1.1").progress == 65


def test_a_rate_named_in_the_reply_and_a_count_on_a_two_target_task(engine: Engine) -> None:
    conv = _conversation(engine)
    reply = _say(conv, AMR, "u1", "1.2 消费者满意度达到96%，本周开展专项检查3次")
    assert _observations(engine) == [("satisfaction", "%", 96.0, "total"), ("inspections", "次", 3.0, "increment")]
    assert "消费者满意度96%（目标95%，期末考核）" in reply.text and "消费维权专项检查+3（今年3/10）" in reply.text
    assert not _buttons(reply, "setrate")


def test_an_unclear_percent_on_a_count_and_rate_task_is_asked_about(engine: Engine) -> None:
    conv = _conversation(engine)
    before = _task(engine, "1.2")
    reply = _say(conv, AMR, "u1", "1.2 目前达到96%")
    assert "“96%”是消费者满意度的数值，还是任务的完成进度？" in reply.text
    rate, progress = _buttons(reply, "setrate")
    assert (rate.label, progress.label) == ("消费者满意度", "按完成进度记录")
    assert reply.buttons[-1][0].action == "undo"
    assert _observations(engine) == [] and _task(engine, "1.2").progress == 0  # nothing guessed

    answer = _press(conv, AMR, "u2", rate)
    assert "消费者满意度96%（目标95%，期末考核）" in answer.text and not _buttons(answer, "setrate")
    assert _observations(engine) == [("satisfaction", "%", 96.0, "total")]
    assert _task(engine, "1.2").progress == 0
    assert "已失效" in _press(conv, AMR, "u3", progress).text  # answered already

    assert "已撤销" in _press(conv, AMR, "u4", _buttons(answer, "undo")[0]).text
    after = _task(engine, "1.2")
    assert all(getattr(after, f) == getattr(before, f) for f in SNAPSHOT_FIELDS) and _observations(engine) == []


def test_the_progress_answer_records_the_percent_as_completion(engine: Engine) -> None:
    conv = _conversation(engine)
    reply = _say(conv, AMR, "u1", "1.2 目前达到96%")
    answer = _press(conv, AMR, "u2", _buttons(reply, "setrate")[1])
    assert "进度96%" in answer.text
    assert _observations(engine) == [] and _task(engine, "1.2").progress == 96


def test_at_the_periods_end_the_confirmation_says_whether_the_target_is_reached(engine: Engine) -> None:
    conv = _conversation(engine, datetime(2026, 12, 31, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    assert (
        "区级一般公共预算收入增长6.1%（目标增长6.5%左右±0.5%，已达到）"
        in _say(conv, FINANCE, "u1", "1.1 全年增长6.1%").text
    )
    assert "（目标增长6.5%左右±0.5%，未达到）" in _say(conv, FINANCE, "u2", "1.1 更正：全年增长5.8%").text
