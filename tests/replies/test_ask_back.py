"""Asking back instead of guessing (issue 12): a share of the plan with nothing said done, and a bare count in a
to-date report. Nothing uncertain is recorded before the answer; each button records what the reply would have
recorded had it said so; undo restores the task exactly."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.base import Button, Inbound, encode_button
from coordbot.channels.telegram import MAX_CALLBACK_BYTES, callback_data
from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType
from coordbot.plan import service
from coordbot.plan.loader import parse_plan_text
from coordbot.plan.models import Contact, Department, Observation, ProgressReport, Task
from coordbot.replies.apply import SNAPSHOT_FIELDS
from coordbot.replies.conversation import Conversation
from coordbot.scheduling.calendar import WorkCalendar

ROOT = Path(__file__).resolve().parents[2]
SHARE = "2.1 专项行动占年度计划的18.6%"
TO_DATE = "2.1 截至2月底，各街镇情况如下。开展双随机检查3项"


def _conversation(engine: Engine, minimal_plan_path: Path) -> Conversation:
    with session_scope(engine) as s:
        loaded = parse_plan_text(minimal_plan_path.read_text(encoding="utf-8"), "minimal.yaml")
        service.import_plan(session=s, loaded=loaded)
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add(Contact(department_id=amr.id, name="联络员", address="1001"))
    clock = FakeClock(datetime(2026, 3, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    return Conversation(engine=engine, calendar=WorkCalendar(ROOT / "config" / "holidays"), clock=clock)


def _say(conv: Conversation, uid: str, text: str = "", **kw: Any) -> Any:
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


def _press(conv: Conversation, uid: str, button: Button) -> Any:
    return _say(conv, uid, kind="callback", callback_action=button.action, callback_ref=button.ref)


def _buttons(reply: Any, action: str) -> list[Button]:
    return [b for row in reply.buttons for b in row if b.action == action]


def _task_state(engine: Engine) -> dict[str, Any]:
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        return {name: getattr(task, name) for name in SNAPSHOT_FIELDS}


def _report(engine: Engine) -> ProgressReport:
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        return report


def _live_observations(engine: Engine) -> list[tuple[float, str]]:
    with Session(engine) as s:
        return [(o.value, o.mode) for o in s.exec(select(Observation).where(~col(Observation.voided)))]


def _event_types(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return [e.type for e in s.exec(select(Event).where(col(Event.task_id).is_not(None)).order_by(col(Event.id)))]


def test_a_share_of_the_plan_is_asked_about_and_not_recorded_as_progress(
    engine: Engine, minimal_plan_path: Path
) -> None:
    conv = _conversation(engine, minimal_plan_path)
    reply = _say(conv, "u1", SHARE)
    assert "已记录：任务2.1" in reply.text
    assert "这是完成进度（18.6%）还是占比？" in reply.text  # the percent as written
    assert [b.label for b in _buttons(reply, "setshare")] == ["按完成进度记录", "只是占比，不记进度"]
    assert _buttons(reply, "undo")  # undo stays, on the last row
    assert reply.buttons[-1][0].action == "undo"
    report = _report(engine)
    assert report.percent is None and _task_state(engine)["progress"] == 0  # nothing uncertain recorded


def test_record_as_progress_applies_the_percent_as_if_the_reply_had_said_it(
    engine: Engine, minimal_plan_path: Path
) -> None:
    conv = _conversation(engine, minimal_plan_path)
    before = _task_state(engine)
    reply = _say(conv, "u1", SHARE)
    progress = _buttons(reply, "setshare")[0]
    answer = _press(conv, "u2", progress)
    assert "进度18.6%" in answer.text  # the confirmation follows
    assert "还是占比" not in answer.text and not _buttons(answer, "setshare")  # asked once
    report = _report(engine)
    assert report.percent == Decimal("18.6") and not report.voided
    assert _task_state(engine)["progress"] == 19  # the bar, as for a reply saying 完成年度计划的18.6%
    assert _event_types(engine)[-2:] == [EventType.PROGRESS_REPORTED, EventType.PROGRESS_REVISED]
    assert "已失效" in _press(conv, "u3", _buttons(reply, "setshare")[1]).text  # answered already

    undo = _buttons(answer, "undo")[0]
    assert "已撤销" in _press(conv, "u4", undo).text
    after = _task_state(engine)
    assert after == before  # status, progress, colour, last report, escalation: exactly as before the reply
    assert _report(engine).voided


def test_only_a_share_records_no_progress(engine: Engine, minimal_plan_path: Path) -> None:
    conv = _conversation(engine, minimal_plan_path)
    reply = _say(conv, "u1", SHARE)
    answer = _press(conv, "u2", _buttons(reply, "setshare")[1])
    assert "已记录：任务2.1" in answer.text and "进度" not in answer.text.splitlines()[0]
    assert not _buttons(answer, "setshare")
    assert _report(engine).percent is None and _task_state(engine)["progress"] == 0
    assert _report(engine).parsed["answers"] == {"share_or_progress": "share"}


def test_a_bare_count_in_a_to_date_report_is_asked_about_and_not_counted(
    engine: Engine, minimal_plan_path: Path
) -> None:
    conv = _conversation(engine, minimal_plan_path)
    reply = _say(conv, "u1", TO_DATE)
    assert "3项是累计总数还是本次新增？" in reply.text
    assert [b.label for b in _buttons(reply, "setmode")] == ["累计总数", "本次新增"]
    assert "+3" not in reply.text and "累计3" not in reply.text
    assert _live_observations(engine) == []  # nothing counted before the answer
    assert EventType.OBSERVATION_RECORDED not in _event_types(engine)


def test_each_mode_button_counts_the_number_that_way_and_undo_takes_it_back(
    engine: Engine, minimal_plan_path: Path
) -> None:
    conv = _conversation(engine, minimal_plan_path)
    for answer_index, mode, shown in ((0, "total", "累计3"), (1, "increment", "+3")):
        before = _task_state(engine)
        reply = _say(conv, f"u{answer_index}a", TO_DATE)
        answer = _press(conv, f"u{answer_index}b", _buttons(reply, "setmode")[answer_index])
        assert f"专项行动和双随机检查{shown}" in answer.text
        assert not _buttons(answer, "setmode")
        assert _live_observations(engine) == [(3.0, mode)]
        types = _event_types(engine)
        assert types.count(EventType.OBSERVATION_RECORDED) == answer_index + 1  # one per answer, none before
        assert "已撤销" in _press(conv, f"u{answer_index}c", _buttons(answer, "undo")[0]).text
        assert _live_observations(engine) == []
        assert _task_state(engine) == before


def test_a_status_pressed_before_stays_when_the_count_is_answered(engine: Engine, minimal_plan_path: Path) -> None:
    conv = _conversation(engine, minimal_plan_path)
    reply = _say(conv, "u1", "/done", kind="command", command="done", args=TO_DATE)
    assert "已完成" in reply.text and "是累计总数还是本次新增？" in reply.text
    answer = _press(conv, "u2", _buttons(reply, "setmode")[0])
    assert "已完成" in answer.text and "累计3" in answer.text
    assert _report(engine).status == "done"


def test_answer_buttons_fit_telegram(engine: Engine, minimal_plan_path: Path) -> None:
    conv = _conversation(engine, minimal_plan_path)
    for uid, text, action in (("u1", SHARE, "setshare"), ("u2", TO_DATE, "setmode")):
        buttons = _buttons(_say(conv, uid, text), action)
        assert len(buttons) == 2
        for b in buttons:
            assert callback_data(b) == encode_button(b)
            # the longest answer with a report id of thirteen digits still fits
            big = Button(b.label, b.action, "p" + "9" * 13 + ":" + b.ref.partition(":")[2])
            assert len(encode_button(big).encode()) <= MAX_CALLBACK_BYTES
