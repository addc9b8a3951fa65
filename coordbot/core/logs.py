"""Nothing secret in a log line: every record is redacted before any handler sees it.

Libraries log what they send: httpx every request URL (Telegram's carries the bot token), python-telegram-bot
the parameters of setWebhook (the webhook secret) and at DEBUG the updates it read (a ``/start CODE``).
:func:`install_redaction` registers the configured secrets (every :class:`Secret` of the settings, the
database URL's password) and redacts them — and token-shaped parts that no setting names, such as
``/bot<token>/``, ``access_token=…``, ``key=…`` and invite codes — from the message, its arguments and any
traceback. It works at record creation (a log record factory), so a handler added later (a file, pytest's
capture) gets redacted records too; the filter on the root handlers covers records made elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coordbot.core.config import Settings

MASK = "****"
# A shorter secret would blank out ordinary words of unrelated lines; no real token is this short.
MIN_SECRET_LENGTH = 6

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Telegram's bot token in the API path, and anywhere in its own shape (<bot id>:<35 characters>).
    (re.compile(r"(/bot)[^/\s'\"]+"), r"\1" + MASK),
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}"), MASK),
    # Credentials in query strings and form bodies: WeCom, DingTalk, the group robots' webhooks.
    (
        re.compile(
            r"(?i)([?&;](?:access_token|corpsecret|appsecret|app_secret|secret|key|token|sign|signature|"
            r"password|timestamp_sign)=)[^&\s'\"]+"
        ),
        r"\1" + MASK,
    ),
    # Feishu's custom robots carry their token in the path.
    (re.compile(r"(/hook/)[A-Za-z0-9_-]+"), r"\1" + MASK),
    # Named secrets in logged parameters: setWebhook's secret_token, tokens in JSON or repr'd dicts.
    (
        re.compile(
            r"(?i)(['\"]?(?:secret_token|access_token|app_secret|appsecret|corpsecret|tenant_access_token|"
            r"password|encrypt_key)['\"]?\s*[:=]\s*['\"]?)[^'\",\s&}]+"
        ),
        r"\1" + MASK,
    ),
    # A password in a URL (user:password@host).
    (re.compile(r"(://[^/:@\s]+:)[^@\s/]+@"), r"\1" + MASK + "@"),
    # Invite codes: a deep link's start=, a /start command, 绑定 CODE on channels without deep links.
    (re.compile(r"(start=|/start(?:@\w+)?[ \t]+|绑定[ \t:：]*)[A-Za-z0-9_-]{8,}"), r"\1" + MASK),
]

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None
_installed = False


def redact(text: str) -> str:
    """``text`` with every registered secret and every token-shaped part replaced by ``****``."""
    if _secret_re is not None:
        text = _secret_re.sub(MASK, text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def add_secrets(*values: str) -> None:
    """Register values that must never appear in a log line (ignored when empty or too short to redact)."""
    global _secret_re
    with _lock:
        fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH} - _secrets
        if not fresh:
            return
        _secrets.update(fresh)
        # Longest first: a secret containing another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(v) for v in ordered))


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value of the settings: the :class:`Secret` fields and the database URL's password."""
    from coordbot.core.config import Secret

    out = [v.get() for f in dataclasses.fields(settings) if isinstance(v := getattr(settings, f.name), Secret)]
    out.append(database_password(settings.database_url))
    return out


def database_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password or ""
    except Exception:  # not a URL we can parse: the URL pattern still masks user:password@
        return ""


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_redacted", False):
        return
    record._redacted = True
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: let the handler report it as logging does
        return
    clean = redact(message)
    if clean != message or record.args:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Redacts a record in place; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_FILTER = RedactingFilter()


def install_redaction(settings: Settings | None = None, *, extra: tuple[str, ...] = ()) -> None:
    """Redact every log record of this process from now on; idempotent, and each call may add secrets."""
    global _installed
    if settings is not None:
        add_secrets(*settings_secrets(settings))
    add_secrets(*extra)
    with _lock:
        if not _installed:
            _installed = True
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                _redact_record(record)
                return record

            logging.setLogRecordFactory(factory)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
