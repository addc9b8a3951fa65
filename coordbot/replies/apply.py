"""Apply a progress report to the plan: status, progress, colour, metric observations, requests for help.

Everything a report changes is remembered on the report (``previous``), so undo restores the task exactly
and voids what the report added (the observations and requests carry its id). Only the office closes a task
(销号); a "done" report sets 已报结.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.core.text import render
from coordbot.plan.actions import recolour
from coordbot.plan.models import (
    Contact,
    CrossRequest,
    Department,
    Observation,
    Plan,
    ProgressReport,
    Role,
    Target,
    Task,
    TaskDepartment,
    TaskStatus,
)
from coordbot.plan.progress import QuotaProgress
from coordbot.plan.queries import LIVE_TARGETS, load_quota_progress
from coordbot.replies._text import normalise
from coordbot.replies.ambiguity import Ambiguity
from coordbot.replies.parser import MAX_CHARS, DepartmentRef, ParsedReply, Quantity, Status, TargetRef, parse_reply
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import ReminderKind
from coordbot.scheduling.outbox import add_occurrence

STATUS_OF_REPORT = {
    Status.DONE: TaskStatus.REPORTED_DONE,
    Status.ON_TRACK: TaskStatus.IN_PROGRESS,
    Status.AT_RISK: TaskStatus.IN_PROGRESS,  # the colour carries the risk
    Status.BLOCKED: TaskStatus.BLOCKED,
    Status.NOT_STARTED: TaskStatus.ACCEPTED,
}
SNAPSHOT_FIELDS = ("status", "progress", "colour", "colour_reason", "last_report_at", "escalation_level")
# A report saying the obstacle is gone (贴息资金已落实，恢复正常推进) settles the requests for help its department
# made; "已落实" is not "尚未落实" (no negation is read as settled). "无困难" alone only asks.
SETTLED = re.compile(
    r"(已|均已|全部|基本)(落实|解决|到位|办结|协调好|协调解决|理顺|消除|排除)|恢复(正常)?推进|无需(再)?配合|不再需要配合"
    r"|(resolved|settled|sorted out|back on track|no longer need)",
    re.IGNORECASE,
)


ALL_DEPARTMENTS = select(Department)  # built once: building a statement costs more than running it
# The departments a report on a plan's task can name: its organisation's only (another plan's 区财政局 is not it).
ORG_DEPARTMENTS = select(Department).where(Department.organisation_id == bindparam("organisation_id"))


# A percent on a task with a rate or growth target that says neither which nor that it is completion (目前达到96%):
# the conversation asks (the parser reads it as completion). Answered with a metric, or with "progress".
RATE_OR_PROGRESS = "rate_or_progress"
RATE_PROGRESS = "progress"
# The parser reads a percent next to a %-target's words as that target's value, and skips 增长3.9% as "growth,
# not progress": for a task's one growth target these words name it (a rate's own word, 满意度 of 群众满意度, too).
GROWTH_WORDS = ("增长", "增速", "增幅", "下降", "回落", "growth", "grew", "increase", "increased", "rose", "up",
                "down", "decline", "declined", "fell")  # fmt: skip
_RATE_WORD = re.compile(r"[\u4e00-\u9fff]{2}[率度]$")  # 满意度, 覆盖率: what a rate is called in a reply
# growth written as a fall (同比下降1.2%, 负增长1.2%, down 1.2%, -1.2%): a negative growth
_DECLINE_BEFORE = re.compile(
    r"(?:下降|下滑|减少|回落|降低|负增长|\bdecline[ds]?|\bdown|\bfell|\bdropped)\s{0,3}(?:了|by)?\s{0,3}(?:约|近|about)?"
    r"\s{0,3}[-−]?\s{0,2}$|[-−]\s{0,2}$"
)
# the words before a percent that make it completion of the work, not a rate's value (完成年度目标的80%, 进度80%)
_COMPLETION_WORDS = re.compile(r"完成|进度|进展|序时|执行|计划|目标|progress|complete|done|finished|target|plan")


def rate_targets(targets: Sequence[Target]) -> list[Target]:
    """The rate and growth targets in percent among ``targets`` (in their order): a percent may be their value."""
    return [
        t
        for t in targets
        if t.measure in ("rate", "growth") and t.unit == "%" and t.value is not None and t.comparator != "qualitative"
    ]


def _rate_word(name: str) -> str:
    m = _RATE_WORD.search(name)
    return m.group(0) if m and m.group(0) != name else ""


def target_refs(targets: Sequence[Target]) -> list[TargetRef]:
    live = [t for t in targets if t.value is not None and t.comparator != "qualitative"]
    rated = rate_targets(live)
    growth = [t for t in rated if t.measure == "growth"]
    words = Counter(_rate_word(t.name) for t in rated if t.measure == "rate")
    refs = []
    for t in live:
        extra: tuple[str, ...] = ()
        if len(growth) == 1 and t is growth[0]:
            extra = GROWTH_WORDS  # with two growth targets the words would name either: their names decide
        elif t in rated and (w := _rate_word(t.name)) and words[w] == 1:
            extra = (w,)
        refs.append(TargetRef(metric=t.metric, name=t.name, unit=t.unit, aliases=(*t.aliases, *extra), period=t.period))
    return refs


def read_rates(
    parsed: ParsedReply, text: str, targets: Sequence[Target], answers: Mapping[str, str]
) -> tuple[ParsedReply, Decimal | None]:
    """The parser's reading with the task's rate and growth targets in mind: a growth written as a fall is
    negative, and a percent not said to be completion is the value of a rate target the contact chose
    (``answers[RATE_OR_PROGRESS]``), progress when they said so, else asked: returned as the percent in
    question (not progress until answered)."""
    rated = {t.metric: t for t in rate_targets(targets)}
    if not rated:
        return parsed, None
    norm = normalise(text[:MAX_CHARS])  # the parser's spans index its same-length normalised text
    quantities = []
    for q in parsed.quantities:
        t = rated.get(q.metric or "")
        if t is not None and t.measure == "growth" and _DECLINE_BEFORE.search(norm[max(0, q.span[0] - 12) : q.span[0]]):
            q = replace(q, value=-abs(q.value))
        quantities.append(q)
    percent, ambiguities, asked = parsed.percent, parsed.ambiguities, None
    if percent is not None and not _COMPLETION_WORDS.search(parsed.evidence.get("percent", "")):
        answer = answers.get(RATE_OR_PROGRESS)
        if answer in rated:
            quantities.append(Quantity(answer, percent, "%", "total", (0, 0)))
            percent = None
        elif answer != RATE_PROGRESS:
            asked, percent = percent, None
            ambiguities = (*ambiguities, RATE_OR_PROGRESS)
    return replace(parsed, percent=percent, quantities=tuple(quantities), ambiguities=ambiguities), asked


def department_refs(departments: Sequence[Department]) -> list[DepartmentRef]:
    return [
        DepartmentRef(code=d.code, name=d.name, aliases=tuple(a for a in (d.short_name, *d.aliases) if a))
        for d in departments
    ]


def _snapshot(task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SNAPSHOT_FIELDS:
        value = getattr(task, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _restore(task: Task, snap: dict[str, Any]) -> None:
    for name in SNAPSHOT_FIELDS:
        value = snap.get(name)
        if name == "last_report_at" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        setattr(task, name, value)


class NothingToRecord(Exception):
    """The text says nothing a report could record (``1.3``, ``1.3 👍``, ``1.3 ？``): nothing was changed.

    Raised by ``apply_report(..., ask_when_empty=True)`` before it writes anything; the conversation asks back.
    """

    def __init__(self, parsed: ParsedReply | None) -> None:
        super().__init__("the reply carries no information")
        self.parsed = parsed


def carries_information(parsed: ParsedReply | None, status: Status | None) -> bool:
    """Whether a report changes anything: a pressed status, or a text the parser found something in."""
    return status is not None or (parsed is not None and Ambiguity.NO_INFORMATION not in parsed.ambiguities)


@dataclass
class Applied:
    report: ProgressReport
    task: Task
    quantities: list[tuple[Target, float, str]] = field(default_factory=list)  # (target, value, mode)
    quota_lines: list[str] = field(default_factory=list)
    quotas: list[QuotaProgress] = field(default_factory=list)  # after the report: the confirmation shows them
    help_departments: list[Department] = field(default_factory=list)
    unmatched: list[Quantity] = field(default_factory=list)  # numbers the office should look at
    ambiguities: tuple[str, ...] = ()
    asked_modes: list[Quantity] = field(default_factory=list)  # counted once the contact says total or new
    closed_requests: list[CrossRequest] = field(default_factory=list)  # settled by this report
    unsure_requests: list[CrossRequest] = field(default_factory=list)  # maybe settled: the confirmation asks


def apply_report(
    *,
    session: Session,
    task: Task,
    contact: Contact | None,
    text: str,
    now: datetime,
    calendar: WorkCalendar,
    source: str = "chat",
    source_ref: str | None = None,
    reminder_id: int | None = None,
    status: Status | None = None,
    report: ProgressReport | None = None,
    ask_when_empty: bool = False,
    answers: Mapping[str, str] | None = None,
) -> Applied:
    """Parse ``text`` (or take ``status`` from a button), store the report and change the task.

    ``report``: the report to rewrite in place (an edit or a correction: ``revise_report``).
    ``answers``: the contact's answers to the bot's questions about this text (``parse_reply``'s ``answers``;
    kept on the report, so a later revision by a button keeps them). What is still asked is not recorded: a
    share-or-progress percent is not progress, a count that may be a total or an increment is not counted.
    ``ask_when_empty``: raise :class:`NothingToRecord`, having changed nothing, when neither the text nor a
    button gives anything to record (a stray emoji must not count as progress and silence the escalation).
    """
    plan = session.get(Plan, task.plan_id)
    assert plan is not None
    today = now.astimezone(calendar.tz).date()
    targets = list(session.exec(LIVE_TARGETS, params={"task_id": task.id}))
    departments = list(session.exec(ORG_DEPARTMENTS, params={"organisation_id": plan.organisation_id}))
    answers = dict(answers or {})
    parsed = (
        _parse(text, task=task, targets=targets, departments=departments, today=today, answers=answers)
        if text.strip()
        else None
    )
    rate_asked = None
    if parsed is not None:
        parsed, rate_asked = read_rates(parsed, text, targets, answers)
    if ask_when_empty and not carries_information(parsed, status):
        raise NothingToRecord(parsed)
    said_status, ambiguities = _said_status(parsed, status)
    revising = report is not None
    report = _store_report(
        session,
        report,
        task=task,
        contact=contact,
        text=text,
        parsed=parsed,
        said_status=said_status,
        now=now,
        source=source,
        source_ref=source_ref,
        reminder_id=reminder_id,
    )
    if parsed is not None and (answers or status is not None or rate_asked is not None):
        # what the contact said besides the text: a revision by a later button keeps it (revise_report)
        said = dict(report.parsed)
        if answers:
            said["answers"] = answers
        if status is not None:
            said["pressed_status"] = status.value
        if rate_asked is not None:
            said["rate_percent"] = str(rate_asked)  # RATE_OR_PROGRESS: asked, not recorded
        report.parsed = said
    applied = Applied(report=report, task=task, ambiguities=ambiguities)
    is_lead = contact is None or contact.department_id == task.lead_department_id
    _move_task(task, said_status, parsed, is_lead=is_lead, now=now)
    if parsed:
        _count_quantities(session, applied, parsed, targets, contact=contact, today=today, now=now)
    _ask_for_help(session, applied, parsed, departments, revising=revising, contact=contact, now=now, calendar=calendar)
    _settle_requests(session, applied, said_status, departments, contact=contact, now=now, calendar=calendar)
    _colour(session, applied, targets, plan=plan, today=today, calendar=calendar, now=now)
    _record_report_events(session, applied, said_status, is_lead=is_lead, source=source, now=now)
    session.flush()
    return applied


class NotYours(Exception):
    """The contact's department neither leads the task nor works on it: nothing was changed."""


