"""Digest, leaders' summary and briefing over the scripted quarter: numbers checked against the script."""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import date, timedelta

import html5lib
import pytest
from docx import Document
from sqlalchemy import event
from sqlmodel import select

from coordbot.plan.models import Contact, Department, Role
from coordbot.reports import rollup as rollup_mod
from coordbot.reports.briefing import build_briefing, write_briefing
from coordbot.reports.digest import build_digest, chat_reports
from coordbot.reports.models import Briefing, Digest
from coordbot.reports.rollup import build_rollup, week_period

from .conftest import DIGEST_WEEK, NOW, Q_START, SILENT_TASKS, Script, monday

W = 12  # week index of DIGEST_WEEK
SHIPPED_LEADS = {"3.3": "finance_office", "5.3": "publicity", "S.2": "finance"}  # the rest: amr


def lead(code: str) -> str:
    return SHIPPED_LEADS.get(code, "amr")


def pct(n: int, d: int) -> str:
    return f"{round(n * 100 / d)}%"


def expected_week(script: Script) -> dict:
    sent = [c for c, w in script.reminders if w == W]
    reported = {c for c, w, _ in script.reports if w == W}
    answered = [c for c in sent if c in reported]
    return {
        "sent": len(sent),
        "answered": len(answered),
        "reports": sum(1 for _, w, _ in script.reports if w == W),
        "reported_tasks": len(reported),
    }


def quota_expected(goal: float, start: date, end: date, on: date) -> float:
    """Straight line from the window's start; counts are whole (plan/progress.py)."""
    return float(int(goal * ((on - start).days + 1) / ((end - start).days + 1)))


@pytest.fixture
def digest(plan_in):
    s, plan = plan_in()
    out = build_digest(session=s, plan=plan, now=NOW, week=DIGEST_WEEK)
    s.commit()
    yield out
    s.close()


def test_week_is_iso_week_in_plan_timezone(plan_in) -> None:
    s, plan = plan_in()
    p = week_period(plan=plan, now=NOW, week=None)
    assert (p.label, p.start, p.end) == (DIGEST_WEEK, monday(W), monday(W) + timedelta(days=6))
    with pytest.raises(ValueError, match="2026-W48"):
        week_period(plan=plan, now=NOW, week="48")
    s.close()


def test_rollup_numbers_match_the_script(digest, quarter: Script) -> None:
    r, exp = digest.rollup, expected_week(quarter)
    c = r.counts
    assert (c["reminders_sent"], c["reminders_answered"], c["reports"], c["tasks_reported"]) == (
        exp["sent"],
        exp["answered"],
        exp["reports"],
        exp["reported_tasks"],
    )
    assert {t.code for t in r.by_colour("red")} == {quarter.overdue, quarter.blocked}
    t42 = next(t for t in r.tasks if t.code == quarter.overdue)
    assert (t42.reason, t42.overdue_days) == ("overdue", (NOW.date() - date(2026, 3, 13)).days)
    assert next(t for t in r.tasks if t.code == quarter.blocked).reason == "blocked"
    # silent departments: those whose every task went unanswered this week
    by_dept: dict[str, list[bool]] = {}
    reported = {code for code, w, _ in quarter.reports if w == W}
    for code, w in quarter.reminders:
        if w == W:
            by_dept.setdefault(lead(code), []).append(code in reported)
    assert {d.code for d in r.silent_departments} == {d for d, v in by_dept.items() if not any(v)}
    assert {t.code for t in r.tasks if t.no_reply} == {c for c, w in quarter.reminders if w == W} - reported
    assert {t.code for t in r.tasks if t.no_reply} >= SILENT_TASKS
    # quotas
    q = {x.metric: x for x in r.quotas}
    specials = sum(v for m, d, v, _ in quarter.quantities if m == "special_actions" and d.year == 2026)
    assert q["special_actions"].actual == specials == 6
    assert q["special_actions"].expected == pytest.approx(
        quota_expected(10, date(2026, 1, 1), date(2026, 12, 31), NOW.date())
    )
    pilots = 63 + sum(v for m, d, v, mode in quarter.quantities if m == "pilot_demo_units" and mode == "increment")
    assert q["pilot_demo_units"].actual == pilots
    assert q["pilot_demo_units"].added == sum(
        v for m, d, v, _ in quarter.quantities if m == "pilot_demo_units" and d >= monday(W)
    )
    # progress change this week: +5 points for every task that reported and was not done
    t21 = next(t for t in r.tasks if t.code == "2.1")
    assert (t21.progress, t21.progress_change) == (max(p for c, _, p in quarter.reports if c == "2.1"), REPORT_STEP)


