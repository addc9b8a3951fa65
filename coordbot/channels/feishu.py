"""The Feishu (飞书) app-bot channel: the Open Platform's REST API out, event subscription by HTTP in.

Sending: a ``tenant_access_token`` (cached, refreshed before it expires and once more when the platform
calls it invalid) authorises ``POST /open-apis/im/v1/messages``. Outbound's HTML subset becomes a ``post``
(rich text: bold, italic, underline, strikethrough, links, code blocks), plain text a ``text`` message, and a
message with buttons an ``interactive`` card (card JSON 1.0: an ``action`` module per row, each button's
``value`` = ``{"action": encode_button(b)}``); files are uploaded to ``/open-apis/im/v1/files`` and sent as
``file`` messages. Every request carries a ``uuid`` kept for retries of the same message, so a retry after a
lost answer is de-duplicated by Feishu (it sends at most one message per uuid within an hour). The
documented limits (1000/min and 50/s per app, 5/s to one user or chat) are kept here with sliding windows.

Receiving: ``POST /feishu/events`` takes events (``im.message.receive_v1``) and the card callback
(``card.action.trigger``) on the same URL. The ``X-Lark-Signature`` (sha256 of timestamp + nonce +
encrypt key + raw body) is checked in constant time with a replay window before anything is read; bodies
are AES-256-CBC (key sha256(encrypt key), IV the first 16 bytes); the verification token is checked too.
The event is acknowledged at once and handled in a task (Feishu wants an answer within 3 s); a card press
waits for the answer up to a little under 3 s so its toast can carry the reply's notice.
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
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from coordbot.channels._tokens import CachedToken
from coordbot.channels._windows import SlidingWindows
from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ChannelError,
    ChannelLimits,
    ContentRejectedError,
    Delivery,
    Inbound,
    InboundHandler,
    InboundTasks,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
    answer_inbound,
    command_in,
    decode_button,
    encode_button,
    invite_code_in,
)
from coordbot.channels.spool import DurableInbound
from coordbot.core.config import Settings

log = logging.getLogger("coordbot.channels.feishu")

CHANNEL = "feishu"
EVENTS_PATH = "/feishu/events"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
MESSAGES_PATH = "/open-apis/im/v1/messages"
FILES_PATH = "/open-apis/im/v1/files"

# Request-body limits of im/v1/messages: text 150 KB, post and card 30 KB. Parts are cut with room to spare
# for the other fields of the body.
TEXT_BODY_MAX = 150 * 1024
RICH_BODY_MAX = 30 * 1024
BODY_MARGIN = 1024
MAX_TEXT = 6000  # visible characters per part (the core shapes messages with it)
MAX_FILE = 30 * 1024 * 1024
MAX_BUTTON_LABEL = 100  # characters of a card button's text
UUID_MAX = 50
LIMITS = ChannelLimits(max_text=MAX_TEXT, buttons=True, files=True, max_button_data=1000)

TOKEN_MARGIN = 300.0  # seconds before expiry a token is renewed (the platform issues a new one < 30 min left)
REPLAY_WINDOW = 300.0  # seconds a signed request's timestamp may differ from our clock
CALLBACK_WAIT = 2.5  # a card press is answered within Feishu's 3 s; the toast is left out when it takes longer
EVENT_MAX_BYTES = 1 << 20
SEEN_EVENTS = 4096

# Codes of the Open Platform (server-docs/api-call-guide/generic-error-code and im-v1/message/create).
TOKEN_INVALID = frozenset({99991661, 99991663, 99991665, 99991668, 99991671})  # refresh and retry once
AUTH_FAILED = frozenset(
    {10003, 10012, 10013, 10014, 10015, 99991401, 99991543, 99991662, 99991672, 99991673, 230006, 230027, 234007}
)
RATE_LIMITED = frozenset({99991400, 11232, 230020, 230049})
ADDRESS_PROBLEMS = frozenset({230002, 230013, 230018, 230029, 230034, 230035, 230038, 230053, 232009, 10002, 10030})
CONTENT_PROBLEMS = frozenset(
    {230001, 230017, 230022, 230025, 230028, 230054, 230055, 230099, 234001, 234006, 234010, 9499, 10001}
)

_RECEIVE_TYPES = (("oc_", "chat_id"), ("ou_", "open_id"), ("on_", "union_id"))


def receive_id_type(address: str) -> str:
    """The ``receive_id_type`` an address is sent with: group chats ``oc_``, people by ``ou_`` open_id."""
    for prefix, kind in _RECEIVE_TYPES:
        if address.startswith(prefix):
            return kind
    return "email" if "@" in address else "user_id"


# ---- crypto ----------------------------------------------------------------------------------------


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """``X-Lark-Signature``: plain sha256 (not an HMAC) of timestamp + nonce + encrypt key + the raw body."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def decrypt(encrypted: str, encrypt_key: str) -> str:
    """An ``{"encrypt": ...}`` body's plaintext: AES-256-CBC, key sha256(encrypt key), IV the first 16 bytes."""
    data = base64.b64decode(encrypted, validate=True)
    if len(data) < 32 or len(data) % 16:
        raise ValueError("ciphertext is not whole AES blocks after the IV")
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
    padded = decryptor.update(data[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")


# ---- rendering -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"(<[^>]*>|\n)")
_TAG = re.compile(r"<(/?)([a-zA-Z]+)([^>]*)>")
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_STYLES = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline"}
_STYLES |= {"s": "lineThrough", "strike": "lineThrough", "del": "lineThrough"}


@dataclass(frozen=True, slots=True)
class Run:
    text: str
    styles: tuple[str, ...] = ()
    href: str = ""
    code: bool = False  # inside <code> (inline) or <pre> (a block)
    block: bool = False


def parse_html(text: str) -> list[list[Run]]:
    """Telegram's HTML subset as lines of styled runs (a ``<pre>`` block is one run on its own line)."""
    lines: list[list[Run]] = [[]]
    styles: list[str] = []
    href: list[str] = []
    code = pre = 0
    pre_buf: list[str] = []
    for tok in _TOKEN.split(text):
        if not tok:
            continue
        m = _TAG.fullmatch(tok)
        if m:
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name == "pre":
                if closing and pre:
                    pre -= 1
                    if lines[-1]:
                        lines.append([])
                    lines[-1].append(Run("".join(pre_buf), code=True, block=True))
                    lines.append([])
                    pre_buf = []
                elif not closing:
                    pre += 1
            elif pre:
                continue  # <code class=...> inside <pre>: the block is code already
            elif name in _STYLES:
                if closing:
                    with contextlib.suppress(ValueError):
                        styles.remove(_STYLES[name])
                else:
                    styles.append(_STYLES[name])
            elif name == "a":
                if closing:
                    if href:
                        href.pop()
                else:
                    h = _HREF.search(m.group(3))
                    href.append(html.unescape((h.group(1) or h.group(2) or "") if h else ""))
            elif name == "code":
                code += -1 if closing else 1
            continue
        if pre:
            pre_buf.append(html.unescape(tok))
        elif tok == "\n":
            lines.append([])
        else:
            lines[-1].append(
                Run(html.unescape(tok), tuple(dict.fromkeys(styles)), href[-1] if href else "", code=code > 0)
            )
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    return lines


def plain_text(lines: list[list[Run]]) -> str:
    return "\n".join("".join(r.text for r in line) for line in lines)


def _is_plain(lines: list[list[Run]]) -> bool:
    return all(not (r.styles or r.href or r.code) for line in lines for r in line)


def _post_element(run: Run) -> dict[str, Any]:
    if run.block:
        return {"tag": "code_block", "language": "PLAIN_TEXT", "text": run.text}
    element: dict[str, Any] = (
        {"tag": "a", "href": run.href, "text": run.text}
        if run.href
        else {
            "tag": "text",
            "text": run.text,
        }
    )
    if run.styles:
        element["style"] = list(run.styles)
    return element


def post_content(lines: list[list[Run]]) -> dict[str, Any]:
    """A ``post`` message's content: one paragraph per line (an empty line is an empty paragraph)."""
    return {"zh_cn": {"title": "", "content": [[_post_element(r) for r in line] for line in lines]}}


_MD_SPECIAL = re.compile(r"([\\*~_`\[\]])")


def _md_escape(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def lark_md(lines: list[list[Run]]) -> str:
    """The card's ``lark_md`` text: **bold**, *italic*, ~~strike~~, [link](url), `code`; no underline there."""
    out: list[str] = []
    for line in lines:
        parts: list[str] = []
        for r in line:
            if r.block:
                parts.append("```\n" + r.text + "\n```")
                continue
            t = f"`{r.text}`" if r.code else _md_escape(r.text)
            if "lineThrough" in r.styles:
                t = f"~~{t}~~"
            if "italic" in r.styles:
                t = f"*{t}*"
            if "bold" in r.styles:
                t = f"**{t}**"
            if r.href:
                t = f"[{t}]({r.href})"
            parts.append(t)
        out.append("".join(parts))
    return "\n".join(out)


def card_content(lines: list[list[Run]], buttons: tuple[tuple[Button, ...], ...]) -> dict[str, Any]:
    """An interactive card, JSON 1.0 (2.0 dropped the ``action`` module): the text, then a row per row."""
    elements: list[dict[str, Any]] = []
    if any(lines):
        elements.append({"tag": "div", "text": {"tag": "lark_md", "content": lark_md(lines)}})
    for row in buttons:
        elements.append(
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": b.label[:MAX_BUTTON_LABEL]},
                        "type": "primary" if i == 0 and len(buttons) == 1 else "default",
                        "value": {"action": encode_button(b)},
                    }
                    for i, b in enumerate(row)
                ],
            }
        )
    return {"config": {"wide_screen_mode": True}, "elements": elements}


