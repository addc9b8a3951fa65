"""End-to-end fixtures for the Telegram channel: real python-telegram-bot against the fake Bot API over HTTP.

``server`` is a running :class:`FakeBotAPI` (Telegram's flood limits off: the functional tests are about
behaviour, the flood test turns them on); ``frontend`` is coordbot's :class:`TelegramFrontend` polling it, with
the minimal plan imported in the database (SQLite and PostgreSQL). People are made with ``person`` and bound
with ``bound``; :class:`Person` sends, presses and edits, and waits for what the bot answers.

Synchronisation is by events, never sleeps: ``handled`` wraps ``TelegramFrontend.deliver`` so a test can wait
until an update was processed completely (also for updates that get no answer), and the server's
``wait_for_messages`` waits for the bot's messages.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from telegram import Update

import coordbot.channels.telegram as telegram_module
from coordbot.channels.ratelimit import TelegramRateLimiter
from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.core.config import Secret, Settings
from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.contacts import create_invite
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Task
from coordbot.runtime import Runtime, make_runtime
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parents[2]
HOLIDAYS = ROOT / "config" / "holidays"
TOKEN = "123456:TEST-token_abc"
BOT_NAME = "coordbot_test_bot"
WEBHOOK_SECRET = "s3cret-Token_for-webhook"
TIMEOUT = 10.0  # generous: PostgreSQL on a loaded CI machine

# Telegram user ids used across the tests.
WANG = 1001  # amr contact (lead of 1.1, 2.1, 2.2)
ZHAO = 1002  # sci contact (lead of 1.2, co of 2.2)
LI = 1003  # finance contact (co of 1.1)
OFFICE = 1009  # the office
STRANGER = 1666  # never bound
GROUP = -1001234567890  # amr's work group (a supergroup)

ALL_TASKS = {"1.1": "完善政策体系", "1.2": "高价值专利培育", "2.1": "加大行政保护力度", "2.2": "试点示范单位"}


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, callback_data) of every inline button of a sent message, row by row."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


def button_data(message: dict[str, Any], action: str) -> str:
    [data] = [d for _, d in buttons(message) if d.startswith(action + ":")]
    return data


def is_force_reply(message: dict[str, Any]) -> bool:
    return bool((message.get("reply_markup") or {}).get("force_reply"))


def task_row(engine: Engine, code: str) -> Task:
    with Session(engine) as s:
        return s.exec(select(Task).where(Task.code == code)).one()


# ---- the handled-update tracker --------------------------------------------------------------------


@dataclass
class Handled:
    """Every update ``TelegramFrontend.deliver`` finished (how many times), with the exceptions it raised."""

    times: Counter[int] = field(default_factory=Counter)
    errors: list[tuple[int, BaseException]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def count(self) -> int:
        return sum(self.times.values())

    async def finished(self, update_id: int) -> None:
        async with self._changed:
            self.times[update_id] += 1
            self._changed.notify_all()

    async def wait(self, update_id: int, times: int = 1, timeout: float = TIMEOUT) -> None:
        """Wait until update ``update_id`` was handled ``times`` times (a redelivery counts again)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.times[update_id] >= times)

    async def wait_total(self, count: int, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.count >= count)


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> Iterator[Handled]:
    """Record every update the front end finished handling (whichever front end: also the one serve() makes)."""
    tracker = Handled()
    original = TelegramFrontend.deliver

    async def deliver(self: TelegramFrontend, update: Update) -> None:
        try:
            await original(self, update)
        except BaseException as exc:
            tracker.errors.append((update.update_id, exc))
            raise
        finally:
            await tracker.finished(update.update_id)

    monkeypatch.setattr(TelegramFrontend, "deliver", deliver)
    yield tracker
    assert not tracker.errors, f"updates failed while being handled: {tracker.errors!r}"


@pytest.fixture
def fast_client_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """coordbot's own limiter without the per-chat second: the functional tests exchange many messages in
    one chat, and the fake server's limits are off for them (the flood test keeps both on)."""

    def open_limiter(**_: object) -> TelegramRateLimiter:
        # Ignores the front end's own overall_per_second (a partial's keyword would be overridden by it).
        return TelegramRateLimiter(overall_per_second=10_000, chat_interval=1e-4, group_per_minute=1e6)

    monkeypatch.setattr(telegram_module, "TelegramRateLimiter", open_limiter)


# ---- the world -------------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN, bot_username=BOT_NAME, rate_limits=RateLimits(enabled=False)) as srv:
        for uid, name, lang in (
            (WANG, "王敏", "zh-hans"),
            (ZHAO, "赵磊", "zh-hans"),
            (LI, "李强", "zh-hans"),
            (OFFICE, "周办", "zh-hans"),
            (STRANGER, "路人", "zh-hans"),
        ):
            srv.add_user(uid, name, language_code=lang)
        srv.add_group(GROUP, "市场监管局工作群")
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at(2026, 3, 2, 9, 0))  # a Monday, a working day


@pytest.fixture
def loaded_plan(engine: Engine, minimal_plan: LoadedPlan) -> LoadedPlan:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
    return minimal_plan


