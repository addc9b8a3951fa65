"""The inbound spool and its fair queue (channels/spool.py): durable, de-duplicated by update id, replayed in
order by the next run, chats served in turn, deferred updates kept and retried, one slot per instance."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coordbot.channels.base import InboundDeferred
from coordbot.channels.spool import FairQueue, Incoming, Spool, Spooled, spool_dir
from coordbot.core.config import Settings


def _in(key: int, chat: str) -> Incoming:
    return Incoming(str(key), chat, "pass", f'{{"update_id": {key}}}')


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    s = Spool(tmp_path, "telegram-1")
    yield s
    await s.close()


async def test_the_spool_keeps_one_row_per_update_and_survives_a_restart(tmp_path: Path) -> None:
    first = Spool(tmp_path, "telegram-1")
    added = await first.add([_in(1, "a"), _in(2, "b"), _in(1, "a")])
    assert [e.key for e in added] == ["1", "2"]
    assert await first.add([_in(2, "b")]) == []  # Telegram sending it again: still one
    first.done(added[0].seq)
    await first.close()

    second = Spool(tmp_path, "telegram-1")  # the next run
    try:
        assert await second.waiting() == [(added[1].seq, "b")]
        entry = await second.load(added[1].seq)
        assert entry is not None and entry.payload == '{"update_id": 2}'
    finally:
        await second.close()


async def test_a_second_instance_takes_another_slot(tmp_path: Path) -> None:
    one, two = Spool(tmp_path, "telegram-1"), Spool(tmp_path, "telegram-1")
    try:
        assert one.path != two.path
        await one.add([_in(1, "a")])
        assert await two.waiting() == []
    finally:
        await one.close()
        await two.close()


async def test_handled_rows_are_overwritten_not_just_unlinked(spool: Spool) -> None:
    [entry] = await spool.add([Incoming("7", "a", "pass", '{"text": "/start SECRETCODE123"}')])
    spool.done(entry.seq)
    assert await spool.count() == 0
    await spool.close()
    raw = b"".join(p.read_bytes() for p in spool.path.parent.glob("telegram-1.sqlite3*"))
    assert b"SECRETCODE123" not in raw


def test_the_spool_lives_beside_a_sqlite_database_unless_set(tmp_path: Path) -> None:
    assert spool_dir(Settings(database_url=f"sqlite:///{tmp_path}/db/x.db")) == tmp_path / "db" / "spool"
    assert spool_dir(Settings(database_url="postgresql://h/db")) == Path("var/spool")
    assert spool_dir(Settings(spool_dir=tmp_path / "s")) == tmp_path / "s"


async def test_chats_are_served_in_turn_and_a_chat_in_order(spool: Spool) -> None:
    order: list[str] = []

    async def work(entry: Spooled) -> None:
        order.append(entry.chat + entry.key)
        await asyncio.sleep(0.01)

    queue = FairQueue(spool, work, name="t", workers=1)
    for entry in await spool.add([*(_in(i, "flood") for i in range(1, 6)), _in(10, "x"), _in(11, "y")]):
        queue.push(entry.seq, entry.chat)
    await queue.start()
    while len(queue):
        await asyncio.sleep(0.01)
    await queue.close(1.0)
    # One worker: the flood's first, then each other chat once before the flood goes on.
    assert order == ["flood1", "x10", "y11", "flood2", "flood3", "flood4", "flood5"]
    assert await spool.count() == 0


async def test_a_deferred_update_is_kept_and_retried_in_its_place(spool: Spool) -> None:
    seen: list[str] = []
    failures = iter([True, True, False, False, False])

    async def work(entry: Spooled) -> None:
        if next(failures):
            raise InboundDeferred("the database is unreachable")
        seen.append(entry.key)

    queue = FairQueue(spool, work, name="t", workers=2, defer_max=0.05)
    for entry in await spool.add([_in(1, "a"), _in(2, "a"), _in(3, "b")]):
        queue.push(entry.seq, entry.chat)
    await queue.start()
    for _ in range(300):
        if not len(queue):
            break
        await asyncio.sleep(0.01)
    await queue.close(1.0)
    assert sorted(seen) == ["1", "2", "3"] and seen.index("1") < seen.index("2")
    assert queue.stats["deferred"] == 2 and queue.stats["handled"] == 3


async def test_what_a_stop_leaves_is_handled_first_by_the_next_run(tmp_path: Path) -> None:
    first = Spool(tmp_path, "telegram-1")
    await first.add([_in(1, "a"), _in(2, "b")])
    await first.close()  # stopped before any was handled

    second = Spool(tmp_path, "telegram-1")
    seen: list[str] = []

    async def work(entry: Spooled) -> None:
        seen.append(entry.key)

    queue = FairQueue(second, work, name="t", workers=1)
    await queue.start()
    for _ in range(200):
        if not len(queue):
            break
        await asyncio.sleep(0.01)
    await queue.close(1.0)
    await second.close()
    assert seen == ["1", "2"]
    with sqlite3.connect(second.path) as db:
        assert db.execute("SELECT count(*) FROM inbound").fetchone()[0] == 0


async def test_an_update_that_keeps_failing_is_given_up_after_three_attempts(spool: Spool) -> None:
    tries: list[str] = []

    async def work(entry: Spooled) -> None:
        tries.append(entry.key)
        if entry.key == "1":
            raise ValueError("a bug")

    queue = FairQueue(spool, work, name="t", workers=1)
    for entry in await spool.add([_in(1, "a"), _in(2, "a")]):
        queue.push(entry.seq, entry.chat)
    await queue.start()
    for _ in range(300):
        if not len(queue):
            break
        await asyncio.sleep(0.01)
    await queue.close(1.0)
    assert tries == ["1", "1", "1", "2"]
    assert queue.stats["given_up"] == 1 and await spool.count() == 0