REPORT_STEP = 5


def test_digest_formats_carry_the_same_numbers(digest, quarter: Script) -> None:
    exp = expected_week(quarter)
    rate = pct(exp["answered"], exp["sent"])
    text, page, md = digest.render("text"), digest.render("html"), digest.render("md")
    html5lib.HTMLParser(strict=True).parse(page)  # a full, valid document
    assert f"本周报送 {exp['reports']} 条" in text and f"回复率 {rate}" in text
    assert f'<td class="num">{rate}</td>' in page and f"| {rate} |" in md
    for out in (text, page, md):
        assert quarter.overdue in out and quarter.blocked in out
        assert "区金融办" in out  # silent department
    # the chat lists quotas behind their trajectory; HTML and Markdown list them all
    navigation = quota_expected(20, date(2024, 1, 1), date(2026, 12, 31), NOW.date())
    assert navigation > 0  # nothing reported in three years: behind (in the chat's list), but 0 is no figure
    shown = f"{round(navigation, 1):g}"  # 序时 14, never "14.0"
    assert f"专利导航、知识产权分析评议立项项目（新增） 暂无数据（目标 20项）（累计），序时 {shown}" in text
    assert "，序时 14.0" not in text and not re.search(r"序时 \d+\.0[，|<\s]", text + page + md)
    assert "专项行动和双随机检查" not in text
    assert '<td>专项行动和双随机检查</td><td class="num">6</td><td class="num">10项</td>' in page
    assert re.search(r"\|\s*3\.1\s*\|\s*各级知识产权试点示范单位（新增）\s*\|\s*69\s*\|\s*100家", md)
    # Telegram HTML: only tags the Bot API accepts
    assert set(re.findall(r"</?([a-z]+)", text)) <= {"b", "i", "u", "s", "a", "code", "pre", "blockquote"}


def test_digest_is_stored_and_next_week_shows_colour_moves(plan_in, digest) -> None:
    s, plan = plan_in()
    row = s.exec(select(Digest)).one()
    assert row.label == DIGEST_WEEK and row.stats["red"] == 2 and len(row.content_sha256) == 64
    nxt = build_digest(session=s, plan=plan, now=NOW + timedelta(days=7), week="2026-W14", store=False)
    assert nxt.previous_stats == row.stats
    s.close()


def test_leaders_summary_fits_one_screen(digest, quarter: Script) -> None:
    text = digest.summary()
    assert len(text) <= 1500 and text.count("\n") <= 25
    c = digest.rollup.counts
    assert f"全区任务 {c['tasks']} 项：🔴 {c['red']}" in text
    assert text.index("🔴 红色") < text.index("🟡 黄色")
    assert quarter.overdue in text and "需决策" in text


def test_chat_reports_for_leader_and_office(plan_in, quarter: Script) -> None:
    from coordbot.replies.conversation import Who

    s, _plan = plan_in()
    leader = s.exec(select(Contact).where(Contact.role == Role.LEADER)).one()
    office = s.exec(select(Contact).where(Contact.role == Role.OFFICE)).one()
    dept = s.get(Department, leader.department_id)
    text = chat_reports(s, Who(bindings=[leader], locale="zh"), "summary", NOW)
    # 区金融办's one task (3.3) went unanswered; other departments' red items are not shown
    assert f"{dept.short_name}：催办 1 次均未回复" in text and quarter.overdue not in text
    assert len(text) <= 1500 and text.count("\n") <= 25
    full = chat_reports(s, Who(bindings=[office], locale="zh"), "digest", NOW)
    assert quarter.overdue in full and "工作周报" in full
    s.close()


def test_rollup_query_count_is_fixed(plan_in, engine) -> None:
    s, plan = plan_in()
    period = week_period(plan=plan, now=NOW, week=DIGEST_WEEK)
    build_rollup(session=s, plan=plan, period=period, now=NOW)  # warm caches (calendar, mappers)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        build_rollup(session=s, plan=plan, period=period, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    selects = [x for x in statements if x.lstrip().upper().startswith("SELECT")]
    assert len(selects) == rollup_mod.QUERIES, selects
    s.close()