@pytest.fixture
def make_settings(db_url: str, server: FakeBotAPI, tmp_path: Path) -> Callable[..., Settings]:
    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "spool_dir": tmp_path / "spool",  # each test its own: nothing one leaves is replayed by the next
            "holidays_dir": HOLIDAYS,
            "telegram_token": Secret(TOKEN),
            "telegram_base_url": server.base_url,
            "telegram_mode": "polling",
            "webhook_secret": Secret(WEBHOOK_SECRET),
            "tick_seconds": 3600.0,  # the tests tick the engine themselves
            # The conversation in a thread, as each of these tests starts a front end; test_workers.py runs
            # it in a worker process, the default outside the tests.
            "handler_processes": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return _make


@pytest.fixture
def runtime(
    make_settings: Callable[..., Settings], engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan
) -> Runtime:
    return make_runtime(make_settings(), engine, clock=clock)


@pytest.fixture
async def frontend(
    runtime: Runtime, server: FakeBotAPI, handled: Handled, fast_client_limits: None
) -> AsyncIterator[TelegramFrontend]:
    """coordbot's Telegram front end, long polling the fake server; its channel is the runtime's."""
    fe = TelegramFrontend(runtime.settings, runtime.handle)
    runtime.channels["telegram"] = fe.channel
    await runtime.conversation_runner().start()
    await fe.start()
    try:
        yield fe
    finally:
        await fe.stop()
        await runtime.close()


# ---- people ----------------------------------------------------------------------------------------


@dataclass
class Person:
    """A Telegram user talking to the bot in a chat (their private chat unless ``chat_id`` is a group)."""

    server: FakeBotAPI
    handled: Handled
    user_id: int
    chat_id: int

    def messages(self) -> list[dict[str, Any]]:
        """Everything the bot sent to this chat, oldest first."""
        return self.server.sent_messages(self.chat_id)

    def texts(self) -> str:
        return "\n".join(m.get("text", "") for m in self.messages())

    async def send(self, text: str, *, reply_to: int | None = None, expect: int = 1) -> list[dict[str, Any]]:
        """Write ``text``; wait until it was handled and ``expect`` bot messages arrived; return the new ones."""
        before = len(self.messages())
        update = self.server.user_sends(self.user_id, text, chat_id=self.chat_id, reply_to_message_id=reply_to)
        await self.handled.wait(update["update_id"])
        if expect:
            await self.server.wait_for_messages(self.chat_id, before + expect, timeout=TIMEOUT)
        return self.messages()[before:]

    async def say(self, text: str, *, reply_to: int | None = None) -> dict[str, Any]:
        """Write ``text`` and return the bot's single answer."""
        [answer] = await self.send(text, reply_to=reply_to)
        return answer

    async def press(self, message: dict[str, Any], data: str, *, expect: int = 1) -> list[dict[str, Any]]:
        before = len(self.messages())
        update = self.server.user_presses(self.user_id, message["message_id"], data, chat_id=self.chat_id)
        await self.handled.wait(update["update_id"])
        if expect:
            await self.server.wait_for_messages(self.chat_id, before + expect, timeout=TIMEOUT)
        return self.messages()[before:]

    async def edit(self, message_id: int, text: str, *, expect: int = 1) -> list[dict[str, Any]]:
        before = len(self.messages())
        update = self.server.user_edits(self.user_id, message_id, text, chat_id=self.chat_id)
        await self.handled.wait(update["update_id"])
        if expect:
            await self.server.wait_for_messages(self.chat_id, before + expect, timeout=TIMEOUT)
        return self.messages()[before:]


@pytest.fixture
def person(server: FakeBotAPI, handled: Handled) -> Callable[..., Person]:
    def _person(user_id: int, *, chat_id: int | None = None) -> Person:
        return Person(server, handled, user_id, user_id if chat_id is None else chat_id)

    return _person


@pytest.fixture
def invite(engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan) -> Callable[..., str]:
    """invite("amr", name="王敏", role="contact") -> the one-time code (as in the deep link)."""

    def _invite(dept: str, *, name: str, role: str = "contact", ttl: timedelta = timedelta(days=7)) -> str:
        with session_scope(engine) as s:
            return create_invite(session=s, department_code=dept, name=name, role=role, ttl=ttl, now=clock.now()).code

    return _invite


BoundFactory = Callable[..., Awaitable[Person]]


@pytest.fixture
def bound(frontend: TelegramFrontend, person: Callable[..., Person], invite: Callable[..., str]) -> BoundFactory:
    """await bound(WANG, "amr") -> a Person bound through the real /start deep link."""

    async def _bound(user_id: int, dept: str, *, role: str = "contact", name: str | None = None) -> Person:
        p = person(user_id)
        code = invite(dept, name=name or f"{dept}-{role}-{user_id}", role=role)
        welcome = await p.say(f"/start {code}")
        assert "欢迎" in welcome["text"], welcome["text"]
        return p

    return _bound


def contact_of(engine: Engine, user_id: int | str) -> Contact:
    with Session(engine) as s:
        return s.exec(select(Contact).where(Contact.address == str(user_id))).one()
