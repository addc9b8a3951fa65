"""Group webhook robots, send-only: WeCom 群机器人, DingTalk 自定义机器人 and Feishu 自定义机器人.

A department (or the office) reaches its work group through a robot added to that group. The robots are
named in a YAML file kept outside git (``Settings.robots_file``: it holds the webhook keys and signing
secrets); a group contact has the robot's kind as its channel (``wecom_robot``, ``dingtalk_robot``,
``feishu_robot``) and the robot's name as its address. Nobody can answer a webhook robot, so buttons are
dropped (a group notice carries no action; replies go to each liaison officer's own chat).

Protocols (docs/channels/robots.md has the sources):

- WeCom: ``POST {base}/cgi-bin/webhook/send?key=KEY`` with ``msgtype`` markdown (content <= 4096 bytes of
  UTF-8); files by ``POST {base}/cgi-bin/webhook/upload_media?key=KEY&type=file`` (multipart ``media``),
  then ``msgtype`` file. The key is the only credential. 20 messages a minute per robot.
- DingTalk: ``POST {oapi}/robot/send?access_token=T&timestamp=MS&sign=S`` (加签), ``sign =
  base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}"))`` URL-encoded; ``msgtype`` markdown
  ``{title, text}``. 20 a minute per robot, and going over throttles the robot for ten minutes.
- Feishu: ``POST {base}/open-apis/bot/v2/hook/TOKEN`` with ``{timestamp (s), sign, msg_type, card}``,
  ``sign = base64(HmacSHA256(key=f"{timestamp}\\n{secret}", msg=b""))`` (key and message the other way
  round from DingTalk's); ``msg_type`` interactive (a card without callbacks). 5 a second and 100 a minute
  per robot; the body at most 20 KB.

Rate limits are kept here, per robot and per process (:class:`SlidingWindows`): a slot counts from the
moment the platform's answer came back, so whatever the network latency, no window of the platform's
length ever sees more than the limit. Several coordbot processes sharing one robot share its limit only if
they share the process; spreading one robot's limit over instances is not done here.

Nothing here logs a URL: every one of them carries a key, a token or a signature.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from coordbot.channels._windows import SlidingWindows
from coordbot.channels.base import (
    ChannelAuthError,
    ChannelLimits,
    ContentRejectedError,
    Delivery,
    NoChannelError,
    Outbound,
    TransientChannelError,
)
from coordbot.core.config import ConfigError, Secret, Settings

log = logging.getLogger("coordbot.channels.robots")

WECOM, DINGTALK, FEISHU = "wecom_robot", "dingtalk_robot", "feishu_robot"
KINDS = (WECOM, DINGTALK, FEISHU)

WECOM_MARKDOWN_BYTES = 4096
# DingTalk documents no size for a custom robot's markdown; 15,000 bytes is what its enterprise robot
# documents for a message, a bound well inside whatever the webhook takes.
DINGTALK_MARKDOWN_BYTES = 15_000
FEISHU_BODY_BYTES = 20 * 1024
DINGTALK_TITLE_CHARS = 40  # the line shown in the chat list and in the notification
WECOM_MAX_FILE = 20 * 1024 * 1024
REQUEST_TIMEOUT = 15.0


# ---- the robots file -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Robot:
    """One webhook robot of the robots file. ``credential`` is the WeCom key, the DingTalk access_token or
    the Feishu hook token; ``secret`` the 加签 secret (empty: the robot is not signed)."""

    name: str
    kind: str
    credential: Secret
    secret: Secret = field(default_factory=lambda: Secret(""))
    base_url: str = ""  # empty: the platform's URL from the settings


# Per kind: the field holding the credential, and every field a robot of that kind may have.
_CREDENTIAL = {WECOM: "key", DINGTALK: "access_token", FEISHU: "token"}
_FIELDS = {
    WECOM: {"kind", "key", "base_url"},
    DINGTALK: {"kind", "access_token", "secret", "base_url"},
    FEISHU: {"kind", "token", "secret", "base_url"},
}
_NAME = re.compile(r"^[^\s].{0,127}$")
_CACHE: dict[tuple[str, int], dict[str, Robot]] = {}


def load_robots(path: Path) -> dict[str, Robot]:
    """The robots of ``path`` by name, validated; cached until the file changes (its mtime)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: the robots file (setting robots_file) does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: the robots file cannot be read ({exc.strerror})") from None
    key = (str(path.resolve()), stat.st_mtime_ns)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    robots = _parse_robots(path)
    for old in [k for k in _CACHE if k[0] == key[0]]:
        del _CACHE[old]
    _CACHE[key] = robots
    return robots


