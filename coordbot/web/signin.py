"""Signing in to the desk: a one-time link sent over the person's own channel, or (the office) a password.

The link is ``/login/<contact>.<expires>.<nonce>.<hmac>``: HMAC-SHA256 over the first three parts with a key
derived from ``web_secret``, so a forged or altered link is refused before the database is asked; a hash of
the nonce is kept in ``web_signin`` so that each link signs in once. Opening the link shows a button
(chat apps fetch links to preview them: a GET must not use the link up); pressing it signs in.

Passwords (office contacts only, set by the CLI with :func:`set_password`) are argon2id hashes
(``argon2-cffi``), re-hashed on sign-in when the parameters change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from coordbot.core.db import row_id
from coordbot.core.text import render
from coordbot.plan.models import Contact, Department, Role
from coordbot.scheduling.models import ReminderKind
from coordbot.scheduling.outbox import add_occurrence
from coordbot.web.auth import (
    Viewer,
    form_text,
    require_form,
    sign_in,
    sign_out,
    viewer_from_contact,
    viewer_of,
)
from coordbot.web.desk import Desk, desk_of, in_db, link, page, words
from coordbot.web.models import WebPassword, WebSignin

LINK_TTL = timedelta(minutes=15)
RESEND_AFTER = timedelta(minutes=1)  # a second request within this time sends no second link
NONCE_BYTES = 16
MIN_PASSWORD = 12
SIGNIN_ROLES = (Role.CONTACT, Role.LEADER, Role.OFFICE)
_hasher = PasswordHasher()


class SignInError(ValueError):
    """Why a sign-in link does not sign in: ``reason`` is invalid, expired, used or inactive."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---- links -----------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


def issue_link_token(
    *, session: Session, desk: Desk, contact: Contact, now: datetime, ttl: timedelta = LINK_TTL
) -> str:
    """A new one-time sign-in token for ``contact`` (the caller sends it; only its hash is stored)."""
    nonce = secrets.token_urlsafe(NONCE_BYTES)
    expires = now + ttl
    row = WebSignin(nonce_hash=_nonce_hash(nonce), contact_id=row_id(contact), created_at=now, expires_at=expires)
    session.add(row)
    session.flush()
    body = f"{row_id(contact)}.{int(expires.timestamp())}.{nonce}"
    return f"{body}.{_signature(desk.key('signin'), body)}"


@dataclass(frozen=True, slots=True)
class _Parsed:
    contact_id: int
    expires: int
    nonce: str


def _parse(desk: Desk, token: str) -> _Parsed:
    parts = token.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit() or len(token) > 200:
        raise SignInError("invalid")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(_signature(desk.key("signin"), body).encode(), parts[3].encode("ascii", "replace")):
        raise SignInError("invalid")
    return _Parsed(int(parts[0]), int(parts[1]), parts[2])


def check_link_token(*, session: Session, desk: Desk, token: str, now: datetime) -> tuple[WebSignin, Contact]:
    """The link's row and contact if it may still sign in; :class:`SignInError` saying why not otherwise."""
    parsed = _parse(desk, token)
    row = session.exec(select(WebSignin).where(WebSignin.nonce_hash == _nonce_hash(parsed.nonce))).first()
    if row is None or row.contact_id != parsed.contact_id:
        raise SignInError("invalid")
    if row.used_at is not None:
        raise SignInError("used")
    if row.expires_at <= now or parsed.expires <= now.timestamp():
        raise SignInError("expired")
    contact = session.get(Contact, row.contact_id)
    if contact is None or viewer_from_contact(contact) is None:
        raise SignInError("inactive")
    return row, contact


def use_link_token(*, session: Session, desk: Desk, token: str, now: datetime) -> Viewer:
    """Sign in with a link: it is marked used (once, even under concurrent requests) and the viewer returned."""
    row, contact = check_link_token(session=session, desk=desk, token=token, now=now)
    done = session.execute(
        update(WebSignin).where(col(WebSignin.id) == row.id, col(WebSignin.used_at).is_(None)).values(used_at=now)
    )
    if getattr(done, "rowcount", 1) != 1:
        raise SignInError("used")
    viewer = viewer_from_contact(contact)
    assert viewer is not None  # checked above
    return viewer


def find_contact(*, session: Session, department: str, name: str) -> Contact | None:
    """The active contact, leader or office person of that department (code, name, short name or alias)."""
    # Several organisations may use the code or name: the person is the one contact of that name among them.
    depts = list(
        session.exec(
            select(Department).where(
                or_(
                    col(Department.code) == department,
                    col(Department.name) == department,
                    col(Department.short_name) == department,
                )
            )
        )
    )
    if not depts:
        depts = [d for d in session.exec(select(Department)) if department in (d.aliases or [])]
    if not depts:
        return None
    found = session.exec(
        select(Contact).where(
            col(Contact.department_id).in_([d.id for d in depts]),
            Contact.name == name,
            Contact.active,
            col(Contact.role).in_([str(r) for r in SIGNIN_ROLES]),
        )
    ).all()
    # The same person may hold two roles in one department (a first match, as before); two departments: nobody.
    return found[0] if len({c.department_id for c in found}) == 1 else None


