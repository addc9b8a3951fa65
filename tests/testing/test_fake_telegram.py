"""The fake Bot API server, driven over real HTTP by real python-telegram-bot.

Every answer the server gives in these tests is validated against the Bot API spec by the ``server``
fixture (see conftest.py); a violation fails the test that produced it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import re
import struct
import time
import warnings
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from coordbot.testing.fake_telegram import EntityParseError, FakeBotAPI, RateLimits, parse_html
from coordbot.testing.fake_telegram.ratelimit import RateLimiter
from coordbot.testing.fake_telegram.server import BOOL, CHAT, FILE, FLOAT, INT, OBJ, STR

from .botapi_spec import SPEC_PATH, BotApiSpec
from .conftest import ALICE, GROUP, TOKEN, ZHANG, SpecRecorder

# PTB 22.2+ warns inside RetryAfter.__init__ itself (retry_after becomes a timedelta in v23); not our code.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def retry_after(exc: RetryAfter) -> float:
    """Seconds to wait; PTB 22.2+ warns that ``retry_after`` will become a timedelta, so accept both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def keyboard(*datas: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d, callback_data=d) for d in datas]])


async def raw_post(server: FakeBotAPI, method: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """POST without PTB (for encodings PTB never uses); returns (http status, parsed body)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}{server.token}/{method}", **kwargs) as resp,
    ):
        return resp.status, await resp.json()


# --- basics


async def test_get_me_and_base_urls(server: FakeBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "coordbot_test_bot", True)
    assert server.base_url == f"http://127.0.0.1:{server.port}/bot"
    assert server.bot_user["id"] == 123456
    # Bot.initialize() called getMe too; both are logged with their status.
    assert [c.status for c in server.calls_to("getMe")] == [200, 200]


async def test_send_message_with_inline_keyboard(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ZHANG, "请确认任务", reply_markup=keyboard("done:1", "later:1"))
    assert msg.chat.id == ZHANG and msg.from_user.id == server.bot_user["id"]
    assert msg.reply_markup is not None
    assert [b.callback_data for b in msg.reply_markup.inline_keyboard[0]] == ["done:1", "later:1"]
    [stored] = server.sent_messages(ZHANG)
    assert stored["message_id"] == msg.message_id
    assert stored["text"] == "请确认任务"
    assert stored["reply_markup"]["inline_keyboard"][0][1]["callback_data"] == "later:1"
    assert server.sent_messages(ALICE) == []


async def test_force_reply_is_recorded_but_not_in_message_object(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ALICE, "What blocked you?", reply_markup=ForceReply(input_field_placeholder="..."))
    assert msg.reply_markup is None  # Telegram's Message only carries inline keyboards
    [stored] = server.sent_messages(ALICE)
    assert stored["reply_markup"] == {"force_reply": True, "input_field_placeholder": "..."}
    reply = server.user_sends(ALICE, "waiting for data", reply_to_message_id=msg.message_id)
    assert reply["message"]["reply_to_message"]["message_id"] == msg.message_id
    assert "reply_markup" not in reply["message"]["reply_to_message"]


async def test_html_entities_use_utf16_offsets(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(
        ZHANG,
        "任务😀 <b>逾期</b> &lt;3&gt; <a href='https://x.test/?a=1&amp;b=2'>链接</a>",
        parse_mode="HTML",
    )
    assert msg.text == "任务😀 逾期 <3> 链接"
    bold, link = msg.entities
    assert (bold.type, bold.offset, bold.length) == ("bold", 5, 2)  # the emoji counts as two UTF-16 units
    assert (link.type, link.offset, link.length, link.url) == ("text_link", 12, 2, "https://x.test/?a=1&b=2")


async def test_replies_with_reply_parameters_and_legacy_id(server: FakeBotAPI, bot: Bot) -> None:
    server.rate_limits.enabled = False
    incoming = server.user_sends(ZHANG, "进度如何？")["message"]
    msg = await bot.send_message(ZHANG, "已完成", reply_parameters=ReplyParameters(incoming["message_id"]))
    assert msg.reply_to_message is not None and msg.reply_to_message.text == "进度如何？"
    # Legacy form field reply_to_message_id, as older clients send it.
    status, body = await raw_post(
        server, "sendMessage", data={"chat_id": str(ZHANG), "text": "ok", "reply_to_message_id": "1"}
    )
    assert status == 200 and body["result"]["reply_to_message"]["message_id"] == 1
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(ZHANG, "x", reply_parameters=ReplyParameters(999))
    ok = await bot.send_message(ZHANG, "y", reply_parameters=ReplyParameters(999, allow_sending_without_reply=True))
    assert ok.reply_to_message is None


async def test_message_thread_id_is_accepted(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(GROUP, "topic", message_thread_id=7)
    assert msg.chat.type == "supergroup" and msg.chat.title == "工作计划协调群"


async def test_edit_message_text(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ZHANG, "待办", reply_markup=keyboard("a"))
    edited = await bot.edit_message_text(
        "<i>已办</i>", chat_id=ZHANG, message_id=msg.message_id, parse_mode="HTML", reply_markup=keyboard("b")
    )
    assert isinstance(edited, type(msg)) and edited.text == "已办" and edited.edit_date is not None
    assert edited.entities[0].type == "italic"
    with pytest.raises(BadRequest, match=r"(?i)^Message is not modified"):
        await bot.edit_message_text(
            "<i>已办</i>",
            chat_id=ZHANG,
            message_id=msg.message_id,
            parse_mode="HTML",
            reply_markup=keyboard("b"),
        )
    # Omitting reply_markup removes the keyboard, as on Telegram.
    await bot.edit_message_text("已办", chat_id=ZHANG, message_id=msg.message_id)
    assert "reply_markup" not in server.sent_messages(ZHANG)[0]
    with pytest.raises(BadRequest, match=r"(?i)Message to edit not found"):
        await bot.edit_message_text("x", chat_id=ZHANG, message_id=4242)
    user_msg = server.user_sends(ZHANG, "hi")["message"]
    with pytest.raises(BadRequest, match=r"(?i)can't be edited"):
        await bot.edit_message_text("x", chat_id=ZHANG, message_id=user_msg["message_id"])
    assert server.calls_to("editMessageText", status=400)[0].params["message_id"] == msg.message_id


async def test_edit_message_reply_markup(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ALICE, "pick", reply_markup=keyboard("a", "b"))
    edited = await bot.edit_message_reply_markup(ALICE, msg.message_id, reply_markup=keyboard("c"))
    assert edited.reply_markup.inline_keyboard[0][0].callback_data == "c"
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_reply_markup(ALICE, msg.message_id, reply_markup=keyboard("c"))
    removed = await bot.edit_message_reply_markup(ALICE, msg.message_id)
    assert removed.reply_markup is None
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_reply_markup(ALICE, msg.message_id)


async def test_delete_message(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ZHANG, "temp")
    assert await bot.delete_message(ZHANG, msg.message_id) is True
    assert server.sent_messages(ZHANG) == []
    assert server.sent_messages(ZHANG, include_deleted=True)[0]["text"] == "temp"
    assert server.deleted_messages == [(ZHANG, msg.message_id)]
    with pytest.raises(BadRequest, match=r"(?i)Message to delete not found"):
        await bot.delete_message(ZHANG, msg.message_id)
    with pytest.raises(BadRequest, match=r"(?i)Message to edit not found"):
        await bot.edit_message_text("x", chat_id=ZHANG, message_id=msg.message_id)


async def test_send_document_bytes_multipart_and_download(server: FakeBotAPI, bot: Bot) -> None:
    content = "周报\n第1周".encode() * 1000
    msg = await bot.send_document(GROUP, content, filename="weekly.docx", caption="<b>周报</b>", parse_mode="HTML")
    assert msg.document.file_name == "weekly.docx" and msg.document.file_size == len(content)
    assert msg.caption == "周报" and msg.caption_entities[0].type == "bold"
    [doc] = server.documents
    assert doc["content"] == content and doc["chat_id"] == GROUP and doc["file_name"] == "weekly.docx"
    assert doc["mime_type"] == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    # Re-sending by file_id reuses the stored file; downloading goes through base_file_url.
    again = await bot.send_document(ZHANG, msg.document.file_id)
    assert again.document.file_unique_id == msg.document.file_unique_id
    tg_file = await bot.get_file(msg.document.file_id)
    assert bytes(await tg_file.download_as_bytearray()) == content
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_document(ZHANG, "no-such-file-id")


async def test_send_photo_reports_sizes(server: FakeBotAPI, bot: Bot) -> None:
    image = png(1000, 500)
    msg = await bot.send_photo(ALICE, image, caption="燃尽图")
    sizes = [(p.width, p.height) for p in msg.photo]
    assert sizes == [(90, 45), (320, 160), (800, 400), (1000, 500)]
    assert msg.photo[-1].file_size == len(image)
    [rec] = server.photos
    assert rec["content"] == image and (rec["width"], rec["height"]) == (1000, 500) and rec["caption"] == "燃尽图"
    resent = await bot.send_photo(ZHANG, msg.photo[-1].file_id)
    assert (resent.photo[-1].width, resent.photo[-1].height) == (1000, 500)
    with pytest.raises(BadRequest, match=r"(?i)Image_process_failed"):
        await bot.send_photo(ALICE, b"not an image", filename="x.png")
    with pytest.raises(BadRequest, match=r"(?i)can't use file of type Photo as Document"):
        await bot.send_document(ALICE, msg.photo[-1].file_id)


async def test_my_commands(server: FakeBotAPI, bot: Bot) -> None:
    assert await bot.get_my_commands() == ()
    zh = [BotCommand("status", "查看任务状态"), BotCommand("help", "帮助")]
    assert await bot.set_my_commands(zh, language_code="zh-hans") is True
    assert await bot.set_my_commands([BotCommand("status", "Task status")]) is True
    assert [c.description for c in await bot.get_my_commands(language_code="zh-hans")] == [
        "查看任务状态",
        "帮助",
    ]
    assert [c.description for c in await bot.get_my_commands()] == ["Task status"]
    scope = BotCommandScopeChat(GROUP)
    await bot.set_my_commands([BotCommand("report", "周报")], scope=scope)
    assert [c.command for c in await bot.get_my_commands(scope=scope)] == ["report"]
    assert await bot.delete_my_commands(scope=scope) is True
    assert await bot.get_my_commands(scope=scope) == ()
    with pytest.raises(BadRequest, match=r"(?i)Bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])


async def test_get_chat(server: FakeBotAPI, bot: Bot) -> None:
    private = await bot.get_chat(ZHANG)
    assert (private.type, private.first_name, private.username) == ("private", "张三", "zhangsan")
    group = await bot.get_chat(GROUP)
    assert (group.type, group.title) == ("supergroup", "工作计划协调群")
    with pytest.raises(BadRequest, match=r"(?i)Chat not found"):
        await bot.get_chat(55555)


async def test_close_and_log_out_are_harmless(server: FakeBotAPI, bot: Bot) -> None:
    assert await bot.close() is True
    assert await bot.log_out() is True
    assert (await bot.send_message(ZHANG, "still here")).text == "still here"


async def test_callback_query_round_trip(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ZHANG, "完成了吗？", reply_markup=keyboard("yes:7", "no:7"))
    pressed = server.user_presses(ZHANG, msg.message_id, "yes:7")
    [update] = await bot.get_updates()
    assert update.update_id == pressed["update_id"]
    query = update.callback_query
    assert query.data == "yes:7" and query.from_user.id == ZHANG and query.message.message_id == msg.message_id
    assert await bot.answer_callback_query(query.id, text="已记录") is True
    assert server.callback_answers[0]["text"] == "已记录" and server.callback_answers[0]["data"] == "yes:7"
    with pytest.raises(BadRequest, match=r"(?i)Query is too old"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(ValueError, match="no button"):
        server.user_presses(ZHANG, msg.message_id, "forged")
    assert server.user_presses(ZHANG, msg.message_id, "forged", strict=False)["callback_query"]["data"] == "forged"


# --- inbound


async def test_user_sends_command_entities_in_group(server: FakeBotAPI, bot: Bot) -> None:
    update = server.user_sends(ALICE, "/status@coordbot_test_bot 3", chat_id=GROUP)
    msg = update["message"]
    assert msg["chat"]["id"] == GROUP and msg["from"]["id"] == ALICE
    assert msg["entities"] == [{"type": "bot_command", "offset": 0, "length": 25}]
    [got] = await bot.get_updates()
    assert got.message.text.startswith("/status") and got.message.from_user.language_code == "en"
    plain = server.user_sends(ZHANG, "没有命令")["message"]
    assert "entities" not in plain


async def test_user_edits_produces_edited_message(server: FakeBotAPI, bot: Bot) -> None:
    sent = server.user_sends(ZHANG, "完成 50%")["message"]
    edited = server.user_edits(ZHANG, sent["message_id"], "完成 80%")
    assert edited["edited_message"]["text"] == "完成 80%" and "edit_date" in edited["edited_message"]
    updates = await bot.get_updates()
    assert [u.edited_message.text for u in updates if u.edited_message] == ["完成 80%"]
    with pytest.raises(ValueError):
        server.user_edits(ALICE, sent["message_id"], "not mine", chat_id=ZHANG)


async def test_inject_raw_duplicates_are_delivered_twice(server: FakeBotAPI, bot: Bot) -> None:
    original = server.user_sends(ZHANG, "/start")
    server.inject_raw(original)
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [original["update_id"]] * 2
    await bot.get_updates(offset=original["update_id"] + 1)
    assert server.pending_updates() == []
    assert server.user_sends(ZHANG, "next")["update_id"] == original["update_id"] + 1


# --- getUpdates


async def test_get_updates_offset_limit_and_negative_offset(server: FakeBotAPI, bot: Bot) -> None:
    ids = [server.user_sends(ZHANG, f"m{i}")["update_id"] for i in range(5)]
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=ids[2])] == ids[2:]  # confirms ids[0:2]
    assert [u["update_id"] for u in server.pending_updates()] == ids[2:]
    assert [u.update_id for u in await bot.get_updates(offset=-1)] == ids[-1:]
    assert [u["update_id"] for u in server.pending_updates()] == ids[-1:]


async def test_get_updates_long_poll_returns_early(server: FakeBotAPI, bot: Bot) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        server.user_sends(ALICE, "hello")

    task = asyncio.create_task(later())
    start = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    assert 0.15 < time.monotonic() - start < 2.0
    assert updates[0].message.text == "hello"
    await task
    start = time.monotonic()
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=1) == ()
    assert 0.9 < time.monotonic() - start < 2.5


async def test_second_poller_terminates_first_with_conflict(server: FakeBotAPI, bot: Bot) -> None:
    async with Bot(server.token, base_url=server.base_url) as other:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await server.wait_for(lambda: bool(server._pollers))
        assert await other.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
            await first


async def test_allowed_updates_filters_new_updates(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ZHANG, "q", reply_markup=keyboard("x"))
    await bot.get_updates(allowed_updates=["callback_query"])
    server.user_sends(ZHANG, "ignored text")
    server.user_presses(ZHANG, msg.message_id, "x")
    [update] = await bot.get_updates()
    assert update.callback_query is not None
    await bot.get_updates(offset=update.update_id + 1, allowed_updates=[])  # back to the default set
    server.user_sends(ZHANG, "seen")
    assert [u.message.text for u in await bot.get_updates()] == ["seen"]


# --- webhook


class WebhookReceiver:
    """A tiny aiohttp app standing in for the bot's webhook endpoint."""

    def __init__(self, secret: str, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [])  # answers to give before falling back to 200
        self.received: list[dict[str, Any]] = []
        self.bad_secret = 0
        self.on_update: Any = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != self.secret:
            self.bad_secret += 1
            return web.Response(status=403)
        assert request.content_type == "application/json"
        data = await request.json()
        self.received.append(data)
        if self.statuses:
            return web.Response(status=self.statuses.pop(0))
        if self.on_update is not None:
            await self.on_update(data)
        return web.Response(status=200)

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_webhook_delivery_secret_and_retries(server: FakeBotAPI, bot: Bot, spec: BotApiSpec) -> None:
    server.user_sends(ZHANG, "queued before webhook")
    async with WebhookReceiver("s3cr3t_token-1", statuses=[500, 502]) as hook:
        assert await bot.set_webhook(hook.url, secret_token="s3cr3t_token-1", drop_pending_updates=True)
        info = await bot.get_webhook_info()
        assert info.url == hook.url and info.pending_update_count == 0
        update = server.user_sends(ZHANG, "/start")
        await server.wait_until_consumed()
        # Two failures, then success: three POSTs of the same update, as Telegram retries.
        assert [d.status for d in server.webhook_deliveries] == [500, 502, 200]
        assert [u["update_id"] for u in hook.received] == [update["update_id"]] * 3
        for body in hook.received:
            spec.check(body, "Update")
        info = await bot.get_webhook_info()
        assert info.last_error_message == "Wrong response from the webhook: 502 Bad Gateway"
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()
        assert hook.bad_secret == 0
        assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).url == ""
    server.user_sends(ZHANG, "back to polling")
    assert [u.message.text for u in await bot.get_updates()] == ["back to polling"]


