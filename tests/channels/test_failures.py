"""What Telegram refuses and how coordbot copes: flood waits, server errors, blocked users, long messages,
and user text that must never be taken for HTML."""

from __future__ import annotations

import html
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from telegram import Bot

from coordbot.channels.base import Button, Outbound
from coordbot.channels.telegram import MAX_TEXT, TelegramChannel, TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.runtime import Runtime
from coordbot.scheduling.engine import RETRY_BACKOFF, ReminderEngine
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_telegram import FakeBotAPI, parse_html

from .conftest import OFFICE, WANG, BoundFactory, Person, at, buttons, contact_of

# PTB 22 itself warns when it builds RetryAfter (retry_after becoming a timedelta): not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def _engine(runtime: Runtime, clock: FakeClock, **kwargs: object) -> ReminderEngine:
    eng = ReminderEngine(
        engine=runtime.engine, channels=runtime.channels, calendar=runtime.calendar, clock=clock, **kwargs
    )
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))  # amr's weekly requests for 2.1 and 2.2 are due
    return eng


def _occurrences(engine: Engine, contact_id: int) -> list[ReminderOccurrence]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(ReminderOccurrence)
                .where(ReminderOccurrence.contact_id == contact_id, ReminderOccurrence.fire_at <= at(2026, 3, 2, 9, 31))
                .order_by(ReminderOccurrence.id)
            )
        )


# ---- Telegram's answers ----------------------------------------------------------------------------


async def test_flood_wait_is_honoured_and_the_message_delivered_once(
    frontend: TelegramFrontend, bound: BoundFactory, runtime: Runtime, clock: FakeClock, server: FakeBotAPI
) -> None:
    wang = await bound(WANG, "amr")
    eng = _engine(runtime, clock)
    server.fail_next("sendMessage", status=429, retry_after=1, chat_id=WANG)
    started = time.monotonic()
    report = await eng.tick()
    assert (report.sent, report.released, report.failed) == (2, 0, 0)
    assert len(server.calls_to("sendMessage", status=429)) == 1
    [refused] = server.calls_to("sendMessage", status=429)
    [retried] = [c for c in server.calls_to("sendMessage", status=200) if c.params["text"] == refused.params["text"]]
    assert retried.t - refused.t >= 1.0  # waited retry_after before trying the same message again
    assert time.monotonic() - started >= 1.0
    reminders = wang.messages()[1:]
    assert len(reminders) == 2 and len({m["text"] for m in reminders}) == 2  # each exactly once


async def test_persistent_flood_wait_is_transient_and_keeps_retry_after(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    runtime: Runtime,
    clock: FakeClock,
    server: FakeBotAPI,
    engine: Engine,
) -> None:
    wang = await bound(WANG, "amr")
    eng = _engine(runtime, clock, send_tries=1, batch_size=1)
    server.fail_next("sendMessage", status=429, retry_after=1, times=3, chat_id=WANG)  # PTB's limiter tries 3x
    report = await eng.tick()
    assert report.released == 1 and report.failed == 0
    occs = _occurrences(engine, contact_of(engine, WANG).id)
    assert sorted(o.status for o in occs) == ["pending", "sent"]
    assert any("retry after 1" in o.error.lower() or "flood" in o.error.lower() for o in occs)
    assert len(wang.messages()) == 2


async def test_server_error_is_transient_and_the_reminder_goes_out_on_a_later_tick(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    runtime: Runtime,
    clock: FakeClock,
    server: FakeBotAPI,
    engine: Engine,
) -> None:
    wang = await bound(WANG, "amr")
    eng = _engine(runtime, clock, send_tries=1)
    server.fail_next("sendMessage", status=502, times=2, chat_id=WANG)
    first = await eng.tick()
    assert (first.sent, first.released, first.failed) == (0, 2, 0)
    occs = _occurrences(engine, contact_of(engine, WANG).id)
    assert [o.status for o in occs] == ["pending", "pending"] and all("Bad Gateway" in o.error for o in occs)
    assert len(wang.messages()) == 1  # only the welcome
    assert (await eng.tick()).claimed == 0  # backing off: not retried at once
    clock.advance(RETRY_BACKOFF + timedelta(seconds=1))
    second = await eng.tick()
    assert (second.sent, second.failed) == (2, 0)
    assert [o.status for o in _occurrences(engine, contact_of(engine, WANG).id)] == ["sent", "sent"]
    assert len(wang.messages()) == 3


