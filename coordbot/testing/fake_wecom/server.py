"""The fake WeCom server: the self-built app's APIs and its encrypted callback, on 127.0.0.1.

Written from WeCom's documentation (90236 message/send, 90253 media/upload, 91039 gettoken, 90312 limits,
90313 error codes, 91144 callback encryption, 90240 template_card_event), independently of the adapter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import re
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TEXT_MAX_BYTES = 2048  # text: longer content is truncated by WeCom ("超过将截断")
MARKDOWN_MAX_BYTES = 2048  # markdown: refused over the limit
MAX_BUTTONS = 6
MAX_KEY_BYTES = 1024
TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")
MEDIA_MIN, MEDIA_MAX = 5, 20 * 1024 * 1024  # a file: 5 bytes to 20 MB
MSGTYPES = {"text", "markdown", "template_card", "file", "image", "voice", "video", "textcard", "news", "mpnews"}


class Envelope:
    """WXBizMsgCrypt: SHA1 signature and AES-256-CBC with 32-byte PKCS#7, written for the fake alone."""

    def __init__(self, token: str, aes_key: str, receive_id: str) -> None:
        self.token = token
        self.key = base64.b64decode(aes_key + "=")
        self.receive_id = receive_id

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        parts = sorted([self.token, timestamp, nonce, encrypted])
        return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()

    def seal(self, plaintext: str, receive_id: str | None = None) -> str:
        msg = plaintext.encode("utf-8")
        rid = (self.receive_id if receive_id is None else receive_id).encode()
        data = secrets.token_bytes(16) + struct.pack("!I", len(msg)) + msg + rid
        n = 32 - (len(data) % 32)
        data += bytes([n] * n)
        enc = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(enc.update(data) + enc.finalize()).decode("ascii")

    def open(self, encrypted: str) -> str:
        dec = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).decryptor()
        data = dec.update(base64.b64decode(encrypted)) + dec.finalize()
        data = data[: -data[-1]]
        (n,) = struct.unpack("!I", data[16:20])
        return data[20 : 20 + n].decode("utf-8")


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass(frozen=True)
class RateLimits:
    """WeCom's limits; ``time_scale`` shortens every window alike (benchmarks). ``enabled=False``: none."""

    enabled: bool = True
    member_per_minute: int = 30
    member_per_hour: int = 1000
    api_per_minute: int = 10_000
    api_per_hour: int = 150_000
    time_scale: float = 1.0


@dataclass
class ApiCall:
    t: float
    path: str
    params: dict[str, Any]
    errcode: int


@dataclass
class Dropped:
    t: float
    touser: str
    message: dict[str, Any]
    reason: str  # "member_minute" | "member_hour" | "duplicate"


@dataclass
class CallbackDelivery:
    t: float
    status: int | None
    body: str
    error: str = ""


@dataclass
class _Fault:
    path: str
    errcode: int
    remaining: int
    errmsg: str = ""


@dataclass
class User:
    userid: str
    name: str
    visible: bool = True  # in the app's visible range


@dataclass
class _World:
    sent: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    calls: list[ApiCall] = field(default_factory=list)
    callbacks: list[CallbackDelivery] = field(default_factory=list)


ERRMSG = {
    0: "ok",
    -1: "system busy",
    40001: "invalid credential",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40058: "invalid parameter",
    41001: "access_token missing",
    42001: "access_token expired",
    42014: "taskid has existed or empty or exceed max len",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    47001: "data format error",
    48002: "api forbidden",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
}


