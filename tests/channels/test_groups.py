"""A department's work group: bound with /start in the group, commands addressed to the bot, replies by
the people in it attributed to the sender, who must be a bound contact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.plan.models import ProgressReport
from coordbot.runtime import Runtime
from coordbot.testing.fake_telegram import FakeBotAPI

from .conftest import (
    BOT_NAME,
    GROUP,
    STRANGER,
    WANG,
    BoundFactory,
    Person,
    at,
    button_data,
    contact_of,
    task_row,
)


async def _bound_group(bound: BoundFactory, person: Callable[..., Person], invite: Callable[..., str]) -> Person:
    """王敏 (bound in private) binds amr's work group; returns 王敏 as seen in the group."""
    await bound(WANG, "amr", name="王敏")
    in_group = person(WANG, chat_id=GROUP)
    code = invite("amr", name="市场监管局工作群")
    welcome = await in_group.say(f"/start@{BOT_NAME} {code}")
    assert "欢迎，市场监管局工作群" in welcome["text"] and "区市场监管局" in welcome["text"]
    return in_group


async def _group_reminders(runtime: Runtime, clock: FakeClock, group: Person) -> dict[str, dict[str, Any]]:
    engine = runtime.build_reminders()
    engine.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    before = len(group.messages())
    assert (await engine.tick()).sent == 4  # 2.1 and 2.2, to 王敏 and to the group
    return {m["text"].split()[0].removeprefix("任务"): m for m in group.messages()[before:]}


async def test_group_is_bound_by_start_in_the_group_and_answers_addressed_commands(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    person: Callable[..., Person],
    invite: Callable[..., str],
    engine: Engine,
    server: FakeBotAPI,
) -> None:
    wang = await _bound_group(bound, person, invite)
    group_contact = contact_of(engine, GROUP)
    assert (group_contact.name, group_contact.role) == ("市场监管局工作群", "contact")
    tasks = await wang.say(f"/tasks@{BOT_NAME}")
    assert "2.1 加大行政保护力度" in tasks["text"] and "1.2" not in tasks["text"]
    assert "/report" in (await wang.say("/help"))["text"]  # a bare command works in a group too

    before = len(wang.messages())
    update = server.user_sends(WANG, "/tasks@otherbot", chat_id=GROUP)
    await wang.handled.wait(update["update_id"])
    assert len(wang.messages()) == before  # meant for another bot: ignored


async def test_group_replies_count_only_from_bound_contacts(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    person: Callable[..., Person],
    invite: Callable[..., str],
    runtime: Runtime,
    clock: FakeClock,
    engine: Engine,
    server: FakeBotAPI,
) -> None:
    server.add_user(STRANGER + 1, "群成员")
    wang = await _bound_group(bound, person, invite)
    reminders = await _group_reminders(runtime, clock, wang)
    member = person(STRANGER + 1, chat_id=GROUP)

    before = len(wang.messages())
    ignored = await member.send("本周开展双随机检查5项", reply_to=reminders["2.1"]["message_id"], expect=0)
    chatter = await member.send("大家中午吃什么？", expect=0)
    own = await wang.send("今天天气不错", expect=0)  # a bound contact's chatter is not a report either
    assert ignored == chatter == own == [] and len(wang.messages()) == before
    with Session(engine) as s:
        assert s.exec(select(ProgressReport)).all() == []

    answer = await wang.say("本周开展双随机检查2项", reply_to=reminders["2.1"]["message_id"])
    assert "已记录：任务2.1" in answer["text"] and "今年2/10" in answer["text"]
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
    assert report.contact_id == contact_of(engine, WANG).id  # the sender, not the group
    assert report.task_id == task_row(engine, "2.1").id


async def test_bound_contact_can_press_the_buttons_of_a_group_reminder(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    person: Callable[..., Person],
    invite: Callable[..., str],
    runtime: Runtime,
    clock: FakeClock,
    engine: Engine,
    server: FakeBotAPI,
) -> None:
    server.add_user(STRANGER + 1, "群成员")
    wang = await _bound_group(bound, person, invite)
    reminders = await _group_reminders(runtime, clock, wang)
    member = person(STRANGER + 1, chat_id=GROUP)
    before = len(wang.messages())
    assert await member.press(reminders["2.2"], button_data(reminders["2.2"], "blocked"), expect=0) == []
    assert "您尚未绑定" in server.callback_answers[-1]["text"]  # told in a toast only they see
    assert len(wang.messages()) == before  # nothing in the group
    assert task_row(engine, "2.2").status == "assigned"
    [answer] = await wang.press(reminders["2.2"], button_data(reminders["2.2"], "blocked"))
    assert "已记录：任务2.2，受阻" in answer["text"]
    assert (task_row(engine, "2.2").status, task_row(engine, "2.2").colour) == ("blocked", "red")
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
    assert report.contact_id == contact_of(engine, WANG).id
