"""What coordbot says back in chat: binding, commands, replies to reminders, button presses.

Channel-independent: a channel adapter turns its updates into :class:`Inbound` values and sends the
:class:`Reply` it gets back. Each inbound message is processed once (unique on channel + external id) in the
same transaction as everything it changes, so a crash means redelivery, never a half-applied message.

Who may do what: only bound contacts act, and only for their own department (lead or co-department of the
task); leaders read; the office administers (extensions, closing, digests). An unbound chat gets a short,
polite refusal and no data at all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.base import Button, ButtonAction, Inbound, Outbound, Reply
from coordbot.core import metrics
from coordbot.core.clock import Clock, SystemClock
from coordbot.core.db import insert_or_ignore, row_id, session_scope
from coordbot.core.text import labels, render
from coordbot.plan import actions
from coordbot.plan.contacts import BindError, contacts_for_address, redeem_invite
from coordbot.plan.models import (
    OPEN_STATUSES,
    Contact,
    Department,
    Extension,
    Plan,
    ProgressReport,
    Role,
    Task,
    TaskDepartment,
)
from coordbot.plan.queries import latest_reports, numeric_targets, task_quota_progress, tasks_quota_progress
from coordbot.replies.ambiguity import Ambiguity
from coordbot.replies.apply import (
    ALL_DEPARTMENTS,
    RATE_OR_PROGRESS,
    RATE_PROGRESS,
    Applied,
    NothingToRecord,
    NotYours,
    assign_quantity,
    may_report,
    rate_targets,
    report_as_contact,
    requests_note,
    revise_report,
    undo_report,
    unmatched_indexes,
)
from coordbot.replies.models import InboundMessage
from coordbot.replies.parser import MAX_CHARS, MODE_ANSWERS, SHARE_ANSWERS, Status
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.messages import status_buttons
from coordbot.scheduling.models import ReminderOccurrence

log = logging.getLogger("coordbot.replies")

TASK_CODE = re.compile(r"^\s*(?:任务|task\s*)?[【\[]?([A-Za-z]?\d+(?:\.\d+)*|[A-Za-z]\.\d+)[】\]]?[\s:：,，、]*", re.I)
REPLY_TASK = re.compile(
    r"任务\s*([A-Za-z]?\d+(?:\.\d+)*|[A-Za-z]\.\d+)|[Tt]ask\s+([A-Za-z]?\d+(?:\.\d+)*|[A-Za-z]\.\d+)"
)
STATUS_ACTIONS = {
    ButtonAction.DONE: Status.DONE,
    ButtonAction.ON_TRACK: Status.ON_TRACK,
    ButtonAction.AT_RISK: Status.AT_RISK,
    ButtonAction.BLOCKED: Status.BLOCKED,
}
STATUS_ROWS = ((ButtonAction.DONE, ButtonAction.ON_TRACK), (ButtonAction.AT_RISK, ButtonAction.BLOCKED))
# The questions a report's confirmation asks instead of guessing, by the button that answers: (the ambiguity
# it settles, the answers, each with its button's label in labels.yaml)
ANSWER_ACTIONS = {
    ButtonAction.SET_SHARE: (Ambiguity.SHARE_OR_PROGRESS, SHARE_ANSWERS),
    ButtonAction.SET_MODE: (Ambiguity.TOTAL_OR_INCREMENT, MODE_ANSWERS),
}


# What of an inbound message is kept (a report chosen later by a button, ``pick``, is read from it): the whole
# of any real message; beyond it, the confirmation says what was read.
INBOUND_TEXT_MAX = 100_000

_INBOUND_INSERTS: dict[str, Any] = {}


def _record_inbound_statement(s: Session) -> Any:
    """The de-duplicating INSERT of an inbound message, built once per dialect."""
    dialect = s.get_bind().dialect.name
    stmt = _INBOUND_INSERTS.get(dialect)
    if stmt is None:
        # sqlmodel's types declare no __table__ on table models (SQLAlchemy's mapping sets it)
        table = InboundMessage.__table__  # type: ignore[attr-defined]
        values = ("channel", "external_id", "received_at", "chat_id", "sender_id", "kind", "text")
        # On the table, not the entity: the ORM's bulk-insert path around a one-row INSERT cost more than it.
        stmt = _INBOUND_INSERTS[dialect] = (
            insert_or_ignore(s, table, key=("channel", "external_id"))
            .values({name: bindparam(name, type_=table.c[name].type) for name in values})
            .returning(table.c.id)
        )
    return stmt


# Statements of every update, built once (building one costs more than running it on SQLite).
# With its plan, which a report reads next: one round trip instead of two.
_TASK_BY_CODE = (
    select(Task, Plan)
    .join(Plan, col(Plan.id) == Task.plan_id)
    .where(
        Task.code == bindparam("code"),
        col(Task.archived_at).is_(None),
        # Only the plans of the person's organisations: another plan's 2.1 is not theirs to name.
        col(Plan.organisation_id).in_(bindparam("organisations", expanding=True)),
    )
    .order_by(col(Plan.code))
)
_ORGANISATIONS_OF = select(Department.organisation_id).where(
    col(Department.id).in_(bindparam("departments", expanding=True))
)


class AmbiguousTask(LookupError):
    """A task code that several plans of the person's organisation use, written without its plan."""

    def __init__(self, code: str, plans: list[str]) -> None:
        super().__init__(code)
        self.code = code
        self.plans = plans


