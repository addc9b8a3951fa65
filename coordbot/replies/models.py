"""Progress reports (进展报送) and the inbound messages they come from."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from coordbot.core.clock import utcnow
from coordbot.core.types import AwareDateTime


class InboundMessage(SQLModel, table=True):
    """Every update a channel delivers, once: the unique key makes redelivery and a second instance harmless."""

    __tablename__ = "inbound_message"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_inbound_channel_external"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=64)  # Telegram: update_id
    received_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    chat_id: str = Field(default="", max_length=64)
    sender_id: str = Field(default="", max_length=64)
    kind: str = Field(default="message", max_length=24)  # message | edited | callback | command
    text: str = ""


class ProgressReport(SQLModel, table=True):
    """One reply about a task: the raw text is kept; what was understood sits beside it."""

    __tablename__ = "progress_report"
    __table_args__ = (
        Index("ix_report_task_received", "task_id", "received_at"),
        Index("ix_report_received", "received_at"),  # a period's reports, whatever the plan's size (roll-ups)
        Index("ix_report_source_ref", "source_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id")
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    department_id: int = Field(foreign_key="department.id", index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    text: str = ""
    source: str = Field(default="chat", max_length=16)  # chat | button | command | cli
    source_ref: str | None = Field(default=None, max_length=128)  # channel message (chat:message) for edits
    reminder_id: int | None = Field(default=None, foreign_key="reminder_occurrence.id")
    status: str | None = Field(default=None, max_length=24)  # what the report says, in TaskStatus words
    percent: int | None = None
    expected_date: date | None = None
    parsed: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    previous: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # for undo
    superseded_by_id: int | None = Field(default=None, foreign_key="progress_report.id")
    voided: bool = False  # undone by the contact


class CrossRequest(SQLModel, table=True):
    """A department asks another for help on a task (需区财政局配合); the helper gets reminders of its own."""

    __tablename__ = "cross_request"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    from_department_id: int = Field(foreign_key="department.id")
    to_department_id: int = Field(foreign_key="department.id", index=True)
    report_id: int | None = Field(default=None, foreign_key="progress_report.id")
    text: str = ""
    status: str = Field(default="open", max_length=16)  # open | answered | closed
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    closed_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
