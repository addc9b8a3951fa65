"""Plan operations on the database: import a plan file, read the plan back.

Keyword-only functions over a session; the caller owns the transaction, so an import is all or nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
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
    Organisation,
    Plan,
    Target,
    TargetPublic,
    Task,
    TaskDepartment,
    TaskGroup,
    TaskPublic,
)
from coordbot.plan.schema import (
    CollectiveIn,
    ContactIn,
    DepartmentIn,
    GroupIn,
    PlanFile,
    PlanMeta,
    TargetIn,
    TaskIn,
)


class ImportRefused(ValueError):
    """The file is valid, but importing it would rename, merge or move what another plan owns; nothing
    was changed. The message says which flag (``--rename``, ``--new-plan``, ``--update-organisation``) asks
    for it explicitly."""


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
        "measure": t.measure,
        "about": t.about,
        "tolerance": t.tolerance,
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
        "responsible_leader": t.leader,
        "lead_primary": t.primary is not None and len(t.leads) > 1,
        "assignment": t.assignment_of(t.primary_lead),
        "kind": t.kind,
        "start_date": t.start or plan.start_date,
        "dated_events": [e.stored() for e in t.events],
        "deadline_every": t.every or "",
        "milestones": [m.stored() for m in t.milestones],
        "reminder_policy": dict(t.reminders),
        "position": position,
    }


def import_plan(
    *,
    session: Session,
    loaded: LoadedPlan,
    actor: str = "cli",
    now: datetime | None = None,
    rename: str | None = None,
    new_plan: bool = False,
    update_organisation: bool = False,
) -> ImportReport:
    """Create or update the plan from a validated file. Idempotent; removed tasks are archived, never deleted.

    ``rename``: the plan's code before this file changed it (else a file whose plan looks like a stored one
    under another code is refused, unless ``new_plan``). ``update_organisation``: the file may rename
    departments that other plans of its organisation share, and replace their aliases (else refused, and
    aliases are only added). Raises :class:`ImportRefused` with nothing changed.
    """
    data = loaded.data
    report = ImportReport(plan_code=data.plan.code)
    plan = _upsert_plan(session, data.plan, report, rename=rename, new_plan=new_plan)
    run = _ImportRun(session=session, plan=plan, plan_id=row_id(plan), actor=actor, now=now or utcnow(), report=report)
    depts = _upsert_departments(run, data.departments, update_organisation=update_organisation)
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


def _upsert_plan(session: Session, meta: PlanMeta, report: ImportReport, *, rename: str | None, new_plan: bool) -> Plan:
    plan = session.exec(select(Plan).where(Plan.code == meta.code)).first()
    if rename is not None and rename != meta.code:
        if plan is not None:
            raise ImportRefused(f"cannot rename plan {rename!r} to {meta.code!r}: plan {meta.code!r} exists already")
        plan = session.exec(select(Plan).where(Plan.code == rename)).first()
        if plan is None:
            raise ImportRefused(f"no plan {rename!r} to rename; plans: {', '.join(_plan_codes(session)) or 'none'}")
        plan.code = meta.code
        report.changes.append(f"~ plan {rename} renamed to {meta.code}")
    elif plan is None and not new_plan:
        _refuse_lookalike(session, meta)
    organisation = _organisation(session, meta, plan, report)
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
        plan = Plan(code=meta.code, organisation_id=row_id(organisation), **plan_values)
        session.add(plan)
        session.flush()
        report.created = True
        report.changes.append(f"+ plan {meta.code} {meta.title} (organisation {organisation.code})")
    elif diff := _apply(plan, plan_values):
        report.changes.append(f"~ plan {meta.code}: {_fmt(diff)}")
    return plan


def _plan_codes(session: Session, organisation_id: int | None = None) -> list[str]:
    query = select(Plan.code).order_by(col(Plan.code))
    if organisation_id is not None:
        query = query.where(Plan.organisation_id == organisation_id)
    return list(session.exec(query).all())


def _refuse_lookalike(session: Session, meta: PlanMeta) -> None:
    """A new plan code whose title, document number or source is a stored plan's: most likely the code was
    edited, and importing would duplicate every task and reminder. Ask which was meant."""
    for plan in session.exec(select(Plan).order_by(col(Plan.id))).all():
        same = [
            what
            for what, stored, given in (
                ("title", plan.title, meta.title),
                ("document number", plan.document_no, meta.document_no),
                ("source", plan.source_file, meta.source),
            )
            if given and stored == given
        ]
        if same:
            raise ImportRefused(
                f"plan {meta.code!r} is not in the database, but plan {plan.code!r} has the same {' and '.join(same)}: "
                f"if the plan's code changed, import with --rename {plan.code}; to keep both plans, with --new-plan"
            )


def _organisation(session: Session, meta: PlanMeta, plan: Plan | None, report: ImportReport) -> Organisation:
    """The organisation whose departments the plan uses: the stored plan's, the one the file names, or (a new
    plan naming none) its own, coded like the plan. An organisation is shared only by plans that name it."""
    wanted = meta.organisation
    if plan is not None:
        current = session.get(Organisation, plan.organisation_id)
        assert current is not None
        if wanted is None or wanted == current.code:
            _name_organisation(current, meta, report)
            return current
        others = [c for c in _plan_codes(session, row_id(current)) if c != plan.code]
        if others or session.exec(select(Organisation).where(Organisation.code == wanted)).first() is not None:
            raise ImportRefused(
                f"plan {plan.code!r} belongs to organisation {current.code!r}"
                + (f" (with plans {', '.join(others)})" if others else "")
                + f"; the file names organisation {wanted!r}: a plan cannot move to another organisation's "
                "departments. Remove 'organisation' from the file, or import it as a new plan with another code"
            )
        report.changes.append(f"~ organisation {current.code} renamed to {wanted}")
        current.code = wanted
        _name_organisation(current, meta, report)
        return current
    code = wanted or meta.code
    organisation = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if organisation is None:
        organisation = Organisation(code=code, name=meta.organisation_name)
        session.add(organisation)
        session.flush()
        report.changes.append(f"+ organisation {code}")
        return organisation
    sharing = _plan_codes(session, row_id(organisation))
    if wanted is None and sharing:
        raise ImportRefused(
            f"organisation {code!r} exists already (plans {', '.join(sharing)}): to share its departments and "
            f"contacts, say so with 'organisation: {code}' under 'plan'; else choose another plan code"
        )
    _name_organisation(organisation, meta, report)
    return organisation


def _name_organisation(organisation: Organisation, meta: PlanMeta, report: ImportReport) -> None:
    if meta.organisation_name and organisation.name != meta.organisation_name:
        report.changes.append(f"~ organisation {organisation.code}: name → {meta.organisation_name}")
        organisation.name = meta.organisation_name


def _upsert_departments(
    run: _ImportRun, departments: list[DepartmentIn], *, update_organisation: bool
) -> dict[str, Department]:
    """The organisation's departments by code: created and updated, never removed. A department other plans
    of the organisation use is renamed only when asked (``update_organisation``), and its aliases are only
    added to, so one plan's file never silently changes what another plan's contacts and replies rely on."""
    org_id = run.plan.organisation_id
    depts = {d.code: d for d in run.session.exec(select(Department).where(Department.organisation_id == org_id)).all()}
    others = [c for c in _plan_codes(run.session, org_id) if c != run.plan.code]
    conflicts: list[str] = []
    for d in departments:
        values = _DepartmentValues(name=d.name, short_name=d.short_name, kind=d.kind, aliases=list(d.aliases))
        if d.code not in depts:
            depts[d.code] = Department(organisation_id=org_id, code=d.code, **values)
            run.session.add(depts[d.code])
            run.say(f"+ department {d.code} {d.name}")
            continue
        stored = depts[d.code]
        if others and not update_organisation:
            values["aliases"] = stored.aliases + [a for a in d.aliases if a not in stored.aliases]
            differ = {
                k: (getattr(stored, k), v) for k, v in values.items() if k != "aliases" and getattr(stored, k) != v
            }
            if differ:
                conflicts.append(f"department {d.code}: {_fmt(differ)}")
                continue
        if diff := _apply(stored, values):
            run.say(f"~ department {d.code}: {_fmt(diff)}")
    if conflicts:
        raise ImportRefused(
            f"organisation's departments are shared with plans {', '.join(others)}; this file would change "
            + "; ".join(conflicts)
            + ". Make the files agree, or import with --update-organisation to change them for every plan"
        )
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
    collectives = {c.code: c for c in data.collectives}
    for pos, (g, t) in enumerate(data.tasks()):
        seen.add(t.code)
        t = _expand_collectives(t, collectives, depts)
        lead = depts[t.primary_lead]
        values = _task_values(t, plan=run.plan, group_id=row_id(groups[g.code]), lead_id=row_id(lead), position=pos)
        existing = tasks.get(t.code)
        task, co_from_file = _upsert_task(run, t, values, existing=existing, lead=lead)
        tasks[t.code] = task
        _sync_co_departments(
            run, t, task, depts=depts, dept_codes=dept_codes, co_from_file=co_from_file, is_new=existing is None
        )
        for target in t.all_targets():
            targets.upsert(target, task_id=task.id, label=f"task {t.code}")
    return seen


def _expand_collectives(t: TaskIn, collectives: dict[str, CollectiveIn], depts: dict[str, Department]) -> TaskIn:
    """The task with each collective in ``co`` (各乡镇、街道) replaced by its members: the organisation's
    departments of its kinds (those other plans of the organisation brought too) and the ones it lists.
    A member keeps the collective's assignment unless the file assigns it itself; a lead is not its own
    co-department."""
    if not any(c in collectives for c in t.co):
        return t
    co: list[str] = []
    assignments: dict[str, str] = dict(t.assignments)
    for code in t.co:
        if code not in collectives:
            co.append(code)
            continue
        c = collectives[code]
        by_kind = sorted(d.code for d in depts.values() if d.kind in c.kinds)
        members = list(dict.fromkeys([*c.members, *by_kind]))
        if not members:
            raise ImportRefused(f"task {t.code}: collective {code!r} ({c.name}) has no members in the organisation")
        for member in members:
            if member not in t.leads and member not in co:
                co.append(member)
                assignments.setdefault(member, t.assignment_of(code))
    own = {k: v for k, v in assignments.items() if k not in collectives}
    return t.model_copy(update={"co": co, "assignments": own})


def _joint_leads(t: TaskIn) -> dict[str, Any]:
    """The event's word on several leads, only when there are (events of one-lead tasks read as before)."""
    return {"joint_leads": t.joint_leads} if t.joint_leads else {}


