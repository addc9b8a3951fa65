"""Read-only views of reminders for the office: what is queued, and what a task will get."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from coordbot.plan.models import Contact, Plan, Role, Target, Task
from coordbot.plan.queries import task_quota_progress
from coordbot.plan.service import find_task
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import plan_policy, task_policy, task_schedule
from coordbot.scheduling.messages import reminder_text
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.scheduling.policy import plan_reminders


@dataclass(frozen=True)
class OccurrenceLine:
    fire_at: datetime
    status: str
    kind: str
    task_code: str | None
    contact: str
    detail: str


def list_occurrences(
    *,
    session: Session,
    status: str = "pending",
    due_before: datetime | None = None,
    task_code: str | None = None,
    plan_code: str | None = None,
    limit: int = 50,
) -> list[OccurrenceLine]:
    """The occurrences, soonest first; a task code is resolved first (a code in several plans needs
    ``plan_code``: :class:`coordbot.plan.service.TaskLookupError`)."""
    query = (
        select(ReminderOccurrence, Task.code, Contact.name)
        .join(Contact, col(Contact.id) == ReminderOccurrence.contact_id)
        .join(Task, col(Task.id) == ReminderOccurrence.task_id, isouter=True)
        .order_by(col(ReminderOccurrence.fire_at), col(ReminderOccurrence.id))
        .limit(limit)
    )
    if status != "all":
        query = query.where(ReminderOccurrence.status == status)
    if due_before is not None:
        query = query.where(ReminderOccurrence.fire_at < due_before)
    if task_code:
        task = find_task(session=session, code=task_code, plan_code=plan_code)
        query = query.where(col(ReminderOccurrence.task_id) == task.id)
    elif plan_code:
        query = query.where(Task.plan_id == select(Plan.id).where(Plan.code == plan_code).scalar_subquery())
    return [
        OccurrenceLine(o.fire_at, o.status, o.kind, code, name, o.detail or o.error)
        for o, code, name in session.exec(query).all()
    ]


@dataclass(frozen=True)
class Preview:
    fire_at: datetime
    kind: str
    recipients: list[str]
    text: str


def preview_task(
    *,
    session: Session,
    calendar: WorkCalendar,
    now: datetime,
    task_code: str,
    horizon: timedelta,
    locale: str = "zh",
    plan_code: str | None = None,
) -> list[Preview]:
    """What the policy will send for a task from now on, rendered as the contact would read it. A code in
    several plans needs ``plan_code`` (:class:`coordbot.plan.service.TaskLookupError`, a LookupError)."""
    task = find_task(session=session, code=task_code, plan_code=plan_code)
    plan = session.get(Plan, task.plan_id)
    assert plan is not None
    targets = session.exec(select(Target).where(Target.task_id == task.id, col(Target.archived_at).is_(None))).all()
    policy = task_policy(task, plan_policy(plan))
    planned = plan_reminders(
        task_schedule(task, plan, targets),
        policy,
        calendar,
        window_start=now,
        window_end=now + horizon,
        tz=plan.timezone,
    )
    recipients = [
        c.name
        for c in session.exec(
            select(Contact).where(
                Contact.department_id == task.lead_department_id, Contact.role == Role.CONTACT, Contact.active
            )
        )
    ]
    out = []
    for p in planned:
        quotas = task_quota_progress(session=session, task=task, today=p.fire_at.astimezone(calendar.tz).date())
        text = reminder_text(
            task=task,
            kind=p.kind,
            detail=p.detail,
            ref_date=p.ref_date,
            quotas=quotas,
            fire_at=p.fire_at,
            calendar=calendar,
            locale=locale,
        )
        out.append(Preview(p.fire_at, p.kind, recipients, text))
    return out