def may_report(session: Session, contact: Contact, task: Task) -> bool:
    """Whether ``contact`` may report on ``task``: their department leads it or is a co-department."""
    if task.lead_department_id == contact.department_id:
        return True
    return session.get(TaskDepartment, (task.id, contact.department_id)) is not None


def report_as_contact(
    *,
    session: Session,
    contact: Contact,
    task: Task,
    text: str,
    now: datetime,
    calendar: WorkCalendar,
    source: str,
    source_ref: str | None = None,
    reminder_id: int | None = None,
    status: Status | None = None,
) -> Applied:
    """A contact's report on a known task, wherever it comes from (a chat message, a button, the web form).

    :class:`NotYours` if they may not report on it, :class:`NothingToRecord` if it carries nothing to record;
    in both cases nothing was changed.
    """
    if not may_report(session, contact, task):
        raise NotYours(task.code)
    return apply_report(
        session=session,
        task=task,
        contact=contact,
        text=text,
        now=now,
        calendar=calendar,
        source=source,
        source_ref=source_ref,
        reminder_id=reminder_id,
        status=status,
        ask_when_empty=True,
    )


# ---- the steps of a report, in order (each one's statements as they were when this was one function) --


def _parse(
    text: str,
    *,
    task: Task,
    targets: Sequence[Target],
    departments: Sequence[Department],
    today: date,
    answers: Mapping[str, str],
) -> ParsedReply:
    return parse_reply(
        text,
        today=today,
        targets=target_refs(targets),
        departments=department_refs(departments),
        task_codes=[task.code],
        answers=answers,
    )


