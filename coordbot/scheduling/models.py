"""Reminder occurrences: one row per reminder to send, the durable source of truth for the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from coordbot.core.clock import utcnow
from coordbot.core.types import AwareDateTime


class OccurrenceStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReminderKind(StrEnum):
    BEFORE_DUE = "before_due"
    DUE_TODAY = "due_today"
    OVERDUE = "overdue"
    PERIODIC = "periodic"
    CHECKPOINT = "checkpoint"
    EVENT_AHEAD = "event_ahead"
    ESCALATION = "escalation"  # 督办: to a leader or the office
    CROSS_REQUEST = "cross_request"  # another department asks this one for help
    CATCH_UP = "catch_up"  # one message folding reminders missed during downtime
    NOTICE = "notice"  # a message to the office (delivery failures, extension requests …)


class ReminderOccurrence(SQLModel, table=True):
    __tablename__ = "reminder_occurrence"
    __table_args__ = (
        UniqueConstraint("task_id", "contact_id", "kind", "fire_at", name="uq_reminder_key"),
        Index("ix_reminder_due", "status", "fire_at"),
        Index("ix_reminder_task_status", "task_id", "status"),
        Index("ix_reminder_sent", "status", "sent_at"),  # reminders sent in a period (roll-ups)
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int | None = Field(default=None, foreign_key="plan.id")
    task_id: int | None = Field(default=None, foreign_key="task.id")
    contact_id: int = Field(foreign_key="contact.id", index=True)
    kind: str = Field(max_length=24)
    fire_at: datetime = Field(sa_type=AwareDateTime(), nullable=False)
    ref_date: date | None = None
    detail: str = ""
    body: str = ""  # for notices and escalations: text decided when the row was made
    status: str = Field(default=OccurrenceStatus.PENDING, max_length=16)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    sent_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    channel: str | None = Field(default=None, max_length=32)
    message_ref: str | None = Field(default=None, max_length=128, index=True)
    error: str = ""
    folded_into_id: int | None = Field(default=None, foreign_key="reminder_occurrence.id")
    route: int = 0  # 0: the contact's preferred address; n: its n-th further address (after a fallback)
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)


@dataclass(frozen=True)
class Claimed:
    """An occurrence claimed by this process for sending: what the engine and the message builder need of it."""

    id: int
    kind: str
    contact_id: int
    task_id: int | None
    fire_at: datetime
    attempts: int
    folded: tuple[int, ...] = ()  # for a catch-up message: the occurrences it stands for
