"""The event log: every state change writes one append-only row in the same transaction as the change.

Handlers subscribe to event types in process; they are called only after the transaction that wrote the
event has committed, so they never act on something that was rolled back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, event, insert
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, Session, SQLModel

from coordbot.core.clock import utcnow
from coordbot.core.types import AwareDateTime

log = logging.getLogger("coordbot.events")


class EventType(StrEnum):
    """Every kind of event coordbot writes: one name per state change, in the log's ``type`` column."""

    TASK_ASSIGNED = "task.assigned"
    TASK_UPDATED = "task.updated"
    TASK_ARCHIVED = "task.archived"
    TASK_CLOSED = "task.closed"
    TASK_REPORTED_DONE = "task.reported_done"
    TASK_COLOUR_CHANGED = "task.colour_changed"
    TASK_ESCALATED = "task.escalated"
    TASK_OVERDUE = "task.overdue"
    TASK_BLOCKED = "task.blocked"
    EXTENSION_REQUESTED = "extension.requested"
    EXTENSION_APPROVED = "extension.approved"
    EXTENSION_REJECTED = "extension.rejected"
    CROSSREQUEST_OPENED = "crossrequest.opened"
    CROSSREQUEST_CLOSED = "crossrequest.closed"
    REMINDER_SCHEDULED = "reminder.scheduled"
    REMINDER_CANCELLED = "reminder.cancelled"
    REMINDER_SENT = "reminder.sent"
    REMINDER_FAILED = "reminder.failed"
    REMINDER_FALLBACK = "reminder.fallback"
    REMINDER_FOLDED = "reminder.folded"
    REMINDER_LEASE_EXPIRED = "reminder.lease_expired"
    PROGRESS_REPORTED = "progress.reported"
    PROGRESS_REVISED = "progress.revised"
    PROGRESS_UNDONE = "progress.undone"
    OBSERVATION_RECORDED = "observation.recorded"
    MEETING_RECORDED = "meeting.recorded"
    PLAN_IMPORTED = "plan.imported"
    INVITE_CREATED = "invite.created"
    CONTACT_BOUND = "contact.bound"
    CONTACT_UNREACHABLE = "contact.unreachable"
    DIGEST_QUEUED = "digest.queued"
    DIGEST_COMPILED = "digest.compiled"
    BRIEFING_ISSUED = "briefing.issued"
    REPORT_SENT = "report.sent"


class Event(SQLModel, table=True):
    __table_args__ = (
        Index("ix_event_type_at", "type", "at"),
        Index("ix_event_task_at", "task_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    type: str = Field(max_length=48)
    plan_id: int | None = Field(default=None, foreign_key="plan.id", index=True)
    task_id: int | None = Field(default=None, foreign_key="task.id")
    department_id: int | None = Field(default=None, foreign_key="department.id")
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    actor: str = Field(default="system", max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


Handler = Callable[[Event], None]
_handlers: dict[str, list[Handler]] = defaultdict(list)
_PENDING = "coordbot_pending_events"


def subscribe(event_type: EventType | str, handler: Handler) -> Callable[[], None]:
    """Call ``handler`` after each committed event of ``event_type`` (``"*"`` for all); returns an unsubscriber."""
    _handlers[event_type].append(handler)
    return lambda: _handlers[event_type].remove(handler)


def record(
    session: Session,
    type: EventType,
    *,
    at: datetime | None = None,
    plan_id: int | None = None,
    task_id: int | None = None,
    department_id: int | None = None,
    contact_id: int | None = None,
    actor: str = "system",
    **payload: Any,
) -> Event:
    """Add an event to the session's transaction (it is written when the change is)."""
    ev = Event(
        type=type,
        at=at or utcnow(),
        plan_id=plan_id,
        task_id=task_id,
        department_id=department_id,
        contact_id=contact_id,
        actor=actor,
        payload=_jsonable(payload),
    )
    session.add(ev)
    session.info.setdefault(_PENDING, []).append(ev)
    return ev


_COLUMNS = ("plan_id", "task_id", "department_id", "contact_id")


def record_many(
    session: Session,
    type: EventType,
    rows: Iterable[dict[str, Any]],
    *,
    at: datetime | None = None,
    actor: str = "system",
) -> int:
    """Add many events of one type with one executemany INSERT instead of an ORM object each (the sent
    reminders of a batch); each row holds ``record``'s keyword arguments: the id columns, the rest payload.

    Written at once on the session's connection, in its transaction (rolled back with it); subscribers are
    still called after the commit, with events built only when someone listens (their ``id`` is None)."""
    when = at or utcnow()
    params = [
        {
            "at": when,
            "type": type,
            "actor": actor,
            **{k: row.get(k) for k in _COLUMNS},
            "payload": _jsonable({k: v for k, v in row.items() if k not in _COLUMNS}),
        }
        for row in rows
    ]
    if not params:
        return 0
    session.connection().execute(insert(Event.__table__), params)  # type: ignore[attr-defined]
    if _handlers.get(type) or _handlers.get("*"):
        session.info.setdefault(_PENDING, []).extend(Event(**p) for p in params)
    return len(params)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def dispatch(committed: list[Event]) -> None:
    """Call the subscribers of these committed events (after a commit here, or one in a worker process)."""
    for ev in committed:
        for handler in (*_handlers.get(ev.type, ()), *_handlers.get("*", ())):
            try:
                handler(ev)
            except Exception:  # one faulty subscriber must not break the others or the caller
                log.exception("event handler %r failed for %s", handler, ev.type)


def snapshot(ev: Event) -> dict[str, Any]:
    """A committed event as plain data, to be rebuilt with ``Event(**data)`` in another process."""
    return ev.model_dump()


@event.listens_for(OrmSession, "after_commit")
def _dispatch_after_commit(session: OrmSession) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        dispatch(pending)


@event.listens_for(OrmSession, "after_rollback")
def _drop_after_rollback(session: OrmSession) -> None:
    session.info.pop(_PENDING, None)