def _said_status(parsed: ParsedReply | None, pressed: Status | None) -> tuple[Status | None, tuple[str, ...]]:
    """The status the report gives (a pressed button's over the text's) and what the text left unclear."""
    said = pressed or (parsed.status if parsed else None)
    ambiguities = parsed.ambiguities if parsed and pressed is None else ()
    if Ambiguity.CONFLICTING_STATUS in ambiguities:
        said = None  # ask, do not guess
    return said, ambiguities


def _store_report(
    session: Session,
    report: ProgressReport | None,
    *,
    task: Task,
    contact: Contact | None,
    text: str,
    parsed: ParsedReply | None,
    said_status: Status | None,
    now: datetime,
    source: str,
    source_ref: str | None,
    reminder_id: int | None,
) -> ProgressReport:
    """Snapshot: what the report said (a new row, or over the revised one) and the task as it was before."""
    if report is None:
        report = ProgressReport(
            task_id=row_id(task),
            department_id=contact.department_id if contact else task.lead_department_id,
        )
        session.add(report)
    report.contact_id = contact.id if contact else None
    report.received_at = now
    report.text = text
    report.source = source
    report.source_ref = source_ref
    report.reminder_id = reminder_id
    report.status = said_status.value if said_status else None
    report.percent = parsed.percent if parsed else None
    report.expected_date = parsed.expected_date if parsed else None
    report.parsed = _parsed_json(parsed)
    # What undo restores. What the report adds (observations, requests) carries its id instead: undo finds
    # them by it, so the report is written once.
    report.previous = _snapshot(task)
    session.flush()
    return report


