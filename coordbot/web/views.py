"""The desk's pages: the dashboard, a department, a task, and the week's digest and latest briefing.

Everything read here comes through the rooms below: the dashboard is ``reports.rollup.build_rollup`` of the
current week (the same lines as the digest), a task's quota progress is ``plan.queries``, its history the
event log. A contact sees only the tasks their department leads or helps with; leaders and the office see all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlmodel import Session, col, select

from coordbot.core.db import row_id
from coordbot.core.events import Event
from coordbot.plan.models import (
    Assignment,
    Contact,
    CrossRequest,
    Department,
    Extension,
    Observation,
    Plan,
    Role,
    Target,
    Task,
    TaskDepartment,
    TaskGroup,
)
from coordbot.plan.progress import period_bounds
from coordbot.plan.queries import counted_targets, task_quota_progress
from coordbot.plan.service import get_plan
from coordbot.reports.digest import build_digest
from coordbot.reports.models import Briefing
from coordbot.reports.rollup import Rollup, TaskLine, build_rollup, week_period
from coordbot.web.auth import Roles, Viewer, forbidden, require
from coordbot.web.chart import progress_svg
from coordbot.web.desk import desk_of, in_db, page

HISTORY_LIMIT = 200
COLOURS = ("red", "yellow", "green")


def trajectory(q: Any) -> str:
    """behind | ahead | on_line | "" (no trajectory): where a quota stands against the straight line."""
    if q.expected is None:
        return ""
    if q.behind:
        return "behind"
    return "ahead" if q.actual > q.expected else "on_line"


# ---- dashboard -------------------------------------------------------------------------------------


@dataclass
class Filters:
    department: str = ""
    colour: str = ""
    overdue: bool = False

    @classmethod
    def of(cls, request: web.Request) -> Filters:
        colour = request.query.get("colour", "")
        return cls(
            department=request.query.get("department", "").strip(),
            colour=colour if colour in COLOURS else "",
            overdue=request.query.get("overdue", "") in ("1", "on", "true"),
        )

    def keep(self, t: TaskLine) -> bool:
        return (
            (not self.department or t.lead_code == self.department)
            and (not self.colour or t.colour == self.colour)
            and (not self.overdue or t.overdue_days > 0)
        )


@dataclass
class Dashboard:
    plan: Plan | None
    rollup: Rollup | None = None
    groups: list[tuple[Any, list[TaskLine]]] = field(default_factory=list)
    departments: list[Department] = field(default_factory=list)
    briefing: Briefing | None = None
    shown: int = 0


async def dashboard(request: web.Request) -> web.Response:
    viewer = await require(request, Roles.ANY)
    desk = desk_of(request)
    filters = Filters.of(request)
    plan_code = request.query.get("plan") or None

    def load(session: Session) -> Dashboard:
        plan = get_plan(session=session, code=plan_code)
        if plan is None:
            return Dashboard(plan=None)
        now = desk.now()
        rollup = build_rollup(
            session=session, plan=plan, period=week_period(plan=plan, now=now), now=now, calendar=desk.calendar
        )
        mine = _visible_task_ids(session, viewer, plan)
        groups = []
        shown = 0
        for g in rollup.groups:
            tasks = [t for t in g.tasks if (mine is None or t.id in mine) and filters.keep(t)]
            shown += len(tasks)
            if tasks:
                groups.append((g, tasks))
        depts = list(session.exec(select(Department).order_by(col(Department.code))))
        briefing = session.exec(
            select(Briefing).where(Briefing.plan_id == plan.id).order_by(col(Briefing.created_at).desc())
        ).first()
        return Dashboard(plan, rollup, groups, depts, briefing, shown)

    data = await in_db(request, load)
    if data.plan is None:
        return page(request, "no_plan.html")
    return page(request, "dashboard.html", d=data, f=filters, trajectory=trajectory, colours=COLOURS)


def _visible_task_ids(session: Session, viewer: Viewer, plan: Plan) -> set[int] | None:
    """None: every task (leaders, the office); otherwise those the contact's department leads or helps with."""
    if viewer.sees_everything:
        return None
    led = session.exec(
        select(Task.id).where(Task.plan_id == plan.id, Task.lead_department_id == viewer.department_id)
    ).all()
    co = session.exec(select(TaskDepartment.task_id).where(TaskDepartment.department_id == viewer.department_id)).all()
    return {i for i in (*led, *co) if i is not None}


