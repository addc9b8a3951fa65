"""Plan operations on the database: import a plan file, read the plan back.

Keyword-only functions over a session; the caller owns the transaction, so an import is all or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypedDict

from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.clock import utcnow
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.plan.contacts import add_address, routes
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import (
    Contact,
    Department,
    DepartmentPublic,
    Plan,
    Target,
    TargetPublic,
    Task,
    TaskDepartment,
    TaskGroup,
    TaskPublic,
)
from coordbot.plan.schema import ContactIn, DepartmentIn, GroupIn, PlanFile, PlanMeta, TargetIn, TaskIn


@dataclass
class ImportReport:
    plan_code: str
    created: bool = False
    changes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _apply(obj: Any, values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Set changed attributes; return {field: (old, new)} for those that changed."""
    diff: dict[str, tuple[Any, Any]] = {}
    for name, new in values.items():
        old = getattr(obj, name)
        if old != new:
            diff[name] = (old, new)
            setattr(obj, name, new)
    return diff


def _fmt(diff: dict[str, tuple[Any, Any]]) -> str:
    def short(v: Any) -> str:
        s = v.isoformat() if isinstance(v, date) else str(v)
        return s if len(s) <= 40 else s[:37] + "…"

    return ", ".join(f"{k}: {short(a)} → {short(b)}" for k, (a, b) in diff.items())


def target_values(t: TargetIn, *, plan_id: int, task_id: int | None) -> dict[str, Any]:
    """The ``Target`` columns a plan or decisions file sets (all but ``metric``, the row's key).

    ``archived_at`` is None: a target the file names again is live again.
    """
    return {
        "plan_id": plan_id,
        "task_id": task_id,
        "name": t.name,
        "unit": t.unit,
        "comparator": t.comparator,
        "value": t.value,
        "baseline": t.baseline,
        "period": t.period,
        "start_date": t.start,
        "due_date": t.due,
        "aliases": list(t.aliases),
        "description": t.description,
        "source_text": t.source,
        "archived_at": None,
    }


class _PlanValues(TypedDict):
    """The ``Plan`` columns a plan file sets (all but ``code``, the row's key)."""

    title: str
    issuer: str
    document_no: str
    timezone: str
    start_date: date
    end_date: date
    source_file: str
    reminder_policy: dict[str, Any]


class _DepartmentValues(TypedDict):
    name: str
    short_name: str
    kind: str
    aliases: list[str]


class _GroupValues(TypedDict):
    title: str
    kind: str
    position: int


def _task_values(t: TaskIn, *, plan: Plan, group_id: int, lead_id: int, position: int) -> dict[str, Any]:
    return {
        "group_id": group_id,
        "title": t.title,
        "description": t.description,
        "source_text": t.source,
        "lead_department_id": lead_id,
        "assignment": t.assignment,
        "kind": t.kind,
        "start_date": t.start or plan.start_date,
        "dated_events": [e.model_dump() for e in t.events],
        "reminder_policy": dict(t.reminders),
        "position": position,
    }


def import_plan(
    *, session: Session, loaded: LoadedPlan, actor: str = "cli", now: datetime | None = None
) -> ImportReport:
    """Create or update the plan from a validated file. Idempotent; removed tasks are archived, never deleted."""
    data = loaded.data
    report = ImportReport(plan_code=data.plan.code)
    plan = _upsert_plan(session, data.plan, report)
    run = _ImportRun(session=session, plan=plan, plan_id=row_id(plan), actor=actor, now=now or utcnow(), report=report)
    depts = _upsert_departments(run, data.departments)
    groups = _upsert_groups(run, data.groups)
    tasks = {t.code: t for t in session.exec(select(Task).where(Task.plan_id == plan.id)).all()}
    targets = _TargetSync(run, {t.metric: t for t in session.exec(select(Target).where(Target.plan_id == plan.id))})
    seen_tasks = _upsert_tasks(run, data, depts=depts, groups=groups, tasks=tasks, targets=targets)
    for goal in data.goals:
        targets.upsert(goal, task_id=None, label="plan goal")
    # What the file no longer names is archived, not deleted: reminders, reports and events still refer to it.
    _archive_removed_tasks(run, tasks, seen_tasks)
    targets.archive_unseen()
    _upsert_contacts(run, data.contacts, depts)
    _record_import(run, loaded, tasks=len(seen_tasks), targets=len(targets.seen))
    session.flush()
    return report


@dataclass(frozen=True)
class _ImportRun:
    """What every step of one import shares: the transaction, the plan row, who and when, and the report."""

    session: Session
    plan: Plan
    plan_id: int
    actor: str
    now: datetime
    report: ImportReport

    def say(self, change: str) -> None:
        self.report.changes.append(change)


