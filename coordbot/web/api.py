"""The JSON API under ``/api/v1`` and its OpenAPI 3.1 document (``/api/v1/openapi.json``).

Every operation is one :class:`Op` in :data:`OPS`: method, path, who may call it, its query model, body model
and response model (``coordbot.web.schemas``). :func:`_endpoint` wraps its function with what every call
needs, in this order: who is asking (a bearer token, else the desk's session cookie), ``require`` with the
operation's roles (401/403), the CSRF token on writes made with a cookie (header ``X-CSRF-Token``), the path,
query and body checked against their models (404/422/400), then the function; its answer is serialised
through the response model. The document is built from the same list and the same models, so what it says and
what the API answers cannot drift. Every error is RFC 9457 problem details (``coordbot.web.problems``).

Reads: leaders and the office see everything; a contact sees their department's tasks (lead or co) and
nothing plan-wide (no plan event log, no digest). Writes (office only) go through the same functions as the
desk's forms and the CLI (``plan.actions``, ``web.office.decide_extension_and_notify``) and so write the
same events, with ``actor="web:<contact id>"`` (session) or ``"api:<token name>"`` (token).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from sqlalchemy import func
from sqlmodel import Session, col, select

from coordbot.core.db import row_id
from coordbot.core.events import Event
from coordbot.plan import actions
from coordbot.plan.models import (
    Contact,
    CrossRequest,
    Department,
    DepartmentPublic,
    Extension,
    Plan,
    ProgressReport,
    Target,
    TargetPublic,
    Task,
    TaskDepartment,
    TaskGroup,
)
from coordbot.plan.queries import task_quota_progress
from coordbot.plan.service import get_plan
from coordbot.reports.digest import build_digest
from coordbot.reports.rollup import GroupLine, TaskLine, build_rollup, parse_week, week_period
from coordbot.web import schemas as s
from coordbot.web.auth import Roles, Viewer, _own_origins, csrf_token_of, require
from coordbot.web.desk import VIEWER_OF_REQUEST, desk_of, in_db, locale_of
from coordbot.web.office import decide_extension_and_notify
from coordbot.web.problems import (
    MEDIA_TYPE,
    ApiProblem,
    FieldError,
    Problem,
    field_errors,
    from_http_error,
    invalid,
    problem_response,
)
from coordbot.web.tokens import viewer_of_token
from coordbot.web.views import Filters, _visible_task_ids, co_departments, load_task, trajectory

log = logging.getLogger("coordbot.web.api")

BASE = "/api/v1"
CSRF_HEADER = "X-CSRF-Token"
BEARER = web.RequestKey("coordbot_api_bearer", bool)
READERS = Roles.ANY
WRITERS = Roles.OFFICE
PLANWIDE = Roles.LEADER | Roles.OFFICE

_TEXT = r"^[^\x00-\x1f\x7f/]+$"
# Path parameters: JSON schema and how to read them (None: no such thing, a 404).
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "plan": {"type": "string", "pattern": _TEXT, "maxLength": 100, "examples": ["test-plan"]},
    "code": {"type": "string", "pattern": _TEXT, "maxLength": 32, "examples": ["1.1"]},
    "department": {"type": "string", "pattern": _TEXT, "maxLength": 64, "examples": ["amr"]},
    "ext": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "examples": [1]},
    "week": {"type": "string", "pattern": r"^(current|[0-9]{4}-W[0-9]{2})$", "maxLength": 8, "examples": ["current"]},
}


@dataclass
class Call:
    """One validated call: the request, who makes it, the query and the body as their models."""

    request: web.Request
    viewer: Viewer
    query: Any = None
    body: Any = None
    path: dict[str, Any] = field(default_factory=dict)


Answer = BaseModel | web.StreamResponse
Fn = Callable[[Call], Awaitable[Answer]]


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # after BASE, an aiohttp template
    fn: Fn
    op_id: str
    summary: str
    tag: str
    roles: Roles | None  # None: no sign-in needed
    response: type[BaseModel] | None  # None: ``media`` is not JSON
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    media: str = "application/json"
    conflict: bool = False  # may answer 409 (not allowed in the task's state)
    description: str = ""

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def write(self) -> bool:
        return self.method != "GET"

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + BASE + re.sub(r"{\w+}", "[^/]+", self.path) + "$")

    def errors(self) -> list[int]:
        out: set[int] = set()
        if self.roles is not None:
            out |= {401, 403}
        if self.params or (self.query is not None and "plan" in self.query.model_fields):
            out.add(404)
        if self.query is not None or self.body is not None:
            out.add(422)
        if self.body is not None:
            out |= {400, 415}
        if self.conflict:
            out.add(409)
        return sorted(out)


# ---- the wrapper -----------------------------------------------------------------------------------


def _endpoint(op: Op) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await _call(op, request)
        except ApiProblem as exc:
            return problem_response(request, exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            problem = from_http_error(exc)
            if exc.status == 401:
                problem.headers.setdefault("WWW-Authenticate", 'Bearer realm="coordbot"')
            return problem_response(request, problem)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return problem_response(request, ApiProblem("server-error", "the error is in the server's log"))

    handler.__name__ = handler.__qualname__ = op.op_id
    return handler


async def _call(op: Op, request: web.Request) -> web.StreamResponse:
    if op.roles is None:
        result = await op.fn(Call(request, _NOBODY))
    else:
        await _bearer(request)
        viewer = await require(request, op.roles)
        if op.write and not request.get(BEARER):
            _check_csrf(request)
        call = Call(request, viewer, path=_path(op, request))
        if op.query is not None:
            try:
                call.query = op.query.model_validate(dict(request.query))
            except ValidationError as exc:
                raise invalid(field_errors(exc, "query")) from exc
        if op.body is not None:
            call.body = await _body(op.body, request)
        result = await op.fn(call)
    if isinstance(result, web.StreamResponse):
        return result
    if op.response is None or not isinstance(result, op.response):  # pragma: no cover - a bug in an Op
        raise TypeError(f"{op.op_id} answered {type(result).__name__}, documented {op.response}")
    return json_response(result)


_NOBODY = Viewer(contact_id=0, role="", department_id=0, name="")


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(model.model_dump(mode="json"), ensure_ascii=False),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


async def _bearer(request: web.Request) -> None:
    """``Authorization: Bearer <token>``: the token's viewer replaces any session's; a bad one is a 401."""
    header = request.headers.get("Authorization")
    if header is None:
        return
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiProblem(
            "invalid-token",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="coordbot", error="invalid_request"'},
        )
    desk = desk_of(request)
    viewer = await in_db(request, lambda session: viewer_of_token(session=session, token=token, now=desk.now()))
    if viewer is None:
        raise ApiProblem(
            "invalid-token",
            "the token is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="coordbot", error="invalid_token"'},
        )
    request[VIEWER_OF_REQUEST] = viewer
    request[BEARER] = True


def _check_csrf(request: web.Request) -> None:
    """A write with the desk's cookie: the session's CSRF token in ``X-CSRF-Token``, from this site."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin.rstrip("/") not in _own_origins(request):
        raise ApiProblem("csrf", "a request from another site")
    sent, expected = request.headers.get(CSRF_HEADER, ""), csrf_token_of(request)
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiProblem("csrf", f"send the session's CSRF token (GET {BASE}/me) in {CSRF_HEADER}")


