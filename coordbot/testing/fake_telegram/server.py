"""The fake Bot API server itself; see the package docstring for the test-side API."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import itertools
import json
import mimetypes
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from .html_entities import EntityParseError, parse_html, utf16_len
from .media import image_size, photo_sizes
from .ratelimit import RateLimiter, RateLimits

JSON = dict[str, Any]

# Parameter kinds, how a form-encoded string is decoded (JSON bodies arrive typed already).
INT, FLOAT, STR, BOOL, CHAT, OBJ, FILE = "int", "float", "str", "bool", "chat", "obj", "file"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_UPLOAD = 50 * 1024 * 1024

# Update types Telegram leaves out unless asked for explicitly.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_BOT_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")
_USER_FIELDS = ("id", "is_bot", "first_name", "last_name", "username", "language_code")
_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
_POLL_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>"
    "\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)


class ApiError(Exception):
    """An error answer: ``{"ok": false, "error_code": code, "description": ..., "parameters": ...}``."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class ApiCall(NamedTuple):
    """One request as the server saw it; ``t`` is ``time.monotonic()`` when the outcome was decided."""

    t: float
    method: str
    params: JSON
    status: int


class WebhookDelivery(NamedTuple):
    """One POST attempt to the webhook; ``status`` is None when the connection failed or timed out."""

    t: float
    update_id: int
    status: int | None
    error: str | None


@dataclass
class Upload:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return f"Upload(filename={self.filename!r}, content_type={self.content_type!r}, size={len(self.data)})"


@dataclass
class _Chat:
    id: int
    type: str  # "private", "group" or "supergroup"
    title: str | None = None
    username: str | None = None
    user: JSON | None = None  # the other party of a private chat
    started: bool = True  # private chats: the user pressed Start (else the bot may not write first)
    block_reason: str | None = None  # a 403 description once the user blocked / kicked the bot
    next_message_id: int = 1

    def public(self) -> JSON:
        if self.type == "private":
            assert self.user is not None
            out: JSON = {"id": self.id, "type": "private", "first_name": self.user["first_name"]}
            for key in ("last_name", "username"):
                if self.user.get(key):
                    out[key] = self.user[key]
            return out
        out = {"id": self.id, "type": self.type, "title": self.title}
        if self.username:
            out["username"] = self.username
        return out


@dataclass
class _StoredFile:
    kind: str  # "document" or "photo"
    data: bytes
    unique_id: str
    path: str
    meta: JSON = field(default_factory=dict)  # the Document / PhotoSize object


@dataclass
class _Rule:
    method: str
    times: int
    chat_id: int | str | None = None
    error: ApiError | None = None
    seconds: float = 0.0


@dataclass
class _Method:
    name: str
    params: dict[str, str]
    legacy: dict[str, str]
    handler: Callable[[FakeBotAPI, JSON], Awaitable[Any]]

    def all_params(self) -> dict[str, str]:
        return {**self.params, **self.legacy}


_METHODS: dict[str, _Method] = {}
_LEGACY_REPLY = {"reply_to_message_id": INT, "allow_sending_without_reply": BOOL}