async def test_webhook_gives_up_after_retries_and_on_refused_connection(server: FakeBotAPI, bot: Bot) -> None:
    server.webhook_retry_delays = (0.01, 0.01)
    async with WebhookReceiver("abc", statuses=[500, 500, 500]) as hook:
        await bot.set_webhook(hook.url, secret_token="abc")
        first = server.user_sends(ZHANG, "dropped")
        second = server.user_sends(ZHANG, "delivered")
        await server.wait_until_consumed()
        assert [u["update_id"] for u in hook.received] == [first["update_id"]] * 3 + [second["update_id"]]
    # The receiver is gone now: connection refused, recorded as an error without status.
    server.user_sends(ZHANG, "nobody listens")
    await server.wait_until_consumed()
    assert server.webhook_deliveries[-1].status is None
    assert (await bot.get_webhook_info()).last_error_message == "Connection refused"


async def test_set_webhook_rejects_bad_secret(server: FakeBotAPI, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)secret token"):
        await bot.set_webhook("https://example.test/hook", secret_token="has space")


# --- Application


async def test_application_polling_mode(server: FakeBotAPI) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            f"你好，{update.effective_user.first_name}", reply_markup=keyboard("ack")
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer("👍")
        await update.callback_query.edit_message_text("已确认")

    app = ApplicationBuilder().token(server.token).base_url(server.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        await app.updater.start_polling(timeout=2)
        server.user_sends(ZHANG, "/start")
        [reply] = await server.wait_for_messages(ZHANG, count=1)
        assert reply["text"] == "你好，张三"
        server.user_presses(ZHANG, reply["message_id"], "ack")
        await server.wait_for(lambda: server.sent_messages(ZHANG)[0]["text"] == "已确认")
        assert server.callback_answers[0]["text"] == "👍"
        await app.updater.stop()
        await app.stop()
    # PTB removed any webhook before polling and confirmed the updates it handled when stopping.
    assert server.calls_to("deleteWebhook")
    assert server.pending_updates() == []


async def test_application_webhook_mode(server: FakeBotAPI) -> None:
    app = ApplicationBuilder().token(server.token).base_url(server.base_url).updater(None).build()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(f"收到：{update.effective_message.text}")

    app.add_handler(MessageHandler(filters.TEXT, echo))

    async def enqueue(data: dict[str, Any]) -> None:
        await app.update_queue.put(Update.de_json(data, app.bot))

    async with app, WebhookReceiver("hook-secret") as hook:
        hook.on_update = enqueue
        await app.start()
        await app.bot.set_webhook(hook.url, secret_token="hook-secret")
        server.user_sends(ALICE, "progress 60%")
        [reply] = await server.wait_for_messages(ALICE, count=1)
        assert reply["text"] == "收到：progress 60%"
        assert reply["chat"]["id"] == ALICE
        await app.stop()
    assert hook.bad_secret == 0 and len(hook.received) == 1


# --- errors


async def test_fail_next_retry_after(server: FakeBotAPI, bot: Bot) -> None:
    server.fail_next("sendMessage", retry_after=5)
    with pytest.raises(RetryAfter) as exc_info:
        await bot.send_message(ZHANG, "x")
    assert retry_after(exc_info.value) == 5
    call = server.calls_to("sendMessage")[-1]
    assert call.status == 429 and call.params["chat_id"] == ZHANG
    assert (await bot.send_message(ZHANG, "y")).text == "y"  # only the next call failed


async def test_error_body_shape_is_telegrams(server: FakeBotAPI) -> None:
    server.fail_next("sendMessage", retry_after=5)
    status, body = await raw_post(server, "sendMessage", json={"chat_id": ZHANG, "text": "x"})
    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5},
    }
    status, body = await raw_post(server, "sendMessage", json={"chat_id": 777, "text": "x"})
    assert (status, body) == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
    )


