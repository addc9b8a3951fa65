"""The office's web desk: what every page handler shares.

``Desk`` holds what the handlers need (engine, settings, calendar, clock, the signing key) and lives on the
application under :data:`DESK`; :func:`desk_of` gets it back from a request. :func:`in_db` runs a function
with a session in a worker thread (the ORM is synchronous; the event loop also carries the webhooks), and
:func:`page` renders ``templates/<locale>/web/<name>`` with what every page needs (the viewer, the CSRF
token, the locale, flash messages).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import yaml
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlmodel import Session

from coordbot.core.clock import Clock
from coordbot.core.config import Settings
from coordbot.core.db import session_scope
from coordbot.core.text import DEFAULT_LOCALE, LOCALES, TEMPLATES_DIR, environment
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.web.week_cache import WeekRollupCache

log = logging.getLogger("coordbot.web")

T = TypeVar("T")
STATIC_DIR = TEMPLATES_DIR / "static"


@dataclass
class Desk:
    engine: Engine
    settings: Settings
    calendar: WorkCalendar
    clock: Clock
    secret: bytes = field(repr=False, default=b"")
    rollups: WeekRollupCache = field(repr=False, default_factory=WeekRollupCache)  # this process's week roll-ups
    page_size: int = 200  # rows per page of a long list (the dashboard)

    def __post_init__(self) -> None:
        if not self.secret:
            configured = self.settings.web_secret.get()
            if configured:
                self.secret = configured.encode("utf-8")
            else:
                self.secret = secrets.token_bytes(32)
                log.warning(
                    "COORDBOT_WEB_SECRET is not set: a random key signs the desk's sessions and sign-in links, "
                    "so they will not survive a restart"
                )

    def key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (session cookie, sign-in links …), derived from the secret."""
        return hashlib.sha256(b"coordbot-web:" + purpose.encode("ascii") + b":" + self.secret).digest()

    @property
    def https(self) -> bool:
        return self.settings.public_url.startswith("https://")

    def base_url(self, request: web.Request | None = None) -> str:
        """Where people reach the desk: ``public_url``, else the request's own origin, else host and port."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        if request is not None:
            return f"{request.scheme}://{request.host}"
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return self.clock.now().astimezone(self.calendar.tz).date()


DESK = web.AppKey("coordbot_desk", Desk)


def desk_of(request: web.Request) -> Desk:
    return request.app[DESK]


async def in_db(request: web.Request, fn: Callable[[Session], T]) -> T:
    """``fn(session)`` in one transaction (committed on success) on a worker thread."""
    engine = desk_of(request).engine

    def run() -> T:
        with session_scope(engine) as session:
            return fn(session)

    return await asyncio.to_thread(run)


# ---- locale and words ------------------------------------------------------------------------------

LANG_KEY = "lang"  # in the session
LANG_OF_REQUEST = web.RequestKey("coordbot_lang", object)
FLASH_OF_REQUEST = web.RequestKey("coordbot_flash", list)
VIEWER_OF_REQUEST = web.RequestKey("coordbot_viewer", object)  # an auth.Viewer or None (set by auth's middleware)
CSRF_OF_REQUEST = web.RequestKey("coordbot_csrf", str)


def locale_of(request: web.Request) -> str:
    """``?lang=en`` / ``?lang=zh`` for this request (pages keep it in their links), else the settings' locale."""
    asked = request.query.get("lang", "")
    if asked in LOCALES:
        return asked
    remembered = request.get(LANG_OF_REQUEST)
    if isinstance(remembered, str) and remembered in LOCALES:
        return remembered
    return desk_of(request).settings.locale if desk_of(request).settings.locale in LOCALES else DEFAULT_LOCALE


@lru_cache(maxsize=4)
def words(locale: str, root: Path = TEMPLATES_DIR) -> dict[str, Any]:
    """The desk's words (``templates/<locale>/web/words.yaml``), Chinese as the fallback for each key."""
    merged: dict[str, Any] = {}
    for loc in dict.fromkeys((DEFAULT_LOCALE, locale if locale in LOCALES else DEFAULT_LOCALE)):
        path = root / loc / "web" / "words.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
        for section, entries in (data or {}).items():
            if isinstance(entries, dict):
                merged.setdefault(section, {}).update(entries)
            else:
                merged[section] = entries
    return merged


def link(request: web.Request, path: str, **query: Any) -> str:
    """A URL on the desk that keeps the page's language (``?lang=en``) and adds ``query`` (empty values dropped)."""
    params = {k: v for k, v in query.items() if v not in (None, "", False)}
    if "lang" in request.query and request.query["lang"] in LOCALES:
        params.setdefault("lang", request.query["lang"])
    return path + ("?" + urlencode(params) if params else "")


# ---- pages -----------------------------------------------------------------------------------------


def render_page(request: web.Request, template: str, /, **context: Any) -> str:
    locale = locale_of(request)
    env = environment(locale, TEMPLATES_DIR)
    base = {
        "viewer": request.get(VIEWER_OF_REQUEST),
        "csrf": request.get(CSRF_OF_REQUEST, ""),
        "locale": locale,
        "lang": "zh-CN" if locale == "zh" else "en",
        "W": words(locale),
        "tz": desk_of(request).calendar.tz.key,
        "link": lambda path, **q: link(request, path, **q),
        "path": request.path,
        "flash": request.get(FLASH_OF_REQUEST, []),
        "errors": {},
        "values": {},
    }
    base.update(context)
    return env.get_template(f"web/{template}").render(**base)


def page(request: web.Request, template: str, /, *, status: int = 200, **context: Any) -> web.Response:
    """The page ``templates/<locale>/web/<template>`` as an HTML response."""
    return web.Response(
        text=render_page(request, template, **context),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # No scripts at all; styles and images from here only (the charts are inline SVG).
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