# ---- downloads -------------------------------------------------------------------------------------


async def digest_download(request: web.Request) -> web.Response:
    """The week's digest as Markdown or HTML (leaders and the office: it covers every department)."""
    await require(request, Roles.LEADER | Roles.OFFICE)
    desk = desk_of(request)
    fmt = request.query.get("fmt", "md")
    if fmt not in ("md", "html"):
        fmt = "md"
    from coordbot.web.desk import locale_of

    locale = locale_of(request)

    def load(session: Session) -> tuple[str, str] | None:
        plan = get_plan(session=session, code=request.query.get("plan") or None)
        if plan is None:
            return None
        out = build_digest(
            session=session, plan=plan, now=desk.now(), locale=locale, calendar=desk.calendar, store=False
        )
        return out.rollup.period.label, out.render("md" if fmt == "md" else "html")

    found = await in_db(request, load)
    if found is None:
        raise web.HTTPNotFound(text="no plan")
    label, text = found
    return web.Response(
        text=text,
        content_type="text/markdown" if fmt == "md" else "text/html",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="digest-{label}.{fmt}"', "Cache-Control": "no-store"},
    )


async def briefing_download(request: web.Request) -> web.StreamResponse:
    """The latest issued briefing's file (leaders and the office)."""
    await require(request, Roles.LEADER | Roles.OFFICE)

    def load(session: Session) -> Briefing | None:
        plan = get_plan(session=session, code=request.query.get("plan") or None)
        if plan is None:
            return None
        return session.exec(
            select(Briefing).where(Briefing.plan_id == plan.id).order_by(col(Briefing.created_at).desc())
        ).first()

    row = await in_db(request, load)
    if row is None or not row.path or not Path(row.path).is_file():
        return page(request, "not_found.html", status=404)
    path = Path(row.path)
    return web.FileResponse(
        path,
        headers={"Content-Disposition": f'attachment; filename="{path.name}"', "Cache-Control": "no-store"},
    )


# ---- a department ----------------------------------------------------------------------------------


async def department_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    """The department page; the invite form re-renders it with ``errors``, or with the new code (shown once)."""
    viewer = await require(request, Roles.ANY)
    code = request.match_info["code"]

    def load(session: Session) -> dict[str, Any] | None:
        dept = session.exec(select(Department).where(Department.code == code)).first()
        if dept is None:
            return None
        if not viewer.may_see(dept.id):
            return {"forbidden": True}
        co_ids = session.exec(select(TaskDepartment.task_id).where(TaskDepartment.department_id == dept.id)).all()
        tasks = session.exec(
            select(Task)
            .where(
                (col(Task.lead_department_id) == dept.id) | col(Task.id).in_(list(co_ids)),
                col(Task.archived_at).is_(None),
            )
            .order_by(col(Task.plan_id), col(Task.position), col(Task.id))
        ).all()
        plans = {p.id: p.code for p in session.exec(select(Plan))}
        contacts = session.exec(
            select(Contact).where(Contact.department_id == dept.id).order_by(col(Contact.role), col(Contact.name))
        ).all()
        return {"dept": dept, "tasks": tasks, "plans": plans, "contacts": contacts}

    data = await in_db(request, load)
    if data is None:
        return page(request, "not_found.html", status=404)
    if data.get("forbidden"):
        raise forbidden(request)
    return page(request, "department.html", status=status, **data, **context)


# ---- a task ----------------------------------------------------------------------------------------


def load_task(session: Session, plan_code: str, task_code: str) -> tuple[Plan, Task] | None:
    plan = session.exec(select(Plan).where(Plan.code == plan_code)).first()
    if plan is None:
        return None
    task = session.exec(select(Task).where(Task.plan_id == plan.id, Task.code == task_code)).first()
    return (plan, task) if task is not None else None


