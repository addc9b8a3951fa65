"""The e-mail channel: reminders out by SMTP (aiosmtplib), replies in from a mailbox by IMAP (aioimaplib).

``EmailChannel`` renders an :class:`Outbound` (Telegram's HTML subset) as a multipart/alternative mail (plain
text and HTML), buttons as numbered lines (mail has none), a document as an attachment, and sends it over one
reused SMTP connection at a steady rate. Its delivery ref is the mail's Message-ID; Reply-To carries a short
HMAC-signed token (``office+<token>@domain``) naming that Message-ID, so a reply finds its reminder even when
the contact's client drops In-Reply-To.

``EmailFrontend`` logs in to the mailbox, waits with IDLE where the server offers it (else polls), and turns
each unseen mail into an :class:`Inbound`: the sender's address, the reply's own text with quoted text and
signatures cut off (:func:`strip_reply`), "绑定 CODE" as a binding, a bare number as a numbered option.
A mail is flagged \\Seen only after ``handle`` returned, so a crash reads it again (the conversation drops
the repeat by its Message-ID). Auto-replies and bounces are logged and skipped.

A pure adapter: it knows SMTP, IMAP and MIME, and coordbot's channel interface; nothing of the conversation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import logging
import re
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, parseaddr
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aioimaplib  # type: ignore[import-untyped]
import aiosmtplib

from coordbot.channels.base import (
    ButtonAction,
    ChannelAuthError,
    ChannelError,
    ChannelLimits,
    ContentRejectedError,
    Delivery,
    Inbound,
    InboundDeferred,
    InboundHandler,
    NumberedChoices,
    Outbound,
    PermanentChannelError,
    Reply,
    TransientChannelError,
    command_in,
    encode_button,
    invite_code_in,
)
from coordbot.core.config import Settings
from coordbot.core.paths import templates_dir

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("coordbot.channels.email")

SHANGHAI = ZoneInfo("Asia/Shanghai")
NAME = "email"
# Mail has no real text limit; the server's SIZE (usually 20-50 MB) refuses a mail whole with 552.
LIMITS = ChannelLimits(max_text=200_000, buttons=False, files=True)
SEND_RATE_PER_SECOND = 10.0  # hosted mail (Tencent Exmail, Aliyun, Coremail) throttles bursts: keep well below
SMTP_TIMEOUT = 30.0
MAX_SUBJECT = 120
IDLE_SECONDS = 300.0  # re-issue IDLE every 5 minutes (RFC 2177 asks for less than 29): also bounds a missed push
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 15.0, 60.0)  # backoff after a lost IMAP session
MAX_HANDLE_ATTEMPTS = 3  # a mail whose handling raised this often is flagged \Seen and logged, not retried forever
DEFERRED_RETRY_SECONDS = 5.0  # while the database is unreachable, unseen mail is tried again this often
TOKEN_ID_CHARS = 16  # base32 of 10 random bytes: the Message-ID's local part
TOKEN_SIG_CHARS = 16  # base32 of 10 bytes of HMAC-SHA256
_TOKEN_KEY_LABEL = b"coordbot e-mail reply token v1"
_OUR_ID = re.compile(rf"<?([a-z2-7]{{{TOKEN_ID_CHARS}}})@([^>]+)>?", re.I)
_MIME_TYPES = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".csv": "text/csv",
}
_REMINDER_ACTIONS = {ButtonAction.DONE, ButtonAction.ON_TRACK, ButtonAction.AT_RISK, ButtonAction.BLOCKED}


def _template(locale: str, name: str, default: str) -> str:
    path = templates_dir() / locale / "channels" / name
    try:
        return path.read_text(encoding="utf-8").strip("\n")
    except OSError:
        return default


# ---- rendering: Telegram's HTML subset to text/plain and text/html -------------------------------------

_TAG = re.compile(r"<(/?)([a-zA-Z]+)((?:\s[^>]*)?)>")
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_ALLOWED = {"b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u", "s": "s", "strike": "s"}
_ALLOWED.update({"del": "s", "code": "code", "pre": "pre", "a": "a", "tg-spoiler": "span"})
_SAFE_URL = re.compile(r"^(?:https?:|mailto:)", re.I)


def _href(attrs: str) -> str:
    m = _HREF.search(attrs)
    if not m:
        return ""
    return html.unescape(next(g for g in m.groups() if g is not None))


def to_plain(text: str) -> str:
    """The mail's text/plain part: tags dropped, a link's address after its label, entities decoded."""

    def link(m: re.Match[str]) -> str:
        url, label = _href(m.group(1)), m.group(2)
        label_text = html.unescape(_TAG.sub("", label))
        return label_text if not _SAFE_URL.match(url) or url == label_text else f"{label_text} ({url})"

    text = re.sub(r"<a(\s[^>]*)>(.*?)</a>", link, text, flags=re.I | re.S)
    return html.unescape(_TAG.sub("", text))


def to_html(text: str) -> str:
    """The mail's text/html part: only the subset's tags are kept (others shown as text), text re-escaped,
    line breaks kept; links only for http(s) and mailto."""
    out: list[str] = []
    in_pre = 0
    pos = 0
    open_tags: list[str] = []
    for m in _TAG.finditer(text):
        out.append(_escape_run(text[pos : m.start()], in_pre > 0))
        pos = m.end()
        closing, name = m.group(1) == "/", m.group(2).lower()
        tag = _ALLOWED.get(name)
        if tag is None:
            out.append(_escape_run(m.group(0), in_pre > 0))  # not ours: shown, never interpreted
            continue
        if closing:
            if tag in open_tags:
                while open_tags:  # close what is open above it too, so the markup stays balanced
                    top = open_tags.pop()
                    out.append(f"</{top}>")
                    in_pre -= top == "pre"
                    if top == tag:
                        break
            continue
        if tag == "a":
            url = _href(m.group(3))
            out.append(f'<a href="{html.escape(url)}">' if _SAFE_URL.match(url) else "<a>")
        elif tag == "pre":
            out.append('<pre style="white-space:pre-wrap">')
            in_pre += 1
        else:
            out.append(f"<{tag}>")
        open_tags.append(tag)
    out.append(_escape_run(text[pos:], in_pre > 0))
    out.extend(f"</{t}>" for t in reversed(open_tags))
    body = "".join(out)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        "<body><div style=\"font-family:-apple-system,'PingFang SC','Microsoft YaHei',sans-serif;"
        f'font-size:14px;line-height:1.6">{body}</div></body></html>\n'
    )


def _escape_run(run: str, in_pre: bool) -> str:
    escaped = html.escape(html.unescape(run), quote=False)
    return escaped if in_pre else escaped.replace("\n", "<br>\n")


def subject_of(plain: str, *, prefix: str = "") -> str:
    first = next((line.strip() for line in plain.splitlines() if line.strip()), "")
    first = re.sub(r"\s+", " ", first)
    subject = prefix + first
    return subject if len(subject) <= MAX_SUBJECT else subject[: MAX_SUBJECT - 1] + "…"


# ---- reply tokens --------------------------------------------------------------------------------------


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()  # lowercase: some MTAs fold local parts


class ReplyTokens:
    """``<id><sig>``: a Message-ID's random id and an HMAC of it, for the ``local+<token>@domain`` Reply-To.

    The key is derived from a secret coordbot already has (the IMAP password, else the SMTP password): without
    one there are no tokens, and replies are matched by In-Reply-To/References only.
    """

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), _TOKEN_KEY_LABEL, hashlib.sha256).digest() if secret else b""

    def __bool__(self) -> bool:
        return bool(self._key)

    def _sig(self, ident: str) -> str:
        return _b32(hmac.new(self._key, ident.encode("ascii"), hashlib.sha256).digest()[:10])

    def token(self, ident: str) -> str:
        return ident + self._sig(ident)

    def verify(self, token: str) -> str | None:
        """The id a token names, or ``None`` when it is not one we signed."""
        token = token.lower()
        if not self._key or len(token) != TOKEN_ID_CHARS + TOKEN_SIG_CHARS or not token.isascii():
            return None
        ident, sig = token[:TOKEN_ID_CHARS], token[TOKEN_ID_CHARS:]
        return ident if hmac.compare_digest(sig, self._sig(ident)) else None


def new_ident() -> str:
    return _b32(secrets.token_bytes(10))


@dataclass(frozen=True, slots=True)
class MailIdentity:
    """Who coordbot is in mail: From, the Reply-To base address and the Message-ID domain."""

    from_header: str
    from_addr: str
    reply_local: str
    reply_domain: str
    msgid_domain: str

    @classmethod
    def of(cls, settings: Settings) -> MailIdentity:
        name, addr = parseaddr(settings.mail_from)
        if "@" not in addr:
            raise ValueError(
                "setting 'mail_from' must be an e-mail address, e.g. 联席会议办公室 <office@example.gov.cn>"
            )
        _, reply = parseaddr(settings.mail_reply_to or addr)
        if "@" not in reply:
            raise ValueError("setting 'mail_reply_to' must be an e-mail address")
        local, _, domain = reply.rpartition("@")
        return cls(
            from_header=str(Address(display_name=name, addr_spec=addr)) if name else addr,
            from_addr=addr,
            reply_local=local.split("+", 1)[0],
            reply_domain=domain.lower(),
            msgid_domain=addr.rpartition("@")[2].lower(),
        )

    def message_id(self, ident: str) -> str:
        return f"<{ident}@{self.msgid_domain}>"

    def ident_of(self, message_id: str) -> str | None:
        """The id of one of our own Message-IDs, or ``None``."""
        m = _OUR_ID.fullmatch(message_id.strip())
        return m.group(1).lower() if m and m.group(2).lower() == self.msgid_domain else None


# ---- sending -------------------------------------------------------------------------------------------


class _Pacer:
    """Spaces sends ``1 / rate`` apart (a token bucket of one): a fan-out never bursts at the server."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def _error_for_code(code: int, text: str, *, stage: str) -> ChannelError:
    message = f"SMTP {code} at {stage}: {text[:200]}"
    if code in (530, 534, 535, 538) or (stage == "AUTH" and code >= 500):
        return ChannelAuthError(message)
    if 400 <= code < 500:
        return TransientChannelError(message)
    if code in (552, 554) or stage == "DATA":
        return ContentRejectedError(message)  # too large, or refused for its content (spam filters)
    if stage == "MAIL":
        return ChannelAuthError(message)  # our sender address refused: every mail fails alike
    return PermanentChannelError(message)  # 550/551/553 at RCPT: no such mailbox