async def test_fail_next_filters_by_chat_times_and_wildcard(server: FakeBotAPI, bot: Bot) -> None:
    server.fail_next("sendMessage", status=502, chat_id=ALICE, times=2)
    await bot.send_message(ZHANG, "unaffected")
    for _ in range(2):
        with pytest.raises(NetworkError, match=r"(?i)Bad Gateway"):
            await bot.send_message(ALICE, "x")
    server.rate_limits.enabled = False
    await bot.send_message(ALICE, "now fine")
    server.fail_next("*", status=500)
    with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
        await bot.get_chat(ZHANG)


async def test_blocked_user_gets_forbidden(server: FakeBotAPI, bot: Bot) -> None:
    server.block(ZHANG)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(ZHANG, "x")
    server.block(GROUP)
    with pytest.raises(Forbidden, match=r"(?i)kicked from the supergroup chat"):
        await bot.send_document(GROUP, b"x", filename="a.txt")
    server.user_sends(ZHANG, "/start")  # writing again unblocks, as the user had to press Restart
    assert (await bot.send_message(ZHANG, "welcome back")).text == "welcome back"


async def test_user_who_never_started_the_bot(server: FakeBotAPI, bot: Bot) -> None:
    server.add_user(3003, "王五", started=False)
    with pytest.raises(Forbidden, match=r"(?i)can't initiate conversation"):
        await bot.send_message(3003, "hi")
    server.user_sends(3003, "/start")
    assert (await bot.send_message(3003, "hi")).chat.id == 3003


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chat_id": 424242, "text": "x"}, "Chat not found"),
        ({"chat_id": ZHANG, "text": "长" * 4097}, "Message is too long"),
        ({"chat_id": ZHANG, "text": "   "}, "Message text is empty"),
        ({"chat_id": ZHANG, "text": "x", "reply_markup": keyboard("d" * 65)}, "Button_data_invalid"),
        (
            {"chat_id": ZHANG, "text": "x", "reply_markup": keyboard("数据" * 11)},
            "Button_data_invalid",
        ),  # 66 bytes
        (
            {"chat_id": ZHANG, "text": "<b>unclosed", "parse_mode": "HTML"},
            "can't parse entities: Can't find end",
        ),
        ({"chat_id": ZHANG, "text": "<br>", "parse_mode": "HTML"}, 'Unsupported start tag "br"'),
        ({"chat_id": ZHANG, "text": "1 < 2", "parse_mode": "HTML"}, "Can't parse entities"),
        ({"chat_id": ZHANG, "text": "R&D", "parse_mode": "HTML"}, 'Unescaped "&"'),
        ({"chat_id": ZHANG, "text": "<b><i>x</b></i>", "parse_mode": "HTML"}, "Unmatched end tag"),
        ({"chat_id": ZHANG, "text": "x", "parse_mode": "Klingon"}, "Unsupported parse_mode"),
    ],
)
async def test_bad_requests(server: FakeBotAPI, bot: Bot, kwargs: dict[str, Any], match: str) -> None:
    bodies: list[dict[str, Any]] = []
    server.response_hooks.append(lambda method, params, status, body: bodies.append(body))
    with pytest.raises(BadRequest, match=f"(?i){match}"):
        await bot.send_message(**kwargs)
    assert server.sent_messages() == []
    assert server.calls_to("sendMessage", status=400)
    # On the wire the description keeps Telegram's prefix and case (PTB strips and re-capitalises it).
    assert bodies[-1]["description"].startswith("Bad Request: ")
    assert re.search(match, bodies[-1]["description"], re.IGNORECASE)


