"""The real conversation over Feishu: a contact binds with "绑定 CODE", the ReminderEngine's reminder arrives as
a card, and the contact's button press or quoted reply is stored as a report."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.feishu import FeishuFrontend
from coordbot.core.clock import FakeClock
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, ProgressReport
from coordbot.runtime import Runtime, make_runtime
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_feishu import FakeFeishu

from ..conftest import HOLIDAYS, at, task_row
from .conftest import WANG, feishu_settings, serve_events


@pytest.fixture
async def world(
    fs: FakeFeishu, db_url: str, engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan
) -> AsyncIterator[tuple[Runtime, FeishuFrontend]]:
    settings = feishu_settings(fs, database_url=db_url, holidays_dir=HOLIDAYS, tick_seconds=3600.0, handler_processes=0)
    runtime = make_runtime(settings, engine, clock=clock)
    [fe] = runtime.frontends()  # only Feishu is configured: the registry builds its front end
    assert isinstance(fe, FeishuFrontend)
    await runtime.conversation_runner().start()
    await fe.start()
    web = await serve_events(fs, fe)
    try:
        yield runtime, fe
    finally:
        await web.cleanup()
        await fe.stop()
        await runtime.close()


async def _bind(fs: FakeFeishu, fe: FeishuFrontend, invite: Callable[..., str], engine: Engine) -> None:
    code = invite("amr", name="王敏")
    assert (await fs.user_sends(WANG, f"绑定 {code}"))[0] == 200
    await fe.drain()
    [welcome] = fs.sent_to(WANG)
    assert "欢迎" in welcome["text"], welcome["text"]
    with Session(engine) as s:
        contact = s.exec(select(Contact).where(Contact.address == WANG)).one()
    assert contact.channel == "feishu"


async def _reminders(runtime: Runtime, clock: FakeClock, fs: FakeFeishu) -> dict[str, dict]:  # type: ignore[type-arg]
    reminders = runtime.build_reminders()
    reminders.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    before = len(fs.sent_to(WANG))
    report = await reminders.tick()
    assert (report.sent, report.failed) == (2, 0), report.errors
    new = fs.sent_to(WANG)[before:]
    assert [m["msg_type"] for m in new] == ["interactive", "interactive"]
    return {m["text"].split()[0].strip("*").removeprefix("任务"): m for m in new}


async def test_bind_remind_press_blocked(
    world: tuple[Runtime, FeishuFrontend],
    fs: FakeFeishu,
    invite: Callable[..., str],
    engine: Engine,
    clock: FakeClock,
) -> None:
    runtime, fe = world
    await _bind(fs, fe, invite, engine)
    reminders = await _reminders(runtime, clock, fs)
    card = reminders["2.2"]
    with Session(engine) as s:
        occ = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.message_ref == card["message_id"])).one()
    labels = [label for label, _ in card["buttons"]]
    assert labels == ["✅ 已完成", "🟢 正常推进", "🟡 有风险", "🔴 受阻", "✍️ 填报进展"]
    assert card["buttons"][3][1] == {"action": f"blocked:o{occ.id}"}
    status, answer = await fs.user_presses(WANG, card, 3)
    assert status == 200 and isinstance(answer, dict)  # answered in time (a toast only when the reply has one)
    await fe.drain()
    assert "已记录：任务2.2，受阻" in fs.sent_to(WANG)[-1]["text"]
    task = task_row(engine, "2.2")
    assert (task.status, task.colour) == ("blocked", "red")
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
    assert report.task_id == task.id


async def test_bind_remind_quoted_reply_is_a_report(
    world: tuple[Runtime, FeishuFrontend],
    fs: FakeFeishu,
    invite: Callable[..., str],
    engine: Engine,
    clock: FakeClock,
) -> None:
    runtime, fe = world
    await _bind(fs, fe, invite, engine)
    reminders = await _reminders(runtime, clock, fs)
    await fs.user_sends(WANG, "本周开展双随机检查2项，专项行动筹备中", reply_to=reminders["2.1"]["message_id"])
    await fe.drain()
    answer = fs.sent_to(WANG)[-1]
    assert "已记录：任务2.1" in answer["text"] and "今年2/10" in answer["text"]
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        occ = s.get(ReminderOccurrence, report.reminder_id)
    assert report.task_id == task_row(engine, "2.1").id and report.source == "chat"
    assert occ is not None and occ.message_ref == reminders["2.1"]["message_id"]
