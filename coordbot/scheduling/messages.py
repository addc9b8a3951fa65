"""Turn claimed occurrences into channel messages, rendered from templates/ in each contact's language."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.base import Button, ButtonAction, Outbound
from coordbot.core.db import row_id
from coordbot.core.text import labels, render
from coordbot.plan.contacts import Route, reachable_routes
from coordbot.plan.models import OPEN_STATUSES, Contact, Plan, Task, TaskStatus
from coordbot.plan.progress import QuotaProgress
from coordbot.plan.queries import tasks_quota_progress
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import Claimed, ReminderKind, ReminderOccurrence

TASK_ACTIONS = (
    (ButtonAction.DONE, ButtonAction.ON_TRACK),
    (ButtonAction.AT_RISK, ButtonAction.BLOCKED, ButtonAction.REPORT),
)
NOT_TASK_REMINDERS = (ReminderKind.CATCH_UP, ReminderKind.NOTICE, ReminderKind.ESCALATION, ReminderKind.CROSS_REQUEST)
# A contact whose department leads many recurring tasks would get a message per task every Monday; from
# this many on, the week's progress requests go out as one message with a button per task.
BATCH_MIN = 3
# The web form's link for one task reminder (occurrence, its contact, now), or None: given by the runtime
# when ``public_url`` is set (the web room signs it; this room only puts it in the text).
ReplyLink = Callable[[ReminderOccurrence, Contact, datetime], str | None]


def status_buttons(ref: str, locale: str) -> tuple[tuple[Button, ...], ...]:
    words = labels(locale)["buttons"]
    return tuple(tuple(Button(words[a], a, ref) for a in row) for row in TASK_ACTIONS)


def reminder_text(
    *,
    task: Task,
    kind: str,
    detail: str,
    ref_date: date | None,
    quotas: Sequence[QuotaProgress],
    fire_at: datetime,
    calendar: WorkCalendar,
    locale: str,
    reply_url: str = "",
) -> str:
    """One task reminder as the contact reads it (also what ``coordbot reminders preview`` shows);
    ``reply_url``: the web form's link, said at the end when there is one."""
    days = calendar.workdays_between(fire_at.astimezone(calendar.tz).date(), ref_date) if ref_date else 0
    return render(
        "reminder.html",
        locale=locale,
        task=task,
        kind=kind,
        detail=detail,
        ref_date=ref_date,
        quotas=quotas,
        days_to_event=days,
        event_until=_event_until(task, kind, detail, ref_date),
        period_deadline=_period_deadline(task, kind, ref_date),
        milestone=_milestone(task, kind, ref_date),
        reply_url=reply_url,
    )


def _milestone(task: Task, kind: str, ref_date: date | None) -> str:
    """The milestone (节点) a deadline reminder is about, by its date; "" for the task's own deadline."""
    if kind not in ("before_due", "due_today") or ref_date is None:
        return ""
    names = [m["name"] for m in task.milestones if m.get("due") == ref_date.isoformat()]
    return "、".join(names)