def _body_bytes(content: dict[str, Any]) -> int:
    """Bytes the content takes inside the request body (a JSON string in JSON: escaped twice)."""
    return len(json.dumps(json.dumps(content, ensure_ascii=False), ensure_ascii=False).encode("utf-8"))


def _line_len(line: list[Run]) -> int:
    return sum(len(r.text) for r in line)


def _cut_line(line: list[Run], size: int) -> tuple[list[Run], list[Run]]:
    """The first ``size`` visible characters of a line, and the rest (a run is cut, never a character)."""
    head: list[Run] = []
    for i, r in enumerate(line):
        if size <= 0:
            return head, line[i:]
        if len(r.text) <= size:
            head.append(r)
            size -= len(r.text)
            continue
        head.append(Run(r.text[:size], r.styles, r.href, r.code, r.block))
        return head, [Run(r.text[size:], r.styles, r.href, r.code, r.block), *line[i + 1 :]]
    return head, []


def split_lines(
    lines: list[list[Run]], render: Callable[[list[list[Run]]], dict[str, Any]], max_bytes: int, max_chars: int
) -> list[list[list[Run]]]:
    """Cut lines into parts whose rendered content fits ``max_bytes`` of body and ``max_chars`` of text.

    Parts end at line ends where they can; a line too long for a part is cut between characters. Each part
    is rendered on its own, so no markup is ever broken.
    """
    parts: list[list[list[Run]]] = []
    current: list[list[Run]] = []
    chars = 0
    pending = list(lines)
    while pending:
        line = pending.pop(0)
        candidate = [*current, line]
        if chars + _line_len(line) <= max_chars and _body_bytes(render(candidate)) <= max_bytes:
            current, chars = candidate, chars + _line_len(line)
            continue
        if current and _line_len(line) <= max_chars and _body_bytes(render([line])) <= max_bytes:
            parts.append(current)
            current, chars = [line], _line_len(line)
            continue
        # The line itself is too long: fill what room is left with its beginning, by halving.
        room = max_chars - chars
        head: list[Run] = []
        rest = line
        lo, hi = 0, min(room, _line_len(line))
        while lo < hi:
            mid = (lo + hi + 1) // 2
            h, _ = _cut_line(line, mid)
            if _body_bytes(render([*current, h])) <= max_bytes:
                lo = mid
            else:
                hi = mid - 1
        if lo > 0:
            head, rest = _cut_line(line, lo)
            current = [*current, head]
        if current:
            parts.append(current)
        elif not head:
            raise ContentRejectedError("Feishu: one character does not fit a message")
        current, chars = [], 0
        if rest:
            pending.insert(0, rest)
    if current:
        parts.append(current)
    return parts


