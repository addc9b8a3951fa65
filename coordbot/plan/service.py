"""Plan operations on the database: import a plan file, read the plan back.

Keyword-only functions over a session; the caller owns the transaction, so an import is all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.clock import utcnow
from coordbot.core.events import EventType
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
from coordbot.plan.schema import TargetIn, TaskIn


@dataclass
class ImportReport:
    plan_code: str
    created: bool = False
    changes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _apply(obj: Any, values: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
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


def _target_values(t: TargetIn, *, plan_id: int, task_id: int | None) -> dict[str, Any]:
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
    now = now or utcnow()
    data = loaded.data
    meta = data.plan
    report = ImportReport(plan_code=meta.code)

    plan = session.exec(select(Plan).where(Plan.code == meta.code)).first()
    plan_values = {
        "title": meta.title,
        "issuer": meta.issuer,
        "document_no": meta.document_no,
        "timezone": meta.timezone,
        "start_date": meta.start,
        "end_date": meta.end,
        "source_file": meta.source,
        "reminder_policy": dict(meta.reminders),
    }
    if plan is None:
        plan = Plan(code=meta.code, **plan_values)
        session.add(plan)
        session.flush()
        report.created = True
        report.changes.append(f"+ plan {meta.code} {meta.title}")
    else:
        diff = _apply(plan, plan_values)
        if diff:
            report.changes.append(f"~ plan {meta.code}: {_fmt(diff)}")
    assert plan.id is not None

    # Departments are shared across plans: create and update, never remove.
    depts = {d.code: d for d in session.exec(select(Department)).all()}
    for d in data.departments:
        values = {"name": d.name, "short_name": d.short_name, "kind": d.kind, "aliases": list(d.aliases)}
        if d.code not in depts:
            depts[d.code] = Department(code=d.code, **values)
            session.add(depts[d.code])
            report.changes.append(f"+ department {d.code} {d.name}")
        elif diff := _apply(depts[d.code], values):
            report.changes.append(f"~ department {d.code}: {_fmt(diff)}")
    session.flush()

    groups = {g.code: g for g in session.exec(select(TaskGroup).where(TaskGroup.plan_id == plan.id)).all()}
    for pos, g in enumerate(data.groups):
        values = {"title": g.title, "kind": g.kind, "position": pos}
        if g.code not in groups:
            groups[g.code] = TaskGroup(plan_id=plan.id, code=g.code, **values)
            session.add(groups[g.code])
            report.changes.append(f"+ group {g.code} {g.title}")
        elif diff := _apply(groups[g.code], values):
            report.changes.append(f"~ group {g.code}: {_fmt(diff)}")
    session.flush()

    tasks = {t.code: t for t in session.exec(select(Task).where(Task.plan_id == plan.id)).all()}
    targets = {t.metric: t for t in session.exec(select(Target).where(Target.plan_id == plan.id)).all()}
    seen_tasks: set[str] = set()
    seen_metrics: set[str] = set()

    def upsert_target(t: TargetIn, task_id: int | None, label: str) -> None:
        seen_metrics.add(t.metric)
        values = _target_values(t, plan_id=plan.id, task_id=task_id)  # type: ignore[arg-type]
        if t.metric not in targets:
            targets[t.metric] = Target(metric=t.metric, **values)
            session.add(targets[t.metric])
            report.changes.append(f"+ target {t.metric} ({label}) {t.name}")
        elif diff := _apply(targets[t.metric], values):
            report.changes.append(f"~ target {t.metric} ({label}): {_fmt(diff)}")

    for pos, (g, t) in enumerate(data.tasks()):
        seen_tasks.add(t.code)
        lead = depts[t.lead]
        values = _task_values(t, plan=plan, group_id=groups[g.code].id, lead_id=lead.id, position=pos)  # type: ignore[arg-type]
        file_due = t.due or (meta.end if t.kind == "one-off" else None)
        task = tasks.get(t.code)
        is_new = task is None
        # What the file says now, kept on the task: the next import changes only what the file changed since,
        # so decisions taken after an import (a meeting's new lead, an approved extension) survive re-imports
        # of an unchanged file, while an edit to the file wins.
        file_now = events._jsonable({**values, "due": file_due, "co": sorted(t.co)})
        if task is None:
            task = Task(
                plan_id=plan.id,
                code=t.code,
                due_date=file_due,
                original_due_date=file_due,
                file_values=file_now,
                **values,
            )
            session.add(task)
            session.flush()
            tasks[t.code] = task
            report.changes.append(f"+ task {t.code} {t.title}")
            events.record(
                session,
                EventType.TASK_ASSIGNED,
                at=now,
                plan_id=plan.id,
                task_id=task.id,
                department_id=lead.id,
                actor=actor,
                code=t.code,
                lead=t.lead,
                co=list(t.co),
                assignment=t.assignment,
                due=file_due,
            )
        else:
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
                task.updated_at = now
                report.changes.append(f"~ task {t.code}: {_fmt(diff)}")
                events.record(
                    session,
                    EventType.TASK_UPDATED,
                    at=now,
                    plan_id=plan.id,
                    task_id=task.id,
                    actor=actor,
                    code=t.code,
                    changes={k: [v[0], v[1]] for k, v in diff.items()},
                )
        assert task.id is not None

        co_changed = is_new or not before or before.get("co") != file_now["co"]  # type: ignore[possibly-undefined]
        wanted = {depts[c].id: t.assignment for c in t.co}
        current = {
            row.department_id: row
            for row in session.exec(select(TaskDepartment).where(TaskDepartment.task_id == task.id)).all()
        }
        by_id = {d.id: d.code for d in depts.values()}
        for dept_id, row in current.items():
            if dept_id not in wanted and co_changed:
                session.delete(row)
                report.changes.append(f"~ task {t.code}: co-department {by_id.get(dept_id)} removed")
        for dept_id, assignment in wanted.items():
            if dept_id not in current and co_changed:
                session.add(TaskDepartment(task_id=task.id, department_id=dept_id, assignment=assignment))
                if not is_new:
                    report.changes.append(f"~ task {t.code}: co-department {by_id[dept_id]} added")
            elif dept_id in current and current[dept_id].assignment != assignment:
                current[dept_id].assignment = assignment
        for target in t.targets:
            upsert_target(target, task.id, f"task {t.code}")

    for goal in data.goals:
        upsert_target(goal, None, "plan goal")

    for code, task in tasks.items():
        # Only tasks that came from the file leave with it; a meeting's new task is not the file's to archive.
        if code not in seen_tasks and task.archived_at is None and task.origin == "plan":
            task.archived_at = now
            report.changes.append(f"- task {code} archived (kept with its history)")
            events.record(
                session, EventType.TASK_ARCHIVED, at=now, plan_id=plan.id, task_id=task.id, actor=actor, code=code
            )
    for metric, target in targets.items():
        if metric not in seen_metrics and target.archived_at is None:
            target.archived_at = now
            report.changes.append(f"- target {metric} archived")

    contacts = {
        (c.department_id, c.role, c.name): c
        for c in session.exec(select(Contact).where(col(Contact.department_id).in_([d.id for d in depts.values()])))
    }
    for c in data.contacts:
        key = (depts[c.department].id, c.role, c.name)
        values: dict[str, Any] = {"channel": c.channel, "language": c.language}
        if c.address is not None:
            values["address"] = c.address
        if key not in contacts:
            contacts[key] = Contact(department_id=key[0], role=c.role, name=c.name, **values)
            session.add(contacts[key])
            report.changes.append(f"+ contact {c.name} ({c.role}, {c.department})")
        elif diff := _apply(contacts[key], values):
            report.changes.append(f"~ contact {c.name} ({c.role}, {c.department}): {_fmt(diff)}")

    if report.changed:
        plan.updated_at = now
        plan.source_sha256 = loaded.sha256
    report.counts = {
        "departments": len(data.departments),
        "tasks": len(seen_tasks),
        "targets": len(seen_metrics),
        "contacts": len(data.contacts),
    }
    if report.changed:
        events.record(
            session,
            EventType.PLAN_IMPORTED,
            at=now,
            plan_id=plan.id,
            actor=actor,
            file=loaded.file,
            sha256=loaded.sha256,
            created=report.created,
            changes=len(report.changes),
            **report.counts,
        )
    session.flush()
    return report


# ---- reading ---------------------------------------------------------------------------------------


def get_plan(*, session: Session, code: str | None = None) -> Plan | None:
    """The plan with this code, or the only/most recently updated plan when no code is given."""
    query = select(Plan)
    if code:
        return session.exec(query.where(Plan.code == code)).first()
    return session.exec(query.order_by(col(Plan.updated_at).desc(), col(Plan.id).desc())).first()


def list_departments(*, session: Session) -> list[DepartmentPublic]:
    rows = session.exec(select(Department).order_by(Department.code)).all()
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
    groups = session.exec(select(TaskGroup).where(TaskGroup.plan_id == plan.id).order_by(TaskGroup.position)).all()
    tasks = session.exec(select(Task).where(Task.plan_id == plan.id).order_by(Task.position)).all()
    co_rows = session.exec(select(TaskDepartment).join(Task).where(Task.plan_id == plan.id)).all()
    targets = session.exec(
        select(Target).where(Target.plan_id == plan.id, col(Target.archived_at).is_(None)).order_by(Target.id)
    ).all()
    co: dict[int, list[str]] = {}
    for row in co_rows:
        co.setdefault(row.task_id, []).append(depts[row.department_id].code)
    by_task: dict[int | None, list[TargetPublic]] = {}
    for t in targets:
        by_task.setdefault(t.task_id, []).append(TargetPublic.model_validate(t, from_attributes=True))
    group_code = {g.id: g.code for g in groups}

    def public(t: Task) -> TaskPublic:
        return TaskPublic(
            code=t.code,
            group=group_code[t.group_id],
            title=t.title,
            kind=t.kind,
            lead=depts[t.lead_department_id].code,
            co=sorted(co.get(t.id, [])),  # type: ignore[arg-type]
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
