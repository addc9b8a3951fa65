"""Binding a chat with a one-time invite code, and what an unbound chat gets: a short refusal, never data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.engine import Engine

from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.testing.fake_telegram import FakeBotAPI

from .conftest import ALL_TASKS, STRANGER, WANG, ZHAO, BoundFactory, Person, contact_of

NOT_BOUND = "您尚未绑定"


async def test_valid_code_binds_and_the_welcome_names_the_department(
    frontend: TelegramFrontend, person: Callable[..., Person], invite: Callable[..., str], engine: Engine
) -> None:
    wang = person(WANG)
    code = invite("amr", name="王敏")
    welcome = await wang.say(f"/start {code}")
    assert "欢迎，王敏" in welcome["text"]
    assert "区市场监管局（区知识产权局）" in welcome["text"] and "联络员" in welcome["text"]
    assert welcome["entities"][0]["type"] == "bold"  # sent as HTML and parsed by the server
    c = contact_of(engine, WANG)
    assert (c.name, c.role, c.channel) == ("王敏", "contact", "telegram")
    assert "王敏：区市场监管局（区知识产权局） 联络员" in (await wang.say("/whoami"))["text"]


async def test_expired_code_is_refused_politely(
    frontend: TelegramFrontend, person: Callable[..., Person], invite: Callable[..., str], clock: FakeClock
) -> None:
    code = invite("amr", name="王敏", ttl=timedelta(days=1))
    clock.advance(timedelta(days=1, seconds=1))
    answer = await person(WANG).say(f"/start {code}")
    assert answer["text"].strip() == "该邀请链接已过期，请向联席会议办公室重新索取。"


async def test_used_code_is_refused_and_does_not_rebind(
    frontend: TelegramFrontend, person: Callable[..., Person], invite: Callable[..., str], engine: Engine
) -> None:
    code = invite("amr", name="王敏")
    assert "欢迎" in (await person(WANG).say(f"/start {code}"))["text"]
    answer = await person(ZHAO).say(f"/start {code}")
    assert answer["text"].strip() == "该邀请链接已被使用，请向联席会议办公室重新索取。"
    assert contact_of(engine, WANG).name == "王敏"  # still bound to the first chat only


async def test_wrong_code_is_refused(frontend: TelegramFrontend, person: Callable[..., Person], invite) -> None:
    invite("amr", name="王敏")
    answer = await person(WANG).say("/start not-a-real-code-0123456789")
    assert answer["text"].strip() == "邀请码无效，请向联席会议办公室重新索取。"


async def test_unbound_user_gets_only_the_short_refusal_and_no_task_data(
    frontend: TelegramFrontend, bound: BoundFactory, person: Callable[..., Person], server: FakeBotAPI
) -> None:
    wang = await bound(WANG, "amr")
    assert "2.1" in (await wang.say("/tasks"))["text"]  # task data exists, in another chat
    stranger = person(STRANGER)
    for text in ("你好", "/tasks", "/report 2.1 本周开展检查2项", "2.1 已完成", "/whoami", "/overdue", "/start"):
        answer = await stranger.say(text)
        assert NOT_BOUND in answer["text"], (text, answer["text"])
        assert not (answer.get("reply_markup") or {}).get("inline_keyboard")
    # A button press (a stale keyboard, or data forged by a client): refused the same way, with a toast.
    before = len(stranger.messages())
    update = server.user_presses(STRANGER, answer["message_id"], "done:o1", strict=False)
    await stranger.handled.wait(update["update_id"])
    [refusal] = (await server.wait_for_messages(STRANGER, before + 1))[before:]
    assert NOT_BOUND in refusal["text"]
    assert NOT_BOUND in server.callback_answers[-1]["text"]  # the toast is a sentence, not a code
    sent = stranger.texts()
    for code, title in ALL_TASKS.items():
        assert code not in sent and title not in sent
    assert len(stranger.messages()) == 8