def _parse_robots(path: Path) -> dict[str, Robot]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: the robots file cannot be read ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of robot names to their settings, not {type(data).__name__}")
    robots: dict[str, Robot] = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{path}: robot name {name!r}: expected text of 1 to 128 characters")
        robots[name] = _parse_robot(path, name, entry)
    return robots


def _parse_robot(path: Path, name: str, entry: object) -> Robot:
    where = f"{path}: robot {name!r}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with kind and its key or token, not {type(entry).__name__}")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: field 'kind' is {kind!r}; expected one of {', '.join(KINDS)}")
    unknown = sorted(str(k) for k in entry if k not in _FIELDS[kind])
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r} for kind {kind}; expected only {', '.join(sorted(_FIELDS[kind]))}"
        )

    def text(fname: str, *, required: bool) -> str:
        value = entry.get(fname)
        if value is None:
            if required:
                raise ConfigError(f"{where}: field {fname!r} is missing; {kind} needs it")
            return ""
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: field {fname!r}: expected non-empty text")
        return value.strip()

    cred_field = _CREDENTIAL[kind]
    credential = text(cred_field, required=True)
    if "://" in credential or "?" in credential or "/" in credential:
        raise ConfigError(
            f"{where}: field {cred_field!r}: expected only the {cred_field} part of the webhook address, "
            "not the whole address"
        )
    secret = text("secret", required=False) if "secret" in _FIELDS[kind] else ""
    base_url = text("base_url", required=False).rstrip("/")
    if base_url and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", base_url):
        raise ConfigError(f"{where}: field 'base_url': expected an http(s):// address without query, not {base_url!r}")
    return Robot(name=name, kind=kind, credential=Secret(credential), secret=Secret(secret), base_url=base_url)


# ---- signatures ------------------------------------------------------------------------------------


def _hmac_b64(key: bytes, msg: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode("ascii")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签, before URL encoding: base64(HmacSHA256(key=secret, msg="{timestamp}\\n{secret}"))."""
    return _hmac_b64(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu 签名校验: base64(HmacSHA256(key="{timestamp}\\n{secret}", msg=b"")) (the string is the key)."""
    return _hmac_b64(f"{timestamp_s}\n{secret}".encode(), b"")


# ---- rate limits: channels._windows.SlidingWindows per robot --------------------------------------------


# Per kind: the platform's limits per robot, each window one second longer than the platform's (its clock
# and ours need not cut seconds alike). DingTalk's 20 a minute are kept as 20 in 61 s: going over costs ten
# minutes of silence, so the bucket stays strictly under the platform's count.
PLATFORM_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    WECOM: ((20, 60.0),),
    DINGTALK: ((20, 60.0),),
    FEISHU: ((5, 1.0), (100, 60.0)),
}
OUR_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    WECOM: ((20, 61.0),),
    DINGTALK: ((20, 61.0),),
    FEISHU: ((5, 1.05), (100, 61.0)),
}
# How long a robot is silent after the platform said it went over (WeCom: the minute; DingTalk: its ten
# minutes of throttling; Feishu: a second, its answer under load at the full and half hour).
OVER_LIMIT_PAUSE = {WECOM: 60.0, DINGTALK: 600.0, FEISHU: 1.0}

# One set of windows per robot and per process, whichever sender object sends through it.
_WINDOWS: dict[tuple[str, str, str, float], SlidingWindows] = {}


def _windows_for(kind: str, base: str, robot: Robot, time_scale: float, clock: Callable[[], float]) -> SlidingWindows:
    key = (kind, base, robot.credential.get(), time_scale)
    w = _WINDOWS.get(key)
    if w is None:
        w = _WINDOWS[key] = SlidingWindows([(n, s * time_scale) for n, s in OUR_LIMITS[kind]], clock)
    return w