def _path(op: Op, request: web.Request) -> dict[str, Any]:
    """The path parameters, read by their schema; one that cannot be is a 404 (no such thing)."""
    out: dict[str, Any] = {}
    for name in op.params:
        raw, spec = request.match_info[name], PATH_PARAMS[name]
        if spec["type"] == "integer":
            if not raw.isascii() or not raw.isdigit() or not spec["minimum"] <= int(raw) <= spec["maximum"]:
                raise ApiProblem("not-found", f"no {name} {raw!r}")
            out[name] = int(raw)
        else:
            if len(raw) > spec["maxLength"] or not re.match(spec["pattern"], raw):
                raise ApiProblem("not-found", f"no {name} {raw!r}")
            out[name] = raw
    return out


async def _body(model: type[BaseModel], request: web.Request) -> BaseModel:
    raw = await request.read()
    if raw and request.content_type != "application/json":
        raise ApiProblem("unsupported-media-type", f"the body is {request.content_type}, not application/json")
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(
            "bad-request",
            "the body is not JSON",
            errors=[FieldError(name="", location="body", detail=str(exc)[:200])],
        ) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(field_errors(exc, "body")) from exc


# ---- reading ---------------------------------------------------------------------------------------


def _plan(session: Session, code: str | None) -> Plan:
    plan = get_plan(session=session, code=code)
    if plan is None:
        raise ApiProblem("not-found", f"no plan {code!r}" if code else "no plan has been imported")
    return plan


