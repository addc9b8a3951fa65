"""The DingTalk channel (钉钉 / 专有钉钉): an enterprise internal app's robot, over DingTalk's HTTP APIs.

Sending: an app access token (``POST /v1.0/oauth2/accessToken``, cached until shortly before it expires,
fetched by one caller at a time, fetched again when an API calls it invalid), then one-to-one robot messages
(``/v1.0/robot/oToMessages/batchSend``, one user per call) or, for a group conversation id (``cid…``),
``/v1.0/robot/groupMessages/send``. Text goes out as ``sampleMarkdown``; files are uploaded to the old
API (``/media/upload``) and sent as ``sampleFile``. DingTalk's action cards open URLs and cannot post a
choice back without a public page, and its interactive cards (互动卡片) need a template built in the card
platform, so buttons go out as numbered lines (:class:`NumberedChoices`) and a bare "1" reply presses one.

Receiving: DingTalk's HTTP callback mode (``/dingtalk/callback``): headers ``timestamp`` (ms) and ``sign`` =
base64(HMAC-SHA256(key=appSecret, msg=timestamp + "\\n" + appSecret)), checked in constant time and within
DingTalk's one-hour window before the body is read. Replies go back through the same send API (not the
callback's ``sessionWebhook``): one code path with its token, limits and error mapping, and replies that
come late (a slow conversation, a retry) still arrive after the session webhook expired.

A pure adapter: it knows DingTalk's API and coordbot's channel interface, nothing of what handles a message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any

import aiohttp
from aiohttp import web

from coordbot.channels._tokens import CachedToken
from coordbot.channels.base import (
    ChannelAuthError,
    ChannelLimits,
    ContentRejectedError,
    Delivery,
    Inbound,
    InboundHandler,
    NumberedChoices,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
    command_in,
    invite_code_in,
)
from coordbot.channels.spool import DurableInbound
from coordbot.core.config import Settings
from coordbot.core.text import render

log = logging.getLogger("coordbot.channels.dingtalk")

NAME = "dingtalk"
CALLBACK_PATH = "/dingtalk/callback"
CALLBACK_MAX_BYTES = 1 << 20  # a robot message is a few KB
SIGN_WINDOW_MS = 3_600_000  # DingTalk: a timestamp more than one hour away from now is not a legal request
TOKEN_PATH = "/v1.0/oauth2/accessToken"
OTO_PATH = "/v1.0/robot/oToMessages/batchSend"
GROUP_PATH = "/v1.0/robot/groupMessages/send"
UPLOAD_PATH = "/media/upload"
# Documented per message: msgParam at most 15,000 bytes (group send); markdown text at most 5,000 characters
# (the work-notification markdown limit, the only figure DingTalk publishes for its markdown).
MAX_PARAM_BYTES = 15_000
MAX_MARKDOWN_CHARS = 5_000
MAX_TITLE_CHARS = 30
MAX_FILE_BYTES = 20 * 1024 * 1024  # media/upload, type=file
# "标准版" organisations: 20 calls per second per app and API (专业版 40, 专属版 60). Paced a little below,
# so timer and network jitter never put 21 calls into DingTalk's second.
DEFAULT_QPS = 20.0
PACING_MARGIN = 1.04
TOKEN_MARGIN_S = 300.0  # fetch a new token this long before the old one expires
FLOW_CONTROL_RETRY_S = 5.0  # a flow-controlled user: DingTalk says no more; try again a little later
QPS_RETRY_S = 1.0  # DingTalk: "qps限流限制时间是1秒 … sleep 1秒"
LIMITS = ChannelLimits(max_text=MAX_MARKDOWN_CHARS, buttons=False, files=True)
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


# ---- Telegram HTML → DingTalk markdown -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Run:
    text: str
    bold: bool = False
    italic: bool = False
    href: str = ""


# A heading or a quote at a line's start would restyle the whole line; list markers are left alone (the
# numbered options are an ordered list on purpose).
_LINE_START = re.compile(r"^(\s*)([#>])")


def _escape(text: str) -> str:
    """Markdown's emphasis, code and link characters, so contacts' words do not turn into markup. Not ``_``:
    intraword underscores (user ids, URLs) are no emphasis, and an escape would show if it were not read."""
    return re.sub(r"([\\`*\[\]])", r"\\\1", text)


class _Parser(HTMLParser):
    """Telegram's HTML subset into lines of styled runs (unknown tags are transparent, entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[list[_Run]] = [[]]
        self._bold = 0
        self._italic = 0
        self._hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("b", "strong"):
            self._bold += 1
        elif tag in ("i", "em"):
            self._italic += 1
        elif tag == "a":
            self._hrefs.append(dict(attrs).get("href") or "")
        elif tag == "br":
            self.lines.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("b", "strong"):
            self._bold = max(0, self._bold - 1)
        elif tag in ("i", "em"):
            self._italic = max(0, self._italic - 1)
        elif tag == "a" and self._hrefs:
            self._hrefs.pop()

    def handle_data(self, data: str) -> None:
        href = next((h for h in reversed(self._hrefs) if h), "")
        for i, piece in enumerate(data.split("\n")):
            if i:
                self.lines.append([])
            if piece:
                self.lines[-1].append(_Run(piece, self._bold > 0, self._italic > 0, href))