# ---- rendering: Telegram's HTML subset to each platform's markdown -----------------------------------

_TOKEN = re.compile(r"(<[^>]*>|&[#a-zA-Z0-9]+;|\n)")
_TAG = re.compile(r"<(/?)([a-zA-Z]+)((?:\s[^>]*)?)>")
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_STYLE_TAGS = {"b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u", "s": "s", "strike": "s"}
_STYLE_TAGS |= {"del": "s", "code": "code", "pre": "code", "tg-spoiler": "", "span": "", "blockquote": ""}

# Which styles each platform's markdown shows (the others go out as plain text).
_SUPPORTED = {
    WECOM: {"b", "code"},  # WeCom markdown: bold, links, inline code, quotes, font colours
    DINGTALK: {"b", "i"},  # DingTalk markdown: headings, quotes, bold, italic, links, images, lists
    FEISHU: {"b", "i", "s"},  # Feishu card markdown: bold, italic, strikethrough, links
}
_MARKERS = {"b": "**", "i": "*", "s": "~~", "code": "`"}


@dataclass(frozen=True, slots=True)
class Line:
    markdown: str
    plain: str


def render_lines(text: str, kind: str) -> list[Line]:
    """Each line of the HTML as a self-contained markdown line (styles open at a line end close there and
    open again on the next line), with its plain text for when a line must be cut."""
    supported = _SUPPORTED[kind]
    lines: list[list[tuple[str, frozenset[str], str]]] = [[]]
    styles: list[str] = []
    href: list[str] = []
    for tok in _TOKEN.split(text or ""):
        if not tok:
            continue
        if tok == "\n":
            lines.append([])
            continue
        m = _TAG.fullmatch(tok)
        if m:
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name == "a":
                if closing:
                    if href:
                        href.pop()
                else:
                    h = _HREF.search(m.group(3) or "")
                    href.append(html.unescape(next(g for g in h.groups() if g is not None)) if h else "")
            elif name in _STYLE_TAGS:
                style = _STYLE_TAGS[name]
                if closing:
                    if style in styles:
                        styles.reverse()
                        styles.remove(style)
                        styles.reverse()
                else:
                    styles.append(style)
            elif name == "br" and not closing:
                lines.append([])
            continue
        piece = html.unescape(tok) if tok.startswith("&") else tok
        active = frozenset(s for s in styles if s in supported)
        lines[-1].append((piece, active, href[-1] if href else ""))
    return [Line(_line_markdown(segs), "".join(s[0] for s in segs)) for segs in lines]


def _line_markdown(segments: list[tuple[str, frozenset[str], str]]) -> str:
    out: list[str] = []
    for link, group in itertools.groupby(segments, key=lambda s: s[2]):
        runs = list(group)
        inner = "".join(_styled(t, st) for t, st in _merge(runs))
        out.append(f"[{inner}]({link})" if link and inner.strip() else inner)
    return "".join(out)


def _merge(runs: list[tuple[str, frozenset[str], str]]) -> list[tuple[str, frozenset[str]]]:
    merged: list[tuple[str, frozenset[str]]] = []
    for text, st, _ in runs:
        if merged and merged[-1][1] == st:
            merged[-1] = (merged[-1][0] + text, st)
        else:
            merged.append((text, st))
    return merged


def _styled(text: str, styles: frozenset[str]) -> str:
    core = text.strip()
    if not core or not styles:
        return text
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    if "code" in styles:
        return f"{lead}`{core.replace('`', '')}`{trail}"
    for style in ("s", "i", "b"):  # bold outermost: ***x*** reads as bold italic everywhere
        if style in styles:
            core = f"{_MARKERS[style]}{core}{_MARKERS[style]}"
    return f"{lead}{core}{trail}"