def _task(session: Session, call: Call) -> tuple[Plan, Task, list[TaskDepartment]]:
    """The task of the path, if the viewer may see it (404 / 403 otherwise)."""
    found = load_task(session, call.path["plan"], call.path["code"])
    if found is None:
        raise ApiProblem("not-found", f"no task {call.path['code']!r} in plan {call.path['plan']!r}")
    plan, task = found
    co = co_departments(session, task)
    if not call.viewer.may_see(task.lead_department_id, co={r.department_id for r in co}):
        raise ApiProblem("forbidden", "this task is not your department's")
    return plan, task, co


def _task_url(plan: str, code: str) -> str:
    return f"{BASE}/tasks/{plan}/{code}"


def _departments(session: Session) -> dict[int, Department]:
    return {row_id(d): d for d in session.exec(select(Department))}


def _quota_line(q: Any) -> s.QuotaPublic:
    return s.QuotaPublic(
        metric=q.metric,
        name=q.name,
        unit=q.unit,
        period=q.period,
        actual=q.actual,
        goal=q.goal,
        expected=q.expected,
        behind=q.behind,
        reached=q.reached,
        trajectory=trajectory(q),  # type: ignore[arg-type]  # one of the Literal's values
    )


def _summary(plan: Plan, group: GroupLine, t: TaskLine) -> s.TaskSummaryPublic:
    return s.TaskSummaryPublic(
        plan=plan.code,
        code=t.code,
        title=t.title,
        group=group.code,
        kind=t.kind,
        lead=t.lead_code,
        lead_name=t.lead,
        co=t.co,
        status=t.status,
        colour=t.colour,
        reason=t.reason,
        progress=t.progress,
        due_date=t.due_date,
        original_due_date=t.original_due_date,
        overdue_days=t.overdue_days,
        last_report_at=t.last_report_at,
        escalation_level=t.escalation_level,
        quotas=[_quota_line(q) for q in t.quotas],
        url=_task_url(plan.code, t.code),
    )


async def openapi_json(call: Call) -> web.StreamResponse:
    return web.json_response(openapi_document(), headers={"Cache-Control": "no-cache"})


async def me(call: Call) -> s.ViewerPublic:
    v, bearer = call.viewer, bool(call.request.get(BEARER))

    def load(session: Session) -> str | None:
        dept = session.get(Department, v.department_id) if not bearer else None
        return dept.code if dept is not None else None

    return s.ViewerPublic(
        via="token" if bearer else "session",
        name=v.name,
        role=v.role,
        department=await in_db(call.request, load),
        actor=v.actor,
        csrf_token=None if bearer else csrf_token_of(call.request),
    )


async def list_plans(call: Call) -> s.PlanList:
    def load(session: Session) -> s.PlanList:
        plans = session.exec(select(Plan).order_by(col(Plan.code)))
        return s.PlanList(items=[s.PlanPublic.model_validate(p, from_attributes=True) for p in plans])

    return await in_db(call.request, load)