def _period_deadline(task: Task, kind: str, ref_date: date | None) -> str:
    """The cadence (quarterly, half-yearly) when a deadline reminder is about a period's end of the task's
    ``every``, else "" (a dated target's or the task's own deadline)."""
    if kind not in ("before_due", "due_today") or ref_date is None or not task.deadline_every:
        return ""
    months = (6, 12) if task.deadline_every == "half-yearly" else (3, 6, 9, 12)
    last_day = (date(ref_date.year + ref_date.month // 12, ref_date.month % 12 + 1, 1) - timedelta(days=1)).day
    return task.deadline_every if ref_date.month in months and ref_date.day == last_day else ""


def _event_until(task: Task, kind: str, detail: str, ref_date: date | None) -> date | None:
    """The last day of the multi-day event (宣传周) an ``event_ahead`` reminder is about, in its year."""
    if kind != "event_ahead" or ref_date is None:
        return None
    until = next((e.get("until") for e in task.dated_events if e.get("name") == detail), None)
    if not until:
        return None
    month, day = (int(x) for x in until.split("-"))
    return date(ref_date.year, month, day)


def _still_wanted(task: Task) -> bool:
    """A reminder claimed after its task was done or archived is not sent (the engine cancels it)."""
    return task.archived_at is None and task.status in OPEN_STATUSES and task.status != TaskStatus.REPORTED_DONE


def build_messages(
    engine: Engine,
    claimed: Sequence[Claimed],
    *,
    now: datetime,
    calendar: WorkCalendar,
    default_locale: str = "zh",
    reply_link: ReplyLink | None = None,
) -> dict[int, tuple[str, Outbound]]:
    """{occurrence id: (channel name, message)}; rows whose contact is gone are left out.

    ``reply_link``: task reminders carry the web form's link it gives (none when it is not given)."""
    ids = [c.id for c in claimed]
    folded_ids = [f for c in claimed for f in c.folded]
    with Session(engine) as session:
        occs = {
            row_id(o): o for o in session.exec(select(ReminderOccurrence).where(col(ReminderOccurrence.id).in_(ids)))
        }
        folded = (
            session.exec(select(ReminderOccurrence).where(col(ReminderOccurrence.id).in_(folded_ids))).all()
            if folded_ids
            else []
        )
        task_ids = {o.task_id for o in (*occs.values(), *folded) if o.task_id}
        tasks = {row_id(t): t for t in session.exec(select(Task).where(col(Task.id).in_(task_ids)))}
        contacts = {
            row_id(c): c
            for c in session.exec(select(Contact).where(col(Contact.id).in_({o.contact_id for o in occs.values()})))
        }
        plans = {p.id: p for p in session.exec(select(Plan))}
        # Quota lines go in task reminders only, and are the same for every contact of the task.
        reminded = [
            tasks[o.task_id]
            for o in occs.values()
            if o.task_id in tasks and o.kind not in NOT_TASK_REMINDERS and _still_wanted(tasks[o.task_id])
        ]
        quotas_by_task = tasks_quota_progress(
            session=session, tasks=list({t.id: t for t in reminded}.values()), today=now.astimezone(calendar.tz).date()
        )
        options = reachable_routes(session=session, contacts=list(contacts.values()))
    chosen = {
        occ_id: route
        for occ_id, occ in occs.items()
        if (route := _route_for(occ, options.get(occ.contact_id, []))) is not None
    }

    folded_by_parent: dict[int | None, list[ReminderOccurrence]] = defaultdict(list)
    for o in folded:
        folded_by_parent[o.folded_into_id].append(o)

    # A contact's simultaneous progress requests go out as one message: those rows' own texts are never
    # rendered. Task reminders to several contacts at once have the same text: rendered once per task.
    batched = _batched_periodic(occs, chosen, tasks, contacts, plans)
    texts: dict[tuple[object, ...], str] = {}
    out: dict[int, tuple[str, Outbound]] = {}
    links: dict[int, str] = {}
    for occ_id, occ in occs.items():
        contact = contacts.get(occ.contact_id)
        route = chosen.get(occ_id)
        if contact is None or route is None:
            continue
        locale = contact.language or default_locale
        task = tasks.get(occ.task_id) if occ.task_id else None
        plan = plans.get(occ.plan_id) if occ.plan_id else (plans.get(task.plan_id) if task else None)
        tz = plan.timezone if plan else calendar.tz.key
        if occ.kind == ReminderKind.CATCH_UP:
            items = [
                {"code": tasks[o.task_id].code, "title": tasks[o.task_id].title, "when": o.fire_at}
                for o in sorted(folded_by_parent[occ_id], key=lambda o: o.fire_at)
                if o.task_id in tasks
            ]
            text = render("catch_up.html", locale=locale, items=items, tz=tz)
            out[occ_id] = (route.channel, Outbound(route.address, text))
        elif occ.kind in NOT_TASK_REMINDERS:
            text = render("notice.html", locale=locale, body=occ.body)
            buttons: tuple[tuple[Button, ...], ...] = ()
            if occ.kind == ReminderKind.CROSS_REQUEST and task is not None:
                buttons = status_buttons(f"o{occ_id}", locale)[1:]  # report / at risk / blocked
            out[occ_id] = (route.channel, Outbound(route.address, text, buttons=buttons, ask_reply=task is not None))
        elif task is not None and plan is not None and _still_wanted(task):
            quotas = quotas_by_task[row_id(task)]
            if reply_link is not None and (url := reply_link(occ, contact, now)):
                links[occ_id] = url
            if occ_id in batched:  # replaced by the contact's one message below
                out[occ_id] = (route.channel, Outbound(route.address, ""))
                continue
            reply_url = links.get(occ_id, "")
            # everything the text depends on (fire_at only through its day, for the workdays left)
            key = (occ.task_id, occ.kind, occ.detail, occ.ref_date, occ.fire_at.astimezone(calendar.tz).date())
            cached = texts.get((*key, locale, reply_url))
            if cached is None:
                cached = texts[(*key, locale, reply_url)] = reminder_text(
                    task=task,
                    kind=occ.kind,
                    detail=occ.detail,
                    ref_date=occ.ref_date,
                    quotas=quotas,
                    fire_at=occ.fire_at,
                    calendar=calendar,
                    locale=locale,
                    reply_url=reply_url,
                )
            out[occ_id] = (
                route.channel,
                Outbound(route.address, cached, buttons=status_buttons(f"o{occ_id}", locale), ask_reply=True),
            )
    _batch_periodic(out, occs, chosen, tasks, contacts, quotas_by_task, default_locale, links)
    return out


def _route_for(occ: ReminderOccurrence, options: list[Route]) -> Route | None:
    """The contact's first reachable address; after a fallback, the address on the channel chosen for it."""
    if occ.route and occ.channel:
        return next((r for r in options if r.channel == occ.channel), None)
    return options[0] if options else None


def _is_task_reminder(
    occ: ReminderOccurrence, tasks: dict[int, Task], contacts: dict[int, Contact], plans: dict[int | None, Plan]
) -> bool:
    """Whether build_messages sends ``occ`` as a task reminder (its contact, task and plan there, task open)."""
    if occ.kind in NOT_TASK_REMINDERS or occ.contact_id not in contacts or occ.task_id is None:
        return False
    task = tasks.get(occ.task_id)
    if task is None or not _still_wanted(task):
        return False
    return (plans.get(occ.plan_id) if occ.plan_id else plans.get(task.plan_id)) is not None


def _periodic_groups(
    occs: dict[int, ReminderOccurrence], chosen: dict[int, Route], sent: Callable[[int], bool]
) -> dict[tuple[int, datetime, Route], list[tuple[int, int]]]:
    """(occurrence id, task id) of the periodic rows ``sent`` says go out, per contact, time and address."""
    groups: dict[tuple[int, datetime, Route], list[tuple[int, int]]] = defaultdict(list)
    for occ_id, occ in occs.items():
        if occ.kind == ReminderKind.PERIODIC and occ.task_id is not None and sent(occ_id):
            groups[(occ.contact_id, occ.fire_at, chosen[occ_id])].append((occ_id, occ.task_id))
    return groups


def _batched_periodic(
    occs: dict[int, ReminderOccurrence],
    chosen: dict[int, Route],
    tasks: dict[int, Task],
    contacts: dict[int, Contact],
    plans: dict[int | None, Plan],
) -> set[int]:
    """The periodic rows _batch_periodic will put in a contact's one message (so not rendered alone)."""
    groups = _periodic_groups(
        occs, chosen, lambda i: i in chosen and _is_task_reminder(occs[i], tasks, contacts, plans)
    )
    return {i for members in groups.values() if len(members) >= BATCH_MIN for i, _ in members}


def _batch_periodic(
    out: dict[int, tuple[str, Outbound]],
    occs: dict[int, ReminderOccurrence],
    chosen: dict[int, Route],
    tasks: dict[int, Task],
    contacts: dict[int, Contact],
    quotas_by_task: dict[int, list[QuotaProgress]],
    default_locale: str,
    links: dict[int, str] | None = None,
) -> None:
    """Replace a contact's simultaneous progress requests by one message (same object for every row)."""
    # (occurrence id, task id) per contact, time and address; a periodic row in ``out`` always has a task
    groups = _periodic_groups(occs, chosen, lambda i: i in out)
    for (contact_id, _, route), members in groups.items():
        if len(members) < BATCH_MIN:
            continue
        contact = contacts[contact_id]
        locale = contact.language or default_locale
        members.sort(key=lambda m: tasks[m[1]].position)
        items = [
            {"task": tasks[t], "quotas": quotas_by_task.get(t, []), "reply_url": (links or {}).get(i, "")}
            for i, t in members
        ]
        text = render("reminder_batch.html", locale=locale, items=items)
        label = labels(locale)["buttons"]["report"].split()[0]
        buttons = [Button(f"{label} {tasks[t].code}", ButtonAction.REPORT, f"o{i}") for i, t in members]
        rows = tuple(tuple(buttons[k : k + 4]) for k in range(0, len(buttons), 4))
        message = Outbound(route.address, text, buttons=rows)
        for i, _ in members:
            out[i] = (route.channel, message)
