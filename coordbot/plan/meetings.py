"""The decisions loop: a joint meeting's decisions file (docs/meeting-decisions.md) applied to the plan.

Validated like a plan file (every problem with its line and field, all at once) and against the database
(tasks, groups and departments must exist); a refused file changes nothing. Each applied decision writes
its event, so the next digest and briefing report it; the Meeting row starts the next briefing's period.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.plan.loader import PlanYamlLoader, Problem, YamlPath, dotted, line_for, line_index, validation_problems
from coordbot.plan.models import Department, Meeting, Plan, Target, Task, TaskDepartment, TaskGroup, TaskStatus
from coordbot.plan.schema import Code, TargetIn, Text
from coordbot.plan.service import target_values


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
    kind: Literal["one-off", "recurring", "metric", "ongoing"] = "one-off"
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
    rows = _load_plan_rows(session, _find_plan(session, mf.meeting, lines, file))
    # Every problem is collected before anything changes, so a refused file is refused whole.
    review = _Review(rows, lines)
    _check_meeting_date(session, review, mf.meeting.date)
    _check_new_tasks(review, mf.decisions.new_tasks)
    _check_deadlines(review, mf.decisions.deadlines)
    _check_reassignments(review, mf.decisions.reassignments)
    _check_closures(review, mf.decisions.closures)
    if review.problems:
        raise MeetingFileError(file, review.problems)

    meeting = Meeting(
        plan_id=row_id(rows.plan),
        held_on=mf.meeting.date,
        title=mf.meeting.title,
        source_file=file,
        source_sha256=hashlib.sha256(data.encode("utf-8")).hexdigest(),
        recorded_by=actor,
        recorded_at=now,
    )
    session.add(meeting)
    session.flush()  # its id goes on every event below
    who = f"meeting:{mf.meeting.date.isoformat()}"
    run = _Applying(
        session=session,
        rows=rows,
        now=now,
        who=who,
        ev={"at": now, "plan_id": rows.plan.id, "actor": who, "meeting": meeting.id},
    )
    d = mf.decisions
    applied = [
        *_add_new_tasks(run, d.new_tasks, start=mf.meeting.date),
        *_move_deadlines(run, d.deadlines),
        *_reassign(run, d.reassignments),
        *_close(run, d.closures),
    ]
    meeting.decisions = applied  # what the next briefing reports on, decision by decision
    events.record(
        session,
        EventType.MEETING_RECORDED,
        held_on=mf.meeting.date,
        count=len(applied),
        title=mf.meeting.title,
        **run.ev,
    )
    session.flush()
    return meeting


# ---- against the database --------------------------------------------------------------------------


@dataclass(frozen=True)
class _PlanRows:
    """The plan the decisions are checked against and applied to, with its rows by code."""

    plan: Plan
    tasks: dict[str, Task]
    groups: dict[str, TaskGroup]
    depts: dict[str, Department]
    metrics: frozenset[str]


def _find_plan(session: Session, meeting: MeetingIn, lines: dict[YamlPath, int], file: str) -> Plan:
    """The plan the file names, else the most recently updated one; refused when there is none."""
    query = select(Plan)
    plan = session.exec(
        query.where(Plan.code == meeting.plan)
        if meeting.plan
        else query.order_by(col(Plan.updated_at).desc(), col(Plan.id).desc())
    ).first()
    if plan is None:
        raise MeetingFileError(
            file,
            [
                Problem(
                    line_for(lines, ("meeting", "plan")),
                    "meeting.plan",
                    f"no plan {meeting.plan or ''} in the database; import it first",
                )
            ],
        )
    return plan


def _load_plan_rows(session: Session, plan: Plan) -> _PlanRows:
    return _PlanRows(
        plan=plan,
        tasks={t.code: t for t in session.exec(select(Task).where(Task.plan_id == plan.id))},
        groups={g.code: g for g in session.exec(select(TaskGroup).where(TaskGroup.plan_id == plan.id))},
        depts={
            d.code: d
            for d in session.exec(select(Department).where(Department.organisation_id == plan.organisation_id))
        },
        metrics=frozenset(session.exec(select(Target.metric).where(Target.plan_id == plan.id))),
    )


class _Review:
    """Collects the problems of a decisions file against the plan, each with its line and field."""

    def __init__(self, rows: _PlanRows, lines: dict[YamlPath, int]) -> None:
        self.rows = rows
        self.lines = lines
        self.problems: list[Problem] = []
        self.metrics = set(rows.metrics)  # grows with the new tasks' targets: a metric may be new only once
        self._changed_by: dict[str, YamlPath] = {}  # task code -> the first decision changing it

    def bad(self, path: YamlPath, message: str) -> None:
        self.problems.append(Problem(line_for(self.lines, path), dotted(path), message))

    def department(self, path: YamlPath, code: str) -> None:
        if code not in self.rows.depts:
            self.bad(path, f"unknown department '{code}' (expected a department code of the plan)")

    def live_task(self, path: YamlPath, code: str) -> Task | None:
        t = self.rows.tasks.get(code)
        if t is None or t.archived_at is not None:
            self.bad(path, f"unknown task '{code}' (expected a task code of plan {self.rows.plan.code})")
            return None
        return t

    def in_period(self, path: YamlPath, d: date | None) -> None:
        p0, p1 = self.rows.plan.start_date, self.rows.plan.end_date
        if d is not None and not p0 <= d <= p1:
            self.bad(path, f"date {d} lies outside the plan period {p0} to {p1}")

    def once(self, path: YamlPath, code: str, what: str) -> None:
        """A task may get a new deadline and new departments, but one being closed is changed by nothing else."""
        if code in self._changed_by and what == "close":
            other = dotted(self._changed_by[code])
            self.bad(path, f"task '{code}' is also changed by {other}; close it or change it, not both")
        self._changed_by.setdefault(code, path)


def _check_meeting_date(session: Session, review: _Review, held_on: date) -> None:
    plan_id = review.rows.plan.id
    if session.exec(select(Meeting).where(Meeting.plan_id == plan_id, Meeting.held_on == held_on)).first():
        review.bad(("meeting", "date"), f"a meeting on {held_on} is already recorded for this plan")


def _check_new_tasks(review: _Review, new_tasks: list[NewTaskIn]) -> None:
    seen: set[str] = set()
    for i, nt in enumerate(new_tasks):
        base: YamlPath = ("decisions", "new_tasks", i)
        if nt.code in review.rows.tasks or nt.code in seen:
            review.bad((*base, "code"), f"task code '{nt.code}' already exists")
        seen.add(nt.code)
        if nt.group not in review.rows.groups:
            known = ", ".join(sorted(review.rows.groups))
            review.bad((*base, "group"), f"unknown task group '{nt.group}' (expected one of {known})")
        review.department((*base, "lead"), nt.lead)
        for ci, c in enumerate(nt.co):
            review.department((*base, "co", ci), c)
        review.in_period((*base, "due"), nt.due)
        for ti, tg in enumerate(nt.targets):
            if tg.metric in review.metrics:
                review.bad((*base, "targets", ti, "metric"), f"target metric '{tg.metric}' already exists")
            review.metrics.add(tg.metric)


def _check_deadlines(review: _Review, deadlines: list[DeadlineIn]) -> None:
    for i, dl in enumerate(deadlines):
        base: YamlPath = ("decisions", "deadlines", i)
        if (t := review.live_task((*base, "task"), dl.task)) is not None:
            review.in_period((*base, "due"), dl.due)
            if t.status == TaskStatus.CLOSED:
                review.bad((*base, "task"), f"task '{dl.task}' is closed; reopen it before changing its deadline")
            review.once(base, dl.task, "deadline")


def _check_reassignments(review: _Review, reassignments: list[ReassignIn]) -> None:
    for i, ra in enumerate(reassignments):
        base: YamlPath = ("decisions", "reassignments", i)
        if review.live_task((*base, "task"), ra.task) is not None:
            if ra.lead is not None:
                review.department((*base, "lead"), ra.lead)
            for ci, c in enumerate(ra.co or []):
                review.department((*base, "co", ci), c)
            if ra.lead is not None and ra.lead in (ra.co or []):
                review.bad((*base, "co"), f"department '{ra.lead}' is both lead and co-department")
            review.once(base, ra.task, "reassign")


def _check_closures(review: _Review, closures: list[ClosureIn]) -> None:
    for i, cl in enumerate(closures):
        base: YamlPath = ("decisions", "closures", i)
        if (t := review.live_task((*base, "task"), cl.task)) is not None:
            if t.status == TaskStatus.CLOSED:
                review.bad((*base, "task"), f"task '{cl.task}' is already closed")
            review.once(base, cl.task, "close")


# ---- applying (the file passed every check) --------------------------------------------------------


@dataclass(frozen=True)
class _Applying:
    """What applying each decision needs: the transaction, the plan's rows and the meeting's event fields."""

    session: Session
    rows: _PlanRows
    now: datetime
    who: str  # "meeting:<date>": the events' actor and the new tasks' origin
    ev: dict[str, Any]  # at, plan_id, actor and meeting, on every event the meeting writes


def _add_new_tasks(run: _Applying, new_tasks: list[NewTaskIn], *, start: date) -> list[dict[str, Any]]:
    """New tasks start on the meeting's day and go after the plan's last task."""
    session, rows = run.session, run.rows
    applied: list[dict[str, Any]] = []
    last_position = max((t.position for t in rows.tasks.values()), default=0)
    for nt in new_tasks:
        last_position += 1
        task = Task(
            plan_id=row_id(rows.plan),
            group_id=row_id(rows.groups[nt.group]),
            code=nt.code,
            title=nt.title,
            description=nt.description,
            lead_department_id=row_id(rows.depts[nt.lead]),
            kind=nt.kind,
            start_date=start,
            due_date=nt.due,
            original_due_date=nt.due,
            position=last_position,
            origin=run.who,
            created_at=run.now,
            updated_at=run.now,
        )
        session.add(task)
        session.flush()
        task_id = row_id(task)
        for c in nt.co:
            session.add(TaskDepartment(task_id=task_id, department_id=row_id(rows.depts[c])))
        for tg in nt.targets:
            session.add(Target(metric=tg.metric, **target_values(tg, plan_id=row_id(rows.plan), task_id=task_id)))
        events.record(
            session,
            EventType.TASK_ASSIGNED,
            task_id=task.id,
            department_id=task.lead_department_id,
            code=nt.code,
            lead=nt.lead,
            co=list(nt.co),
            due=nt.due,
            **run.ev,
        )
        applied.append({"kind": "new_task", "task_code": nt.code, "title": nt.title, "detail": nt.lead})
    return applied


def _move_deadlines(run: _Applying, deadlines: list[DeadlineIn]) -> list[dict[str, Any]]:
    """A new due date; the task's first deadline stays its ``original_due_date``."""
    applied: list[dict[str, Any]] = []
    for dl in deadlines:
        task = run.rows.tasks[dl.task]
        old = task.due_date
        if task.original_due_date is None:
            task.original_due_date = old
        task.due_date, task.updated_at = dl.due, run.now
        events.record(
            run.session,
            EventType.TASK_UPDATED,
            task_id=task.id,
            department_id=task.lead_department_id,
            code=task.code,
            changes={"due_date": [old, dl.due]},
            reason=dl.reason,
            **run.ev,
        )
        applied.append(
            {
                "kind": "deadline",
                "task_code": task.code,
                "title": task.title,
                "detail": f"{old.isoformat() if old else '—'} → {dl.due.isoformat()}",
            }
        )
    return applied


