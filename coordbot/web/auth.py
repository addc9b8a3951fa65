"""Who is asking: sessions, the signed-in viewer, permission checks and CSRF tokens.

A session is an encrypted, signed cookie (aiohttp-session's ``EncryptedCookieStorage``: Fernet, so it is
authenticated as well as secret), HttpOnly, SameSite=Lax and Secure when ``public_url`` is https. It holds
the contact id, a CSRF token, the language and one-shot flash messages; every request reloads the contact,
so a contact made inactive (or given another role) loses the desk at once.

Handlers ask for what they need like FastAPI dependencies::

    viewer = await require(request, Roles.LEADER | Roles.OFFICE)  # 401 -> /login for pages, 403 otherwise
    form = await require_form(request)                               # POST body with a valid CSRF token
    require_department(viewer, task.lead_department_id, co=...)      # a contact sees their department only

Every write made through the desk is recorded with ``actor=viewer.actor`` (``web:<contact id>``).
"""

from __future__ import annotations

import enum
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import Session as WebSession
from aiohttp_session import get_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from multidict import MultiDictProxy
from sqlmodel import Session

from coordbot.core.text import LOCALES
from coordbot.plan.models import Contact, Role
from coordbot.web.desk import (
    CSRF_OF_REQUEST,
    FLASH_OF_REQUEST,
    LANG_KEY,
    LANG_OF_REQUEST,
    VIEWER_OF_REQUEST,
    Desk,
    desk_of,
    in_db,
    link,
    page,
)

_VIEWER, _CSRF_OF_REQUEST = VIEWER_OF_REQUEST, CSRF_OF_REQUEST

COOKIE = "coordbot_desk"
SESSION_HOURS = 12
CSRF_FIELD = "csrf"
_CSRF = "coordbot_csrf"  # in the session

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]


class Roles(enum.Flag):
    """Who may use a route: ``Roles.LEADER | Roles.OFFICE``. The values of ``plan.models.Role`` that sign in."""

    CONTACT = enum.auto()
    LEADER = enum.auto()
    OFFICE = enum.auto()
    ANY = CONTACT | LEADER | OFFICE

    @classmethod
    def of(cls, role: str) -> Roles | None:
        """The flag of a contact's role; None for roles that do not sign in (a group robot)."""
        return _ROLE_FLAGS.get(role)


_ROLE_FLAGS = {str(Role.CONTACT): Roles.CONTACT, str(Role.LEADER): Roles.LEADER, str(Role.OFFICE): Roles.OFFICE}


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person: a ``Contact`` row of role contact, leader or office."""

    contact_id: int
    role: str  # plan.models.Role value
    department_id: int
    name: str

    @property
    def roles(self) -> Roles:
        found = Roles.of(self.role)
        assert found is not None  # only these roles sign in
        return found

    @property
    def is_office(self) -> bool:
        return self.role == Role.OFFICE

    @property
    def sees_everything(self) -> bool:
        """Leaders read the whole plan and the office administers it; a contact sees their department."""
        return self.role in (Role.OFFICE, Role.LEADER)

    @property
    def actor(self) -> str:
        """What events written through the desk record as their actor."""
        return f"web:{self.contact_id}"

    def may_see(self, department_id: int | None, *, co: frozenset[int] | set[int] = frozenset()) -> bool:
        """Whether this viewer may see a task led by ``department_id`` with co-departments ``co``."""
        return self.sees_everything or department_id == self.department_id or self.department_id in co


def viewer_from_contact(contact: Contact) -> Viewer | None:
    if not contact.active or Roles.of(contact.role) is None or contact.id is None:
        return None
    return Viewer(contact.id, contact.role, contact.department_id, contact.name)


# ---- the session middleware --------------------------------------------------------------------


def session_storage(desk: Desk) -> EncryptedCookieStorage:
    return EncryptedCookieStorage(
        desk.key("session"),
        cookie_name=COOKIE,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="Lax",
        secure=desk.https,
    )


def middlewares(desk: Desk) -> list[Any]:
    return [session_middleware(session_storage(desk)), _viewer_middleware]


@web.middleware
async def _viewer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Loads the viewer (if signed in), the CSRF token, the language and the flash messages of the session."""
    if not _is_desk_route(request):
        return await handler(request)
    session = await get_session(request)
    if not isinstance(session.get(_CSRF), str):
        session[_CSRF] = secrets.token_urlsafe(32)
    request[_CSRF_OF_REQUEST] = session[_CSRF]
    asked = request.query.get("lang", "")
    if asked in LOCALES and session.get(LANG_KEY) != asked:
        session[LANG_KEY] = asked
    request[LANG_OF_REQUEST] = session.get(LANG_KEY)
    flashes = session.pop("flash", None)
    request[FLASH_OF_REQUEST] = flashes if isinstance(flashes, list) else []
    contact_id = session.get("contact")
    request[_VIEWER] = None
    if isinstance(contact_id, int):
        viewer = await in_db(request, lambda s: _load_viewer(s, contact_id))
        if viewer is None:
            session.pop("contact", None)
        request[_VIEWER] = viewer
    return await handler(request)


