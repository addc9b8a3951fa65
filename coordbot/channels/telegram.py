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
from datetime import timedelta
from typing import Any, Literal

import httpx
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
from telegram.ext import Application, ApplicationBuilder, ExtBot
from telegram.request import BaseRequest

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ChannelError,
    ChannelLimits,
    ContentRejectedError,
    Delivery,
    Inbound,
    InboundDeferred,
    InboundHandler,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
    decode_button,
    encode_button,
    send_reply,
)
from coordbot.channels.ratelimit import TelegramRateLimiter
from coordbot.channels.spool import FairQueue, Incoming, Spool, Spooled, spool_dir, spool_name
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
HANDLING_AT_ONCE = 8  # inbound messages handled (conversation + database) at the same time, one per chat
# A chat's updates waiting to be handled, at most; its excess beyond is dropped (counted, logged). Far above
# what a person sends: it bounds what one misbehaving client can queue.
MAX_CHAT_BACKLOG = 1_000
POLL_TIMEOUT = 10  # seconds a getUpdates long poll waits for updates
POLL_BACKOFF_MAX = 30.0
# A stop (SIGTERM: a supervisor usually waits 10 s) gives the updates in hand this long to be stored (the rest
# stay in the spool), then answers under way this long more: a flooded chat's, held to one a second by
# Telegram's limit, would take much longer, and their updates are stored already.
STOP_HANDLING_SECONDS = 3.0
STOP_ANSWERS_SECONDS = 1.5
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
LIMITS = ChannelLimits(max_text=MAX_TEXT, buttons=True, files=True, max_button_data=MAX_CALLBACK_BYTES)
# A 400 that says the address cannot receive: the contact is unreachable. Any other 400 is about the message.
_ADDRESS_PROBLEMS = re.compile(r"chat not found|user not found|peer_id_invalid|bot was kicked|not enough rights", re.I)
TAG = re.compile(r"<(/?)([a-zA-Z]+)(?:\s[^>]*)?>")
# A send whose answer did not come within PTB's read timeout (5 s) may still have been delivered. For a while
# after that, sends to the same chat wait this long for their answer instead of giving up and being sent again:
# so one slow answer costs at most one copy of one message, not a copy of each.
PATIENT_READ_TIMEOUT = 60.0
PATIENCE_WINDOW = 600.0  # seconds a chat stays "slow to answer" after its last read timeout


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
        self._slow: dict[int | str, float] = {}  # chat -> time.monotonic() of its last unanswered send

    def _patience(self, chat_id: int | str) -> Any:
        """The read timeout for a send to this chat: PTB's default, or a long one if it answered late lately
        (``None`` would mean no timeout at all to PTB; its DEFAULT_NONE means its own default)."""
        now = time.monotonic()
        if len(self._slow) > 10_000:
            self._slow = {k: t for k, t in self._slow.items() if now - t < PATIENCE_WINDOW}
        since = self._slow.get(chat_id)
        return PATIENT_READ_TIMEOUT if since is not None and now - since < PATIENCE_WINDOW else BaseRequest.DEFAULT_NONE

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
        except TimedOut as exc:
            if isinstance(exc.__cause__, httpx.ReadTimeout):  # the request went out; Telegram may have taken it
                self._slow[_chat_id(message.address)] = time.monotonic()
                raise TransientChannelError(
                    f"Telegram: no answer in time ({exc.message}); the message may have been delivered",
                    maybe_delivered=True,
                ) from exc
            raise TransientChannelError(f"Telegram: {exc.message}") from exc
        except NetworkError as exc:
            raise TransientChannelError(f"Telegram: {exc.message}") from exc
        except TelegramError as exc:
            raise TransientChannelError(f"Telegram: {exc.message}") from exc

    async def _send(self, message: Outbound) -> Delivery:
        chat_id = _chat_id(message.address)
        parts = split_html(message.text) if message.text else []
        last: Message | None = None
        timeout = self._patience(chat_id)
        for i, part in enumerate(parts):
            last = await self.bot.send_message(
                chat_id=chat_id,
                text=part,
                parse_mode="HTML",
                reply_markup=_markup(message) if i == len(parts) - 1 else None,
                disable_web_page_preview=True,
                read_timeout=timeout,
            )
        if message.document is not None:
            name, content = message.document
            last = await self.bot.send_document(chat_id=chat_id, document=content, filename=name, read_timeout=timeout)
        if last is None:
            raise PermanentChannelError("nothing to send: empty message")
        return Delivery(self.name, f"{last.chat_id}:{last.message_id}")


