"""The WeCom channel (企业微信, and 政务微信 at its own base URL): a self-built application (自建应用).

Sending: ``gettoken`` (corp id + the app's Secret) gives an access_token, cached until shortly before it
expires and refreshed once, by one caller for all (single flight), when WeCom answers 40014/42001/40001;
``message/send`` delivers markdown (text when there is no markup), ``template_card`` cards of type
``button_interaction`` for buttons (numbered options when a message has more buttons than a card holds)
and files after ``media/upload``. WeCom silently drops messages over 30 a minute or 1000 an hour to one
member, so :class:`WeComRateLimiter` keeps those limits (and the per-API frequency limits) itself.

Receiving: the callback URL ``/wecom/callback`` (set in the admin console as "API接收消息"). The GET that
verifies the URL and every POST are checked before anything is read: SHA1 signature over the sorted
(token, timestamp, nonce, ciphertext), a timestamp within five minutes, then AES-256-CBC decryption (key =
base64(EncodingAESKey + "="), IV = key[:16], PKCS#7 to 32-byte blocks, plaintext = 16 random bytes +
4-byte big-endian length + message + corp id, which must be ours). WeCom waits 5 s for an answer, so the
callback answers at once and the message is handled in a task; the reply goes out through ``message/send``.

References (checked against): developer.work.weixin.qq.com document/path/90236 (message/send, its
markdown and template_card fields), 90312 and 90313 (frequency limits, error codes), 91144 (callback
encryption), 90240 (template_card_event), and the official sample ``WXBizMsgCrypt.py`` with its test
vector (sbzhu/weworkapi_python, callback/Sample.py), asserted in tests/channels/wecom/test_crypto.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from coordbot.channels._tokens import CachedToken
from coordbot.channels.base import (
    Button,
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
    decode_button,
    encode_button,
    invite_code_in,
)
from coordbot.channels.spool import DurableInbound
from coordbot.core.config import Settings
from coordbot.core.paths import templates_dir

log = logging.getLogger("coordbot.channels.wecom")

NAME = "wecom"
CALLBACK_PATH = "/wecom/callback"
# message/send (90236): text and markdown content at most 2048 bytes of UTF-8 (the group robot's markdown
# allows 4096; an application's does not). Over the limit WeCom truncates text and refuses markdown.
MAX_TEXT_BYTES = 2048
MAX_MARKDOWN_BYTES = 2048
# template_card button_interaction: at most 6 buttons, each key at most 1024 bytes and unique in the card;
# task_id at most 128 bytes of [0-9A-Za-z_-@], unique per app.
MAX_CARD_BUTTONS = 6
MAX_BUTTON_KEY_BYTES = 1024
# The card's display lengths (main_title.title "建议不超过36个字", sub_title_text 160): longer text goes out
# as markdown first and the card follows with the title only.
CARD_TITLE_CHARS = 36
CARD_SUBTITLE_CHARS = 160
CALLBACK_MAX_BYTES = 64 * 1024  # a callback is a few hundred bytes
TIMESTAMP_WINDOW = 300.0  # seconds either side of our clock: older callbacks are replays
LIMITS = ChannelLimits(
    max_text=MAX_MARKDOWN_BYTES // 3,  # CJK is 3 bytes a character: what always fits in one message
    buttons=True,
    files=True,
    max_button_data=MAX_BUTTON_KEY_BYTES,
)

# errcodes (90313). Token trouble: refresh once and send again.
TOKEN_EXPIRED = {40014, 42001, 40001}
BUSY = {-1, 45009, 45033}  # system busy, API frequency, concurrency
AUTH = {40013, 40001, 40091, 41004, 48002, 60020, 301002}  # corp id, secret, no API permission, IP not trusted
ADDRESS = {60011, 60111, 81013, 60103, 40003, 46004}  # not in the app's visible range, no such user, all invalid
CONTENT = {44004, 45002, 40008, 40058, 47001, 41009, 40007}  # empty, too long, bad type/params/format/media


# ---- crypto (WXBizMsgCrypt) ------------------------------------------------------------------------


class CallbackCryptoError(ValueError):
    """The callback is not authentic or cannot be decrypted for us."""


class WeComCrypto:
    """WeCom's callback signature and AES-256-CBC envelope, as the official WXBizMsgCrypt does it."""

    BLOCK = 32  # WeCom pads to 32-byte blocks, not AES's 16

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("the EncodingAESKey has 43 characters")
        self.token = token
        self.key = base64.b64decode(encoding_aes_key + "=")
        if len(self.key) != 32:
            raise ValueError("the EncodingAESKey does not decode to 32 bytes")
        self.receive_id = receive_id.encode()

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypted])).encode()).hexdigest()

    def verify(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bool:
        return hmac.compare_digest(self.signature(timestamp, nonce, encrypted).encode(), signature.encode())

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypted: str) -> bytes:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except ValueError as exc:
            raise CallbackCryptoError("not base64") from exc
        if not raw or len(raw) % 16:
            raise CallbackCryptoError("not whole AES blocks")
        d = self._cipher().decryptor()
        plain = d.update(raw) + d.finalize()
        pad = plain[-1]
        if not 1 <= pad <= self.BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackCryptoError("bad padding")
        body = plain[16:-pad]
        if len(body) < 4:
            raise CallbackCryptoError("too short")
        (length,) = struct.unpack(">I", body[:4])
        if 4 + length > len(body):
            raise CallbackCryptoError("length beyond the message")
        if not hmac.compare_digest(body[4 + length :], self.receive_id):
            raise CallbackCryptoError("encrypted for another receiver")
        return body[4 : 4 + length]

    def encrypt(self, message: bytes, *, random16: bytes | None = None) -> str:
        raw = (random16 or secrets.token_bytes(16)) + struct.pack(">I", len(message)) + message + self.receive_id
        pad = self.BLOCK - len(raw) % self.BLOCK
        raw += bytes([pad]) * pad
        e = self._cipher().encryptor()
        return base64.b64encode(e.update(raw) + e.finalize()).decode()