def _move_task(
    task: Task, said_status: Status | None, parsed: ParsedReply | None, *, is_lead: bool, now: datetime
) -> None:
    """Status, percent and dates: a report from the lead department moves the task; a co-department's is
    only recorded (it still resets the escalation ladder)."""
    if is_lead:
        if said_status is not None:
            task.status = STATUS_OF_REPORT[said_status]
        elif task.status in (TaskStatus.ASSIGNED, TaskStatus.ACCEPTED, TaskStatus.BLOCKED):
            task.status = TaskStatus.IN_PROGRESS  # a report without a status word still shows work going on
        if parsed and parsed.percent is not None:
            task.progress = int(min(parsed.percent, Decimal(100)).to_integral_value(ROUND_HALF_UP))  # a bar
        if said_status == Status.DONE:
            task.progress = 100
    task.last_report_at = now
    task.escalation_level = 0
    task.updated_at = now


def _count_quantities(
    session: Session,
    applied: Applied,
    parsed: ParsedReply,
    targets: Sequence[Target],
    *,
    contact: Contact | None,
    today: date,
    now: datetime,
) -> None:
    """Quantities: each number becomes an observation of the target it counts toward; the rest are unmatched."""
    report = applied.report
    by_metric = {t.metric: t for t in targets}
    for q in parsed.quantities:
        target = by_metric.get(q.metric) if q.metric else None
        if target is not None and q.mode_asked:
            applied.asked_modes.append(q)  # so far, or new? counted when the contact says (not guessed)
            continue
        if target is None:
            applied.unmatched.append(q)
            continue
        obs = Observation(
            target_id=row_id(target),
            value=float(q.value),
            mode=q.mode,
            observed_on=today,
            source="report",
            report_id=report.id,
            contact_id=contact.id if contact else None,
            recorded_at=now,
        )
        session.add(obs)
        applied.quantities.append((target, float(q.value), q.mode))
    if applied.quantities:
        session.flush()  # the quota queries (``_colour``) read them
    for target, value, mode in applied.quantities:  # after the flush: written with the report's own event
        _observation_recorded(session, report, target, value, mode, plan_id=applied.task.plan_id, now=now)


