"""The decisions loop: a joint meeting's decisions file (docs/meeting-decisions.md) applied to the plan.

Validated like a plan file (every problem with its line and field, all at once) and against the database
(tasks, groups and departments must exist); a refused file changes nothing. Each applied decision writes
its event, so the next digest and briefing report it; the Meeting row starts the next briefing's period.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.events import EventType
from coordbot.plan.loader import PlanYamlLoader, Problem, YamlPath, dotted, line_for, line_index, validation_problems
from coordbot.plan.models import Department, Meeting, Plan, Target, Task, TaskDepartment, TaskGroup, TaskStatus
from coordbot.plan.schema import Code, TargetIn, Text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)


class MeetingIn(_Strict):
    date: date
    title: str = ""
    plan: Code | None = None  # default: the only (or latest) plan


class NewTaskIn(_Strict):
    group: Code
    code: Code
    title: Text
    description: str = ""
    lead: Code
    co: list[Code] = []
    kind: Literal["one-off", "recurring", "metric"] = "one-off"
    due: date | None = None
    targets: list[TargetIn] = []

    @model_validator(mode="after")
    def _consistent(self) -> NewTaskIn:
        if self.lead in self.co:
            raise ValueError(f"department '{self.lead}' is both lead and co-department")
        return self


class DeadlineIn(_Strict):
    task: Code
    due: date
    reason: Text


class ReassignIn(_Strict):
    task: Code
    lead: Code | None = None
    co: list[Code] | None = None  # replaces the co-departments when given
    reason: Text

    @model_validator(mode="after")
    def _something(self) -> ReassignIn:
        if self.lead is None and self.co is None:
            raise ValueError("a reassignment names a new lead, new co-departments, or both")
        return self


class ClosureIn(_Strict):
    task: Code
    reason: Text


class DecisionsIn(_Strict):
    new_tasks: list[NewTaskIn] = []
    deadlines: list[DeadlineIn] = []
    reassignments: list[ReassignIn] = []
    closures: list[ClosureIn] = []


class MeetingFile(_Strict):
    meeting: MeetingIn
    decisions: DecisionsIn = Field(default_factory=DecisionsIn)


class MeetingFileError(ValueError):
    """The decisions file cannot be applied; nothing was changed."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.file}: {len(self.problems)} problem(s), nothing was changed"]
        for p in self.problems:
            where = f"{self.file}:{p.line}" if p.line else self.file
            lines.append(f"  {where}{f' [{p.path}]' if p.path else ''}: {p.message}")
        return "\n".join(lines)


