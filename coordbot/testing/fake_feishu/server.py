"""The fake Feishu Open Platform; see the package docstring for the test-side API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

JSON = dict[str, Any]

RECEIVE_ID_TYPES = frozenset({"open_id", "union_id", "user_id", "email", "chat_id"})
MSG_TYPES = frozenset(
    {"text", "post", "image", "file", "audio", "media", "sticker", "interactive", "share_chat", "share_user"}
)
POST_TAGS = frozenset({"text", "a", "at", "img", "media", "emotion", "hr", "code_block", "md"})
POST_STYLES = frozenset({"bold", "underline", "lineThrough", "italic"})
TEXT_BODY_MAX = 150 * 1024
RICH_BODY_MAX = 30 * 1024
FILE_MAX = 30 * 1024 * 1024
FILE_TYPES = frozenset({"opus", "mp4", "pdf", "doc", "xls", "ppt", "stream"})
UUID_TTL = 3600.0
TOKEN_TTL = 7200
TOKEN_RENEW_BELOW = 1800.0  # a new token is issued only when the current one has under 30 minutes left


@dataclass
class RateLimits:
    """im/v1/messages: 1000/min and 50/s per app (HTTP 429, code 99991400), 5/s to one user or chat (HTTP
    400, code 230020). im/v1/files: 1000/min and 50/s. Sliding windows shortened by ``slack`` for jitter."""

    enabled: bool = True
    app_per_second: int = 50
    app_per_minute: int = 1000
    per_receiver_per_second: int = 5
    slack: float = 0.05
    time_scale: float = 1.0  # windows are multiplied by this (a bench may compress time)


class _Window:
    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.times: deque[float] = deque()

    def wait(self, now: float, slack: float) -> float:
        window = max(0.0, self.seconds - slack)
        while self.times and self.times[0] <= now - window:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        return self.times[len(self.times) - self.limit] + self.seconds - now


class _Limiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.app: dict[str, list[_Window]] = {}
        self.receivers: dict[str, _Window] = {}

    def check(self, api: str, receiver: str | None, now: float) -> tuple[str, float] | None:
        """("app"|"receiver", seconds to wait) when refused; else the call is recorded."""
        lim = self.limits
        if not lim.enabled:
            return None
        scale = lim.time_scale
        windows = self.app.setdefault(
            api, [_Window(lim.app_per_second, 1.0 * scale), _Window(lim.app_per_minute, 60.0 * scale)]
        )
        waits = [w.wait(now, lim.slack) for w in windows]
        if max(waits) > 0:
            return "app", max(waits)
        rw = None
        if receiver is not None:
            rw = self.receivers.setdefault(receiver, _Window(lim.per_receiver_per_second, 1.0 * scale))
            wait = rw.wait(now, lim.slack)
            if wait > 0:
                return "receiver", wait
        for w in windows:
            w.times.append(now)
        if rw is not None:
            rw.times.append(now)
        return None


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}


@dataclass
class User:
    open_id: str
    name: str
    visible: bool = True  # inside the app's availability (可用范围); else 230013
    blocked_bot: bool = False  # stopped the bot's messages: 230053


@dataclass
class Group:
    chat_id: str
    name: str
    bot_in: bool = True  # else 230002


@dataclass
class _Rule:
    api: str
    times: int
    status: int
    code: int
    msg: str
    headers: dict[str, str] = field(default_factory=dict)


def _aes_encrypt(plaintext: str, encrypt_key: str) -> str:
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data) + enc.finalize()).decode()


def _text_of(msg_type: str, content: JSON) -> str:
    """What the person reads: the text of a text/post/card message, one line per paragraph."""
    if msg_type == "text":
        return str(content.get("text", ""))
    if msg_type == "post":
        body = next(iter(content.values()))
        lines = []
        for para in body.get("content", []):
            lines.append("".join(str(e.get("text", "")) for e in para))
        return "\n".join(lines)
    if msg_type == "interactive":
        out = []
        for el in content.get("elements", []):
            if el.get("tag") == "div":
                out.append(str((el.get("text") or {}).get("content", "")))
            elif el.get("tag") == "markdown":
                out.append(str(el.get("content", "")))
        return "\n".join(out)
    if msg_type == "file":
        return ""
    return ""


class FakeFeishu:
    def __init__(
        self,
        *,
        app_id: str = "cli_a1b2c3d4e5f60718",
        app_secret: str = "app-secret-for-tests",
        verification_token: str = "verification-token-for-tests",
        encrypt_key: str = "encrypt-key-for-tests",
        rate_limits: RateLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int = TOKEN_TTL,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.verification_token = verification_token
        self.encrypt_key = encrypt_key
        self.rate_limits = rate_limits or RateLimits()
        self.host = host
        self._port = port
        self.token_ttl = token_ttl
        self.wall_clock = wall_clock
        self.event_url = ""  # coordbot's /feishu/events, as set in the developer console
        self.users: dict[str, User] = {}
        self.groups: dict[str, Group] = {}
        self.messages: list[JSON] = []  # every message the bot sent, oldest first
        self.files: dict[str, JSON] = {}
        self.calls: list[tuple[float, str, int, int]] = []  # (monotonic time, api, http status, code)
        self.events_sent: list[JSON] = []
        self.callback_answers: list[JSON] = []
        self.rate_limited = 0
        self.token_requests = 0
        self._tokens: dict[str, float] = {}  # token -> wall-clock expiry
        self._current = ""
        self._uuids: dict[str, tuple[float, JSON]] = {}
        self._rules: list[_Rule] = []
        self._outage = False
        self._lose: dict[str, int] = {}
        self._limiter = _Limiter(self.rate_limits)
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    # ---- lifecycle ----

    async def start(self) -> FakeFeishu:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/open-apis/auth/v3/tenant_access_token/internal", self._token),
                web.post("/open-apis/im/v1/messages", self._messages),
                web.post("/open-apis/im/v1/files", self._upload),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeFeishu:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # ---- the world ----

    def add_user(self, user_id: str, name: str = "用户", *, visible: bool = True) -> User:
        user = User(user_id, name, visible=visible)
        self.users[user_id] = user
        return user

    def add_group(self, chat_id: str, name: str, *, bot_in: bool = True) -> Group:
        group = Group(chat_id, name, bot_in=bot_in)
        self.groups[chat_id] = group
        return group

    def sent_to(self, user_id: str) -> list[JSON]:
        """What the bot sent to a user (by open_id) or a group (by chat_id), oldest first."""
        return [m for m in self.messages if m["to"] == user_id]

    def fail_next(
        self, n: int = 1, code: int = 230020, *, status: int = 400, api: str = "messages", msg: str = "injected"
    ) -> None:
        headers = {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": "1"} if status == 429 else {}
        self._rules.append(_Rule(api, n, status, code, msg, headers))

    def lose_next_answer(self, n: int = 1, *, api: str = "messages") -> None:
        """The next ``n`` calls are carried out but answered HTTP 504 (the answer lost on the way back)."""
        self._lose[api] = self._lose.get(api, 0) + n

    def outage(self, on: bool = True) -> None:
        """Every API call answers HTTP 502 until ``outage(False)``."""
        self._outage = on

    def expire_tokens(self) -> None:
        """Every issued token becomes invalid (as after a secret reset): calls answer 99991663."""
        self._tokens.clear()
        self._current = ""

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for_messages(self, user_id: str, count: int = 1, timeout: float = 5.0) -> list[JSON]:
        await self.wait_for(lambda: len(self.sent_to(user_id)) >= count, timeout)
        return self.sent_to(user_id)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---- the API ----

    def _answer(
        self, data: JSON | None = None, *, status: int = 200, code: int = 0, msg: str = "success"
    ) -> web.Response:
        body: JSON = {"code": code, "msg": msg}
        if data is not None:
            body["data"] = data
        return web.json_response(body, status=status)

    def _injected(self, api: str) -> None:
        if self._outage:
            raise ApiError(502, -1, "Bad Gateway")
        for rule in self._rules:
            if rule.api in (api, "*") and rule.times > 0:
                rule.times -= 1
                if rule.times == 0:
                    self._rules.remove(rule)
                raise ApiError(rule.status, rule.code, rule.msg, rule.headers)

    def _authorise(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:]:
            raise ApiError(
                400, 99991661, "Missing access token for authorization. Please make a request with token attached."
            )
        expiry = self._tokens.get(auth[7:])
        if expiry is None or expiry <= self.wall_clock():
            raise ApiError(
                400, 99991663, "Invalid access token for authorization. Please make a request with token attached."
            )

    async def _guard(self, api: str, request: web.Request, handler: Callable[[], Any]) -> web.Response:
        status, code = 200, 0
        try:
            self._injected(api)
            result: web.Response = await handler()
            if self._lose.get(api, 0) > 0:
                self._lose[api] -= 1
                status = 504
                return web.Response(status=504, text="Gateway Timeout")
            return result
        except ApiError as exc:
            status, code = exc.status, exc.code
            if exc.status == 502:
                return web.Response(status=502, text="Bad Gateway")
            resp = self._answer(status=exc.status, code=exc.code, msg=exc.msg)
            resp.headers.update(exc.headers)
            return resp
        finally:
            self.calls.append((time.monotonic(), api, status, code))
            await self._notify()

    async def _token(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            self.token_requests += 1
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError(400, 9499, "bad request") from exc
            if body.get("app_id") != self.app_id:
                raise ApiError(400, 10003, "invalid param")
            if body.get("app_secret") != self.app_secret:
                raise ApiError(400, 10014, "app secret invalid")
            now = self.wall_clock()
            left = self._tokens.get(self._current, 0.0) - now
            if left < TOKEN_RENEW_BELOW:  # as documented: the same token until it has < 30 minutes left
                self._current = "t-" + secrets.token_hex(20)
                self._tokens[self._current] = now + self.token_ttl
                left = float(self.token_ttl)
            return web.json_response(
                {"code": 0, "msg": "ok", "tenant_access_token": self._current, "expire": int(left)}
            )

        return await self._guard("token", request, handle)

    def _rate(self, api: str, receiver: str | None) -> None:
        refused = self._limiter.check(api, receiver, time.monotonic())
        if refused is None:
            return
        self.rate_limited += 1
        where, wait = refused
        if where == "app":
            headers = {
                "x-ogw-ratelimit-limit": str(self.rate_limits.app_per_second),
                "x-ogw-ratelimit-reset": str(max(1, math.ceil(wait))),
            }
            raise ApiError(429, 99991400, "request trigger frequency limit", headers)
        raise ApiError(400, 230020, "This operation triggers the frequency limit.")

    async def _messages(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            self._authorise(request)
            id_type = request.query.get("receive_id_type", "")
            if id_type not in RECEIVE_ID_TYPES:
                raise ApiError(400, 230001, f"invalid receive_id_type: {id_type!r}")
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise ApiError(400, 230001, "request body is not JSON") from exc
            receive_id = body.get("receive_id")
            msg_type = body.get("msg_type")
            content_str = body.get("content")
            uuid = body.get("uuid")
            if not isinstance(receive_id, str) or not receive_id:
                raise ApiError(400, 230001, "receive_id is required")
            if msg_type not in MSG_TYPES:
                raise ApiError(400, 230001, f"invalid msg_type: {msg_type!r}")
            if not isinstance(content_str, str):
                raise ApiError(400, 230001, "content must be a JSON string")
            if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 50):
                raise ApiError(400, 230001, "uuid is longer than 50 characters")
            limit = TEXT_BODY_MAX if msg_type == "text" else RICH_BODY_MAX
            if len(raw) > limit:
                raise ApiError(400, 230025, "The length of the message content reaches its limit.")
            try:
                content = json.loads(content_str)
            except ValueError as exc:
                raise ApiError(400, 230001, "content is not valid JSON") from exc
            if not isinstance(content, dict):
                raise ApiError(400, 230001, "content is not a JSON object")
            self._receiver(id_type, receive_id)
            now = self.wall_clock()
            if uuid:
                for key in [k for k, (t, _) in self._uuids.items() if t <= now - UUID_TTL]:
                    del self._uuids[key]
                if uuid in self._uuids:  # at most one message per uuid within an hour: the first one's answer
                    return self._answer(self._uuids[uuid][1])
            buttons = self._validate(msg_type, content)
            self._rate("messages", receive_id)
            message_id = f"om_{next(self._ids):04d}{secrets.token_hex(12)}"
            chat_id = (
                receive_id if id_type == "chat_id" else "oc_p2p_" + hashlib.md5(receive_id.encode()).hexdigest()[:16]
            )
            data: JSON = {
                "message_id": message_id,
                "msg_type": msg_type,
                "create_time": str(int(now * 1000)),
                "update_time": str(int(now * 1000)),
                "deleted": False,
                "updated": False,
                "chat_id": chat_id,
                "sender": {"id": self.app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": "tk_fake"},
                "body": {"content": content_str},
            }
            self.messages.append(
                {
                    "message_id": message_id,
                    "to": receive_id,
                    "receive_id_type": id_type,
                    "chat_id": chat_id,
                    "msg_type": msg_type,
                    "content": content,
                    "text": _text_of(msg_type, content),
                    "buttons": buttons,
                    "uuid": uuid,
                    "file": self.files.get(content.get("file_key", "")) if msg_type == "file" else None,
                }
            )
            if uuid:
                self._uuids[uuid] = (now, data)
            return self._answer(data)

        return await self._guard("messages", request, handle)

    def _receiver(self, id_type: str, receive_id: str) -> None:
        if id_type == "chat_id":
            group = self.groups.get(receive_id)
            if group is None:
                raise ApiError(400, 230001, "invalid receive_id: chat not found")
            if not group.bot_in:
                raise ApiError(400, 230002, "The bot can not be outside the group.")
            return
        if id_type != "open_id":
            raise ApiError(400, 230001, f"this fake knows users by open_id only, not {id_type}")
        user = self.users.get(receive_id)
        if user is None or not user.visible:
            raise ApiError(400, 230013, "Bot has NO availability to this user.")
        if user.blocked_bot:
            raise ApiError(400, 230053, "The user has stopped the bot from sending messages.")

    def _validate(self, msg_type: str, content: JSON) -> list[tuple[str, Any]]:
        """Check the content's schema for its msg_type; the card's buttons as (label, value)."""
        bad = ApiError(400, 230001, f"content does not match msg_type {msg_type}")
        if msg_type == "text":
            if not isinstance(content.get("text"), str) or not content["text"]:
                raise bad
            return []
        if msg_type == "post":
            if not content or not all(isinstance(v, dict) for v in content.values()):
                raise bad
            for body in content.values():
                paragraphs = body.get("content")
                if not isinstance(paragraphs, list) or not paragraphs:
                    raise bad
                for para in paragraphs:
                    if not isinstance(para, list):
                        raise bad
                    for el in para:
                        if not isinstance(el, dict) or el.get("tag") not in POST_TAGS:
                            raise bad
                        if el["tag"] in ("text", "a", "code_block", "md") and not isinstance(el.get("text"), str):
                            raise bad
                        if el["tag"] == "a" and not el.get("href"):
                            raise bad
                        if not set(el.get("style", [])) <= POST_STYLES:
                            raise bad
            return []
        if msg_type == "interactive":
            if content.get("schema") == "2.0":
                elements = (content.get("body") or {}).get("elements", [])
                if any(e.get("tag") == "action" for e in elements):
                    raise ApiError(
                        400,
                        230099,
                        "Failed to create card content, ext=ErrCode: 200861; ErrMsg: cards of schema V2 no longer "
                        "support this capability; ErrorValue: unsupported tag action",
                    )
                return []
            elements = content.get("elements")
            if not isinstance(elements, list) or not elements:
                raise ApiError(400, 230099, "Failed to create card content, ext=ErrCode: 200621; parse card json err")
            buttons: list[tuple[str, Any]] = []
            for el in elements:
                if el.get("tag") == "action":
                    for b in el.get("actions", []):
                        label = ((b.get("text") or {}).get("content")) or ""
                        if b.get("tag") != "button" or not label or len(label) > 100:
                            raise ApiError(400, 230099, "Failed to create card content, ext=ErrCode: 200621")
                        buttons.append((label, b.get("value")))
            return buttons
        if msg_type == "file":
            info = self.files.get(str(content.get("file_key", "")))
            if info is None:
                raise ApiError(400, 230017, "Bot is NOT the owner of the resource.")
            return []
        return []

    async def _upload(self, request: web.Request) -> web.Response:
        async def handle() -> web.Response:
            self._authorise(request)
            if not request.content_type.startswith("multipart/"):
                raise ApiError(400, 234001, "Invalid request param.")
            fields: JSON = {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                if part.name == "file":
                    fields["file"] = await part.read(decode=False)
                    fields["filename"] = part.filename
                else:
                    fields[part.name or ""] = await part.text()
            if fields.get("file_type") not in FILE_TYPES or not fields.get("file_name") or "file" not in fields:
                raise ApiError(400, 234001, "Invalid request param.")
            data: bytes = bytes(fields["file"])
            if not data:
                raise ApiError(400, 234010, "File's size can't be 0.")
            if len(data) > FILE_MAX:
                raise ApiError(400, 234006, "The file size exceed the max value.")
            self._rate("files", None)
            key = "file_v3_" + secrets.token_hex(12)
            self.files[key] = {
                "file_key": key,
                "file_name": fields["file_name"],
                "file_type": fields["file_type"],
                "data": data,
            }
            return self._answer({"file_key": key})

        return await self._guard("files", request, handle)

    # ---- events to coordbot ----

    def _post_headers(self, raw: bytes, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        ts = timestamp if timestamp is not None else str(int(self.wall_clock()))
        nn = nonce if nonce is not None else secrets.token_hex(8)
        sig = hashlib.sha256((ts + nn + self.encrypt_key).encode() + raw).hexdigest()
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-Lark-Request-Timestamp": ts,
            "X-Lark-Request-Nonce": nn,
            "X-Lark-Signature": sig,
        }

    async def push(
        self,
        payload: JSON,
        *,
        encrypt: bool = True,
        sign: bool = True,
        timestamp: str | None = None,
        tamper: bool = False,
        raw: bytes | None = None,
    ) -> tuple[int, JSON | str]:
        """POST a payload to coordbot's event URL as Feishu does: encrypted, signed; (status, answer)."""
        assert self._client is not None and self.event_url, "set server.event_url to coordbot's /feishu/events"
        if raw is None:
            body: JSON = (
                {"encrypt": _aes_encrypt(json.dumps(payload, ensure_ascii=False), self.encrypt_key)}
                if encrypt
                else payload
            )
            raw = json.dumps(body, ensure_ascii=False).encode()
        headers = self._post_headers(raw, timestamp=timestamp) if sign else {"Content-Type": "application/json"}
        if tamper:
            raw = raw[:-2] + b" }"
        self.events_sent.append(payload)
        async with self._client.post(self.event_url, data=raw, headers=headers) as resp:
            text = await resp.text()
            try:
                answer: JSON | str = json.loads(text)
            except ValueError:
                answer = text
            return resp.status, answer

    def _header(self, event_type: str) -> JSON:
        return {
            "event_id": secrets.token_hex(16),
            "token": self.verification_token,
            "create_time": str(int(self.wall_clock() * 1000)),
            "event_type": event_type,
            "tenant_key": "tk_fake",
            "app_id": self.app_id,
        }

    async def verify_url(self, *, token: str | None = None, encrypt: bool = True) -> tuple[int, JSON | str]:
        """The console's check of the request URL (not signed): coordbot must echo the challenge."""
        challenge = secrets.token_hex(8)
        payload = {"challenge": challenge, "token": token or self.verification_token, "type": "url_verification"}
        return await self.push(payload, encrypt=encrypt, sign=False)

    def message_event(
        self,
        user_id: str,
        text: str,
        *,
        chat_id: str | None = None,
        reply_to: str | None = None,
        mention_bot: bool = False,
    ) -> JSON:
        mentions = []
        if mention_bot:
            text = "@_user_1 " + text
            mentions.append(
                {"key": "@_user_1", "id": {"open_id": "ou_bot"}, "name": "督办助手", "tenant_key": "tk_fake"}
            )
        group = chat_id is not None
        return {
            "schema": "2.0",
            "header": self._header("im.message.receive_v1"),
            "event": {
                "sender": {
                    "sender_id": {"open_id": user_id, "union_id": "on_" + user_id[3:], "user_id": None},
                    "sender_type": "user",
                    "tenant_key": "tk_fake",
                },
                "message": {
                    "message_id": f"om_u{next(self._ids):04d}{secrets.token_hex(10)}",
                    "root_id": reply_to or "",
                    "parent_id": reply_to or "",
                    "create_time": str(int(self.wall_clock() * 1000)),
                    "chat_id": chat_id if group else "oc_p2p_" + hashlib.md5(user_id.encode()).hexdigest()[:16],
                    "chat_type": "group" if group else "p2p",
                    "message_type": "text",
                    "content": json.dumps({"text": text}, ensure_ascii=False),
                    "mentions": mentions,
                },
            },
        }

    async def user_sends(
        self,
        user_id: str,
        text: str,
        *,
        chat_id: str | None = None,
        reply_to: str | None = None,
        mention_bot: bool = False,
    ) -> tuple[int, JSON | str]:
        """The person writes ``text`` to the bot (or in a group); ``reply_to`` quotes a message_id."""
        return await self.push(
            self.message_event(user_id, text, chat_id=chat_id, reply_to=reply_to, mention_bot=mention_bot)
        )

    async def user_presses(self, user_id: str, message: JSON, button_index: int) -> tuple[int, JSON | str]:
        """The person presses a card's button: a ``card.action.trigger`` callback with that button's value."""
        _label, value = message["buttons"][button_index]
        payload = {
            "schema": "2.0",
            "header": self._header("card.action.trigger"),
            "event": {
                "operator": {"tenant_key": "tk_fake", "open_id": user_id, "union_id": "on_" + user_id[3:]},
                "token": "c-" + secrets.token_hex(16),
                "action": {"value": value, "tag": "button"},
                "host": "im_message",
                "context": {"open_message_id": message["message_id"], "open_chat_id": message["chat_id"]},
            },
        }
        status, answer = await self.push(payload)
        if isinstance(answer, dict):
            self.callback_answers.append(answer)
        return status, answer