def _ask_for_help(
    session: Session,
    applied: Applied,
    parsed: ParsedReply | None,
    departments: Sequence[Department],
    *,
    revising: bool,
    contact: Contact | None,
    now: datetime,
    calendar: WorkCalendar,
) -> None:
    """Cross-department requests. An edited report keeps the requests it still makes (no second notice) and
    withdraws the others."""
    task, report = applied.task, applied.report
    asked_before = {r.to_department_id: r for r in _open_requests(session, report)} if revising else {}
    if parsed:
        own = contact.department_id if contact else task.lead_department_id
        by_code = {d.code: d for d in departments}
        for code in parsed.help_departments:
            dept = by_code.get(code)
            if dept is None or dept.id == own or dept in applied.help_departments:
                continue
            if dept.id in asked_before:
                asked_before.pop(dept.id)
                applied.help_departments.append(dept)
                continue
            req = CrossRequest(
                task_id=row_id(task),
                from_department_id=own,
                to_department_id=row_id(dept),
                report_id=report.id,
                text=report.text,
                created_at=now,
            )
            session.add(req)
            session.flush()
            applied.help_departments.append(dept)
            _queue_cross_request(
                session, req, task, dept, by_id={d.id: d for d in departments}, now=now, calendar=calendar
            )
    for withdrawn in asked_before.values():
        withdrawn.status = "withdrawn"
        withdrawn.closed_at = now


def _settle_requests(
    session: Session,
    applied: Applied,
    said_status: Status | None,
    departments: Sequence[Department],
    *,
    contact: Contact | None,
    now: datetime,
    calendar: WorkCalendar,
) -> None:
    """Close the open requests for help of the reporting department on this task that the report settles, and
    tell the helpers; where it may have (a blocked task back on track, or "settled" with several helpers and
    none named), leave them open and let the confirmation ask.

    Settled: a settling phrase (``SETTLED``) in a report that is not blocked or at risk, or a report of done.
    Requests asked again in this very report stay open. What was closed is kept on the report (undo reopens it).
    """
    task, report = applied.task, applied.report
    text = report.text
    settling = bool(SETTLED.search(text)) and said_status not in (Status.BLOCKED, Status.AT_RISK)
    was_blocked = report.previous.get("status") == TaskStatus.BLOCKED
    if not (settling or was_blocked or said_status == Status.DONE):
        return  # nothing to settle: no query (a report's statements are counted, bench/updates.py)
    own = contact.department_id if contact else task.lead_department_id
    asked_now = {d.id for d in applied.help_departments}
    candidates = [
        r
        for r in session.exec(
            select(CrossRequest).where(
                CrossRequest.task_id == task.id,
                CrossRequest.status == "open",
                CrossRequest.from_department_id == own,
                # the requests this report makes itself are _ask_for_help's (NULL: made elsewhere, e.g. the CLI)
                col(CrossRequest.report_id).is_(None) | (col(CrossRequest.report_id) != report.id),
            )
        )
        if r.to_department_id not in asked_now
    ]
    if not candidates:
        return
    by_id = {d.id: d for d in departments}
    named = [
        r
        for r in candidates
        if (d := by_id.get(r.to_department_id)) is not None
        and any(n and n in text for n in (d.name, d.short_name, *d.aliases))
    ]
    if said_status == Status.DONE:
        closing = candidates  # done: no help is needed any more
    elif settling and (named or len(candidates) == 1):
        closing = named or candidates
    else:
        if settling or (was_blocked and said_status in (Status.ON_TRACK, None) and task.status != TaskStatus.BLOCKED):
            applied.unsure_requests = candidates
        return
    for req in closing:
        req.status = "closed"
        req.closed_at = now
        _notify_request_closed(session, req, task, report, by_id=by_id, now=now, calendar=calendar)
    applied.closed_requests = closing
    report.previous = {**report.previous, "closed_requests": [req.id for req in closing]}