def send_link(*, session: Session, desk: Desk, contact: Contact, base_url: str, now: datetime) -> bool:
    """Queue a sign-in link to the contact's channel (the reminder outbox); False when none can be sent now
    (no bound address, or a link went out less than a minute ago)."""
    if not contact.address:
        return False
    recent = session.exec(
        select(WebSignin).where(
            WebSignin.contact_id == contact.id,
            col(WebSignin.used_at).is_(None),
            WebSignin.created_at > now - RESEND_AFTER,
        )
    ).first()
    if recent is not None:
        return False
    token = issue_link_token(session=session, desk=desk, contact=contact, now=now)
    body = render(
        "web/signin_notice.txt",
        locale=contact.language or desk.settings.locale,
        url=f"{base_url}/login/{token}",
        minutes=int(LINK_TTL.total_seconds() // 60),
    ).strip()
    add_occurrence(session=session, contact_id=row_id(contact), kind=ReminderKind.NOTICE, fire_at=now, body=body)
    return True


# ---- passwords -------------------------------------------------------------------------------------


def set_password(*, session: Session, contact: Contact, password: str, now: datetime) -> None:
    """Set (or replace) an office contact's desk password; ValueError if it is not the office or too short."""
    if contact.role != Role.OFFICE:
        raise ValueError("only the office signs in with a password; others get a link on their channel")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a desk password needs at least {MIN_PASSWORD} characters")
    row = session.get(WebPassword, row_id(contact))
    if row is None:
        row = WebPassword(contact_id=row_id(contact), password_hash="", set_at=now)
        session.add(row)
    row.password_hash, row.set_at = _hasher.hash(password), now
    session.flush()


def check_password(*, session: Session, contact: Contact, password: str) -> bool:
    """Whether ``password`` is the office contact's; the hash is upgraded when argon2's parameters changed."""
    row = session.get(WebPassword, row_id(contact)) if contact.role == Role.OFFICE else None
    if row is None:
        _hasher.hash(password)  # about the same time as a real check: no hint that there is no password
        return False
    try:
        _hasher.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)
    return True


# ---- pages -----------------------------------------------------------------------------------------


def _next(request: web.Request, value: str) -> str:
    """Only a path on this site (never //elsewhere or a full URL)."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


async def login_page(request: web.Request) -> web.Response:
    if viewer_of(request) is not None and "next" not in request.query:
        raise web.HTTPFound(link(request, "/"))
    return page(request, "login.html", next=_next(request, request.query.get("next", "/")))


async def login_request(request: web.Request) -> web.Response:
    """POST /login: department and name; a link goes to the person's channel if they are a bound contact."""
    form = await require_form(request)
    values = {"department": form_text(form, "department"), "name": form_text(form, "name")}
    w = words(_locale(request))["login"]
    errors = {k: w[f"need_{k}"] for k, v in values.items() if not v}
    if errors:
        return page(request, "login.html", status=400, errors=errors, values=values, next="/")
    desk = desk_of(request)
    base = desk.base_url(request)

    def send(session: Session) -> None:
        contact = find_contact(session=session, department=values["department"], name=values["name"])
        if contact is not None:
            send_link(session=session, desk=desk, contact=contact, base_url=base, now=desk.now())

    await in_db(request, send)
    # The same answer whether or not the person exists: the form does not tell who is a contact.
    return page(request, "login_sent.html")


async def login_link(request: web.Request) -> web.Response:
    """GET /login/<token>: says whether the link still works and offers the button that uses it."""
    desk, token = desk_of(request), request.match_info["token"]
    try:
        _, contact = await in_db(request, lambda s: check_link_token(session=s, desk=desk, token=token, now=desk.now()))
    except SignInError as exc:
        return _link_failed(request, exc.reason)
    return page(request, "login_link.html", token=token, name=contact.name)


async def login_link_use(request: web.Request) -> web.Response:
    """POST /login/<token>: uses the link up and starts the session."""
    await require_form(request)
    desk, token = desk_of(request), request.match_info["token"]
    try:
        viewer = await in_db(request, lambda s: use_link_token(session=s, desk=desk, token=token, now=desk.now()))
    except SignInError as exc:
        return _link_failed(request, exc.reason)
    await sign_in(request, viewer)
    raise web.HTTPSeeOther(link(request, "/"))


def _link_failed(request: web.Request, reason: str) -> web.Response:
    status = {"expired": 410, "used": 410, "inactive": 403}.get(reason, 400)
    return page(request, "login_failed.html", status=status, reason=reason)


async def login_password(request: web.Request) -> web.Response:
    """POST /login/password: the office's department, name and password."""
    form = await require_form(request)
    values = {"department": form_text(form, "department"), "name": form_text(form, "name")}
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    w = words(_locale(request))["login"]
    errors = {k: w[f"need_{k}"] for k, v in values.items() if not v}
    if not password:
        errors["password"] = w["need_password"]
    if errors:
        return page(request, "login.html", status=400, errors=errors, values=values, pw=True, next="/")

    def check(session: Session) -> Viewer | None:
        contact = find_contact(session=session, department=values["department"], name=values["name"])
        if contact is None:
            _hasher.hash(password)  # the same time as a wrong password
            return None
        if not check_password(session=session, contact=contact, password=password):
            return None
        return viewer_from_contact(contact)

    viewer = await in_db(request, check)
    if viewer is None:
        errors = {"password": w["wrong_password"]}
        return page(request, "login.html", status=403, errors=errors, values=values, pw=True, next="/")
    await sign_in(request, viewer)
    raise web.HTTPSeeOther(link(request, _next(request, form_text(form, "next") or "/")))


async def logout(request: web.Request) -> web.Response:
    await require_form(request)
    await sign_out(request)
    raise web.HTTPSeeOther(link(request, "/login"))


def _locale(request: web.Request) -> str:
    from coordbot.web.desk import locale_of

    return locale_of(request)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/login", login_page),
        web.post("/login", login_request),
        web.post("/login/password", login_password),
        web.get("/login/{token}", login_link),
        web.post("/login/{token}", login_link_use),
        web.post("/logout", logout),
    ]