@pytest.fixture
def briefing(plan_in):
    s, plan = plan_in()
    doc = build_briefing(session=s, plan=plan, meeting_date=NOW.date(), since=Q_START, now=NOW)
    yield doc
    s.close()


def _quarter_expectations(script: Script) -> dict:
    sent = len(script.reminders)
    answered = sum(1 for c, w in script.reminders if any(rc == c and rw == w for rc, rw, _ in script.reports))
    return {"reports": len(script.reports), "sent": sent, "answered": answered}


def test_briefing_numbers_in_all_formats(briefing, quarter: Script) -> None:
    e = _quarter_expectations(quarter)
    overview = f"期间各单位报送进展{e['reports']}条"
    rate = f"回复率{pct(e['answered'], e['sent'])}"
    md, page = briefing.to_markdown(), briefing.to_html()
    html5lib.HTMLParser(strict=True).parse(page)
    docx = Document(io.BytesIO(briefing.to_docx()))
    body = "\n".join(p.text for p in docx.paragraphs)
    cells = "\n".join(c.text for t in docx.tables for row in t.rows for c in row.cells)
    for out in (md, page, body):
        assert overview in out and rate in out
        assert "本期报结2项、销号1项" in out  # 1.1 and 5.1 reported done; 1.1 closed
        assert "由2026年3月20日延至2026年5月29日" in out  # the extension with both dates, among the items
    for out in (md, page, cells):
        assert "时限由2026年3月20日延至2026年5月29日" in out  # and in the task's row
        assert f"逾期{(NOW.date() - date(2026, 3, 13)).days}天" in out
    r = briefing.rollup
    assert {t.code for t in r.closures} == {quarter.closed}
    assert {t.code for t in r.completions} == {quarter.closed, quarter.reported_done}


def test_briefing_docx_structure(briefing) -> None:
    docx = Document(io.BytesIO(briefing.to_docx()))
    headings = [p.text for p in docx.paragraphs if p.style.name.startswith("Heading")]
    h1 = [h for h in headings if re.match(r"^[一二三四五六七八九十]、", h)]
    assert h1[:5] == [
        "一、总体情况",
        "二、主要任务推进情况",
        "三、指标完成情况",
        "四、需协调事项",
        "五、各单位报送情况",
    ]
    assert h1[-1].endswith("建议议定事项")
    assert [h[:3] for h in headings if h.startswith("（")] == ["（一）", "（二）", "（三）", "（四）", "（五）"]
    assert "保障措施" in headings
    groups = len(briefing.rollup.groups)
    assert len(docx.tables) == groups + 2  # one per group, quotas, departments
    dept_table = docx.tables[-1]
    assert len(dept_table.rows) == len(briefing.rollup.departments) + 1
    assert len(docx.inline_shapes) == 3  # colours, quotas, response rate
    footer_xml = docx.sections[0].footer.paragraphs[0]._p.xml
    assert "PAGE" in footer_xml and 'w:fldCharType="begin"' in footer_xml
    rfonts = docx.styles["Normal"].element.rPr.rFonts
    assert "仿宋" in rfonts.get("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}eastAsia")
    html = briefing.to_html()
    assert html.count("data:image/png;base64,") == 3


def test_write_briefing_stores_row(plan_in, tmp_path) -> None:
    s, plan = plan_in()
    out = tmp_path / "b.docx"
    row = write_briefing(session=s, plan=plan, meeting_date=NOW.date(), fmt="docx", out=out, now=NOW)
    s.commit()
    assert out.exists() and row.id and s.exec(select(Briefing)).one().path == str(out)
    Document(str(out))
    s.close()


def test_department_response_table_matches_script(briefing, quarter: Script) -> None:
    sent: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    for c, w in quarter.reminders:
        sent[lead(c)] += 1
        answered[lead(c)] += any(rc == c and rw == w for rc, rw, _ in quarter.reports)
    got = {d.code: (d.reminders_sent, d.reminders_answered) for d in briefing.rollup.departments if d.reminders_sent}
    assert got == {d: (sent[d], answered[d]) for d in sent}