def _render_run(run: _Run, *, first: bool) -> str:
    """One run as markdown; spaces stay outside the markers (``** x**`` would not be bold)."""
    core = run.text.strip(" ")
    if not core:
        return run.text
    lead = run.text[: len(run.text) - len(run.text.lstrip(" "))]
    trail = run.text[len(run.text.rstrip(" ")) :]
    body = _escape(core)
    if first:
        body = _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), body, count=1)
    if run.href and re.match(r"^(https?|dingtalk)://", run.href):
        body = f"[{body}]({run.href.replace(')', '%29').replace(' ', '%20')})"
    if run.bold:
        body = f"**{body}**"
    if run.italic:
        body = f"*{body}*"
    return lead + body + trail


def _json_cost(text: str) -> int:
    """Bytes ``text`` adds inside msgParam (a JSON string, UTF-8, not ASCII-escaped)."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


LINE_BREAK = "  \n"  # a markdown hard break: one HTML line is one shown line


@dataclass
class _Part:
    pieces: list[str] = field(default_factory=list)
    chars: int = 0
    cost: int = 0

    def add(self, piece: str) -> None:
        self.pieces.append(piece)
        self.chars += len(piece)
        self.cost += _json_cost(piece)


def to_markdown_parts(
    html_text: str, *, max_chars: int = MAX_MARKDOWN_CHARS, max_bytes: int | None = None
) -> list[str]:
    """Telegram HTML as DingTalk markdown, split into messages of at most ``max_chars`` characters whose
    msgParam text stays under ``max_bytes``. Cuts between lines where it can; a line longer than a message is
    cut between characters, each piece carrying its own markers, so no part opens markup it does not close."""
    budget = max_bytes if max_bytes is not None else MAX_PARAM_BYTES - 4 * MAX_TITLE_CHARS - 64
    parser = _Parser()
    parser.feed(html_text)
    parser.close()
    parts: list[_Part] = [_Part()]

    def fits(part: _Part, piece: str) -> bool:
        return part.chars + len(piece) <= max_chars and part.cost + _json_cost(piece) <= budget

    for line in parser.lines:
        whole = "".join(_render_run(r, first=i == 0) for i, r in enumerate(line))
        joiner = LINE_BREAK if parts[-1].pieces else ""
        if fits(parts[-1], joiner + whole):
            parts[-1].add(joiner + whole)
            continue
        if parts[-1].pieces:
            parts.append(_Part())
        if fits(parts[-1], whole):
            parts[-1].add(whole)
            continue
        # A line longer than one message: cut between characters, the longest piece that fits each time.
        for i, run in enumerate(line):
            text, untouched = run.text, True
            while text:
                first = not parts[-1].pieces or (i == 0 and untouched)

                def piece(n: int, run: _Run = run, text: str = text, first: bool = first) -> str:
                    return _render_run(replace(run, text=text[:n]), first=first)

                lo, hi = 0, len(text)
                while lo < hi:  # rendering grows with the prefix: binary search for the longest that fits
                    mid = (lo + hi + 1) // 2
                    lo, hi = (mid, hi) if fits(parts[-1], piece(mid)) else (lo, mid - 1)
                if lo == 0 and parts[-1].pieces:
                    parts.append(_Part())
                    continue
                lo = max(lo, 1)  # an empty part takes at least one character, whatever the limits
                parts[-1].add(piece(lo))
                text, untouched = text[lo:], False
    out = ["".join(p.pieces).strip() for p in parts]
    return [o for o in out if o]


def title_of(html_text: str) -> str:
    """The title DingTalk shows in the conversation list and the notification: the first visible line."""
    parser = _Parser()
    parser.feed(html_text)
    parser.close()
    for line in parser.lines:
        text = "".join(r.text for r in line).strip()
        if text:
            return text if len(text) <= MAX_TITLE_CHARS else text[: MAX_TITLE_CHARS - 1] + "…"
    return "coordbot"


# ---- callback signature ----------------------------------------------------------------------------


def callback_sign(timestamp: str, app_secret: str) -> str:
    """DingTalk's ``sign`` header: base64(HmacSHA256(key=appSecret, msg=timestamp + "\\n" + appSecret))."""
    digest = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_callback(timestamp: str, sign: str, app_secret: str, *, now_ms: int) -> str:
    """ "" when the headers are DingTalk's, else why not (for the log line; nothing secret in it)."""
    if not app_secret:
        return "no app secret configured"
    if not timestamp.isdigit():
        return "timestamp missing or not a number"
    if abs(now_ms - int(timestamp)) > SIGN_WINDOW_MS:
        return "timestamp outside the one-hour window"
    if not hmac.compare_digest(sign.encode(), callback_sign(timestamp, app_secret).encode()):
        return "wrong sign"
    return ""