def map_smtp_error(exc: BaseException) -> ChannelError:
    """aiosmtplib's exception as the channel outcome the reminder engine acts on."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0] if exc.recipients else None
        if first is None:
            return PermanentChannelError("SMTP: recipient refused")
        return _error_for_code(first.code, first.message, stage="RCPT")
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _error_for_code(exc.code, exc.message, stage="RCPT")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return _error_for_code(exc.code, exc.message, stage="AUTH")
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return _error_for_code(exc.code, exc.message, stage="MAIL")
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _error_for_code(exc.code, exc.message, stage="DATA")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _error_for_code(exc.code, exc.message, stage="SMTP")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return ChannelAuthError(f"SMTP: {exc.message}")  # e.g. STARTTLS asked for and not offered: our setup
    if isinstance(exc, aiosmtplib.SMTPException):
        return TransientChannelError(f"SMTP: {exc.message}")  # disconnected, timeouts, connect errors
    if isinstance(exc, ssl.SSLError):
        return ChannelAuthError(f"SMTP TLS: {exc.reason or exc}")  # a certificate we do not trust
    return TransientChannelError(f"SMTP: {type(exc).__name__}: {exc}")


def _attachment_type(name: str) -> tuple[str, str]:
    mime = _MIME_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
    maintype, _, subtype = mime.partition("/")
    return maintype, subtype


class EmailChannel:
    """Sends mail over one reused SMTP connection (reconnected when the server dropped it)."""

    name = NAME
    limits = LIMITS

    def __init__(
        self,
        settings: Settings,
        *,
        rate_per_second: float = SEND_RATE_PER_SECOND,
        tls_context: ssl.SSLContext | None = None,
        choices: NumberedChoices | None = None,
    ) -> None:
        self.settings = settings
        self.identity = MailIdentity.of(settings)
        self.tokens = ReplyTokens(settings.imap_password.get() or settings.smtp_password.get())
        self.choices = choices or NumberedChoices()
        self.tls_context = tls_context
        self._intro = _template(settings.locale, "numbered_options.txt", "请回复数字选择：")
        self._reminder_prefix = _template(settings.locale, "email_reminder_subject.txt", "【催办】")
        self._pacer = _Pacer(rate_per_second)
        self._lock = asyncio.Lock()
        self._smtp: aiosmtplib.SMTP | None = None

    # ---- building the mail ----

    def build(
        self, message: Outbound, *, ident: str, in_reply_to: str = "", subject: str = ""
    ) -> tuple[EmailMessage, str]:
        """The MIME message for ``message`` and its recipient's address."""
        _, to_addr = parseaddr(message.address)
        if "@" not in to_addr or any(c in to_addr for c in "\r\n"):
            raise PermanentChannelError("not an e-mail address")
        to_addr = to_addr.strip()
        if message.buttons:
            message = self.choices.offer(replace(message, address=to_addr.lower()), intro=self._intro)
        plain = to_plain(message.text)
        if not subject:
            reminder = any(b.action in _REMINDER_ACTIONS for row in message.buttons for b in row)
            subject = subject_of(plain, prefix=self._reminder_prefix if reminder else "")
            if not subject and message.document is not None:
                subject = message.document[0]
        ident_msgid = self.identity.message_id(ident)
        msg = EmailMessage(policy=policy.SMTP)
        msg["Subject"] = subject or "coordbot"
        msg["From"] = self.identity.from_header
        msg["To"] = to_addr
        msg["Date"] = format_datetime(datetime.now(SHANGHAI))
        msg["Message-ID"] = ident_msgid
        local, domain = self.identity.reply_local, self.identity.reply_domain
        if self.tokens:
            msg["Reply-To"] = f"{local}+{self.tokens.token(ident)}@{domain}"
        else:
            msg["Reply-To"] = f"{local}@{domain}"
        if in_reply_to:
            msg["In-Reply-To"] = in_reply_to
            msg["References"] = in_reply_to
        # RFC 3834: vacation responders should not answer a generated mail; Exchange has its own header.
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
        msg.set_content(plain + "\n", cte="base64")
        msg.add_alternative(to_html(message.text), subtype="html", cte="base64")
        if message.document is not None:
            name, content = message.document
            maintype, subtype = _attachment_type(name)
            msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
            # The name goes as filename* (RFC 2231) on the disposition only: a name* parameter on this long
            # Content-Type makes the standard library fold the type itself into an encoded word (broken).
        return msg, to_addr

    # ---- sending ----

    async def send(self, message: Outbound) -> Delivery:
        return await self.send_mail(message)

    async def send_mail(self, message: Outbound, *, in_reply_to: str = "", subject: str = "") -> Delivery:
        """Send ``message``; ``in_reply_to``/``subject`` thread an answer under the mail it answers."""
        if not message.text and message.document is None:
            raise PermanentChannelError("nothing to send: empty message")
        ident = new_ident()
        mail, to_addr = self.build(message, ident=ident, in_reply_to=in_reply_to, subject=subject)
        async with self._lock:
            await self._pacer.wait()
            await self._transmit(mail, to_addr)
        return Delivery(self.name, self.identity.message_id(ident))

    async def _transmit(self, mail: EmailMessage, to_addr: str) -> None:
        for attempt in (1, 2):
            reused = self._smtp is not None
            try:
                smtp = await self._connection()
                await smtp.send_message(mail, sender=self.identity.from_addr, recipients=[to_addr])
                return
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                await self._drop()
                if attempt == 1 and reused:
                    continue  # the server closed an idle connection: once more on a fresh one
                raise map_smtp_error(exc) from exc
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                error = map_smtp_error(exc)
                if not isinstance(exc, aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPDataError) or (
                    isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code == 421
                ):
                    await self._drop()  # the session's state is unknown (421 closes it): start afresh next time
                raise error from exc

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        await self._drop()
        s = self.settings
        security = s.smtp_security
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password.get() or None,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            tls_context=self.tls_context,
            timeout=SMTP_TIMEOUT,
            # EHLO names our mail domain: the default, socket.getfqdn(), waits seconds on a host without DNS.
            local_hostname=self.identity.msgid_domain,
        )
        await smtp.connect()
        self._smtp = smtp
        return smtp

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    async def close(self) -> None:
        async with self._lock:
            smtp, self._smtp = self._smtp, None
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()


