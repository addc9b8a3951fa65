"""Payload text with HTML in it (a task title, a department's name, what a contact wrote) is escaped exactly
once in every HTML output (the digest page, the briefing page, Telegram HTML) and kept raw in Markdown and
plain text, also where it passes through the shared report macros (templates/*/reports/_r.j2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import html5lib
import pytest
from markupsafe import escape
from sqlmodel import Session, select

from coordbot.channels import feishu, wecom
from coordbot.channels.telegram import split_html
from coordbot.core.text import html_to_text
from coordbot.plan import actions
from coordbot.plan.models import Contact, Department, Plan, Task
from coordbot.reports.briefing import build_briefing
from coordbot.reports.digest import DigestOutput, build_digest
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.messages import reminder_text
from coordbot.testing.fake_telegram.html_entities import parse_html

from .conftest import NOW, Q_START, Script

EVIL = "<script>alert(1)</script> & <b>"
ESCAPED = str(escape(EVIL))  # &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;
TWICE = ("&amp;amp;", "&amp;lt;", "&amp;gt;")


def assert_html(out: str, *, whole: bool = True) -> None:
    """Escaped once, never raw; ``whole``: the text is shown untruncated somewhere."""
    assert "<script" not in out and "</script>" not in out and EVIL not in out
    assert not any(t in out for t in TWICE), [t for t in TWICE if t in out]
    if whole:
        assert ESCAPED in out


def assert_telegram(text: str, *, whole: bool = True) -> None:
    """Valid Telegram HTML (the fake Bot API's parser, strict about a bare ``&``), in every part the channel
    sends, and the reader sees the raw text."""
    assert_html(text, whole=whole)
    parts = split_html(text)
    for part in parts:
        parse_html(part)
    shown, _entities = parse_html(text)
    if whole:
        assert EVIL in shown
    assert "&lt;" not in shown and "&amp;" not in shown  # what the reader sees is unescaped exactly once


@pytest.fixture
def tainted(plan_in, quarter: Script) -> Iterator[tuple[Session, Plan]]:
    """The quarter with HTML in the overdue and the blocked task's titles, the helper department's name and
    the reason a contact gave for the extension."""
    s, plan = plan_in()
    for code, prefix in ((quarter.overdue, "逾期"), (quarter.blocked, "受阻")):
        task = s.exec(select(Task).where(Task.code == code)).one()
        task.title = prefix + EVIL
    helper = s.exec(select(Department).where(Department.code == quarter.help_dept)).one()
    helper.short_name = "财政" + EVIL
    # a contact asks for more time this week, with HTML in the reason
    task = s.exec(select(Task).where(Task.code == quarter.overdue)).one()
    contact = s.exec(select(Contact).where(Contact.department_id == task.lead_department_id)).first()
    actions.request_extension(
        session=s,
        task=task,
        new_due=date(2026, 6, 30),
        reason="选址调整" + EVIL,
        contact=contact,
        now=NOW - timedelta(days=1),
    )
    s.commit()
    yield s, plan
    s.close()


@pytest.fixture
def tainted_digest(tainted) -> DigestOutput:
    s, plan = tainted
    out = build_digest(session=s, plan=plan, now=NOW, week="2026-W13")
    s.commit()
    return out


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_digest_page_escapes_titles_names_and_reasons_once(tainted_digest: DigestOutput, locale: str) -> None:
    tainted_digest.locale = locale
    page = tainted_digest.render("html")
    html5lib.HTMLParser(strict=True).parse(page)
    assert_html(page)
    # through the macros (task_line, request, extension, decision), not only the plain table cells
    assert page.count(ESCAPED) >= 8
    assert f"选址调整{ESCAPED}" in page and f"财政{ESCAPED}" in page
    for line in page.splitlines():
        if line.startswith("<li>") and ESCAPED in line:
            break
    else:
        raise AssertionError("no list item (a macro's line) carries the escaped text")


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_chat_digest_and_summary_are_valid_telegram_html(tainted_digest: DigestOutput, locale: str) -> None:
    tainted_digest.locale = locale
    text = tainted_digest.render("text")
    assert_telegram(text)
    assert f"选址调整{ESCAPED}" in text  # the extension line (a macro)
    summary = tainted_digest.summary()
    # titles and the lines of changes and decisions are cut to fit a screen: never inside an entity
    assert_telegram(summary, whole=False)
    assert "&lt;script" in summary
    # what the other chat platforms make of the Telegram HTML: the raw text once
    assert EVIL in wecom.plain_text(text) and ESCAPED not in wecom.plain_text(text)
    assert EVIL in feishu.plain_text(feishu.parse_html(text))
    assert EVIL in html_to_text(text)


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_markdown_digest_keeps_the_raw_text(tainted_digest: DigestOutput, locale: str) -> None:
    tainted_digest.locale = locale
    md = tainted_digest.render("md")
    assert md.count(EVIL) >= 8 and "&lt;" not in md and "&amp;" not in md
    assert f"选址调整{EVIL}" in md and f"财政{EVIL}" in md


def test_briefing_page_escapes_once_and_markdown_stays_raw(tainted) -> None:
    s, plan = tainted
    doc = build_briefing(session=s, plan=plan, meeting_date=NOW.date(), since=Q_START, now=NOW, with_charts=False)
    page, md = doc.to_html(), doc.to_markdown()
    html5lib.HTMLParser(strict=True).parse(page)
    assert_html(page)
    assert f"选址调整{ESCAPED}" in page
    assert EVIL in md and f"选址调整{EVIL}" in md and "&lt;" not in md and "&amp;" not in md


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_reminder_is_valid_telegram_html(locale: str) -> None:
    task = Task(plan_id=1, group_id=1, code="1.1", title=EVIL, lead_department_id=1, progress=10)
    text = reminder_text(
        task=task,
        kind="periodic",
        detail="",
        ref_date=date(2026, 3, 27),
        quotas=[],
        fire_at=NOW,
        calendar=WorkCalendar(tz="Asia/Shanghai"),
        locale=locale,
    )
    assert_telegram(text)