@dataclass(frozen=True, slots=True)
class Part:
    msg_type: str
    content: dict[str, Any]


def render_parts(message: Outbound) -> list[Part]:
    """The messages one Outbound becomes: text or post parts, the last one a card when there are buttons."""
    lines = parse_html(message.text) if message.text else []
    if not lines or not any(lines):
        lines = []
    parts: list[Part] = []
    if message.buttons:

        def card(ls: list[list[Run]]) -> dict[str, Any]:
            return card_content(ls, message.buttons)

        chunks = split_lines(lines, card, RICH_BODY_MAX - BODY_MARGIN, MAX_TEXT) if lines else [[]]
        *before, last = chunks
        parts.extend(Part("post", post_content(c)) for c in _repack(before))
        parts.append(Part("interactive", card(last)))
        return parts
    if not lines:
        return []
    if _is_plain(lines):

        def text(ls: list[list[Run]]) -> dict[str, Any]:
            return {"text": plain_text(ls)}

        return [Part("text", text(c)) for c in split_lines(lines, text, TEXT_BODY_MAX - BODY_MARGIN, MAX_TEXT)]
    return [
        Part("post", post_content(c)) for c in split_lines(lines, post_content, RICH_BODY_MAX - BODY_MARGIN, MAX_TEXT)
    ]