def _is_desk_route(request: web.Request) -> bool:
    """The desk's own pages (handlers in coordbot.web's page modules); the platforms' webhooks, the health
    check, the metrics scrape and the static files carry no session."""
    module = getattr(request.match_info.handler, "__module__", "") or ""
    return module.startswith("coordbot.web.") and module not in ("coordbot.web.app", "coordbot.web.metrics")


def _load_viewer(session: Session, contact_id: int) -> Viewer | None:
    contact = session.get(Contact, contact_id)
    return viewer_from_contact(contact) if contact is not None else None


async def sign_in(request: web.Request, viewer: Viewer) -> None:
    """Start a fresh session for ``viewer`` (a new CSRF token: nothing from before the sign-in carries over)."""
    session = await get_session(request)
    lang = session.get(LANG_KEY)
    session.invalidate()
    session = await get_session(request)  # a new session object after invalidate()
    session["contact"] = viewer.contact_id
    session[_CSRF] = secrets.token_urlsafe(32)
    if lang:
        session[LANG_KEY] = lang
    request[_VIEWER] = viewer
    request[_CSRF_OF_REQUEST] = session[_CSRF]


async def sign_out(request: web.Request) -> None:
    session = await get_session(request)
    session.invalidate()
    request[_VIEWER] = None


async def flash(request: web.Request, message: str) -> None:
    """A message shown once on the next page (after a redirect)."""
    session: WebSession = await get_session(request)
    session["flash"] = [*session.get("flash", []), message]


# ---- dependencies ----------------------------------------------------------------------------------


def viewer_of(request: web.Request) -> Viewer | None:
    found = request.get(_VIEWER)
    return found if isinstance(found, Viewer) else None


def csrf_token_of(request: web.Request) -> str:
    token = request.get(_CSRF_OF_REQUEST)
    return token if isinstance(token, str) else ""


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/")


async def require(request: web.Request, allowed: Roles = Roles.ANY) -> Viewer:
    """The signed-in viewer if their role is ``allowed``.

    Not signed in: pages redirect to ``/login?next=…`` (the API answers 401). Signed in with another role:
    403 with no data.
    """
    viewer = viewer_of(request)
    if viewer is None:
        if wants_json(request):
            raise web.HTTPUnauthorized(text='{"title": "sign in first"}', content_type="application/json")
        target = request.path_qs if request.method == "GET" else "/"
        raise web.HTTPFound(link(request, "/login", next=target))
    if not (viewer.roles & allowed):
        raise forbidden(request)
    return viewer


def require_department(
    request: web.Request, viewer: Viewer, department_id: int | None, *, co: frozenset[int] | set[int] = frozenset()
) -> None:
    """403 unless ``viewer`` may see a task or page of that department."""
    if not viewer.may_see(department_id, co=co):
        raise forbidden(request)


async def require_form(request: web.Request) -> Form:
    """The POSTed form, if it carries this session's CSRF token (compared in constant time) and, when the
    browser names an origin, comes from this site; 403 otherwise."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin.rstrip("/") not in _own_origins(request):
        raise forbidden(request, reason="csrf")
    form = await request.post()
    sent = form.get(CSRF_FIELD)
    expected = csrf_token_of(request)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise forbidden(request, reason="csrf")
    return form


def _own_origins(request: web.Request) -> set[str]:
    desk = desk_of(request)
    own = {f"{request.scheme}://{request.host}"}
    if desk.settings.public_url:
        from urllib.parse import urlsplit

        u = urlsplit(desk.settings.public_url)
        own.add(f"{u.scheme}://{u.netloc}")
    return own


def forbidden(request: web.Request, *, reason: str = "role") -> web.HTTPForbidden:
    """A 403 that says only that access is refused (no data of the page asked for)."""
    if wants_json(request):
        return web.HTTPForbidden(text='{"title": "forbidden"}', content_type="application/json")
    response = page(request, "forbidden.html", status=403, reason=reason)
    return web.HTTPForbidden(text=response.text, content_type="text/html", headers=_page_headers(response))


def _page_headers(response: web.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("Content-Type", "Content-Length")}


def form_text(form: Form, name: str) -> str:
    """A text field of a form, stripped ("" when absent or a file)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
