"""Inbound that never drops a real update (issue 13), through coordbot's real webhook under ``serve()``:

* bodies that arrive in several writes with pauses (Content-Length and chunked), 1 KB to the 1 MiB cap, each
  processed exactly once; over the cap 413 (also chunked, without a Content-Length);
* updates of older and newer shapes than python-telegram-bot reads (``tests/data/telegram-updates``): 200,
  logged without their text, counted; handled from their JSON where the chat and the text are there (a
  ``/start CODE`` still binds);
* bodies that are not updates (``[]``, ``null``, strings, a non-integer update_id): 400 and a log line, never 500.

The multi-write bodies are written on a raw ``asyncio.open_connection``: an HTTP client library sends a body
in one go, which is how the old ``request.content.read(n)`` got away with reading only what had arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import coordbot.channels.telegram as telegram_module
from coordbot.channels.ratelimit import TelegramRateLimiter
from coordbot.channels.telegram import WEBHOOK_MAX_BYTES, WEBHOOK_PATH, TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.core.config import Settings
from coordbot.plan.models import Contact, ProgressReport
from coordbot.replies.models import InboundMessage
from coordbot.runtime import make_runtime, serve
from coordbot.testing.fake_telegram import FakeBotAPI

from .conftest import LI, STRANGER, WANG, WEBHOOK_SECRET, Handled, Person, free_port

CORPUS = Path(__file__).resolve().parents[1] / "data" / "telegram-updates" / "old_and_unknown_shapes.json"
LOGGER = "coordbot.channels.telegram"
Serving = Callable[[], contextlib.AbstractAsyncContextManager[tuple[str, TelegramFrontend]]]


@pytest.fixture
def serving(
    make_settings: Callable[..., Settings],
    engine: Engine,
    clock: FakeClock,
    loaded_plan: Any,
    handled: Handled,
    fast_client_limits: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Serving:
    """``async with serving() as (hook, frontend):`` runs serve() in webhook mode until the block ends."""
    made: list[TelegramFrontend] = []
    original = TelegramFrontend.__init__

    def init(self: TelegramFrontend, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(TelegramFrontend, "__init__", init)

    @contextlib.asynccontextmanager
    async def _serving() -> AsyncIterator[tuple[str, TelegramFrontend]]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = make_settings(telegram_mode="webhook", webhook_url=url, web_port=port)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(make_runtime(settings, engine, clock=clock), stop=stop))
        try:
            async with asyncio.timeout(10):
                while not made or not made[0].app.running:
                    await asyncio.sleep(0.02)
            yield url + WEBHOOK_PATH, made[0]
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    return _serving


async def _bind(wang: Person, invite: Callable[..., str]) -> None:
    welcome = await wang.say(f"/start {invite('amr', name='王敏')}")  # also proves the webhook listens
    assert "欢迎，王敏" in welcome["text"]


# ---- raw HTTP --------------------------------------------------------------------------------------


async def raw_post(
    url: str,
    body: bytes,
    *,
    pieces: int = 1,
    pause: float = 0.0,
    chunked: bool = False,
    content_length: int | None = None,
) -> tuple[int, str]:
    """POST ``body`` in ``pieces`` writes ``pause`` seconds apart (the headers in a write of their own);
    (status, response body). ``content_length`` declares another length than the body's."""
    u = urlsplit(url)
    assert u.hostname is not None and u.port is not None
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    head = [
        f"POST {u.path} HTTP/1.1",
        f"Host: {u.hostname}:{u.port}",
        "Content-Type: application/json",
        f"X-Telegram-Bot-Api-Secret-Token: {WEBHOOK_SECRET}",
        "Connection: close",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {content_length or len(body)}",
    ]
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        size = -(-len(body) // pieces)
        with contextlib.suppress(ConnectionError):  # a server that refused the body may stop reading it
            for i in range(pieces):
                await asyncio.sleep(pause)
                part = body[i * size : (i + 1) * size]
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        async with asyncio.timeout(30):
            response = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


def message_update(update_id: int, message_id: int, size: int) -> bytes:
    """A progress report from 王敏 as Telegram sends it, its text long enough for the body to be ``size`` bytes."""
    update: dict[str, Any] = {
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": {"id": WANG, "is_bot": False, "first_name": "王敏", "language_code": "zh-hans"},
            "chat": {"id": WANG, "first_name": "王敏", "type": "private"},
            "date": 1772413200,
            "text": "2.1 本周开展双随机检查1项。",
        },
    }
    base = len(json.dumps(update, ensure_ascii=False).encode())
    update["message"]["text"] += "检" * max(0, (size - base) // 3)  # 3 bytes a character in UTF-8
    body = json.dumps(update, ensure_ascii=False).encode()
    assert size - 3 < len(body) <= size, (size, len(body))
    return body


# (body size, writes, pause between them)
SIZES = [
    (1_000, 1, 0.0),
    (3_000, 2, 0.3),
    (20_000, 4, 0.3),
    (200_000, 3, 0.2),
    (900_000, 4, 0.2),
    (WEBHOOK_MAX_BYTES, 5, 0.1),  # exactly the cap
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_updates_in_several_writes_are_processed_exactly_once_up_to_the_cap(
    serving: Serving,
    server: FakeBotAPI,
    person: Callable[..., Person],
    invite: Callable[..., str],
    engine: Engine,
    handled: Handled,
    chunked: bool,
) -> None:
    wang = person(WANG)
    async with serving() as (hook, _frontend):
        await _bind(wang, invite)
        ids = []
        for n, (size, pieces, pause) in enumerate(SIZES):
            update_id, before = 700_000 + n, len(wang.messages())
            status, text = await raw_post(
                hook, message_update(update_id, 500 + n, size), pieces=pieces, pause=pause, chunked=chunked
            )
            assert (status, text) == (200, "ok"), (size, pieces, status, text)
            await handled.wait(update_id)
            await server.wait_for_messages(WANG, before + 1, timeout=20)
            assert "已记录：任务2.1" in wang.messages()[-1]["text"], size
            ids.append(update_id)
        await asyncio.sleep(0.2)  # a second processing would show up here
    assert [handled.times[i] for i in ids] == [1] * len(SIZES)
    with Session(engine) as s:
        rows = s.exec(select(InboundMessage).where(col(InboundMessage.external_id).in_([str(i) for i in ids]))).all()
        assert sorted(r.external_id for r in rows) == sorted(str(i) for i in ids)
        reports = s.exec(select(ProgressReport)).all()
    assert len(reports) == len(SIZES)
    assert len(wang.messages()) == 1 + len(SIZES)  # the welcome, one confirmation each


async def test_bodies_over_the_cap_get_413_however_they_are_sent(
    serving: Serving, person: Callable[..., Person], invite: Callable[..., str], engine: Engine
) -> None:
    wang = person(WANG)
    over = message_update(800_001, 600, WEBHOOK_MAX_BYTES + 3)
    assert len(over) > WEBHOOK_MAX_BYTES
    async with serving() as (hook, frontend):
        await _bind(wang, invite)
        huge = b'{"update_id": 800002, "padding": "' + b"x" * (5 << 20) + b'"}'
        assert (await raw_post(hook, huge, pieces=20, pause=0.02, chunked=True))[0] == 413  # no Content-Length
        assert (await raw_post(hook, over, pieces=4, pause=0.1, chunked=True))[0] == 413  # just over, chunked
        assert (await raw_post(hook, over, pieces=4, pause=0.1))[0] == 413  # declared
        assert frontend.metrics["bodies_too_large"] == 3
        # and the webhook still takes the next update
        status, _ = await raw_post(hook, message_update(800_003, 601, 2_000), pieces=2, pause=0.2)
        assert status == 200
        await wang.server.wait_for_messages(WANG, 2)
    with Session(engine) as s:
        ids = {r.external_id for r in s.exec(select(InboundMessage))}
    assert "800001" not in ids and "800002" not in ids and "800003" in ids


NOT_UPDATES: list[tuple[str, bytes]] = [
    ("empty array", b"[]"),
    ("array", b"[1,2,3]"),
    ("null", b"null"),
    ("string", b'"update"'),
    ("number", b"42"),
    ("true", b"true"),
    ("empty object", b"{}"),
    ("no update_id", b'{"message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, "date": 0}}'),
    (
        "update_id string",
        b'{"update_id": "abc", "message": {"message_id": 1, "chat": {"id": 1001, "type": "private"},'
        b' "from": {"id": 1001, "is_bot": false, "first_name": "x"}, "date": 0, "text": "/done 2.1"}}',
    ),
    ("update_id numeric string", b'{"update_id": "123"}'),
    ("update_id float", b'{"update_id": 1.5}'),
    ("update_id bool", b'{"update_id": true}'),
    ("update_id null", b'{"update_id": null}'),
    ("update_id object", b'{"update_id": {"x": 1}}'),
    ("not JSON", b"{update_id: 1}"),
    ("not UTF-8", b'{"update_id": 1, "x": "\xff\xfe"}'),
]


async def test_bodies_that_are_not_updates_get_400_and_a_log_line_never_500(
    serving: Serving,
    person: Callable[..., Person],
    invite: Callable[..., str],
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wang = person(WANG)
    async with serving() as (hook, frontend):
        await _bind(wang, invite)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=LOGGER):
            for name, body in NOT_UPDATES:
                before = len([r for r in caplog.records if r.name == LOGGER])
                status, text = await raw_post(hook, body, pieces=2, pause=0.05)
                assert status == 400, (name, status, text)
                assert text.startswith("not an update"), (name, text)
                lines = [r for r in caplog.records if r.name == LOGGER][before:]
                assert len(lines) == 1 and lines[0].levelno == logging.WARNING, (name, lines)
                assert "Traceback" not in text
        assert frontend.metrics["bodies_refused"] == len(NOT_UPDATES)
    with Session(engine) as s:
        kinds = [r.external_id for r in s.exec(select(InboundMessage))]
    assert len(kinds) == 1  # only the /start that bound 王敏: "abc" was not processed
    assert len(wang.messages()) == 1


def _corpus(**values: int | str) -> list[dict[str, Any]]:
    text = CORPUS.read_text(encoding="utf-8")
    entries: list[dict[str, Any]] = json.loads(text)["updates"]
    out = []
    for n, entry in enumerate(entries):
        raw = json.dumps(entry["update"], ensure_ascii=False)
        raw = raw.replace('"UID"', str(900_000 + n))
        for key, value in values.items():
            raw = raw.replace(f'"{key}"', str(value)).replace(key, str(value))
        out.append({**entry, "update": json.loads(raw)})
    return out


async def test_old_and_unknown_shapes_are_answered_200_logged_and_handled_where_readable(
    serving: Serving,
    server: FakeBotAPI,
    person: Callable[..., Person],
    invite: Callable[..., str],
    engine: Engine,
    handled: Handled,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wang, stranger = person(WANG), person(STRANGER)
    code = invite("sci", name="路人")
    corpus = _corpus(CODE=code, WANG=WANG, STRANGER=STRANGER)
    assert {e["expect"] for e in corpus} == {"handled", "skipped", "parsed"}
    async with serving() as (hook, frontend):
        await _bind(wang, invite)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=LOGGER):
            async with aiohttp.ClientSession() as http:
                for entry in corpus:
                    update = entry["update"]
                    chat = update.get("message", update.get("edited_message", {})).get("chat", {}).get("id")
                    if "callback_query" in update:
                        chat = update["callback_query"]["from"]["id"]
                    before = len(server.sent_messages(chat)) if chat in (WANG, STRANGER) else 0
                    async with http.post(
                        hook,
                        data=json.dumps(update, ensure_ascii=False).encode(),
                        headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET, "Content-Type": "application/json"},
                    ) as resp:
                        assert resp.status == 200, (entry["name"], resp.status, await resp.text())
                    if entry["expect"] == "handled":
                        await server.wait_for_messages(chat, before + 1, timeout=10)
                        entry["answer"] = server.sent_messages(chat)[-1]["text"]
            await asyncio.sleep(0.2)
        records = [r for r in caplog.records if r.name == LOGGER]
        metrics = dict(frontend.metrics)

    by_name = {e["name"]: e for e in corpus}
    assert "欢迎" in by_name["start_deep_link_user_without_is_bot"]["answer"]  # the /start CODE bound
    with Session(engine) as s:
        bound = s.exec(select(Contact).where(Contact.address == str(STRANGER))).one()
        assert bound.name == "路人" and bound.channel == "telegram"
        reports = s.exec(select(ProgressReport)).all()
        assert len(reports) == 1, [(r.text, r.source, r.contact_id, r.source_ref) for r in reports]
        [report] = reports
    assert "今年2/10" in by_name["report_from_a_user_without_is_bot"]["answer"]
    assert "今年3/10" in by_name["edited_message_user_without_is_bot"]["answer"]  # the edit revised it
    assert report.text == "本周开展双随机检查3项"
    assert by_name["message_without_date"]["answer"]  # /help, answered
    assert by_name["message_with_fields_from_the_future"]["answer"]
    assert by_name["callback_query_user_without_is_bot"]["answer"]  # an old button: "gone", but answered

    unreadable = [e for e in corpus if e["name"] not in ("a_kind_from_the_future", "channel_post")]
    unreadable = [e for e in unreadable if e["name"] != "message_with_fields_from_the_future"]
    assert metrics["updates_unparsed"] == len(unreadable) == 8
    assert metrics["updates_unparsed_handled"] == 5
    assert metrics["updates_ignored"] == 2  # a kind from the future, a channel post
    for entry in corpus:
        uid = str(entry["update"]["update_id"])
        kind = next(k for k in entry["update"] if k != "update_id")
        lines = [r.getMessage() for r in records if uid in r.getMessage()]
        if entry in unreadable or entry["expect"] == "parsed":
            assert any(kind in line for line in lines), (entry["name"], lines)
    for r in records:  # never a message's text in the log
        assert "双随机检查" not in r.getMessage() and code not in r.getMessage()
    assert stranger.messages()


# ---- a chat flooding the bot -----------------------------------------------------------------------

FLOODER, OTHER = STRANGER, LI


@pytest.fixture
async def polling_frontend(
    runtime: Any, server: FakeBotAPI, handled: Handled, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TelegramFrontend]:
    """The front end polling, with the per-chat send limit on (a tenth of Telegram's second, to keep the
    test short): the flooder's answers wait on it, as in production."""

    def limiter(**_: object) -> TelegramRateLimiter:
        return TelegramRateLimiter(overall_per_second=10_000, chat_interval=0.1, group_per_minute=1e6)

    monkeypatch.setattr(telegram_module, "TelegramRateLimiter", limiter)
    fe = TelegramFrontend(runtime.settings, runtime.handle)
    runtime.channels["telegram"] = fe.channel
    await runtime.conversation_runner().start()
    await fe.start()
    try:
        yield fe
    finally:
        await fe.stop()
        await runtime.close()


@pytest.mark.timeout(120)
async def test_a_flooding_chat_gets_one_notice_and_does_not_slow_the_others(
    polling_frontend: TelegramFrontend, server: FakeBotAPI, handled: Handled, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        flood = [server.user_sends(FLOODER, f"测试消息{i}") for i in range(300)]
        started = time.monotonic()
        other = server.user_sends(OTHER, "/help")  # queued behind all 300
        await server.wait_for_messages(OTHER, 1, timeout=60)
        answered_in = time.monotonic() - started
        print(f"\nflood: the other chat answered in {answered_in:.2f}s")
        assert answered_in < 2.0
        await handled.wait(other["update_id"])
        await handled.wait(flood[-1]["update_id"], timeout=60)  # the front end has seen all of them
        dropped = polling_frontend.metrics["flood_unanswered"]  # stored (handled), not answered
        admitted = 300 - dropped
        await server.wait_for_messages(FLOODER, admitted + 1, timeout=30)  # their answers and the notice
        await asyncio.sleep(0.3)
    print(f"flood: {dropped} of 300 dropped")
    assert telegram_module.FLOOD_BURST <= admitted <= telegram_module.FLOOD_BURST + 10
    texts = [m["text"] for m in server.sent_messages(FLOODER)]
    notices = [t for t in texts if "发送的消息过多" in t]
    assert len(notices) == 1
    assert len(texts) == admitted + 1  # nothing of the unanswered ones is answered, nor queued
    assert polling_frontend.metrics["flood_dropped"] == 0  # all 300 are within the chat's backlog
    lines = [r for r in caplog.records if r.name == LOGGER and "flood limit" in r.getMessage()]
    assert len(lines) == dropped
    assert [handled.times[u["update_id"]] for u in flood] == [1] * 300


def test_flood_gate_passes_a_burst_notices_once_refills_and_forgets_calm_chats() -> None:
    now = [0.0]
    gate = telegram_module.FloodGate(burst=3, window=3.0, clock=lambda: now[0])  # 3 at once, then one a second
    assert [gate.admit("a") for _ in range(6)] == ["pass", "pass", "pass", "notice", "drop", "drop"]
    assert gate.admit("b") == "pass"  # another chat is not affected
    now[0] = 1.0
    assert [gate.admit("a") for _ in range(2)] == ["pass", "drop"]  # one earned back; no second notice
    now[0] = 10.0  # calm again: a new flood is told again
    assert [gate.admit("a") for _ in range(5)] == ["pass", "pass", "pass", "notice", "drop"]


@pytest.mark.timeout(60)
async def test_a_chats_backlog_is_capped_and_its_excess_dropped_and_counted(
    frontend: TelegramFrontend,
    server: FakeBotAPI,
    handled: Handled,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telegram_module, "MAX_CHAT_BACKLOG", 5)
    flood = [server.user_sends(FLOODER, f"消息{i}") for i in range(40)]  # one getUpdates batch
    await server.wait_until_consumed()
    await handled.wait_total(5)
    await asyncio.sleep(0.3)  # nothing more comes
    assert frontend.metrics["flood_dropped"] == 35
    assert handled.count == 5 and [handled.times[u["update_id"]] for u in flood[:5]] == [1] * 5
    with Session(engine) as s:
        stored = s.exec(select(InboundMessage.external_id).where(InboundMessage.chat_id == str(FLOODER))).all()
    assert sorted(stored) == sorted(str(u["update_id"]) for u in flood[:5])