async def test_long_text_at_limit_after_parsing_is_fine(server: FakeBotAPI, bot: Bot) -> None:
    msg = await bot.send_message(ZHANG, "<b>" + "长" * 4096 + "</b>", parse_mode="HTML")
    assert len(msg.text) == 4096


async def test_timeout_still_sends_the_message(server: FakeBotAPI) -> None:
    request = HTTPXRequest(read_timeout=0.2)
    async with Bot(server.token, base_url=server.base_url, request=request) as slow_bot:
        server.delay_next("sendMessage", 0.6)
        start = time.monotonic()
        with pytest.raises(TimedOut):
            await slow_bot.send_message(ZHANG, "slow")
        assert time.monotonic() - start < 0.5
        # Like Telegram, the server still handles the request the client gave up on.
        [msg] = await server.wait_for_messages(ZHANG, count=1)
        assert msg["text"] == "slow"


async def test_wrong_token_and_unknown_method(server: FakeBotAPI, bot: Bot) -> None:
    for token in ("123456:wrong", "999:nope"):
        intruder = Bot(token, base_url=server.base_url)
        try:
            with pytest.raises(InvalidToken, match="was rejected by the server"):
                await intruder.initialize()
        finally:
            await intruder.shutdown()
        assert server.calls[-1][1:] == ("getMe", {}, 401)
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": ZHANG})
    status, body = await raw_post(server, "sendTelepathy")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})


