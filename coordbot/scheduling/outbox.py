"""The outbox: messages queued for a contact as reminder occurrences, which the engine then claims and sends.

Every message coordbot sends on its own initiative is a row of ``reminder_occurrence`` first, written in the
transaction that decided to send it, so it goes out once that transaction commits and never otherwise. The
policy's reminders are queued by ``engine.sync_reminders``; everything else (escalations, notices, digests,
cross-department requests) by :func:`add_occurrence`. Rows are unique on (task, contact, kind, fire_at), so
queueing the same message twice queues it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from html import escape
from typing import Any

from sqlmodel import Session, col, select

from coordbot.core.db import insert_or_ignore, row_id
from coordbot.plan.models import Contact, Role
from coordbot.scheduling.models import OccurrenceStatus, ReminderKind, ReminderOccurrence

OCCURRENCE_KEY = ("task_id", "contact_id", "kind", "fire_at")


def insert_occurrences(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert occurrence rows (column name -> value), skipping those already queued; returns how many were new."""
    if not rows:
        return 0
    # Core INSERT on the table with a list of parameters: SQLAlchemy batches it ("insertmanyvalues") with
    # one cached statement, instead of compiling a giant multi-VALUES statement per chunk.
    # sqlmodel's types declare no __table__ on table models (SQLAlchemy's mapping sets it)
    table = ReminderOccurrence.__table__  # type: ignore[attr-defined]
    stmt = insert_or_ignore(session, table, key=OCCURRENCE_KEY).returning(table.c.id)
    return len(session.connection().execute(stmt, list(rows)).all())  # rowcount is unreliable here


def add_occurrence(
    *,
    session: Session,
    contact_id: int,
    kind: ReminderKind,
    fire_at: datetime,
    task_id: int | None = None,
    plan_id: int | None = None,
    body: str = "",
    detail: str = "",
    ref_date: date | None = None,
    html: bool = False,
) -> None:
    """Queue one message outside the policy (escalation, notice, cross-department request); idempotent.

    The stored body is in the channels' text format (Telegram's HTML subset): a plain ``body`` (names, titles
    and errors that may hold ``<`` or ``&``) is escaped here; ``html=True`` says it was rendered as HTML already.
    """
    if not html:
        body = escape(body, quote=False)
    row = {
        "plan_id": plan_id,
        "task_id": task_id,
        "contact_id": contact_id,
        "kind": str(kind),
        "fire_at": fire_at,
        "ref_date": ref_date,
        "detail": detail,
        "body": body,
        "status": OccurrenceStatus.PENDING,
        "attempts": 0,
        "error": "",
        "created_at": fire_at,
    }
    insert_occurrences(session, [row])


def notify_office(*, session: Session, now: datetime, body: str, task_id: int | None = None) -> int:
    """Queue a notice to every bound office contact, to go out now; returns how many were queued."""
    office = session.exec(
        select(Contact).where(Contact.role == Role.OFFICE, Contact.active, col(Contact.address).is_not(None))
    ).all()
    for c in office:
        add_occurrence(
            session=session,
            contact_id=row_id(c),
            kind=ReminderKind.NOTICE,
            fire_at=now,
            body=body,
            task_id=task_id,
        )
    return len(office)