def parse_meeting_text(text: str, file: str = "<decisions>") -> tuple[MeetingFile, dict[YamlPath, int]]:
    try:
        node = yaml.compose(text, Loader=PlanYamlLoader)
        raw = yaml.load(text, Loader=PlanYamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MeetingFileError(file, [Problem(mark.line + 1 if mark else None, "", f"not valid YAML: {exc}")]) from exc
    if node is None or not isinstance(raw, dict):
        raise MeetingFileError(file, [Problem(1, "", "expected a mapping with keys meeting and decisions")])
    lines: dict[YamlPath, int] = {}
    problems: list[Problem] = []
    line_index(node, (), lines, problems)
    if problems:
        raise MeetingFileError(file, problems)
    try:
        return MeetingFile.model_validate(raw), lines
    except ValidationError as exc:
        raise MeetingFileError(file, validation_problems(exc, lines)) from exc


def record_meeting(
    *, session: Session, data: str, now: datetime, file: str = "<decisions>", actor: str = "cli"
) -> Meeting:
    """Validate the decisions YAML ``data`` against the plan in the database and apply it in the caller's
    transaction. Raises :class:`MeetingFileError` (nothing changed) listing every problem."""
    mf, lines = parse_meeting_text(data, file)
    problems: list[Problem] = []

    def bad(path: YamlPath, message: str) -> None:
        problems.append(Problem(line_for(lines, path), dotted(path), message))

    query = select(Plan)
    plan = session.exec(
        query.where(Plan.code == mf.meeting.plan)
        if mf.meeting.plan
        else query.order_by(col(Plan.updated_at).desc(), col(Plan.id).desc())
    ).first()
    if plan is None:
        raise MeetingFileError(
            file,
            [
                Problem(
                    line_for(lines, ("meeting", "plan")),
                    "meeting.plan",
                    f"no plan {mf.meeting.plan or ''} in the database; import it first",
                )
            ],
        )
    tasks = {t.code: t for t in session.exec(select(Task).where(Task.plan_id == plan.id))}
    groups = {g.code: g for g in session.exec(select(TaskGroup).where(TaskGroup.plan_id == plan.id))}
    depts = {d.code: d for d in session.exec(select(Department))}
    metrics = set(session.exec(select(Target.metric).where(Target.plan_id == plan.id)))
    p0, p1 = plan.start_date, plan.end_date

    if session.exec(select(Meeting).where(Meeting.plan_id == plan.id, Meeting.held_on == mf.meeting.date)).first():
        bad(("meeting", "date"), f"a meeting on {mf.meeting.date} is already recorded for this plan")

    def dept(path: YamlPath, code: str) -> None:
        if code not in depts:
            bad(path, f"unknown department '{code}' (expected a department code of the plan)")

    def live_task(path: YamlPath, code: str) -> Task | None:
        t = tasks.get(code)
        if t is None or t.archived_at is not None:
            bad(path, f"unknown task '{code}' (expected a task code of plan {plan.code})")
            return None
        return t

    def in_period(path: YamlPath, d: date | None) -> None:
        if d is not None and not p0 <= d <= p1:
            bad(path, f"date {d} lies outside the plan period {p0} to {p1}")

    d = mf.decisions
    seen_new: set[str] = set()
    for i, nt in enumerate(d.new_tasks):
        base: YamlPath = ("decisions", "new_tasks", i)
        if nt.code in tasks or nt.code in seen_new:
            bad((*base, "code"), f"task code '{nt.code}' already exists")
        seen_new.add(nt.code)
        if nt.group not in groups:
            bad((*base, "group"), f"unknown task group '{nt.group}' (expected one of {', '.join(sorted(groups))})")
        dept((*base, "lead"), nt.lead)
        for ci, c in enumerate(nt.co):
            dept((*base, "co", ci), c)
        in_period((*base, "due"), nt.due)
        for ti, tg in enumerate(nt.targets):
            if tg.metric in metrics:
                bad((*base, "targets", ti, "metric"), f"target metric '{tg.metric}' already exists")
            metrics.add(tg.metric)
    touched: dict[str, YamlPath] = {}

    def once(path: YamlPath, code: str, what: str) -> None:
        if code in touched and what == "close":
            bad(path, f"task '{code}' is also changed by {dotted(touched[code])}; close it or change it, not both")
        touched.setdefault(code, path)

    for i, dl in enumerate(d.deadlines):
        base = ("decisions", "deadlines", i)
        if (t := live_task((*base, "task"), dl.task)) is not None:
            in_period((*base, "due"), dl.due)
            if t.status == TaskStatus.CLOSED:
                bad((*base, "task"), f"task '{dl.task}' is closed; reopen it before changing its deadline")
            once(base, dl.task, "deadline")
    for i, ra in enumerate(d.reassignments):
        base = ("decisions", "reassignments", i)
        if (t := live_task((*base, "task"), ra.task)) is not None:
            if ra.lead is not None:
                dept((*base, "lead"), ra.lead)
            for ci, c in enumerate(ra.co or []):
                dept((*base, "co", ci), c)
            if ra.lead is not None and ra.lead in (ra.co or []):
                bad((*base, "co"), f"department '{ra.lead}' is both lead and co-department")
            once(base, ra.task, "reassign")
    for i, cl in enumerate(d.closures):
        base = ("decisions", "closures", i)
        if (t := live_task((*base, "task"), cl.task)) is not None:
            if t.status == TaskStatus.CLOSED:
                bad((*base, "task"), f"task '{cl.task}' is already closed")
            once(base, cl.task, "close")
    if problems:
        raise MeetingFileError(file, problems)

    # apply
    meeting = Meeting(
        plan_id=plan.id,
        held_on=mf.meeting.date,
        title=mf.meeting.title,
        source_file=file,  # type: ignore[arg-type]
        source_sha256=hashlib.sha256(data.encode("utf-8")).hexdigest(),
        recorded_by=actor,
        recorded_at=now,
    )
    session.add(meeting)
    session.flush()
    who = f"meeting:{mf.meeting.date.isoformat()}"
    applied: list[dict[str, Any]] = []
    ev = {"at": now, "plan_id": plan.id, "actor": who, "meeting": meeting.id}
    last_position = max((t.position for t in tasks.values()), default=0)
    for nt in d.new_tasks:
        last_position += 1
        task = Task(
            plan_id=plan.id,
            group_id=groups[nt.group].id,
            code=nt.code,
            title=nt.title,  # type: ignore[arg-type]
            description=nt.description,
            lead_department_id=depts[nt.lead].id,
            kind=nt.kind,  # type: ignore[arg-type]
            start_date=mf.meeting.date,
            due_date=nt.due,
            original_due_date=nt.due,
            position=last_position,
            origin=who,
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        session.flush()
        for c in nt.co:
            session.add(TaskDepartment(task_id=task.id, department_id=depts[c].id))  # type: ignore[arg-type]
        for tg in nt.targets:
            session.add(
                Target(
                    plan_id=plan.id,
                    task_id=task.id,
                    metric=tg.metric,
                    name=tg.name,
                    unit=tg.unit,  # type: ignore[arg-type]
                    comparator=tg.comparator,
                    value=tg.value,
                    baseline=tg.baseline,
                    period=tg.period,
                    start_date=tg.start,
                    due_date=tg.due,
                    aliases=list(tg.aliases),
                    description=tg.description,
                    source_text=tg.source,
                )
            )
        events.record(
            session,
            EventType.TASK_ASSIGNED,
            task_id=task.id,
            department_id=task.lead_department_id,
            code=nt.code,
            lead=nt.lead,
            co=list(nt.co),
            due=nt.due,
            **ev,
        )
        applied.append({"kind": "new_task", "task_code": nt.code, "title": nt.title, "detail": nt.lead})
    for dl in d.deadlines:
        task = tasks[dl.task]
        old = task.due_date
        if task.original_due_date is None:
            task.original_due_date = old
        task.due_date, task.updated_at = dl.due, now
        events.record(
            session,
            EventType.TASK_UPDATED,
            task_id=task.id,
            department_id=task.lead_department_id,
            code=task.code,
            changes={"due_date": [old, dl.due]},
            reason=dl.reason,
            **ev,
        )
        applied.append(
            {
                "kind": "deadline",
                "task_code": task.code,
                "title": task.title,
                "detail": f"{old.isoformat() if old else '—'} → {dl.due.isoformat()}",
            }
        )
    by_id = {x.id: x.code for x in depts.values()}
    for ra in d.reassignments:
        task = tasks[ra.task]
        changes: dict[str, list[Any]] = {}
        if ra.lead is not None and depts[ra.lead].id != task.lead_department_id:
            changes["lead"] = [by_id[task.lead_department_id], ra.lead]
            task.lead_department_id = depts[ra.lead].id  # type: ignore[assignment]
        if ra.co is not None:
            rows = session.exec(select(TaskDepartment).where(TaskDepartment.task_id == task.id)).all()
            before = sorted(by_id[r.department_id] for r in rows)
            for r in rows:
                session.delete(r)
            session.flush()
            for c in ra.co:
                session.add(TaskDepartment(task_id=task.id, department_id=depts[c].id))  # type: ignore[arg-type]
            if before != sorted(ra.co):
                changes["co"] = [before, sorted(ra.co)]
        task.updated_at = now
        events.record(
            session,
            EventType.TASK_UPDATED,
            task_id=task.id,
            department_id=task.lead_department_id,
            code=task.code,
            changes=changes,
            reason=ra.reason,
            **ev,
        )
        applied.append(
            {
                "kind": "reassign",
                "task_code": task.code,
                "title": task.title,
                "detail": "；".join(f"{k}: {v[0]} → {v[1]}" for k, v in changes.items()),
            }
        )
    for cl in d.closures:
        task = tasks[cl.task]
        task.status, task.progress, task.updated_at = TaskStatus.CLOSED, 100, now
        events.record(
            session,
            EventType.TASK_CLOSED,
            task_id=task.id,
            department_id=task.lead_department_id,
            reason=cl.reason,
            **ev,
        )
        applied.append({"kind": "close", "task_code": task.code, "title": task.title, "detail": cl.reason})
    meeting.decisions = applied
    events.record(
        session, EventType.MEETING_RECORDED, held_on=mf.meeting.date, count=len(applied), title=mf.meeting.title, **ev
    )
    session.flush()
    return meeting