def _repack(chunks: list[list[list[Run]]]) -> list[list[list[Run]]]:
    """Chunks cut for a card, re-cut to the post limits (a post holds about what a card holds)."""
    lines = [line for chunk in chunks for line in chunk]
    return split_lines(lines, post_content, RICH_BODY_MAX - BODY_MARGIN, MAX_TEXT) if lines else []


# ---- rate limits -----------------------------------------------------------------------------------


class RateLimiter:
    """Feishu's per-app limits (several windows, e.g. 50/s and 1000/min) and 5/s per receiver.

    A receiver's sends are serialised; its place and the app's are taken when the request goes out and held
    until its answer is in (see :class:`~coordbot.channels._windows.SlidingWindows`).
    """

    def __init__(
        self,
        app: tuple[tuple[int, float], ...] = ((50, 1.0), (1000, 60.0)),
        per_receiver: tuple[int, float] = (5, 1.0),
        margin: float = 0.01,
        max_receivers: int = 10_000,
    ) -> None:
        self._app = SlidingWindows([(n, w + margin) for n, w in app])
        self._per_receiver = [(per_receiver[0], per_receiver[1] + margin)]
        self._receivers: OrderedDict[str, tuple[asyncio.Lock, SlidingWindows]] = OrderedDict()
        self._max_receivers = max_receivers

    def _receiver(self, key: str) -> tuple[asyncio.Lock, SlidingWindows]:
        slot = self._receivers.get(key)
        if slot is None:
            if len(self._receivers) >= self._max_receivers:
                for old, (lock, _) in list(self._receivers.items()):
                    if not lock.locked():
                        del self._receivers[old]
                        break
            slot = (asyncio.Lock(), SlidingWindows(self._per_receiver))
            self._receivers[key] = slot
        return slot

    @contextlib.asynccontextmanager
    async def slot(self, receiver: str | None) -> AsyncIterator[None]:
        if receiver is None:
            async with self._app.slot():
                yield
            return
        lock, window = self._receiver(receiver)
        async with lock, window.slot(), self._app.slot():
            yield


# ---- the sender ------------------------------------------------------------------------------------


