"""The weekly digest (周报) for the office and the leaders' summary by exception.

The digest is rendered from ``templates/<locale>/reports/`` into Telegram HTML (the channel splits it at
4096 characters), a full HTML document (e-mail, browser) and Markdown, and stored as a :class:`Digest` row
whose ``stats`` let next week's digest say how the colours moved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.core.text import TEMPLATES_DIR, environment, render
from coordbot.plan.models import Contact, Department, Plan, Role
from coordbot.reports.models import Digest
from coordbot.reports.rollup import Period, Rollup, build_rollup, exceptions, week_period
from coordbot.scheduling.calendar import WorkCalendar

Format = Literal["text", "html", "md"]
CHAT_LIMIT = 15  # items per list in the chat digest
PAGE_LIMIT = 100  # items per list in the HTML and Markdown digest; the rest is a "其余 N 项" line (a province-size
# plan has hundreds of red items; the briefing and its tables are where they are gone through)
SUMMARY_MAX_CHARS = 1500  # one phone screen
SUMMARY_MAX_LINES = 25
_TEMPLATES = {"text": "reports/digest_chat.html", "html": "reports/digest_page.html", "md": "reports/digest.md.j2"}


def _md(value: Any) -> str:
    # Table cells and list items: a pipe or a line break would end the cell early.
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_report(name: str, *, locale: str, **context: Any) -> str:
    """render() with the report filters registered on the locale's environment."""
    # same cache key as render() uses, so the filter lands on the environment that renders
    environment(locale, TEMPLATES_DIR).filters.setdefault("md", _md)
    return render(name, locale=locale, **context)


def colour_delta(counts: dict[str, Any], previous: dict[str, Any] | None, *, locale: str = "zh") -> dict[str, str]:
    """'（+1）' / '（−2）' (' (+1)' in English) next to each colour count, compared with the previous digest;
    '' when unchanged."""
    left, right = ("（", "）") if locale == "zh" else (" (", ")")
    out = {}
    for colour in ("red", "yellow", "green"):
        if not previous or colour not in previous:
            out[colour] = ""
            continue
        d = int(counts[colour]) - int(previous[colour])
        out[colour] = "" if d == 0 else f"{left}{'+' if d > 0 else '−'}{abs(d)}{right}"
    return out


def render_digest(
    rollup: Rollup, *, fmt: Format, locale: str = "zh", previous_stats: dict[str, Any] | None = None
) -> str:
    if fmt not in _TEMPLATES:
        raise ValueError(f"unknown digest format {fmt!r}; expected one of {', '.join(_TEMPLATES)}")
    return render_report(
        _TEMPLATES[fmt],
        locale=locale,
        r=rollup,
        delta=colour_delta(rollup.counts, previous_stats, locale=locale),
        exceptions=exceptions(rollup.tasks),
        limit=CHAT_LIMIT,
        page_limit=PAGE_LIMIT,
        tz=rollup.period.tz,
        lang="zh-CN" if locale == "zh" else "en",
        page_title=f"{rollup.plan.title} {rollup.period.label}",
    )


