"""English reports: every output of the digest, leaders' summary and briefing renders from templates/en/reports;
no Chinese template words leak in (plan content, such as task titles, stays as stored); the Chinese output keeps
its words. Also: long lists in the page digest are capped, and the quota sums match quota_progress."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import html5lib
import pytest
from docx import Document
from sqlmodel import select

from coordbot.plan.models import Observation, Target
from coordbot.plan.progress import quota_progress
from coordbot.reports import digest as digest_mod
from coordbot.reports.briefing import build_briefing
from coordbot.reports.digest import build_digest, chat_reports

from .conftest import DIGEST_WEEK, NOW, Q_START, Script

# Words that only the Chinese templates write (plan content never contains them in the shipped plan).
ZH_TEMPLATE_WORDS = (
    "工作周报",
    "红色事项",
    "黄色事项",
    "简报",
    "总体情况",
    "需协调事项",
    "需领导决策",
    "各单位报送情况",
    "指标进度",
    "回复率",
    "落后于序时",
    "本周变化",
    "领导周报摘要",
    "完整周报",
    "主要任务推进情况",
    "建议议定事项",
    "进度",
    "逾期",
    "受阻",
    "截至",
    "无。",
    "一、",
    "（一）",
    "图表见",
    "第 ",
)


def no_zh_template_words(text: str) -> None:
    leaked = [w for w in ZH_TEMPLATE_WORDS if w in text]
    assert not leaked, leaked


@pytest.fixture
def digests(plan_in):
    s, plan = plan_in()
    out = {loc: build_digest(session=s, plan=plan, now=NOW, week=DIGEST_WEEK, locale=loc) for loc in ("zh", "en")}
    s.commit()
    yield out
    s.close()


@pytest.fixture
def briefings(plan_in):
    s, plan = plan_in()
    out = {
        loc: build_briefing(session=s, plan=plan, meeting_date=NOW.date(), since=Q_START, now=NOW, locale=loc)
        for loc in ("zh", "en")
    }
    yield out
    s.close()


def test_english_digest_in_every_format(digests, quarter: Script) -> None:
    en = digests["en"]
    text, page, md = en.render("text"), en.render("html"), en.render("md")
    html5lib.HTMLParser(strict=True).parse(page)
    assert "Weekly digest 2026-W13" in text and "🔴 Red items" in text and "response rate" in text
    assert "For the leaders to decide" in text
    assert '<html lang="en">' in page
    for h in ("Overview", "Red and yellow items", "Quotas", "Needs coordination", "Departments", "Changes this week"):
        assert f"<h2>{h}" in page and f"## {h}" in md
    assert "<th>Response rate</th>" in page and "| Response rate |" in md
    # the quotas behind are those with nothing reported: "not reported", not a 0 behind the trajectory
    assert "not reported" in page and "days overdue" in page
    for out in (text, page, md):
        no_zh_template_words(out)
        assert quarter.overdue in out and quarter.blocked in out  # task codes
        assert "区金融办" in out  # plan content stays as stored


def test_english_digest_has_the_chinese_numbers(digests) -> None:
    zh, en = digests["zh"], digests["en"]
    c = en.rollup.counts
    assert c == zh.rollup.counts
    assert f"{c['tasks']} tasks: 🔴 {c['red']}" in en.render("text")
    assert f"任务 {c['tasks']} 项：🔴 {c['red']}" in zh.render("text")


def test_english_leaders_summary(digests, quarter: Script) -> None:
    text = digests["en"].summary()
    assert len(text) <= 1500 and text.count("\n") <= 25
    assert "Leaders' summary 2026-W13" in text and "🔴 Red" in text and "Full digest: /digest" in text
    assert quarter.overdue in text and "To decide" in text
    no_zh_template_words(text)


def test_english_chat_reports(plan_in) -> None:
    from coordbot.plan.models import Contact, Role
    from coordbot.replies.conversation import Who

    s, _plan = plan_in()
    office = s.exec(select(Contact).where(Contact.role == Role.OFFICE)).one()
    full = chat_reports(s, Who(bindings=[office], locale="en"), "digest", NOW)
    assert "Weekly digest" in full
    no_zh_template_words(full)
    s.close()


def test_english_briefing_in_every_format(briefings) -> None:
    en = briefings["en"]
    md, page = en.to_markdown(), en.to_html()
    html5lib.HTMLParser(strict=True).parse(page)
    docx = Document(io.BytesIO(en.to_docx()))
    body = "\n".join(p.text for p in docx.paragraphs)
    cells = "\n".join(c.text for t in docx.tables for row in t.rows for c in row.cells)
    headings = [p.text for p in docx.paragraphs if p.style.name.startswith("Heading")]
    h1 = [h for h in headings if re.match(r"^\d+\. ", h)]
    assert h1[:5] == ["1. Overview", "2. Tasks", "3. Quotas", "4. Needs coordination", "5. Departments"]
    assert h1[-1] == f"{len(h1)}. Proposed for decision"
    assert [h[:3] for h in headings if h.startswith("(")] == ["(1)", "(2)", "(3)", "(4)", "(5)"]
    assert "Joint meeting briefing" in body and "Figure 1. Task colours" in body
    assert "Lead department" in cells and "Response rate" in cells and "deadline extended from 2026-03-20" in cells
    footer = "".join(r.text for r in docx.sections[0].footer.paragraphs[0].runs)
    assert footer.startswith("page")
    assert "(chart in DOCX / HTML)" in md and "## 1. Overview" in md
    for out in (md, page, body, cells, footer):
        no_zh_template_words(out)


def test_chinese_output_keeps_its_words(digests, briefings) -> None:
    zh = digests["zh"]
    text, page, md = zh.render("text"), zh.render("html"), zh.render("md")
    assert "工作周报 2026-W13" in text and "🔴 红色事项" in text
    assert "<h2>总体情况</h2>" in page and '<html lang="zh-CN">' in page and "## 需领导决策" in md
    assert "领导周报摘要" in zh.summary()
    b = briefings["zh"]
    assert "## 一、总体情况" in b.to_markdown() and "联席会议简报" in b.to_html()
    for out in (text, page, md, zh.summary(), b.to_markdown()):
        for word in ("Weekly digest", "Overview", "Red and yellow", "Leaders' summary", "more not listed"):
            assert word not in out


def test_english_colour_delta(plan_in, digests) -> None:
    s, plan = plan_in()
    s.commit()
    nxt = build_digest(session=s, plan=plan, now=NOW + timedelta(days=7), week="2026-W14", locale="en", store=False)
    assert nxt.previous_stats is not None
    assert "（" not in "".join(
        digest_mod.colour_delta(nxt.rollup.counts, {"red": 0, "yellow": 0, "green": 0}, locale="en").values()
    )
    s.close()


@pytest.mark.parametrize(("locale", "line"), [("zh", "其余 {n} 项未列出"), ("en", "{n} more not listed")])
def test_page_digest_caps_long_lists(digests, monkeypatch, locale: str, line: str) -> None:
    out = digests[locale]
    full_md = out.render("md")
    monkeypatch.setattr(digest_mod, "PAGE_LIMIT", 1)
    n_depts = len(out.rollup.departments)
    for fmt in ("html", "md"):
        capped = out.render(fmt)
        assert line.format(n=n_depts - 1) in capped
        assert len(capped) < len(full_md) or fmt == "html"
    assert out.render("text") == out.render("text")  # the chat digest has its own limit


def test_quota_sums_match_quota_progress(plan_in, digests) -> None:
    """The roll-up sums plain increments in SQL per date range; every quota must still equal quota_progress
    over all the target's observations, on the period's last day and on the day before it starts."""
    s, plan = plan_in()
    r = digests["zh"].rollup
    lines = {q.name: q for q in r.quotas + r.goals}
    targets = s.exec(select(Target).where(Target.plan_id == plan.id)).all()
    checked = 0
    for tg in targets:
        if tg.name not in lines:
            continue
        obs = s.exec(select(Observation).where(Observation.target_id == tg.id)).all()
        args = {"plan_start": plan.start_date, "plan_end": plan.end_date}
        now = quota_progress(tg, obs, on=r.as_of, **args)
        before = quota_progress(tg, obs, on=r.period.start - timedelta(days=1), **args)
        q = lines[tg.name]
        assert (q.actual, q.expected, q.goal) == (now.actual, now.expected, now.goal), tg.metric
        added = now.actual - before.actual if before.period_start == now.period_start else now.actual
        assert q.added == added, tg.metric
        checked += 1
    assert checked >= 3
    s.close()
