"""A WeCom contact through the real conversation: binds with "绑定 CODE", gets the real ReminderEngine's
reminder as a card through the adapter, answers in text and by button, and the reports are stored."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.wecom import WeComFrontend
from coordbot.core.clock import FakeClock
from coordbot.plan.models import Contact, Observation, ProgressReport
from coordbot.runtime import Runtime
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_wecom import FakeWeCom

from ..conftest import at, task_row
from .conftest import WANG, Say

STATUS_LABELS = ["✅ 已完成", "🟢 正常推进", "🟡 有风险", "🔴 受阻", "✍️ 填报进展"]


async def _bind_and_remind(
    wecom: FakeWeCom, runtime: Runtime, clock: FakeClock, say: Say, invite: Callable[..., str]
) -> dict[str, dict]:
    code = invite("amr", name="王敏")
    [welcome] = await say(WANG, f"绑定 {code}")
    assert "欢迎" in welcome["text"], welcome["text"]
    engine = runtime.build_reminders()
    engine.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    before = len(wecom.sent_to(WANG))
    report = await engine.tick()
    assert (report.sent, report.failed, report.released) == (2, 0, 0)
    new = wecom.sent_to(WANG)[before:]
    assert len(new) == 2
    return {m["text"].split()[0].removeprefix("任务"): m for m in new}


async def test_bind_remind_and_report(
    wecom: FakeWeCom,
    runtime_frontend: tuple[Runtime, WeComFrontend],
    clock: FakeClock,
    engine: Engine,
    say: Say,
    invite: Callable[..., str],
) -> None:
    runtime, _ = runtime_frontend
    reminders = await _bind_and_remind(wecom, runtime, clock, say, invite)
    with Session(engine) as s:
        contact = s.exec(select(Contact).where(Contact.address == WANG)).one()
        assert contact.channel == "wecom"
    card = reminders["2.1"]
    assert card["msgtype"] == "template_card"
    assert card["template_card"]["main_title"]["title"].startswith("任务2.1 加大行政保护力度")
    assert "专项行动和双随机检查：今年 0/10 项" in card["text"]
    assert [b["text"] for b in card["template_card"]["button_list"]] == STATUS_LABELS
    with Session(engine) as s:
        occ = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.message_ref == card["msgid"])).one()
    assert occ.status == "sent" and occ.task_id == task_row(engine, "2.1").id

    [answer] = await say(WANG, "任务2.1 本周开展双随机检查2项")
    assert "已记录：任务2.1" in answer["text"] and "今年2/10" in answer["text"], answer["text"]
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        [obs] = s.exec(select(Observation)).all()
    assert report.task_id == task_row(engine, "2.1").id and report.source == "chat"
    assert (obs.value, obs.mode, obs.voided) == (2.0, "increment", False)


async def test_the_blocked_button_on_the_card_turns_the_task_red(
    wecom: FakeWeCom,
    runtime_frontend: tuple[Runtime, WeComFrontend],
    clock: FakeClock,
    engine: Engine,
    say: Say,
    invite: Callable[..., str],
) -> None:
    runtime, fe = runtime_frontend
    reminders = await _bind_and_remind(wecom, runtime, clock, say, invite)
    card = reminders["2.2"]
    blocked = [b["text"] for b in card["template_card"]["button_list"]].index("🔴 受阻")
    before = len(wecom.sent_to(WANG))
    await wecom.user_presses(WANG, card, blocked)
    await fe.drain()
    [answer] = wecom.sent_to(WANG)[before:]
    assert "已记录：任务2.2，受阻" in answer["text"]
    task = task_row(engine, "2.2")
    assert (task.status, task.colour) == ("blocked", "red")


async def test_a_stranger_is_told_to_bind(
    wecom: FakeWeCom, runtime_frontend: tuple[Runtime, WeComFrontend], say: Say
) -> None:
    [answer] = await say(WANG, "你好")
    assert "绑定" in answer["text"] or "邀请" in answer["text"], answer["text"]
