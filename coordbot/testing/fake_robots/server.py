"""The fake webhook-robot server itself; see the package docstring for the test-side API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

WECOM, DINGTALK, FEISHU = "wecom_robot", "dingtalk_robot", "feishu_robot"

WECOM_TEXT_BYTES = 2048
WECOM_MARKDOWN_BYTES = 4096
WECOM_MEDIA_MIN, WECOM_MEDIA_MAX = 6, 20 * 1024 * 1024  # "大于5个字节", at most 20 MB
FEISHU_MAX_BODY = 20 * 1024
SIGN_WINDOW_S = 3600.0  # DingTalk and Feishu: the timestamp within an hour of the server's clock

# (count, seconds) per robot, as each platform documents it.
LIMITS = {WECOM: ((20, 60.0),), DINGTALK: ((20, 60.0),), FEISHU: ((5, 1.0), (100, 60.0))}
DINGTALK_THROTTLE_S = 600.0  # "超过20条，会限流10分钟"


@dataclass
class FakeRobot:
    """A robot in a group: its kind, credential (WeCom key, DingTalk access_token, Feishu token), signing
    secret and keywords (its security settings), and what it posted to the group."""

    name: str
    kind: str
    credential: str
    secret: str = ""
    keywords: tuple[str, ...] = ()
    messages: list[JSON] = field(default_factory=list)
    window: deque[float] = field(default_factory=deque)  # arrival times of counted requests
    second: deque[float] = field(default_factory=deque)  # Feishu's per-second window
    throttled_until: float = 0.0


@dataclass
class _Fault:
    target: str  # a robot's name or credential, a kind, or "*"
    code: int
    message: str
    times: int
    status: int = 200


class FakeRobots:
    """WeCom, DingTalk and Feishu group-robot webhooks on 127.0.0.1. See the package docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        rate_limits: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self._port = host, port
        self.time_scale = time_scale
        self.rate_limits = rate_limits
        self.clock = clock
        self.wall_clock = wall_clock
        self.robots: dict[str, FakeRobot] = {}  # by name
        self.requests: list[JSON] = []  # every request: kind, robot (name or None), code, t
        self.rate_limited = 0  # rate-limit answers given
        self.uploads: dict[str, tuple[str, str, bytes]] = {}  # media_id -> (robot name, file name, content)
        self._faults: list[_Fault] = []
        self._down = False
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._activity: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeRobots:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._activity = asyncio.Event()
        app = web.Application(client_max_size=WECOM_MEDIA_MAX + 1024 * 1024)
        app.router.add_post("/cgi-bin/webhook/send", self._wecom_send)
        app.router.add_post("/cgi-bin/webhook/upload_media", self._wecom_upload)
        app.router.add_post("/robot/send", self._dingtalk_send)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._feishu_send)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """The base of all three platforms' webhook paths (each robot's ``base_url``)."""
        return f"http://{self.host}:{self._port}"

    # ------------------------------------------------------------------ world

    def add_wecom(self, name: str, key: str) -> FakeRobot:
        return self._add(FakeRobot(name, WECOM, key))

    def add_dingtalk(
        self, name: str, access_token: str, *, secret: str = "", keywords: tuple[str, ...] = ()
    ) -> FakeRobot:
        return self._add(FakeRobot(name, DINGTALK, access_token, secret, keywords))

    def add_feishu(self, name: str, token: str, *, secret: str = "", keywords: tuple[str, ...] = ()) -> FakeRobot:
        return self._add(FakeRobot(name, FEISHU, token, secret, keywords))

    def _add(self, robot: FakeRobot) -> FakeRobot:
        self.robots[robot.name] = robot
        return robot

    def remove(self, name: str) -> None:
        """The robot was removed from its group (or the group dissolved): its webhook no longer exists."""
        self.robots.pop(name, None)

    def robot(self, name_or_credential: str) -> FakeRobot:
        for r in self.robots.values():
            if name_or_credential in (r.name, r.credential):
                return r
        raise KeyError(name_or_credential)

    # ------------------------------------------------------------------ records and waiting

    def sent_to(self, name_or_credential: str) -> list[JSON]:
        """What the robot posted to its group, oldest first: ``kind``, ``msgtype``, ``text`` (the markdown or
        text; a file's name), ``title`` (DingTalk), ``body`` (the request as received), ``t`` (monotonic)."""
        return list(self.robot(name_or_credential).messages)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking after every request; TimeoutError else."""
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

    # ------------------------------------------------------------------ faults

    def fail_next(
        self, target: str, code: int, message: str = "injected", *, times: int = 1, status: int = 200
    ) -> None:
        """The next ``times`` requests to ``target`` (a robot's name or credential, a kind, or "*") answer
        ``code`` (errcode, or Feishu's code) with ``message``, HTTP ``status`` (a 5xx answers a gateway page,
        not JSON)."""
        self._faults.append(_Fault(target, code, message, times, status))

    def outage(self, down: bool = True) -> None:
        """Every request answers 502 with an HTML page until ``outage(False)``."""
        self._down = down

    # ------------------------------------------------------------------ plumbing

    def _notify(self) -> None:
        if self._activity is not None:
            self._activity.set()

    def _record(self, kind: str, robot: FakeRobot | None, code: int) -> None:
        self.requests.append({"kind": kind, "robot": robot.name if robot else None, "code": code, "t": self.clock()})
        self._notify()

    def _fault(self, kind: str, robot: FakeRobot | None) -> _Fault | None:
        names = {kind, "*"} | ({robot.name, robot.credential} if robot else set())
        for f in self._faults:
            if f.target in names and f.times > 0:
                f.times -= 1
                if f.times == 0:
                    self._faults.remove(f)
                return f
        return None

    def _over_limit(self, robot: FakeRobot, now: float) -> bool:
        """Count this request against the robot's windows; True when it goes over (it is refused)."""
        if not self.rate_limits:
            return False
        if robot.kind == DINGTALK and now < robot.throttled_until:
            return True
        limits = LIMITS[robot.kind]
        queues = [robot.window] if len(limits) == 1 else [robot.second, robot.window]
        for (n, seconds), q in zip(limits, queues, strict=True):
            span = seconds * self.time_scale
            while q and q[0] <= now - span:
                q.popleft()
            if len(q) >= n:
                if robot.kind == DINGTALK:
                    robot.throttled_until = now + DINGTALK_THROTTLE_S * self.time_scale
                self.rate_limited += 1
                return True
        for q in queues:
            q.append(now)
        return False

    def _gateway_error(self, kind: str, robot: FakeRobot | None, status: int) -> web.Response:
        self._record(kind, robot, status)
        return web.Response(status=status, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")

    @staticmethod
    async def _json(request: web.Request) -> JSON | None:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # ------------------------------------------------------------------ WeCom 群机器人

    def _wecom_answer(self, robot: FakeRobot | None, code: int, msg: str, **extra: Any) -> web.Response:
        self._record(WECOM, robot, code)
        if code:
            msg = (
                f"{msg}, hint: [{next(self._ids)}], more info at https://open.work.weixin.qq.com/devtool/query?e={code}"
            )
        return web.json_response({"errcode": code, "errmsg": msg, **extra})

    def _wecom_robot(self, request: web.Request) -> FakeRobot | None:
        key = request.query.get("key", "")
        return next((r for r in self.robots.values() if r.kind == WECOM and r.credential == key), None)

    async def _wecom_send(self, request: web.Request) -> web.Response:
        if self._down:
            return self._gateway_error(WECOM, None, 502)
        robot = self._wecom_robot(request)
        if robot is None:
            return self._wecom_answer(None, 93000, "invalid webhook url")
        fault = self._fault(WECOM, robot)
        if fault is not None and fault.status >= 500:
            return self._gateway_error(WECOM, robot, fault.status)
        # failed sends count towards the 20 a minute too
        if self._over_limit(robot, self.clock()):
            return self._wecom_answer(robot, 45009, "api freq out of limit")
        if fault is not None:
            return self._wecom_answer(robot, fault.code, fault.message)
        body = await self._json(request)
        if body is None:
            return self._wecom_answer(robot, 40058, "invalid Request Parameter")
        msgtype = body.get("msgtype")
        if msgtype in ("text", "markdown"):
            content = (body.get(msgtype) or {}).get("content")
            if not isinstance(content, str) or not content.strip():
                return self._wecom_answer(robot, 44004, "empty content")
            limit = WECOM_TEXT_BYTES if msgtype == "text" else WECOM_MARKDOWN_BYTES
            if len(content.encode("utf-8")) > limit:
                return self._wecom_answer(robot, 40058, f"{msgtype}.content exceed max length {limit}")
            text, extra = content, {}
        elif msgtype == "file":
            media_id = (body.get("file") or {}).get("media_id")
            upload = self.uploads.get(media_id) if isinstance(media_id, str) else None
            if upload is None or upload[0] != robot.name:  # a media_id works only for the robot that uploaded it
                return self._wecom_answer(robot, 40007, "invalid media_id")
            text, extra = upload[1], {"content": upload[2]}
        else:
            return self._wecom_answer(robot, 40008, "invalid message type")
        robot.messages.append(
            {"kind": WECOM, "msgtype": msgtype, "text": text, "body": body, "t": self.clock(), **extra}
        )
        return self._wecom_answer(robot, 0, "ok")

    async def _wecom_upload(self, request: web.Request) -> web.Response:
        if self._down:
            return self._gateway_error(WECOM, None, 502)
        robot = self._wecom_robot(request)
        if robot is None:
            return self._wecom_answer(None, 93000, "invalid webhook url")
        if request.query.get("type") not in ("file", "voice"):
            return self._wecom_answer(robot, 40004, "invalid media type")
        if not request.content_type.startswith("multipart/"):
            return self._wecom_answer(robot, 40058, "invalid Request Parameter")
        reader = await request.multipart()
        filename, content = None, b""
        async for part in reader:
            if getattr(part, "name", None) == "media":
                filename = getattr(part, "filename", None)
                content = await part.read()  # type: ignore[union-attr]
        if filename is None:
            return self._wecom_answer(robot, 41001, "media data missing")
        if not WECOM_MEDIA_MIN <= len(content) <= WECOM_MEDIA_MAX:
            return self._wecom_answer(robot, 40006, "invalid media size")
        media_id = f"3{next(self._ids):07d}fake_media"
        self.uploads[media_id] = (robot.name, filename, bytes(content))
        return self._wecom_answer(
            robot, 0, "ok", type="file", media_id=media_id, created_at=str(int(self.wall_clock()))
        )

    # ------------------------------------------------------------------ DingTalk 自定义机器人

    def _dingtalk_answer(self, robot: FakeRobot | None, code: int, msg: str) -> web.Response:
        self._record(DINGTALK, robot, code)
        return web.json_response({"errcode": code, "errmsg": msg})

    async def _dingtalk_send(self, request: web.Request) -> web.Response:
        if self._down:
            return self._gateway_error(DINGTALK, None, 502)
        token = request.query.get("access_token", "")
        robot = next((r for r in self.robots.values() if r.kind == DINGTALK and r.credential == token), None)
        if robot is None:
            return self._dingtalk_answer(None, 300001, "token is not exist")
        fault = self._fault(DINGTALK, robot)
        if fault is not None and fault.status >= 500:
            return self._gateway_error(DINGTALK, robot, fault.status)
        if robot.secret:
            timestamp, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
            if not timestamp.isdigit() or abs(int(timestamp) / 1000 - self.wall_clock()) > SIGN_WINDOW_S:
                return self._dingtalk_answer(robot, 310000, "invalid timestamp")
            # request.query is already URL-decoded once, as DingTalk decodes the sign parameter
            string_to_sign = f"{timestamp}\n{robot.secret}".encode()
            expected = base64.b64encode(hmac.new(robot.secret.encode(), string_to_sign, hashlib.sha256).digest())
            if not hmac.compare_digest(expected.decode(), sign):
                return self._dingtalk_answer(robot, 310000, "sign not match")
        if self._over_limit(robot, self.clock()):
            return self._dingtalk_answer(robot, 130101, "send too fast, exceed 20 times per minute")
        if fault is not None:
            return self._dingtalk_answer(robot, fault.code, fault.message)
        if not request.content_type.startswith("application/json"):
            return self._dingtalk_answer(robot, 43004, "无效的HTTP HEADER Content-Type")
        body = await self._json(request)
        if body is None:
            return self._dingtalk_answer(robot, 40035, "缺少参数 json")
        msgtype = body.get("msgtype")
        if msgtype == "text":
            text, title = (body.get("text") or {}).get("content"), None
        elif msgtype == "markdown":
            md = body.get("markdown") or {}
            text, title = md.get("text"), md.get("title")
            if not isinstance(title, str) or not title.strip():
                return self._dingtalk_answer(robot, 40035, "缺少参数 markdown.title")
        else:
            return self._dingtalk_answer(robot, 40035, "缺少参数 msgtype")
        if not isinstance(text, str) or not text.strip():
            return self._dingtalk_answer(robot, 40035, f"缺少参数 {msgtype}")
        if robot.keywords and not any(k in text or (title and k in title) for k in robot.keywords):
            return self._dingtalk_answer(robot, 310000, "keywords not in content")
        robot.messages.append(
            {"kind": DINGTALK, "msgtype": msgtype, "text": text, "title": title, "body": body, "t": self.clock()}
        )
        return self._dingtalk_answer(robot, 0, "ok")

    # ------------------------------------------------------------------ Feishu 自定义机器人

    def _feishu_answer(self, robot: FakeRobot | None, code: int, msg: str, status: int = 200) -> web.Response:
        self._record(FEISHU, robot, code)
        return web.json_response({"code": code, "data": {}, "msg": msg}, status=status)

    async def _feishu_send(self, request: web.Request) -> web.Response:
        if self._down:
            return self._gateway_error(FEISHU, None, 502)
        token = request.match_info["token"]
        robot = next((r for r in self.robots.values() if r.kind == FEISHU and r.credential == token), None)
        if robot is None:
            return self._feishu_answer(None, 19001, "param invalid: incoming webhook access token invalid")
        fault = self._fault(FEISHU, robot)
        if fault is not None and fault.status >= 500:
            return self._gateway_error(FEISHU, robot, fault.status)
        raw = await request.read()
        if len(raw) > FEISHU_MAX_BODY:
            return self._feishu_answer(robot, 9499, "Bad Request", status=400)
        body = await self._json(request)
        if body is None:
            return self._feishu_answer(robot, 9499, "Bad Request", status=400)
        if robot.secret:
            timestamp, sign = str(body.get("timestamp", "")), body.get("sign")
            ok = timestamp.isdigit() and abs(int(timestamp) - self.wall_clock()) <= SIGN_WINDOW_S
            # key: "timestamp\nsecret", message: nothing
            expected = base64.b64encode(hmac.new(f"{timestamp}\n{robot.secret}".encode(), b"", hashlib.sha256).digest())
            if not ok or not isinstance(sign, str) or not hmac.compare_digest(expected.decode(), sign):
                return self._feishu_answer(
                    robot, 19021, "sign match fail or timestamp is not within one hour from current time"
                )
        if self._over_limit(robot, self.clock()):
            return self._feishu_answer(robot, 11232, "frequency limited")
        if fault is not None:
            return self._feishu_answer(robot, fault.code, fault.message, status=fault.status)
        msg_type = body.get("msg_type")
        if msg_type == "text":
            text = ((body.get("content") or {}).get("text")) or ""
        elif msg_type == "post":
            post = (body.get("content") or {}).get("post") or {}
            lang: JSON = next(iter(post.values()), {}) if isinstance(post, dict) and post else {}
            text = "\n".join(
                "".join(str(el.get("text", "")) for el in row if isinstance(el, dict))
                for row in lang.get("content", [])
            )
        elif msg_type == "interactive":
            card = body.get("card")
            if not isinstance(card, dict) or not isinstance(card.get("elements"), list):
                return self._feishu_answer(robot, 9499, "Bad Request", status=400)
            if any(isinstance(el, dict) and el.get("tag") == "action" for el in card["elements"]):
                for el in card["elements"]:  # a custom robot's card may only link out: no callback buttons
                    for act in el.get("actions", []) if isinstance(el, dict) else []:
                        if isinstance(act, dict) and "value" in act and "url" not in act:
                            return self._feishu_answer(robot, 9499, "Bad Request", status=400)
            text = "\n".join(
                str(el.get("content") or (el.get("text") or {}).get("content") or "")
                for el in card["elements"]
                if isinstance(el, dict)
            )
        else:
            return self._feishu_answer(robot, 9499, "Bad Request", status=400)
        if not text.strip():
            return self._feishu_answer(robot, 9499, "Bad Request", status=400)
        if robot.keywords and not any(k in text for k in robot.keywords):
            return self._feishu_answer(robot, 19024, "Key Words Not Found")
        robot.messages.append({"kind": FEISHU, "msgtype": msg_type, "text": text, "body": body, "t": self.clock()})
        return self._feishu_answer(robot, 0, "success")
