"""Report tables: weekly digests and joint-meeting briefings (the meetings themselves are plan facts)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from coordbot.core.clock import utcnow
from coordbot.core.types import AwareDateTime


class Digest(SQLModel, table=True):
    """One compiled weekly digest (or leaders' summary); ``stats`` lets the next one say what changed."""

    __table_args__ = (UniqueConstraint("plan_id", "kind", "label", name="uq_digest_plan_kind_label"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    kind: str = Field(default="weekly", max_length=16)  # weekly | summary
    label: str = Field(max_length=32)  # ISO week, e.g. 2026-W48
    period_start: date
    period_end: date
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    content_sha256: str = Field(default="", max_length=64)
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    path: str = ""
    sent_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)


class Briefing(SQLModel, table=True):
    """One issued joint-meeting briefing (联席会议简报) in one format."""

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    meeting_date: date
    period_start: date
    period_end: date
    format: str = Field(max_length=8)  # docx | html | md
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    content_sha256: str = Field(default="", max_length=64)
    path: str = ""
    sent_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