def _upsert_task(
    run: _ImportRun, t: TaskIn, values: dict[str, Any], *, existing: Task | None, lead: Department
) -> tuple[Task, bool]:
    """Create the task or apply what the file changed since the last import; True when its co-departments
    are the file's to set (a new task, or the file changed them)."""
    file_due = t.due or (run.plan.end_date if t.kind == "one-off" else None)
    # What the file says now, kept on the task: the next import changes only what the file changed since,
    # so decisions taken after an import (a meeting's new lead, an approved extension) survive re-imports
    # of an unchanged file, while an edit to the file wins.
    # Joint leads ride with the co-departments (the same rows, role lead): a file without them reads as before.
    file_now = events._jsonable({**values, "due": file_due, "co": sorted(t.co) + [f"lead:{c}" for c in t.joint_leads]})
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
            lead=t.primary_lead,
            co=list(t.co),
            **_joint_leads(t),
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
    wanted = {row_id(depts[c]): t.assignment_of(c) for c in t.co}
    roles = {row_id(depts[c]): "lead" for c in t.joint_leads}
    wanted.update({dept_id: t.assignment_of(dept_codes[dept_id]) for dept_id in roles})
    current = {
        row.department_id: row
        for row in run.session.exec(select(TaskDepartment).where(TaskDepartment.task_id == task_id)).all()
    }
    for dept_id, row in current.items():
        if dept_id not in wanted and co_from_file:
            run.session.delete(row)
            run.say(f"~ task {t.code}: co-department {dept_codes.get(dept_id)} removed")
    for dept_id, assignment in wanted.items():
        role = roles.get(dept_id, "co")
        what = "lead department" if role == "lead" else "co-department"
        if dept_id not in current and co_from_file:
            run.session.add(TaskDepartment(task_id=task_id, department_id=dept_id, assignment=assignment, role=role))
            if not is_new:
                run.say(f"~ task {t.code}: {what} {dept_codes[dept_id]} added")
        elif dept_id in current:
            if current[dept_id].assignment != assignment:
                current[dept_id].assignment = assignment
            if current[dept_id].role != role and co_from_file:
                current[dept_id].role = role
                run.say(f"~ task {t.code}: {dept_codes[dept_id]} is now a {what}")


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