async def test_request_encodings(server: FakeBotAPI) -> None:
    # JSON body with typed values, form fields with JSON-encoded markup, GET with a query string.
    status, body = await raw_post(
        server,
        "sendMessage",
        json={"chat_id": ZHANG, "text": "json", "reply_markup": keyboard("a").to_dict()},
    )
    assert status == 200 and body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"
    status, body = await raw_post(
        server,
        "sendMessage",
        data={"chat_id": str(ALICE), "text": "123", "reply_markup": json.dumps(keyboard("b").to_dict())},
    )
    assert status == 200 and body["result"]["text"] == "123"  # a numeric text stays a String
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.base_url}{server.token}/getMe") as resp:
            assert (await resp.json())["result"]["username"] == "coordbot_test_bot"
        async with session.post(
            f"{server.base_url}{server.token}/sendMessage",
            data=b"{broken",
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
    status, body = await raw_post(
        server, "sendMessage", data={"chat_id": str(ZHANG), "text": "x", "reply_markup": "{not json"}
    )
    assert status == 400 and "can't parse" in body["description"]
    status, body = await raw_post(server, "getUpdates", json={"limit": "many"})
    assert status == 400


async def test_non_strict_chats_are_created_on_first_use() -> None:
    server = FakeBotAPI(strict_chats=False)
    async with server, Bot(server.token, base_url=server.base_url) as bot:
        assert (await bot.send_message(5555, "hi")).chat.type == "private"
        assert (await bot.send_message(-77, "hi")).chat.type == "group"


# --- rate limits


async def test_two_quick_sends_to_one_chat(server: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(ZHANG, "1")
    with pytest.raises(RetryAfter) as exc_info:
        await bot.send_message(ZHANG, "2")
    assert retry_after(exc_info.value) == 1
    await bot.send_message(ALICE, "other chat is fine")
    await asyncio.sleep(1.0)  # exactly the interval: allowed thanks to the jitter slack
    await bot.send_message(ZHANG, "3")
    assert [c.status for c in server.calls_to("sendMessage")] == [200, 429, 200, 200]


async def test_thirty_one_chats_in_one_second(server: FakeBotAPI, bot: Bot) -> None:
    for uid in range(2000, 2031):
        server.add_user(uid, f"U{uid}")
    results = []
    start = time.monotonic()
    for uid in range(2000, 2031):
        try:
            await bot.send_message(uid, "广播")
            results.append(200)
        except RetryAfter as exc:
            results.append(retry_after(exc))
    assert time.monotonic() - start < 0.8
    assert results == [200] * 30 + [1]
    assert len(server.calls_to("sendMessage", status=429)) == 1


async def test_group_limit_twenty_per_minute(server: FakeBotAPI, bot: Bot) -> None:
    server.rate_limits.per_chat_interval = 0.0  # isolate the per-group rule
    for i in range(20):
        await bot.send_message(GROUP, f"#{i}")
    with pytest.raises(RetryAfter) as exc_info:
        await bot.send_message(GROUP, "#21")
    assert 55 <= retry_after(exc_info.value) <= 60
    await bot.send_message(ZHANG, "private chats are not limited per minute")


async def test_rate_limits_can_be_disabled(server: FakeBotAPI, bot: Bot) -> None:
    server.rate_limits.enabled = False
    for i in range(5):
        await bot.send_message(ZHANG, str(i))
    assert len(server.sent_messages(ZHANG)) == 5


def test_rate_limiter_windows_are_sliding() -> None:
    limiter = RateLimiter(RateLimits())
    # Per chat: a burst is refused, the slack only forgives jitter.
    assert limiter.check(1, False, 100.0) is None
    assert limiter.check(1, False, 100.5) == 1
    assert limiter.check(1, False, 100.96) is None
    # Global: 30 in any window of one second.
    limiter = RateLimiter(RateLimits())
    for i in range(30):
        assert limiter.check(1000 + i, False, 10.0 + i * 0.01) is None
    assert limiter.check(5000, False, 10.5) == 1
    assert limiter.check(5000, False, 10.951) is None  # the first send (10.0) left the window
    # Group: 20 per sliding minute, retry_after counted from the oldest send in the window.
    limiter = RateLimiter(RateLimits())
    for i in range(20):
        assert limiter.check(-5, True, 1000.0 + i * 2) is None
    assert limiter.check(-5, True, 1040.0) == 20
    assert limiter.check(-5, True, 1060.0) is None


async def test_flood_of_a_thousand_messages(server: FakeBotAPI, spec: BotApiSpec) -> None:
    server.rate_limits.enabled = False
    for uid in range(10_000, 10_100):
        server.add_user(uid, "U")
    # httpx gets slower with more parallel connections; 4 is PTB's sweet spot here.
    request = HTTPXRequest(connection_pool_size=4)
    async with Bot(server.token, base_url=server.base_url, request=request) as bot:
        start = time.monotonic()
        sem = asyncio.Semaphore(4)

        async def send(i: int) -> None:
            async with sem:
                await bot.send_message(10_000 + i % 100, f"通知 {i}")

        await asyncio.gather(*(send(i) for i in range(1000)))
        elapsed = time.monotonic() - start
    assert len(server.sent_messages()) == 1000
    assert len(server.sent_messages(10_007)) == 10
    assert elapsed < 15, elapsed


async def test_flood_with_limits_sees_429s_and_retry_works(server: FakeBotAPI, bot: Bot) -> None:
    for uid in range(20_000, 20_040):
        server.add_user(uid, "U")

    async def send_with_retry(uid: int) -> None:
        while True:
            try:
                await bot.send_message(uid, "x")
                return
            except RetryAfter as exc:
                await asyncio.sleep(retry_after(exc))

    await asyncio.gather(*(send_with_retry(uid) for uid in range(20_000, 20_040)))
    ok = server.calls_to("sendMessage", status=200)
    assert len(ok) == 40 and server.calls_to("sendMessage", status=429)
    # No accepted window of one second (minus slack) ever held more than 30 sends.
    times = [c.t for c in ok]
    assert all(times[i + 30] - times[i] > 0.95 for i in range(len(times) - 30))


# --- HTML parser


def test_parse_html_nested_pre_language_and_spoilers() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre>'
        '<span class="tg-spoiler">秘密</span><blockquote expandable>q</blockquote>'
    )
    assert text == "x = 1秘密q"
    assert entities == [
        {"offset": 0, "length": 5, "type": "pre", "language": "python"},
        {"offset": 5, "length": 2, "type": "spoiler"},
        {"offset": 7, "length": 1, "type": "expandable_blockquote"},
    ]
    assert parse_html("&#x1F600;&#65;&quot;") == ('😀A"', [])
    assert parse_html("R&D", strict_ampersand=False) == ("R&D", [])
    with pytest.raises(EntityParseError, match='Tag "span" must have class "tg-spoiler"'):
        parse_html("<span>x</span>")
    with pytest.raises(EntityParseError, match="Unexpected end tag at byte offset 3"):
        parse_html("abc</b>")
    with pytest.raises(EntityParseError, match="at byte offset 7"):  # UTF-8 offset: 任务 is 6 bytes
        parse_html("任务 <x>")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_escaped_text_always_parses_back(text: str) -> None:
    plain, entities = parse_html(html.escape(text, quote=False))
    assert plain == text and entities == []


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.sampled_from(["b", "i", "u", "s", "code", "tg-spoiler"]),
)
def test_wrapped_text_yields_one_entity_spanning_it(text: str, tag: str) -> None:
    plain, entities = parse_html(f"x<{tag}>{html.escape(text, quote=False)}</{tag}>")
    assert plain == "x" + text
    utf16 = len(text.encode("utf-16-le")) // 2
    expected = [] if utf16 == 0 else [{"offset": 1, "length": utf16, "type": entities[0]["type"]}]
    assert entities == expected