# ---- limits and tokens -----------------------------------------------------------------------------


class Pacer:
    """At most ``rate`` calls a second as strict spacing (a bucket of one), so no window of a second ever
    holds more than DingTalk's count, however the calls bunch up."""

    def __init__(self, rate: float) -> None:
        self.interval = PACING_MARGIN / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            delay = self._next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = time.monotonic() + self.interval


class _TokenRefused(Exception):
    """The API says the access token is invalid or expired: fetch a new one and try once more."""


class DingTalkChannel:
    """Sends robot messages for one internal app; keeps DingTalk's per-API QPS limit itself."""

    name = NAME
    limits = LIMITS

    def __init__(
        self,
        *,
        app_key: str,
        app_secret: str,
        robot_code: str = "",
        base_url: str = "https://api.dingtalk.com",
        oapi_url: str = "https://oapi.dingtalk.com",
        locale: str = "zh",
        qps: float | None = None,  # the organisation's edition: 20 (标准版), 40 (专业版), 60 (专属版)
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.app_key = app_key
        self._secret = app_secret
        self.robot_code = robot_code or app_key  # an internal app's robotCode is its AppKey unless set
        self.base_url = base_url.rstrip("/")
        self.oapi_url = oapi_url.rstrip("/")
        self.choices = NumberedChoices()
        self.intro = render("channels/numbered_options.txt", locale=locale).strip()
        self._session = session
        self._own_session = session is None
        # Fetched again TOKEN_MARGIN_S before it expires, or at half its life when it is short.
        self._token = CachedToken(self._fetch_token, margin=TOKEN_MARGIN_S, margin_share=0.5)
        self._pacers = {path: Pacer(qps or DEFAULT_QPS) for path in (OTO_PATH, GROUP_PATH, UPLOAD_PATH)}

    @property
    def token_fetches(self) -> int:
        return self._token.fetches

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    # ---- the access token ----

    async def access_token(self) -> str:
        """The cached token, or a new one: concurrent senders wait for the one fetch under way."""
        return await self._token.get()

    async def _fetch_token(self) -> tuple[str, float]:
        status, data = await self._post_json(
            self.base_url + TOKEN_PATH, {"appKey": self.app_key, "appSecret": self._secret}, headers={}
        )
        token = data.get("accessToken")
        if status == 200 and isinstance(token, str) and token:
            return token, float(data.get("expireIn") or 7200)
        code = str(data.get("code") or "")
        if status >= 500 or status == 429 or "QpsLimit" in code or "Throttl" in code:
            raise TransientChannelError(f"DingTalk token: HTTP {status} {code}", retry_after=QPS_RETRY_S)
        raise ChannelAuthError(f"DingTalk refused the app credentials: HTTP {status} {code or data.get('message')}")

    # ---- HTTP ----

    async def _post_json(self, url: str, body: dict[str, Any], *, headers: dict[str, str]) -> tuple[int, Any]:
        try:
            async with self.session.post(url, json=body, headers=headers) as resp:
                return resp.status, await _json_body(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientChannelError(f"DingTalk unreachable: {type(exc).__name__}") from exc

    async def _api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Call a new-style API; a refused token is fetched again and the call tried once more."""
        for attempt in range(2):
            token = await self.access_token()
            await self._pacers[path].wait()
            status, data = await self._post_json(
                self.base_url + path, body, headers={"x-acs-dingtalk-access-token": token}
            )
            try:
                return _check_api(status, data, path)
            except _TokenRefused:
                self._token.invalidate(token)  # unless another sender fetched a new one meanwhile
                if attempt:
                    raise ChannelAuthError("DingTalk refused a freshly fetched access token") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _upload(self, name: str, content: bytes) -> str:
        """The mediaId of ``content`` uploaded as a file (old API: token in the query, errcode answers)."""
        if len(content) > MAX_FILE_BYTES:
            raise ContentRejectedError(f"file {name!r} is over DingTalk's {MAX_FILE_BYTES} bytes")
        for attempt in range(2):
            token = await self.access_token()
            await self._pacers[UPLOAD_PATH].wait()
            form = aiohttp.FormData()
            form.add_field("media", content, filename=name, content_type="application/octet-stream")
            try:
                async with self.session.post(
                    self.oapi_url + UPLOAD_PATH, params={"access_token": token, "type": "file"}, data=form
                ) as resp:
                    status, data = resp.status, await _json_body(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # not chained: aiohttp's errors may name the URL, and this one carries the token
                raise TransientChannelError(f"DingTalk media upload unreachable: {type(exc).__name__}") from None
            errcode = data.get("errcode")
            if status == 200 and errcode in (0, "0") and data.get("media_id"):
                return str(data["media_id"])
            if errcode in (40014, 42001, 40001, 88):  # invalid / expired access token
                self._token.invalidate(token)
                if attempt:
                    raise ChannelAuthError("DingTalk refused a freshly fetched access token (media upload)")
                continue
            what = f"DingTalk media upload: HTTP {status} errcode {errcode} {data.get('errmsg', '')}"
            if status >= 500 or status == 429 or errcode in (-1, 90002, 90018, 90006):
                raise TransientChannelError(what, retry_after=QPS_RETRY_S)
            raise ContentRejectedError(what)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- sending ----

    async def send(self, message: Outbound) -> Delivery:
        address = message.address.strip()
        if not address:
            raise PermanentChannelError("DingTalk: empty address")
        message = self.choices.offer(message, intro=self.intro)
        refs: list[str] = []
        title = title_of(message.text)
        for part in to_markdown_parts(message.text) if message.text else []:
            refs.append(await self._deliver(address, "sampleMarkdown", {"title": title, "text": part}))
        if message.document is not None:
            name, content = message.document
            media_id = await self._upload(name, content)
            ext = name.rsplit(".", 1)[-1].lower() if "." in name else "file"
            refs.append(
                await self._deliver(address, "sampleFile", {"mediaId": media_id, "fileName": name, "fileType": ext})
            )
        if not refs:
            raise ContentRejectedError("DingTalk: nothing to send (empty message)")
        return Delivery(self.name, refs[-1])

    async def _deliver(self, address: str, msg_key: str, param: dict[str, str]) -> str:
        msg_param = json.dumps(param, ensure_ascii=False)
        if len(msg_param.encode()) > MAX_PARAM_BYTES:
            raise ContentRejectedError(f"DingTalk: msgParam over {MAX_PARAM_BYTES} bytes")
        body: dict[str, Any] = {"robotCode": self.robot_code, "msgKey": msg_key, "msgParam": msg_param}
        if is_group_address(address):
            body["openConversationId"] = address
            data = await self._api(GROUP_PATH, body)
        else:
            body["userIds"] = [address]
            data = await self._api(OTO_PATH, body)
            if address in (data.get("invalidStaffIdList") or []):
                raise PermanentChannelError("DingTalk: the userId is not a member the robot can reach")
            if address in (data.get("flowControlledStaffIdList") or []):
                raise TransientChannelError("DingTalk: the user is flow-controlled", retry_after=FLOW_CONTROL_RETRY_S)
        key = data.get("processQueryKey")
        if not isinstance(key, str) or not key:
            raise TransientChannelError("DingTalk: the answer had no processQueryKey")
        return key


def is_group_address(address: str) -> bool:
    """A group's open conversation id (``cid…``) rather than a member's userId."""
    return address.startswith("cid")


async def _json_body(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        data = json.loads(await resp.read() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


_ADDRESS_CODES = (
    "invalidParameter.userIds",
    "staffId.notExisted",
    "invalid.openConversationId",
    "resource.unavailable",
)
_CONFIG_CODES = ("invalidParameter.robotCode", "resource.not.found", "robot.not.exist")


def _check_api(status: int, data: dict[str, Any], path: str) -> dict[str, Any]:
    """The answer's body, or the channel error DingTalk's ``{code, message, requestid}`` stands for."""
    if 200 <= status < 300 and not data.get("code"):
        return data
    code = str(data.get("code") or "")
    what = f"DingTalk {path}: HTTP {status} {code} {data.get('message', '')}".rstrip()
    if code == "InvalidAuthentication" or status == 401 or "AccessTokenExpired" in code or "token.invalid" in code:
        raise _TokenRefused(what)
    if status == 429 or "QpsLimit" in code or "Throttl" in code or "RateLimit" in code:
        raise TransientChannelError(what, retry_after=QPS_RETRY_S)
    if status >= 500 or code in ("ServiceUnavailable", "SystemError", "InternalError"):
        raise TransientChannelError(what)
    if code.startswith(_CONFIG_CODES) or code.startswith("Forbidden.AccessDenied") or status == 403:
        # a missing permission (企业内机器人发送消息权限), a wrong robotCode, the month's API quota used up
        raise ChannelAuthError(what)
    if code.startswith(_ADDRESS_CODES):
        raise PermanentChannelError(what)
    raise ContentRejectedError(what)


# ---- the entry points ------------------------------------------------------------------------------


def _channel(settings: Settings, session: aiohttp.ClientSession | None = None) -> DingTalkChannel:
    return DingTalkChannel(
        app_key=settings.dingtalk_app_key,
        app_secret=settings.dingtalk_app_secret.get(),
        robot_code=settings.dingtalk_robot_code,
        base_url=settings.dingtalk_base_url,
        oapi_url=settings.dingtalk_oapi_url,
        locale=settings.locale,
        session=session,
    )


@asynccontextmanager
async def open_sender(settings: Settings) -> AsyncIterator[DingTalkChannel]:
    """A send-only DingTalk channel, for one-shot commands and the reminder engine."""
    channel = _channel(settings)
    try:
        yield channel
    finally:
        await channel.close()


def frontend(settings: Settings, handle: InboundHandler) -> DingTalkFrontend:
    """The registry's entry point: the two-way DingTalk adapter (HTTP callback mode)."""
    return DingTalkFrontend(settings, handle)


# ---- inbound ---------------------------------------------------------------------------------------


def inbound_from_callback(data: dict[str, Any], choices: NumberedChoices) -> Inbound | None:
    """Normalise a robot message; ``None`` when it carries nothing coordbot can read or answer."""
    msg_id = data.get("msgId")
    staff_id = data.get("senderStaffId")
    if not isinstance(msg_id, str) or not msg_id or not isinstance(staff_id, str) or not staff_id:
        return None  # no userId: an external member, or a robot not yet published; nothing to answer on
    is_group = str(data.get("conversationType")) == "2"
    chat_id = str(data.get("conversationId") or "") if is_group else staff_id
    if not chat_id:
        return None
    msgtype = data.get("msgtype")
    raw_content = data.get("content")
    content: dict[str, Any] = raw_content if isinstance(raw_content, dict) else {}
    if msgtype == "text" and isinstance(data.get("text"), dict):
        text = str(data["text"].get("content") or "")
    elif msgtype == "richText":
        text = "".join(str(p.get("text") or "") for p in content.get("richText") or [] if isinstance(p, dict))
    elif msgtype == "audio":
        text = str(content.get("recognition") or "")  # DingTalk's speech-to-text of a voice message
    else:
        return None
    text = text.strip()
    common: dict[str, Any] = {
        "channel": NAME,
        "external_id": msg_id,
        "chat_id": chat_id,
        "sender_id": staff_id,
        "sender_name": str(data.get("senderNick") or ""),
        "is_group": is_group,
    }
    code = invite_code_in(text)
    if code:
        return Inbound(**common, kind="command", text=text, command="start", args=code, start_code=code)
    if (said := command_in(text)) is not None:
        return Inbound(**common, kind="command", text=text, command=said[0], args=said[1])
    button = choices.press(chat_id, text)
    if button is not None:
        return Inbound(**common, kind="callback", text=text, callback_action=button.action, callback_ref=button.ref)
    return Inbound(**common, kind="message", text=text)


class DingTalkFrontend:
    """Serves DingTalk's signed HTTP callback and answers each robot message through ``handle``."""

    def __init__(
        self,
        settings: Settings,
        handle: InboundHandler,
        *,
        channel: DingTalkChannel | None = None,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.settings = settings
        self.handle = handle
        self.channel = channel or _channel(settings)
        self._secret = settings.dingtalk_app_secret.get()
        self._now_ms = wall_clock_ms
        self._inbound = DurableInbound(
            NAME, settings, handle, lambda: self.channel, account=settings.dingtalk_app_key, alert_as_text=True
        )
        # Signatures seen within the window, with their body's digest: the sign covers only the timestamp,
        # so a captured header pair must not carry a different body. The same body again is DingTalk's retry.
        self._seen: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()
        self.stopped = False

    async def start(self) -> None:
        log.info("dingtalk: HTTP callback mode on %s", CALLBACK_PATH)

    async def stop(self) -> None:
        self.stopped = True
        await self._inbound.close()
        await self.channel.close()

    async def drain(self) -> None:
        """Wait until every accepted callback was handled and answered."""
        await self._inbound.drain()

    def webhook_routes(self) -> list[web.RouteDef]:
        return [web.post(CALLBACK_PATH, self.callback)]

    def _replayed(self, timestamp: str, sign: str, body: bytes) -> bool | None:
        """True for a header pair seen with another body, None for an exact repeat, False for new."""
        now = self._now_ms()
        while self._seen and next(iter(self._seen.values()))[0] < now - 2 * SIGN_WINDOW_MS:
            self._seen.popitem(last=False)
        digest = hashlib.sha256(body).digest()
        seen = self._seen.get((timestamp, sign))
        if seen is not None:
            return None if seen[1] == digest else True
        if len(self._seen) >= 100_000:
            self._seen.popitem(last=False)
        self._seen[(timestamp, sign)] = (now, digest)
        return False

    async def callback(self, request: web.Request) -> web.Response:
        """One robot message: headers checked before the body is read; answered 200 at once, handled after."""
        timestamp = request.headers.get("timestamp", "")
        problem = verify_callback(timestamp, request.headers.get("sign", ""), self._secret, now_ms=self._now_ms())
        if problem:
            log.warning("dingtalk callback refused: %s", problem)
            return web.Response(status=403, text="forbidden")
        if request.content_length is not None and request.content_length > CALLBACK_MAX_BYTES:
            return web.Response(status=413, text="too large")
        body = await request.content.read(CALLBACK_MAX_BYTES + 1)
        if len(body) > CALLBACK_MAX_BYTES:
            return web.Response(status=413, text="too large")
        replay = self._replayed(timestamp, request.headers.get("sign", ""), body)
        if replay:
            log.warning("dingtalk callback refused: a seen signature with another body")
            return web.Response(status=403, text="forbidden")
        if replay is None:
            return web.json_response({})  # DingTalk delivering the same message again: handled already
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            inbound = inbound_from_callback(data, self.channel.choices)
        except (ValueError, TypeError, AttributeError) as exc:
            # Authentic but unreadable: acknowledged, so DingTalk does not deliver it again and again.
            log.warning("dingtalk callback with an unreadable body (%s): acknowledged", type(exc).__name__)
            return web.json_response({})
        if inbound is None:
            log.info("dingtalk callback without a message coordbot reads (msgtype %r)", data.get("msgtype"))
            return web.json_response({})
        if self.stopped:
            return web.Response(status=503, text="stopping")
        # Spooled before the answer (no toasts on DingTalk: a button's alert without text is said in the chat).
        if not await self._inbound.accept(inbound):
            return web.Response(status=503, text="try again")
        return web.json_response({})
