"""How log lines look: ``text`` for a person at a terminal, ``json`` for a log collector.

``json`` writes one object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
ids of what is being handled when there is one — ``update_id`` and ``channel`` for an inbound update,
``request_id`` for a web request (see :func:`log_context`) — and ``exc`` for a traceback. The redaction of
:mod:`coordbot.core.logs` applies as to text lines: the record is redacted before any formatter sees it, and
the formatter redacts what it adds once more.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from coordbot.core.logs import install_redaction, redact

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Record attributes (``log.info(..., extra={...})``) carried into the JSON object when present.
ID_FIELDS = ("update_id", "request_id", "channel", "occurrence_id", "worker")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("coordbot_log_context", default=None)


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Every log line written inside the block (in this task or thread, and in threads started with its
    context, as ``asyncio.to_thread`` does) carries ``ids``."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        out.update(current_context())
        for name in ID_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format expects one of {', '.join(FORMATS)}, got {fmt!r}")
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: int, fmt: str = "text") -> None:
    """As ``logging.basicConfig``: the root logger writes to stderr at ``level`` in ``fmt`` (redacted), unless
    something configured logging before (a test's capture). Called again, it only changes the format: the CLI
    learns the settings' format after it set the level."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_coordbot", False)), None)
    if handler is None:
        before = list(root.handlers)
        logging.basicConfig(level=level, format=TEXT_FORMAT)
        added = [h for h in root.handlers if h not in before]
        if added:
            handler = added[0]
            handler._coordbot = True  # type: ignore[attr-defined]
    if handler is not None:
        handler.setFormatter(formatter(fmt))
    # Python's warnings (a missing CJK font, a deprecation) as log records, so a JSON log stays all JSON.
    logging.captureWarnings(fmt == "json")
    install_redaction()
