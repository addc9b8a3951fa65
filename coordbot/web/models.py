"""The desk's tables: one-time sign-in links (only a hash of each is kept), the office's passwords and the
API's bearer tokens (hashed)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from coordbot.core.clock import utcnow
from coordbot.core.types import AwareDateTime


class WebSignin(SQLModel, table=True):
    """A sign-in link sent over a contact's channel: single use, expiring; the link itself is never stored."""

    __tablename__ = "web_signin"

    id: int | None = Field(default=None, primary_key=True)
    nonce_hash: str = Field(unique=True, max_length=64)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    expires_at: datetime = Field(sa_type=AwareDateTime(), nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)


class WebPassword(SQLModel, table=True):
    """An office contact's desk password, as an argon2 hash (set with the CLI)."""

    __tablename__ = "web_password"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True)
    password_hash: str = Field(max_length=255)
    set_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)


class ApiToken(SQLModel, table=True):
    """A machine client's bearer token for the JSON API (office or leader), as a SHA-256 hash (created with
    ``coordbot web token create``); the token itself is shown once."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=48)
    role: str = Field(max_length=16)
    token_hash: str = Field(unique=True, max_length=64)
    created_by: str = Field(default="cli", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    last_used_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
