"""The office's actions on the desk: POST forms with a CSRF token, for the office only.

Each calls the same function as the CLI and the chat (``plan.actions``, ``plan.contacts``, the outbox) and so
writes the same events, with ``actor="web:<contact id>"``. A wrong form re-renders its page with a message per
field and a 400 (409 when the action is not allowed in the task's state), and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.core.text import render
from coordbot.plan import actions
from coordbot.plan.contacts import INVITE_TTL, create_invite
from coordbot.plan.models import Contact, Extension, Role, Task
from coordbot.scheduling.models import ReminderKind
from coordbot.scheduling.outbox import add_occurrence
from coordbot.web.auth import Roles, Viewer, flash, form_text, require, require_form
from coordbot.web.desk import desk_of, in_db, link, locale_of, words
from coordbot.web.views import department_page, load_task, task_page

INVITE_ROLES = (Role.CONTACT, Role.LEADER, Role.OFFICE)
NAME_MAX = 64


class FormError(Exception):
    """A form that cannot be applied: messages by field ("" for the form as a whole); ``status`` 400 or 409."""

    def __init__(self, errors: dict[str, str], status: int = 400) -> None:
        super().__init__(errors)
        self.errors, self.status = errors, status


async def _office(request: web.Request) -> tuple[Viewer, Any]:
    viewer = await require(request, Roles.OFFICE)
    form = await require_form(request)
    return viewer, form


def _task_or_404(session: Session, request: web.Request) -> Task:
    found = load_task(session, request.match_info["plan"], request.match_info["code"])
    if found is None:
        raise web.HTTPNotFound(text="no such task")
    return found[1]


def _task_url(request: web.Request) -> str:
    return link(request, f"/tasks/{request.match_info['plan']}/{request.match_info['code']}")


async def _apply(request: web.Request, form_name: str, fn: Any, done: str) -> web.Response:
    """Run ``fn(session)`` in one transaction; on success flash ``done`` and go back to the task page, on a
    FormError roll back and show the page with the messages."""
    try:
        await in_db(request, fn)
    except FormError as exc:
        return await task_page(request, status=exc.status, errors={form_name: exc.errors})
    await flash(request, done)
    raise web.HTTPSeeOther(_task_url(request))


def _w(request: web.Request) -> dict[str, str]:
    found: dict[str, str] = words(locale_of(request))["office"]
    return found


async def decide_extension(request: web.Request) -> web.Response:
    """POST /tasks/<plan>/<code>/extensions/<id>: decision=approve|refuse."""
    viewer, form = await _office(request)
    w, desk = _w(request), desk_of(request)
    decision = form_text(form, "decision")
    ext_id = request.match_info["ext"]

    def run(session: Session) -> None:
        task = _task_or_404(session, request)
        if decision not in ("approve", "refuse"):
            raise FormError({"decision": w["need_decision"]})
        ext = session.get(Extension, int(ext_id)) if ext_id.isdigit() else None
        if ext is None or ext.task_id != task.id:
            raise FormError({"": w["no_extension"]}, 404)
        try:
            decide_extension_and_notify(
                session=session,
                task=task,
                extension=ext,
                approve=decision == "approve",
                actor=viewer.actor,
                now=desk.now(),
            )
        except actions.ActionError as exc:
            raise FormError({"": w["not_allowed"].format(reason=exc)}, 409) from exc

    return await _apply(request, "extension", run, w["approved" if decision == "approve" else "refused"])


def decide_extension_and_notify(
    *, session: Session, task: Task, extension: Extension, approve: bool, actor: str, now: datetime
) -> None:
    """The office's decision on an extension (``plan.actions.decide_extension``: its event names ``actor``),
    and a notice queued to the contact who asked; ActionError when it was decided already. The desk's form
    and the JSON API both decide through this."""
    actions.decide_extension(session=session, extension=extension, approve=approve, decided_by=actor, now=now)
    requester = session.get(Contact, extension.requested_by_id) if extension.requested_by_id else None
    if requester is not None and requester.address:
        body = render("chat/extension_decided.html", locale=requester.language, ext=extension, task=task)
        add_occurrence(
            session=session,
            contact_id=row_id(requester),
            kind=ReminderKind.NOTICE,
            fire_at=now,
            task_id=task.id,
            plan_id=task.plan_id,
            body=body.strip(),
            detail=f"extension:{extension.id}",
            html=True,
        )


async def confirm_lead(request: web.Request) -> web.Response:
    viewer, _ = await _office(request)
    w, desk = _w(request), desk_of(request)

    def run(session: Session) -> None:
        task = _task_or_404(session, request)
        try:
            actions.confirm_assignment(session=session, task=task, actor=viewer.actor, now=desk.now())
        except actions.ActionError as exc:
            raise FormError({"": w["not_allowed"].format(reason=exc)}, 409) from exc

    return await _apply(request, "confirm", run, w["confirmed"])


async def close_task(request: web.Request) -> web.Response:
    """销号."""
    viewer, _ = await _office(request)
    w, desk = _w(request), desk_of(request)

    def run(session: Session) -> None:
        task = _task_or_404(session, request)
        try:
            actions.close_task(session=session, task=task, actor=viewer.actor, now=desk.now())
        except actions.ActionError as exc:
            raise FormError({"": w["not_allowed"].format(reason=exc)}, 409) from exc

    return await _apply(request, "close", run, w["closed"])


async def resend_reminder(request: web.Request) -> web.Response:
    """Queue a reminder now to every bound contact of the lead department (a notice: the policy's next sync
    leaves it alone); writes reminder.scheduled."""
    viewer, _ = await _office(request)
    w, desk = _w(request), desk_of(request)

    def run(session: Session) -> None:
        task = _task_or_404(session, request)
        now = desk.now()
        contacts = session.exec(
            select(Contact).where(
                Contact.department_id == task.lead_department_id,
                Contact.role == Role.CONTACT,
                Contact.active,
                col(Contact.address).is_not(None),
            )
        ).all()
        if not contacts:
            raise FormError({"": w["nobody_bound"]}, 409)
        for c in contacts:
            body = render("web/resend_notice.txt", locale=c.language or desk.settings.locale, task=task).strip()
            add_occurrence(
                session=session,
                contact_id=row_id(c),
                kind=ReminderKind.NOTICE,
                fire_at=now,
                task_id=task.id,
                plan_id=task.plan_id,
                body=body,
                detail="resent by the office",
            )
        events.record(
            session,
            EventType.REMINDER_SCHEDULED,
            at=now,
            plan_id=task.plan_id,
            task_id=task.id,
            department_id=task.lead_department_id,
            actor=viewer.actor,
            kind=ReminderKind.NOTICE.value,
            count=len(contacts),
            contacts=[c.id for c in contacts],
            resent=True,
        )

    return await _apply(request, "remind", run, w["reminded"])


async def invite_contact(request: web.Request) -> web.Response:
    """POST /departments/<code>/invite: name, role, language; the code is shown once, on this answer only."""
    viewer, form = await _office(request)
    w, desk = _w(request), desk_of(request)
    values = {k: form_text(form, k) for k in ("name", "role", "language")}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = w["need_name"]
    elif len(values["name"]) > NAME_MAX:
        errors["name"] = w["name_too_long"].format(max=NAME_MAX)
    if values["role"] not in {str(r) for r in INVITE_ROLES}:
        errors["role"] = w["need_role"]
    if values["language"] not in ("zh", "en"):
        errors["language"] = w["need_language"]
    if errors:
        return await department_page(request, status=400, errors={"invite": errors}, values=values)

    def run(session: Session) -> tuple[str, str]:
        new = create_invite(
            session=session,
            department_code=request.match_info["code"],
            name=values["name"],
            role=values["role"],
            language=values["language"],
            created_by=viewer.actor,
            now=desk.now(),
        )
        return new.code, new.invite.name

    try:
        code, name = await in_db(request, run)
    except ValueError as exc:  # an unknown department
        raise web.HTTPNotFound(text=str(exc)) from exc
    return await department_page(request, invite_code=code, invite_name=name, invite_days=INVITE_TTL.days)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/tasks/{plan}/{code}/extensions/{ext}", decide_extension),
        web.post("/tasks/{plan}/{code}/confirm", confirm_lead),
        web.post("/tasks/{plan}/{code}/close", close_task),
        web.post("/tasks/{plan}/{code}/remind", resend_reminder),
        web.post("/departments/{code}/invite", invite_contact),
    ]
