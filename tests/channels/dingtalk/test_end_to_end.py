"""The real conversation over DingTalk: a contact binds with "绑定 <code>", gets the reminder engine's
reminder through the DingTalk channel, answers with progress, and the report is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.dingtalk import DingTalkFrontend
from coordbot.core.clock import FakeClock
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, ProgressReport, Task
from coordbot.runtime import Runtime, make_runtime
from coordbot.testing.fake_dingtalk import FakeDingTalk

from ..conftest import at
from .conftest import TIMEOUT, WANG, ServeFrontend, dingtalk_settings


@pytest.fixture
async def world(
    dt: FakeDingTalk,
    serve_frontend: ServeFrontend,
    db_url: str,
    engine: Engine,
    clock: FakeClock,
    loaded_plan: LoadedPlan,
) -> AsyncIterator[tuple[Runtime, DingTalkFrontend]]:
    runtime = make_runtime(dingtalk_settings(dt, database_url=db_url), engine, clock=clock)
    fe = DingTalkFrontend(runtime.settings, runtime.handle)
    runtime.channels["dingtalk"] = fe.channel
    await runtime.conversation_runner().start()
    await serve_frontend(fe)
    try:
        yield runtime, fe
    finally:
        await runtime.close()


async def say(dt: FakeDingTalk, fe: DingTalkFrontend, user: str, text: str) -> list[dict[str, Any]]:
    """The user writes; wait until coordbot handled it; what the robot answered."""
    before = len(dt.sent_to(user))
    await dt.user_sends(user, text)
    await fe.drain()
    return dt.sent_to(user)[before:]


def _task(engine: Engine, code: str) -> Task:
    with Session(engine) as s:
        return s.exec(select(Task).where(Task.code == code)).one()


async def test_bind_remind_report_over_dingtalk(
    world: tuple[Runtime, DingTalkFrontend],
    dt: FakeDingTalk,
    engine: Engine,
    clock: FakeClock,
    invite: Callable[..., str],
) -> None:
    runtime, fe = world
    code = invite("amr", name="王敏")
    [welcome] = await say(dt, fe, WANG, f"绑定 {code}")
    assert "欢迎" in welcome["text"], welcome["text"]
    with Session(engine) as s:
        contact = s.exec(select(Contact).where(Contact.address == WANG)).one()
    assert contact.channel == "dingtalk"

    reminders = runtime.build_reminders()
    reminders.sync()
    clock.set(at(2026, 3, 2, 9, 31))  # Monday: amr's weekly requests for 2.1 and 2.2 are due
    report = await reminders.tick()
    assert (report.sent, report.failed) == (2, 0)
    await dt.wait_for_messages(WANG, 3, timeout=TIMEOUT)
    sent = dt.sent_to(WANG)[1:]
    by_task = {m["param"]["title"].split()[0].removeprefix("任务"): m for m in sent}
    assert set(by_task) == {"2.1", "2.2"}
    assert "请回复数字选择：" in by_task["2.1"]["text"] and "1. ✅ 已完成" in by_task["2.1"]["text"]

    [answer] = await say(dt, fe, WANG, "任务2.1 本周开展双随机检查2项，专项行动筹备中")
    assert "已记录：任务2.1" in answer["text"] and "今年2/10" in answer["text"], answer["text"]
    assert answer["text"].endswith("1. ↩️ 撤销")  # undo offered as a numbered option
    with Session(engine) as s:
        [stored] = s.exec(select(ProgressReport)).all()
    assert stored.task_id == _task(engine, "2.1").id and stored.source == "chat"


async def test_a_numbered_status_reply_to_the_reminder_is_recorded(
    world: tuple[Runtime, DingTalkFrontend],
    dt: FakeDingTalk,
    engine: Engine,
    clock: FakeClock,
    invite: Callable[..., str],
) -> None:
    runtime, fe = world
    await say(dt, fe, WANG, f"绑定 {invite('amr', name='王敏')}")
    reminders = runtime.build_reminders()
    reminders.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    await reminders.tick()
    last = dt.sent_to(WANG)[-1]  # the latest reminder's options are the ones a number presses
    code = last["param"]["title"].split()[0].removeprefix("任务")
    options = [line for line in last["text"].split("  \n") if line[:1].isdigit()]
    blocked = next(i for i, line in enumerate(options) if "受阻" in line)
    before = len(dt.sent_to(WANG))
    await dt.user_presses(WANG, last, blocked)
    await fe.drain()
    [answer] = dt.sent_to(WANG)[before:]
    assert f"已记录：任务{code}，受阻" in answer["text"], answer["text"]
    task = _task(engine, code)
    assert (task.status, task.colour) == ("blocked", "red")