def _api(
    name: str, *, legacy: dict[str, str] | None = None, **params: str
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Register a Bot API method with the parameters the server reads (checked against the spec in tests).

    ``legacy`` parameters were dropped from the documentation but Telegram still honours them (e.g.
    ``reply_to_message_id``, superseded by ``reply_parameters`` in Bot API 7.0).
    """

    def deco(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        _METHODS[name.lower()] = _Method(name, params, dict(legacy or {}), fn)
        return fn

    return deco


def _default_description(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict",
        500: "Internal Server Error",
        502: "Bad Gateway",
    }.get(status) or HTTPStatus(status).phrase


def _decode(name: str, kind: str, value: Any) -> Any:
    """Turn one raw parameter into its typed value the way Telegram does for form fields."""
    if isinstance(value, Upload):
        if kind == FILE:
            return value
        raise ApiError(400, f"Bad Request: {name} must not be a file")
    try:
        if kind == INT:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == FLOAT:
            return float(value)
        if kind == BOOL:
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("true", "1")
        if kind == CHAT:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            s = str(value).strip()
            if re.fullmatch(r"-?\d+", s):
                return int(s)
            if s.startswith("@") and len(s) > 1:
                return s
            raise ApiError(400, "Bad Request: chat not found")
        if kind == OBJ:
            return json.loads(value) if isinstance(value, str) else value
        if kind in (STR, FILE):
            return (
                value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)
            )
    except (ValueError, TypeError) as exc:
        if kind == OBJ:
            raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from exc
        raise ApiError(400, f"Bad Request: invalid {name} specified") from exc
    raise AssertionError(f"unknown parameter kind {kind}")


class FakeBotAPI:
    """A Telegram Bot API server on 127.0.0.1 for tests. See the package docstring."""

    def __init__(
        self,
        token: str = "123:ABC",
        bot_username: str = "coordbot_test_bot",
        *,
        bot_first_name: str = "CoordBot Test",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: RateLimits | None = None,
        strict_chats: bool = True,
        strict_html_ampersand: bool = True,
        webhook_retry_delays: Iterable[float] = (0.05, 0.1, 0.2, 0.4),
        webhook_timeout: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (sep and bot_id.isdigit() and secret):
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.token = token
        self.bot_user: JSON = {
            "id": int(bot_id),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": True,  # privacy mode is not modelled: bots see every group message
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.host, self._port = host, port
        self.rate_limits = rate_limits or RateLimits()
        self.strict_chats = strict_chats
        self.strict_html_ampersand = strict_html_ampersand
        self.webhook_retry_delays = tuple(webhook_retry_delays)
        self.webhook_timeout = webhook_timeout
        self._wall = wall_clock
        self._limiter = RateLimiter(self.rate_limits)

        # Records for assertions.
        self.calls: list[ApiCall] = []
        self.callback_answers: list[JSON] = []
        self.documents: list[JSON] = []
        self.photos: list[JSON] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.deleted_messages: list[tuple[int, int]] = []
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        # Called as hook(method, params, http_status, response_body) for every API answer, e.g. to check
        # each answer against the Bot API spec.
        self.response_hooks: list[Callable[[str, JSON, int, JSON], None]] = []

        self._users: dict[int, JSON] = {}
        self._chats: dict[int, _Chat] = {}
        self._messages: dict[tuple[int, int], JSON] = {}
        self._outbound: list[tuple[int, int]] = []
        self._deleted: set[tuple[int, int]] = set()
        self._callback_queries: dict[str, JSON] = {}
        self._files: dict[str, _StoredFile] = {}
        self._file_paths: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._rules: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._stalls: list[_Rule] = []
        self._site: web.TCPSite | None = None
        self._down: str | None = None  # None (up), "refused" or "502"

        self._updates: deque[JSON] = deque()
        self._next_update_id = 700_000_001
        self._allowed_updates: list[str] | None = None
        self._pollers: set[asyncio.Future[str]] = set()
        self._webhook: JSON = {}
        self._webhook_attempts = 0
        self._webhook_last_error: tuple[int, str] | None = None

        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._wake_webhook: asyncio.Event | None = None
        self._activity: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``host:port`` (a free port when 0) and start the webhook sender."""
        self._wake_webhook, self._activity, self._closing = asyncio.Event(), asyncio.Event(), asyncio.Event()
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        self._port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession()
        self._webhook_task = asyncio.create_task(self._webhook_loop(), name="fake-telegram-webhook")

    async def stop(self) -> None:
        """Answer pending long polls, stop delivering webhooks and close the port."""
        if self._runner is None:
            return
        assert self._closing is not None
        self._closing.set()
        self._resolve_pollers("closed")
        if self._wake_webhook is not None:
            self._wake_webhook.set()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._session is not None:
            await self._session.close()
        await self._runner.cleanup()
        self._runner = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """For PTB's ``base_url``: PTB requests ``f"{base_url}{token}/{method}"``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For PTB's ``base_file_url`` (file downloads after getFile)."""
        return f"{self.url}/file/bot"

    @classmethod
    def served_methods(cls) -> dict[str, dict[str, str]]:
        """Every Bot API method served, with the documented parameters it reads and their kinds."""
        return {m.name: dict(m.params) for m in _METHODS.values()}

    @classmethod
    def legacy_params(cls) -> dict[str, dict[str, str]]:
        """Undocumented-but-accepted parameters per method (see ``_api``)."""
        return {m.name: dict(m.legacy) for m in _METHODS.values() if m.legacy}

    # ------------------------------------------------------------------ world setup

    def add_user(
        self,
        user_id: int,
        first_name: str = "Test",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "zh-hans",
        started: bool = True,
    ) -> JSON:
        """Create a user and their private chat (chat id == user id); returns the User object.

        With ``started=False`` the user never pressed Start, so sending to them gives 403 until they write.
        """
        if user_id <= 0:
            raise ValueError("user ids are positive")
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        self._chats[user_id] = _Chat(user_id, "private", user=user, started=started)
        return dict(user)

    def add_group(self, chat_id: int, title: str, *, chat_type: str | None = None, username: str | None = None) -> JSON:
        """Create a group the bot is in; ids <= -10**12 are supergroups unless ``chat_type`` says so."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        kind = chat_type or ("supergroup" if chat_id <= -1_000_000_000_000 else "group")
        if kind not in ("group", "supergroup"):
            raise ValueError("chat_type must be 'group' or 'supergroup'")
        chat = _Chat(chat_id, kind, title=title, username=username)
        self._chats[chat_id] = chat
        return chat.public()

    def block(self, chat_id: int, *, description: str | None = None) -> None:
        """From now on sends to this chat fail with 403 (user blocked the bot / bot kicked from group)."""
        chat = self._require_chat(chat_id)
        if description is None:
            description = {
                "private": "Forbidden: bot was blocked by the user",
                "group": "Forbidden: bot was kicked from the group chat",
                "supergroup": "Forbidden: bot was kicked from the supergroup chat",
            }[chat.type]
        chat.block_reason = description

    def unblock(self, chat_id: int) -> None:
        self._require_chat(chat_id).block_reason = None

    # ------------------------------------------------------------------ inbound (user side)

    def user_sends(
        self, user_id: int, text: str, *, chat_id: int | None = None, reply_to_message_id: int | None = None
    ) -> JSON:
        """The user writes ``text``; returns the queued Update. Commands get ``bot_command`` entities."""
        user = self._require_user(user_id)
        chat = self._require_chat(user_id if chat_id is None else chat_id)
        if chat.type == "private":
            # Writing to the bot (re)starts the chat; a blocked bot must be unblocked first.
            chat.started, chat.block_reason = True, None
        reply_to = None
        if reply_to_message_id is not None:
            reply_to = self._messages.get((chat.id, reply_to_message_id))
            if reply_to is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat.id}")
        entities = [
            {"type": "bot_command", "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
            for m in _BOT_COMMAND_RE.finditer(text)
        ]
        msg = self._new_message(chat, user, text=text, entities=entities, reply_to=reply_to)
        return self._enqueue({"message": self._public(msg)})

    def user_presses(
        self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None, strict: bool = True
    ) -> JSON:
        """The user presses an inline button; returns the queued Update with a callback_query.

        With ``strict`` (default) ``data`` must belong to a button of the message's current keyboard, since
        Telegram only accepts presses on buttons that exist.
        """
        user = self._require_user(user_id)
        chat = self._require_chat(user_id if chat_id is None else chat_id)
        msg = self._messages.get((chat.id, message_id))
        if msg is None:
            raise ValueError(f"no message {message_id} in chat {chat.id}")
        if strict:
            markup = msg.get("reply_markup") or {}
            datas = {b.get("callback_data") for row in markup.get("inline_keyboard", []) for b in row}
            if data not in datas:
                raise ValueError(f"message {message_id} has no button with callback_data {data!r}")
        query_id = str(self.bot_user["id"] * 1_000_003 + next(self._ids))
        digest = hashlib.sha256(f"{self.bot_user['id']}:{chat.id}".encode()).digest()
        query = {
            "id": query_id,
            "from": dict(user),
            "message": self._public(msg),
            "chat_instance": str(int.from_bytes(digest[:8], "big", signed=True)),
            "data": data,
        }
        self._callback_queries[query_id] = {"answered": False, "query": query}
        return self._enqueue({"callback_query": query})

    def user_edits(self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None = None) -> JSON:
        """The user edits one of their messages; returns the queued Update with ``edited_message``."""
        self._require_user(user_id)
        chat = self._require_chat(user_id if chat_id is None else chat_id)
        msg = self._messages.get((chat.id, message_id))
        if msg is None or msg["from"]["id"] != user_id:
            raise ValueError(f"user {user_id} has no message {message_id} in chat {chat.id}")
        msg["text"] = new_text
        msg["edit_date"] = int(self._wall())
        entities = [
            {
                "type": "bot_command",
                "offset": utf16_len(new_text[: m.start()]),
                "length": utf16_len(m.group()),
            }
            for m in _BOT_COMMAND_RE.finditer(new_text)
        ]
        self._set_entities(msg, "entities", entities)
        return self._enqueue({"edited_message": self._public(msg)})

    def inject_raw(self, update: JSON) -> JSON:
        """Queue an Update as given (keeps its update_id, so the same update can be delivered twice)."""
        update = copy.deepcopy(update)
        if "update_id" in update:
            self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        return self._enqueue(update, keep_id=True)

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by getUpdates / acknowledged by the webhook."""
        return copy.deepcopy(list(self._updates))

    # ------------------------------------------------------------------ outbound records

    def sent_messages(self, chat_id: int | None = None, *, include_deleted: bool = False) -> list[JSON]:
        """Messages the bot sent (current state after edits), oldest first; ``reply_markup`` is kept as
        sent, including ForceReply / reply keyboards that the API's Message objects omit."""
        deleted = self._deleted
        out = []
        for key in self._outbound:
            if chat_id is not None and key[0] != chat_id:
                continue
            if key in deleted and not include_deleted:
                continue
            out.append(copy.deepcopy(self._messages[key]))
        return out

    def message(self, chat_id: int, message_id: int) -> JSON | None:
        """Any stored message (user's or bot's) in its current state."""
        msg = self._messages.get((chat_id, message_id))
        return copy.deepcopy(msg) if msg is not None else None

    def calls_to(self, method: str, *, status: int | None = None) -> list[ApiCall]:
        """The logged calls of one method (case-insensitive), optionally only those with ``status``."""
        m = method.lower()
        return [c for c in self.calls if c.method.lower() == m and (status is None or c.status == status)]

    @property
    def webhook_url(self) -> str:
        return str(self._webhook.get("url", ""))

    # ------------------------------------------------------------------ failure injection

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = None,
        description: str | None = None,
        parameters: JSON | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` ("*" = any) with an error instead of handling them.

        429 gets ``retry_after`` (default 1) in the description and parameters, as Telegram sends it.
        With ``chat_id`` only calls addressed to that chat match.
        """
        params = dict(parameters or {})
        if status == 429:
            ra = 1 if retry_after is None else retry_after
            params["retry_after"] = ra
            description = description or f"Too Many Requests: retry after {ra}"
        err = ApiError(status, description or _default_description(status), params or None)
        self._rules.append(_Rule(method.lower(), times, chat_id, error=err))

    def stall_next(self, method: str, seconds: float, *, times: int = 1, chat_id: int | str | None = None) -> None:
        """Handle the next ``times`` calls of ``method`` (it takes effect: the message is sent), then hold the
        answer for ``seconds``: a client whose read timeout is shorter sees a timeout after Telegram accepted."""
        self._stalls.append(_Rule(method.lower(), times, chat_id, seconds=seconds))

    @property
    def down(self) -> str | None:
        """None while up, else how it is down ("refused" or "502")."""
        return self._down

    async def go_down(self, mode: str = "refused") -> None:
        """The Bot API becomes unreachable until :meth:`come_up`.

        ``"refused"``: the port stops listening and every open connection (long polls, keep-alive ones) is
        cut, so new requests get "connection refused" and those in flight a dropped connection; ``"502"``:
        every request is answered ``502 Bad Gateway`` with an HTML body, as Telegram's front proxy does when
        the Bot API behind it is down. Nothing reaching the server meanwhile takes effect.
        """
        if mode not in ("refused", "502"):
            raise ValueError("mode must be 'refused' or '502'")
        assert self._runner is not None, "server not started"
        self._down = mode
        if mode == "refused" and self._site is not None:
            await self._site.stop()
            self._site = None
            server = self._runner.server
            for handler in list(server.connections if server is not None else ()):
                transport = handler.transport
                if transport is not None:
                    transport.abort()

    async def come_up(self) -> None:
        """Reachable again, on the same port."""
        assert self._runner is not None, "server not started"
        if self._site is None:
            self._site = web.TCPSite(self._runner, self.host, self._port, reuse_address=True)
            await self._site.start()
        self._down = None
        if self._wake_webhook is not None:
            self._wake_webhook.set()  # updates queued meanwhile go out now
        self._notify()

    def delay_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` for ``seconds`` before handling them normally.

        Like real Telegram, a request whose client gave up still takes effect (the message is sent).
        """
        self._delays.append(_Rule(method.lower(), times, seconds=seconds))

    # ------------------------------------------------------------------ waiting helpers

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking after every request / update; TimeoutError else."""
        assert self._activity is not None, "server not started"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            self._activity.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.1)):
                    await self._activity.wait()

    async def wait_for_messages(self, chat_id: int | None = None, count: int = 1, timeout: float = 5.0) -> list[JSON]:
        """Wait until the bot has sent at least ``count`` messages (to ``chat_id``); returns them all."""
        await self.wait_for(lambda: len(self.sent_messages(chat_id)) >= count, timeout)
        return self.sent_messages(chat_id)

    async def wait_until_consumed(self, timeout: float = 5.0) -> None:
        """Wait until every queued update was confirmed by getUpdates or acknowledged by the webhook."""
        await self.wait_for(lambda: not self._updates, timeout)

    # ------------------------------------------------------------------ HTTP plumbing

    def _notify(self) -> None:
        if self._activity is not None:
            self._activity.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the server shuts down."""
        assert self._closing is not None
        # asyncio.timeout rather than wait_for: on 3.11 wait_for can swallow a cancel racing the event.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    async def _read_params(self, request: web.Request) -> JSON:
        raw: JSON = dict(request.query)
        if request.method != "POST" or not request.can_read_body:
            return raw
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError(400, "Bad Request: can't parse JSON request body") from exc
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: JSON request body must be an object")
            raw.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    raw[key] = Upload(value.filename, value.content_type, value.file.read())
                else:
                    raw[key] = value
        return raw

    def _take_rule(self, rules: list[_Rule], method: str, chat_id: Any) -> _Rule | None:
        for rule in rules:
            if rule.method not in ("*", method.lower()):
                continue
            if rule.chat_id is not None and rule.chat_id != chat_id:
                continue
            rule.times -= 1
            if rule.times <= 0:
                rules.remove(rule)
            return rule
        return None

    def _respond(self, method: str, params: JSON, status: int, body: JSON) -> web.Response:
        self.calls.append(ApiCall(time.monotonic(), method, params, status))
        for hook in self.response_hooks:
            hook(method, params, status, body)
        self._notify()
        return web.json_response(body, status=status, dumps=functools.partial(json.dumps, ensure_ascii=False))

    def _error(self, method: str, params: JSON, err: ApiError) -> web.Response:
        body: JSON = {"ok": False, "error_code": err.code, "description": err.description}
        if err.parameters:
            body["parameters"] = err.parameters
        return self._respond(method, params, err.code, body)

    async def _handle(self, request: web.Request) -> web.Response:
        method_name = request.match_info["method"]
        if self._down is not None:  # "refused" too: a request that slipped in as the port closed
            self.calls.append(ApiCall(time.monotonic(), method_name, {}, 502))
            self._notify()
            return web.Response(status=502, text=_BAD_GATEWAY, content_type="text/html")
        if request.match_info["token"] != self.token:
            return self._error(method_name, {}, ApiError(401, "Unauthorized"))
        spec = _METHODS.get(method_name.lower())
        if spec is None:
            return self._error(method_name, {}, ApiError(404, "Not Found"))
        params: JSON = {}
        try:
            raw = await self._read_params(request)
            # Resolve attach://name references to the multipart part they point at.
            for key, kind in spec.all_params().items():
                value = raw.get(key)
                if kind == FILE and isinstance(value, str) and value.startswith("attach://"):
                    part = raw.get(value[len("attach://") :])
                    if not isinstance(part, Upload):
                        raise ApiError(400, f"Bad Request: can't find attached file for {key}")
                    raw[key] = part
            params = dict(raw)
            for key, kind in spec.all_params().items():
                if raw.get(key) is not None:
                    params[key] = _decode(key, kind, raw[key])
        except ApiError as err:
            return self._error(spec.name, params or {}, err)

        delay = self._take_rule(self._delays, spec.name, params.get("chat_id"))
        if delay is not None:
            await self._sleep(delay.seconds)
        rule = self._take_rule(self._rules, spec.name, params.get("chat_id"))
        if rule is not None and rule.error is not None:
            return self._error(spec.name, params, rule.error)
        try:
            result = await spec.handler(self, params)
        except ApiError as err:
            return self._error(spec.name, params, err)
        stall = self._take_rule(self._stalls, spec.name, params.get("chat_id"))
        if stall is not None:
            self._notify()  # the call took effect: waiters may look now
            await self._sleep(stall.seconds)
        return self._respond(spec.name, params, 200, {"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        file_id = self._file_paths.get(request.match_info["path"])
        if file_id is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=self._files[file_id].data)

    # ------------------------------------------------------------------ model helpers

    def _require_user(self, user_id: int) -> JSON:
        try:
            return self._users[user_id]
        except KeyError:
            raise ValueError(f"unknown user {user_id}; call add_user() first") from None

    def _require_chat(self, chat_id: int) -> _Chat:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise ValueError(f"unknown chat {chat_id}; call add_user() / add_group() first") from None

    def _lookup_chat(self, chat_id: int | str) -> _Chat:
        """Resolve a chat_id parameter or raise the 400 Telegram gives for chats the bot cannot see."""
        if isinstance(chat_id, str):
            name = chat_id[1:].lower()
            for named in self._chats.values():
                if named.type != "private" and (named.username or "").lower() == name:
                    return named
            raise ApiError(400, "Bad Request: chat not found")
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats or chat_id == 0:
                raise ApiError(400, "Bad Request: chat not found")
            if chat_id > 0:
                self.add_user(chat_id, f"User{chat_id}")
            else:
                self.add_group(chat_id, f"Group {chat_id}")
            return self._chats[chat_id]
        return chat

    def _writable_chat(self, chat_id: int | str) -> _Chat:
        chat = self._lookup_chat(chat_id)
        if chat.block_reason:
            raise ApiError(403, chat.block_reason)
        if not chat.started:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    def _check_rate(self, chat: _Chat) -> None:
        retry = self._limiter.check(chat.id, chat.type != "private", time.monotonic())
        if retry is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    def _new_message(
        self,
        chat: _Chat,
        sender: JSON,
        *,
        reply_to: JSON | None = None,
        reply_markup: JSON | None = None,
        **content: Any,
    ) -> JSON:
        msg: JSON = {
            "message_id": chat.next_message_id,
            "from": {k: sender[k] for k in _USER_FIELDS if k in sender},
            "chat": chat.public(),
            "date": int(self._wall()),
        }
        chat.next_message_id += 1
        for key, value in content.items():
            if value not in (None, []):
                msg[key] = value
        if reply_to is not None:
            snapshot = self._public(reply_to)
            snapshot.pop("reply_to_message", None)  # Telegram does not nest replies further
            msg["reply_to_message"] = snapshot
        if reply_markup is not None:
            msg["reply_markup"] = reply_markup
        self._messages[(chat.id, msg["message_id"])] = msg
        if sender.get("is_bot"):
            self._outbound.append((chat.id, msg["message_id"]))
        self._notify()
        return msg

    @staticmethod
    def _public(msg: JSON) -> JSON:
        """The Message object as the API shows it: only inline keyboards appear in ``reply_markup``."""
        out = copy.deepcopy(msg)
        markup = out.get("reply_markup")
        if markup is not None and "inline_keyboard" not in markup:
            del out["reply_markup"]
        return out

    @staticmethod
    def _set_entities(msg: JSON, key: str, entities: list[JSON] | None) -> None:
        if entities:
            msg[key] = entities
        else:
            msg.pop(key, None)

    def _enqueue(self, update: JSON, *, keep_id: bool = False) -> JSON:
        if not keep_id or "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
            self._next_update_id += 1
        kind = next((k for k in update if k != "update_id"), "")
        allowed = self._allowed_updates
        # Telegram filters when the update is created, so later allowed_updates changes do not resurrect it.
        if (kind not in allowed) if allowed else (kind in _OPT_IN_UPDATES):
            return update
        self._updates.append(copy.deepcopy(update))
        self._resolve_pollers("update")
        if self._wake_webhook is not None:
            self._wake_webhook.set()
        self._notify()
        return update

    def _resolve_pollers(self, outcome: str) -> None:
        for fut in self._pollers:
            if not fut.done():
                fut.set_result(outcome)
        self._pollers.clear()

    def _format_text(self, text: str, parse_mode: str | None, entities: Any, *, what: str) -> tuple[str, list[JSON]]:
        """Apply parse_mode or explicit entities; ``what`` is "text" or "caption" for error messages."""
        if parse_mode and parse_mode.lower() == "html":
            try:
                text, ents = parse_html(text, strict_ampersand=self.strict_html_ampersand)
            except EntityParseError as exc:
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        elif parse_mode and parse_mode.lower() not in ("markdown", "markdownv2"):
            raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
        else:
            # Markdown modes are passed through unparsed (not modelled); explicit entities are kept.
            ents = list(entities) if isinstance(entities, list) else []
        limit = MAX_TEXT if what == "text" else MAX_CAPTION
        if len(text) > limit:
            raise ApiError(400, f"Bad Request: message {'is' if what == 'text' else 'caption is'} too long")
        return text, ents

    @staticmethod
    def _check_markup(markup: Any, *, inline_only: bool = False) -> JSON | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise ApiError(
                    400,
                    'Bad Request: can\'t parse inline keyboard button: field "inline_keyboard" '
                    "must be an Array of Arrays",
                )
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                        raise ApiError(
                            400,
                            'Bad Request: can\'t parse inline keyboard button: Field "text" must be of type String',
                        )
                    if "callback_data" in button:
                        data = button["callback_data"]
                        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                            raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                    elif len(button) == 1:
                        raise ApiError(
                            400,
                            "Bad Request: can't parse inline keyboard button: Text buttons are "
                            "unallowed in the inline keyboard",
                        )
            return markup
        if inline_only:
            raise ApiError(400, "Bad Request: inline keyboard expected")
        if any(k in markup for k in ("force_reply", "keyboard", "remove_keyboard")):
            return markup
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")

    def _reply_target(self, chat: _Chat, p: JSON) -> JSON | None:
        rp = p.get("reply_parameters")
        if isinstance(rp, dict) and rp.get("message_id") is not None:
            target_chat = self._lookup_chat(rp["chat_id"]) if rp.get("chat_id") is not None else chat
            mid, allow = rp["message_id"], bool(rp.get("allow_sending_without_reply"))
        elif p.get("reply_to_message_id") is not None:
            target_chat, mid = chat, p["reply_to_message_id"]
            allow = bool(p.get("allow_sending_without_reply"))
        else:
            return None
        key = (target_chat.id, int(mid))
        target = self._messages.get(key)
        if target is None or key in self._deleted:
            if allow:
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _store_file(self, kind: str, data: bytes, meta: JSON, ext: str) -> JSON:
        n = next(self._ids)
        prefix = {"document": "BQACAgIAAxkBAAI", "photo": "AgACAgIAAxkBAAI"}[kind]
        file_id = f"{prefix}{n:06d}{hashlib.sha1(data + str(n).encode()).hexdigest()[:24]}"
        unique_id = f"AgAD{hashlib.sha1(data + kind.encode() + str(n).encode()).hexdigest()[:12]}"
        path = f"{kind}s/file_{n}{ext}"
        meta = {"file_id": file_id, "file_unique_id": unique_id, **meta, "file_size": len(data)}
        self._files[file_id] = _StoredFile(kind, data, unique_id, path, meta)
        self._file_paths[path] = file_id
        return meta

    def _input_file(self, value: Any, kind: str, name: str) -> Upload | _StoredFile:
        if isinstance(value, Upload):
            if not value.data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            return value
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"Bad Request: there is no {name} in the request")
        if value.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: failed to get HTTP URL content")  # no internet in tests
        stored = self._files.get(value)
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise ApiError(400, f"Bad Request: can't use file of type {stored.kind.title()} as {kind.title()}")
        return stored

    async def _send_media(self, p: JSON, kind: str) -> JSON:
        chat = self._writable_chat(p["chat_id"])
        source = self._input_file(p.get(kind), kind, kind)
        caption, caption_entities = self._format_text(
            p.get("caption") or "", p.get("parse_mode"), p.get("caption_entities"), what="caption"
        )
        markup = self._check_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat, p)
        data = source.data
        if kind == "photo":
            if isinstance(source, Upload):
                size = image_size(data)
                if size is None:
                    raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
                w, h = size
                if w + h > 10000 or max(w, h) > 20 * max(1, min(w, h)):
                    raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            else:
                w, h = source.meta["width"], source.meta["height"]
        self._check_rate(chat)

        media: list[JSON] | JSON  # a photo comes in several sizes; a document is one file
        if kind == "photo":
            if isinstance(source, Upload):
                variants = photo_sizes(w, h)
                media = []
                for vw, vh in variants:
                    # Smaller variants are re-encoded by Telegram; estimate their size by pixel ratio.
                    part = data if (vw, vh) == variants[-1] else data[: max(1, len(data) * vw * vh // (w * h))]
                    media.append(self._store_file("photo", part, {"width": vw, "height": vh}, ".jpg"))
            else:
                media = [dict(source.meta)]
            content: JSON = {"photo": media}
        else:
            if isinstance(source, Upload):
                filename = source.filename or "document"
                mime = source.content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
                ext = "." + filename.rsplit(".", 1)[1] if "." in filename else ""
                media = self._store_file("document", data, {"file_name": filename, "mime_type": mime}, ext)
            else:
                media = dict(source.meta)
            content = {"document": media}
        msg = self._new_message(
            chat,
            self.bot_user,
            reply_to=reply_to,
            reply_markup=markup,
            **content,
            caption=caption or None,
            caption_entities=caption_entities,
        )
        record = {
            "chat_id": chat.id,
            "message_id": msg["message_id"],
            "content": data,
            "caption": caption or None,
            kind: copy.deepcopy(media),
        }
        if isinstance(media, dict):
            record.update(file_name=media.get("file_name"), mime_type=media.get("mime_type"))
            self.documents.append(record)
        else:
            record.update(width=media[-1]["width"], height=media[-1]["height"])
            self.photos.append(record)
        return self._public(msg)

    def _editable(self, p: JSON) -> JSON:
        if p.get("inline_message_id") is not None:
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")  # inline messages are not modelled
        if p.get("chat_id") is None or p.get("message_id") is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        chat = self._lookup_chat(p["chat_id"])
        key = (chat.id, p["message_id"])
        msg = self._messages.get(key)
        if msg is None or key in self._deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return msg

    # ------------------------------------------------------------------ webhook sender

    async def _webhook_loop(self) -> None:
        assert self._wake_webhook is not None and self._session is not None and self._closing is not None
        while not self._closing.is_set():
            self._wake_webhook.clear()
            url = self._webhook.get("url")
            if not url or not self._updates or self._down:  # Telegram delivers nothing while it is down
                await self._wake_webhook.wait()
                continue
            update = self._updates[0]
            headers = {"Content-Type": "application/json"}
            if self._webhook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = self._webhook["secret_token"]
            status: int | None = None
            error: str | None = None
            try:
                async with self._session.post(
                    url,
                    data=json.dumps(update, ensure_ascii=False).encode(),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                ) as resp:
                    status = resp.status
                    await resp.read()
                    if not 200 <= status <= 299:
                        error = f"Wrong response from the webhook: {status} {resp.reason}"
            except TimeoutError:
                error = "Read timeout expired"
            except aiohttp.ClientConnectorDNSError:
                error = "Failed to resolve host: Name or service not known"
            except aiohttp.ClientConnectorError:
                error = "Connection refused"
            except Exception as exc:  # any failure counts as a failed delivery; the loop must not die
                error = f"{type(exc).__name__}: {exc}"
            self.webhook_deliveries.append(WebhookDelivery(time.monotonic(), update["update_id"], status, error))
            self._notify()
            if error is None:
                if self._updates and self._updates[0] is update:
                    self._updates.popleft()
                self._webhook_attempts = 0
                continue
            self._webhook_last_error = (int(self._wall()), error)
            self._webhook_attempts += 1
            if self._webhook_attempts > len(self.webhook_retry_delays):
                # Telegram eventually gives up on an update; drop it so later ones are not stuck forever.
                if self._updates and self._updates[0] is update:
                    self._updates.popleft()
                self._webhook_attempts = 0
                continue
            await self._sleep(self.webhook_retry_delays[self._webhook_attempts - 1])

    # ------------------------------------------------------------------ API methods

    @_api("getMe")
    async def _get_me(self, p: JSON) -> JSON:
        return dict(self.bot_user)

    @_api("logOut")
    async def _log_out(self, p: JSON) -> bool:
        return True

    @_api("close")
    async def _close(self, p: JSON) -> bool:
        return True

    @_api("getUpdates", offset=INT, limit=INT, timeout=INT, allowed_updates=OBJ)
    async def _get_updates(self, p: JSON) -> list[JSON]:
        if self._webhook.get("url"):
            raise ApiError(409, _WEBHOOK_CONFLICT)
        if p.get("allowed_updates") is not None:
            self._allowed_updates = list(p["allowed_updates"]) or None
        offset = p.get("offset")
        if offset is not None:
            if offset < 0:
                while len(self._updates) > -offset:
                    self._updates.popleft()
            else:
                while self._updates and self._updates[0]["update_id"] < offset:
                    self._updates.popleft()
            self._notify()
        limit = min(max(p.get("limit") or 100, 1), 100)
        timeout = max(p.get("timeout") or 0, 0)
        # A new getUpdates ends any long poll still waiting, as Telegram does (409 for the old one).
        self._resolve_pollers("conflict")
        if not self._updates and timeout > 0:
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._pollers.add(fut)
            try:
                await asyncio.wait({fut}, timeout=timeout)
            finally:
                self._pollers.discard(fut)
            if fut.done() and fut.result() == "conflict":
                raise ApiError(409, _POLL_CONFLICT)
        return copy.deepcopy(list(itertools.islice(self._updates, limit)))

    @_api(
        "setWebhook",
        url=STR,
        secret_token=STR,
        drop_pending_updates=BOOL,
        allowed_updates=OBJ,
        max_connections=INT,
        ip_address=STR,
    )
    async def _set_webhook(self, p: JSON) -> bool:
        url = p.get("url") or ""
        if url and not url.startswith(("https://", "http://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token")
        if secret is not None and not _SECRET_RE.match(secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        max_conn = p.get("max_connections")
        if max_conn is not None and not 1 <= max_conn <= 100:
            raise ApiError(400, "Bad Request: bad webhook: max_connections must be between 1 and 100")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        if p.get("allowed_updates") is not None:
            self._allowed_updates = list(p["allowed_updates"]) or None
        if not url:
            self._webhook = {}
        else:
            self._webhook = {
                "url": url,
                "secret_token": secret,
                "max_connections": max_conn or 40,
                "ip_address": p.get("ip_address") or "127.0.0.1",
            }
        self._webhook_attempts = 0
        self._webhook_last_error = None
        assert self._wake_webhook is not None
        self._wake_webhook.set()
        return True

    @_api("deleteWebhook", drop_pending_updates=BOOL)
    async def _delete_webhook(self, p: JSON) -> bool:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = {}
        self._webhook_attempts = 0
        return True

    @_api("getWebhookInfo")
    async def _get_webhook_info(self, p: JSON) -> JSON:
        info: JSON = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook:
            info["ip_address"] = self._webhook["ip_address"]
            info["max_connections"] = self._webhook["max_connections"]
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            if self._webhook_last_error:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    @_api(
        "sendMessage",
        chat_id=CHAT,
        text=STR,
        parse_mode=STR,
        entities=OBJ,
        reply_markup=OBJ,
        reply_parameters=OBJ,
        legacy=_LEGACY_REPLY,
    )
    async def _send_message(self, p: JSON) -> JSON:
        if p.get("chat_id") is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = self._writable_chat(p["chat_id"])
        text, entities = self._format_text(p.get("text") or "", p.get("parse_mode"), p.get("entities"), what="text")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        markup = self._check_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat, p)
        self._check_rate(chat)
        msg = self._new_message(
            chat, self.bot_user, text=text, entities=entities, reply_to=reply_to, reply_markup=markup
        )
        return self._public(msg)

    @_api(
        "sendDocument",
        chat_id=CHAT,
        document=FILE,
        caption=STR,
        parse_mode=STR,
        caption_entities=OBJ,
        reply_markup=OBJ,
        reply_parameters=OBJ,
        legacy=_LEGACY_REPLY,
    )
    async def _send_document(self, p: JSON) -> JSON:
        if p.get("chat_id") is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        return await self._send_media(p, "document")

    @_api(
        "sendPhoto",
        chat_id=CHAT,
        photo=FILE,
        caption=STR,
        parse_mode=STR,
        caption_entities=OBJ,
        reply_markup=OBJ,
        reply_parameters=OBJ,
        legacy=_LEGACY_REPLY,
    )
    async def _send_photo(self, p: JSON) -> JSON:
        if p.get("chat_id") is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        return await self._send_media(p, "photo")

    @_api(
        "editMessageText",
        chat_id=CHAT,
        message_id=INT,
        inline_message_id=STR,
        text=STR,
        parse_mode=STR,
        entities=OBJ,
        reply_markup=OBJ,
    )
    async def _edit_message_text(self, p: JSON) -> JSON:
        msg = self._editable(p)
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = self._format_text(p.get("text") or "", p.get("parse_mode"), p.get("entities"), what="text")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        # Omitting reply_markup in an edit removes the inline keyboard, as on Telegram.
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        old_markup = msg.get("reply_markup") if "inline_keyboard" in (msg.get("reply_markup") or {}) else None
        if text == msg["text"] and entities == msg.get("entities", []) and markup == old_markup:
            raise ApiError(400, _NOT_MODIFIED)
        msg["text"] = text
        self._set_entities(msg, "entities", entities)
        self._set_markup(msg, markup)
        msg["edit_date"] = int(self._wall())
        self._notify()
        return self._public(msg)

    @_api("editMessageReplyMarkup", chat_id=CHAT, message_id=INT, inline_message_id=STR, reply_markup=OBJ)
    async def _edit_message_reply_markup(self, p: JSON) -> JSON:
        msg = self._editable(p)
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        old_markup = msg.get("reply_markup") if "inline_keyboard" in (msg.get("reply_markup") or {}) else None
        if markup == old_markup or (not markup and not old_markup):
            raise ApiError(400, _NOT_MODIFIED)
        self._set_markup(msg, markup)
        msg["edit_date"] = int(self._wall())
        self._notify()
        return self._public(msg)

    @staticmethod
    def _set_markup(msg: JSON, markup: JSON | None) -> None:
        if markup and markup.get("inline_keyboard"):
            msg["reply_markup"] = markup
        else:
            msg.pop("reply_markup", None)

    @_api("deleteMessage", chat_id=CHAT, message_id=INT)
    async def _delete_message(self, p: JSON) -> bool:
        if p.get("chat_id") is None or p.get("message_id") is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        chat = self._lookup_chat(p["chat_id"])
        key = (chat.id, p["message_id"])
        if key not in self._messages or key in self._deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        self.deleted_messages.append(key)
        self._deleted.add(key)
        self._notify()
        return True

    @_api("answerCallbackQuery", callback_query_id=STR, text=STR, show_alert=BOOL, url=STR, cache_time=INT)
    async def _answer_callback_query(self, p: JSON) -> bool:
        entry = self._callback_queries.get(p.get("callback_query_id") or "")
        if entry is None or entry["answered"]:
            raise ApiError(400, _QUERY_INVALID)
        if len(p.get("text") or "") > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        entry["answered"] = True
        self.callback_answers.append(
            {
                "callback_query_id": p["callback_query_id"],
                "text": p.get("text"),
                "show_alert": bool(p.get("show_alert")),
                "url": p.get("url"),
                "cache_time": p.get("cache_time"),
                "data": entry["query"].get("data"),
                "user_id": entry["query"]["from"]["id"],
            }
        )
        return True

    @staticmethod
    def _commands_key(p: JSON) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        if not isinstance(scope, dict) or not isinstance(scope.get("type"), str):
            raise ApiError(400, "Bad Request: can't parse BotCommandScope JSON object")
        return json.dumps(scope, sort_keys=True), p.get("language_code") or ""

    @_api("setMyCommands", commands=OBJ, scope=OBJ, language_code=STR)
    async def _set_my_commands(self, p: JSON) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        clean = []
        for cmd in commands:
            if not isinstance(cmd, dict) or not _COMMAND_NAME_RE.match(str(cmd.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            desc = cmd.get("description")
            if not isinstance(desc, str) or not 1 <= len(desc) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": cmd["command"], "description": desc})
        key = self._commands_key(p)
        if clean:
            self.commands[key] = clean
        else:
            self.commands.pop(key, None)
        return True

    @_api("getMyCommands", scope=OBJ, language_code=STR)
    async def _get_my_commands(self, p: JSON) -> list[JSON]:
        return copy.deepcopy(self.commands.get(self._commands_key(p), []))

    @_api("deleteMyCommands", scope=OBJ, language_code=STR)
    async def _delete_my_commands(self, p: JSON) -> bool:
        self.commands.pop(self._commands_key(p), None)
        return True

    @_api("getChat", chat_id=CHAT)
    async def _get_chat(self, p: JSON) -> JSON:
        if p.get("chat_id") is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        chat = self._lookup_chat(p["chat_id"])
        info = chat.public()
        info.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        )
        if chat.type != "private":
            info["permissions"] = {"can_send_messages": True}
        return info

    @_api("getFile", file_id=STR)
    async def _get_file(self, p: JSON) -> JSON:
        stored = self._files.get(p.get("file_id") or "")
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": p["file_id"],
            "file_unique_id": stored.unique_id,
            "file_size": len(stored.data),
            "file_path": stored.path,
        }