async def list_tasks(call: Call) -> s.TaskPage:
    q: s.TaskListQuery = call.query
    desk = desk_of(call.request)

    def load(session: Session) -> s.TaskPage:
        plan = _plan(session, q.plan)
        now = desk.now()
        rollup = build_rollup(
            session=session, plan=plan, period=week_period(plan=plan, now=now), now=now, calendar=desk.calendar
        )
        mine = _visible_task_ids(session, call.viewer, plan)
        keep = Filters(department=q.department or "", colour=q.colour or "", overdue=q.overdue).keep
        lines = [(g, t) for g in rollup.groups for t in g.tasks if (mine is None or t.id in mine) and keep(t)]
        page = lines[q.offset : q.offset + q.limit]
        return s.TaskPage(
            week=rollup.period.label,
            items=[_summary(plan, g, t) for g, t in page],
            total=len(lines),
            limit=q.limit,
            offset=q.offset,
        )

    return await in_db(call.request, load)


def task_detail(session: Session, call: Call, plan: Plan, task: Task, co: list[TaskDepartment]) -> s.TaskDetailPublic:
    desk = desk_of(call.request)
    depts = _departments(session)
    group = session.get(TaskGroup, task.group_id)
    targets = session.exec(
        select(Target).where(Target.task_id == task.id, col(Target.archived_at).is_(None)).order_by(col(Target.id))
    ).all()
    quotas = task_quota_progress(session=session, task=task, today=desk.today())
    exts = session.exec(
        select(Extension).where(Extension.task_id == task.id).order_by(col(Extension.requested_at).desc())
    ).all()
    names = _contact_names(session, {e.requested_by_id for e in exts if e.requested_by_id})
    requests = session.exec(
        select(CrossRequest)
        .where(CrossRequest.task_id == task.id, CrossRequest.status == "open")
        .order_by(col(CrossRequest.created_at))
    ).all()
    lead = depts[task.lead_department_id]
    return s.TaskDetailPublic(
        plan=plan.code,
        code=task.code,
        title=task.title,
        description=task.description,
        source_text=task.source_text,
        group=group.code if group is not None else "",
        kind=task.kind,
        lead=lead.code,
        lead_name=lead.name,
        leader=task.responsible_leader,
        co=[
            s.CoDepartmentPublic(
                code=depts[r.department_id].code, name=depts[r.department_id].name, assignment=r.assignment
            )
            for r in co
        ],
        assignment=task.assignment,
        status=task.status,
        progress=task.progress,
        colour=task.colour,
        colour_reason=task.colour_reason,
        start_date=task.start_date,
        due_date=task.due_date,
        original_due_date=task.original_due_date,
        escalation_level=task.escalation_level,
        last_report_at=task.last_report_at,
        targets=[TargetPublic.model_validate(t, from_attributes=True) for t in targets],
        quotas=[_quota_line(q) for q in quotas],
        extensions=[_extension(e, names) for e in exts],
        open_requests=[
            s.CrossRequestPublic(
                id=row_id(r),
                from_department=depts[r.from_department_id].code,
                to_department=depts[r.to_department_id].code,
                text=r.text,
                status=r.status,
                created_at=r.created_at,
            )
            for r in requests
        ],
    )


def _contact_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {row_id(c): c.name for c in session.exec(select(Contact).where(col(Contact.id).in_(list(ids))))}


def _extension(e: Extension, names: dict[int, str]) -> s.ExtensionPublic:
    return s.ExtensionPublic(
        id=row_id(e),
        status=e.status,  # type: ignore[arg-type]  # requested | approved | rejected
        old_due=e.old_due,
        new_due=e.new_due,
        reason=e.reason,
        requested_at=e.requested_at,
        requested_by=names.get(e.requested_by_id) if e.requested_by_id else None,
        decided_by=e.decided_by,
        decided_at=e.decided_at,
    )


async def get_task(call: Call) -> s.TaskDetailPublic:
    def load(session: Session) -> s.TaskDetailPublic:
        return task_detail(session, call, *_task(session, call))

    return await in_db(call.request, load)