# --- spec conformance


def test_spec_is_loaded_from_the_repository(spec: BotApiSpec) -> None:
    assert SPEC_PATH.is_relative_to(SPEC_PATH.parents[3]) and SPEC_PATH.parts[-4:-1] == (
        "tests",
        "data",
        "telegram-bot-api",
    )
    assert spec.version == "Bot API 10.1"
    assert {"Message", "Update", "User"} <= set(spec.types)


_KIND_TO_SPEC = {INT: {"Integer"}, FLOAT: {"Float"}, STR: {"String"}, BOOL: {"Boolean"}}


def test_served_methods_and_params_exist_in_spec(spec: BotApiSpec) -> None:
    served = FakeBotAPI.served_methods()
    assert set(served) >= {
        "getMe",
        "getUpdates",
        "setWebhook",
        "deleteWebhook",
        "getWebhookInfo",
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "answerCallbackQuery",
        "sendDocument",
        "sendPhoto",
        "deleteMessage",
        "setMyCommands",
        "getMyCommands",
        "getChat",
        "close",
        "logOut",
    }
    for method, params in served.items():
        assert spec.has_method(method), method
        spec_params = spec.method_params(method)
        for name, kind in params.items():
            assert name in spec_params, f"{method}.{name} is not a Bot API parameter"
            types = set(spec_params[name]["types"])
            if kind in _KIND_TO_SPEC:
                assert _KIND_TO_SPEC[kind] <= types, (method, name, types)
            elif kind == CHAT:
                assert {"Integer", "String"} <= types, (method, name, types)
            elif kind == FILE:
                assert "InputFile" in types, (method, name, types)
            else:
                assert kind == OBJ and types.isdisjoint({"Integer", "String", "Boolean", "Float"}), (
                    method,
                    name,
                )
    # Legacy parameters are accepted for old clients; they must really be gone from the documentation.
    for method, params in FakeBotAPI.legacy_params().items():
        assert set(params).isdisjoint(spec.method_params(method)), method