def _upsert_plan(session: Session, meta: PlanMeta, report: ImportReport) -> Plan:
    plan = session.exec(select(Plan).where(Plan.code == meta.code)).first()
    plan_values = _PlanValues(
        title=meta.title,
        issuer=meta.issuer,
        document_no=meta.document_no,
        timezone=meta.timezone,
        start_date=meta.start,
        end_date=meta.end,
        source_file=meta.source,
        reminder_policy=dict(meta.reminders),
    )
    if plan is None:
        plan = Plan(code=meta.code, **plan_values)
        session.add(plan)
        session.flush()
        report.created = True
        report.changes.append(f"+ plan {meta.code} {meta.title}")
    elif diff := _apply(plan, plan_values):
        report.changes.append(f"~ plan {meta.code}: {_fmt(diff)}")
    return plan


def _upsert_departments(run: _ImportRun, departments: list[DepartmentIn]) -> dict[str, Department]:
    """Every department by code. Departments are shared across plans: created and updated, never removed."""
    depts = {d.code: d for d in run.session.exec(select(Department)).all()}
    for d in departments:
        values = _DepartmentValues(name=d.name, short_name=d.short_name, kind=d.kind, aliases=list(d.aliases))
        if d.code not in depts:
            depts[d.code] = Department(code=d.code, **values)
            run.session.add(depts[d.code])
            run.say(f"+ department {d.code} {d.name}")
        elif diff := _apply(depts[d.code], values):
            run.say(f"~ department {d.code}: {_fmt(diff)}")
    run.session.flush()
    return depts


def _upsert_groups(run: _ImportRun, groups_in: list[GroupIn]) -> dict[str, TaskGroup]:
    groups = {g.code: g for g in run.session.exec(select(TaskGroup).where(TaskGroup.plan_id == run.plan_id)).all()}
    for pos, g in enumerate(groups_in):
        values = _GroupValues(title=g.title, kind=g.kind, position=pos)
        if g.code not in groups:
            groups[g.code] = TaskGroup(plan_id=run.plan_id, code=g.code, **values)
            run.session.add(groups[g.code])
            run.say(f"+ group {g.code} {g.title}")
        elif diff := _apply(groups[g.code], values):
            run.say(f"~ group {g.code}: {_fmt(diff)}")
    run.session.flush()
    return groups


def _upsert_tasks(
    run: _ImportRun,
    data: PlanFile,
    *,
    depts: dict[str, Department],
    groups: dict[str, TaskGroup],
    tasks: dict[str, Task],
    targets: _TargetSync,
) -> set[str]:
    """Every task of the file, in file order, with its co-departments and targets; returns the codes seen.
    ``tasks`` (the plan's task rows by code) gains the new ones."""
    dept_codes = {d.id: d.code for d in depts.values()}
    seen: set[str] = set()
    for pos, (g, t) in enumerate(data.tasks()):
        seen.add(t.code)
        lead = depts[t.lead]
        values = _task_values(t, plan=run.plan, group_id=row_id(groups[g.code]), lead_id=row_id(lead), position=pos)
        existing = tasks.get(t.code)
        task, co_from_file = _upsert_task(run, t, values, existing=existing, lead=lead)
        tasks[t.code] = task
        _sync_co_departments(
            run, t, task, depts=depts, dept_codes=dept_codes, co_from_file=co_from_file, is_new=existing is None
        )
        for target in t.targets:
            targets.upsert(target, task_id=task.id, label=f"task {t.code}")
    return seen


def _upsert_task(
    run: _ImportRun, t: TaskIn, values: dict[str, Any], *, existing: Task | None, lead: Department
) -> tuple[Task, bool]:
    """Create the task or apply what the file changed since the last import; True when its co-departments
    are the file's to set (a new task, or the file changed them)."""
    file_due = t.due or (run.plan.end_date if t.kind == "one-off" else None)
    # What the file says now, kept on the task: the next import changes only what the file changed since,
    # so decisions taken after an import (a meeting's new lead, an approved extension) survive re-imports
    # of an unchanged file, while an edit to the file wins.
    file_now = events._jsonable({**values, "due": file_due, "co": sorted(t.co)})
    if existing is None:
        task = Task(
            plan_id=run.plan_id,
            code=t.code,
            due_date=file_due,
            original_due_date=file_due,
            file_values=file_now,
            **values,
        )
        run.session.add(task)
        run.session.flush()
        run.say(f"+ task {t.code} {t.title}")
        events.record(
            run.session,
            EventType.TASK_ASSIGNED,
            at=run.now,
            plan_id=run.plan_id,
            task_id=task.id,
            department_id=lead.id,
            actor=run.actor,
            code=t.code,
            lead=t.lead,
            co=list(t.co),
            assignment=t.assignment,
            due=file_due,
        )
        return task, True
    task = existing
    before = task.file_values or {}  # empty: imported before this was kept, so every field counts
    changed = {k: v for k, v in values.items() if not before or before.get(k) != file_now[k]}
    diff = _apply(task, changed)
    if task.archived_at is not None:
        task.archived_at = None
        diff["archived"] = (True, False)
    if (before.get("due") != file_now["due"]) if before else task.original_due_date != file_due:
        diff["due_date"] = (task.due_date, file_due)
        task.original_due_date = file_due
        task.due_date = file_due
    task.file_values = file_now
    if diff:
        task.updated_at = run.now
        run.say(f"~ task {t.code}: {_fmt(diff)}")
        events.record(
            run.session,
            EventType.TASK_UPDATED,
            at=run.now,
            plan_id=run.plan_id,
            task_id=task.id,
            actor=run.actor,
            code=t.code,
            changes={k: [v[0], v[1]] for k, v in diff.items()},
        )
    return task, not before or before.get("co") != file_now["co"]