class FakeWeCom:
    """``async with FakeWeCom() as wecom``: ``wecom.base_url`` is the API base for the adapter; set the
    callback like the admin console does with ``await wecom.set_callback(url)`` (which verifies it)."""

    def __init__(
        self,
        *,
        corp_id: str = "ww1436e0e65a779aee",
        agent_id: int = 1000002,
        secret: str = "app-secret-for-tests",
        token: str = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
        aes_key: str = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
        token_lifetime: float = 7200.0,
        rate_limits: RateLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        callback_timeout: float = 5.0,
        callback_retries: int = 3,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.corp_id, self.agent_id, self.secret = corp_id, agent_id, secret
        self.envelope = Envelope(token, aes_key, corp_id)
        self.token_lifetime = token_lifetime
        self.rate_limits = rate_limits or RateLimits()
        self.host, self._port = host, port
        self.callback_timeout, self.callback_retries = callback_timeout, callback_retries
        self.wall_clock = wall_clock
        self.users: dict[str, User] = {}
        self.callback_url = ""
        self.world = _World()
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.media: dict[str, tuple[str, bytes]] = {}
        self.task_ids: set[str] = set()
        self.rate_limited = 0  # 45009 answers
        self.response_codes: dict[str, str] = {}  # response_code -> task_id
        self._faults: list[_Fault] = []
        self._outage = False
        self._member_log: dict[str, deque[float]] = {}
        self._api_log: dict[str, deque[float]] = {}
        self._msgids = itertools.count(1)
        self._inbound_ids = itertools.count(7_300_000_000_000_000_001)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._client: aiohttp.ClientSession | None = None

    # ---- lifecycle ----

    async def start(self) -> FakeWeCom:
        app = web.Application(client_max_size=MEDIA_MAX + 1024 * 1024)
        app.add_routes(
            [
                web.get("/cgi-bin/gettoken", self._gettoken),
                web.post("/cgi-bin/message/send", self._send),
                web.post("/cgi-bin/media/upload", self._upload),
                web.post("/cgi-bin/message/update_template_card", self._update_card),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        self._client = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeWeCom:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- the world ----

    def add_user(self, user_id: str, name: str = "", *, visible: bool = True) -> User:
        user = self.users[user_id] = User(user_id, name or user_id, visible)
        return user

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as after two hours)."""
        for t in self.tokens:
            self.tokens[t] = 0.0

    def fail_next(self, n: int = 1, code: int = -1, *, path: str = "*", errmsg: str = "") -> None:
        """The next ``n`` calls to ``path`` ("*": any, or e.g. "message/send") answer errcode ``code``."""
        self._faults.append(_Fault(path, code, n, errmsg))

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Every API call answers HTTP 503 while inside."""
        self._outage = True
        try:
            yield
        finally:
            self._outage = False

    @property
    def calls(self) -> list[ApiCall]:
        return self.world.calls

    def calls_to(self, path: str) -> list[ApiCall]:
        return [c for c in self.world.calls if c.path.endswith(path)]

    @property
    def dropped(self) -> list[Dropped]:
        return self.world.dropped

    @property
    def callbacks(self) -> list[CallbackDelivery]:
        return self.world.callbacks

    def sent_to(self, user_id: str) -> list[dict[str, Any]]:
        """What reached ``user_id``, oldest first: the message/send body with ``text`` (the content, a
        card's title and subtitle, a file's name), ``msgid`` and ``t``."""
        return [m for m in self.world.sent if m["touser"] == user_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_for_messages(self, user_id: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda: len(self.sent_to(user_id)) >= count, timeout)
        return self.sent_to(user_id)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---- helpers ----

    def _answer(self, path: str, params: dict[str, Any], errcode: int, **extra: Any) -> web.Response:
        self.world.calls.append(ApiCall(time.monotonic(), path, params, errcode))
        if errcode == 45009:
            self.rate_limited += 1
        return web.json_response({"errcode": errcode, "errmsg": ERRMSG.get(errcode, "error"), **extra})

    def _fault(self, path: str) -> _Fault | None:
        for f in self._faults:
            if f.remaining > 0 and (f.path == "*" or path.endswith(f.path)):
                f.remaining -= 1
                return f
        return None

    def _token_error(self, request: web.Request) -> int:
        token = request.query.get("access_token", "")
        if not token:
            return 41001
        expiry = self.tokens.get(token)
        if expiry is None:
            return 40014
        return 42001 if time.monotonic() >= expiry else 0

    def _window(self, log: dict[str, deque[float]], key: str, limits: list[tuple[int, float]], now: float) -> bool:
        """True (and booked) when one more call in every window is allowed."""
        q = log.setdefault(key, deque())
        longest = max(s for _, s in limits)
        while q and q[0] <= now - longest:
            q.popleft()
        for limit, seconds in limits:
            if sum(1 for t in q if t > now - seconds) >= limit:
                return False
        q.append(now)
        return True

    def _api_allowed(self, path: str) -> bool:
        rl = self.rate_limits
        if not rl.enabled:
            return True
        limits = [(rl.api_per_minute, 60 * rl.time_scale), (rl.api_per_hour, 3600 * rl.time_scale)]
        return self._window(self._api_log, path, limits, time.monotonic())

    def _member_allowed(self, userid: str) -> str:
        rl = self.rate_limits
        if not rl.enabled:
            return ""
        now = time.monotonic()
        q = self._member_log.setdefault(userid, deque())
        while q and q[0] <= now - 3600 * rl.time_scale:
            q.popleft()
        if sum(1 for t in q if t > now - 60 * rl.time_scale) >= rl.member_per_minute:
            return "member_minute"
        if len(q) >= rl.member_per_hour:
            return "member_hour"
        q.append(now)  # dropped messages do not count (they were never delivered)
        return ""

    # ---- gettoken ----

    async def _gettoken(self, request: web.Request) -> web.Response:
        path = "/cgi-bin/gettoken"
        params = dict(request.query)
        logged = {"corpid": params.get("corpid", "")}
        if self._outage:
            return web.Response(status=503, text="service unavailable")
        fault = self._fault(path)
        if fault:
            return self._answer(path, logged, fault.errcode)
        if params.get("corpid") != self.corp_id:
            return self._answer(path, logged, 40013)
        if params.get("corpsecret") != self.secret:
            return self._answer(path, logged, 40001)
        if not self._api_allowed(path):
            return self._answer(path, logged, 45009)
        # Within its lifetime the same token is returned (WeCom does); a new one after it expired.
        now = time.monotonic()
        live = [t for t, exp in self.tokens.items() if exp > now]
        token = live[-1] if live else secrets.token_urlsafe(48)
        if not live:
            self.tokens[token] = now + self.token_lifetime
        remaining = max(1, round(self.tokens[token] - now))
        return self._answer(path, logged, 0, access_token=token, expires_in=remaining)

    # ---- message/send ----

    def _validate(self, body: dict[str, Any]) -> int:
        if body.get("agentid") != self.agent_id and str(body.get("agentid")) != str(self.agent_id):
            return 40056
        msgtype = body.get("msgtype")
        if msgtype not in MSGTYPES:
            return 40008
        content = body.get(msgtype)
        if not isinstance(content, dict):
            return 40058
        if msgtype in ("text", "markdown"):
            text = content.get("content")
            if not isinstance(text, str) or not text.strip():
                return 44004
            if msgtype == "markdown" and len(text.encode("utf-8")) > MARKDOWN_MAX_BYTES:
                return 45002
        elif msgtype == "file":
            if content.get("media_id") not in self.media:
                return 40007
        elif msgtype == "template_card":
            return self._validate_card(content)
        return 0

    def _validate_card(self, card: dict[str, Any]) -> int:
        if card.get("card_type") != "button_interaction":
            return 40058  # the only kind this fake serves
        title = (card.get("main_title") or {}).get("title")
        if not title and not card.get("sub_title_text"):
            return 40058
        task_id = card.get("task_id")
        if not isinstance(task_id, str) or not TASK_ID.match(task_id) or task_id in self.task_ids:
            return 42014
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
            return 40058
        keys = []
        for b in buttons:
            if not isinstance(b, dict) or not b.get("text"):
                return 40058
            if b.get("type", 0) == 0:
                key = b.get("key")
                if not isinstance(key, str) or not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
                    return 40058
                keys.append(key)
            if b.get("style", 1) not in (1, 2, 3, 4):
                return 40058
        if len(set(keys)) != len(keys):
            return 40058
        return 0

    @staticmethod
    def _visible_text(body: dict[str, Any]) -> str:
        msgtype = body["msgtype"]
        content = body[msgtype]
        if msgtype in ("text", "markdown"):
            return str(content["content"])
        if msgtype == "template_card":
            title = (content.get("main_title") or {}).get("title", "")
            return "\n".join(x for x in (title, content.get("sub_title_text", "")) if x)
        return ""

    def _is_duplicate(self, body: dict[str, Any], userid: str) -> bool:
        if not body.get("enable_duplicate_check"):
            return False
        interval = float(body.get("duplicate_check_interval", 1800))
        now = time.monotonic()
        key = json.dumps(body[body["msgtype"]], sort_keys=True, ensure_ascii=False)
        return any(
            m["touser"] == userid and m["msgtype"] == body["msgtype"] and m["_key"] == key and m["t"] > now - interval
            for m in self.world.sent
        )

    async def _send(self, request: web.Request) -> web.Response:
        path = "/cgi-bin/message/send"
        if self._outage:
            return web.Response(status=503, text="service unavailable")
        raw = await request.read()
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return self._answer(path, {}, 47001)
        token_error = self._token_error(request)
        if token_error:
            return self._answer(path, body, token_error)
        fault = self._fault(path)
        if fault:
            return self._answer(path, body, fault.errcode)
        if not self._api_allowed(path):
            return self._answer(path, body, 45009)
        code = self._validate(body)
        if code:
            return self._answer(path, body, code)
        recipients = [u for u in str(body.get("touser", "")).split("|") if u]
        if not recipients:
            return self._answer(path, body, 40058)
        invalid = [u for u in recipients if u not in self.users or not self.users[u].visible]
        valid = [u for u in recipients if u not in invalid]
        if not valid:
            return self._answer(path, body, 81013, invaliduser="|".join(invalid))
        msgid = f"fake_msgid_{next(self._msgids)}"
        msgtype = body["msgtype"]
        response_code = ""
        if msgtype == "template_card":
            self.task_ids.add(body["template_card"]["task_id"])
            response_code = secrets.token_hex(16)
            self.response_codes[response_code] = body["template_card"]["task_id"]
        content_key = json.dumps(body[msgtype], sort_keys=True, ensure_ascii=False)
        for userid in valid:
            if self._is_duplicate(body, userid):
                self.world.dropped.append(Dropped(time.monotonic(), userid, body, "duplicate"))
                continue
            reason = self._member_allowed(userid)
            if reason:  # WeCom answers ok and does not deliver
                self.world.dropped.append(Dropped(time.monotonic(), userid, body, reason))
                continue
            record = {**body, "touser": userid, "msgid": msgid, "t": time.monotonic(), "_key": content_key}
            text = self._visible_text(body)
            if msgtype == "text":
                encoded = text.encode("utf-8")
                if len(encoded) > TEXT_MAX_BYTES:
                    text = encoded[:TEXT_MAX_BYTES].decode("utf-8", "ignore")
                    record["truncated"] = True
            if msgtype == "file":
                record["file_name"], record["file_content"] = self.media[body["file"]["media_id"]]
                text = record["file_name"]
            record["text"] = text
            self.world.sent.append(record)
        extra: dict[str, Any] = {"invaliduser": "|".join(invalid), "msgid": msgid}
        if response_code:
            extra["response_code"] = response_code
        response = self._answer(path, body, 0, **extra)
        await self._notify()
        return response

    async def _upload(self, request: web.Request) -> web.Response:
        path = "/cgi-bin/media/upload"
        if self._outage:
            return web.Response(status=503, text="service unavailable")
        kind = request.query.get("type", "")
        token_error = self._token_error(request)
        if token_error:
            return self._answer(path, {"type": kind}, token_error)
        fault = self._fault(path)
        if fault:
            return self._answer(path, {"type": kind}, fault.errcode)
        if kind not in ("file", "image", "voice", "video"):
            return self._answer(path, {"type": kind}, 40004)
        if not self._api_allowed(path):
            return self._answer(path, {"type": kind}, 45009)
        try:
            form = await request.post()
        except ValueError:
            return self._answer(path, {"type": kind}, 47001)
        media = form.get("media")
        if not isinstance(media, web.FileField):
            return self._answer(path, {"type": kind}, 41005)  # media data missing
        content = media.file.read()
        if not MEDIA_MIN <= len(content) <= MEDIA_MAX:
            return self._answer(path, {"type": kind, "filename": media.filename}, 40006)
        media_id = "3" + secrets.token_urlsafe(40)
        self.media[media_id] = (media.filename, content)
        return self._answer(
            path,
            {"type": kind, "filename": media.filename},
            0,
            type=kind,
            media_id=media_id,
            created_at=str(int(self.wall_clock())),
        )

    async def _update_card(self, request: web.Request) -> web.Response:
        path = "/cgi-bin/message/update_template_card"
        body = json.loads(await request.read())
        token_error = self._token_error(request)
        if token_error:
            return self._answer(path, body, token_error)
        if self.response_codes.pop(str(body.get("response_code", "")), None) is None:
            return self._answer(path, body, 40058)
        return self._answer(path, body, 0, invaliduser=[])

    # ---- the callback (WeCom -> coordbot) ----

    def _query(self, encrypted: str, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(self.wall_clock()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10))
        return {"msg_signature": self.envelope.sign(ts, nonce, encrypted), "timestamp": ts, "nonce": nonce}

    async def set_callback(self, url: str) -> None:
        """What saving "API接收消息" in the admin console does: a GET with an encrypted echostr, which must
        come back decrypted, exactly."""
        echo = str(secrets.randbelow(10**19))
        encrypted = self.envelope.seal(echo)
        assert self._client is not None
        async with self._client.get(url, params={**self._query(encrypted), "echostr": encrypted}) as resp:
            answer = await resp.text()
            if resp.status != 200 or answer != echo:
                raise AssertionError(f"URL verification failed: HTTP {resp.status}, answer {answer[:60]!r}")
        self.callback_url = url

    def _message_xml(self, user_id: str, fields: str) -> str:
        return (
            f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><FromUserName>{_cdata(user_id)}</FromUserName>"
            f"<CreateTime>{int(self.wall_clock())}</CreateTime>{fields}<AgentID>{self.agent_id}</AgentID></xml>"
        )

    async def post_callback(
        self,
        plaintext: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        receive_id: str | None = None,
        raw_body: bytes | None = None,
    ) -> CallbackDelivery:
        """Encrypt, sign and POST one callback (retried like WeCom: on no answer within the timeout or a
        non-200). The keyword arguments forge it for security tests."""
        assert self._client is not None and self.callback_url, "set_callback first"
        encrypted = self.envelope.seal(plaintext, receive_id)
        query = self._query(encrypted, timestamp)
        if signature is not None:
            query["msg_signature"] = signature
        body = (
            raw_body
            or (
                f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><AgentID>{_cdata(str(self.agent_id))}</AgentID>"
                f"<Encrypt>{_cdata(encrypted)}</Encrypt></xml>"
            ).encode()
        )
        delivery = CallbackDelivery(time.monotonic(), None, "")
        for _ in range(self.callback_retries):
            try:
                async with self._client.post(
                    f"{self.callback_url}?{urlencode(query)}",
                    data=body,
                    headers={"Content-Type": "text/xml"},
                    timeout=aiohttp.ClientTimeout(total=self.callback_timeout),
                ) as resp:
                    delivery = CallbackDelivery(time.monotonic(), resp.status, await resp.text())
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivery = CallbackDelivery(time.monotonic(), None, "", type(exc).__name__)
            self.world.callbacks.append(delivery)
            if delivery.status == 200 or delivery.status in (401, 403):
                break
        return delivery

    async def user_sends(self, user_id: str, text: str, **forge: Any) -> dict[str, Any]:
        """``user_id`` writes ``text`` to the app: the callback is POSTed; returns the message's fields and
        the ``delivery`` (coordbot's answer)."""
        msg_id = str(next(self._inbound_ids))
        xml = self._message_xml(
            user_id, f"<MsgType>{_cdata('text')}</MsgType><Content>{_cdata(text)}</Content><MsgId>{msg_id}</MsgId>"
        )
        delivery = await self.post_callback(xml, **forge)
        return {"MsgId": msg_id, "FromUserName": user_id, "Content": text, "delivery": delivery}

    async def user_presses(self, user_id: str, message: dict[str, Any], button_index: int) -> dict[str, Any]:
        """``user_id`` taps button ``button_index`` (0-based) of a card they received."""
        card = message.get("template_card")
        if message.get("touser") != user_id or not isinstance(card, dict):
            raise AssertionError("not a card sent to this user")
        button = card["button_list"][button_index]
        response_code = next((rc for rc, t in self.response_codes.items() if t == card["task_id"]), "")
        xml = self._message_xml(
            user_id,
            f"<MsgType>{_cdata('event')}</MsgType><Event>{_cdata('template_card_event')}</Event>"
            f"<EventKey>{_cdata(button['key'])}</EventKey><TaskId>{_cdata(card['task_id'])}</TaskId>"
            f"<CardType>{_cdata(card['card_type'])}</CardType><ResponseCode>{_cdata(response_code)}</ResponseCode>",
        )
        delivery = await self.post_callback(xml)
        return {"EventKey": button["key"], "TaskId": card["task_id"], "delivery": delivery}

    async def user_enters(self, user_id: str) -> CallbackDelivery:
        """The enter_agent event (the user opened the app)."""
        xml = self._message_xml(
            user_id, f"<MsgType>{_cdata('event')}</MsgType><Event>{_cdata('enter_agent')}</Event><EventKey></EventKey>"
        )
        return await self.post_callback(xml)