def tenant_token(session: aiohttp.ClientSession, base_url: str, app_id: str, app_secret: str) -> CachedToken:
    """The tenant_access_token: cached until ``TOKEN_MARGIN`` before it expires, fetched by one caller at a time."""
    url = base_url.rstrip("/") + TOKEN_PATH

    async def fetch() -> tuple[str, float]:
        try:
            async with session.post(url, json={"app_id": app_id, "app_secret": app_secret}) as resp:
                data = await _json(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientChannelError(f"Feishu: token request failed: {type(exc).__name__}") from exc
        code = data.get("code")
        if code != 0 or not data.get("tenant_access_token"):
            if code in RATE_LIMITED or code is None:
                raise TransientChannelError(f"Feishu: token request refused ({code})")
            raise ChannelAuthError(f"Feishu: app credentials refused: {code} {data.get('msg', '')}")
        return str(data["tenant_access_token"]), float(data.get("expire", 7200))

    return CachedToken(fetch, margin=TOKEN_MARGIN)


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    if resp.status >= 500:
        raise TransientChannelError(f"Feishu: HTTP {resp.status}")
    try:
        data = await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError) as exc:
        if resp.status == 429:
            return {"code": 99991400, "msg": "request trigger frequency limit"}
        raise TransientChannelError(f"Feishu: HTTP {resp.status} without a JSON body") from exc
    if not isinstance(data, dict):
        raise TransientChannelError(f"Feishu: HTTP {resp.status}: unexpected answer")
    return data


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("x-ogw-ratelimit-reset")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_for(code: int, msg: str, *, retry_after: float | None = None) -> ChannelError:
    """The channel error a non-zero Open Platform code stands for."""
    text = f"Feishu: {code} {msg}".strip()
    if code in RATE_LIMITED:
        return TransientChannelError(text, retry_after=retry_after if retry_after is not None else 1.0)
    if code in TOKEN_INVALID or code in AUTH_FAILED:
        return ChannelAuthError(text)
    if code in ADDRESS_PROBLEMS:
        return PermanentChannelError(text)
    if code in CONTENT_PROBLEMS:
        return ContentRejectedError(text)
    return TransientChannelError(text)  # an unknown code: let the engine try again a bounded number of times


@dataclass
class _Pending:
    uuid: str
    at: float


class FeishuChannel:
    """Sends through the Open Platform with one HTTP session, one token and one rate limiter."""

    name = CHANNEL
    limits = LIMITS

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        app_id: str,
        app_secret: str,
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.tokens = tenant_token(session, base_url, app_id, app_secret)
        self.limiter = limiter or RateLimiter()
        self.files_limiter = RateLimiter(per_receiver=(1 << 30, 1.0))  # im/v1/files has its own app limit
        # uuids of messages whose send failed: a retry of the same message reuses its uuid (Feishu then sends
        # it at most once), a message sent successfully before gets a new one (identical text is not dropped).
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self.sent_to: OrderedDict[str, str] = OrderedDict()  # message_id -> address, for card presses

    async def send(self, message: Outbound) -> Delivery:
        parts = render_parts(message)
        if not parts and message.document is None:
            raise ContentRejectedError("Feishu: nothing to send: empty message")
        key = self._key(message)
        base = self._uuid_for(key)
        last = ""
        for i, part in enumerate(parts):
            last = await self._create(message.address, part.msg_type, part.content, f"{base}-{i}")
        if message.document is not None:
            name, data = message.document
            file_key = await self._upload(name, data)
            last = await self._create(message.address, "file", {"file_key": file_key}, f"{base}-f")
        self._pending.pop(key, None)
        self.sent_to[last] = message.address
        while len(self.sent_to) > 10_000:
            self.sent_to.popitem(last=False)
        return Delivery(self.name, last)

    def _key(self, message: Outbound) -> str:
        doc = hashlib.sha256(message.document[1]).hexdigest() if message.document else ""
        raw = json.dumps([message.address, message.text, repr(message.buttons), doc], ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _uuid_for(self, key: str) -> str:
        now = time.monotonic()
        while self._pending and (len(self._pending) > 10_000 or next(iter(self._pending.values())).at < now - 3600):
            self._pending.popitem(last=False)
        pending = self._pending.get(key)
        if pending is None:
            pending = _Pending(key[:20] + secrets.token_hex(6), now)
            self._pending[key] = pending
        return pending.uuid  # 32 characters; with "-<part>" well under Feishu's 50

    async def _create(self, address: str, msg_type: str, content: dict[str, Any], uuid: str) -> str:
        body = {
            "receive_id": address,
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),
            "uuid": uuid[:UUID_MAX],
        }
        url = f"{self.base_url}{MESSAGES_PATH}?receive_id_type={receive_id_type(address)}"
        data = await self._call(url, address, self.limiter, json_body=body)
        message_id = (data.get("data") or {}).get("message_id")
        if not message_id:
            raise TransientChannelError("Feishu: the answer carries no message_id")
        return str(message_id)

    async def _upload(self, name: str, data: bytes) -> str:
        if not data:
            raise ContentRejectedError("Feishu: an empty file cannot be sent")
        if len(data) > MAX_FILE:
            raise ContentRejectedError("Feishu: the file is over 30 MB")

        def form() -> aiohttp.FormData:
            f = aiohttp.FormData()
            f.add_field("file_type", "stream")
            f.add_field("file_name", name)
            f.add_field("file", data, filename=name, content_type="application/octet-stream")
            return f

        answer = await self._call(f"{self.base_url}{FILES_PATH}", None, self.files_limiter, form=form)
        file_key = (answer.get("data") or {}).get("file_key")
        if not file_key:
            raise TransientChannelError("Feishu: the upload's answer carries no file_key")
        return str(file_key)

    async def _call(
        self,
        url: str,
        receiver: str | None,
        limiter: RateLimiter,
        *,
        json_body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any]:
        """One API call; a token the platform calls invalid is refreshed and the call made once more."""
        for attempt in (1, 2):
            token = await self.tokens.get()
            headers = {"Authorization": f"Bearer {token}"}
            payload: bytes | aiohttp.FormData | None = None
            if json_body is not None:
                # UTF-8, not aiohttp's ASCII escapes: the body limits count bytes, and \uXXXX doubles Chinese.
                payload = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
                headers["Content-Type"] = "application/json; charset=utf-8"
            elif form is not None:
                payload = form()
            try:
                async with limiter.slot(receiver):
                    request = self.session.post(url, headers=headers, data=payload)
                    async with request as resp:
                        retry_after = _retry_after(resp)
                        data = await _json(resp)
                        status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientChannelError(f"Feishu: request failed: {type(exc).__name__}") from exc
            code = data.get("code")
            if code == 0:
                return data
            if not isinstance(code, int):
                raise TransientChannelError(f"Feishu: HTTP {status} without a code")
            if code in TOKEN_INVALID and attempt == 1:
                self.tokens.invalidate(token)
                continue
            if status == 429 and code not in RATE_LIMITED:
                code = 99991400
            raise error_for(code, str(data.get("msg", "")), retry_after=retry_after)
        raise AssertionError("unreachable")  # pragma: no cover


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30, connect=10))