class TaskLookupError(LookupError):
    """No such task, or a code several plans use; ``plans`` lists the plans holding it (for the message)."""

    def __init__(self, message: str, plans: list[str] | None = None) -> None:
        super().__init__(message)
        self.plans = plans or []


def tasks_with_code(
    *,
    session: Session,
    code: str,
    plan_code: str | None = None,
    organisation_ids: Collection[int] | None = None,
) -> list[tuple[Task, Plan]]:
    """The live tasks with this code (in the plan given, or the organisations given), with their plans."""
    query = (
        select(Task, Plan)
        .join(Plan, col(Plan.id) == Task.plan_id)
        .where(Task.code == code, col(Task.archived_at).is_(None))
        .order_by(col(Plan.code))
    )
    if plan_code is not None:
        query = query.where(Plan.code == plan_code)
    if organisation_ids is not None:
        query = query.where(col(Plan.organisation_id).in_(list(organisation_ids)))
    return [(t, p) for t, p in session.exec(query).all()]


def find_task(*, session: Session, code: str, plan_code: str | None = None) -> Task:
    """The one task with this code; a code in several plans is refused with their list (give ``plan_code``)."""
    if plan_code is not None and session.exec(select(Plan.id).where(Plan.code == plan_code)).first() is None:
        raise TaskLookupError(f"no plan {plan_code!r}; plans: {', '.join(_plan_codes(session)) or 'none'}")
    found = tasks_with_code(session=session, code=code, plan_code=plan_code)
    if not found:
        where = f" in plan {plan_code}" if plan_code else ""
        raise TaskLookupError(f"no task {code!r}{where}; see 'coordbot plan show' for the task codes")
    if len(found) > 1:
        plans = [p.code for _, p in found]
        raise TaskLookupError(
            f"task {code!r} is in several plans: {', '.join(plans)}; say which with --plan", plans=plans
        )
    return found[0][0]