async def test_every_served_method_answers_with_spec_shapes(
    server: FakeBotAPI, bot: Bot, recorder: SpecRecorder
) -> None:
    server.rate_limits.enabled = False
    msg = await bot.send_message(ZHANG, "<b>x</b>", parse_mode="HTML", reply_markup=keyboard("a"))
    await bot.edit_message_text("y", chat_id=ZHANG, message_id=msg.message_id, reply_markup=keyboard("b"))
    await bot.edit_message_reply_markup(ZHANG, msg.message_id, reply_markup=keyboard("c"))
    server.user_sends(ZHANG, "/start", reply_to_message_id=msg.message_id)
    server.user_presses(ZHANG, msg.message_id, "c")
    updates = await bot.get_updates()
    await bot.answer_callback_query(updates[-1].callback_query.id)
    doc = await bot.send_document(GROUP, b"abc", filename="a.txt", reply_markup=keyboard("d"))
    await bot.send_photo(ALICE, png(64, 48), caption="c")
    await bot.get_file(doc.document.file_id)
    await bot.delete_message(GROUP, doc.message_id)
    await bot.set_my_commands([BotCommand("status", "状态")])
    await bot.get_my_commands()
    await bot.delete_my_commands()
    await bot.get_chat(ZHANG)
    await bot.get_chat(GROUP)
    await bot.set_webhook("https://example.test/hook", allowed_updates=["message"], max_connections=5)
    await bot.get_webhook_info()
    await bot.delete_webhook(drop_pending_updates=True)
    await bot.get_webhook_info()
    await bot.close()
    await bot.log_out()
    assert recorder.validated == set(FakeBotAPI.served_methods())
    assert recorder.violations == []


