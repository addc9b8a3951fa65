"""督办: keep every open task's colour current and escalate silence or red up the ladder.

Level 1 is the lead department's leader, level 2 the office. A task escalates when its contact has let
``escalate_after_unanswered`` reminders pass without a report (level 1; twice that: level 2), or when it
turns red (level 1 at once). A progress report resets the ladder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.core.text import render
from coordbot.plan.actions import recolour
from coordbot.plan.models import (
    OPEN_STATUSES,
    Contact,
    Department,
    Plan,
    Role,
    Task,
)
from coordbot.plan.queries import latest_reports, tasks_quota_progress
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import POLICY_KINDS, plan_policy, task_policy
from coordbot.scheduling.models import OccurrenceStatus, ReminderKind, ReminderOccurrence
from coordbot.scheduling.outbox import add_occurrence


@dataclass
class ReviewReport:
    recoloured: int = 0
    overdue: int = 0
    escalated: int = 0


def review_tasks(*, session: Session, calendar: WorkCalendar, now: datetime) -> ReviewReport:
    """Recolour open tasks and escalate where the ladder says so; events in the same transaction."""
    report = ReviewReport()
    for plan in session.exec(select(Plan)).all():
        base = plan_policy(plan)
        today = now.astimezone(calendar.tz).date()
        tasks = session.exec(
            select(Task).where(
                Task.plan_id == plan.id, col(Task.archived_at).is_(None), col(Task.status).in_(OPEN_STATUSES)
            )
        ).all()
        if not tasks:
            continue
        quotas_by_task = tasks_quota_progress(session=session, tasks=tasks, today=today)
        latest = latest_reports(session=session, task_ids=[row_id(t) for t in tasks])
        contacts = session.exec(select(Contact).where(Contact.active, col(Contact.address).is_not(None))).all()
        by_role: dict[tuple[int, str], list[Contact]] = defaultdict(list)
        for c in contacts:
            by_role[(c.department_id, c.role)].append(c)
        office = [c for c in contacts if c.role == Role.OFFICE]
        sent_counts = _unanswered_counts(session, tasks)
        # One 督办 message per recipient per review, listing every task: a leader is not sent ten messages.
        outbox: dict[int, list[dict]] = defaultdict(list)
        recipients_by_id: dict[int, Contact] = {}
        departments = {d.id: d for d in session.exec(select(Department))}

        for task in tasks:
            task_id = row_id(task)
            until_due = calendar.workdays_between(today, task.due_date) if task.due_date else None
            was_overdue = task.colour_reason == "overdue"
            a, changed = recolour(
                session=session,
                task=task,
                quotas=quotas_by_task[task_id],
                today=today,
                workdays_until_due=until_due,
                last_report_status=latest[task.id].status if task.id in latest else None,
                now=now,
            )
            if changed:
                report.recoloured += 1
                report.overdue += a.overdue and not was_overdue

            n = task_policy(task, base).escalate_after_unanswered
            unanswered = sent_counts.get(task_id, 0)
            level = 2 if unanswered >= 2 * n else 1 if unanswered >= n else 0
            reason = "unanswered" if level else ""
            if task.colour == "red" and level < 1:
                level, reason = 1, "red"
            if level <= task.escalation_level:
                continue
            dept = departments[task.lead_department_id]
            for step in range(task.escalation_level + 1, level + 1):
                recipients = by_role[(task.lead_department_id, Role.LEADER)] if step == 1 else office
                if step == 1 and not recipients:
                    recipients = office  # no leader bound yet: the office hears of it instead
                item = {
                    "department": dept.short_name or dept.name,
                    "task": task,
                    "reason": reason,
                    "count": unanswered,
                    "colour_reason": task.colour_reason,
                    "level": step,
                }
                for c in recipients:
                    outbox[row_id(c)].append(item)
                    recipients_by_id[row_id(c)] = c
                events.record(
                    session,
                    EventType.TASK_ESCALATED,
                    at=now,
                    plan_id=plan.id,
                    task_id=task.id,
                    department_id=task.lead_department_id,
                    level=step,
                    reason=reason,
                    unanswered=unanswered,
                    recipients=[c.id for c in recipients],
                )
                report.escalated += 1
            task.escalation_level = level
        for contact_id, items in outbox.items():
            c = recipients_by_id[contact_id]
            body = render("escalation.txt.j2", locale=c.language, items=items, level=max(i["level"] for i in items))
            add_occurrence(
                session=session,
                contact_id=contact_id,
                kind=ReminderKind.ESCALATION,
                plan_id=plan.id,
                fire_at=calendar.next_send_time(now),
                body=body,
                detail=str(len(items)),
                task_id=items[0]["task"].id if len(items) == 1 else None,
            )
    session.flush()
    return report


def _unanswered_counts(session: Session, tasks: Sequence[Task]) -> dict[int, int]:
    """Reminders sent to a task's lead contacts since its last report (or since it was assigned)."""
    since = {t.id: t.last_report_at for t in tasks}
    rows = session.exec(
        select(ReminderOccurrence.task_id, ReminderOccurrence.sent_at)
        .join(Contact, col(Contact.id) == ReminderOccurrence.contact_id)
        .where(
            col(ReminderOccurrence.task_id).in_(list(since)),
            ReminderOccurrence.status == OccurrenceStatus.SENT,
            col(ReminderOccurrence.kind).in_(POLICY_KINDS),
            Contact.role == Role.CONTACT,
        )
    ).all()
    counts: dict[int, int] = defaultdict(int)
    for task_id, sent_at in rows:
        last = since.get(task_id)
        # task_id is never None (the query asks for these tasks' rows): the test only narrows its type
        if task_id is not None and (last is None or (sent_at is not None and sent_at > last)):
            counts[task_id] += 1
    return counts