def leaders_summary(
    rollup: Rollup,
    *,
    locale: str = "zh",
    department_code: str | None = None,
    previous_stats: dict[str, Any] | None = None,
    full: str = "/digest",
    max_chars: int = SUMMARY_MAX_CHARS,
    max_lines: int = SUMMARY_MAX_LINES,
) -> str:
    """By exception, one screen: red then yellow (the leader's own department's when given), what changed,
    what needs a decision, the plan-wide counts. Lists shrink until the text fits."""
    tasks = rollup.tasks
    dept_name = ""
    if department_code:
        tasks = [t for t in tasks if t.lead_code == department_code]
        dept_name = next((d.name for d in rollup.departments if d.code == department_code), department_code)
    ex = exceptions(tasks)
    red = [t for t in ex if t.colour == "red"]
    yellow = [t for t in ex if t.colour == "yellow"]
    codes = {t.code for t in tasks}
    changes = [c for c in reversed(rollup.changes) if c.type != EventType.TASK_COLOUR_CHANGED]
    decisions = rollup.decisions
    if department_code:
        changes = [c for c in changes if c.task_code in codes]
        decisions = [d for d in decisions if d.task_code in codes or (d.task_code is None and d.subject == dept_name)]
    text = ""
    # Shrink the lists (changes first, then yellow, then red) and then the titles until it fits a screen.
    for n_red, n_yellow, n_changes, n_dec, title_len in (
        (6, 5, 4, 4, 24),
        (5, 4, 3, 3, 20),
        (4, 3, 2, 3, 16),
        (3, 2, 1, 2, 14),
        (2, 1, 0, 1, 12),
        (1, 1, 0, 1, 10),
    ):
        text = render_report(
            "reports/summary_chat.html",
            locale=locale,
            r=rollup,
            dept=dept_name,
            delta=colour_delta(rollup.counts, previous_stats, locale=locale),
            red=red[:n_red],
            red_total=len(red),
            yellow=yellow[:n_yellow],
            yellow_total=len(yellow),
            changes=changes[:n_changes],
            decisions=decisions[:n_dec],
            decisions_total=len(decisions),
            title_len=max(title_len, 5),
            change_len=title_len + 20,
            full=full,
        )
        if len(text) <= max_chars and text.count("\n") <= max_lines:
            break
    return text


@dataclass
class DigestOutput:
    rollup: Rollup
    digest: Digest | None
    previous_stats: dict[str, Any] | None
    locale: str

    def render(self, fmt: Format) -> str:
        return render_digest(self.rollup, fmt=fmt, locale=self.locale, previous_stats=self.previous_stats)

    def summary(self, *, department_code: str | None = None, full: str = "/digest") -> str:
        return leaders_summary(
            self.rollup,
            locale=self.locale,
            department_code=department_code,
            previous_stats=self.previous_stats,
            full=full,
        )


def _previous_stats(session: Session, plan: Plan, period: Period) -> dict[str, Any] | None:
    prev = session.exec(
        select(Digest)
        .where(Digest.plan_id == plan.id, Digest.kind == "weekly", Digest.period_end < period.start)
        .order_by(col(Digest.period_end).desc())
    ).first()
    return dict(prev.stats) if prev else None


def build_digest(
    *,
    session: Session,
    plan: Plan,
    now: datetime,
    week: str | None = None,
    locale: str = "zh",
    calendar: WorkCalendar | None = None,
    store: bool = True,
) -> DigestOutput:
    """Roll up the ISO week (default: this week) and store it as the week's Digest row (replacing an
    earlier compilation of the same week). The caller commits."""
    period = week_period(plan=plan, now=now, week=week)
    rollup = build_rollup(session=session, plan=plan, period=period, now=now, calendar=calendar)
    previous = _previous_stats(session, plan, period)
    out = DigestOutput(rollup=rollup, digest=None, previous_stats=previous, locale=locale)
    if not store:
        return out
    stats = {k: v for k, v in rollup.counts.items() if v is not None}
    digest_hash = hashlib.sha256(out.render("md").encode("utf-8")).hexdigest()
    row = session.exec(
        select(Digest).where(Digest.plan_id == plan.id, Digest.kind == "weekly", Digest.label == period.label)
    ).first()
    if row is None:
        row = Digest(
            plan_id=row_id(plan),
            kind="weekly",
            label=period.label,
            period_start=period.start,
            period_end=period.end,
        )
        session.add(row)
    row.created_at, row.stats, row.content_sha256 = now, stats, digest_hash
    session.flush()
    events.record(
        session,
        EventType.DIGEST_COMPILED,
        at=now,
        plan_id=plan.id,
        digest=row.id,
        week=period.label,
        sha256=digest_hash,
        **{k: stats[k] for k in ("red", "yellow", "green", "reports")},
    )
    out.digest = row
    return out


def write_digest(
    *,
    session: Session,
    plan: Plan,
    now: datetime,
    fmt: Format = "md",
    out: Path | None = None,
    week: str | None = None,
    locale: str = "zh",
) -> str:
    """For ``coordbot digest``: compile, store, render; write to ``out`` when given. Returns the text."""
    result = build_digest(session=session, plan=plan, now=now, week=week, locale=locale)
    text = result.render(fmt)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        assert result.digest is not None
        result.digest.path = str(out)
    return text