def _queue_to_department(
    session: Session,
    department_id: int,
    task: Task,
    template: str,
    *,
    kind: ReminderKind,
    detail: str,
    fire_at: datetime,
    html: bool = False,
    **values: Any,
) -> Sequence[Contact]:
    """One message about ``task`` to every bound contact of a department, each in their language, through the
    outbox; the contacts it went to."""
    contacts = _bound_contacts(session, department_id)
    for c in contacts:
        add_occurrence(
            session=session,
            contact_id=row_id(c),
            kind=kind,
            task_id=task.id,
            plan_id=task.plan_id,
            fire_at=fire_at,
            body=render(template, locale=c.language, task=task, **values),
            html=html,
            detail=detail,
        )
    return contacts


def _notify_request_closed(
    session: Session,
    req: CrossRequest,
    task: Task,
    report: ProgressReport,
    *,
    by_id: dict[int | None, Department],
    now: datetime,
    calendar: WorkCalendar,
) -> None:
    """The helper department hears that it is no longer asked (a notice through the outbox); an event."""
    requester, helper = by_id[req.from_department_id], by_id[req.to_department_id]
    contacts = _queue_to_department(
        session,
        req.to_department_id,
        task,
        "chat/request_closed.html",
        kind=ReminderKind.NOTICE,
        detail=f"request:{req.id}:closed",
        html=True,
        fire_at=calendar.next_send_time(now),
        requester=requester.short_name or requester.name,
        asked=req.text,
        text=report.text,
    )
    events.record(
        session,
        EventType.CROSSREQUEST_CLOSED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        department_id=req.to_department_id,
        request=req.id,
        report=report.id,
        from_department=requester.code,
        to_department=helper.code,
        recipients=len(contacts),
    )


def requests_note(session: Session, applied: Applied, locale: str) -> str:
    """For the report's confirmation: the requests it closed, or a question whether the open ones are settled
    (the answer "已解决" is a report that settles them); "" when neither."""
    if not (applied.closed_requests or applied.unsure_requests):
        return ""

    def names(requests: list[CrossRequest]) -> list[str]:
        depts = [session.get(Department, r.to_department_id) for r in requests]
        return [d.short_name or d.name for d in depts if d is not None]

    return "\n" + render(
        "chat/requests_settled.html",
        locale=locale,
        code=applied.task.code,
        closed=names(applied.closed_requests),
        unsure=names(applied.unsure_requests),
    )


def _reopen_settled(session: Session, report: ProgressReport) -> None:
    """Undo or revision: the requests the report closed are open again."""
    ids = report.previous.get("closed_requests") or []
    if not ids:
        return
    for req in session.exec(select(CrossRequest).where(col(CrossRequest.id).in_(ids))):
        if req.status == "closed":
            req.status, req.closed_at = "open", None


def _colour(
    session: Session,
    applied: Applied,
    targets: Sequence[Target],
    *,
    plan: Plan,
    today: date,
    calendar: WorkCalendar,
    now: datetime,
) -> None:
    """Colour now, not at the next review: the contact's confirmation shows it, and the quotas after the report."""
    task = applied.task
    # The quota queries read only observations, flushed by ``_count_quantities``: the task and the events go
    # in the one flush at the end.
    with session.no_autoflush:
        quotas = load_quota_progress(session=session, targets=targets, plan_of=lambda _target: plan, today=today)
    until_due = calendar.workdays_between(today, task.due_date) if task.due_date else None
    recolour(
        session=session,
        task=task,
        quotas=quotas,
        today=today,
        workdays_until_due=until_due,
        last_report_status=applied.report.status,
        now=now,
    )
    applied.quota_lines = [q.metric for q in quotas]
    applied.quotas = quotas


_MOVED_BY_REPORT = {Status.DONE: EventType.TASK_REPORTED_DONE, Status.BLOCKED: EventType.TASK_BLOCKED}


