"""Bearer tokens for machine clients of the JSON API (``Authorization: Bearer <token>``).

A token is 32 random bytes (``coordbot_<base64url>``), shown once by ``coordbot web token create``; only its
SHA-256 is kept (a random token needs no slow hash: there is nothing to guess), in ``api_token``. A token acts
with the role it was created for, office or leader, and the events it writes name it: ``actor="api:<name>"``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from coordbot.core.db import row_id
from coordbot.plan.models import Role
from coordbot.web.auth import Viewer
from coordbot.web.models import ApiToken

PREFIX = "coordbot_"
TOKEN_ROLES = (str(Role.OFFICE), str(Role.LEADER))
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
TOUCH_EVERY = timedelta(minutes=5)  # last_used_at is written at most this often per token
MAX_TOKEN = 128


@dataclass(frozen=True, slots=True)
class TokenViewer(Viewer):
    """A machine client signed in by a bearer token: the token's role, no contact behind it."""

    token_id: int = 0

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(*, session: Session, name: str, role: str, now: datetime, created_by: str = "cli") -> str:
    """A new token for ``name`` with ``role`` (office or leader); ValueError for a bad or taken name or role.
    Returns the token: it is not stored and cannot be shown again."""
    if not NAME.match(name):
        raise ValueError("a token name is 1-48 letters, digits, dots, dashes or underscores, starting with one")
    if role not in TOKEN_ROLES:
        raise ValueError(f"a token's role is one of {', '.join(TOKEN_ROLES)}")
    if session.exec(select(ApiToken).where(ApiToken.name == name)).first() is not None:
        raise ValueError(f"a token named {name!r} exists already (names are not reused)")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role, token_hash=token_hash(token), created_by=created_by, created_at=now))
    session.flush()
    return token


def revoke_token(*, session: Session, name: str, now: datetime) -> bool:
    """Revoke the token ``name`` at once (the row stays, for the record: its name is not given again);
    False when there is no such live token."""
    row = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    session.flush()
    return True


def list_tokens(*, session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.name))))


def viewer_of_token(*, session: Session, token: str, now: datetime) -> TokenViewer | None:
    """The viewer a bearer token stands for, or None for an unknown, revoked or malformed token."""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN:
        return None
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).first()
    if row is None or row.revoked_at is not None or row.role not in TOKEN_ROLES:
        return None
    if row.last_used_at is None or row.last_used_at < now - TOUCH_EVERY:
        session.execute(update(ApiToken).where(col(ApiToken.id) == row.id).values(last_used_at=now))
    return TokenViewer(contact_id=0, role=row.role, department_id=0, name=row.name, token_id=row_id(row))