def queue_weekly_digest(
    *, session: Session, plan: Plan, now: datetime, calendar: WorkCalendar, full: str = "/digest"
) -> int:
    """For the scheduler (Friday 16:00 on a working day): the chat digest to every bound office contact and
    the summary to every bound leader (their department's items), as durable notice occurrences.
    Idempotent per week: a digest already queued is not queued again. Returns the number of messages."""
    from coordbot.scheduling.models import ReminderKind
    from coordbot.scheduling.outbox import add_occurrence

    result = build_digest(session=session, plan=plan, now=now, calendar=calendar)
    digest = result.digest
    assert digest is not None
    if digest.sent_at is not None:
        return 0
    contacts = session.exec(
        select(Contact, Department.code)
        .join(Department, col(Department.id) == Contact.department_id)
        .where(
            Contact.active,
            col(Contact.address).is_not(None),
            col(Contact.role).in_([Role.OFFICE, Role.LEADER]),
            Department.organisation_id == plan.organisation_id,  # another plan's office and leaders: not theirs
        )
    ).all()
    fire_at = calendar.next_send_time(now)
    texts: dict[tuple[str, str | None], str] = {}
    for contact, dept_code in contacts:
        locale = "en" if contact.language.startswith("en") else "zh"
        view = DigestOutput(result.rollup, digest, result.previous_stats, locale)
        key = (locale, None if contact.role == Role.OFFICE else dept_code)
        if key not in texts:
            texts[key] = (
                view.render("text")
                if contact.role == Role.OFFICE
                else view.summary(department_code=dept_code, full=full)
            )
        add_occurrence(
            session=session,
            contact_id=row_id(contact),
            kind=ReminderKind.NOTICE,
            fire_at=fire_at,
            plan_id=plan.id,
            body=texts[key],
            html=True,
            detail=f"digest:{digest.label}",
        )
    digest.sent_at = now
    events.record(session, EventType.DIGEST_QUEUED, at=now, plan_id=plan.id, digest=digest.id, recipients=len(contacts))
    return len(contacts)


def chat_reports(session: Session, who: Any, command: str, now: datetime) -> str:
    """The ``reports`` callable of :class:`coordbot.replies.conversation.Conversation`: ``/digest`` (office)
    gets this week's chat digest; ``/summary`` gets the leaders' summary, a leader's own department's red and
    yellow items with the plan-wide counts, the office's plan-wide."""
    # The person's plans only (their organisations', set by the conversation), the most recent first.
    organisations = session.info.get("organisations")
    query = select(Plan).order_by(col(Plan.updated_at).desc(), col(Plan.id).desc())
    if organisations is not None:
        query = query.where(col(Plan.organisation_id).in_(organisations))
    plan = session.exec(query).first()
    locale = who.locale
    if plan is None:
        return render_report("reports/no_plan.html", locale=locale)
    result = build_digest(session=session, plan=plan, now=now, locale=locale, store=False)
    if command == "digest":
        return result.render("text")
    dept_code = None
    if who.leader is not None and who.office is None:
        dept = session.get(Department, who.leader.department_id)
        dept_code = dept.code if dept else None
    return result.summary(department_code=dept_code)


# The office gets the week's digest at 16:00 on the week's last working day up to Friday (DESIGN: "Friday
# 16:00"); a Friday off moves it earlier, to the last working day before it.
DIGEST_HOUR = 16


def is_digest_day(calendar: WorkCalendar, day: date) -> bool:
    """Whether ``day`` is the week's last working day up to Friday."""
    if day.weekday() > 4 or not calendar.is_workday(day):
        return False
    friday = day + timedelta(days=4 - day.weekday())
    return not any(calendar.is_workday(day + timedelta(days=d)) for d in range(1, (friday - day).days + 1))


def queue_weekly_digests(*, session: Session, now: datetime, calendar: WorkCalendar) -> int:
    """Queue every plan's weekly digest and summaries if today is the digest day; the number of messages."""
    if not is_digest_day(calendar, now.astimezone(calendar.tz).date()):
        return 0
    return sum(
        queue_weekly_digest(session=session, plan=plan, now=now, calendar=calendar)
        for plan in session.exec(select(Plan)).all()
    )
