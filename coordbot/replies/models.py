"""Inbound messages, stored once each: the de-duplication key of every channel's updates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
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
