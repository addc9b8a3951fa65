"""督办: keep every open task's colour current and escalate silence or red up the ladder.

Level 1 is the lead department's leader, level 2 the office. A task escalates when its contact has let
``escalate_after_unanswered`` reminders pass without a report (level 1; twice that: level 2), or when it
turns red (level 1 at once). A progress report resets the ladder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

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
from coordbot.plan.progress import assess
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
        silence = _silence(session, tasks, calendar)
        # One 督办 message per recipient per review, listing every task: a leader is not sent ten messages.
        outbox: dict[int, list[dict]] = defaultdict(list)
        recipients_by_id: dict[int, Contact] = {}
        departments = {d.id: d for d in session.exec(select(Department))}

        for task in tasks:
            task_id = row_id(task)
            until_due = calendar.workdays_between(today, task.due_date) if task.due_date else None
            was_overdue = task.colour_reason == "overdue"
            quotas = quotas_by_task[task_id]
            last_status = latest[task.id].status if task.id in latest else None
            unanswered, first_sent = silence.get(task_id, (0, None))
            quiet_days = calendar.workdays_between(first_sent, today) if first_sent else None
            n = task_policy(task, base).escalate_after_unanswered
            level = 2 if unanswered >= 2 * n else 1 if unanswered >= n else 0
            reason = "unanswered" if level else ""
            # the colour before the ladder moves: red (overdue, blocked) goes to the leader at once
            before = assess(
                task,
                quotas,
                today=today,
                workdays_until_due=until_due,
                last_report_status=last_status,
                workdays_unanswered=quiet_days,
            )
            if level < 1 and before.colour == "red":
                level, reason = 1, "red"
            if level > task.escalation_level:
                report.escalated += _escalate(
                    session,
                    task,
                    level=level,
                    reason=reason,
                    unanswered=unanswered,
                    colour_reason=before.reason,
                    department=departments[task.lead_department_id],
                    leaders=by_role[(task.lead_department_id, Role.LEADER)],
                    office=office,
                    outbox=outbox,
                    recipients_by_id=recipients_by_id,
                    now=now,
                )
            # after the ladder moved: an escalated task is red in the same review (one colour change)
            a, changed = recolour(
                session=session,
                task=task,
                quotas=quotas,
                today=today,
                workdays_until_due=until_due,
                last_report_status=last_status,
                now=now,
                workdays_unanswered=quiet_days,
            )
            if changed:
                report.recoloured += 1
                report.overdue += a.overdue and not was_overdue
        for contact_id, items in outbox.items():
            c = recipients_by_id[contact_id]
            body = render(
                "escalation.txt.j2",
                locale=c.language,
                total=len({i["task"].id for i in items}),
                groups=_fold(items),
                level=max(i["level"] for i in items),
            )
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


def _escalate(
    session: Session,
    task: Task,
    *,
    level: int,
    reason: str,
    unanswered: int,
    colour_reason: str,
    department: Department,
    leaders: list[Contact],
    office: list[Contact],
    outbox: dict[int, list[dict]],
    recipients_by_id: dict[int, Contact],
    now: datetime,
) -> int:
    """Move the task up to ``level``: an item for each recipient of each step, an event per step."""
    steps = 0
    for step in range(task.escalation_level + 1, level + 1):
        recipients = leaders if step == 1 else office
        if step == 1 and not recipients:
            recipients = office  # no leader bound yet: the office hears of it instead
        item = {
            "department": department.short_name or department.name,
            "task": task,
            "reason": reason,
            "count": unanswered,
            "colour_reason": colour_reason,
            "level": step,
        }
        for c in recipients:
            outbox[row_id(c)].append(item)
            recipients_by_id[row_id(c)] = c
        events.record(
            session,
            EventType.TASK_ESCALATED,
            at=now,
            plan_id=task.plan_id,
            task_id=task.id,
            department_id=task.lead_department_id,
            level=step,
            reason=reason,
            unanswered=unanswered,
            recipients=[c.id for c in recipients],
        )
        steps += 1
    task.escalation_level = level
    return steps


def _fold(items: list[dict]) -> list[dict]:
    """A recipient's items as one line per department and reason: eleven silent tasks of one department are
    one line naming them, not eleven lines saying the same."""
    groups: dict[tuple, dict] = {}
    for i in items:
        key = (
            i["department"],
            i["reason"],
            i["count"] if i["reason"] == "unanswered" else i["colour_reason"],
            i["level"],
        )
        g = groups.setdefault(key, {**i, "tasks": []})
        g["tasks"].append(i["task"])
    return list(groups.values())


def _silence(session: Session, tasks: Sequence[Task], calendar: WorkCalendar) -> dict[int, tuple[int, date]]:
    """Per task: the reminders its lead contacts were sent since its last report (or since it was assigned),
    and the day of the first of them.

    Reminders are counted per contact and day: a periodic and a checkpoint reminder sent the same morning
    (folded into one message) are one reminder, and two contacts of a department reminded at once are not two.
    The count is the most any one contact was sent."""
    since = {t.id: t.last_report_at for t in tasks}
    lead = {t.id: t.lead_department_id for t in tasks}
    rows = session.exec(
        select(
            ReminderOccurrence.task_id, ReminderOccurrence.contact_id, ReminderOccurrence.sent_at, Contact.department_id
        )
        .join(Contact, col(Contact.id) == ReminderOccurrence.contact_id)
        .where(
            col(ReminderOccurrence.task_id).in_(list(since)),
            ReminderOccurrence.status == OccurrenceStatus.SENT,
            col(ReminderOccurrence.kind).in_(POLICY_KINDS),
            Contact.role == Role.CONTACT,
        )
    ).all()
    days: dict[tuple[int, int], set[date]] = defaultdict(set)
    for task_id, contact_id, sent_at, dept_id in rows:
        # task_id is never None (the query asks for these tasks' rows): the test only narrows its type
        if task_id is None or sent_at is None or dept_id != lead.get(task_id):
            continue
        last = since.get(task_id)
        if last is None or sent_at > last:
            days[(task_id, contact_id)].add(sent_at.astimezone(calendar.tz).date())
    out: dict[int, tuple[int, date]] = {}
    for (task_id, _contact), sent_days in days.items():
        count, first = out.get(task_id, (0, max(sent_days)))
        out[task_id] = (max(count, len(sent_days)), min(first, min(sent_days)))
    return out