async def task_reports(call: Call) -> s.ReportPage:
    q: s.PageQuery = call.query

    def load(session: Session) -> s.ReportPage:
        _, task, _ = _task(session, call)
        where = ProgressReport.task_id == task.id
        total = session.exec(select(func.count()).select_from(ProgressReport).where(where)).one()
        rows = session.exec(
            select(ProgressReport)
            .where(where)
            .order_by(col(ProgressReport.received_at).desc(), col(ProgressReport.id).desc())
            .offset(q.offset)
            .limit(q.limit)
        ).all()
        depts = _departments(session)
        names = _contact_names(session, {r.contact_id for r in rows if r.contact_id})
        items = [
            s.ReportPublic(
                id=row_id(r),
                received_at=r.received_at,
                department=depts[r.department_id].code,
                contact=names.get(r.contact_id) if r.contact_id else None,
                source=r.source,
                text=r.text,
                status=r.status,
                percent=float(r.percent) if r.percent is not None else None,
                expected_date=r.expected_date,
                voided=r.voided,
                superseded_by=r.superseded_by_id,
            )
            for r in rows
        ]
        return s.ReportPage(items=items, total=total, limit=q.limit, offset=q.offset)

    return await in_db(call.request, load)


def _event_page(session: Session, where: list[Any], q: s.PageQuery) -> s.EventPage:
    total = session.exec(select(func.count()).select_from(Event).where(*where)).one()
    rows = session.exec(
        select(Event).where(*where).order_by(col(Event.at).desc(), col(Event.id).desc()).offset(q.offset).limit(q.limit)
    ).all()
    task_ids = {r.task_id for r in rows if r.task_id}
    codes = (
        {row_id(t): t.code for t in session.exec(select(Task).where(col(Task.id).in_(list(task_ids))))}
        if task_ids
        else {}
    )
    depts = _departments(session)
    items = [
        s.EventPublic(
            id=row_id(e),
            at=e.at,
            type=e.type,
            task=codes.get(e.task_id) if e.task_id else None,
            department=depts[e.department_id].code if e.department_id in depts else None,
            actor=e.actor,
            payload=e.payload or {},
        )
        for e in rows
    ]
    return s.EventPage(items=items, total=total, limit=q.limit, offset=q.offset)


async def task_events(call: Call) -> s.EventPage:
    def load(session: Session) -> s.EventPage:
        _, task, _ = _task(session, call)
        return _event_page(session, [Event.task_id == task.id], call.query)

    return await in_db(call.request, load)


async def plan_events(call: Call) -> s.EventPage:
    q: s.PlanEventQuery = call.query

    def load(session: Session) -> s.EventPage:
        plan = _plan(session, q.plan)
        where: list[Any] = [Event.plan_id == plan.id]
        if q.type:
            where.append(Event.type == q.type)
        return _event_page(session, where, q)

    return await in_db(call.request, load)


async def list_departments(call: Call) -> s.DepartmentList:
    def load(session: Session) -> s.DepartmentList:
        rows = session.exec(select(Department).order_by(col(Department.code)))
        return s.DepartmentList(items=[DepartmentPublic.model_validate(d, from_attributes=True) for d in rows])

    return await in_db(call.request, load)


async def get_department(call: Call) -> s.DepartmentDetailPublic:
    code = call.path["department"]

    def load(session: Session) -> s.DepartmentDetailPublic:
        found = list(session.exec(select(Department).where(Department.code == code).order_by(col(Department.id))))
        if not found:
            raise ApiProblem("not-found", f"no department {code!r}")
        # Several organisations may use the code: the viewer's own, else refused rather than guessed.
        visible = [d for d in found if call.viewer.may_see(d.id)]
        if len(visible) > 1:
            raise ApiProblem("conflict", f"department {code!r} is in the organisations of several plans")
        dept = visible[0] if visible else found[0]
        if not call.viewer.may_see(dept.id):
            raise ApiProblem("forbidden", "this is not your department")
        co_ids = set(session.exec(select(TaskDepartment.task_id).where(TaskDepartment.department_id == dept.id)))
        tasks = session.exec(
            select(Task)
            .where(
                (col(Task.lead_department_id) == dept.id) | col(Task.id).in_(list(co_ids)),
                col(Task.archived_at).is_(None),
            )
            .order_by(col(Task.plan_id), col(Task.position), col(Task.id))
        ).all()
        plans = {row_id(p): p.code for p in session.exec(select(Plan))}

        def ref(t: Task) -> s.TaskRef:
            plan = plans[t.plan_id]
            return s.TaskRef(
                plan=plan, code=t.code, title=t.title, status=t.status, colour=t.colour, url=_task_url(plan, t.code)
            )

        return s.DepartmentDetailPublic(
            code=dept.code,
            name=dept.name,
            short_name=dept.short_name,
            kind=dept.kind,
            lead_tasks=[ref(t) for t in tasks if t.lead_department_id == dept.id],
            co_tasks=[ref(t) for t in tasks if t.lead_department_id != dept.id],
        )

    return await in_db(call.request, load)


