"""The fake DingTalk open platform itself; see the package docstring for the test-side API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

JSON = dict[str, Any]

MAX_USER_IDS = 20
MAX_PARAM_BYTES = 15_000
MAX_MARKDOWN_CHARS = 5_000
MAX_FILE_BYTES = 20 * 1024 * 1024
FILE_TYPES = frozenset({"doc", "docx", "xls", "xlsx", "ppt", "pptx", "zip", "pdf", "rar"})

# msgKey -> the msgParam fields DingTalk requires ("消息发送与接收类型 · 接口方式").
_ACTION = {
    f"sampleActionCard{n}": (
        "title",
        "text",
        *(f"{k}{i}" for i in range(1, n + 1) for k in ("actionTitle", "actionURL")),
    )
    for n in range(2, 6)
}
MSG_KEYS: dict[str, tuple[str, ...]] = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "picUrl", "messageUrl"),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    **_ACTION,
    "sampleActionCard6": ("title", "text", "buttonTitle1", "buttonUrl1", "buttonTitle2", "buttonUrl2"),
    "sampleAudio": ("mediaId", "duration"),
    "sampleFile": ("mediaId", "fileName", "fileType"),
    "sampleVideo": ("duration", "videoMediaId", "videoType", "picMediaId"),
}
_NUMBERED = re.compile(r"^(\d{1,2})\. (.+?)\s*$")


class ApiError(Exception):
    """A new-style API error: HTTP ``status`` with ``{"code", "message", "requestid"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class RateLimits:
    """DingTalk's per-app, per-API QPS (标准版 20; 专业版 40, 专属版 60), a sliding one-second window
    shortened by ``slack`` for timer jitter. ``per_user_per_minute`` adds a flow control per recipient
    (undocumented by DingTalk: off unless a test sets it). Mutable while the server runs."""

    enabled: bool = True
    qps: int = 20
    slack: float = 0.05
    per_user_per_minute: int | None = None


@dataclass
class Sent:
    """One message the robot delivered, to a user or a group conversation."""

    to: str
    msg_key: str
    param: JSON
    process_query_key: str
    t: float
    file: bytes | None = None

    def as_dict(self) -> JSON:
        text = self.param.get("text") or self.param.get("content") or self.param.get("fileName") or ""
        out: JSON = {"to": self.to, "msgKey": self.msg_key, "param": self.param, "text": text}
        out["processQueryKey"] = self.process_query_key
        if self.file is not None:
            out["file"] = self.file
        return out


@dataclass
class _Rule:
    times: int
    status: int
    code: str
    message: str
    path: str = "*"


@dataclass
class _Group:
    conversation_id: str
    title: str
    members: set[str] = field(default_factory=set)


def sign(timestamp: str, app_secret: str) -> str:
    """The callback's ``sign`` header, written from DingTalk's document (independently of coordbot)."""
    mac = hmac.new(app_secret.encode("utf-8"), (timestamp + "\n" + app_secret).encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


class FakeDingTalk:
    """api.dingtalk.com and oapi.dingtalk.com on one 127.0.0.1 port (their paths do not collide)."""

    def __init__(
        self,
        app_key: str = "dingfakeappkey",
        app_secret: str = "fake-app-secret",
        *,
        robot_code: str | None = None,
        corp_id: str = "dingfakecorp",
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: int = 7200,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.robot_code = robot_code or app_key
        self.corp_id = corp_id
        self.host = host
        self._port = port
        self.token_ttl = token_ttl
        self.rate_limits = rate_limits or RateLimits()
        self.callback_url = ""  # coordbot's /dingtalk/callback, set by the test once its web app listens
        self.users: dict[str, str] = {}
        self.groups: dict[str, _Group] = {}
        self.tokens: dict[str, float] = {}  # token -> expiry (time.monotonic)
        self.media: dict[str, tuple[str, bytes]] = {}
        self.sent: list[Sent] = []
        self.calls: list[tuple[float, str, int, str]] = []  # (t, path, status, code)
        self.callbacks: list[tuple[JSON, int]] = []  # (body, coordbot's status)
        self.rate_limited = 0
        self.token_requests = 0
        self._rules: list[_Rule] = []
        self._flow: dict[str, int] = defaultdict(int)
        self._outage = False
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._per_user: dict[str, deque[float]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._site_port = 0
        self._client: aiohttp.ClientSession | None = None
        self._activity = asyncio.Event()

    # ---- lifecycle ----

    async def __aenter__(self) -> FakeDingTalk:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_FILE_BYTES + (1 << 20))
        app.router.add_post("/v1.0/oauth2/accessToken", self._access_token)
        app.router.add_post("/v1.0/robot/oToMessages/batchSend", self._batch_send)
        app.router.add_post("/v1.0/robot/groupMessages/send", self._group_send)
        app.router.add_post("/media/upload", self._media_upload)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self._site_port = int(self._runner.addresses[0][1])
        self._client = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def port(self) -> int:
        return self._site_port

    @property
    def url(self) -> str:
        """Both ``dingtalk_base_url`` and ``dingtalk_oapi_url``."""
        return f"http://{self.host}:{self.port}"

    # ---- the world ----

    def add_user(self, user_id: str, name: str = "测试用户") -> None:
        """A member of the organisation within the robot's visible range (a userId = staffId)."""
        self.users[user_id] = name

    def add_group(self, conversation_id: str, title: str, members: tuple[str, ...] = ()) -> None:
        """An internal group the robot is in; ``conversation_id`` starts with ``cid``."""
        self.groups[conversation_id] = _Group(conversation_id, title, set(members))

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as after 7,200 s); new ones are issued on request."""
        for token in self.tokens:
            self.tokens[token] = 0.0

    # ---- fault injection ----

    def fail_next(
        self, n: int = 1, code: str = "ServiceUnavailable", *, status: int = 503, message: str = "", path: str = "*"
    ) -> None:
        """The next ``n`` API calls (to ``path``, or any but the token's) answer this error."""
        self._rules.append(_Rule(n, status, code, message or code, path))

    def flow_control(self, user_id: str, times: int = 1) -> None:
        """The next ``times`` sends to ``user_id`` come back in ``flowControlledStaffIdList``, undelivered."""
        self._flow[user_id] += times

    def outage(self, on: bool = True) -> None:
        """Every API call answers 503 until ``outage(False)``."""
        self._outage = on

    # ---- what the robot sent ----

    def sent_to(self, to: str) -> list[JSON]:
        """Messages delivered to a userId or a group conversation id, oldest first, each with a ``text``."""
        return [s.as_dict() for s in self.sent if s.to == to]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
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

    async def wait_for_messages(self, to: str, count: int, timeout: float = 5.0) -> list[JSON]:
        await self.wait_for(lambda: len(self.sent_to(to)) >= count, timeout)
        return self.sent_to(to)

    # ---- what users do (each POSTs a signed callback to coordbot, as DingTalk's HTTP mode does) ----

    def message_body(self, user_id: str, text: str, *, conversation_id: str | None = None) -> JSON:
        now = int(time.time() * 1000)
        group = self.groups.get(conversation_id) if conversation_id else None
        body: JSON = {
            "conversationId": conversation_id or f"cid{hashlib.sha1(user_id.encode()).hexdigest()[:22]}==",
            "chatbotCorpId": self.corp_id,
            "chatbotUserId": "$:LWCP_v1:$" + hashlib.sha1(self.robot_code.encode()).hexdigest()[:24],
            "msgId": f"msg{secrets.token_hex(12)}",
            "senderNick": self.users.get(user_id, "访客"),
            "isAdmin": False,
            "senderStaffId": user_id,
            "sessionWebhookExpiredTime": now + 90 * 60 * 1000,
            "createAt": now,
            "senderCorpId": self.corp_id,
            "conversationType": "2" if group else "1",
            "senderId": "$:LWCP_v1:$" + hashlib.sha1(user_id.encode()).hexdigest()[:24],
            "sessionWebhook": f"{self.url}/robot/sendBySession?session={secrets.token_hex(16)}",
            "text": {"content": (" " + text) if group else text},  # a group message keeps the space after @robot
            "msgtype": "text",
            "robotCode": self.robot_code,
        }
        if group:
            body["conversationTitle"] = group.title
            body["isInAtList"] = True
            body["atUsers"] = [{"dingtalkId": body["chatbotUserId"]}]
        return body

    async def post_callback(
        self, body: JSON | bytes, *, timestamp_ms: int | None = None, sign_value: str | None = None
    ) -> tuple[int, str]:
        """POST ``body`` to coordbot's callback with DingTalk's headers; (status, response text)."""
        assert self._client is not None and self.callback_url, "start the server and set callback_url first"
        ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "timestamp": ts,
            "sign": sign(ts, self.app_secret) if sign_value is None else sign_value,
        }
        async with self._client.post(self.callback_url, data=data, headers=headers) as resp:
            text = await resp.text()
            if isinstance(body, dict):
                self.callbacks.append((body, resp.status))
            self._notify()
            return resp.status, text

    async def user_sends(self, user_id: str, text: str, *, conversation_id: str | None = None) -> JSON:
        """The user writes to the robot (1:1, or @robot in a group); returns the callback body sent."""
        body = self.message_body(user_id, text, conversation_id=conversation_id)
        status, _ = await self.post_callback(body)
        if status != 200:
            raise AssertionError(f"coordbot answered the callback with HTTP {status}")
        return body

    async def user_presses(self, user_id: str, message: JSON, button_index: int) -> JSON:
        """Choosing an option of ``message`` (a dict from ``sent_to``): DingTalk has no buttons that post
        back, so the options are numbered lines and the user replies with the number."""
        options = [m.group(1) for line in str(message["text"]).split("\n") if (m := _NUMBERED.match(line.strip()))]
        if not 0 <= button_index < len(options):
            raise AssertionError(f"message has {len(options)} numbered options, not #{button_index + 1}")
        return await self.user_sends(
            user_id, options[button_index], conversation_id=message["to"] if message["to"].startswith("cid") else None
        )

    # ---- plumbing ----

    def _notify(self) -> None:
        self._activity.set()

    def _request_id(self) -> str:
        return secrets.token_hex(16).upper()

    def _error(self, path: str, err: ApiError) -> web.Response:
        self.calls.append((time.monotonic(), path, err.status, err.code))
        self._notify()
        return web.json_response(
            {"code": err.code, "message": err.message, "requestid": self._request_id()}, status=err.status
        )

    def _ok(self, path: str, body: JSON) -> web.Response:
        self.calls.append((time.monotonic(), path, 200, ""))
        self._notify()
        return web.json_response(body)

    def _check_token(self, token: str | None) -> None:
        expiry = self.tokens.get(token or "")
        if expiry is None or expiry <= time.monotonic():
            # What DingTalk answers for an unknown or expired token (HTTP 400, seen on the real API).
            raise ApiError(400, "InvalidAuthentication", "不合法的access_token")

    def _faults(self, path: str) -> None:
        if self._outage:
            raise ApiError(503, "ServiceUnavailable", "服务暂不可用")
        for rule in self._rules:
            if rule.times > 0 and rule.path in ("*", path):
                rule.times -= 1
                self._rules = [r for r in self._rules if r.times > 0]
                raise ApiError(rule.status, rule.code, rule.message)

    def _rate(self, path: str) -> None:
        lim = self.rate_limits
        if not lim.enabled:
            return
        now = time.monotonic()
        window = self._windows[path]
        while window and window[0] <= now - (1.0 - lim.slack):
            window.popleft()
        if len(window) >= lim.qps:
            self.rate_limited += 1
            raise ApiError(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "应用调用该接口的频率超过了限制")
        window.append(now)

    def _user_flow_controlled(self, user_id: str) -> bool:
        if self._flow.get(user_id, 0) > 0:
            self._flow[user_id] -= 1
            return True
        per_minute = self.rate_limits.per_user_per_minute if self.rate_limits.enabled else None
        if per_minute is None:
            return False
        now = time.monotonic()
        q = self._per_user[user_id]
        while q and q[0] <= now - 60.0:
            q.popleft()
        if len(q) >= per_minute:
            self.rate_limited += 1
            return True
        q.append(now)
        return False

    async def _json(self, request: web.Request) -> JSON:
        try:
            data = await request.json()
        except ValueError:
            raise ApiError(400, "InvalidParameter", "请求体不是合法的JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "InvalidParameter", "请求体不是合法的JSON")
        return data

    def _message(self, body: JSON) -> tuple[str, JSON]:
        """msgKey and the decoded msgParam, validated as DingTalk does."""
        if body.get("robotCode") in (None, ""):
            raise ApiError(400, "invalidParameter.robotCode.empty", "robotCode不能为空")
        if body["robotCode"] != self.robot_code:
            raise ApiError(400, "invalidParameter.robotCode.auth", "robotCode与应用不匹配")
        key = body.get("msgKey")
        if key not in MSG_KEYS:
            raise ApiError(400, "invalidParameter.msgKey.invalid", "msgKey无效")
        raw = body.get("msgParam")
        if not isinstance(raw, str):  # a JSON *string*, not an object
            raise ApiError(400, "invalidParameter.msgParam.invalid", "msgParam必须是json格式")
        if len(raw.encode("utf-8")) > MAX_PARAM_BYTES:
            raise ApiError(400, "invalidParameter.msgParam.invalid", "msgParam长度超过限制")
        try:
            param = json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalidParameter.msgParam.invalid", "msgParam必须是json格式") from None
        if not isinstance(param, dict):
            raise ApiError(400, "invalidParameter.msgParam.invalid", "msgParam必须是json格式")
        missing = [f for f in MSG_KEYS[key] if not isinstance(param.get(f), str) or not param[f]]
        if missing and not (key == "sampleAudio" and missing == ["duration"]):
            raise ApiError(400, "invalidParameter.msgParam.invalid", f"msgParam缺少参数: {','.join(missing)}")
        if key == "sampleMarkdown" and len(param["text"]) > MAX_MARKDOWN_CHARS:
            raise ApiError(400, "invalidParameter.msgParam.invalid", "markdown内容超过长度限制")
        if key == "sampleFile":
            if param["mediaId"] not in self.media:
                raise ApiError(400, "invalidParameter.msgParam.invalid", "mediaId无效")
            if param["fileType"] not in FILE_TYPES:
                raise ApiError(400, "invalidParameter.msgParam.invalid", "fileType不支持")
        return key, param

    def _deliver(self, to: list[str], key: str, param: JSON) -> str:
        """Record one message to each of ``to``; its processQueryKey (one per call, as DingTalk's)."""
        pqk = base64.b64encode(f"pqk{next(self._ids)}:{secrets.token_hex(6)}".encode()).decode()
        file = self.media[param["mediaId"]][1] if key == "sampleFile" else None
        self.sent.extend(Sent(t, key, param, pqk, time.monotonic(), file) for t in to)
        return pqk

    # ---- handlers ----

    async def _access_token(self, request: web.Request) -> web.Response:
        path = "/v1.0/oauth2/accessToken"
        self.token_requests += 1
        try:
            body = await self._json(request)
            if self._outage:
                raise ApiError(503, "ServiceUnavailable", "服务暂不可用")
            if body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
                raise ApiError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        except ApiError as err:
            return self._error(path, err)
        token = secrets.token_hex(16)
        self.tokens[token] = time.monotonic() + self.token_ttl
        return self._ok(path, {"accessToken": token, "expireIn": self.token_ttl})

    async def _batch_send(self, request: web.Request) -> web.Response:
        path = "/v1.0/robot/oToMessages/batchSend"
        try:
            self._check_token(request.headers.get("x-acs-dingtalk-access-token"))
            self._faults(path)
            self._rate(path)
            body = await self._json(request)
            user_ids = body.get("userIds")
            if not isinstance(user_ids, list) or not user_ids:
                raise ApiError(400, "invalidParameter.userIds.empty", "userIds不能为空")
            if len(user_ids) > MAX_USER_IDS:
                raise ApiError(400, "invalidParameter.userIds.overMax", "userIds超过最大限制")
            if not all(isinstance(u, str) and u for u in user_ids):
                raise ApiError(400, "invalidParameter.userIds.invalid", "userIds无效")
            key, param = self._message(body)
            invalid = [u for u in user_ids if u not in self.users]
            if len(invalid) == len(user_ids):
                raise ApiError(400, "staffId.notExisted", "员工不存在")
        except ApiError as err:
            return self._error(path, err)
        flow = [u for u in user_ids if u not in invalid and self._user_flow_controlled(u)]
        pqk = self._deliver([u for u in user_ids if u not in invalid and u not in flow], key, param)
        return self._ok(
            path, {"processQueryKey": pqk, "invalidStaffIdList": invalid, "flowControlledStaffIdList": flow}
        )

    async def _group_send(self, request: web.Request) -> web.Response:
        path = "/v1.0/robot/groupMessages/send"
        try:
            self._check_token(request.headers.get("x-acs-dingtalk-access-token"))
            self._faults(path)
            self._rate(path)
            body = await self._json(request)
            cid = body.get("openConversationId")
            if not isinstance(cid, str) or cid not in self.groups:
                raise ApiError(400, "invalid.openConversationId", "openConversationId无效")
            key, param = self._message(body)
        except ApiError as err:
            return self._error(path, err)
        return self._ok(path, {"processQueryKey": self._deliver([cid], key, param)})

    async def _media_upload(self, request: web.Request) -> web.Response:
        """The old API's answers: HTTP 200 with ``errcode`` / ``errmsg``."""
        path = "/media/upload"

        def old(errcode: int, errmsg: str, **extra: Any) -> web.Response:
            self.calls.append((time.monotonic(), path, 200, str(errcode)))
            self._notify()
            return web.json_response({"errcode": errcode, "errmsg": errmsg, **extra})

        expiry = self.tokens.get(request.query.get("access_token", ""))
        if expiry is None:
            return old(40014, "不合法的access_token")
        if expiry <= time.monotonic():
            return old(42001, "access_token超时")
        try:
            self._faults(path)
            self._rate(path)
        except ApiError as err:
            if err.status == 403:
                return old(90018, "当前应用调用该接口的频率超过了限制")
            return self._error(path, err)
        if request.query.get("type") not in ("image", "voice", "video", "file"):
            return old(40004, "不合法的媒体文件类型")
        reader = await request.multipart()
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != "media":
            part = await reader.next()
        if part is None or not isinstance(part, aiohttp.BodyPartReader):
            return old(41001, "缺少media参数")
        data = await part.read(decode=False)
        if len(data) > MAX_FILE_BYTES:
            return old(40006, "不合法的文件大小")
        media_id = "@lA" + secrets.token_urlsafe(18)
        self.media[media_id] = (part.filename or "file", bytes(data))
        return old(0, "ok", type=request.query["type"], media_id=media_id, created_at=int(time.time() * 1000))
