"""Changes to a task's state that people ask for: extensions (延期), closing (销号), acknowledging (签收).

Keyword-only functions over a session; each writes its event in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TypedDict

from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.clock import utcnow
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.plan.models import Assignment, Contact, Extension, Task, TaskDepartment, TaskStatus
from coordbot.plan.progress import Assessment, QuotaProgress, assess


class _Where(TypedDict):
    """Where and when a task's event happened (the leading keyword arguments of ``events.record``)."""

    at: datetime
    plan_id: int
    task_id: int | None
    department_id: int


class ActionError(ValueError):
    """The action is not allowed or makes no sense; the message says why, for the person who asked."""


def request_extension(
    *, session: Session, task: Task, new_due: date, reason: str, contact: Contact | None, now: datetime | None = None
) -> Extension:
    now = now or utcnow()
    if not reason.strip():
        raise ActionError("an extension request needs a reason")
    if task.due_date is not None and new_due <= task.due_date:
        raise ActionError(f"the new deadline {new_due} must be later than the current one {task.due_date}")
    pending = session.exec(
        select(Extension).where(Extension.task_id == task.id, Extension.status == "requested")
    ).first()
    if pending is not None:
        raise ActionError(f"an extension to {pending.new_due} is already waiting for the office's decision")
    ext = Extension(
        task_id=row_id(task),
        requested_by_id=contact.id if contact else None,
        requested_at=now,
        old_due=task.due_date,
        new_due=new_due,
        reason=reason.strip(),
    )
    session.add(ext)
    session.flush()
    task.status = TaskStatus.EXTENSION_REQUESTED
    task.updated_at = now
    events.record(
        session,
        EventType.EXTENSION_REQUESTED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        department_id=task.lead_department_id,
        contact_id=contact.id if contact else None,
        extension=ext.id,
        old_due=task.due_date,
        new_due=new_due,
        reason=ext.reason,
    )
    return ext


def decide_extension(
    *, session: Session, extension: Extension, approve: bool, decided_by: str, now: datetime | None = None
) -> Extension:
    """Only the office decides. Approval moves the deadline; the original deadline stays on the task."""
    now = now or utcnow()
    if extension.status != "requested":
        raise ActionError(f"this extension was already {extension.status}")
    task = session.get(Task, extension.task_id)
    assert task is not None
    extension.status = "approved" if approve else "rejected"
    extension.decided_by = decided_by
    extension.decided_at = now
    if approve:
        if task.original_due_date is None:
            task.original_due_date = task.due_date
        task.due_date = extension.new_due
    if task.status == TaskStatus.EXTENSION_REQUESTED:
        task.status = TaskStatus.IN_PROGRESS
    task.updated_at = now
    events.record(
        session,
        EventType.EXTENSION_APPROVED if approve else EventType.EXTENSION_REJECTED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        department_id=task.lead_department_id,
        actor=decided_by,
        extension=extension.id,
        old_due=extension.old_due,
        new_due=extension.new_due,
        original_due=task.original_due_date,
    )
    return extension


def close_task(*, session: Session, task: Task, actor: str, now: datetime | None = None) -> None:
    """销号: the office confirms a task reported done."""
    now = now or utcnow()
    if task.status == TaskStatus.CLOSED:
        raise ActionError(f"task {task.code} is already closed")
    if task.status != TaskStatus.REPORTED_DONE:
        raise ActionError(f"task {task.code} has not been reported done yet (status: {task.status})")
    task.status = TaskStatus.CLOSED
    task.progress = 100
    task.updated_at = now
    events.record(
        session,
        EventType.TASK_CLOSED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        department_id=task.lead_department_id,
        actor=actor,
    )


def pending_extensions(*, session: Session) -> list[Extension]:
    return list(session.exec(select(Extension).where(Extension.status == "requested").order_by(col(Extension.id))))


def recolour(
    *,
    session: Session,
    task: Task,
    quotas: Sequence[QuotaProgress],
    today: date,
    workdays_until_due: int | None,
    last_report_status: str | None,
    now: datetime,
    workdays_unanswered: int | None = None,
) -> tuple[Assessment, bool]:
    """Apply the colour rules; a change writes task.colour_changed (and task.overdue when it turns overdue).

    Returns the assessment and whether the colour or its reason changed.
    """
    a = assess(
        task,
        quotas,
        today=today,
        workdays_until_due=workdays_until_due,
        last_report_status=last_report_status,
        workdays_unanswered=workdays_unanswered,
    )
    if (a.colour, a.reason) == (task.colour, task.colour_reason):
        return a, False
    where = _Where(at=now, plan_id=task.plan_id, task_id=task.id, department_id=task.lead_department_id)
    events.record(session, EventType.TASK_COLOUR_CHANGED, **where, old=task.colour, new=a.colour, reason=a.reason)
    if a.overdue and task.colour_reason != "overdue":
        events.record(session, EventType.TASK_OVERDUE, **where, due=task.due_date)
    task.colour, task.colour_reason = a.colour, a.reason
    return a, True


def confirm_assignment(*, session: Session, task: Task, actor: str, now: datetime | None = None) -> list[str]:
    """The office confirms the departments the plan file only proposed (lead and co-departments).

    Returns what was confirmed (``lead`` and/or the co-departments' ids as text); writes task.updated.
    """
    now = now or utcnow()
    confirmed: list[str] = []
    if task.assignment == Assignment.PROPOSED:
        task.assignment = Assignment.CONFIRMED
        confirmed.append("lead")
    for row in session.exec(
        select(TaskDepartment).where(
            TaskDepartment.task_id == task.id, TaskDepartment.assignment == Assignment.PROPOSED
        )
    ):
        row.assignment = Assignment.CONFIRMED
        confirmed.append(str(row.department_id))
    if not confirmed:
        raise ActionError(f"task {task.code} has no proposed department to confirm")
    task.updated_at = now
    events.record(
        session,
        EventType.TASK_UPDATED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        department_id=task.lead_department_id,
        actor=actor,
        code=task.code,
        changes={"assignment": [Assignment.PROPOSED.value, Assignment.CONFIRMED.value]},
        confirmed=confirmed,
    )
    return confirmed
