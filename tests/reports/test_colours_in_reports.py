"""What the reports say over the scripted quarter (issue 16): silence colours a task, every red task is in
需协调事项, and the figures do not contradict each other (progress beside quotas, 0 that means no data, 序时)."""

from __future__ import annotations

import re

from sqlmodel import select

from coordbot.core.text import environment
from coordbot.plan.models import Task
from coordbot.reports.digest import build_digest
from coordbot.reports.rollup import REPLY_WINDOW_WORKDAYS, build_rollup, week_period

from .conftest import DIGEST_WEEK, NOW, SILENT_TASKS


def _digest(plan_in, **changes: dict[str, object]):  # type: ignore[no-untyped-def]
    """The week's digest after setting task fields: ``{"3.3": {"escalation_level": 1}}``."""
    s, plan = plan_in()
    for code, fields in changes.items():
        task = s.exec(select(Task).where(Task.code == code)).one()
        for name, value in fields.items():
            setattr(task, name, value)
    s.flush()
    out = build_digest(session=s, plan=plan, now=NOW, week=DIGEST_WEEK, store=False)
    s.close()
    return out


def _section(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i : text.index(end, i + len(start))]


def test_silence_past_the_reply_window_is_yellow(plan_in) -> None:
    assert REPLY_WINDOW_WORKDAYS < 4  # Monday's reminder, Friday's digest: four working days of silence
    r = _digest(plan_in).rollup
    by_code = {t.code: t for t in r.tasks}
    for code in SILENT_TASKS:
        t = by_code[code]
        assert t.colour != "green", (code, t.reason)
        if t.colour == "yellow":
            assert t.reason == "unreported" and t.reasons == ["unreported"]  # not "未报送" twice
    answered = [t for t in r.tasks if t.reports and t.status == "in_progress"]
    assert answered and all(t.reason != "unreported" for t in answered)


def test_escalated_tasks_are_red_and_every_red_task_needs_coordination(plan_in) -> None:
    out = _digest(plan_in, **{"3.3": {"escalation_level": 1}, "4.1": {"escalation_level": 2}})
    r = out.rollup
    by_code = {t.code: t for t in r.tasks}
    assert (by_code["3.3"].colour, by_code["3.3"].reason) == ("red", "escalated")
    assert (by_code["4.1"].colour, by_code["4.1"].reason) == ("red", "escalated")
    red = {t.code for t in r.by_colour("red")}
    assert {"3.3", "4.1"} <= red and len(red) >= 4  # with the overdue 4.2 and the blocked 3.2
    md = _section(out.render("md"), "## 需协调事项", "\n## ")
    page = _section(out.render("html"), "<h2>需协调事项</h2>", "<h2>")
    for code in red:
        assert re.search(rf"- \w+：{re.escape(code)} ", md), (code, md)
        assert re.search(rf"<li>\w+：{re.escape(code)} ", page), (code, page)
    assert "- 督办：3.3 " in md and "已督办" in md
    decisions = {(d.kind, d.task_code) for d in r.decisions}
    assert {("escalated", "3.3"), ("escalated", "4.1")} <= decisions
    assert "4.1" in out.render("text").split("需领导决策")[1]  # the chat digest's decisions name it


def test_a_report_restores_the_colour(plan_in) -> None:
    r = _digest(plan_in, **{"3.3": {"escalation_level": 0}}).rollup
    assert next(t for t in r.tasks if t.code == "3.3").reason != "escalated"


def test_progress_follows_the_quotas_when_no_percent_was_reported(plan_in) -> None:
    out = _digest(plan_in, **{"2.1": {"progress": 0}})  # as if 2.1's reports never gave a percent
    t21 = next(t for t in out.rollup.tasks if t.code == "2.1")
    [q] = t21.quotas
    assert (q.actual, q.goal) == (6, 10)
    assert (t21.progress, t21.progress_basis) == (60, "quota")  # not "进度 0%" beside 6/10
    # the line every report prints for a task (digest lists, briefing tables)
    macros = environment("zh").get_template("reports/_r.j2").module
    assert "进度 60%（按指标）" in str(macros.task_line(t21))  # type: ignore[attr-defined]


def test_nothing_reported_is_no_data_and_figures_have_no_spurious_decimal(plan_in) -> None:
    s, plan = plan_in()
    r = build_rollup(session=s, plan=plan, period=week_period(plan=plan, now=NOW, week=DIGEST_WEEK), now=NOW)
    s.close()
    unreported = [q for q in r.quotas if not q.reported]
    reported = [q for q in r.quotas if q.reported]
    assert unreported and reported
    assert all(q.actual == 0 for q in unreported)
    assert {q.metric for q in reported} >= {"special_actions", "pilot_demo_units"}
    out = _digest(plan_in)
    md, page, text = out.render("md"), out.render("html"), out.render("text")
    for q in unreported:
        row = next(line for line in md.splitlines() if f"| {q.name} |" in line)
        assert "| 未报送 |" in row and "| 正常 |" not in row and "| 0 |" not in row.split(q.name)[1][:6]
    assert "暂无数据（目标" in text  # the chat's list of quotas behind: no "0/20项"
    for out_text in (md, page, text):
        assert not re.search(r"序时 \d+\.0(?!\d)", out_text)
        assert not re.search(r"\| \d+\.0 \|", out_text)


def test_the_briefing_lists_escalated_tasks_in_its_coordination_section(plan_in) -> None:
    from coordbot.reports.briefing import build_briefing

    from .conftest import Q_START

    s, plan = plan_in()
    s.exec(select(Task).where(Task.code == "3.3")).one().escalation_level = 1
    s.flush()
    md = build_briefing(session=s, plan=plan, meeting_date=NOW.date(), since=Q_START, now=NOW, with_charts=False)
    text = md.to_markdown()
    s.close()
    section = text[text.index("需协调事项") :].split("\n#")[0]
    assert "督办：3.3 " in section, section