@asynccontextmanager
async def open_sender(settings: Settings) -> AsyncIterator[EmailChannel]:
    """A send-only e-mail channel (one SMTP connection, opened on the first send)."""
    channel = EmailChannel(settings)
    try:
        yield channel
    finally:
        await channel.close()


# ---- reading replies -----------------------------------------------------------------------------------

_CUT_LINES = [
    re.compile(r"^\s*-{2,}\s*(?:原始邮件|原始郵件|Original Message|转发邮件|Forwarded message)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above its From: block
    re.compile(r"^.{0,200}(?:写道|寫道)\s*[:：]\s*$"),  # Gmail, iPhone, QQ: "在 2026年3月2日 … 写道："
    re.compile(r"^\s*On\b.{0,300}\bwrote\s*:\s*$", re.I),
    re.compile(r"^\s*(?:--|-- )\s*$"),  # the signature separator (clients often drop its trailing space)
    re.compile(
        r"^\s*(?:发自我的\s*\S.{0,20}|发自\s*(?:网易邮箱大师|手机QQ邮箱|QQ邮箱|企业微信|Foxmail)|从我的\s*\S+\s*发送"
        r"|Sent from my \S.{0,30}|Sent from (?:Mail|Outlook) for \S.{0,20}|Get Outlook for \S+)\s*$",
        re.I,
    ),
]
_HEADER_FIELD = re.compile(
    r"^\s*\**\s*(发件人|寄件者|发送时间|發送時間|时间|日期|收件人|抄送|主题|主旨|From|Sent|Date|To|Cc|Subject)\s*\**\s*[:：]",
    re.I,
)
_FROM_FIELD = {"发件人", "寄件者", "from"}


def _is_header_block(lines: list[str], i: int) -> bool:
    """A quoted mail's header block: 发件人:/From: with another header field in the next lines."""
    m = _HEADER_FIELD.match(lines[i])
    if not m or m.group(1).lower() not in _FROM_FIELD:
        return False
    following = [line for line in lines[i + 1 : i + 7] if line.strip()]
    return any(_HEADER_FIELD.match(line) for line in following[:4])


def strip_reply(text: str) -> str:
    """The reply's own text: cut at the first quote header, signature or mobile footer; ">" lines dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ").replace("\u200b", "")
    lines = text.split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        joined = line + " " + lines[i + 1] if i + 1 < len(lines) else line  # an attribution wrapped in two
        if any(p.match(line) for p in _CUT_LINES) or _is_header_block(lines, i):
            cut = i
            break
        if lines[i + 1 : i + 2] and any(p.match(joined) for p in _CUT_LINES[2:4]):
            cut = i
            break
    kept = [line.rstrip() for line in lines[:cut] if not line.lstrip().startswith(">")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


class _HTMLText(HTMLParser):
    """An HTML mail body as text: block elements break lines, blockquotes come out as "> " lines, and the
    reply containers of Gmail, Outlook and QQ mail start a quote."""

    BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "hr", "ul", "ol"})
    SKIP = frozenset({"style", "script", "head", "title"})
    QUOTE_MARKERS = ("gmail_quote", "divrplyfwdmsg", "appendonsend", "yahoo_quoted", "moz-cite-prefix")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.quote_depth = 0
        self.skip_depth = 0
        self._stack: list[bool] = []  # per open element: does it start a quote

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
            return
        marker = " ".join(v or "" for k, v in attrs if k in ("class", "id")).lower()
        quote = tag == "blockquote" or any(q in marker for q in self.QUOTE_MARKERS)
        if tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS or quote:
            self._block()
        if tag not in ("br", "hr", "img", "meta", "link", "input"):
            self._stack.append(quote)
            self.quote_depth += quote

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag in ("br", "hr", "img", "meta", "link", "input"):
            return
        if self._stack:
            self.quote_depth -= self._stack.pop()
        if tag in self.BLOCKS or tag == "blockquote":
            self._block()

    def _block(self) -> None:
        """A block's edge: one line break however many blocks meet here (nested divs are one break)."""
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        data = re.sub(r"[ \t\r\n]+", " ", data)
        if self.quote_depth:
            data = data.replace("\n", "\n> ")
            if not self.parts or self.parts[-1].endswith("\n"):
                data = "> " + data.lstrip()
        self.parts.append(data)

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        return "\n".join(lines)


def html_to_text(markup: str) -> str:
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    return parser.text()


def _decode_part(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = (part.get_content_charset() or "utf-8").lower()
    if charset in ("gb2312", "gbk", "gb_2312-80", "x-gbk", "cp936"):
        charset = "gb18030"  # mislabelled GBK is common; GB18030 is its superset
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def body_text(mail: EmailMessage) -> str:
    """The mail's text: its text/plain part, else its HTML part as text."""
    body = mail.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    text = _decode_part(body)
    return html_to_text(text) if body.get_content_subtype() == "html" else text


def skip_reason(mail: EmailMessage, own_addresses: set[str]) -> str:
    """Why this mail is not a person's message (auto-reply, bounce, list, our own), or ""."""
    auto = str(mail.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return f"auto-submitted ({auto[:40]})"
    if mail.get("X-Autoreply") or mail.get("X-Autorespond") or mail.get("X-Auto-Reply"):
        return "auto-reply header"
    if str(mail.get("Precedence", "")).strip().lower() in ("bulk", "junk", "list", "auto_reply"):
        return "bulk precedence"
    if mail.get("List-Id"):
        return "mailing list"
    if mail.get_content_type() == "multipart/report":
        return "delivery report"
    _, sender = parseaddr(str(mail.get("From", "")))
    local = sender.partition("@")[0].lower()
    if local in ("mailer-daemon", "postmaster") or str(mail.get("Return-Path", "")).strip() == "<>":
        return "bounce"
    if sender.lower() in own_addresses:
        return "our own mail"
    if re.match(
        r"^\s*(?:自动回复|自動回覆|Automatic reply|Auto(?:matic)?[ -]?reply|Out of (?:the )?Office)\s*[:：]",
        str(mail.get("Subject", "")),
        re.I,
    ):
        return "auto-reply subject"
    return ""


def _references(mail: EmailMessage) -> list[str]:
    ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        ids.extend(re.findall(r"<[^<>\s]+>", str(mail.get(name, ""))))
    return ids


@dataclass(frozen=True, slots=True)
class ParsedMail:
    inbound: Inbound | None
    skipped: str = ""  # why there is no inbound
    subject: str = ""
    message_id: str = ""


def parse_mail(
    raw: bytes, *, identity: MailIdentity, tokens: ReplyTokens, fallback_id: str, own_addresses: set[str]
) -> ParsedMail:
    """One mail from the mailbox as an :class:`Inbound` (or why it is skipped)."""
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(mail, EmailMessage)
    reason = skip_reason(mail, own_addresses)
    if reason:
        return ParsedMail(None, reason)
    name, sender = parseaddr(str(mail.get("From", "")))
    sender = sender.strip().lower()
    if "@" not in sender:
        return ParsedMail(None, "no sender address")
    message_id = str(mail.get("Message-ID", "")).strip()
    subject = re.sub(r"\s+", " ", str(mail.get("Subject", ""))).strip()
    reply_to_ref = ""
    for header in ("To", "Delivered-To", "X-Original-To", "Cc"):
        for _, addr in getaddresses([str(v) for v in mail.get_all(header, [])]):
            local, _, domain = addr.lower().rpartition("@")
            base, plus, token = local.partition("+")
            if not plus or domain != identity.reply_domain or base != identity.reply_local.lower():
                continue
            ident = tokens.verify(token)
            if ident is None:
                log.warning("mail with a reply token that does not verify: token ignored")
                continue
            reply_to_ref = identity.message_id(ident)
            break
        if reply_to_ref:
            break
    if not reply_to_ref:
        ours = [identity.ident_of(r) for r in _references(mail)]
        found = [i for i in ours if i]
        if found:
            reply_to_ref = identity.message_id(found[0] if mail.get("In-Reply-To") else found[-1])
    text = strip_reply(body_text(mail))
    code = invite_code_in(text) or invite_code_in(re.sub(r"^\s*(?:re|回复|答复)\s*[:：]\s*", "", subject, flags=re.I))
    original = re.sub(r"^\s*(?:(?:re|fw|fwd|回复|答复|转发)\s*[:：]\s*)+", "", subject, flags=re.I)
    said = None if code else command_in(text.strip().splitlines()[0] if text.strip() else "")
    inbound = Inbound(
        channel=NAME,
        external_id=message_id or fallback_id,
        chat_id=sender,
        sender_id=sender,
        sender_name=name,
        kind="command" if code or said else "message",
        text=text,
        command="start" if code else (said[0] if said else ""),
        args=code or (said[1] if said else ""),
        start_code=code,
        reply_to_ref=reply_to_ref,
        reply_to_text=original if (reply_to_ref or original != subject) else "",
        message_ref=message_id,
    )
    return ParsedMail(inbound, subject=subject, message_id=message_id)


def _imap_ok(response: Any, what: str) -> Any:
    if response.result != "OK":
        raise _IMAPError(f"IMAP {what} failed: {response.result}")
    return response


class _IMAPError(Exception):
    pass


class _IMAPAuthError(_IMAPError):
    pass


def frontend(settings: Settings, handle: InboundHandler) -> EmailFrontend:
    """The registry's entry point: SMTP out, and replies in when an IMAP mailbox is configured."""
    return EmailFrontend(settings, handle)


class EmailFrontend:
    """Reads the reply mailbox (IDLE where offered, else polling) and answers each mail through ``handle``."""

    def __init__(
        self,
        settings: Settings,
        handle: InboundHandler,
        *,
        channel: EmailChannel | None = None,
        imap_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if settings.imap_host and settings.imap_security == "starttls":
            raise ValueError(
                "imap_security 'starttls' is not supported (aioimaplib has no STARTTLS): use tls, port 993"
            )
        self.settings = settings
        self.handle = handle
        self._channel = channel or EmailChannel(settings)
        self.identity = self._channel.identity
        self.tokens = self._channel.tokens
        self.imap_ssl_context = imap_ssl_context
        self.own_addresses = {self.identity.from_addr.lower()}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._client: Any = None
        self._idling = False
        self._attempts: dict[str, int] = {}
        self.uses_idle: bool | None = None  # known once logged in

    @property
    def channel(self) -> EmailChannel:
        return self._channel

    def webhook_routes(self) -> list[web.RouteDef]:
        return []

    async def start(self) -> None:
        if not self.settings.imap_host:
            log.info("email: sending only (no imap_host: replies are not read)")
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="email-imap")

    async def stop(self) -> None:
        self._stopping.set()
        client = self._client
        if client is not None and self._idling:
            await client.stop_wait_server_push()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 15)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None
        await self._channel.close()

    # ---- the IMAP session ----

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._session()
                failures = 0
            except asyncio.CancelledError:
                raise
            except _IMAPAuthError as exc:
                log.error("email: %s (check COORDBOT_IMAP_USERNAME/COORDBOT_IMAP_PASSWORD)", exc)
                failures = len(RECONNECT_SECONDS) - 1
            except Exception as exc:
                log.warning("email: IMAP session ended: %s: %s", type(exc).__name__, exc)
            finally:
                self._client = None
                self._idling = False
            if self._stopping.is_set():
                return
            delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
            failures += 1
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _connect(self) -> Any:
        s = self.settings
        if s.imap_security == "tls":
            context = self.imap_ssl_context or ssl.create_default_context()
            return aioimaplib.IMAP4_SSL(host=s.imap_host, port=s.imap_port, ssl_context=context, timeout=SMTP_TIMEOUT)
        return aioimaplib.IMAP4(host=s.imap_host, port=s.imap_port, timeout=SMTP_TIMEOUT)

    async def _session(self) -> None:
        s = self.settings
        client = self._connect()
        self._client = client
        try:
            await client.wait_hello_from_server()
            response = await client.login(s.imap_username or self.identity.from_addr, s.imap_password.get())
            if response.result != "OK":
                raise _IMAPAuthError("IMAP login refused")
            await client.protocol.capability()  # some servers list IDLE only once logged in
            selected = _imap_ok(await client.select(s.imap_folder), f"SELECT {s.imap_folder}")
            uidvalidity = ""
            for line in selected.lines:
                m = re.search(rb"UIDVALIDITY (\d+)", bytes(line))
                if m:
                    uidvalidity = m.group(1).decode()
            self.uses_idle = client.has_capability("IDLE")
            log.info("email: reading %s (%s)", s.imap_folder, "IDLE" if self.uses_idle else "polling")
            while not self._stopping.is_set():
                await self._drain(client, uidvalidity)
                if self._stopping.is_set():
                    break
                if self.uses_idle:
                    await self._idle(client)
                else:
                    await self._sleep(s.imap_poll_seconds)
        finally:
            try:
                if client.get_state() in ("AUTH", "SELECTED", "NONAUTH"):
                    await asyncio.wait_for(client.logout(), 5)
            except Exception:  # the connection is going away anyway
                log.debug("email: logout failed", exc_info=True)

    async def _idle(self, client: Any) -> None:
        idle = await client.idle_start(timeout=IDLE_SECONDS)
        self._idling = True
        try:
            if not self._stopping.is_set():
                await client.wait_server_push(timeout=IDLE_SECONDS + 30)
        except TimeoutError:
            pass
        finally:
            self._idling = False
            client.idle_done()
            await asyncio.wait_for(idle, SMTP_TIMEOUT)

    async def _drain(self, client: Any, uidvalidity: str) -> None:
        """Handle every unseen mail, until a search finds none left."""
        while not self._stopping.is_set():
            await client.noop()  # lets the server tell this session about mail that just arrived
            found = _imap_ok(await client.uid_search("UNSEEN", charset=None), "SEARCH")
            uids = [u for u in bytes(found.lines[0]).decode().split() if u.isdigit()] if found.lines else []
            pending = [u for u in uids if self._attempts.get(f"{uidvalidity}:{u}", 0) < MAX_HANDLE_ATTEMPTS]
            if not pending:
                return
            for uid in pending:
                if self._stopping.is_set():
                    return
                if not await self._one(client, uidvalidity, uid):
                    # The database is away: the mail stays unseen (the mailbox keeps it); ask again shortly.
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), DEFERRED_RETRY_SECONDS)
                    break

    async def _one(self, client: Any, uidvalidity: str, uid: str) -> bool:
        """Handle one mail; False when the handler could not store it now (not counted as a failed attempt)."""
        key = f"{uidvalidity}:{uid}"
        fetched = _imap_ok(await client.uid("fetch", uid, "(BODY.PEEK[])"), "FETCH")
        raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray | bytes) and b"\n" in x), None)
        if raw is None:
            await self._mark_seen(client, uid)
            return True
        try:
            await self.deliver(raw, fallback_id=f"imap:{key}")
        except InboundDeferred as exc:
            log.warning("email: mail uid %s kept unseen: %s", uid, exc)
            return False
        except Exception:
            self._attempts[key] = self._attempts.get(key, 0) + 1
            if self._attempts[key] < MAX_HANDLE_ATTEMPTS:
                log.exception("email: mail uid %s could not be handled; it stays unseen to be read again", uid)
                return True
            log.exception("email: mail uid %s failed %d times: flagged seen, not read again", uid, self._attempts[key])
        self._attempts.pop(key, None)
        await self._mark_seen(client, uid)
        return True

    async def _mark_seen(self, client: Any, uid: str) -> None:
        _imap_ok(await client.uid("store", uid, "+FLAGS.SILENT (\\Seen)"), "STORE")

    # ---- one mail ----

    async def deliver(self, raw: bytes, *, fallback_id: str) -> Inbound | None:
        """Parse one mail, hand it to ``handle`` and mail back its answer; the Inbound, or None if skipped."""
        parsed = parse_mail(
            raw, identity=self.identity, tokens=self.tokens, fallback_id=fallback_id, own_addresses=self.own_addresses
        )
        inbound = parsed.inbound
        if inbound is None:
            log.info("email: mail skipped: %s", parsed.skipped)
            return None
        if inbound.kind == "message":
            pressed = self._channel.choices.press(inbound.sender_id, inbound.text)
            if pressed is not None:
                inbound = replace(
                    inbound, kind="callback", callback_action=pressed.action, callback_ref=pressed.ref, text=""
                )
                log.debug("email: numbered option for %s", encode_button(pressed))
        reply = await self.handle(inbound)
        if reply is not None:
            await self._send_reply(inbound, reply, parsed)
        return inbound

    async def _send_reply(self, inbound: Inbound, reply: Reply, parsed: ParsedMail) -> None:
        text = reply.text or reply.alert
        answer = Outbound(inbound.chat_id, text, buttons=reply.buttons, ask_reply=reply.ask_reply)
        subject = parsed.subject
        if subject and not re.match(r"^\s*(?:re|回复)\s*[:：]", subject, re.I):
            subject = "Re: " + subject
        for out, threaded in ((answer, True), *((x, False) for x in reply.extra)):
            if not out.text and out.document is None:
                continue
            try:
                if threaded and parsed.message_id:
                    await self._channel.send_mail(out, in_reply_to=parsed.message_id, subject=subject)
                else:
                    await self._channel.send(out)
            except ChannelError as exc:
                log.warning("email: reply could not be delivered: %s", exc)