# ---- rendering: Telegram HTML -> WeCom markdown / text ----------------------------------------------

_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^>]*)?)/?>|&(?:#\d+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);|\n")
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)


@dataclass(frozen=True, slots=True)
class _Seg:
    text: str
    bold: bool = False
    code: bool = False
    href: str = ""


def _lines(text: str) -> list[list[_Seg]]:
    """The HTML as lines of styled segments (WeCom's markdown styles do not span lines)."""
    lines: list[list[_Seg]] = [[]]
    bold = code = 0
    href = ""
    pos = 0

    def emit(s: str) -> None:
        if not s:
            return
        seg = _Seg(s, bold > 0, code > 0, href)
        line = lines[-1]
        if line and (line[-1].bold, line[-1].code, line[-1].href) == (seg.bold, seg.code, seg.href):
            line[-1] = _Seg(line[-1].text + s, seg.bold, seg.code, seg.href)
        else:
            line.append(seg)

    for m in _TOKEN.finditer(text):
        emit(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "\n":
            lines.append([])
        elif token.startswith("&"):
            emit(html.unescape(token))
        else:
            closing, name = bool(m.group(1)), m.group(2).lower()
            step = -1 if closing else 1
            if name in ("b", "strong"):
                bold = max(0, bold + step)
            elif name in ("code", "pre"):
                code = max(0, code + step)
            elif name == "a":
                h = _HREF.search(m.group(3) or "")
                href = "" if closing or not h else html.unescape(next(g for g in h.groups() if g is not None))
            # i, u, s and the rest: WeCom's markdown has no such style; their text stays
    emit(text[pos:])
    return lines


def _render_seg(seg: _Seg) -> str:
    text = seg.text
    if not text.strip():
        return text
    lead, core, trail = text[: len(text) - len(text.lstrip())], text.strip(), text[len(text.rstrip()) :]
    if seg.code and "`" not in core:
        core = f"`{core}`"
    if seg.href:
        core = f"[{core}]({seg.href})"
    if seg.bold and "**" not in core:
        core = f"**{core}**"
    return lead + core + trail


def _plain_seg(seg: _Seg) -> str:
    return f"{seg.text} ({seg.href})" if seg.href and seg.href != seg.text.strip() else seg.text


def plain_text(text: str) -> str:
    """The visible text of the HTML, links as "text (url)": for text messages and cards."""
    return "\n".join("".join(_plain_seg(s) for s in line) for line in _lines(text))


def has_markup(text: str) -> bool:
    return any(s.bold or s.code or s.href for line in _lines(text) for s in line)


def _nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def _cut(text: str, room: int) -> int:
    """How many characters of ``text`` fit in ``room`` bytes (never half a character)."""
    used = 0
    for i, ch in enumerate(text):
        used += _nbytes(ch)
        if used > room:
            return i
    return len(text)


def _split_line(segs: list[_Seg], limit: int, render: Callable[[_Seg], str]) -> list[str]:
    """One line longer than ``limit`` bytes, as pieces of at most ``limit`` bytes with whole markup."""
    pieces: list[str] = []
    cur = ""
    for seg in segs:
        out = render(seg)
        if _nbytes(cur) + _nbytes(out) <= limit:
            cur += out
            continue
        rest = seg
        while rest.text:
            room = limit - _nbytes(cur)
            overhead = _nbytes(render(_Seg("x", rest.bold, rest.code, rest.href))) - 1
            n = _cut(rest.text, room - overhead) if room > overhead else 0
            if n == 0:
                if not cur:  # not even one character fits with its markup: drop the markup
                    rest = _Seg(rest.text)
                    continue
                pieces.append(cur)
                cur = ""
                continue
            cur += render(_Seg(rest.text[:n], rest.bold, rest.code, rest.href))
            rest = _Seg(rest.text[n:], rest.bold, rest.code, rest.href)
            if rest.text:
                pieces.append(cur)
                cur = ""
    if cur:
        pieces.append(cur)
    return pieces


def split_rendered(text: str, limit: int, *, markdown: bool = True) -> list[str]:
    """Render the HTML (markdown or plain) and split it into messages of at most ``limit`` UTF-8 bytes.

    Cuts between lines where it can; a longer line is cut between segments, then inside a segment's text
    at a character boundary, with its markup closed in each piece, so every part renders on its own.
    """
    render = _render_seg if markdown else _plain_seg
    parts: list[str] = []
    cur: list[str] = []
    size = 0
    for segs in _lines(text):
        line = "".join(render(s) for s in segs)
        add = _nbytes(line) + (1 if cur else 0)
        if size + add <= limit:
            cur.append(line)
            size += add
            continue
        if cur:
            parts.append("\n".join(cur))
        cur, size = [], 0
        if _nbytes(line) <= limit:
            cur, size = [line], _nbytes(line)
            continue
        *whole, last = _split_line(segs, limit, render)
        parts.extend(whole)
        cur, size = [last], _nbytes(last)
    if cur:
        parts.append("\n".join(cur))
    return [p.strip("\n") for p in parts if p.strip()]


# ---- rate limits --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: float


@dataclass(frozen=True, slots=True)
class RateLimits:
    """WeCom's limits (90312): per member per app 30 messages a minute and 1000 an hour (the excess is
    dropped without an error); per corp per API 10,000 calls a minute and 150,000 an hour.

    ``time_scale`` shortens every window (benchmarks); ``margin`` is added to each window so requests that
    reach WeCom a little later than we booked them still fall in the next window.
    """

    per_member: tuple[Window, ...] = (Window(30, 60.0), Window(1000, 3600.0))
    per_api: tuple[Window, ...] = (Window(10_000, 60.0), Window(150_000, 3600.0))
    time_scale: float = 1.0
    margin: float = 1.0


class _Log:
    """When the last sends under one set of windows went out (a sliding window log)."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def wait(self, windows: Sequence[Window], scale: float, margin: float, now: float) -> float:
        longest = max(w.seconds for w in windows) * scale + margin
        while self.times and self.times[0] <= now - longest:
            self.times.popleft()
        wait = 0.0
        n = len(self.times)
        for w in windows:
            if n >= w.limit:
                # the send w.limit back must leave the window before one more may go
                wait = max(wait, self.times[n - w.limit] + w.seconds * scale + margin - now)
        return wait


class WeComRateLimiter:
    """Sliding windows, not token buckets: WeCom counts sends in a window, and a bucket refilled at
    30/min still lets 30 + 30 through within one minute after an idle spell. Here any window of the stated
    length holds at most the stated number, for each member and for each API.

    Sends to one member go one at a time and are logged when WeCom has answered: that is never before
    WeCom received them, so however long a request waited for a connection or on the wire, the log never
    counts one earlier than WeCom did. API calls (across members) are booked when they leave, plus
    ``margin``.
    """

    def __init__(self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or RateLimits()
        self.clock = clock
        self._members: dict[str, tuple[asyncio.Lock, _Log]] = {}
        self._apis: dict[str, _Log] = {}

    async def acquire(self, api: str) -> None:
        """Wait until one more call of ``api`` is within its limits, and book it."""
        lim = self.limits
        log_ = self._apis.setdefault(api, _Log())
        while True:
            now = self.clock()
            wait = log_.wait(lim.per_api, lim.time_scale, lim.margin, now)
            if wait <= 0:
                log_.times.append(now)
                return
            await asyncio.sleep(wait)

    @asynccontextmanager
    async def member(self, member: str) -> AsyncIterator[None]:
        """Hold the member's turn: wait until one more message to them is within their limits; the send
        is logged when the block ends."""
        lim = self.limits
        lock, log_ = self._member(member)
        async with lock:
            while (wait := log_.wait(lim.per_member, lim.time_scale, 0.0, self.clock())) > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                log_.times.append(self.clock())

    def _member(self, member: str) -> tuple[asyncio.Lock, _Log]:
        found = self._members.get(member)
        if found is None:
            if len(self._members) > 20_000:  # forget members idle for longer than the longest window
                now = self.clock()
                longest = max(w.seconds for w in self.limits.per_member) * self.limits.time_scale
                for k in [
                    k
                    for k, (lock, log_) in self._members.items()
                    if not lock.locked() and (not log_.times or log_.times[-1] < now - longest)
                ]:
                    del self._members[k]
            found = self._members[member] = (asyncio.Lock(), _Log())
        return found


# ---- sending -------------------------------------------------------------------------------------------


def _intro(settings: Settings) -> str:
    base = settings.templates_dir or templates_dir()
    path = Path(base) / settings.locale / "channels" / "numbered_options.txt"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return "请回复数字选择：" if settings.locale == "zh" else "Reply with a number:"


def button_key(button: Button) -> str:
    return encode_button(button)


def _card_fits(buttons: Sequence[Button]) -> bool:
    keys = [button_key(b) for b in buttons]
    return (
        0 < len(buttons) <= MAX_CARD_BUTTONS
        and all(_nbytes(k) <= MAX_BUTTON_KEY_BYTES for k in keys)
        and len(set(keys)) == len(keys)
    )


def _task_id() -> str:
    return f"cb{time.time_ns() // 1_000_000}_{secrets.token_hex(8)}"


def _shorten(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


@dataclass
class WeComChannel:
    """Sends through one self-built app; ``send`` maps WeCom's errcodes onto the channel errors."""

    corp_id: str
    agent_id: int
    secret: str = field(repr=False)
    base_url: str = "https://qyapi.weixin.qq.com"
    intro: str = "请回复数字选择："
    markdown: bool = True  # False: text messages only (shown in the WeChat plug-in too)
    rate_limits: RateLimits | None = None
    timeout: float = 10.0
    clock: Callable[[], float] = time.monotonic
    name: str = NAME
    limits: ChannelLimits = LIMITS
    choices: NumberedChoices = field(default_factory=NumberedChoices)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.limiter = WeComRateLimiter(self.rate_limits, clock=self.clock)
        self._session: aiohttp.ClientSession | None = None
        # Renewed before the end: 5 minutes, or a tenth of a short lifetime.
        self._token = CachedToken(self._fetch_token, margin=300.0, margin_share=0.1, clock=self.clock)
        # Contents whose last send ended without knowing whether WeCom delivered it (timeout, 5xx): the
        # retry asks WeCom's duplicate check to drop it if the first one did arrive.
        self._uncertain: dict[str, float] = {}

    # ---- plumbing ----

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, *, params: dict[str, str], json_body: Any = None, data: Any = None
    ) -> dict[str, Any]:
        """One API call; network trouble and non-JSON answers are transient. Never logs the URL (token)."""
        try:
            async with self._http().request(
                method, f"{self.base_url}{path}", params=params, json=json_body, data=data
            ) as resp:
                if resp.status >= 500 or resp.status == 429:
                    raise TransientChannelError(f"WeCom {path}: HTTP {resp.status}")
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Not chained: aiohttp's errors may carry the URL, and with it the access token.
            raise TransientChannelError(f"WeCom {path}: {type(exc).__name__}") from None
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise TransientChannelError(f"WeCom {path}: not JSON") from exc
        if not isinstance(answer, dict):
            raise TransientChannelError(f"WeCom {path}: unexpected answer")
        return answer

    async def access_token(self, *, stale: str = "") -> str:
        """The cached token; a fresh one when it is about to expire or when ``stale`` (the token WeCom just
        refused) is still the cached one. Concurrent callers share one ``gettoken``."""
        if stale:
            self._token.invalidate(stale)
        return await self._token.get()

    async def _fetch_token(self) -> tuple[str, float]:
        await self.limiter.acquire("gettoken")
        answer = await self._call(
            "GET", "/cgi-bin/gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
        )
        code = int(answer.get("errcode", 0) or 0)
        if code in BUSY:
            raise TransientChannelError(f"WeCom gettoken: errcode {code}", retry_after=1.0)
        if code or not answer.get("access_token"):
            raise ChannelAuthError(f"WeCom gettoken refused: errcode {code} {answer.get('errmsg', '')}")
        return str(answer["access_token"]), float(answer.get("expires_in", 7200) or 7200)

    async def _api(
        self,
        path: str,
        *,
        member: str | None,
        json_body: Any = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Call an API with the token, refreshing it once on WeCom's token codes."""
        token = await self.access_token()
        for attempt in (1, 2):
            async with self.limiter.member(member) if member is not None else contextlib.nullcontext():
                await self.limiter.acquire(path)
                answer = await self._call(
                    "POST",
                    path,
                    params={"access_token": token, **(params or {})},
                    json_body=json_body,
                    data=form() if form else None,
                )
            code = int(answer.get("errcode", 0) or 0)
            if code in TOKEN_EXPIRED and attempt == 1:
                log.info("wecom: access token refused (errcode %s), renewing it", code)
                token = await self.access_token(stale=token)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _check(answer: dict[str, Any], address: str) -> None:
        code = int(answer.get("errcode", 0) or 0)
        msg = f"WeCom: errcode {code} {str(answer.get('errmsg', ''))[:120]}"
        invalid = [u for u in str(answer.get("invaliduser", "") or "").split("|") if u]
        if code == 0:
            if address in invalid:  # accepted for nobody: the user is outside the app's visible range
                raise PermanentChannelError(f"WeCom: {address!r} cannot receive (invaliduser)")
            return
        if code in BUSY:
            raise TransientChannelError(msg, retry_after=10.0 if code == 45009 else 1.0)
        if code in AUTH or code in TOKEN_EXPIRED:
            raise ChannelAuthError(msg)
        if code in ADDRESS or address in invalid:
            raise PermanentChannelError(msg)
        if code in CONTENT:
            raise ContentRejectedError(msg)
        if code >= 50000 or code < 0:
            raise TransientChannelError(msg)
        raise ContentRejectedError(msg)

    # ---- sending ----

    def _envelope(self, address: str, msgtype: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"touser": address, "msgtype": msgtype, "agentid": self.agent_id, msgtype: body}

    async def _send_one(self, address: str, payload: dict[str, Any]) -> str:
        key = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        now = self.clock()
        for k in [k for k, t in self._uncertain.items() if t < now - 600]:
            del self._uncertain[k]
        if key in self._uncertain and payload["msgtype"] != "template_card":
            payload = {**payload, "enable_duplicate_check": 1, "duplicate_check_interval": 600}
        try:
            answer = await self._api("/cgi-bin/message/send", member=address, json_body=payload)
        except TransientChannelError:
            self._uncertain[key] = now
            raise
        self._uncertain.pop(key, None)
        self._check(answer, address)
        return str(answer.get("msgid", ""))

    def _text_payloads(self, address: str, text: str) -> list[dict[str, Any]]:
        if self.markdown and has_markup(text):
            return [
                self._envelope(address, "markdown", {"content": part})
                for part in split_rendered(text, MAX_MARKDOWN_BYTES, markdown=True)
            ]
        return [
            self._envelope(address, "text", {"content": part})
            for part in split_rendered(text, MAX_TEXT_BYTES, markdown=False)
        ]

    def _card(self, address: str, title: str, subtitle: str, buttons: Sequence[Button]) -> dict[str, Any]:
        card: dict[str, Any] = {
            "card_type": "button_interaction",
            "main_title": {"title": title},
            "task_id": _task_id(),
            "button_list": [{"text": b.label, "style": 1, "key": button_key(b)} for b in buttons],
        }
        if subtitle:
            card["sub_title_text"] = subtitle
        return self._envelope(address, "template_card", card)

    def payloads(self, message: Outbound) -> list[dict[str, Any]]:
        """The message/send bodies for one Outbound, in order (without the file, which needs an upload)."""
        address = message.address
        flat = tuple(b for row in message.buttons for b in row)
        if flat and not _card_fits(flat):
            message = self.choices.offer(message, intro=self.intro)
            flat = ()
        if not flat:
            return self._text_payloads(address, message.text) if message.text.strip() else []
        first, _, rest = plain_text(message.text).strip().partition("\n")
        first, rest = first.strip() or _shorten(self.intro, CARD_TITLE_CHARS), rest.strip()  # a card needs a title
        if len(first) <= CARD_TITLE_CHARS and len(rest) <= CARD_SUBTITLE_CHARS:
            return [self._card(address, first, rest, flat)]
        # Too long for a card: the text in full, then the card with its buttons under the first line.
        return [
            *self._text_payloads(address, message.text),
            self._card(address, _shorten(first, CARD_TITLE_CHARS), "", flat),
        ]

    async def send(self, message: Outbound) -> Delivery:
        if not message.address:
            raise PermanentChannelError("WeCom: no userid to send to")
        msgid = ""
        for payload in self.payloads(message):
            msgid = await self._send_one(message.address, payload)
        if message.document is not None:
            name, content = message.document
            media_id = await self.upload(name, content)
            msgid = await self._send_one(
                message.address, self._envelope(message.address, "file", {"media_id": media_id})
            )
        if not msgid:
            raise ContentRejectedError("WeCom: nothing to send: empty message")
        return Delivery(self.name, msgid)

    async def upload(self, name: str, content: bytes) -> str:
        """A temporary file (media/upload, 3 days) for a file message; its media_id."""

        safe_name = re.sub(r'["\r\n\\]', "_", name) or "file"

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData(quote_fields=False)  # the name in UTF-8, as browsers send it
            data.add_field("media", content, filename=safe_name, content_type="application/octet-stream")
            return data

        answer = await self._api("/cgi-bin/media/upload", member=None, form=form, params={"type": "file"})
        self._check(answer, "")
        media_id = str(answer.get("media_id", ""))
        if not media_id:
            raise TransientChannelError("WeCom media/upload: no media_id")
        return media_id


def channel_from(settings: Settings, **overrides: Any) -> WeComChannel:
    try:
        agent_id = int(settings.wecom_agent_id)
    except ValueError as exc:
        raise ValueError("COORDBOT_WECOM_AGENT_ID is the app's AgentId, a number") from exc
    values: dict[str, Any] = {
        "corp_id": settings.wecom_corp_id,
        "agent_id": agent_id,
        "secret": settings.wecom_secret.get(),
        "base_url": settings.wecom_base_url,
        "intro": _intro(settings),
    }
    values.update(overrides)
    return WeComChannel(**values)


@asynccontextmanager
async def open_sender(settings: Settings) -> AsyncIterator[WeComChannel]:
    """A send-only WeCom channel, for one-shot commands such as ``reminders dispatch``."""
    channel = channel_from(settings)
    try:
        yield channel
    finally:
        await channel.close()


# ---- receiving -----------------------------------------------------------------------------------------

_ENCRYPT = re.compile(rb"<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=\s]*)\]\]>|([A-Za-z0-9+/=\s]*))\s*</Encrypt>")


def _field(root: ET.Element, name: str) -> str:
    el = root.find(name)
    return (el.text or "").strip() if el is not None else ""


def inbound_from_xml(xml: bytes, choices: NumberedChoices | None = None) -> Inbound | None:
    """The Inbound for a decrypted callback; ``None`` for events coordbot ignores. Raises ValueError when
    the XML is not a message WeCom would send."""
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise ValueError("DTDs are not part of WeCom's messages")
    root = ET.fromstring(xml)
    sender = _field(root, "FromUserName")
    kind = _field(root, "MsgType")
    if not sender or not kind:
        raise ValueError("no FromUserName or MsgType")
    if kind == "text":
        msg_id = _field(root, "MsgId")
        if not msg_id:
            raise ValueError("a text message without MsgId")
        text = _field(root, "Content")
        base = Inbound(
            channel=NAME, external_id=msg_id, chat_id=sender, sender_id=sender, text=text, message_ref=msg_id
        )
        code = invite_code_in(text)
        if code:
            return _with(base, kind="command", command="start", args=code, start_code=code)
        if (said := command_in(text)) is not None:
            return _with(base, kind="command", command=said[0], args=said[1])
        pressed = choices.press(sender, text) if choices is not None else None
        if pressed is not None:
            return _with(base, kind="callback", callback_action=pressed.action, callback_ref=pressed.ref)
        return base
    if kind == "event":
        event = _field(root, "Event")
        if event == "template_card_event":
            key = _field(root, "EventKey")
            action, ref = decode_button(key)
            task_id = _field(root, "TaskId")
            # Events have no MsgId: WeCom's retries of one press repeat these four (inbound ids fit 64 chars).
            press = "\n".join((sender, _field(root, "CreateTime"), task_id, key)).encode()
            return Inbound(
                channel=NAME,
                external_id="card:" + hashlib.sha1(press).hexdigest(),
                chat_id=sender,
                sender_id=sender,
                kind="callback",
                callback_action=action,
                callback_ref=ref,
                message_ref=task_id,
            )
        return None  # enter_agent, subscribe, location, ...: nothing to answer
    return None  # images, voice, files: not read (yet)


def _with(base: Inbound, **changes: Any) -> Inbound:
    return replace(base, **changes)


class WeComFrontend:
    """The callback endpoint: verifies, decrypts, acknowledges at once and handles each message in a task."""

    def __init__(
        self,
        settings: Settings,
        handle: InboundHandler,
        *,
        channel: WeComChannel | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.handle = handle
        self._channel = channel or channel_from(settings)
        # Without the callback's Token and EncodingAESKey the app can send but not receive.
        self.crypto: WeComCrypto | None = None
        if settings.wecom_token and settings.wecom_aes_key:
            self.crypto = WeComCrypto(settings.wecom_token.get(), settings.wecom_aes_key.get(), settings.wecom_corp_id)
        self.wall_clock = wall_clock
        self._inbound = DurableInbound(
            NAME,
            settings,
            handle,
            lambda: self._channel,
            account=f"{settings.wecom_corp_id}-{settings.wecom_agent_id}",
            alert_as_text=True,  # a pressed card has no toast: the alert is the answer when there is no text
        )

    @property
    def channel(self) -> WeComChannel:
        return self._channel

    async def start(self) -> None:
        if self.crypto is None:
            log.warning(
                "wecom: sending only; set COORDBOT_WECOM_TOKEN and COORDBOT_WECOM_AES_KEY to receive replies at %s",
                CALLBACK_PATH,
            )
        else:
            log.info("wecom: callback at %s for agent %s", CALLBACK_PATH, self._channel.agent_id)

    async def stop(self) -> None:
        await self._inbound.close()
        await self._channel.close()

    async def drain(self) -> None:
        """Wait until every message handed over so far was handled (tests)."""
        await self._inbound.drain()

    def webhook_routes(self) -> list[web.RouteDef]:
        if self.crypto is None:
            return []
        return [web.get(CALLBACK_PATH, self.verify_url), web.post(CALLBACK_PATH, self.callback)]

    def _authentic(self, request: web.Request, encrypted: str) -> bool:
        if self.crypto is None:
            return False
        q = request.query
        signature, timestamp, nonce = q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", "")
        if not (signature and timestamp.isdigit() and nonce and encrypted):
            log.warning("wecom callback refused: parameters missing")
            return False
        if not self.crypto.verify(signature, timestamp, nonce, encrypted):
            log.warning("wecom callback refused: bad signature")
            return False
        if abs(self.wall_clock() - int(timestamp)) > TIMESTAMP_WINDOW:
            log.warning("wecom callback refused: timestamp outside ±%ds (a replay?)", TIMESTAMP_WINDOW)
            return False
        return True

    async def verify_url(self, request: web.Request) -> web.Response:
        """The admin console's check when the URL is saved: answer the decrypted echostr, as it is."""
        echostr = request.query.get("echostr", "")
        if not self._authentic(request, echostr):
            return web.Response(status=403, text="forbidden")
        assert self.crypto is not None  # _authentic says so
        try:
            plain = self.crypto.decrypt(echostr)
        except CallbackCryptoError as exc:
            log.warning("wecom URL verification refused: %s", exc)
            return web.Response(status=403, text="forbidden")
        return web.Response(body=plain, content_type="text/plain")

    async def callback(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > CALLBACK_MAX_BYTES:
            return web.Response(status=413, text="too large")
        body = await request.content.read(CALLBACK_MAX_BYTES + 1)
        if len(body) > CALLBACK_MAX_BYTES:
            return web.Response(status=413, text="too large")
        # The ciphertext is taken out without an XML parser: nothing unauthenticated is parsed.
        m = _ENCRYPT.search(body)
        encrypted = re.sub(r"\s", "", (m.group(1) or m.group(2) or b"").decode()) if m else ""
        if not self._authentic(request, encrypted):
            return web.Response(status=403, text="forbidden")
        assert self.crypto is not None
        try:
            plain = self.crypto.decrypt(encrypted)
        except CallbackCryptoError as exc:
            log.warning("wecom callback refused: %s", exc)
            return web.Response(status=403, text="forbidden")
        try:
            inbound = inbound_from_xml(plain, self._channel.choices)
        except (ET.ParseError, ValueError) as exc:
            # Authentic but unreadable: acknowledged, or WeCom sends it again and again.
            log.warning("wecom callback: authentic message not understood (%s); acknowledged", type(exc).__name__)
            return web.Response(text="success")
        # Spooled before "success": WeCom sends a callback again (three times) when it gets no answer.
        if inbound is not None and not await self._inbound.accept(inbound):
            return web.Response(status=503, text="try again")
        return web.Response(text="success")


def frontend(settings: Settings, handle: InboundHandler) -> WeComFrontend:
    """The registry's entry point: the two-way WeCom adapter."""
    return WeComFrontend(settings, handle)