def _sync_co_departments(
    run: _ImportRun,
    t: TaskIn,
    task: Task,
    *,
    depts: dict[str, Department],
    dept_codes: dict[int | None, str],
    co_from_file: bool,
    is_new: bool,
) -> None:
    """Add and remove co-departments only when the file is the one to say (see ``_upsert_task``), so a
    meeting's reassignment survives; the assignment kind of a kept co-department always follows the file."""
    task_id = row_id(task)
    wanted = {row_id(depts[c]): t.assignment for c in t.co}
    current = {
        row.department_id: row
        for row in run.session.exec(select(TaskDepartment).where(TaskDepartment.task_id == task_id)).all()
    }
    for dept_id, row in current.items():
        if dept_id not in wanted and co_from_file:
            run.session.delete(row)
            run.say(f"~ task {t.code}: co-department {dept_codes.get(dept_id)} removed")
    for dept_id, assignment in wanted.items():
        if dept_id not in current and co_from_file:
            run.session.add(TaskDepartment(task_id=task_id, department_id=dept_id, assignment=assignment))
            if not is_new:
                run.say(f"~ task {t.code}: co-department {dept_codes[dept_id]} added")
        elif dept_id in current and current[dept_id].assignment != assignment:
            current[dept_id].assignment = assignment


class _TargetSync:
    """The plan's targets by metric: upserted as the file names them; those it no longer names are archived."""

    def __init__(self, run: _ImportRun, targets: dict[str, Target]) -> None:
        self.run = run
        self.targets = targets
        self.seen: set[str] = set()

    def upsert(self, t: TargetIn, *, task_id: int | None, label: str) -> None:
        self.seen.add(t.metric)
        values = target_values(t, plan_id=self.run.plan_id, task_id=task_id)
        if t.metric not in self.targets:
            self.targets[t.metric] = Target(metric=t.metric, **values)
            self.run.session.add(self.targets[t.metric])
            self.run.say(f"+ target {t.metric} ({label}) {t.name}")
        elif diff := _apply(self.targets[t.metric], values):
            self.run.say(f"~ target {t.metric} ({label}): {_fmt(diff)}")

    def archive_unseen(self) -> None:
        for metric, target in self.targets.items():
            if metric not in self.seen and target.archived_at is None:
                target.archived_at = self.run.now
                self.run.say(f"- target {metric} archived")


def _archive_removed_tasks(run: _ImportRun, tasks: dict[str, Task], seen: set[str]) -> None:
    for code, task in tasks.items():
        # Only tasks that came from the file leave with it; a meeting's new task is not the file's to archive.
        if code not in seen and task.archived_at is None and task.origin == "plan":
            task.archived_at = run.now
            run.say(f"- task {code} archived (kept with its history)")
            events.record(
                run.session,
                EventType.TASK_ARCHIVED,
                at=run.now,
                plan_id=run.plan_id,
                task_id=task.id,
                actor=run.actor,
                code=code,
            )


def _upsert_contacts(run: _ImportRun, contacts_in: list[ContactIn], depts: dict[str, Department]) -> None:
    """The contacts the file lists, keyed by (department, role, name); contacts it does not list are kept."""
    contacts = {
        (c.department_id, c.role, c.name): c
        for c in run.session.exec(select(Contact).where(col(Contact.department_id).in_([d.id for d in depts.values()])))
    }
    for c in contacts_in:
        key = (row_id(depts[c.department]), c.role, c.name)
        values: dict[str, Any] = {"language": c.language}
        if c.address is not None:  # no address in the file: keep the binding already stored
            values.update(channel=c.channel, address=c.address)
        if key not in contacts:
            contacts[key] = Contact(department_id=key[0], role=c.role, name=c.name, **values)
            run.session.add(contacts[key])
            run.say(f"+ contact {c.name} ({c.role}, {c.department})")
        elif diff := _apply(contacts[key], values):
            run.say(f"~ contact {c.name} ({c.role}, {c.department}): {_fmt(diff)}")
        if c.addresses:
            _add_further_addresses(run, contacts[key], c)