def _chat_id(address: str) -> int | str:
    return int(address) if address.lstrip("-").isdigit() else address


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
    """Receives updates (polling or webhook) and answers each through ``handle``.

    Every update is written to the local spool (fsynced) before Telegram is told it arrived: polling asks for
    the next batch (which confirms this one) only then, the webhook answers 200 only then. The spool's fair
    queue hands the updates to ``handle``, a chat's in order and chats round-robin; an update leaves the spool
    once ``handle`` stored it. ``handle`` raising :class:`InboundDeferred` (the database is unreachable) keeps
    it there and pauses the queue; ``stop`` finishes what is in hand and leaves the rest for the next run.
    """

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
            .updater(None)  # coordbot polls itself: the offset moves on only once a batch is spooled
        )
        self.app: Application = builder.build()
        self.channel = TelegramChannel(self.app.bot)
        self.flood = FloodGate()
        # What the front end refused, dropped or could only read from the JSON, by kind (for /metrics).
        self.metrics: Counter[str] = Counter()
        self.spool: Spool | None = None
        self.queue: FairQueue | None = None
        self._poller: asyncio.Task[None] | None = None
        self._verdicts: dict[int, str] = {}  # update id -> the flood verdict it got on arrival
        self._handled: dict[int, asyncio.Future[None]] = {}  # update id -> settled once ``handle`` returned
        self._answering: set[asyncio.Task[None]] = set()  # updates being handled and answered

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
        if self.queue is None:
            self.spool = Spool(spool_dir(self.settings), spool_name("telegram", str(self.app.bot.id)))
            self.queue = FairQueue(self.spool, self._work, name="telegram", workers=HANDLING_AT_ONCE)
            await self.queue.start()  # what an earlier run left goes first
        if self.mode == "webhook":
            s = self.settings
            await self.app.bot.set_webhook(
                url=s.webhook_url.rstrip("/") + WEBHOOK_PATH
                if not s.webhook_url.endswith(WEBHOOK_PATH)
                else s.webhook_url,
                secret_token=s.webhook_secret.get() or None,
                allowed_updates=ALLOWED_UPDATES,
            )
        elif self.mode == "send":
            pass  # another instance receives: Telegram serves one getUpdates poller per token (409 for a second)
        else:
            await self.app.bot.delete_webhook()
            if self._poller is None:
                self._poller = asyncio.create_task(self._poll(), name="telegram-poll")
        log.info("telegram: %s mode as @%s", self.mode, self.bot_username)

    async def stop(self) -> None:
        """Stop within seconds: no more updates taken, those in hand stored (or left in the spool, as is
        everything not started: the next run handles it), answers under way sent while time is left."""
        started = time.monotonic()
        if self._poller is not None:
            self._poller.cancel()  # a long poll cut short confirms nothing: Telegram sends those again
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self.queue is not None:
            await self.queue.close(STOP_HANDLING_SECONDS)
        if self._answering:
            _, late = await asyncio.wait(set(self._answering), timeout=STOP_ANSWERS_SECONDS)
            for task in late:
                task.cancel()
            if late:
                # Handled but not answered yet, or still waiting on the handler (then still in the spool).
                log.info("telegram: %d update(s) still being handled or answered at stop: cut off", len(late))
                await asyncio.gather(*late, return_exceptions=True)
        if self.spool is not None:
            await self.spool.close()
            self.spool = self.queue = None
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
        log.info("telegram: stopped in %.1f s", time.monotonic() - started)

    # ---- receiving: spool first, then acknowledge ----

    async def _poll(self) -> None:
        """Long-poll getUpdates; a batch is confirmed (the next call's offset) only after it was spooled."""
        offset: int | None = None
        backoff = 0.0
        while True:
            if self.queue is not None and self.queue.full:  # backpressure: Telegram keeps them meanwhile
                await asyncio.sleep(0.2)
                continue
            params: dict[str, Any] = {"timeout": POLL_TIMEOUT, "allowed_updates": ALLOWED_UPDATES, "limit": 100}
            if offset is not None:
                params["offset"] = offset
            try:
                # _post, not get_updates: the raw JSON (an update PTB cannot read must not sink the whole
                # batch, and PTB would log the batch, people's messages, when it fails to read one).
                batch = await self.app.bot._post("getUpdates", api_kwargs=params, read_timeout=POLL_TIMEOUT + 10)
                updates = [u for u in batch if isinstance(u, dict) and _raw_int(u.get("update_id")) is not None]
                if updates:
                    await self.receive(updates)
                    offset = max(int(u["update_id"]) for u in updates) + 1
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except TimedOut:
                continue
            except Exception as exc:  # network, 5xx, 409 (another poller), a full disk: wait and ask again
                backoff = min(POLL_BACKOFF_MAX, backoff * 2 or 1.0)
                log.warning("telegram: getUpdates failed (%s); again in %.0f s", _why(exc), backoff)
                await asyncio.sleep(backoff)

    async def receive(self, updates: list[dict[str, Any]]) -> None:
        """Spool a batch of updates (their JSON), then queue them for handling. Raises when the spool cannot be
        written: the caller must then not acknowledge them."""
        assert self.spool is not None and self.queue is not None
        incoming: list[Incoming] = []
        batch: Counter[str] = Counter()
        for data in updates:
            update_id = int(data["update_id"])
            inbound, _query = self._read(data, note=True)
            if inbound is None:
                if _update_kind(data) not in ALLOWED_UPDATES:
                    continue  # nothing coordbot handles: acknowledged and forgotten
                # Read, but for no one here (a command to another bot): goes through like any, to no answer.
                incoming.append(Incoming(str(update_id), "", "pass", json.dumps(data, ensure_ascii=False)))
                continue
            chat = inbound.chat_id
            if self.queue.backlog(chat) + batch[chat] >= MAX_CHAT_BACKLOG:
                self.metrics["flood_dropped"] += 1
                log.warning("update %s dropped: chat %s has %d waiting already", update_id, chat, MAX_CHAT_BACKLOG)
                continue
            # A private chat is one person; in a group each member has their own limit (a lively group is no flood).
            verdict = self.flood.admit(f"{chat}:{inbound.sender_id}" if inbound.is_group else chat)
            batch[chat] += 1
            incoming.append(Incoming(str(update_id), chat, verdict, json.dumps(data, ensure_ascii=False)))
        for entry in await self.spool.add(incoming):
            self.queue.push(entry.seq, entry.chat)

    def _read(self, data: dict[str, Any], *, note: bool) -> tuple[Inbound | None, str | None]:
        """The update's inbound message and callback query id; ``note``: log and count what is odd (once, on
        arrival, not again when it is handled)."""
        update_id, kind = data["update_id"], _update_kind(data)
        try:
            update = Update.de_json(data, self.app.bot)
        except Exception as exc:  # python-telegram-bot raises what its constructors raise (TypeError mostly)
            return self._unreadable(data, exc, note=note)
        if kind not in ALLOWED_UPDATES:
            if note:
                self.metrics["updates_ignored"] += 1
                log.info("telegram: update %s is a %s, which coordbot does not handle", update_id, kind)
            return None, None
        if update is None:
            return None, None
        query = update.callback_query
        return inbound_from_update(update, self.bot_username), query.id if query is not None else None

    def _unreadable(self, data: dict[str, Any], exc: Exception, *, note: bool) -> tuple[Inbound | None, str | None]:
        """An update python-telegram-bot could not read: logged and counted (never its body: it holds people's
        messages), and read from its JSON when that still shows the chat and the text."""
        update_id, kind = data["update_id"], _update_kind(data)
        try:
            inbound = inbound_from_raw(data, self.bot_username) if kind in ALLOWED_UPDATES else None
        except Exception:  # a shape odder still: logged below as not handled
            inbound = None
        if note:
            self.metrics["updates_unparsed"] += 1
            log.warning(
                "telegram: update %s (%s) could not be read by python-telegram-bot (%s: %s); %s",
                update_id,
                kind,
                type(exc).__name__,
                str(exc)[:300],
                "handled from its JSON" if inbound is not None else "answered and skipped",
            )
            if inbound is not None:
                self.metrics["updates_unparsed_handled"] += 1
        query = data.get("callback_query")
        query_id = query.get("id") if isinstance(query, dict) and isinstance(query.get("id"), str) else None
        return inbound, query_id

    # ---- handling ----

    async def _work(self, entry: Spooled) -> None:
        """Handle one spooled update; returns once ``handle`` stored it (its answer goes on being sent), raises
        what ``handle`` raised (:class:`InboundDeferred`: the queue keeps it)."""
        data = json.loads(entry.payload)
        update_id = int(data["update_id"])
        self._verdicts[update_id] = entry.verdict
        handled = self._handled[update_id] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._dispatch(data))
        self._answering.add(task)
        task.add_done_callback(self._answered)
        try:
            await asyncio.wait({handled, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._handled.pop(update_id, None)
            self._verdicts.pop(update_id, None)
        if handled.done():
            handled.result()
        else:
            handled.cancel()
            task.result()  # ended without reaching the handler (nothing to handle), or failed before it

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._answering.discard(task)
        if not task.cancelled():
            task.exception()  # logged where it happened; the queue retries or gives up

    async def _dispatch(self, data: dict[str, Any]) -> None:
        try:
            update = Update.de_json(data, self.app.bot)
        except Exception:
            inbound, query_id = self._read(data, note=False)
            if inbound is not None:
                await self.process(inbound, int(data["update_id"]), query_id)
            return
        if update is not None:
            await self.deliver(update)

    async def deliver(self, update: Update) -> None:
        inbound = inbound_from_update(update, self.bot_username)
        if inbound is None:
            return
        query = update.callback_query
        await self.process(inbound, update.update_id, query.id if query is not None else None)

    async def process(self, inbound: Inbound, update_id: int, callback_query_id: str | None = None) -> None:
        """Hand one inbound message to ``handle`` and send the answer (unless its chat is over the flood limit:
        then the message is stored all the same, and the chat gets one notice instead of answers)."""
        verdict = self._verdicts.pop(update_id, None)
        if verdict is None:  # not from the spool (a test's direct call): decided now
            verdict = self.flood.admit(
                f"{inbound.chat_id}:{inbound.sender_id}" if inbound.is_group else inbound.chat_id
            )
        handled = self._handled.get(update_id)
        try:
            reply = await self.handle(inbound)
        except Exception as exc:
            if handled is not None and not handled.done():
                handled.set_exception(exc)
            if isinstance(exc, InboundDeferred):
                raise
            log.exception("update %s could not be handled", update_id)
            if callback_query_id is not None:
                await self._answer_callback(callback_query_id, "")
            raise
        if handled is not None and not handled.done():
            handled.set_result(None)
        if verdict != "pass":
            self.metrics["flood_unanswered"] += 1
            log.warning("update %s stored, not answered: chat %s is over its flood limit", update_id, inbound.chat_id)
            if callback_query_id is not None:
                await self._answer_callback(callback_query_id, "")
            if verdict == "notice":
                await self._flood_notice(inbound)
            return
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
        chat and the text, handled. 200 comes only once the update is in the spool; 503 (Telegram sends it
        again) while the spool cannot be written or is full, or before the front end has started.
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
        if self.queue is None or self.queue.full:
            return web.Response(status=503, text="not ready", headers={"Retry-After": "1"})
        try:
            await self.receive([data])
        except Exception as exc:  # the spool cannot be written: Telegram keeps it and sends it again
            log.error("webhook: update %s not spooled (%s); answered 503", update_id, _why(exc))
            return web.Response(status=503, text="try again", headers={"Retry-After": "1"})
        return web.Response(status=200, text="ok")

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.metrics["bodies_refused"] += 1
        log.warning("webhook: refused a body (%d): %s", status, reason)
        return web.Response(status=status, text=f"not an update: {reason}")

    def _too_large(self, length: int | None) -> web.Response:
        self.metrics["bodies_too_large"] += 1
        log.warning("webhook: refused a body over %d bytes (Content-Length %s)", WEBHOOK_MAX_BYTES, length)
        return web.Response(status=413, text="too large")


def _why(exc: BaseException) -> str:
    """An error as a log line may carry it: its kind and message, never a URL (a request URL holds the token)."""
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message[:200]}"


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