@asynccontextmanager
async def open_sender(settings: Settings) -> AsyncIterator[FeishuChannel]:
    """A send-only Feishu channel, for one-shot commands and the reminder engine."""
    async with _session() as session:
        yield FeishuChannel(session, settings.feishu_base_url, settings.feishu_app_id, settings.feishu_app_secret.get())


def frontend(settings: Settings, handle: InboundHandler) -> FeishuFrontend:
    """The registry's entry point: the two-way Feishu adapter."""
    return FeishuFrontend(settings, handle)


# ---- inbound ---------------------------------------------------------------------------------------

_MENTION = re.compile(r"@_user_\d+")


def _post_text(content: dict[str, Any]) -> str:
    body = content
    if "content" not in body:  # {"zh_cn": {...}} on some clients, flat {"title", "content"} on others
        body = next((v for v in content.values() if isinstance(v, dict) and "content" in v), {})
    lines = []
    for paragraph in body.get("content") or []:
        lines.append("".join(str(e.get("text", "")) for e in paragraph if isinstance(e, dict)))
    title = str(body.get("title") or "")
    return "\n".join([title, *lines] if title else lines)


def message_inbound(event_id: str, event: dict[str, Any]) -> Inbound | None:
    """An ``im.message.receive_v1`` event as an Inbound; ``None`` for what coordbot does not read."""
    sender = event.get("sender") or {}
    message = event.get("message") or {}
    if sender.get("sender_type", "user") != "user":
        return None  # our own or another app's message
    open_id = str((sender.get("sender_id") or {}).get("open_id") or "")
    if not open_id:
        return None
    content = json.loads(message.get("content") or "{}")
    kind = message.get("message_type")
    if kind == "text":
        text = str(content.get("text", ""))
    elif kind == "post":
        text = _post_text(content)
    else:
        return None
    for mention in message.get("mentions") or []:
        key = str(mention.get("key") or "")
        if key:
            text = text.replace(key, "")
    text = _MENTION.sub("", text).strip()
    is_group = message.get("chat_type") == "group"
    chat_id = str(message.get("chat_id") or "") if is_group else open_id
    values: dict[str, Any] = {}
    code = invite_code_in(text)
    said = command_in(text)
    if code:
        values = {"kind": "command", "command": "start", "args": code, "start_code": code}
    elif said is not None:
        values = {"kind": "command", "command": said[0], "args": said[1]}
    return Inbound(
        channel=CHANNEL,
        external_id=event_id or str(message.get("message_id") or ""),
        chat_id=chat_id,
        sender_id=open_id,
        text=text,
        reply_to_ref=str(message.get("parent_id") or ""),
        message_ref=str(message.get("message_id") or ""),
        is_group=is_group,
        **values,
    )