def _add_further_addresses(run: _ImportRun, contact: Contact, c: ContactIn) -> None:
    """The file's further addresses the contact lacks; a channel the person has bound themselves is kept."""
    run.session.flush()
    known = set(routes(session=run.session, contact=contact))
    for further in c.addresses:
        if (further.channel, further.address) in known or (further.channel == contact.channel and contact.address):
            continue
        add_address(session=run.session, contact=contact, channel=further.channel, address=further.address, now=run.now)
        run.say(f"~ contact {c.name} ({c.role}, {c.department}): + {further.channel} address")


def _record_import(run: _ImportRun, loaded: LoadedPlan, *, tasks: int, targets: int) -> None:
    """Counts on the report; the plan's hash and a ``plan.imported`` event only when something changed, so
    re-importing an unchanged file leaves no trace."""
    report = run.report
    if report.changed:
        run.plan.updated_at = run.now
        run.plan.source_sha256 = loaded.sha256
    report.counts = {
        "departments": len(loaded.data.departments),
        "tasks": tasks,
        "targets": targets,
        "contacts": len(loaded.data.contacts),
    }
    if report.changed:
        events.record(
            run.session,
            EventType.PLAN_IMPORTED,
            at=run.now,
            plan_id=run.plan_id,
            actor=run.actor,
            file=loaded.file,
            sha256=loaded.sha256,
            created=report.created,
            changes=len(report.changes),
            **report.counts,
        )


# ---- reading ---------------------------------------------------------------------------------------


def get_plan(*, session: Session, code: str | None = None) -> Plan | None:
    """The plan with this code, or the only/most recently updated plan when no code is given."""
    query = select(Plan)
    if code:
        return session.exec(query.where(Plan.code == code)).first()
    return session.exec(query.order_by(col(Plan.updated_at).desc(), col(Plan.id).desc())).first()


def list_departments(*, session: Session) -> list[DepartmentPublic]:
    rows = session.exec(select(Department).order_by(col(Department.code))).all()
    return [DepartmentPublic.model_validate(d, from_attributes=True) for d in rows]


@dataclass
class GroupView:
    code: str
    title: str
    kind: str
    tasks: list[TaskPublic]


@dataclass
class PlanView:
    plan: Plan
    groups: list[GroupView]
    goals: list[TargetPublic]
    departments: dict[str, str]
    archived: list[TaskPublic]


def plan_view(*, session: Session, plan: Plan, include_archived: bool = False) -> PlanView:
    """The plan as a tree, read in a fixed number of queries."""
    depts = {d.id: d for d in session.exec(select(Department)).all()}
    groups = session.exec(select(TaskGroup).where(TaskGroup.plan_id == plan.id).order_by(col(TaskGroup.position))).all()
    tasks = session.exec(select(Task).where(Task.plan_id == plan.id).order_by(col(Task.position))).all()
    co_rows = session.exec(select(TaskDepartment).join(Task).where(Task.plan_id == plan.id)).all()
    targets = session.exec(
        select(Target).where(Target.plan_id == plan.id, col(Target.archived_at).is_(None)).order_by(col(Target.id))
    ).all()
    co: dict[int, list[str]] = {}
    for row in co_rows:
        co.setdefault(row.task_id, []).append(depts[row.department_id].code)
    by_task: dict[int | None, list[TargetPublic]] = {}
    for target in targets:
        by_task.setdefault(target.task_id, []).append(TargetPublic.model_validate(target, from_attributes=True))
    group_code = {g.id: g.code for g in groups}

    def public(t: Task) -> TaskPublic:
        return TaskPublic(
            code=t.code,
            group=group_code[t.group_id],
            title=t.title,
            kind=t.kind,
            lead=depts[t.lead_department_id].code,
            co=sorted(co.get(row_id(t), [])),
            assignment=t.assignment,
            due_date=t.due_date,
            events=list(t.dated_events),
            status=t.status,
            progress=t.progress,
            colour=t.colour,
            targets=by_task.get(t.id, []),
        )

    views = {g.id: GroupView(code=g.code, title=g.title, kind=g.kind, tasks=[]) for g in groups}
    archived: list[TaskPublic] = []
    for t in tasks:
        if t.archived_at is None:
            views[t.group_id].tasks.append(public(t))
        elif include_archived:
            archived.append(public(t))
    return PlanView(
        plan=plan,
        groups=[v for v in views.values() if v.tasks],
        goals=by_task.get(None, []),
        departments={d.code: d.short_name or d.name for d in depts.values()},
        archived=archived,
    )
