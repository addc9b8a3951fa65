"""Reply by link: a reminder's one-time web form, for contacts without a chat app (or who prefer it).

The link is ``/r/<occurrence>.<contact>.<expires>.<hmac>``: HMAC-SHA256 over the first three parts with the
desk's key for ``reply`` (derived from ``web_secret``), so a forged or altered link is refused before the
database is asked. It is put in a task reminder's text (``scheduling.messages``, through :func:`reply_links`)
only when ``public_url`` is set, and expires after :data:`REPLY_TTL`.

Single use for writing: the report a link made carries ``source_ref = "link:" + sha256(link)`` (the link
itself is never stored), and a submit locks the reminder's row before it looks, so two submits of one link
record one report. Opening the link (GET) only shows the form (chat apps fetch links to preview them);
submitting (POST) builds the report's text from the form and goes through
:func:`coordbot.replies.apply.report_as_contact`, the same parser and the same apply as a chat reply; undo
is :func:`coordbot.replies.apply.undo_report`, as the chat's undo button. A used link shows what it recorded,
with the undo.

There is no session and no CSRF token here: the signed single-use link is the credential. A POST whose
browser names another origin is refused, as on the rest of the desk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlmodel import Session, col, select

from coordbot.core.db import row_id
from coordbot.plan.models import (
    Contact,
    Department,
    Observation,
    Plan,
    ProgressReport,
    Role,
    Target,
    Task,
    TaskStatus,
)
from coordbot.plan.queries import numeric_targets, task_quota_progress
from coordbot.replies.apply import (
    ORG_DEPARTMENTS,
    NothingToRecord,
    NotYours,
    department_refs,
    may_report,
    report_as_contact,
    target_refs,
    undo_report,
)
from coordbot.replies.parser import Status, parse_reply
from coordbot.scheduling.messages import ReplyLink
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.web.auth import forbidden
from coordbot.web.desk import Desk, desk_of, in_db, link, locale_of, page
from coordbot.web.desk import words as desk_words

REPLY_TTL = timedelta(days=7)
PURPOSE = "reply"
SOURCE = "web"
REF_PREFIX = "link:"
MAX_NOTE = 2000
MAX_TOKEN = 200
MAX_VALUE = Decimal("1e12")
STATUS_CHOICES = (Status.DONE, Status.ON_TRACK, Status.AT_RISK, Status.BLOCKED)  # the reminder's buttons
MODES = ("increment", "total")


class LinkError(ValueError):
    """Why a reply link does not open: ``reason`` is invalid, expired, inactive or closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---- the token -------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _signature(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def make_token(key: bytes, *, occurrence_id: int, contact_id: int, expires: datetime) -> str:
    body = f"{occurrence_id}.{contact_id}.{int(expires.timestamp())}"
    return f"{body}.{_signature(key, body)}"


@dataclass(frozen=True, slots=True)
class ReplyToken:
    occurrence_id: int
    contact_id: int
    expires: int  # seconds since the epoch
    token: str

    @property
    def ref(self) -> str:
        """What the report made with this link stores (a hash: the link itself is not kept)."""
        return REF_PREFIX + hashlib.sha256(self.token.encode("ascii")).hexdigest()


def parse_token(key: bytes, token: str) -> ReplyToken:
    """The token's parts if its signature holds; :class:`LinkError` ("invalid") otherwise."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN or len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts[:3]):
        raise LinkError("invalid")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(_signature(key, body).encode(), parts[3].encode("ascii", "replace")):
        raise LinkError("invalid")
    return ReplyToken(int(parts[0]), int(parts[1]), int(parts[2]), token)


def reply_links(desk: Desk) -> ReplyLink | None:
    """What the reminder engine calls for a task reminder's link; None (no links) when ``public_url`` is unset."""
    if not desk.settings.public_url:
        return None
    key, base = desk.key(PURPOSE), desk.base_url()

    def reply_link(occ: ReminderOccurrence, contact: Contact, now: datetime) -> str | None:
        if occ.id is None or occ.task_id is None or contact.id is None or contact.role != Role.CONTACT:
            return None  # a group robot or a leader does not report
        token = make_token(key, occurrence_id=occ.id, contact_id=contact.id, expires=now + REPLY_TTL)
        lang = "?lang=en" if (contact.language or "").lower().startswith("en") else ""
        return f"{base}/r/{token}{lang}"

    return reply_link


# ---- loading what a link is about ------------------------------------------------------------------


@dataclass
class Opened:
    token: ReplyToken
    occurrence: ReminderOccurrence
    contact: Contact
    task: Task
    report: ProgressReport | None  # the report this link made, if it was used
    expired: bool


def _open(session: Session, desk: Desk, token: str, *, lock: bool = False) -> Opened:
    """The link's reminder, contact and task; its report if it was used. ``lock``: the reminder's row is locked
    (PostgreSQL) until the end of the transaction, so that concurrent submits of one link take turns."""
    parsed = parse_token(desk.key(PURPOSE), token)
    stmt = select(ReminderOccurrence).where(ReminderOccurrence.id == parsed.occurrence_id)
    occ = session.exec(stmt.with_for_update() if lock else stmt).first()
    if occ is None or occ.contact_id != parsed.contact_id or occ.task_id is None:
        raise LinkError("invalid")
    contact = session.get(Contact, occ.contact_id)
    task = session.get(Task, occ.task_id)
    if contact is None or task is None:
        raise LinkError("invalid")
    report = session.exec(select(ProgressReport).where(ProgressReport.source_ref == parsed.ref)).first()
    expired = parsed.expires <= desk.now().timestamp()
    if report is None:
        if expired:
            raise LinkError("expired")
        if not contact.active or contact.role != Role.CONTACT or not may_report(session, contact, task):
            raise LinkError("inactive")
        if task.archived_at is not None or task.status == TaskStatus.CLOSED:
            raise LinkError("closed")
    return Opened(parsed, occ, contact, task, report, expired)


# ---- the form --------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One numeric target's input."""

    index: int
    target: Target
    value: Decimal
    mode: str


@dataclass
class FormInput:
    status: Status | None = None
    entries: list[Entry] = field(default_factory=list)
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # field name -> error code (the template's words)


def _number(raw: str) -> Decimal | str:
    """A number as typed on a phone (full-width digits, thousands separators), or the error code."""
    text = unicodedata.normalize("NFKC", raw).strip().replace(",", "").replace("，", "").replace(" ", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return "not_a_number"
    if not value.is_finite():
        return "not_a_number"
    if value < 0:
        return "negative"
    if value >= MAX_VALUE:
        return "too_big"
    if value != value.quantize(Decimal("0.0001")):
        return "too_precise"
    return value


def default_mode(target: Target) -> str:
    return "total" if target.period == "at-date" else "increment"


def read_form(form: Any, targets: list[Target]) -> FormInput:
    """The form's values checked field by field; nothing is written here."""
    out = FormInput()
    status = _text(form, "status")
    if status:
        if status in {s.value for s in STATUS_CHOICES}:
            out.status = Status(status)
        else:
            out.errors["status"] = "bad_status"
    for i, target in enumerate(targets):
        raw = _text(form, f"n{i}")
        if not raw:
            continue
        value = _number(raw)
        if isinstance(value, str):
            out.errors[f"n{i}"] = value
            continue
        mode = _text(form, f"m{i}") or default_mode(target)
        if target.period == "at-date":
            mode = "total"  # a level now: only ever a total
        if mode not in MODES:
            out.errors[f"n{i}"] = "bad_mode"
            continue
        out.entries.append(Entry(i, target, value, mode))
    out.note = _text(form, "note")
    if len(out.note) > MAX_NOTE:
        out.errors["note"] = "too_long"
    if not out.errors and out.status is None and not out.entries and not out.note:
        out.errors["form"] = "empty"
    return out


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _value_text(value: Decimal) -> str:
    return f"{value.normalize():f}"


def entry_text(entry: Entry) -> str:
    """One number as the report's text says it (the parser reads the target's name, the unit and the mode)."""
    t = entry.target
    word = "新增" if entry.mode == "increment" else ("达到" if t.period == "at-date" else "累计")
    return f"{t.name}{word}{_value_text(entry.value)}{t.unit}"


def report_text(data: FormInput) -> str:
    """The report's text: one sentence per number, then the note as written."""
    parts = [entry_text(e) for e in data.entries]
    if data.note:
        parts.append(data.note)
    return "。".join(p.rstrip("。") for p in parts)


def _check_numbers_read(
    session: Session, opened: Opened, data: FormInput, targets: list[Target], *, today: date
) -> None:
    """Each number must be read by the parser as its own target's, with its mode; else an error on its field
    (the contact can write it in the note instead). Pure: the parser only."""
    refs = target_refs(targets)
    plan = session.get(Plan, opened.task.plan_id)
    assert plan is not None
    departments = department_refs(list(session.exec(ORG_DEPARTMENTS, params={"organisation_id": plan.organisation_id})))
    for entry in data.entries:
        parsed = parse_reply(
            entry_text(entry), today=today, targets=refs, departments=departments, task_codes=[opened.task.code]
        )
        read = [(q.metric, Decimal(q.value), q.mode) for q in parsed.quantities]
        if read != [(entry.target.metric, entry.value, entry.mode)]:
            data.errors[f"n{entry.index}"] = "unreadable"


# ---- what a page shows -----------------------------------------------------------------------------


def _form_view(session: Session, opened: Opened, today: date, locale: str) -> dict[str, Any]:
    task = opened.task
    targets = numeric_targets(session=session, task_id=row_id(task))
    quotas = {q.metric: q for q in task_quota_progress(session=session, task=task, today=today)}
    said, colour = desk_words(locale)["report_status"], desk_words(locale)["report_colour"]
    dept = session.get(Department, task.lead_department_id)
    return {
        "task": task,
        "department": (dept.short_name or dept.name) if dept else "",
        "contact": opened.contact,
        "statuses": [(s.value, said[s.value], colour.get(s.value, "")) for s in STATUS_CHOICES],
        "targets": [
            {"index": i, "target": t, "quota": quotas.get(t.metric), "mode": default_mode(t)}
            for i, t in enumerate(targets)
        ],
    }


def _recorded_view(session: Session, opened: Opened, locale: str) -> dict[str, Any]:
    """What the link's report recorded (also after undo: it says so)."""
    report = opened.report
    assert report is not None
    observations = session.exec(
        select(Observation, Target)
        .join(Target, col(Target.id) == Observation.target_id)
        .where(Observation.report_id == report.id)
        .order_by(col(Observation.id))
    ).all()
    said, colour = desk_words(locale)["report_status"], desk_words(locale)["report_colour"]
    return {
        "task": opened.task,
        "report": report,
        "status_label": said.get(report.status, "") if report.status else "",
        "status_colour": colour.get(report.status or "", ""),
        "quantities": [
            {"name": t.name, "value": o.value, "unit": t.unit, "mode": o.mode, "voided": o.voided}
            for o, t in observations
        ],
        "may_undo": not report.voided and not opened.expired,
    }


# ---- handlers --------------------------------------------------------------------------------------


def _check_origin(request: web.Request) -> None:
    """A POST from a page of another site is refused (the browser names its origin)."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return
    own = {f"{request.scheme}://{request.host}"}
    public = desk_of(request).settings.public_url
    if public:
        u = urlsplit(public)
        own.add(f"{u.scheme}://{u.netloc}")
    if origin.rstrip("/") not in own:
        raise forbidden(request, reason="csrf")


def _failed(request: web.Request, reason: str) -> web.Response:
    status = {"expired": 410, "closed": 410, "inactive": 403}.get(reason, 400)
    return page(request, "reply_failed.html", status=status, reason=reason)


async def reply_page(request: web.Request) -> web.Response:
    """GET /r/<token>: the form (nothing is written), or what a used link recorded."""
    desk, token, locale = desk_of(request), request.match_info["token"], locale_of(request)

    def load(session: Session) -> tuple[str, dict[str, Any]]:
        opened = _open(session, desk, token)
        if opened.report is not None:
            return "used", _recorded_view(session, opened, locale)
        return "form", _form_view(session, opened, desk.today(), locale)

    try:
        kind, view = await in_db(request, load)
    except LinkError as exc:
        return _failed(request, exc.reason)
    if kind == "used":
        return page(request, "reply_done.html", token=token, state="used", **view)
    return page(request, "reply.html", token=token, values={}, errors={}, **view)


async def reply_submit(request: web.Request) -> web.Response:
    """POST /r/<token>: the report, through the chat's parser and apply (once per link)."""
    _check_origin(request)
    form = await request.post()
    desk, token, locale = desk_of(request), request.match_info["token"], locale_of(request)
    values = {k: v for k, v in form.items() if isinstance(v, str)}

    def submit(session: Session) -> tuple[str, dict[str, Any]]:
        opened = _open(session, desk, token, lock=True)
        if opened.report is not None:
            return "used", _recorded_view(session, opened, locale)
        targets = numeric_targets(session=session, task_id=row_id(opened.task))
        data = read_form(form, targets)
        if not data.errors:
            _check_numbers_read(session, opened, data, targets, today=desk.today())
        if not data.errors:
            try:
                applied = report_as_contact(
                    session=session,
                    contact=opened.contact,
                    task=opened.task,
                    text=report_text(data),
                    now=desk.now(),
                    calendar=desk.calendar,
                    source=SOURCE,
                    source_ref=opened.token.ref,
                    reminder_id=opened.occurrence.id,
                    status=data.status,
                )
            except NothingToRecord:
                data.errors["form"] = "no_information"
            except NotYours as exc:
                raise LinkError("inactive") from exc
            else:
                opened.report = applied.report
                return "recorded", _recorded_view(session, opened, locale)
        return "errors", {"errors": data.errors, **_form_view(session, opened, desk.today(), locale)}

    try:
        kind, view = await in_db(request, submit)
    except LinkError as exc:
        return _failed(request, exc.reason)
    if kind == "errors":
        return page(request, "reply.html", status=400, token=token, values=values, **view)
    status = 409 if kind == "used" else 200
    return page(request, "reply_done.html", status=status, token=token, state=kind, **view)


async def reply_undo(request: web.Request) -> web.Response:
    """POST /r/<token>/undo: undo the link's report, as the chat's undo button does."""
    _check_origin(request)
    await request.post()
    desk, token, locale = desk_of(request), request.match_info["token"], locale_of(request)

    def undo(session: Session) -> tuple[str, dict[str, Any]]:
        opened = _open(session, desk, token, lock=True)
        report = opened.report
        if report is None:
            return "not_used", {}
        if opened.expired:
            raise LinkError("expired")
        if report.voided:
            return "already_undone", _recorded_view(session, opened, locale)
        try:
            undo_report(session=session, report=report, now=desk.now(), actor=f"web:{row_id(opened.contact)}")
        except ValueError as exc:
            return "undo_refused", {"refusal": str(exc), **_recorded_view(session, opened, locale)}
        return "undone", _recorded_view(session, opened, locale)

    try:
        kind, view = await in_db(request, undo)
    except LinkError as exc:
        return _failed(request, exc.reason)
    if kind == "not_used":
        raise web.HTTPSeeOther(link(request, f"/r/{token}"))
    status = 200 if kind == "undone" else 409
    return page(request, "reply_done.html", status=status, token=token, state=kind, **view)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/r/{token}", reply_page),
        web.post("/r/{token}", reply_submit),
        web.post("/r/{token}/undo", reply_undo),
    ]