def callback_inbound(event_id: str, event: dict[str, Any], sent_to: dict[str, str]) -> Inbound | None:
    """A ``card.action.trigger`` press as a callback Inbound (the button's value decoded)."""
    operator = event.get("operator") or {}
    action = event.get("action") or {}
    context = event.get("context") or {}
    value = action.get("value")
    data = value.get("action") if isinstance(value, dict) else value
    open_id = str(operator.get("open_id") or "")
    if not isinstance(data, str) or not data or not open_id:
        return None
    act, ref = decode_button(data)
    message_id = str(context.get("open_message_id") or "")
    # The card went to a person (open_id) or a group (oc_): answer where it went.
    address = sent_to.get(message_id) or str(context.get("open_chat_id") or "") or open_id
    return Inbound(
        channel=CHANNEL,
        external_id=event_id,
        chat_id=address,
        sender_id=open_id,
        kind="callback",
        callback_action=act,
        callback_ref=ref,
        message_ref=message_id,
        # Known only for cards we sent (a p2p chat's open_chat_id is an oc_ too).
        is_group=message_id in sent_to and address.startswith("oc_"),
    )


class _Refused(Exception):
    """A request that fails verification: answered 401 and logged without its body."""


@dataclass
class _Seen:
    ids: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def add(self, event_id: str) -> bool:
        """False when the event was seen already (Feishu redelivers what it thinks was not acknowledged)."""
        if event_id in self.ids:
            return False
        self.ids[event_id] = None
        while len(self.ids) > SEEN_EVENTS:
            self.ids.popitem(last=False)
        return True