def _record_report_events(
    session: Session, applied: Applied, said_status: Status | None, *, is_lead: bool, source: str, now: datetime
) -> None:
    """Events: the report, and what it did to the task (reported done, blocked) when it moved it."""
    task, report = applied.task, applied.report
    events.record(
        session,
        EventType.PROGRESS_REPORTED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        department_id=report.department_id,
        contact_id=report.contact_id,
        report=report.id,
        status=report.status,
        percent=report.percent,
        source=source,
        quantities=[[t.metric, v, m] for t, v, m in applied.quantities],
        help=[d.code for d in applied.help_departments],
    )
    if is_lead and said_status in _MOVED_BY_REPORT:
        events.record(
            session,
            _MOVED_BY_REPORT[said_status],
            at=now,
            plan_id=task.plan_id,
            task_id=task.id,
            department_id=task.lead_department_id,
            report=report.id,
        )


def _queue_cross_request(
    session: Session,
    req: CrossRequest,
    task: Task,
    dept: Department,
    *,
    by_id: dict,
    now: datetime,
    calendar: WorkCalendar,
) -> None:
    requester = by_id[req.from_department_id]
    contacts = _queue_to_department(
        session,
        row_id(dept),
        task,
        "cross_request.txt.j2",
        kind=ReminderKind.CROSS_REQUEST,
        detail=str(req.id),
        fire_at=calendar.next_send_time(now),
        requester=requester.short_name or requester.name,
        text=req.text,
    )
    events.record(
        session,
        EventType.CROSSREQUEST_OPENED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        department_id=dept.id,
        request=req.id,
        from_department=requester.code,
        recipients=len(contacts),
    )


def _open_requests(session: Session, report: ProgressReport) -> list[CrossRequest]:
    """The report's requests for help that are still open."""
    stmt = select(CrossRequest).where(CrossRequest.report_id == report.id, CrossRequest.status == "open")
    return list(session.exec(stmt))


def _void_observations(session: Session, report: ProgressReport) -> None:
    """Void what a report counted; the rows stay for the audit trail."""
    for obs in session.exec(select(Observation).where(Observation.report_id == report.id, ~col(Observation.voided))):
        obs.voided = True


def undo_report(*, session: Session, report: ProgressReport, now: datetime, actor: str) -> Task:
    """Restore the task as it was before the report and void what the report added."""
    task = session.get(Task, report.task_id)
    assert task is not None
    if report.voided:
        raise ValueError("already undone")
    later = session.exec(
        select(ProgressReport).where(
            ProgressReport.task_id == task.id,
            col(ProgressReport.id) > report.id,
            ~col(ProgressReport.voided),
        )
    ).first()
    if later is not None:
        raise ValueError("a later report exists; correct it instead")
    _restore(task, report.previous)
    _void_observations(session, report)
    _reopen_settled(session, report)
    for req in _open_requests(session, report):
        req.status = "withdrawn"
        req.closed_at = now
    report.voided = True
    events.record(
        session,
        EventType.PROGRESS_UNDONE,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        contact_id=report.contact_id,
        actor=actor,
        report=report.id,
    )
    session.flush()
    return task


def revise_report(
    *,
    session: Session,
    report: ProgressReport,
    text: str,
    now: datetime,
    calendar: WorkCalendar,
    status: Status | None = None,
    answers: Mapping[str, str] | None = None,
    keep_answers: bool = False,
) -> Applied:
    """An edited message or a correction replaces what the report said, in place (no second report).

    ``answers``: the contact's answers to the bot's questions (``apply_report``); ``keep_answers``: keep
    those given before, and a status pressed before, beside the new ones (a button about the same text; an
    edit is a new text and asks again)."""
    task = session.get(Task, report.task_id)
    contact = session.get(Contact, report.contact_id) if report.contact_id else None
    assert task is not None
    original_time = report.received_at
    if keep_answers:
        answers = {**report.parsed.get("answers", {}), **(answers or {})}
        if status is None and report.parsed.get("pressed_status"):
            status = Status(report.parsed["pressed_status"])
    _restore(task, report.previous)
    _void_observations(session, report)
    _reopen_settled(session, report)
    applied = apply_report(
        session=session,
        task=task,
        contact=contact,
        text=text,
        now=now,
        calendar=calendar,
        source=report.source,
        source_ref=report.source_ref,
        reminder_id=report.reminder_id,
        report=report,
        status=status,
        answers=answers,
    )
    report.received_at = original_time
    events.record(
        session,
        EventType.PROGRESS_REVISED,
        at=now,
        plan_id=task.plan_id,
        task_id=task.id,
        contact_id=report.contact_id,
        report=report.id,
    )
    return applied