async def test_blocked_bot_fails_the_occurrence_marks_the_contact_and_tells_the_office(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    runtime: Runtime,
    clock: FakeClock,
    server: FakeBotAPI,
    engine: Engine,
) -> None:
    wang = await bound(WANG, "amr", name="王敏")
    office = await bound(OFFICE, "amr", role="office")
    eng = _engine(runtime, clock)
    server.block(WANG)
    before = len(office.messages())
    report = await eng.tick()
    assert report.failed == 2 and report.released == 0
    assert len(server.calls_to("sendMessage", status=403)) == 2  # permanent: not retried
    assert [o.status for o in _occurrences(engine, contact_of(engine, WANG).id)] == ["failed", "failed"]
    assert contact_of(engine, WANG).unreachable
    [notice] = office.messages()[before:]
    assert "无法向王敏发送提醒" in notice["text"] and "blocked" in notice["text"]
    assert len(wang.messages()) == 1


# ---- long and hostile text --------------------------------------------------------------------------


@pytest.fixture
async def channel(server: FakeBotAPI) -> AsyncIterator[TelegramChannel]:
    """The channel alone (no database): a PTB Bot on the fake server."""
    async with Bot(server.token, base_url=server.base_url, base_file_url=server.base_file_url) as bot:
        yield TelegramChannel(bot)


def _visible(fragment: str) -> str:
    return parse_html(fragment)[0]


LONG_TEXTS = {
    "lines": "\n".join(f"<b>任务{i}</b> 进展 &amp; 说明 {'甲' * 60}" for i in range(150)),
    "one bold run": "<b>" + "很长的加粗文字" * 1000 + "</b>",
    "half then a long line": "前" * 3000 + "\n" + "后" * 5000,
    "entities at the cut": "&lt;&gt;&amp;" * 2000,
}


@pytest.mark.parametrize("shape", LONG_TEXTS)
async def test_long_message_is_split_into_valid_parts(channel: TelegramChannel, server: FakeBotAPI, shape: str) -> None:
    text = LONG_TEXTS[shape]
    keyboard = ((Button("↩️ 撤销", "undo", "p1"),),)
    delivery = await channel.send(Outbound(str(WANG), text, buttons=keyboard))
    parts = server.sent_messages(WANG)  # the server refuses (400) any part that is too long or bad HTML
    assert len(parts) >= 2
    assert all(len(p["text"]) <= MAX_TEXT for p in parts)
    assert "".join(p["text"] for p in parts).replace("\n", "") == _visible(text).replace("\n", "")
    assert [bool(buttons(p)) for p in parts] == [False] * (len(parts) - 1) + [True]  # keyboard on the last
    assert delivery.ref == f"{WANG}:{parts[-1]['message_id']}"
    if shape == "one bold run":
        assert all(p["entities"][0]["type"] == "bold" for p in parts)  # the tag is reopened in each part


async def test_user_text_is_escaped_wherever_it_is_echoed(
    frontend: TelegramFrontend, bound: BoundFactory, server: FakeBotAPI
) -> None:
    wang = await bound(WANG, "amr")
    office = await bound(OFFICE, "amr", role="office")
    hostile = "检查<b>2</b>项，正常推进 & <script>x</script> &amp;"  # with a status: a report, not a question
    confirm = await wang.say(f"/report 2.1 {hostile}")
    assert "已记录：任务2.1" in confirm["text"]
    tasks = await wang.say("/tasks")
    assert hostile in tasks["text"]  # shown literally, not as markup
    assert all(e["type"] == "bold" for e in tasks.get("entities", []))
    assert not any(tasks["text"][e["offset"] : e["offset"] + e["length"]] == "2" for e in tasks["entities"])

    before = len(office.messages())
    await wang.say(f"/extend 1.1 2026-12-31 资金<未到位> & 待{html.escape('<b>')}")
    [notice] = (await server.wait_for_messages(OFFICE, before + 1))[before:]
    assert "资金<未到位> & 待&lt;b&gt;" in notice["text"]
    assert [label for label, _ in buttons(notice)] == ["同意", "不同意"]


async def test_names_from_invites_are_escaped_in_the_welcome(
    frontend: TelegramFrontend, person: type[Person], invite
) -> None:
    p = person(WANG)
    welcome = await p.say(f"/start {invite('amr', name='王<b>敏</b> & Co')}")
    assert "欢迎，王<b>敏</b> & Co！" in welcome["text"]