def split_lines(lines: Sequence[Line], limit: int, measure: Callable[[str], int]) -> list[str]:
    """Pack lines into parts of at most ``limit`` (as ``measure`` counts: UTF-8 bytes, or the bytes the line
    takes inside a JSON string). Cuts only between lines; a line too long for any part goes out as plain
    text cut between characters. Blank lines at a part's edges are dropped."""
    sep = measure("\n")
    parts: list[str] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        body = "\n".join(current).strip("\n")
        if body.strip():
            parts.append(body)
        current, size = [], 0

    for line in lines:
        cost = measure(line.markdown)
        if cost > limit:
            flush()
            for piece in _cut(line.plain, limit, measure):
                parts.append(piece)
            continue
        if current and size + sep + cost > limit:
            flush()
        if not current and not line.markdown.strip():
            continue  # no part starts with a blank line
        size += (sep if current else 0) + cost
        current.append(line.markdown)
    flush()
    return parts


def _cut(text: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    pieces: list[str] = []
    start = 0
    while start < len(text):
        lo, hi = start + 1, len(text)
        while lo < hi:  # the longest prefix from start that fits
            mid = (lo + hi + 1) // 2
            if measure(text[start:mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        pieces.append(text[start:lo])
        start = lo
    return [p for p in pieces if p.strip()]


def _utf8(s: str) -> int:
    return len(s.encode("utf-8"))


def _json_bytes(s: str) -> int:
    return len(json.dumps(s, ensure_ascii=False).encode("utf-8")) - 2


def _title(text: str) -> str:
    for line in render_lines(text, DINGTALK):
        plain = line.plain.strip()
        if plain:
            return plain[:DINGTALK_TITLE_CHARS]
    return "通知"


# ---- the sender ------------------------------------------------------------------------------------


def _feishu_card(markdown: str) -> dict[str, Any]:
    return {"config": {"wide_screen_mode": True}, "elements": [{"tag": "markdown", "content": markdown}]}


def _feishu_body_overhead() -> int:
    body = {"timestamp": "1700000000", "sign": "x" * 44, "msg_type": "interactive", "card": _feishu_card("")}
    return len(json.dumps(body, ensure_ascii=False).encode("utf-8"))


# What each platform's answer code means for us. Codes not listed are transient (retried a few times and
# then failed by the engine), as is every HTTP 5xx, timeout and network error.
_AUTH_CODES = {
    WECOM: {93000, 93004},  # invalid webhook url (wrong key, robot removed); robot disabled
    DINGTALK: {310000, 300001, 300005, 400101},  # sign / keywords / IP / timestamp; token is not exist
    FEISHU: {19001, 19021, 19022, 19024},  # token invalid; sign; IP whitelist; keywords
}
_CONTENT_CODES = {
    WECOM: {40008, 40058, 44004, 45002, 40007, 40033, 40006},  # msgtype, parameter/too long, empty, media
    DINGTALK: {40035, 43004, 400013, 430104},  # missing parameter, content-type, message body
    FEISHU: {9499, 19002, 11205},  # bad request (body shape or size)
}
_RATE_CODES = {WECOM: {45009}, DINGTALK: {130101, 410100}, FEISHU: {11232, 99991400}}


class RobotChannel:
    """Sends to the robots of one kind named in the robots file; ``Outbound.address`` is a robot's name."""

    def __init__(
        self,
        kind: str,
        robots_file: Path,
        *,
        session: aiohttp.ClientSession,
        platform_url: str,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"not a robot kind: {kind!r}")
        self.name = kind
        self.kind = kind
        self.robots_file = robots_file
        self.session = session
        self.platform_url = platform_url.rstrip("/")
        self.time_scale = time_scale
        self.clock = clock
        self.wall_clock = wall_clock
        self.limits = ChannelLimits(
            max_text=(WECOM_MARKDOWN_BYTES if kind == WECOM else DINGTALK_MARKDOWN_BYTES) // 3,
            buttons=False,
            files=kind == WECOM,
        )
        self._message_locks: dict[str, asyncio.Lock] = {}
        self._refs = itertools.count(1)

    # -- public

    def robot(self, name: str) -> Robot:
        robot = load_robots(self.robots_file).get(name)
        if robot is None:
            raise NoChannelError(f"{self.kind}: no robot named {name!r} in the robots file")
        if robot.kind != self.kind:
            raise NoChannelError(f"{self.kind}: robot {name!r} is a {robot.kind}, not a {self.kind}")
        return robot

    def parts(self, message: Outbound) -> list[str]:
        """The markdown messages ``message.text`` goes out as (buttons are dropped: nobody can answer)."""
        lines = render_lines(message.text, self.kind)
        if self.kind == WECOM:
            return split_lines(lines, WECOM_MARKDOWN_BYTES, _utf8)
        if self.kind == DINGTALK:
            # DingTalk's markdown breaks a line only after two spaces (a markdown hard break)
            lines = [Line(f"{line.markdown}  " if line.markdown.strip() else "", line.plain) for line in lines]
            return [p.rstrip() for p in split_lines(lines, DINGTALK_MARKDOWN_BYTES, _utf8)]
        return split_lines(lines, FEISHU_BODY_BYTES - _feishu_body_overhead() - 64, _json_bytes)

    async def send(self, message: Outbound) -> Delivery:
        robot = self.robot(message.address)
        parts = self.parts(message)
        if message.document is not None and self.kind != WECOM:
            log.warning(
                "%s %s: custom robots cannot send files; %s left out", self.kind, robot.name, message.document[0]
            )
        if not parts and (message.document is None or self.kind != WECOM):
            raise ContentRejectedError(f"{self.kind} {robot.name}: nothing to send (empty message)")
        base = robot.base_url or self.platform_url
        windows = _windows_for(self.kind, base, robot, self.time_scale, self.clock)
        lock = self._message_locks.setdefault(robot.name, asyncio.Lock())
        async with lock:  # the parts of one message go out one after the other, nothing between them
            for part in parts:
                await self._post(robot, base, windows, self._body(robot, part, message.text))
            if message.document is not None and self.kind == WECOM:
                media_id = await self._upload(robot, base, *message.document)
                await self._post(robot, base, windows, {"msgtype": "file", "file": {"media_id": media_id}})
        return Delivery(self.kind, f"{robot.name}:{int(self.wall_clock() * 1000)}-{next(self._refs)}")

    # -- requests

    def _body(self, robot: Robot, part: str, text: str) -> dict[str, Any]:
        if self.kind == WECOM:
            return {"msgtype": "markdown", "markdown": {"content": part}}
        if self.kind == DINGTALK:
            return {"msgtype": "markdown", "markdown": {"title": _title(text), "text": part}}
        return {"msg_type": "interactive", "card": _feishu_card(part)}

    def _request(self, robot: Robot, base: str, body: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, query, body) of one send, signed now."""
        if self.kind == WECOM:
            return f"{base}/cgi-bin/webhook/send", {"key": robot.credential.get()}, body
        if self.kind == DINGTALK:
            query = {"access_token": robot.credential.get()}
            if robot.secret:
                ts = int(self.wall_clock() * 1000)
                # the raw base64: yarl percent-encodes it once ('+' as %2B), as DingTalk's urlEncode step asks
                query |= {"timestamp": str(ts), "sign": dingtalk_sign(robot.secret.get(), ts)}
            return f"{base}/robot/send", query, body
        if robot.secret:
            ts = int(self.wall_clock())
            body = {"timestamp": str(ts), "sign": feishu_sign(robot.secret.get(), ts), **body}
        return f"{base}/open-apis/bot/v2/hook/{robot.credential.get()}", {}, body

    async def _post(self, robot: Robot, base: str, windows: SlidingWindows, body: dict[str, Any]) -> None:
        async with windows.slot():
            url, query, signed = self._request(robot, base, body)
            data = json.dumps(signed, ensure_ascii=False).encode("utf-8")
            answer = await self._call(robot, url, query, data=data, headers={"Content-Type": "application/json"})
        self._check(robot, windows, answer)

    async def _upload(self, robot: Robot, base: str, name: str, content: bytes) -> str:
        if len(content) > WECOM_MAX_FILE:
            raise ContentRejectedError(f"{self.kind} {robot.name}: {name} is over WeCom's 20 MB for a file")
        form = aiohttp.MultipartWriter("form-data")
        part = form.append(content, {"Content-Type": "application/octet-stream"})
        # the file name raw in UTF-8 (as browsers and requests send it): WeCom shows it as given, while
        # aiohttp's FormData would percent-encode a Chinese name and the group would see %E7%AE%80...
        quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
        part.headers["Content-Disposition"] = f'form-data; name="media"; filename="{quoted}"'
        url = f"{base}/cgi-bin/webhook/upload_media"
        answer = await self._call(robot, url, {"key": robot.credential.get(), "type": "file"}, data=form)
        self._check(robot, None, answer)
        media_id = answer[1].get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise TransientChannelError(f"{self.kind} {robot.name}: the upload answered no media_id")
        return media_id

    async def _call(
        self, robot: Robot, url: str, query: dict[str, str], **kwargs: Any
    ) -> tuple[int, dict[str, Any], float | None]:
        """(HTTP status, JSON answer, Retry-After) of one request; never shows the URL in an error."""
        what = f"{self.kind} {robot.name}"
        try:
            async with self.session.post(
                url, params=query, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT), **kwargs
            ) as resp:
                raw = await resp.read()
                retry_after = _retry_after(resp.headers)
                status = resp.status
        except TimeoutError:
            raise TransientChannelError(f"{what}: the request timed out") from None
        except aiohttp.ClientError as exc:
            raise TransientChannelError(f"{what}: network error ({type(exc).__name__})") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if status == 429:
                raise TransientChannelError(f"{what}: HTTP 429", retry_after=retry_after)
            raise TransientChannelError(f"{what}: HTTP {status} without a JSON answer", retry_after=retry_after)
        return status, answer, retry_after

    def _check(
        self, robot: Robot, windows: SlidingWindows | None, answer: tuple[int, dict[str, Any], float | None]
    ) -> None:
        status, body, retry_after = answer
        what = f"{self.kind} {robot.name}"
        if self.kind == FEISHU:
            code = body.get("code", body.get("StatusCode"))
            msg = body.get("msg", body.get("StatusMessage", ""))
        else:
            code, msg = body.get("errcode"), body.get("errmsg", "")
        if code == 0 and status < 400:
            return
        described = f"{what}: {code} {str(msg)[:200]}"
        if code in _RATE_CODES[self.kind] or status == 429:
            pause = retry_after if retry_after is not None else OVER_LIMIT_PAUSE[self.kind] * self.time_scale
            if windows is not None:
                windows.pause(pause)
            log.warning("%s: the platform says the robot went over its limit; silent for %.0fs", what, pause)
            raise TransientChannelError(described, retry_after=pause)
        if code in _AUTH_CODES[self.kind]:
            raise ChannelAuthError(described)
        if code in _CONTENT_CODES[self.kind]:
            raise ContentRejectedError(described)
        raise TransientChannelError(described, retry_after=retry_after)


def _retry_after(headers: Any) -> float | None:
    for name in ("Retry-After", "x-ogw-ratelimit-reset"):
        value = headers.get(name)
        if value:
            with contextlib.suppress(ValueError):
                return max(0.0, float(value))
    return None


def _platform_url(settings: Settings, kind: str) -> str:
    return {WECOM: settings.wecom_base_url, DINGTALK: settings.dingtalk_oapi_url, FEISHU: settings.feishu_base_url}[
        kind
    ]


@asynccontextmanager
async def open_sender(
    settings: Settings,
    kind: str,
    *,
    time_scale: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> AsyncIterator[RobotChannel]:
    """The send-only channel for the robots of ``kind`` in ``settings.robots_file``.

    ``time_scale`` shortens the platforms' windows (tests and the benchmark only; 1.0 in production).
    """
    if settings.robots_file is None:
        raise ConfigError(f"{kind}: the setting robots_file names no robots file")
    load_robots(settings.robots_file)  # a broken file fails here, at start, not at the first reminder
    async with aiohttp.ClientSession(raise_for_status=False) as session:
        yield RobotChannel(
            kind,
            settings.robots_file,
            session=session,
            platform_url=_platform_url(settings, kind),
            time_scale=time_scale,
            clock=clock,
            wall_clock=wall_clock,
        )


__all__ = [
    "KINDS",
    "Robot",
    "RobotChannel",
    "SlidingWindows",
    "dingtalk_sign",
    "feishu_sign",
    "load_robots",
    "open_sender",
    "render_lines",
    "split_lines",
]
