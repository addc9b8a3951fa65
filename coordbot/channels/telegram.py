"""The Telegram channel: python-telegram-bot (v22) inside coordbot's own asyncio application.

``TelegramChannel`` sends (reminders, replies) and maps Telegram's errors onto the channel interface:
429 and network trouble are transient, "blocked" and "chat not found" permanent. ``TelegramFrontend``
receives updates by long polling or by webhook (served by coordbot's aiohttp app), turns them into
:class:`Inbound` messages for the ``handle`` callable it is given and sends back its :class:`Reply`.
A pure adapter: it knows the Bot API and coordbot's channel interface, nothing of what handles a message.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from aiohttp import web
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    filters,
)

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ChannelLimits,
    ContentRejectedError,
    Delivery,
    Inbound,
    InboundHandler,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
    decode_button,
    encode_button,
    send_reply,
)
from coordbot.channels.ratelimit import TelegramRateLimiter
from coordbot.core.config import Settings

log = logging.getLogger("coordbot.channels.telegram")

MAX_TEXT = 4096
MAX_CALLBACK_BYTES = 64
WEBHOOK_PATH = "/telegram/webhook"
WEBHOOK_MAX_BYTES = 1 << 20  # an update is a few KB; anything near a megabyte is not from Telegram
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
LIMITS = ChannelLimits(max_text=MAX_TEXT, buttons=True, files=True, max_button_data=MAX_CALLBACK_BYTES)
# A 400 that says the address cannot receive: the contact is unreachable. Any other 400 is about the message.
_ADDRESS_PROBLEMS = re.compile(r"chat not found|user not found|peer_id_invalid|bot was kicked|not enough rights", re.I)
TAG = re.compile(r"<(/?)([a-zA-Z]+)(?:\s[^>]*)?>")


# ---- outbound --------------------------------------------------------------------------------------


def callback_data(button: Button) -> str:
    data = encode_button(button)
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data {data!r} is over Telegram's {MAX_CALLBACK_BYTES} bytes")
    return data


def _visible_len(fragment: str) -> int:
    return len(html.unescape(TAG.sub("", fragment)))


def split_html(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split Telegram HTML into messages of at most ``limit`` visible characters.

    Cuts at line ends where it can, never inside a tag or an entity; a tag open at a cut is closed at the
    end of one part and opened again at the start of the next, so every part parses on its own.
    """
    if _visible_len(text) <= limit:
        return [text]
    tokens = re.split(r"(<[^>]+>|&[#a-zA-Z0-9]+;|\n)", text)
    parts: list[str] = []
    current: list[str] = []
    size = 0
    open_tags: list[tuple[str, str]] = []  # (name, opening tag)

    def flush() -> None:
        nonlocal current, size
        body = "".join(current).strip("\n")
        if body:
            parts.append(body + "".join(f"</{name}>" for name, _ in reversed(open_tags)))
        current = [opening for _, opening in open_tags]
        size = 0

    for tok in tokens:
        if not tok:
            continue
        m = TAG.fullmatch(tok)
        if m:
            if m.group(1):
                if open_tags and open_tags[-1][0] == m.group(2).lower():
                    open_tags.pop()
            else:
                open_tags.append((m.group(2).lower(), tok))
            current.append(tok)
            continue
        visible = 1 if tok.startswith("&") else len(tok)
        if size + visible > limit:
            if tok != "\n" and not tok.startswith("&") and (size < limit // 2 or visible > limit):
                # a long run of text (or one that fits no part whole): fill this part, continue in the next
                room = limit - size
                current.append(tok[:room])
                size += room
                rest = tok[room:]
                while rest:
                    flush()
                    current.append(rest[:limit])
                    size = len(rest[:limit])
                    rest = rest[limit:]
                continue
            flush()
            if tok == "\n":
                continue
        current.append(tok)
        size += visible
    flush()
    return parts


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds to wait. PTB 22 keeps a timedelta but its public ``retry_after`` is still an int (a timedelta
    only with PTB_TIMEDELTA set), so calling ``.total_seconds()`` on it fails by default."""
    value: Any = getattr(exc, "_retry_after", None)
    if value is None:
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _markup(message: Outbound) -> InlineKeyboardMarkup | ForceReply | None:
    if message.buttons:
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(b.label, callback_data=callback_data(b)) for b in row] for row in message.buttons]
        )
    if message.ask_reply:
        return ForceReply(selective=True)
    return None


class TelegramChannel:
    """Sends through one PTB ``Bot`` (its rate limiter keeps Telegram's limits)."""

    name = "telegram"
    limits = LIMITS

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, message: Outbound) -> Delivery:
        try:
            return await self._send(message)
        except RetryAfter as exc:
            raise TransientChannelError(f"Telegram: {exc.message}", retry_after=retry_after_seconds(exc)) from exc
        except InvalidToken as exc:
            raise ChannelAuthError(f"Telegram: {exc.message}") from exc
        except Forbidden as exc:
            raise PermanentChannelError(f"Telegram: {exc.message}") from exc
        except BadRequest as exc:
            # Sending the same again cannot succeed; whether the chat or the message is at fault decides
            # whether the contact is marked unreachable.
            if _ADDRESS_PROBLEMS.search(exc.message):
                raise PermanentChannelError(f"Telegram: {exc.message}") from exc
            raise ContentRejectedError(f"Telegram: {exc.message}") from exc
        except (TimedOut, NetworkError) as exc:
            raise TransientChannelError(f"Telegram: {exc.message}") from exc
        except TelegramError as exc:
            raise TransientChannelError(f"Telegram: {exc.message}") from exc

    async def _send(self, message: Outbound) -> Delivery:
        chat_id = int(message.address) if message.address.lstrip("-").isdigit() else message.address
        parts = split_html(message.text) if message.text else []
        last: Message | None = None
        for i, part in enumerate(parts):
            last = await self.bot.send_message(
                chat_id=chat_id,
                text=part,
                parse_mode="HTML",
                reply_markup=_markup(message) if i == len(parts) - 1 else None,
                disable_web_page_preview=True,
            )
        if message.document is not None:
            name, content = message.document
            last = await self.bot.send_document(chat_id=chat_id, document=content, filename=name)
        if last is None:
            raise PermanentChannelError("nothing to send: empty message")
        return Delivery(self.name, f"{last.chat_id}:{last.message_id}")


# ---- inbound ---------------------------------------------------------------------------------------


def inbound_from_update(update: Update, bot_username: str) -> Inbound | None:
    """Normalise an update; ``None`` for kinds coordbot does not handle."""
    uid = str(update.update_id)
    if update.callback_query is not None:
        q = update.callback_query
        action, ref = decode_button(q.data or "")
        msg = q.message
        chat = msg.chat if msg is not None else None
        return Inbound(
            channel="telegram",
            external_id=uid,
            chat_id=str(chat.id) if chat else str(q.from_user.id),
            sender_id=str(q.from_user.id),
            sender_name=q.from_user.full_name,
            language=q.from_user.language_code or "",
            kind="callback",
            callback_action=action,
            callback_ref=ref,
            message_ref=f"{chat.id}:{msg.message_id}" if chat and msg else "",
            is_group=bool(chat and chat.type in ("group", "supergroup")),
        )
    msg = update.edited_message or update.message
    if msg is None or msg.from_user is None:
        return None
    text = msg.text or msg.caption or ""
    kind = "edited" if update.edited_message is not None else "message"
    command = args = start_code = ""
    if kind == "message" and msg.entities and msg.entities[0].type == "bot_command" and msg.entities[0].offset == 0:
        ent = msg.entities[0]
        word = text[1 : ent.length]
        name, _, target = word.partition("@")
        if target and target.lower() != bot_username.lower():
            return None  # a command for another bot in the same group
        kind, command, args = "command", name.lower(), text[ent.length :].strip()
        if command == "start":
            start_code = args
    reply = msg.reply_to_message
    return Inbound(
        channel="telegram",
        external_id=uid,
        chat_id=str(msg.chat.id),
        sender_id=str(msg.from_user.id),
        sender_name=msg.from_user.full_name,
        language=msg.from_user.language_code or "",
        kind=kind,
        text=text,
        command=command,
        args=args,
        start_code=start_code,
        reply_to_ref=f"{reply.chat.id}:{reply.message_id}" if reply is not None else "",
        reply_to_text=(reply.text or "") if reply is not None else "",
        message_ref=f"{msg.chat.id}:{msg.message_id}",
        is_group=msg.chat.type in ("group", "supergroup"),
    )


async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Hand every message, edit and button press to the front end's handler, and send its answer."""
    frontend: TelegramFrontend = context.bot_data["frontend"]
    await frontend.deliver(update)


def _bot(settings: Settings) -> ExtBot[int]:
    return ExtBot(
        settings.telegram_token.get(),
        base_url=settings.telegram_base_url,
        rate_limiter=TelegramRateLimiter(overall_per_second=settings.telegram_rate_per_second),
    )


@asynccontextmanager
async def open_sender(settings: Settings) -> AsyncIterator[TelegramChannel]:
    """A send-only Telegram channel (no update receiving), for one-shot commands such as ``reminders dispatch``."""
    bot = _bot(settings)
    await bot.initialize()
    try:
        yield TelegramChannel(bot)
    finally:
        await bot.shutdown()


def frontend(settings: Settings, handle: InboundHandler) -> TelegramFrontend:
    """The registry's entry point: the two-way Telegram adapter."""
    return TelegramFrontend(settings, handle)


class TelegramFrontend:
    """Receives updates (polling or webhook) and answers each through ``handle``."""

    def __init__(self, settings: Settings, handle: InboundHandler) -> None:
        self.settings = settings
        self.handle = handle
        self.mode = settings.telegram_mode
        builder = (
            ApplicationBuilder()
            .token(settings.telegram_token.get())
            .base_url(settings.telegram_base_url)
            .base_file_url(settings.telegram_base_url.replace("/bot", "/file/bot"))
            .rate_limiter(TelegramRateLimiter(overall_per_second=settings.telegram_rate_per_second))
            .concurrent_updates(8)
        )
        if self.mode == "webhook":
            builder = builder.updater(None)
        self.app: Application = builder.build()
        self.app.bot_data["frontend"] = self
        self.app.add_handler(MessageHandler(filters.ALL, on_update))
        self.app.add_handler(CallbackQueryHandler(on_update))
        self.channel = TelegramChannel(self.app.bot)

    @property
    def bot_username(self) -> str:
        return self.app.bot.username or ""

    async def start(self) -> None:
        await self.app.initialize()
        await self.app.start()
        if self.mode == "webhook":
            s = self.settings
            await self.app.bot.set_webhook(
                url=s.webhook_url.rstrip("/") + WEBHOOK_PATH
                if not s.webhook_url.endswith(WEBHOOK_PATH)
                else s.webhook_url,
                secret_token=s.webhook_secret.get() or None,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            assert self.app.updater is not None
            await self.app.bot.delete_webhook()
            await self.app.updater.start_polling(allowed_updates=ALLOWED_UPDATES, poll_interval=0.0, timeout=10)
        log.info("telegram: %s mode as @%s", self.mode, self.bot_username)

    async def stop(self) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def deliver(self, update: Update) -> None:
        inbound = inbound_from_update(update, self.bot_username)
        if inbound is None:
            return
        try:
            reply = await self.handle(inbound)
        except Exception:
            log.exception("update %s could not be handled", update.update_id)
            reply = None
            if update.callback_query is not None:
                await self._answer_callback(update, "")
            raise
        if update.callback_query is not None:
            await self._answer_callback(update, reply.alert if reply else "")
        if reply is None:
            return
        await send_reply(self.channel, inbound, reply)

    async def _answer_callback(self, update: Update, text: str) -> None:
        try:
            await update.callback_query.answer(text=text[:200] or None)  # type: ignore[union-attr]
        except TelegramError as exc:  # an old button: Telegram refuses late answers; nothing to do
            log.info("callback answer refused: %s", exc.message)

    # ---- webhook ----

    def webhook_routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.webhook)] if self.mode == "webhook" else []

    async def webhook(self, request: web.Request) -> web.Response:
        """Accept one update from Telegram: secret checked in constant time, JSON only, size capped."""
        expected = self.settings.webhook_secret.get()
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return web.Response(status=403, text="forbidden")
        if request.content_type != "application/json":
            return web.Response(status=415, text="JSON only")
        if request.content_length is not None and request.content_length > WEBHOOK_MAX_BYTES:
            return web.Response(status=413, text="too large")
        try:
            body = await request.content.read(WEBHOOK_MAX_BYTES + 1)
            if len(body) > WEBHOOK_MAX_BYTES:
                return web.Response(status=413, text="too large")
            data: Any = json.loads(body)
            update = Update.de_json(data, self.app.bot)
        except (ValueError, TypeError, KeyError):
            return web.Response(status=400, text="not an update")
        if update is None:
            return web.Response(status=400, text="not an update")
        await self.app.update_queue.put(update)
        return web.Response(status=200, text="ok")
