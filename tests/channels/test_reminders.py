"""The reminder round trip: the engine sends through Telegram, the contact answers by reply or button."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.plan.models import Observation, ProgressReport, Task
from coordbot.runtime import Runtime
from coordbot.scheduling.engine import ReminderEngine
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_telegram import FakeBotAPI

from .conftest import WANG, BoundFactory, Person, at, button_data, buttons, is_force_reply, task_row

STATUS_LABELS = ["✅ 已完成", "🟢 正常推进", "🟡 有风险", "🔴 受阻", "✍️ 填报进展"]


def _state(task: Task) -> tuple[Any, ...]:
    return (task.status, task.progress, task.colour, task.colour_reason, task.last_report_at, task.escalation_level)


async def _weekly_reminders(runtime: Runtime, clock: FakeClock, wang: Person) -> dict[str, dict[str, Any]]:
    """Monday 09:31: the weekly requests for amr's 2.1 and 2.2 are due; tick; {task code: message}."""
    engine: ReminderEngine = runtime.build_reminders()
    engine.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    before = len(wang.messages())
    report = await engine.tick()
    assert (report.sent, report.failed, report.released) == (2, 0, 0)
    new = wang.messages()[before:]
    assert len(new) == 2
    return {m["text"].split()[0].removeprefix("任务"): m for m in new}


async def test_reminder_arrives_with_five_status_buttons(
    frontend: TelegramFrontend, bound: BoundFactory, runtime: Runtime, clock: FakeClock, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    reminders = await _weekly_reminders(runtime, clock, wang)
    msg = reminders["2.1"]
    assert msg["text"].startswith("任务2.1 加大行政保护力度\n请报送本周进展")
    assert msg["entities"][0]["type"] == "bold"
    assert "专项行动和双随机检查：今年 0/10 项" in msg["text"]
    assert [label for label, _ in buttons(msg)] == STATUS_LABELS
    with Session(engine) as s:
        occ = s.exec(
            select(ReminderOccurrence).where(ReminderOccurrence.message_ref == f"{WANG}:{msg['message_id']}")
        ).one()
    assert occ.status == "sent" and occ.task_id == task_row(engine, "2.1").id
    assert {d for _, d in buttons(msg)} == {
        f"{a}:o{occ.id}" for a in ("done", "on_track", "at_risk", "blocked", "report")
    }


async def test_plain_reply_to_the_reminder_is_a_report_on_its_task(
    frontend: TelegramFrontend, bound: BoundFactory, runtime: Runtime, clock: FakeClock, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    reminders = await _weekly_reminders(runtime, clock, wang)
    answer = await wang.say("本周开展双随机检查2项，专项行动筹备中", reply_to=reminders["2.1"]["message_id"])
    assert "已记录：任务2.1" in answer["text"] and "今年2/10" in answer["text"]
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        [obs] = s.exec(select(Observation)).all()
        occ = s.get(ReminderOccurrence, report.reminder_id)
    assert report.task_id == task_row(engine, "2.1").id and report.source == "chat"
    assert occ is not None and occ.message_ref == f"{WANG}:{reminders['2.1']['message_id']}"
    assert (obs.value, obs.mode, obs.voided) == (2.0, "increment", False)
    assert task_row(engine, "2.1").colour == "green"


async def test_blocked_button_turns_the_task_red(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    runtime: Runtime,
    clock: FakeClock,
    engine: Engine,
    server: FakeBotAPI,
) -> None:
    wang = await bound(WANG, "amr")
    reminders = await _weekly_reminders(runtime, clock, wang)
    [answer] = await wang.press(reminders["2.2"], button_data(reminders["2.2"], "blocked"))
    assert "已记录：任务2.2，受阻" in answer["text"]
    task = task_row(engine, "2.2")
    assert (task.status, task.colour) == ("blocked", "red")
    assert server.callback_answers[-1]["user_id"] == WANG  # the button's spinner was stopped


async def test_report_button_prompts_for_a_reply_and_the_reply_attaches_to_the_task(
    frontend: TelegramFrontend, bound: BoundFactory, runtime: Runtime, clock: FakeClock, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    reminders = await _weekly_reminders(runtime, clock, wang)
    [prompt] = await wang.press(reminders["2.2"], button_data(reminders["2.2"], "report"))
    assert is_force_reply(prompt)
    assert "任务2.2" in prompt["text"]
    answer = await wang.say("今年新增试点示范单位5家", reply_to=prompt["message_id"])
    assert "已记录：任务2.2" in answer["text"] and "（累计5/100）" in answer["text"]
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
    assert report.task_id == task_row(engine, "2.2").id


async def test_undo_restores_the_task_exactly(
    frontend: TelegramFrontend, bound: BoundFactory, runtime: Runtime, clock: FakeClock, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    reminders = await _weekly_reminders(runtime, clock, wang)
    before = _state(task_row(engine, "2.1"))
    answer = await wang.say("本周开展双随机检查2项，已全部完成，进度100%", reply_to=reminders["2.1"]["message_id"])
    assert _state(task_row(engine, "2.1")) != before
    [undone] = await wang.press(answer, button_data(answer, "undo"))
    assert "已撤销任务2.1" in undone["text"]
    assert _state(task_row(engine, "2.1")) == before
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        assert report.voided
        assert [o.voided for o in s.exec(select(Observation))] == [True]
    again = await wang.press(answer, button_data(answer, "undo"))
    assert "该操作已失效" in again[0]["text"]
    # The quota is back to 0/10: the next report counts from there.
    answer = await wang.say("本周开展双随机检查3项", reply_to=reminders["2.1"]["message_id"])
    assert "今年3/10" in answer["text"]