async def test_inbound_updates_conform(server: FakeBotAPI, spec: BotApiSpec, bot: Bot) -> None:
    msg = await bot.send_message(GROUP, "q", reply_markup=keyboard("a"))
    spec.check(server.user_sends(ALICE, "/report@coordbot_test_bot", chat_id=GROUP), "Update")
    spec.check(server.user_presses(ALICE, msg.message_id, "a", chat_id=GROUP), "Update")
    sent = server.user_sends(ZHANG, "😀 hi /help")
    spec.check(sent, "Update")
    assert sent["message"]["entities"] == [{"type": "bot_command", "offset": 6, "length": 5}]
    spec.check(server.user_edits(ZHANG, sent["message"]["message_id"], "bye"), "Update")
    spec.check(server.bot_user, "User")
    for stored in server.sent_messages():
        spec.check(stored, "Message")


def test_validator_detects_violations(spec: BotApiSpec) -> None:
    user = {"id": 1, "is_bot": False, "first_name": "A"}
    chat = {"id": 1, "type": "private"}
    good = {
        "message_id": 1,
        "date": 0,
        "chat": chat,
        "from": user,
        "reply_markup": {"inline_keyboard": [[{"text": "t", "callback_data": "d"}]]},
    }
    assert spec.validate(good, "Message") == []
    assert (
        any("missing required field 'date'" in e for e in spec.validate({**good, "date": None} | {}, "Message"))
        is False
    )  # None is a wrong type, not a missing field
    missing = {k: v for k, v in good.items() if k != "date"}
    assert spec.validate(missing, "Message") == ["$: Message is missing required field 'date'"]
    assert spec.validate({**good, "message_id": "1"}, "Message") == ["$.message_id: expected Integer, got '1'"]
    assert spec.validate({**good, "date": True}, "Message")  # bool is not an Integer
    assert spec.validate({**good, "texts": "typo"}, "Message") == ["$: Message has no field 'texts'"]
    bad_nested = {**good, "reply_markup": {"inline_keyboard": [[{"callback_data": "d"}]]}}
    assert spec.validate(bad_nested, "Message") == [
        "$.reply_markup.inline_keyboard[0][0]: InlineKeyboardButton is missing required field 'text'"
    ]
    assert spec.validate({"inline_keyboard": [{"text": "t"}]}, "InlineKeyboardMarkup")  # not an array of arrays
    assert spec.validate(1.5, "Float") == [] and spec.validate(2, "Float") == []
    assert spec.validate(True, ["Message", "Boolean"]) == []
    assert spec.validate("x", ["Message", "Boolean"])
    # Abstract types accept any subtype and nothing else.
    inaccessible = {"chat": chat, "message_id": 3, "date": 0}
    assert spec.validate(inaccessible, "MaybeInaccessibleMessage") == []
    assert spec.validate({"chat": chat}, "MaybeInaccessibleMessage")
    assert spec.validate_response("getMe", {"ok": True, "result": user}) == []
    assert spec.validate_response("getMe", {"ok": True, "result": {"id": 1}})
    assert spec.validate_response(
        "sendMessage",
        {"ok": False, "error_code": 429, "description": "x", "parameters": {"retry_after": "5"}},
    )
    with pytest.raises(AssertionError, match="missing required field"):
        spec.check(missing, "Message")


async def test_server_records_call_log(server: FakeBotAPI, bot: Bot) -> None:
    before = time.monotonic()
    await bot.send_message(ZHANG, "a")
    with pytest.raises(RetryAfter):
        await bot.send_message(ZHANG, "b")
    calls = server.calls_to("sendMessage")
    assert [(c.method, c.params["text"], c.status) for c in calls] == [
        ("sendMessage", "a", 200),
        ("sendMessage", "b", 429),
    ]
    assert before <= calls[0].t <= calls[1].t <= time.monotonic()
    t, method, params, status = calls[1]  # a plain 4-tuple too
    assert (t, method, params["chat_id"], status) == (calls[1].t, "sendMessage", ZHANG, 429)


@pytest.fixture
async def started_server() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN) as srv:
        yield srv


async def test_stop_releases_pending_long_poll(started_server: FakeBotAPI) -> None:
    async with Bot(started_server.token, base_url=started_server.base_url) as bot:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await started_server.wait_for(lambda: bool(started_server._pollers))
        start = time.monotonic()
        await started_server.stop()
        assert await poll == ()
        assert time.monotonic() - start < 2