def _digest(call: Call, session: Session) -> Any:
    q: s.DigestQuery = call.query
    desk = desk_of(call.request)
    plan = _plan(session, q.plan)
    week = call.path["week"]
    if week != "current":
        try:
            parse_week(week)
        except ValueError as exc:
            raise ApiProblem("not-found", str(exc)) from exc
    return build_digest(
        session=session,
        plan=plan,
        now=desk.now(),
        week=None if week == "current" else week,
        locale=q.lang or locale_of(call.request),
        calendar=desk.calendar,
        store=False,
    )


async def get_digest(call: Call) -> s.DigestPublic:
    def load(session: Session) -> s.DigestPublic:
        out = _digest(call, session)
        r = out.rollup
        group_of = {t.id: g for g in r.groups for t in g.tasks}
        md = f"{BASE}/digests/{r.period.label}/markdown?plan={r.plan.code}"
        return s.DigestPublic(
            plan=r.plan.code,
            week=r.period.label,
            period_start=r.period.start,
            period_end=r.period.end,
            as_of=r.as_of,
            generated_at=r.generated_at,
            counts=s.DigestCounts.model_validate(r.counts),
            departments=[
                s.DepartmentLinePublic(
                    code=d.code,
                    name=d.name,
                    lead_tasks=d.lead_tasks,
                    co_tasks=d.co_tasks,
                    reminders_sent=d.reminders_sent,
                    reminders_answered=d.reminders_answered,
                    reports=d.reports,
                    red=d.red,
                    yellow=d.yellow,
                    rate=d.rate,
                    silent=d.silent,
                )
                for d in r.departments
            ],
            decisions=[
                s.DecisionPublic(kind=d.kind, task=d.task_code, subject=d.subject, detail=_jsonable(d.detail))
                for d in r.decisions
            ],
            red=[_summary(r.plan, group_of[t.id], t) for t in r.by_colour("red")],
            yellow=[_summary(r.plan, group_of[t.id], t) for t in r.by_colour("yellow")],
            markdown_url=md,
        )

    return await in_db(call.request, load)


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(json.dumps(value, default=str, ensure_ascii=False))
    return found


async def get_digest_markdown(call: Call) -> web.StreamResponse:
    def load(session: Session) -> tuple[str, str]:
        out = _digest(call, session)
        return out.rollup.period.label, out.render("md")

    label, text = await in_db(call.request, load)
    return web.Response(
        text=text,
        content_type="text/markdown",
        charset="utf-8",
        headers={"Content-Disposition": f'inline; filename="digest-{label}.md"', "Cache-Control": "no-store"},
    )


# ---- writing (the office) --------------------------------------------------------------------------


async def decide_extension(call: Call) -> s.ExtensionPublic:
    body: s.ExtensionDecision = call.body
    desk = desk_of(call.request)

    def run(session: Session) -> s.ExtensionPublic:
        _, task, _ = _task(session, call)
        ext = session.get(Extension, call.path["ext"])
        if ext is None or ext.task_id != task.id:
            raise ApiProblem("not-found", f"task {task.code} has no extension {call.path['ext']}")
        try:
            decide_extension_and_notify(
                session=session,
                task=task,
                extension=ext,
                approve=body.decision == "approve",
                actor=call.viewer.actor,
                now=desk.now(),
            )
        except actions.ActionError as exc:
            raise ApiProblem("conflict", str(exc)) from exc
        session.flush()
        names = _contact_names(session, {ext.requested_by_id} if ext.requested_by_id else set())
        return _extension(ext, names)

    return await in_db(call.request, run)