def _parsed_json(parsed: ParsedReply | None) -> dict[str, Any]:
    if parsed is None:
        return {}
    return {
        "status": parsed.status.value if parsed.status else None,
        # JSON number: an integer, or the decimal as written (float repr round-trips 85.07)
        "percent": None if parsed.percent is None else _json_percent(parsed.percent),
        "quantities": [
            {
                "metric": q.metric,
                "value": str(q.value) if isinstance(q.value, Decimal) else q.value,
                "unit": q.unit,
                "mode": q.mode,
                **({"mode_asked": True} if q.mode_asked else {}),
            }
            for q in parsed.quantities
        ],
        "share_percent": None if parsed.share_percent is None else str(parsed.share_percent),
        "expected_date": parsed.expected_date.isoformat() if parsed.expected_date else None,
        "help_departments": list(parsed.help_departments),
        "task_code": parsed.task_code,
        "is_correction": parsed.is_correction,
        "language": parsed.language,
        "ambiguities": list(parsed.ambiguities),
        "confidence": parsed.confidence,
    }


def unmatched_indexes(report: ProgressReport, targets: Sequence[Target]) -> list[int]:
    """Positions in the report's parsed quantities of numbers that count toward none of the task's targets."""
    metrics = {t.metric for t in targets}
    return [i for i, q in enumerate(report.parsed.get("quantities", [])) if q.get("metric") not in metrics]


def assign_quantity(
    *, session: Session, report: ProgressReport, index: int, target: Target, now: datetime, calendar: WorkCalendar
) -> tuple[float, str]:
    """The contact said which target an unclear number counts toward: record it as the report's observation
    (undo voids it with the rest of the report). Returns (value, mode)."""
    quantities = [dict(q) for q in report.parsed.get("quantities", [])]
    if report.voided or not 0 <= index < len(quantities) or target.task_id != report.task_id:
        raise ValueError("this question is no longer open")
    q = quantities[index]
    if q.get("assigned"):
        raise ValueError("this number was already counted")
    value, mode = float(q["value"]), q.get("mode") or "increment"
    obs = Observation(
        target_id=row_id(target),
        value=value,
        mode=mode,
        observed_on=report.received_at.astimezone(calendar.tz).date(),
        source="report",
        report_id=report.id,
        contact_id=report.contact_id,
        recorded_at=now,
    )
    session.add(obs)
    session.flush()
    q.update(metric=target.metric, assigned=True)
    report.parsed = {**report.parsed, "quantities": quantities}
    task = session.get(Task, report.task_id)
    plan_id = task.plan_id if task else None
    _observation_recorded(session, report, target, value, mode, plan_id=plan_id, now=now, chosen_by="contact")
    return value, mode


def _observation_recorded(
    session: Session,
    report: ProgressReport,
    target: Target,
    value: float,
    mode: str,
    *,
    plan_id: int | None,
    now: datetime,
    **extra: Any,
) -> None:
    events.record(
        session,
        EventType.OBSERVATION_RECORDED,
        at=now,
        plan_id=plan_id,
        task_id=report.task_id,
        contact_id=report.contact_id,
        metric=target.metric,
        value=value,
        unit=target.unit,  # an observation is in its target's unit (a growth or a rate: %)
        mode=mode,
        report=report.id,
        **extra,
    )


def _json_percent(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _bound_contacts(session: Session, department_id: int) -> Sequence[Contact]:
    """The department's bound contacts: who hears of a request for its help, and of its end."""
    return session.exec(
        select(Contact).where(
            Contact.department_id == department_id,
            Contact.role == Role.CONTACT,
            Contact.active,
            col(Contact.address).is_not(None),
        )
    ).all()
