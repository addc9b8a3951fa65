"""The desk's pages: the dashboard, a department, a task, and the week's digest and latest briefing.

Everything read here comes through the rooms below: the dashboard is ``reports.rollup.build_rollup`` of the
current week (the same lines as the digest, kept per process until the next event: ``week_cache``) with red
and yellow tasks in full and green ones folded into a count per group (``?group=`` lists a group in full),
paged; a task's quota progress is ``plan.queries``, its history the event log. A contact sees only the tasks
their department leads or helps with; leaders and the office see all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlmodel import Session, col, select

from coordbot.core.db import row_id
from coordbot.core.events import Event
from coordbot.core.text import LOCALES, _date, _number
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
from coordbot.reports.rollup import TaskLine
from coordbot.web.auth import Roles, Viewer, forbidden, require
from coordbot.web.chart import progress_svg
from coordbot.web.desk import desk_of, in_db, link, locale_of, page, words
from coordbot.web.week_cache import WeekRollup

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
    group: str = ""  # one task group's full list (?group=<code>)
    page: int = 1

    @classmethod
    def of(cls, request: web.Request) -> Filters:
        colour = request.query.get("colour", "")
        page = request.query.get("page", "")
        return cls(
            department=request.query.get("department", "").strip(),
            colour=colour if colour in COLOURS else "",
            overdue=request.query.get("overdue", "") in ("1", "on", "true"),
            group=request.query.get("group", "").strip(),
            page=int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1,  # anything else: page 1
        )

    def keep(self, t: TaskLine) -> bool:
        return (
            (not self.department or t.lead_code == self.department)
            and (not self.colour or t.colour == self.colour)
            and (not self.overdue or t.overdue_days > 0)
        )

    @property
    def folds_green(self) -> bool:
        """Red and yellow first: without a colour or a group asked for, green tasks fold into a count per group."""
        return not self.colour and not self.group

    def query(self, **changes: Any) -> dict[str, Any]:
        """The dashboard's query for these filters with ``changes`` (empty values are dropped by ``link``)."""
        q: dict[str, Any] = {
            "department": self.department,
            "colour": self.colour,
            "overdue": "1" if self.overdue else "",
            "group": self.group,
        }
        q.update(changes)
        return q


@dataclass(slots=True)
class Row:
    """One task's line on the dashboard, every string computed once per request (the template only prints)."""

    href: str
    label: str
    colour: str
    colour_word: str
    reasons: str
    progress: str
    quotas: list[tuple[str, str, str]]  # (text, trajectory class, trajectory words)
    lead_href: str
    lead: str
    last_report: str
    due: str
    overdue: str


@dataclass(slots=True)
class Section:
    code: str
    heading: str
    rows: list[Row]
    folded: int = 0  # green tasks folded into the count (shown where the group ends)
    expand: str = ""


@dataclass
class Dashboard:
    plan: Plan | None
    week: WeekRollup | None = None
    sections: list[Section] = field(default_factory=list)
    departments: list[tuple[str, str]] = field(default_factory=list)  # (code, short name)
    briefing: Briefing | None = None
    shown: int = 0  # tasks that match the filters, folded ones included
    folded: int = 0
    page: int = 1
    pages: int = 1
    group_heading: str = ""  # the group asked for, if any
    prev: str = ""  # links to the neighbouring pages
    next: str = ""


async def dashboard(request: web.Request) -> web.Response:
    viewer = await require(request, Roles.ANY)
    desk = desk_of(request)
    filters = Filters.of(request)
    plan_code = request.query.get("plan") or None
    words_of = words(locale_of(request))
    tz = desk.calendar.tz.key

    def load(session: Session) -> Dashboard:
        plan = get_plan(session=session, code=plan_code)
        if plan is None:
            return Dashboard(plan=None)
        week = desk.rollups.get(session=session, plan=plan, now=desk.now(), calendar=desk.calendar)
        mine = _visible_task_ids(session, viewer, plan)
        names = (
            select(Department.code, Department.short_name, Department.name)
            .where(Department.organisation_id == plan.organisation_id)
            .order_by(col(Department.code))
        )
        depts = [(c, short or n) for c, short, n in session.exec(names)]
        briefing = session.exec(
            select(Briefing).where(Briefing.plan_id == plan.id).order_by(col(Briefing.created_at).desc())
        ).first()
        d = Dashboard(plan, week, departments=depts, briefing=briefing)
        _lay_out(d, request, filters, mine, words_of, tz, desk.page_size)
        return d

    data = await in_db(request, load)
    if data.plan is None:
        return page(request, "no_plan.html")
    return page(request, "dashboard.html", d=data, f=filters, colours=COLOURS)