def _task_action(action: Callable[..., object]) -> Fn:
    async def run_action(call: Call) -> s.TaskDetailPublic:
        desk = desk_of(call.request)

        def run(session: Session) -> s.TaskDetailPublic:
            plan, task, _ = _task(session, call)
            try:
                action(session=session, task=task, actor=call.viewer.actor, now=desk.now())
            except actions.ActionError as exc:
                raise ApiProblem("conflict", str(exc)) from exc
            session.flush()
            return task_detail(session, call, plan, task, co_departments(session, task))

        return await in_db(call.request, run)

    return run_action


# ---- the operations and the document ---------------------------------------------------------------

_TASK = "/tasks/{plan}/{code}"

OPS: tuple[Op, ...] = (
    Op("GET", "/openapi.json", openapi_json, "openapi", "This document", "meta", None, None),
    Op("GET", "/me", me, "me", "Who is asking (and the session's CSRF token)", "meta", READERS, s.ViewerPublic),
    Op("GET", "/plans", list_plans, "listPlans", "The plans", "plans", READERS, s.PlanList),
    Op(
        "GET",
        "/tasks",
        list_tasks,
        "listTasks",
        "A plan's tasks as this week's roll-up sees them",
        "tasks",
        READERS,
        s.TaskPage,
        query=s.TaskListQuery,
        description="A contact sees the tasks their department leads or helps with.",
    ),
    Op(
        "GET",
        _TASK,
        get_task,
        "getTask",
        "One task: targets, quota progress, extensions, open requests",
        "tasks",
        READERS,
        s.TaskDetailPublic,
    ),
    Op(
        "GET",
        _TASK + "/reports",
        task_reports,
        "listTaskReports",
        "A task's progress reports, newest first",
        "reports",
        READERS,
        s.ReportPage,
        query=s.PageQuery,
    ),
    Op(
        "GET",
        _TASK + "/events",
        task_events,
        "listTaskEvents",
        "A task's event log, newest first",
        "events",
        READERS,
        s.EventPage,
        query=s.PageQuery,
    ),
    Op(
        "GET",
        "/events",
        plan_events,
        "listPlanEvents",
        "A plan's event log, newest first (leaders, office)",
        "events",
        PLANWIDE,
        s.EventPage,
        query=s.PlanEventQuery,
    ),
    Op(
        "GET",
        "/departments",
        list_departments,
        "listDepartments",
        "The departments",
        "departments",
        READERS,
        s.DepartmentList,
    ),
    Op(
        "GET",
        "/departments/{department}",
        get_department,
        "getDepartment",
        "A department and the tasks it leads or helps with",
        "departments",
        READERS,
        s.DepartmentDetailPublic,
    ),
    Op(
        "GET",
        "/digests/{week}",
        get_digest,
        "getDigest",
        "A week's digest as data (leaders, office)",
        "digests",
        PLANWIDE,
        s.DigestPublic,
        query=s.DigestQuery,
    ),
    Op(
        "GET",
        "/digests/{week}/markdown",
        get_digest_markdown,
        "getDigestMarkdown",
        "A week's digest as Markdown (leaders, office)",
        "digests",
        PLANWIDE,
        None,
        query=s.DigestQuery,
        media="text/markdown",
    ),
    Op(
        "POST",
        _TASK + "/extensions/{ext}/decision",
        decide_extension,
        "decideExtension",
        "Approve or refuse a requested extension (office)",
        "office",
        WRITERS,
        s.ExtensionPublic,
        body=s.ExtensionDecision,
        conflict=True,
    ),
    Op(
        "POST",
        _TASK + "/close",
        _task_action(actions.close_task),
        "closeTask",
        "Close (销号) a task reported done (office)",
        "office",
        WRITERS,
        s.TaskDetailPublic,
        conflict=True,
    ),
    Op(
        "POST",
        _TASK + "/confirm",
        _task_action(actions.confirm_assignment),
        "confirmAssignment",
        "Confirm the departments the plan only proposed (office)",
        "office",
        WRITERS,
        s.TaskDetailPublic,
        conflict=True,
    ),
)


