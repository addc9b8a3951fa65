"""The Telegram channel: python-telegram-bot (v22) inside coordbot's own asyncio application.

``TelegramChannel`` sends (reminders, replies) and maps Telegram's errors onto the channel interface:
429 and network trouble are transient, "blocked" and "chat not found" permanent. ``TelegramFrontend``
receives updates by long polling or by webhook (served by coordbot's aiohttp app), turns them into
:class:`Inbound` messages for the ``handle`` callable it is given and sends back its :class:`Reply`; a chat
over its flood limit (``FloodGate``) gets one notice and its excess is dropped before the conversation.
A pure adapter: it knows the Bot API and coordbot's channel interface, nothing of what handles a message.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

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
    TypeHandler,
    filters,
)

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ChannelError,
    ChannelLimits,
    ChatOrder,
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
from coordbot.core.rate_tokens import open_shared_tokens, shares_tokens
from coordbot.core.text import render

log = logging.getLogger("coordbot.channels.telegram")

MAX_TEXT = 4096
MAX_CALLBACK_BYTES = 64
WEBHOOK_PATH = "/telegram/webhook"
WEBHOOK_MAX_BYTES = 1 << 20  # an update is a few KB; anything near a megabyte is not from Telegram
WEBHOOK_READ_SECONDS = 30.0  # to receive a whole body (Telegram sends it at once; a stalled sender is cut off)
# A chat may send FLOOD_BURST messages at once and then one per FLOOD_WINDOW / FLOOD_BURST seconds (one a
# second: what Telegram lets the bot answer in one chat); beyond that its messages are dropped, with one notice.
FLOOD_BURST = 20
FLOOD_WINDOW = 20.0
HANDLING_AT_ONCE = 8  # inbound messages handled (conversation + database) at the same time
# Updates in flight: large, so a chat whose answers wait on its per-chat send limit never holds the others up.
CONCURRENT_UPDATES = 256
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
        parsed = _command(text, msg.entities[0].length, bot_username)
        if parsed is None:
            return None  # a command for another bot in the same group
        kind, (command, args, start_code) = "command", parsed
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


def _command(text: str, length: int, bot_username: str) -> tuple[str, str, str] | None:
    """(command, args, start code) of a text opening with a bot command ``length`` long; None when the
    command is addressed to another bot (``/help@other_bot``)."""
    name, _, target = text[1:length].partition("@")
    if target and target.lower() != bot_username.lower():
        return None
    command, args = name.lower(), text[length:].strip()
    return command, args, args if command == "start" else ""


_RAW_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{1,64})?(?=\s|$)")


def _raw_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _raw_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _raw_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _raw_name(user: dict[str, Any]) -> str:
    parts = (user.get("first_name"), user.get("last_name"))
    return " ".join(p for p in parts if isinstance(p, str) and p)


def inbound_from_raw(data: dict[str, Any], bot_username: str) -> Inbound | None:
    """Normalise an update python-telegram-bot could not read (an older or a newer shape of the Bot API) from
    its JSON: only what is plainly there, the chat, the sender and the text (or a button's data); ``None``
    when that cannot be read or the update is of a kind coordbot does not handle."""
    uid = str(data["update_id"])
    query = data.get("callback_query")
    if isinstance(query, dict):
        user = query.get("from")
        if not isinstance(user, dict) or _raw_int(user.get("id")) is None or not isinstance(query.get("data"), str):
            return None
        action, ref = decode_button(query["data"])
        msg = _raw_dict(query.get("message"))
        chat = _raw_dict(msg.get("chat"))
        chat_id, message_id = _raw_int(chat.get("id")), _raw_int(msg.get("message_id"))
        return Inbound(
            channel="telegram",
            external_id=uid,
            chat_id=str(chat_id if chat_id is not None else user["id"]),
            sender_id=str(user["id"]),
            sender_name=_raw_name(user),
            language=_raw_str(user.get("language_code")),
            kind="callback",
            callback_action=action,
            callback_ref=ref,
            message_ref=f"{chat_id}:{message_id}" if chat_id is not None and message_id is not None else "",
            is_group=chat.get("type") in ("group", "supergroup"),
        )
    edited = isinstance(data.get("edited_message"), dict)
    msg = _raw_dict(data.get("edited_message") if edited else data.get("message"))
    chat, user = _raw_dict(msg.get("chat")), _raw_dict(msg.get("from"))
    chat_id, user_id, message_id = _raw_int(chat.get("id")), _raw_int(user.get("id")), _raw_int(msg.get("message_id"))
    if chat_id is None or user_id is None or message_id is None:
        return None
    text = msg.get("text") or msg.get("caption") or ""
    if not isinstance(text, str):
        return None
    kind = "edited" if edited else "message"
    command = args = start_code = ""
    if not edited:
        entities = msg.get("entities")
        length: int | None = None
        if isinstance(entities, list) and entities:
            first = entities[0]
            if isinstance(first, dict) and first.get("type") == "bot_command" and first.get("offset") == 0:
                length = _raw_int(first.get("length"))
        elif entities is None and (m := _RAW_COMMAND.match(text)):
            length = m.end()  # a shape without entities: a leading /command is still one
        if length:
            parsed = _command(text, length, bot_username)
            if parsed is None:
                return None
            kind, (command, args, start_code) = "command", parsed
    reply = _raw_dict(msg.get("reply_to_message"))
    reply_chat, reply_id = _raw_int(_raw_dict(reply.get("chat")).get("id")), _raw_int(reply.get("message_id"))
    reply_ref = f"{reply_chat}:{reply_id}" if reply_chat is not None and reply_id is not None else ""
    return Inbound(
        channel="telegram",
        external_id=uid,
        chat_id=str(chat_id),
        sender_id=str(user_id),
        sender_name=_raw_name(user),
        language=_raw_str(user.get("language_code")),
        kind=kind,
        text=text,
        command=command,
        args=args,
        start_code=start_code,
        reply_to_ref=reply_ref,
        reply_to_text=_raw_str(reply.get("text")),
        message_ref=f"{chat_id}:{message_id}",
        is_group=chat.get("type") in ("group", "supergroup"),
    )


@dataclass(frozen=True, slots=True)
class RawUpdate:
    """An update python-telegram-bot could not read, normalised from its JSON, on its way through the
    application's update queue (so it is handled like any other: concurrently, and drained on stop)."""

    update_id: int
    inbound: Inbound
    callback_query_id: str | None


class FloodGate:
    """A token bucket per chat: ``burst`` messages at once, refilled at ``burst / window`` a second.

    ``admit`` says what to do with a chat's next message: ``pass`` it on, send the chat its one ``notice``
    (the first message over the limit), or ``drop`` it. A chat that has calmed down (its bucket full again)
    gets a notice again next time it floods.
    """

    def __init__(
        self, burst: int = FLOOD_BURST, window: float = FLOOD_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = float(burst)
        self.rate = burst / window
        self.clock = clock
        self._chats: dict[str, tuple[float, float, bool]] = {}  # chat -> (tokens, when, noticed)

    def admit(self, chat: str) -> Literal["pass", "notice", "drop"]:
        now = self.clock()
        tokens, then, noticed = self._chats.get(chat, (self.burst, now, False))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens >= self.burst:
            noticed = False
        verdict: Literal["pass", "notice", "drop"]
        if tokens >= 1.0:
            tokens -= 1.0
            verdict = "pass"
        else:
            verdict = "drop" if noticed else "notice"
            noticed = True
        self._chats[chat] = (tokens, now, noticed)
        if len(self._chats) > 10_000:
            self._forget_calm(now)
        return verdict

    def _forget_calm(self, now: float) -> None:
        for chat, (tokens, then, _) in list(self._chats.items()):
            if tokens + (now - then) * self.rate >= self.burst:
                del self._chats[chat]


async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Hand every message, edit and button press to the front end's handler, and send its answer."""
    frontend: TelegramFrontend = context.bot_data["frontend"]
    await frontend.deliver(update)


async def on_raw_update(update: RawUpdate, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An update only readable from its JSON (see ``TelegramFrontend.webhook``): handled the same way."""
    frontend: TelegramFrontend = context.bot_data["frontend"]
    await frontend.process(update.inbound, update.update_id, update.callback_query_id)


def rate_limiter(settings: Settings) -> TelegramRateLimiter:
    """Telegram's limits for this bot: kept in this process, or on PostgreSQL in the database, shared by every
    process on it (several ``coordbot run`` keep the limits together, not each its own)."""
    bot_id = settings.telegram_token.get().partition(":")[0]
    url = settings.database_url
    return TelegramRateLimiter(
        overall_per_second=settings.telegram_rate_per_second,
        shared=(lambda: open_shared_tokens(url)) if shares_tokens(url) else None,
        key=f"telegram:{bot_id}",
    )


def _bot(settings: Settings) -> ExtBot[int]:
    return ExtBot(
        settings.telegram_token.get(), base_url=settings.telegram_base_url, rate_limiter=rate_limiter(settings)
    )


def _start_error(exc: TelegramError, settings: Settings) -> ChannelError:
    """A refused token or an unreachable Bot API when starting, as the runtime (retry or not) and the CLI read it."""
    if isinstance(exc, InvalidToken):
        return ChannelAuthError(f"Telegram refused the bot token: {exc.message}")
    # the base URL never holds the token (PTB appends it)
    return TransientChannelError(f"Telegram at {settings.telegram_base_url} is not reachable: {exc.message}")


@asynccontextmanager
async def open_sender(settings: Settings) -> AsyncIterator[TelegramChannel]:
    """A send-only Telegram channel (no update receiving), for one-shot commands such as ``reminders dispatch``."""
    bot = _bot(settings)
    try:
        await bot.initialize()
    except BadRequest:
        raise
    except (InvalidToken, TimedOut, NetworkError) as exc:
        raise _start_error(exc, settings) from exc
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
            .rate_limiter(rate_limiter(settings))
            .concurrent_updates(CONCURRENT_UPDATES)
        )
        if self.mode == "webhook":
            builder = builder.updater(None)
        self.app: Application = builder.build()
        self.app.bot_data["frontend"] = self
        self.app.add_handler(MessageHandler(filters.ALL, on_update))
        self.app.add_handler(CallbackQueryHandler(on_update))
        self.app.add_handler(TypeHandler(RawUpdate, on_raw_update))
        self.channel = TelegramChannel(self.app.bot)
        self.flood = FloodGate()
        self._handling = asyncio.Semaphore(HANDLING_AT_ONCE)
        self._order = ChatOrder()  # a chat's updates in arrival order (a report before its edit)
        # What the front end refused, dropped or could only read from the JSON, by kind (for /metrics).
        self.metrics: Counter[str] = Counter()

    @property
    def bot_username(self) -> str:
        return self.app.bot.username or ""

    async def start(self) -> None:
        """Errors mapped for the runtime, which retries an unreachable Bot API and gives up on a refused token."""
        try:
            await self._start()
        except BadRequest:  # a NetworkError by inheritance, but the request itself is wrong
            raise
        except (InvalidToken, TimedOut, NetworkError) as exc:
            raise _start_error(exc, self.settings) from exc

    async def _start(self) -> None:
        await self.app.initialize()
        if not self.app.running:  # a retry after a later step failed
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
        query = update.callback_query
        await self.process(inbound, update.update_id, query.id if query is not None else None)

    async def process(self, inbound: Inbound, update_id: int, callback_query_id: str | None = None) -> None:
        """Hand one inbound message to ``handle`` (within the chat's flood limit) and send the answer."""
        # A private chat is one person; in a group, each member has their own limit (a lively group is no flood).
        verdict = self.flood.admit(f"{inbound.chat_id}:{inbound.sender_id}" if inbound.is_group else inbound.chat_id)
        if verdict != "pass":
            self.metrics["flood_dropped"] += 1
            log.warning("update %s dropped: chat %s is over its flood limit", update_id, inbound.chat_id)
            if verdict == "notice":
                await self._flood_notice(inbound)
            return
        try:
            # Only the handling is bounded: waiting for a chat's send limit must not hold up other chats.
            async with self._order.turn(inbound.chat_id), self._handling:
                reply = await self.handle(inbound)
        except Exception:
            log.exception("update %s could not be handled", update_id)
            if callback_query_id is not None:
                await self._answer_callback(callback_query_id, "")
            raise
        if callback_query_id is not None:
            await self._answer_callback(callback_query_id, reply.alert if reply else "")
        if reply is None:
            return
        await send_reply(self.channel, inbound, reply)

    async def _flood_notice(self, inbound: Inbound) -> None:
        locale = "en" if inbound.language.lower().startswith("en") else "zh"
        text = render("chat/flood_notice.html", locale=locale).strip()
        try:
            await self.channel.send(Outbound(inbound.chat_id, text))
        except ChannelError as exc:
            log.info("flood notice to chat %s not sent: %s", inbound.chat_id, exc)

    async def _answer_callback(self, callback_query_id: str, text: str) -> None:
        try:
            await self.app.bot.answer_callback_query(callback_query_id, text=text[:200] or None)
        except TelegramError as exc:  # an old button: Telegram refuses late answers; nothing to do
            log.info("callback answer refused: %s", exc.message)

    # ---- webhook ----

    def webhook_routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self.webhook)] if self.mode == "webhook" else []

    async def webhook(self, request: web.Request) -> web.Response:
        """Accept one update from Telegram: secret checked in constant time, JSON only, size capped.

        The whole body is read (by Content-Length or chunked, however many packets it comes in). What is not
        a JSON object with an integer ``update_id`` is refused with 400; an update python-telegram-bot cannot
        read (an older or newer shape) is answered 200 all the same, since Telegram would redeliver it and
        hold the chat's later updates behind it: it is logged, counted and, where its JSON still shows the
        chat and the text, handled.
        """
        expected = self.settings.webhook_secret.get()
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return web.Response(status=403, text="forbidden")
        if request.content_type != "application/json":
            return web.Response(status=415, text="JSON only")
        if request.content_length is not None and request.content_length > WEBHOOK_MAX_BYTES:
            return self._too_large(request.content_length)
        try:
            async with asyncio.timeout(WEBHOOK_READ_SECONDS):
                body = await _read_body(request, WEBHOOK_MAX_BYTES)
        except TimeoutError:
            return self._refuse(408, "the body did not arrive in time")
        if body is None:
            return self._too_large(None)
        try:
            data: Any = json.loads(body)
        except ValueError as exc:  # also bytes that are not UTF-8
            return self._refuse(400, f"not JSON ({type(exc).__name__} at {getattr(exc, 'pos', '?')})")
        if not isinstance(data, dict):
            return self._refuse(400, f"a JSON {type(data).__name__}, not an object")
        update_id = data.get("update_id")
        if _raw_int(update_id) is None:
            return self._refuse(400, f"update_id {str(update_id)[:40]!r} is not an integer")
        try:
            update = Update.de_json(data, self.app.bot)
        except Exception as exc:  # python-telegram-bot raises what its constructors raise (TypeError mostly)
            await self._unreadable(data, exc)
            return web.Response(status=200, text="ok")
        if update is None:  # de_json of an empty object; an object with an update_id is never empty
            return self._refuse(400, "an empty update")
        kind = _update_kind(data)
        if kind not in ALLOWED_UPDATES:
            self.metrics["updates_ignored"] += 1
            log.info("webhook: update %s is a %s, which coordbot does not handle", update_id, kind)
        await self.app.update_queue.put(update)
        return web.Response(status=200, text="ok")

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.metrics["bodies_refused"] += 1
        log.warning("webhook: refused a body (%d): %s", status, reason)
        return web.Response(status=status, text=f"not an update: {reason}")

    def _too_large(self, length: int | None) -> web.Response:
        self.metrics["bodies_too_large"] += 1
        log.warning("webhook: refused a body over %d bytes (Content-Length %s)", WEBHOOK_MAX_BYTES, length)
        return web.Response(status=413, text="too large")

    async def _unreadable(self, data: dict[str, Any], exc: Exception) -> None:
        """Log and count an update python-telegram-bot could not read (never its body: it holds people's
        messages); queue it for handling when its JSON still shows the chat and the text."""
        update_id, kind = data["update_id"], _update_kind(data)
        self.metrics["updates_unparsed"] += 1
        try:
            inbound = inbound_from_raw(data, self.bot_username) if kind in ALLOWED_UPDATES else None
        except Exception:  # a shape odder still: logged below as not handled
            inbound = None
        log.warning(
            "webhook: update %s (%s) could not be read by python-telegram-bot (%s: %s); %s",
            update_id,
            kind,
            type(exc).__name__,
            str(exc)[:300],
            "handled from its JSON" if inbound is not None else "answered and skipped",
        )
        if inbound is None:
            return
        self.metrics["updates_unparsed_handled"] += 1
        query = data.get("callback_query")
        query_id = query.get("id") if isinstance(query, dict) and isinstance(query.get("id"), str) else None
        await self.app.update_queue.put(RawUpdate(update_id, inbound, query_id))


def _update_kind(data: dict[str, Any]) -> str:
    """The kind of an update (``message``, ``callback_query``, …): its one key besides update_id."""
    return next((k for k in data if k != "update_id"), "nothing")[:40]


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole body (by Content-Length or chunked: aiohttp's parser knows which), or ``None`` once it is
    over ``limit`` bytes. ``content.read(n)`` would return only what had arrived so far."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