_OPEN_TASKS = (
    select(Task)
    .where(
        col(Task.archived_at).is_(None),
        col(Task.status).in_(OPEN_STATUSES),
        (col(Task.lead_department_id) == bindparam("department_id"))
        | col(Task.id).in_(
            select(TaskDepartment.task_id).where(TaskDepartment.department_id == bindparam("department_id"))
        ),
    )
    .order_by(col(Task.position))
)


@dataclass
class Who:
    """The person behind an inbound message, with every binding they hold."""

    bindings: list[Contact]
    locale: str

    @property
    def contact(self) -> Contact | None:
        return next((c for c in self.bindings if c.role == Role.CONTACT), None)

    @property
    def office(self) -> Contact | None:
        return next((c for c in self.bindings if c.role == Role.OFFICE), None)

    @property
    def leader(self) -> Contact | None:
        return next((c for c in self.bindings if c.role == Role.LEADER), None)

    @property
    def primary(self) -> Contact:
        return self.contact or self.office or self.leader or self.bindings[0]


@dataclass(frozen=True, slots=True)
class Guard:
    """Who may give a command; the others get the error ``refusal``."""

    allows: Callable[[Who], bool]
    refusal: str


ANYONE = Guard(lambda who: True, "")
CONTACTS = Guard(lambda who: who.contact is not None, "contacts_only")
OFFICE = Guard(lambda who: who.office is not None, "office_only")
READERS = Guard(lambda who: who.office is not None or who.leader is not None, "readers_only")


def _locale(language: str) -> str:
    return "en" if language.lower().startswith("en") else "zh"