def _reassign(run: _Applying, reassignments: list[ReassignIn]) -> list[dict[str, Any]]:
    """A new lead, and/or co-departments replaced as a whole; the event lists what actually changed."""
    session, depts = run.session, run.rows.depts
    applied: list[dict[str, Any]] = []
    by_id = {x.id: x.code for x in depts.values()}
    for ra in reassignments:
        task = run.rows.tasks[ra.task]
        changes: dict[str, list[Any]] = {}
        if ra.lead is not None and depts[ra.lead].id != task.lead_department_id:
            changes["lead"] = [by_id[task.lead_department_id], ra.lead]
            task.lead_department_id = row_id(depts[ra.lead])
        if ra.co is not None:
            rows = session.exec(
                select(TaskDepartment).where(TaskDepartment.task_id == task.id, TaskDepartment.role == "co")
            ).all()
            before = sorted(by_id[r.department_id] for r in rows)
            for r in rows:
                session.delete(r)
            session.flush()  # the deletes first: a kept co-department is inserted again below
            for c in ra.co:
                session.add(TaskDepartment(task_id=row_id(task), department_id=row_id(depts[c])))
            if before != sorted(ra.co):
                changes["co"] = [before, sorted(ra.co)]
        task.updated_at = run.now
        events.record(
            session,
            EventType.TASK_UPDATED,
            task_id=task.id,
            department_id=task.lead_department_id,
            code=task.code,
            changes=changes,
            reason=ra.reason,
            **run.ev,
        )
        applied.append(
            {
                "kind": "reassign",
                "task_code": task.code,
                "title": task.title,
                "detail": "；".join(f"{k}: {v[0]} → {v[1]}" for k, v in changes.items()),
            }
        )
    return applied


def _close(run: _Applying, closures: list[ClosureIn]) -> list[dict[str, Any]]:
    """会议同意销号: closed whatever the task's status."""
    applied: list[dict[str, Any]] = []
    for cl in closures:
        task = run.rows.tasks[cl.task]
        task.status, task.progress, task.updated_at = TaskStatus.CLOSED, 100, run.now
        events.record(
            run.session,
            EventType.TASK_CLOSED,
            task_id=task.id,
            department_id=task.lead_department_id,
            reason=cl.reason,
            **run.ev,
        )
        applied.append({"kind": "close", "task_code": task.code, "title": task.title, "detail": cl.reason})
    return applied