class FeishuFrontend:
    """Serves ``/feishu/events`` on coordbot's web app and answers through a FeishuChannel."""

    def __init__(self, settings: Settings, handle: InboundHandler, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.handle = handle
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._channel: FeishuChannel | None = None
        self._inbound = InboundTasks(CHANNEL)  # card presses: answered within Feishu's 3 s, not spooled
        self._messages = DurableInbound(CHANNEL, settings, handle, lambda: self.channel, account=settings.feishu_app_id)
        self._seen = _Seen()
        self.encrypt_key = settings.feishu_encrypt_key.get()
        self.verification_token = settings.feishu_verification_token.get()

    @property
    def channel(self) -> FeishuChannel:
        if self._channel is None:
            # Built on first use (inside the running loop): aiohttp sessions belong to one loop.
            self._session = _session()
            s = self.settings
            self._channel = FeishuChannel(self._session, s.feishu_base_url, s.feishu_app_id, s.feishu_app_secret.get())
        return self._channel

    async def start(self) -> None:
        _ = self.channel
        if not self.encrypt_key:
            log.warning("feishu: no encrypt key set: events arrive unsigned, checked by the verification token only")
        log.info("feishu: events at %s", EVENTS_PATH)

    async def stop(self) -> None:
        await self._messages.close()
        await self._inbound.drain(timeout=10)
        if self._session is not None:
            await self._session.close()
            self._session, self._channel = None, None

    async def drain(self) -> None:
        """Wait until every event received so far is handled and answered (tests, shutdown)."""
        await self._messages.drain()
        await self._inbound.drain(timeout=None)

    def webhook_routes(self) -> list[web.RouteDef]:
        return [web.post(EVENTS_PATH, self.events)]

    # ---- the endpoint ----

    async def events(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > EVENT_MAX_BYTES:
            return web.Response(status=413, text="too large")
        raw = await request.content.read(EVENT_MAX_BYTES + 1)
        if len(raw) > EVENT_MAX_BYTES:
            return web.Response(status=413, text="too large")
        try:
            signed = self._check_signature(request.headers, raw)
            payload = self._open(raw, signed)
        except _Refused as exc:
            log.warning("feishu: event refused from %s: %s", request.remote, exc)
            return web.Response(status=401, text="unauthorized")
        if payload is None:
            return web.json_response({"msg": "success"})  # authentic but unreadable: acknowledged, logged
        if payload.get("type") == "url_verification":
            if not self._token_ok(payload.get("token")):
                log.warning("feishu: url verification with a wrong token from %s", request.remote)
                return web.Response(status=401, text="unauthorized")
            return web.json_response({"challenge": payload.get("challenge", "")})
        header = payload.get("header") or {}
        if (self.encrypt_key and not signed) or not self._token_ok(header.get("token")):
            log.warning("feishu: event with a wrong verification token from %s", request.remote)
            return web.Response(status=401, text="unauthorized")
        try:
            return await self._dispatch(header, payload.get("event") or {})
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("feishu: authentic event %s not readable: %s", header.get("event_id", "?"), type(exc).__name__)
            return web.json_response({"msg": "success"})

    def _check_signature(self, headers: Any, raw: bytes) -> bool:
        """True when the request is signed correctly and fresh; a wrong or stale signature is refused.

        Unsigned requests pass here only as ``False``: the URL verification is not signed, and without an
        encrypt key nothing is.
        """
        sig = headers.get("X-Lark-Signature")
        if sig is None:
            return False
        if not self.encrypt_key:
            raise _Refused("signed request but no encrypt key configured")
        ts = headers.get("X-Lark-Request-Timestamp", "")
        nonce = headers.get("X-Lark-Request-Nonce", "")
        expected = signature(ts, nonce, self.encrypt_key, raw)
        if not hmac.compare_digest(sig.encode(), expected.encode()):
            raise _Refused("wrong signature")
        try:
            age = abs(self.clock() - float(ts))
        except ValueError as exc:
            raise _Refused("timestamp is not a number") from exc
        if age > REPLAY_WINDOW:
            raise _Refused(f"timestamp {age:.0f} s away from our clock")
        return True

    def _open(self, raw: bytes, signed: bool) -> dict[str, Any] | None:
        """The (decrypted) payload; ``None`` for an authentic body that cannot be read."""
        try:
            outer = json.loads(raw)
            if not isinstance(outer, dict):
                raise ValueError("not an object")
            if "encrypt" in outer:
                if not self.encrypt_key:
                    raise _Refused("encrypted body but no encrypt key configured")
                inner = json.loads(decrypt(str(outer["encrypt"]), self.encrypt_key))
                if not isinstance(inner, dict):
                    raise ValueError("not an object")
                return inner
            if self.encrypt_key and not signed and outer.get("type") != "url_verification":
                raise _Refused("plaintext body while an encrypt key is configured")
            return outer
        except (ValueError, UnicodeDecodeError) as exc:
            if signed:
                log.warning("feishu: signed event not readable: %s", type(exc).__name__)
                return None
            raise _Refused(f"unreadable body ({type(exc).__name__})") from exc

    def _token_ok(self, token: Any) -> bool:
        if not self.verification_token:
            return True  # none configured: the signature (when set) is the check
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.verification_token.encode())

    async def _dispatch(self, header: dict[str, Any], event: dict[str, Any]) -> web.Response:
        event_id = str(header.get("event_id") or "")
        kind = header.get("event_type")
        if event_id and not self._seen.add(event_id):
            return web.json_response({"msg": "success"})
        if kind == "im.message.receive_v1":
            inbound = message_inbound(event_id, event)
            if inbound is not None and not await self._messages.accept(inbound):  # spooled before "success"
                return web.Response(status=503, text="try again")
            return web.json_response({"msg": "success"})
        if kind == "card.action.trigger":
            inbound = callback_inbound(event_id, event, self.channel.sent_to)
            if inbound is None:
                return web.json_response({})
            handled = asyncio.ensure_future(self.handle(inbound))
            self._inbound.spawn(answer_inbound(self.channel, inbound, handled))
            done, _ = await asyncio.wait({handled}, timeout=CALLBACK_WAIT)
            if handled in done and not handled.cancelled() and handled.exception() is None:
                reply = handled.result()
                if reply is not None and reply.alert:
                    return web.json_response({"toast": {"type": "info", "content": reply.alert[:200]}})
            return web.json_response({})
        log.info("feishu: event type %s not handled", kind)
        return web.json_response({"msg": "success"})