def co_departments(session: Session, task: Task) -> list[TaskDepartment]:
    return list(session.exec(select(TaskDepartment).where(TaskDepartment.task_id == task.id)))


async def task_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
    """The task page; office actions re-render it with ``errors`` (and a 4xx status) when a form is wrong."""
    viewer = await require(request, Roles.ANY)
    desk = desk_of(request)
    plan_code, task_code = request.match_info["plan"], request.match_info["code"]

    def load(session: Session) -> dict[str, Any] | None:
        found = load_task(session, plan_code, task_code)
        if found is None:
            return None
        plan, task = found
        co = co_departments(session, task)
        if not viewer.may_see(task.lead_department_id, co={r.department_id for r in co}):
            return {"forbidden": True}
        today = desk.today()
        depts = {row_id(d): d for d in session.exec(select(Department))}
        group = session.get(TaskGroup, task.group_id)
        targets = list(session.exec(select(Target).where(Target.task_id == task.id, col(Target.archived_at).is_(None))))
        quotas = task_quota_progress(session=session, task=task, today=today)
        charts = []
        for target, q in zip(counted_targets(targets), quotas, strict=True):
            start, end = period_bounds(target, today, plan.start_date, plan.end_date)
            obs = session.exec(
                select(Observation).where(Observation.target_id == target.id, ~col(Observation.voided))
            ).all()
            chart = None
            if target.value is not None and end > start:
                baseline = (target.baseline or 0.0) if target.period == "at-date" else 0.0
                chart = progress_svg(
                    observations=obs,
                    start=start,
                    end=end,
                    today=today,
                    goal=target.value,
                    baseline=baseline,
                    label=target.name,
                )
            charts.append((target, q, chart))
        qualitative = [t for t in targets if t not in counted_targets(targets)]
        history = session.exec(
            select(Event).where(Event.task_id == task.id).order_by(col(Event.at).desc(), col(Event.id).desc())
        ).fetchmany(HISTORY_LIMIT)
        requests = session.exec(
            select(CrossRequest)
            .where(CrossRequest.task_id == task.id, CrossRequest.status == "open")
            .order_by(col(CrossRequest.created_at))
        ).all()
        extensions = session.exec(
            select(Extension).where(Extension.task_id == task.id).order_by(col(Extension.requested_at).desc())
        ).all()
        dept_ids = [task.lead_department_id, *(r.department_id for r in co)]
        bound = session.exec(
            select(Contact)
            .where(col(Contact.department_id).in_(dept_ids), Contact.role == Role.CONTACT, Contact.active)
            .order_by(col(Contact.department_id), col(Contact.name))
        ).all()
        actors = {row_id(c): c.name for c in session.exec(select(Contact))}
        return {
            "plan": plan,
            "task": task,
            "group": group,
            "depts": depts,
            "co": co,
            "charts": charts,
            "qualitative": qualitative,
            "history": history,
            "requests": requests,
            "extensions": extensions,
            "bound": bound,
            "actors": actors,
            "proposed": task.assignment == Assignment.PROPOSED or any(r.assignment == Assignment.PROPOSED for r in co),
        }

    data = await in_db(request, load)
    if data is None:
        return page(request, "not_found.html", status=404)
    if data.get("forbidden"):
        raise forbidden(request)
    return page(request, "task.html", status=status, trajectory=trajectory, actor_name=_actor_name, **data, **context)


def _actor_name(actor: str, names: dict[int, str]) -> str:
    """'web:12' / 'office:12' -> the person's name; other actors (system, cli, a channel address) as they are."""
    kind, _, rest = actor.partition(":")
    if kind in ("web", "office") and rest.isdigit() and int(rest) in names:
        return names[int(rest)]
    return actor if kind not in ("telegram", "wecom", "dingtalk", "feishu", "email") else kind  # no addresses


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", dashboard),
        web.get("/digest", digest_download),
        web.get("/briefing", briefing_download),
        web.get("/departments/{code}", department_page),
        web.get("/tasks/{plan}/{code}", task_page),
    ]
