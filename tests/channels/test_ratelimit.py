"""Telegram's limits kept on our side (coordbot.channels.ratelimit), checked by the fake Bot API enforcing them.

Real python-telegram-bot over real HTTP; the fake server answers 429 to any send over 30/s overall, 1/s per
chat or 20/min per group, so "0 x 429" means the limits held where Telegram counts them: on arrival.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select
from telegram.ext import ExtBot

from coordbot.channels.ratelimit import TelegramRateLimiter
from coordbot.channels.telegram import TelegramChannel, rate_limiter
from coordbot.core.config import Secret, Settings
from coordbot.core.db import session_scope
from coordbot.core.rate_tokens import open_shared_tokens
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import ReminderEngine
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_telegram import FakeBotAPI, RateLimits

from .conftest import HOLIDAYS

TOKEN = "777:LIMITS"
GROUP = -900


@pytest.fixture
async def server() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN, rate_limits=RateLimits(enabled=True)) as srv:
        for uid in range(1001, 1101):
            srv.add_user(uid, f"u{uid}")
        srv.add_group(GROUP, "工作群")
        yield srv


def _bot(server: FakeBotAPI, limiter: TelegramRateLimiter) -> ExtBot[int]:
    return ExtBot(TOKEN, base_url=server.base_url, rate_limiter=limiter)


def _statuses(server: FakeBotAPI) -> list[int]:
    return [c.status for c in server.calls_to("sendMessage")]


def _accepted(server: FakeBotAPI, chat: int) -> list[float]:
    return [c.t for c in server.calls_to("sendMessage", status=200) if int(c.params["chat_id"]) == chat]


async def test_a_chats_gap_is_counted_from_when_telegram_took_the_message(server: FakeBotAPI) -> None:
    # The first request reaches Telegram 0.4 s after it went out: a gap counted from the request going out
    # leaves the second only 0.6 s after it, and Telegram answers 429.
    server.delay_next("sendMessage", 0.4)
    async with _bot(server, TelegramRateLimiter()) as bot:
        await asyncio.gather(bot.send_message(1001, "一"), bot.send_message(1001, "二"))
    assert _statuses(server) == [200, 200]
    first, second = _accepted(server, 1001)
    assert second - first >= 1.0


async def test_a_group_gets_a_burst_and_private_chats_never_wait_for_it(server: FakeBotAPI) -> None:
    async with _bot(server, TelegramRateLimiter()) as bot:
        sends = [bot.send_message(GROUP, f"群{i}") for i in range(4)]
        sends += [bot.send_message(uid, "提醒") for uid in range(1001, 1021)]
        await asyncio.gather(*sends)
    assert set(_statuses(server)) == {200}
    group = _accepted(server, GROUP)
    assert len(group) == 4
    # 20 a minute is a burst of 20 a second apart, not one every 3 s.
    assert all(1.0 <= b - a < 2.0 for a, b in itertools.pairwise(group))
    private = [t for uid in range(1001, 1021) for t in _accepted(server, uid)]
    assert max(private) < group[1], "a private chat waited for the group"


async def test_over_30_a_second_waits_without_a_429(server: FakeBotAPI) -> None:
    async with _bot(server, TelegramRateLimiter()) as bot:
        await asyncio.gather(*(bot.send_message(uid, "提醒") for uid in range(1001, 1071)))
    assert _statuses(server) == [200] * 70


def test_postgresql_shares_the_limits_sqlite_keeps_them_in_the_process() -> None:
    def settings(url: str) -> Settings:
        return Settings(database_url=url, telegram_token=Secret(TOKEN))

    assert rate_limiter(settings("sqlite:///var/x.db"))._shared_factory is None
    assert rate_limiter(settings("postgresql://u@h/db"))._shared_factory is not None


async def test_two_instances_on_postgresql_keep_the_limits_together(server: FakeBotAPI, pg_url: str) -> None:
    """Two limiters (as two processes would have) sharing the rate_token rows: 30/s overall and 1/s per chat
    hold for their sends together; alone, each would send 30 in the first second."""
    limiters = [TelegramRateLimiter(shared=lambda: open_shared_tokens(pg_url), key="telegram:777") for _ in range(2)]
    bots = [_bot(server, limiter) for limiter in limiters]
    async with bots[0], bots[1]:
        sends = [bots[0].send_message(uid, "甲") for uid in range(1001, 1046)]
        sends += [bots[1].send_message(uid, "乙") for uid in range(1046, 1091)]
        sends += [bot.send_message(1100, f"共{i}") for i, bot in enumerate(bots * 2)]  # one chat, both instances
        await asyncio.gather(*sends)
    assert _statuses(server) == [200] * 94
    shared = _accepted(server, 1100)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(shared))
    tokens = open_shared_tokens(pg_url)
    with tokens.engine.connect() as conn:
        overall = conn.execute(text("SELECT count(*), count(holder) FROM rate_token WHERE key = 'telegram:777:all'"))
        assert tuple(overall.one()) == (30, 0)  # 30 tokens, every one given back
    tokens.engine.dispose()


async def test_claims_overlap_so_a_busy_group_does_not_hold_up_the_next_batch(
    server: FakeBotAPI, engine: Engine, minimal_plan: LoadedPlan
) -> None:
    """The first claimed batch holds a group's four messages (three seconds at its fastest); the reminders to 30
    private chats in the batches after it go out meanwhile, not when the group's last message is sent."""
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
        dept = s.exec(select(Department)).first()
        assert dept is not None
        group = Contact(department_id=dept.id, name="群", address=str(GROUP))
        people = [Contact(department_id=dept.id, name=f"c{uid}", address=str(uid)) for uid in range(1001, 1031)]
        s.add_all([group, *people])
        s.flush()
        rows = [(group, f"群{k}") for k in range(4)] + [(p, "提醒") for p in people]
        s.add_all(
            ReminderOccurrence(contact_id=c.id, kind="notice", fire_at=now - timedelta(seconds=60 - i), body=body)
            for i, (c, body) in enumerate(rows)
        )
    async with _bot(server, TelegramRateLimiter()) as bot:
        reminders = ReminderEngine(
            engine=engine,
            channels={"telegram": TelegramChannel(bot)},
            calendar=WorkCalendar(HOLIDAYS),
            batch_size=8,
            grace=timedelta(days=1),
        )
        report = await reminders.tick()
    assert report.sent == 34 and set(_statuses(server)) == {200}
    group_times = _accepted(server, GROUP)
    private = [t for uid in range(1001, 1031) for t in _accepted(server, uid)]
    assert len(group_times) == 4 and len(private) == 30
    assert max(private) < group_times[-1], "the batches after the group's waited for its last message"