def _toast(text: str) -> str:
    """The short notice shown on a button press: the first line of the answer, in the person's language."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= 200 else line[:199] + "…"


class Conversation:
    def __init__(
        self,
        *,
        engine: Engine,
        calendar: WorkCalendar,
        clock: Clock | None = None,
        default_locale: str = "zh",
        reports: object | None = None,  # a callable (session, who, command) -> str for /digest and /summary
    ) -> None:
        self.engine = engine
        self.calendar = calendar
        self.clock = clock or SystemClock()
        self.default_locale = default_locale
        self.reports = reports

    # ---- entry point ---------------------------------------------------------------------------

    def handle(self, msg: Inbound, *, now: datetime | None = None) -> Reply | None:
        """Process one inbound message; ``None`` when it was processed before (or needs no answer).

        ``now``: when it arrived, by the caller's clock (a worker process has no clock of its own).
        """
        now = now or self.clock.now()
        with session_scope(self.engine) as s:
            inbound_id = self._record_inbound(s, msg, now)
            if inbound_id is None:
                return None
            return self._route(s, msg, inbound_id, now)

    def _record_inbound(self, s: Session, msg: Inbound, now: datetime) -> int | None:
        params = {
            "channel": msg.channel,
            "external_id": msg.external_id,
            "received_at": now,
            "chat_id": msg.chat_id,
            "sender_id": msg.sender_id,
            "kind": msg.kind,
            # An invite code is a credential until used: kept only hashed (plan.contacts), never in the log.
            "text": (msg.text.replace(msg.start_code, "****") if msg.start_code else msg.text)[:INBOUND_TEXT_MAX],
        }
        row = s.execute(_record_inbound_statement(s), params).first()
        return row[0] if row else None

    def _route(self, s: Session, msg: Inbound, inbound_id: int, now: datetime) -> Reply | None:
        # A deep link's /start CODE, or "绑定 CODE" on a channel without deep links (the adapter reads the code).
        if msg.start_code and (msg.kind == "message" or msg.command == "start"):
            return self._bind(s, msg, now)
        bindings = contacts_for_address(session=s, channel=msg.channel, address=msg.sender_id)
        if not bindings:
            refusal = render("chat/not_bound.html", locale=_locale(msg.language))
            if msg.is_group and msg.kind == "callback":
                return Reply("", alert=_toast(refusal))  # a member's tap on a group message: tell only them
            if msg.is_group and msg.kind != "command":
                return None  # people talking in a bound group who are not contacts: stay quiet
            return Reply(refusal, alert=_toast(refusal))
        who = Who(bindings, bindings[0].language or self.default_locale)
        # The plans a code typed here may name: those of the organisations the person's departments belong to.
        s.info["organisations"] = sorted(
            set(s.exec(_ORGANISATIONS_OF, params={"departments": [c.department_id for c in bindings]}))
        )
        try:
            if msg.kind == "callback":
                return self._button(s, msg, who, now, inbound_id)
            if msg.kind == "edited":
                return self._edited(s, msg, who, now)
            if msg.kind == "command":
                return self._command(s, msg, who, now)
            return self._free_text(s, msg, who, now, inbound_id)
        except AmbiguousTask as exc:
            return self._error(who, "ambiguous_task", f"{exc.code}|{'、'.join(exc.plans)}")

    # ---- binding -------------------------------------------------------------------------------

    def _bind(self, s: Session, msg: Inbound, now: datetime) -> Reply:
        # A group binds with the group chat as the address; a person with their own user id.
        address = msg.chat_id if msg.is_group else msg.sender_id
        try:
            with s.begin_nested():
                contact = redeem_invite(session=s, code=msg.start_code, channel=msg.channel, address=address, now=now)
        except BindError as exc:
            log.info("binding refused (%s) for a chat", exc.reason)  # no code, no chat id: nothing secret logged
            return Reply(render("chat/bind_failed.html", locale=_locale(msg.language), reason=exc.reason))
        dept = s.get(Department, contact.department_id)
        return Reply(
            render(
                "chat/welcome.html",
                locale=contact.language,
                contact=contact,
                department=dept.name if dept else "",
                role=contact.role,
            )
        )

    # ---- commands ------------------------------------------------------------------------------

    def _error(self, who: Who, code: str, arg: str = "") -> Reply:
        text = render("chat/error.html", locale=who.locale, code=code, arg=arg)
        return Reply(text, alert=_toast(text))

    def _command(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        command = COMMANDS.get(msg.command)
        if command is None:
            return self._error(who, "unknown_command")
        if not command.guard.allows(who):
            return self._error(who, command.guard.refusal)
        return command.handler(self, s, msg, who, now)

    def _cmd_help(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        return Reply(render("chat/help.html", locale=who.locale, role=who.primary.role))

    def _cmd_whoami(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        depts = {d.id: d for d in s.exec(ALL_DEPARTMENTS)}
        bindings = [{"name": c.name, "role": c.role, "department": depts[c.department_id].name} for c in who.bindings]
        return Reply(render("chat/whoami.html", locale=who.locale, bindings=bindings))

    def _cmd_tasks(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        return self._tasks(s, who, now)

    def _cmd_report(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        code, _, text = msg.args.strip().partition(" ")
        if not code or not text.strip():
            return self._error(who, "usage_report")
        return self._report_on_code(s, who, code, text.strip(), now, source="command", ref=msg.message_ref)

    def _cmd_status(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        """/done and /blocked (which needs a reason)."""
        code, _, reason = msg.args.strip().partition(" ")
        if not code or (msg.command == "blocked" and not reason.strip()):
            return self._error(who, f"usage_{msg.command}")
        status = Status.DONE if msg.command == "done" else Status.BLOCKED
        return self._report_on_code(
            s, who, code, reason.strip(), now, source="command", status=status, ref=msg.message_ref
        )

    def _cmd_extend(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        return self._extend(s, who, msg.args.strip(), now)

    def _cmd_overdue(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        return self._overdue(s, who)

    def _cmd_decide(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        """/approve and /reject an extension: ``/approve 12`` or ``#e12``."""
        return self._decide(s, who, msg.args.strip().lstrip("#"), approve=msg.command == "approve", now=now)

    def _cmd_close(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        args = msg.args.strip()
        task = self._find_task(s, args)
        if task is None:
            return self._error(who, "no_task", args)
        office = who.office
        assert office is not None  # the OFFICE guard
        try:
            actions.close_task(session=s, task=task, actor=f"office:{office.id}", now=now)
        except actions.ActionError as exc:
            return self._error(who, "not_allowed", str(exc))
        return Reply(render("chat/closed.html", locale=who.locale, task=task))

    def _cmd_reports(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply:
        """/digest and /summary, when the conversation was given the reports."""
        if not callable(self.reports):
            return self._error(who, "unknown_command")
        return Reply(self.reports(s, who, msg.command, now))

    def _find_task(self, s: Session, code: str) -> Task | None:
        """The task with this code among the person's plans; ``CODE@PLAN`` names the plan when several of
        them use the code (else :class:`AmbiguousTask`)."""
        code = code.strip().strip("【】[]").removeprefix("任务")
        code, _, plan_code = code.partition("@")
        if not code:
            return None
        rows = s.exec(_TASK_BY_CODE, params={"code": code, "organisations": s.info.get("organisations", [])}).all()
        if plan_code:
            rows = [r for r in rows if r[1].code == plan_code]
        if len(rows) > 1:
            raise AmbiguousTask(code, [r[1].code for r in rows])
        row = rows[0] if rows else None
        if row is None:
            return None
        # The identity map holds instances weakly: keep the plan for this session, for session.get to find.
        s.info.setdefault("loaded", []).append(row[1])
        return row[0]

    def _may_report(self, s: Session, contact: Contact, task: Task) -> bool:
        return may_report(s, contact, task)

    def _open_tasks(self, s: Session, department_id: int) -> list[Task]:
        return list(s.exec(_OPEN_TASKS, params={"department_id": department_id}))

    def _tasks(self, s: Session, who: Who, now: datetime) -> Reply:
        today = now.astimezone(self.calendar.tz).date()
        if who.office is not None:
            tasks = list(
                s.exec(
                    select(Task)
                    .join(Plan, col(Plan.id) == Task.plan_id)
                    .where(col(Task.archived_at).is_(None), col(Plan.organisation_id).in_(s.info["organisations"]))
                    .order_by(col(Plan.code), col(Task.position))
                )
            )
            title = "全部任务" if who.locale == "zh" else "All tasks"
        else:
            me = who.contact or who.leader
            assert me is not None  # bound, not the office: a contact or a leader (group robots only send)
            tasks = self._open_tasks(s, me.department_id)
            dept = s.get(Department, me.department_id)
            title = (dept.short_name or dept.name) if dept else ""
        ids = [row_id(t) for t in tasks]
        last = latest_reports(session=s, task_ids=ids)
        quotas = tasks_quota_progress(session=s, tasks=tasks, today=today)
        rows = [
            {
                "code": t.code,
                "title": t.title,
                "colour": t.colour,
                "status": t.status,
                "progress": t.progress,
                "due_date": t.due_date,
                "quotas": quotas[tid],
                "last_report": last[tid].text if tid in last else "",
                "last_report_at": last[tid].received_at if tid in last else None,
            }
            for t, tid in zip(tasks, ids, strict=True)
        ]
        return Reply(render("chat/tasks.html", locale=who.locale, title=title, tasks=rows, tz=self.calendar.tz.key))

    def _overdue(self, s: Session, who: Who) -> Reply:
        depts = {d.id: d for d in s.exec(ALL_DEPARTMENTS)}
        tasks = s.exec(
            select(Task)
            .join(Plan, col(Plan.id) == Task.plan_id)
            .where(
                col(Task.archived_at).is_(None),
                col(Task.colour).in_(["red", "yellow"]),
                col(Task.status).in_(OPEN_STATUSES),
                col(Plan.organisation_id).in_(s.info["organisations"]),
            )
            .order_by(col(Task.colour).desc(), col(Task.position))
        ).all()
        rows = [
            {
                "code": t.code,
                "title": t.title,
                "colour": t.colour,
                "colour_reason": t.colour_reason,
                "due_date": t.due_date,
                "department": depts[t.lead_department_id].short_name or depts[t.lead_department_id].name,
            }
            for t in tasks
        ]
        return Reply(render("chat/overdue.html", locale=who.locale, tasks=rows))

    def _extend(self, s: Session, who: Who, args: str, now: datetime) -> Reply:
        parts = args.split(None, 2)
        if len(parts) < 3:
            return self._error(who, "usage_extend")
        code, when, reason = parts
        task = self._find_task(s, code)
        if task is None:
            return self._error(who, "no_task", code)
        contact = who.contact
        assert contact is not None  # the CONTACTS guard
        joint = s.get(TaskDepartment, (task.id, contact.department_id))  # one of several leads asks too
        is_lead = task.lead_department_id == contact.department_id or (joint is not None and joint.role == "lead")
        if not self._may_report(s, contact, task) or not is_lead:
            return self._error(who, "not_yours", code)
        try:
            new_due = date.fromisoformat(when)
        except ValueError:
            return self._error(who, "bad_date", when)
        try:
            with s.begin_nested():
                ext = actions.request_extension(
                    session=s, task=task, new_due=new_due, reason=reason, contact=contact, now=now
                )
        except actions.ActionError as exc:
            return self._error(who, "not_allowed", str(exc))
        reply = Reply(
            render(
                "chat/extension_requested.html", locale=who.locale, task=task, old_due=ext.old_due, new_due=ext.new_due
            )
        )
        dept = s.get(Department, task.lead_department_id)
        for office in s.exec(
            select(Contact).where(Contact.role == Role.OFFICE, Contact.active, col(Contact.address).is_not(None))
        ):
            if office.address is None:  # the query wants an address: for the type checker
                continue
            words = labels(office.language)["buttons"]
            text = render(
                "chat/extension_notice.html",  # .html: autoescaped, as it is sent as Telegram HTML
                locale=office.language,
                ext=ext,
                task=task,
                department=dept.short_name or dept.name if dept else "",
            )
            reply.extra.append(
                Outbound(
                    office.address,
                    text,
                    buttons=(
                        (
                            Button(words["approve"], ButtonAction.APPROVE, f"e{ext.id}"),
                            Button(words["reject"], ButtonAction.REJECT, f"e{ext.id}"),
                        ),
                    ),
                )
            )
        return reply

    def _decide(self, s: Session, who: Who, ext_ref: str, *, approve: bool, now: datetime) -> Reply:
        ext_id = ext_ref.lstrip("e")
        ext = s.get(Extension, int(ext_id)) if ext_id.isdigit() else None
        if ext is None:
            return self._error(who, "gone")
        office = who.office
        assert office is not None  # the OFFICE guard (the command's, or _press_decide's)
        try:
            actions.decide_extension(
                session=s,
                extension=ext,
                approve=approve,
                decided_by=f"office:{office.id}",
                now=now,
            )
        except actions.ActionError as exc:
            return self._error(who, "not_allowed", str(exc))
        task = s.get(Task, ext.task_id)
        reply = Reply(render("chat/extension_decided.html", locale=who.locale, ext=ext, task=task))
        requester = s.get(Contact, ext.requested_by_id) if ext.requested_by_id else None
        if requester is not None and requester.address:
            reply.extra.append(
                Outbound(
                    requester.address,
                    render("chat/extension_decided.html", locale=requester.language, ext=ext, task=task),
                )
            )
        return reply

    # ---- progress reports ----------------------------------------------------------------------

    def _report_on_code(
        self,
        s: Session,
        who: Who,
        code: str,
        text: str,
        now: datetime,
        *,
        source: str,
        status: Status | None = None,
        ref: str = "",
    ) -> Reply:
        task = self._find_task(s, code)
        if task is None:
            return self._error(who, "no_task", code)
        return self._report(s, who, task, text, now, source=source, status=status, ref=ref)

    def _report(
        self,
        s: Session,
        who: Who,
        task: Task,
        text: str,
        now: datetime,
        *,
        source: str,
        status: Status | None = None,
        ref: str = "",
        reminder_id: int | None = None,
    ) -> Reply:
        contact = who.contact
        if contact is None:
            return self._error(who, "contacts_only")
        try:
            applied = report_as_contact(
                session=s,
                contact=contact,
                task=task,
                text=text,
                now=now,
                calendar=self.calendar,
                source=source,
                source_ref=ref or None,
                reminder_id=reminder_id,
                status=status,
            )
        except NotYours:
            return self._error(who, "not_yours", task.code)
        except NothingToRecord:
            # "1.3", "1.3 👍", "1.3 ？": nothing recorded, nothing changed (the inbound row stays, for
            # de-duplication); ask what to record, with the reminder's buttons.
            metrics.parse_outcome("no_information")
            ref = f"o{reminder_id}" if reminder_id is not None else f"t{task.id}"
            return Reply(
                render("chat/ask_what.html", locale=who.locale, code=task.code),
                buttons=status_buttons(ref, who.locale),
            )
        metrics.parsed(applied.ambiguities)
        return self._confirm(s, who, applied, now)

    def _confirm(self, s: Session, who: Who, applied: Applied, now: datetime) -> Reply:
        task, report = applied.task, applied.report
        progress = {q.metric: q for q in applied.quotas}  # what apply_report computed after the report
        today = now.astimezone(self.calendar.tz).date()
        quantities = []
        for t, v, m in applied.quantities:
            q = progress.get(t.metric)
            quantities.append(
                {
                    "name": t.name,
                    "value": v,
                    "mode": m,
                    "period": t.period,
                    "actual": q.actual if q else None,
                    "goal": q.goal if q else None,
                    # a rate or growth: the value said against the target, judged only at the period's end
                    "measure": t.measure,
                    "unit": t.unit,
                    "about": t.about,
                    "tolerance": t.tolerance,
                    "judged": q is not None and q.period_end is not None and today >= q.period_end,
                    "reached": q.reached if q else None,
                }
            )
        text = render(
            "chat/report_confirm.html",
            locale=who.locale,
            task=task,
            status=report.status,
            percent=report.percent,
            quantities=quantities,
            expected_date=report.expected_date,
            help=[d.short_name or d.name for d in applied.help_departments],
            unmatched=[f"{q.value.normalize():f}{q.unit}" for q in applied.unmatched],
            colour=task.colour,
            task_status=task.status,
            read_chars=MAX_CHARS if Ambiguity.TEXT_TRUNCATED in applied.ambiguities else 0,
            total_chars=len(report.text),
        )
        text += requests_note(s, applied, who.locale)  # requests for help the report settled, or may have
        words = labels(who.locale)["buttons"]
        buttons: tuple[tuple[Button, ...], ...] = ((Button(words["undo"], ButtonAction.UNDO, f"p{report.id}"),),)
        if applied.unmatched:
            # A number that fits no target, or several: ask which one, with a button per target.
            targets = numeric_targets(session=s, task_id=row_id(task))
            open_numbers = unmatched_indexes(report, targets)
            if targets and open_numbers:
                first = applied.unmatched[0]
                text += "\n" + render(
                    "chat/ask_quantity.html", locale=who.locale, number=f"{first.value.normalize():f}{first.unit}"
                )
                choices = [
                    Button(t.name[:30], ButtonAction.SET_QUANTITY, f"p{report.id}:{open_numbers[0]}:{k}")
                    for k, t in enumerate(targets[:8])
                ]
                buttons = (*(tuple(choices[k : k + 2]) for k in range(0, len(choices), 2)), *buttons)
        if Ambiguity.CONFLICTING_STATUS in applied.ambiguities:
            text += "\n" + render("chat/ask_status.html", locale=who.locale, code=task.code)
            buttons = (
                tuple(Button(words[a], ButtonAction.SET_STATUS, f"p{report.id}:{a}") for a in STATUS_ROWS[0]),
                tuple(Button(words[a], ButtonAction.SET_STATUS, f"p{report.id}:{a}") for a in STATUS_ROWS[1]),
                *buttons,
            )
        asked = report.parsed.get("ambiguities", [])
        share = report.parsed.get("share_percent")
        if Ambiguity.SHARE_OR_PROGRESS in asked and share is not None:
            # 占年度计划的30% with nothing said done: the percent is not progress until the contact says so
            text += "\n" + render("chat/ask_share.html", locale=who.locale, percent=share)
            row = tuple(Button(words[f"share_{a}"], ButtonAction.SET_SHARE, f"p{report.id}:{a}") for a in SHARE_ANSWERS)
            buttons = (row, *buttons)
        rate_percent = report.parsed.get("rate_percent")
        if RATE_OR_PROGRESS in asked and rate_percent is not None:
            # 目前达到96% on a task with a rate target: its value, or the task's completion? (not guessed)
            rated = rate_targets(numeric_targets(session=s, task_id=row_id(task)))
            text += "\n" + render(
                "chat/ask_rate.html", locale=who.locale, percent=rate_percent, names=[t.name for t in rated]
            )
            choices = [Button(t.name[:30], ButtonAction.SET_RATE, f"p{report.id}:{k}") for k, t in enumerate(rated[:6])]
            choices.append(Button(words["rate_progress"], ButtonAction.SET_RATE, f"p{report.id}:{RATE_PROGRESS}"))
            buttons = (*(tuple(choices[k : k + 2]) for k in range(0, len(choices), 2)), *buttons)
        if applied.asked_modes:
            # 截至9月底… then a bare 3项: not counted until the contact says so far or new
            numbers = "、".join(q.evidence or f"{q.value.normalize():f}{q.unit}" for q in applied.asked_modes)
            text += "\n" + render("chat/ask_mode.html", locale=who.locale, number=numbers)
            row = tuple(Button(words[f"mode_{a}"], ButtonAction.SET_MODE, f"p{report.id}:{a}") for a in MODE_ANSWERS)
            buttons = (row, *buttons)
        return Reply(text, buttons=buttons)

    def _set_quantity(self, s: Session, who: Who, ref: str, now: datetime) -> Reply:
        """Count an unclear number toward the target the contact chose."""
        report_id, _, rest = ref[1:].partition(":")
        index, _, choice = rest.partition(":")
        report = s.get(ProgressReport, int(report_id)) if report_id.isdigit() else None
        if report is None or who.contact is None or report.contact_id != who.contact.id or not index.isdigit():
            return self._error(who, "gone")
        targets = numeric_targets(session=s, task_id=report.task_id)
        if not choice.isdigit() or int(choice) >= len(targets):
            return self._error(who, "gone")
        target = targets[int(choice)]
        try:
            value, mode = assign_quantity(
                session=s, report=report, index=int(index), target=target, now=now, calendar=self.calendar
            )
        except ValueError:
            return self._error(who, "gone")
        task = s.get(Task, report.task_id)
        assert task is not None  # a report's task (a foreign key)
        today = now.astimezone(self.calendar.tz).date()
        quotas = task_quota_progress(session=s, task=task, today=today)
        quota = next((q for q in quotas if q.metric == target.metric), None)
        text = render(
            "chat/quantity_assigned.html", locale=who.locale, target=target, value=value, mode=mode, quota=quota
        )
        return Reply(text, alert=_toast(text))

    def _task_for_reply(
        self, s: Session, msg: Inbound
    ) -> tuple[Task | None, int | None, list[tuple[Task, int | None]]]:
        """The task a reply is about: the reminder it answers, or the task named in the message it answers.

        A reply to a message that asked about several tasks returns them as candidates (task, reminder id);
        the caller looks for a task code in the text or asks which one.
        """
        if msg.reply_to_ref:
            occs = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.message_ref == msg.reply_to_ref)).all()
            found = [(s.get(Task, o.task_id), o.id) for o in occs if o.task_id is not None]
            candidates = sorted(((t, oid) for t, oid in found if t is not None), key=lambda c: c[0].position)
            if len(candidates) == 1:
                return candidates[0][0], candidates[0][1], []
            if candidates:
                return None, None, candidates
        if msg.reply_to_text:
            m = REPLY_TASK.search(msg.reply_to_text)
            if m:
                return self._find_task(s, m.group(1) or m.group(2)), None, []
        return None, None, []

    def _free_text(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply | None:
        if who.contact is None:
            if msg.is_group:
                return None
            return Reply(render("chat/help.html", locale=who.locale, role=who.primary.role))
        text = msg.text.strip()
        if not text:
            return None
        task, reminder_id, candidates = self._task_for_reply(s, msg)
        if task is None:
            m = TASK_CODE.match(text)
            if m:
                task = self._find_task(s, m.group(1))
                if task is not None:
                    text = text[m.end() :].strip() or text
                    reminder_id = next((oid for t, oid in candidates if t.id == task.id), None)
        if task is None and candidates:
            buttons = tuple(
                (Button(f"{t.code} {t.title}"[:40], ButtonAction.PICK, f"i{inbound_id}:{t.code}"),)
                for t, _ in candidates[:12]
            )
            return Reply(render("chat/ask_task.html", locale=who.locale), buttons=buttons)
        if task is None:
            if msg.is_group and not msg.reply_to_ref:
                return None  # ordinary group chatter is not a report
            mine = self._open_tasks(s, who.contact.department_id)
            if not mine:
                return self._error(who, "no_open_task")
            if len(mine) == 1:
                task = mine[0]
            else:
                buttons = tuple(
                    (Button(f"{t.code} {t.title}"[:40], ButtonAction.PICK, f"i{inbound_id}:{t.code}"),)
                    for t in mine[:12]
                )
                return Reply(render("chat/ask_task.html", locale=who.locale), buttons=buttons)
        return self._report(s, who, task, text, now, source="chat", ref=msg.message_ref, reminder_id=reminder_id)

    def _edited(self, s: Session, msg: Inbound, who: Who, now: datetime) -> Reply | None:
        report = s.exec(
            select(ProgressReport).where(ProgressReport.source_ref == msg.message_ref, ~col(ProgressReport.voided))
        ).first()
        if report is None:
            return self._free_text(s, msg, who, now, inbound_id=0) if msg.message_ref else None
        if who.contact is None or report.contact_id != who.contact.id:
            return self._error(who, "gone")
        text = msg.text.strip()
        m = TASK_CODE.match(text)
        task = s.get(Task, report.task_id)
        if m and task is not None and m.group(1) == task.code:
            text = text[m.end() :].strip() or text  # as the original was stored: without the task code
        applied = revise_report(session=s, report=report, text=text, now=now, calendar=self.calendar)
        return self._confirm(s, who, applied, now)

    # ---- buttons -------------------------------------------------------------------------------

    def _may_answer(self, s: Session, msg: Inbound, who: Who, occ: ReminderOccurrence) -> bool:
        """A reminder's buttons are for the person it was sent to, or, for a reminder sent to a bound group,
        for the contacts in that group (whether they may report on the task is checked next)."""
        if occ.contact_id in {c.id for c in who.bindings}:
            return True
        recipient = s.get(Contact, occ.contact_id)
        return msg.is_group and recipient is not None and recipient.address == msg.chat_id

    def _button(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        try:
            action = ButtonAction(msg.callback_action)
        except ValueError:  # a button of an older coordbot, or made up
            return self._error(who, "gone")
        return BUTTONS[action](self, s, msg, who, now, inbound_id)

    def _press_status(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        """A reminder's buttons: a status (reported at once) or "report" (asks for the text).

        The same buttons answer "what should be recorded?" after an empty reply: ``o<occurrence id>`` when it
        answered a reminder, else ``t<task id>`` (whether the contact may report on it is checked by _report).
        """
        ref = msg.callback_ref
        occ: ReminderOccurrence | None = None
        if ref.startswith("t") and ref[1:].isdigit():
            task = s.get(Task, int(ref[1:]))
            if task is not None and task.archived_at is not None:
                task = None
        else:
            occ = s.get(ReminderOccurrence, int(ref[1:])) if ref.startswith("o") and ref[1:].isdigit() else None
            task = s.get(Task, occ.task_id) if occ and occ.task_id else None
            if occ is not None and not self._may_answer(s, msg, who, occ):
                task = None
        if task is None or who.contact is None:
            return self._error(who, "gone")
        if msg.callback_action == ButtonAction.REPORT:
            return Reply(render("chat/ask_report.html", locale=who.locale, code=task.code), ask_reply=True)
        status = STATUS_ACTIONS[ButtonAction(msg.callback_action)]
        return self._report(
            s, who, task, "", now, source="button", status=status, reminder_id=occ.id if occ is not None else None
        )

    def _press_set_quantity(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        return self._set_quantity(s, who, msg.callback_ref, now)

    def _own_report(self, s: Session, who: Who, ref: str) -> tuple[ProgressReport | None, str]:
        """The live report a confirmation's button is about (``p<id>[:value]``), if it is the presser's own."""
        report_id, _, value = ref[1:].partition(":")
        report = s.get(ProgressReport, int(report_id)) if report_id.isdigit() else None
        if report is None or who.contact is None or report.contact_id != who.contact.id or report.voided:
            return None, value
        return report, value

    def _press_undo(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        report, _ = self._own_report(s, who, msg.callback_ref)
        contact = who.contact
        if report is None or contact is None:  # a report only when it is the contact's own
            return self._error(who, "gone")
        try:
            task = undo_report(session=s, report=report, now=now, actor=f"contact:{contact.id}")
        except ValueError as exc:
            return self._error(who, "not_allowed", str(exc))
        text = render("chat/undone.html", locale=who.locale, task=task)
        return Reply(text, alert=_toast(text))

    def _press_set_status(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        """The answer to "which status did you mean?": the report is revised with it."""
        report, value = self._own_report(s, who, msg.callback_ref)
        if report is None or value not in STATUS_ACTIONS:
            return self._error(who, "gone")
        applied = revise_report(
            session=s,
            report=report,
            text=report.text,
            now=now,
            calendar=self.calendar,
            status=STATUS_ACTIONS[ButtonAction(value)],
            keep_answers=True,
        )
        return self._confirm(s, who, applied, now)

    def _press_answer(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        """The answer to "completion or only a share?" and "so far or new?": the report is revised as if its
        text had said so (the same apply path and events; undo restores the task as before the report)."""
        question, choices = ANSWER_ACTIONS[ButtonAction(msg.callback_action)]
        report, value = self._own_report(s, who, msg.callback_ref)
        if report is None or value not in choices or question not in report.parsed.get("ambiguities", []):
            return self._error(who, "gone")  # not asked, or answered already
        applied = revise_report(
            session=s,
            report=report,
            text=report.text,
            now=now,
            calendar=self.calendar,
            answers={question: value},
            keep_answers=True,
        )
        return self._confirm(s, who, applied, now)

    def _press_rate(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        """The answer to "a rate's value, or completion?": the report is revised as if the text had said which
        (a rate target's index among the task's rate targets, or ``progress``)."""
        report, value = self._own_report(s, who, msg.callback_ref)
        if report is None or RATE_OR_PROGRESS not in report.parsed.get("ambiguities", []):
            return self._error(who, "gone")  # not asked, or answered already
        rated = rate_targets(numeric_targets(session=s, task_id=report.task_id))
        if value == RATE_PROGRESS:
            answer = RATE_PROGRESS
        elif value.isdigit() and int(value) < len(rated):
            answer = rated[int(value)].metric
        else:
            return self._error(who, "gone")
        applied = revise_report(
            session=s,
            report=report,
            text=report.text,
            now=now,
            calendar=self.calendar,
            answers={RATE_OR_PROGRESS: answer},
            keep_answers=True,
        )
        return self._confirm(s, who, applied, now)

    def _press_pick(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        """The answer to "which task is this about?": the original message is reported on that task."""
        inbound_ref, _, code = msg.callback_ref[1:].partition(":")
        original = s.get(InboundMessage, int(inbound_ref)) if inbound_ref.isdigit() else None
        task = self._find_task(s, code)
        if original is None or task is None or original.sender_id != msg.sender_id:
            return self._error(who, "gone")
        return self._report(s, who, task, original.text, now, source="chat", ref="")

    def _press_decide(self, s: Session, msg: Inbound, who: Who, now: datetime, inbound_id: int) -> Reply:
        if not OFFICE.allows(who):
            return self._error(who, OFFICE.refusal)
        approve = msg.callback_action == ButtonAction.APPROVE
        return self._decide(s, who, msg.callback_ref, approve=approve, now=now)


CommandHandler = Callable[[Conversation, Session, Inbound, Who, datetime], Reply]
ButtonHandler = Callable[[Conversation, Session, Inbound, Who, datetime, int], Reply]


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # "tasks" for /tasks
    guard: Guard
    handler: CommandHandler


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("start", ANYONE, Conversation._cmd_help),  # /start without an invitation code
        Command("help", ANYONE, Conversation._cmd_help),
        Command("whoami", ANYONE, Conversation._cmd_whoami),
        Command("tasks", ANYONE, Conversation._cmd_tasks),
        Command("report", CONTACTS, Conversation._cmd_report),
        Command("done", CONTACTS, Conversation._cmd_status),
        Command("blocked", CONTACTS, Conversation._cmd_status),
        Command("extend", CONTACTS, Conversation._cmd_extend),
        Command("overdue", OFFICE, Conversation._cmd_overdue),
        Command("approve", OFFICE, Conversation._cmd_decide),
        Command("reject", OFFICE, Conversation._cmd_decide),
        Command("close", OFFICE, Conversation._cmd_close),
        Command("digest", OFFICE, Conversation._cmd_reports),
        Command("summary", READERS, Conversation._cmd_reports),
    )
}

BUTTONS: dict[ButtonAction, ButtonHandler] = {
    ButtonAction.DONE: Conversation._press_status,
    ButtonAction.ON_TRACK: Conversation._press_status,
    ButtonAction.AT_RISK: Conversation._press_status,
    ButtonAction.BLOCKED: Conversation._press_status,
    ButtonAction.REPORT: Conversation._press_status,
    ButtonAction.SET_QUANTITY: Conversation._press_set_quantity,
    ButtonAction.UNDO: Conversation._press_undo,
    ButtonAction.SET_STATUS: Conversation._press_set_status,
    ButtonAction.SET_SHARE: Conversation._press_answer,
    ButtonAction.SET_MODE: Conversation._press_answer,
    ButtonAction.SET_RATE: Conversation._press_rate,
    ButtonAction.PICK: Conversation._press_pick,
    ButtonAction.APPROVE: Conversation._press_decide,
    ButtonAction.REJECT: Conversation._press_decide,
}