async def _no_route(request: web.Request) -> web.StreamResponse:
    """Anything else under /api/: 405 with Allow when the path is an operation's, else 404 (problem details)."""
    allowed = sorted({op.method for op in OPS if op.regex.match(request.path)})
    if allowed:
        if "GET" in allowed:
            allowed.append("HEAD")
        return problem_response(
            request,
            ApiProblem(
                "method-not-allowed",
                f"{request.method} is not one of {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            ),
        )
    return problem_response(request, ApiProblem("not-found", "no such API path"))


def routes() -> list[web.RouteDef]:
    """Every operation, then the catch-all that answers problem details for the rest of /api/."""
    return [
        *(web.route(op.method, BASE + op.path, _endpoint(op)) for op in OPS),
        web.route("*", "/api/{tail:.*}", _no_route),
    ]


def _drop_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent rather than null: ``anyOf [X, null]`` becomes X."""
    prop = dict(prop)
    any_of = prop.pop("anyOf", None)
    if any_of is not None:
        rest = [x for x in any_of if x != {"type": "null"}]
        if len(rest) == 1:
            prop = {**rest[0], **prop}
        else:
            prop["anyOf"] = rest
    if prop.get("default", 0) is None:
        del prop["default"]
    prop.pop("title", None)
    return prop


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema["properties"].items():
        p = _drop_null(prop)
        out.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": p.pop("description", ""),
                "schema": p,
            }
        )
    return out


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`OPS`, its schemas from the models' JSON schemas."""
    keys: list[tuple[type[BaseModel], Any]] = [(Problem, "serialization")]
    keys += [(op.response, "serialization") for op in OPS if op.response is not None]
    keys += [(op.body, "validation") for op in OPS if op.body is not None]
    refs, top = models_json_schema(list(dict.fromkeys(keys)), ref_template="#/components/schemas/{model}")
    problem = {MEDIA_TYPE: {"schema": refs[(Problem, "serialization")]}}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS:
        params = [{"name": n, "in": "path", "required": True, "schema": PATH_PARAMS[n]} for n in op.params]
        if op.query is not None:
            params += _query_parameters(op.query)
        if op.write:
            params.append(
                {
                    "name": CSRF_HEADER,
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "The session's CSRF token (GET /api/v1/me); not needed with a bearer token",
                }
            )
        ok_schema = refs[(op.response, "serialization")] if op.response is not None else {"type": "string"}
        if op.op_id == "openapi":
            ok_schema = {"type": "object"}
        responses: dict[str, Any] = {"200": {"description": "OK", "content": {op.media: {"schema": ok_schema}}}}
        for status in op.errors():
            responses[str(status)] = {"description": _STATUS_WORDS[status], "content": problem}
        operation: dict[str, Any] = {
            "operationId": op.op_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": params,
            "responses": responses,
        }
        if op.description:
            operation["description"] = op.description
        if op.roles is None:
            operation["security"] = []
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        paths.setdefault(BASE + op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "coordbot API",
            "version": "1",
            "description": "The office's desk as JSON: a plan's tasks, departments, reports, events and digests; "
            "the office's actions. Errors are RFC 9457 problem details. See docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "coordbot web token create"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "coordbot_desk"},
            },
        },
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
    }


_STATUS_WORDS = {
    400: "The body is not JSON",
    401: "No session or token, or a bad token",
    403: "The role or department may not, or the CSRF token is missing or wrong",
    404: "No such plan, task, department, extension or week",
    409: "Not allowed in the task's state",
    415: "The body is not application/json",
    422: "A field is wrong (see errors)",
}