def list_departments(*, session: Session, plan: Plan | None = None) -> list[DepartmentPublic]:
    """Every department, or those of the plan's organisation."""
    query = select(Department).order_by(col(Department.code))
    if plan is not None:
        query = query.where(Department.organisation_id == plan.organisation_id)
    rows = session.exec(query).all()
    return [DepartmentPublic.model_validate(d, from_attributes=True) for d in rows]


@dataclass
class OrganisationDepartments:
    code: str
    name: str
    plans: list[str]
    departments: list[DepartmentPublic]


def departments_by_organisation(*, session: Session) -> list[OrganisationDepartments]:
    """Every organisation with its plans and departments: a code means a department only within one of them."""
    out = []
    for org in session.exec(select(Organisation).order_by(col(Organisation.code))).all():
        depts = session.exec(
            select(Department).where(Department.organisation_id == org.id).order_by(col(Department.code))
        ).all()
        out.append(
            OrganisationDepartments(
                code=org.code,
                name=org.name,
                plans=_plan_codes(session, org.id),
                departments=[DepartmentPublic.model_validate(d, from_attributes=True) for d in depts],
            )
        )
    return out


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
    own = select(Department).where(Department.organisation_id == plan.organisation_id)
    depts = {d.id: d for d in session.exec(own)}
    groups = session.exec(select(TaskGroup).where(TaskGroup.plan_id == plan.id).order_by(col(TaskGroup.position))).all()
    tasks = session.exec(select(Task).where(Task.plan_id == plan.id).order_by(col(Task.position))).all()
    co_rows = session.exec(select(TaskDepartment).join(Task).where(Task.plan_id == plan.id)).all()
    targets = session.exec(
        select(Target).where(Target.plan_id == plan.id, col(Target.archived_at).is_(None)).order_by(col(Target.id))
    ).all()
    co: dict[int, list[str]] = {}
    co_assignments: dict[int, dict[str, str]] = {}
    joint: dict[int, list[str]] = {}
    for row in co_rows:
        if row.role == "lead":
            joint.setdefault(row.task_id, []).append(depts[row.department_id].code)
            continue
        co.setdefault(row.task_id, []).append(depts[row.department_id].code)
        co_assignments.setdefault(row.task_id, {})[depts[row.department_id].code] = row.assignment
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
            co_assignments=co_assignments.get(row_id(t), {}),
            leader=t.responsible_leader,
            joint_leads=sorted(joint.get(row_id(t), [])),
            lead_primary=t.lead_primary,
            due_date=t.due_date,
            every=t.deadline_every,
            milestones=list(t.milestones),
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