def _lay_out(
    d: Dashboard, request: web.Request, f: Filters, mine: set[int] | None, W: dict[str, Any], tz: str, size: int
) -> None:
    """Filter, fold and page the week's tasks into ``d.sections``; display strings only for the page's rows."""
    assert d.week is not None and d.plan is not None
    # entries: (group index, task) in plan order; (group index, None) holds the place of a group whose tasks
    # are all folded, so its count shows on the page where the group falls
    entries: list[tuple[int, TaskLine | None]] = []
    folded: dict[int, int] = {}
    groups = d.week.groups
    for i, g in enumerate(groups):
        if f.group:
            if g.code != f.group:
                continue
            d.group_heading = g.number + g.title
        n_before = len(entries)
        for t in g.tasks:
            if (mine is None or t.id in mine) and f.keep(t):
                d.shown += 1
                if f.folds_green and t.colour == "green":
                    folded[i] = folded.get(i, 0) + 1
                else:
                    entries.append((i, t))
        if i in folded and len(entries) == n_before:
            entries.append((i, None))
    d.folded = sum(folded.values())
    d.pages = max(1, -(-len(entries) // size))
    d.page = min(f.page, d.pages)
    on_page = entries[(d.page - 1) * size : d.page * size]
    if d.page > 1:
        d.prev = link(request, "/", plan=d.plan.code, **f.query(page=d.page - 1))
    if d.page < d.pages:
        d.next = link(request, "/", plan=d.plan.code, **f.query(page=d.page + 1))

    lang = request.query.get("lang", "")
    suffix = f"?lang={lang}" if lang in LOCALES else ""
    task_base, dept_base = f"/tasks/{quote(d.plan.code)}/", "/departments/"
    colour_words, reason_words, period_words, trajectory_words = W["colour"], W["reason"], W["period"], W["trajectory"]
    overdue_words = W["task"]["overdue_days"]
    last_entry = {i: k for k, (i, _) in enumerate(entries)}
    start = (d.page - 1) * size
    section: Section | None = None
    for k, (i, line) in enumerate(on_page, start=start):
        g = groups[i]
        if section is None or section.code != g.code:
            section = Section(code=g.code, heading=g.number + g.title, rows=[])
            d.sections.append(section)
        if last_entry[i] == k and i in folded:
            section.folded = folded[i]
            section.expand = link(request, "/", plan=d.plan.code, **f.query(group=g.code))
        if line is None:
            continue
        t = line
        quotas = []
        for q in t.quotas:
            tr = trajectory(q)
            quotas.append(
                (
                    f"{q.name}：{period_words[q.period]} {_number(q.actual)}/{_number(q.goal)}{q.unit}",
                    tr,
                    trajectory_words[tr].format(expected=_number(round(q.expected or 0))) if tr else "",
                )
            )
        section.rows.append(
            Row(
                href=task_base + quote(t.code) + suffix,
                label=f"{t.code} {t.title}",
                colour=t.colour,
                colour_word=colour_words[t.colour],
                reasons=" ".join(reason_words.get(r, r) for r in t.reasons),
                progress=f"{t.progress}%",
                quotas=quotas,
                lead_href=dept_base + quote(t.lead_code) + suffix,
                lead=t.lead,
                last_report=_date(t.last_report_at, "%Y-%m-%d", tz),
                due=_date(t.due_date),
                overdue=overdue_words.format(n=t.overdue_days) if t.overdue_days else "",
            )
        )


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

    plan_code = request.query.get("plan") or None

    def load(session: Session) -> dict[str, Any] | None:
        query = select(Department).where(Department.code == code).order_by(col(Department.id))
        if plan_code is not None:  # a code several organisations use: ?plan= names whose
            owner = select(Plan.organisation_id).where(Plan.code == plan_code).scalar_subquery()
            query = query.where(Department.organisation_id == owner)
        dept = session.exec(query).first()
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
        own = select(Department).where(Department.organisation_id == plan.organisation_id)
        depts = {row_id(d): d for d in session.exec(own)}
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
