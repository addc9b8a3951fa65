"""What real plans say, written down (issue 15, items 2 and 6): each format feature loaded, refused with file,
line and field when wrong, imported, and used where it matters (reminders, the plan as shown)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.core.text import render
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan, PlanFileError, load_plan_file, parse_plan_text
from coordbot.plan.models import Contact, Department, Extension, Observation, Plan, Target, Task, TaskDepartment
from coordbot.plan.queries import task_quota_progress
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import ReminderEngine
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.scheduling.views import preview_task

ROOT = Path(__file__).resolve().parents[2]
SONGJIANG = ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"
MINIMAL = ROOT / "tests" / "data" / "plans" / "minimal.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _import(engine: Engine, loaded: LoadedPlan) -> service.ImportReport:
    with session_scope(engine) as s:
        return service.import_plan(session=s, loaded=loaded)


def _problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(PlanFileError) as err:
        parse_plan_text(text, "bad.yaml")
    return [(p.line, p.path, p.message) for p in err.value.problems]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# ---- assignment per department ---------------------------------------------------------------------


def test_a_proposed_lead_beside_stated_co_departments(engine: Engine) -> None:
    _import(engine, load_plan_file(SONGJIANG))
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.2")).one()
        assert task.assignment == "proposed"  # the lead's: the text names no lead
        co = s.exec(
            select(Department.code, TaskDepartment.assignment)
            .join(Department, col(Department.id) == TaskDepartment.department_id)
            .where(TaskDepartment.task_id == task.id)
        ).all()
        assert sorted(co) == [("culture_enforce", "stated"), ("police_econ", "stated")]
        plan = s.exec(select(Plan)).one()
        view = service.plan_view(session=s, plan=plan)
    shown = render(
        "plan_show.txt.j2",
        locale="zh",
        plan=view.plan,
        groups=view.groups,
        goals=view.goals,
        departments=view.departments,
        archived=[],
        task_count=0,
        target_count=0,
    )
    lines = shown.splitlines()
    line = lines[next(i for i, ln in enumerate(lines) if ln.startswith("  2.2 ")) + 1]
    assert line.strip() == (
        "牵头：区市场监管局（区知识产权局）（建议，待办公室确认）　配合：区文化执法大队、公安松江分局经侦支队"
    )
    # Tasks assigned alike keep one mark at the end, as before.
    assert "配合：区经委、区财政局、区科委（建议，待办公室确认）" in shown


def test_an_assignment_for_a_department_the_task_does_not_have_is_refused() -> None:
    text = SONGJIANG.read_text(encoding="utf-8").replace(
        "assignments: {amr: proposed}", "assignments: {amr: proposed, finance: stated}"
    )
    [(line, path, message)] = _problems(text)
    assert path == "groups[1].tasks[1].assignments.finance"
    assert line == _line_of(text, "assignments: {amr: proposed, finance")
    assert "neither the lead nor a co-department of task 2.2" in message
    bad = SONGJIANG.read_text(encoding="utf-8").replace("assignments: {amr: proposed}", "assignments: {amr: maybe}")
    [(line, path, message)] = _problems(bad)
    assert (path, line) == ("groups[1].tasks[1].assignments.amr", _line_of(bad, "assignments: {amr: maybe}"))
    assert "'stated', 'proposed' or 'confirmed'" in message


# ---- multi-day events ------------------------------------------------------------------------------


def test_publicity_week_is_a_week_and_is_reminded_before_it_starts(engine: Engine) -> None:
    loaded = load_plan_file(SONGJIANG)
    _import(engine, loaded)
    assert not _import(engine, loaded).changed  # one-day events stored as before: no change on re-import
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "5.3")).one()
        assert task.dated_events == [{"name": "知识产权宣传周", "day": "04-20", "until": "04-26"}]
        four_26 = s.exec(select(Task).where(Task.code == "5.1")).one().dated_events
        assert {"name": "世界知识产权日", "day": "04-26"} in four_26
        preview = preview_task(
            session=s,
            calendar=WorkCalendar(ROOT / "config" / "holidays"),
            now=datetime(2026, 4, 1, 8, 0, tzinfo=SHANGHAI),
            task_code="5.3",
            horizon=timedelta(days=30),
        )
        english = preview_task(
            session=s,
            calendar=WorkCalendar(ROOT / "config" / "holidays"),
            now=datetime(2026, 4, 1, 8, 0, tzinfo=SHANGHAI),
            task_code="5.3",
            horizon=timedelta(days=30),
            locale="en",
        )
    ahead = [p for p in preview if p.kind == "event_ahead"]
    # 10 and 3 working days before Monday 4.20 (the week's first day, not 4.26).
    assert [p.fire_at.date() for p in ahead] == [date(2026, 4, 3), date(2026, 4, 15)]
    assert "距知识产权宣传周（04月20日至04月26日）还有3个工作日" in ahead[1].text
    assert (
        "知识产权宣传周 (20 Apr to 26 Apr) is 3 working days away"
        in [p for p in english if p.kind == "event_ahead"][1].text
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ('until: "04-26"}', "expected a month and day as MM-DD"),
        ('until: "04-10"}', "until 04-10 is before day 04-20"),
    ],
)
def test_a_bad_event_span_is_refused_with_its_line(edit: str, message: str) -> None:
    good = 'until: "04-26"}'
    text = SONGJIANG.read_text(encoding="utf-8")
    bad = text.replace(good, edit if edit != good else 'until: "4-26"}')
    [(line, path, got)] = _problems(bad)
    assert line == _line_of(bad, "name: 知识产权宣传周, day:")
    assert path.startswith("groups[4].tasks[2].events[0]") and message in got


# ---- dated targets inside a recurring task ---------------------------------------------------------


def test_a_dated_target_in_a_recurring_task_is_reminded_before_its_date(engine: Engine) -> None:
    """Task 3.3 goes on every year, but its 质押融资规模 and 许可转让 aims are for 2026年末: reminded before."""
    _import(engine, load_plan_file(SONGJIANG))
    calendar = WorkCalendar(ROOT / "config" / "holidays")
    with Session(engine) as s:
        preview = preview_task(
            session=s,
            calendar=calendar,
            now=datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI),
            task_code="3.3",
            horizon=timedelta(days=31),
        )
        spring = preview_task(
            session=s,
            calendar=calendar,
            now=datetime(2026, 3, 2, 8, tzinfo=SHANGHAI),
            task_code="3.3",
            horizon=timedelta(days=60),
        )
    dated = [(p.kind, p.fire_at.date()) for p in preview if p.kind in ("before_due", "due_today")]
    # 10, 5 and 1 working days before Thursday 2026-12-31, and on it; no overdue after it.
    assert dated == [
        ("before_due", date(2026, 12, 17)),
        ("before_due", date(2026, 12, 24)),
        ("before_due", date(2026, 12, 30)),
        ("due_today", date(2026, 12, 31)),
    ]
    first = next(p for p in preview if p.kind == "before_due")
    assert "距指标完成时限还有10个工作日（2026-12-31），请报送指标完成情况" in first.text
    assert {p.kind for p in preview} >= {"periodic"}  # the weekly requests go on
    assert not [p for p in spring if p.kind in ("before_due", "due_today", "overdue")]


# ---- ongoing (持续推进) ----------------------------------------------------------------------------

DISTRICT = ROOT / "tests" / "data" / "plans" / "district-shishi-2026.yaml"
ONGOING = DISTRICT.read_text(encoding="utf-8").replace(
    """        lead: gov_office
        kind: recurring
""",
    """        lead: gov_office
        kind: recurring
      - code: S.3
        title: 实事项目长效管理
        source: 建立实事项目建成后长效管理机制，持续推进。主要责任单位：区政府办公室。
        lead: gov_office
        kind: ongoing
""",
)


def test_an_ongoing_task_has_no_deadline_and_is_asked_about_regularly(engine: Engine) -> None:
    _import(engine, parse_plan_text(ONGOING, "ongoing.yaml"))
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "S.3")).one()
        assert (task.kind, task.due_date, task.original_due_date) == ("ongoing", None, None)
        preview = preview_task(
            session=s,
            calendar=WorkCalendar(ROOT / "config" / "holidays"),
            now=datetime(2026, 11, 2, 8, tzinfo=SHANGHAI),
            task_code="S.3",
            horizon=timedelta(days=80),
        )
        plan = s.exec(select(Plan)).one()
        view = service.plan_view(session=s, plan=plan)
    kinds = {p.kind for p in preview}
    assert kinds == {"periodic"}  # weekly requests to the end of the plan, no deadline reminders
    assert max(p.fire_at for p in preview).date() <= date(2026, 12, 31)
    shown = render(
        "plan_show.txt.j2",
        locale="zh",
        plan=view.plan,
        groups=view.groups,
        goals=view.goals,
        departments=view.departments,
        archived=[],
        task_count=0,
        target_count=0,
    )
    assert "S.3 实事项目长效管理〔持续推进〕" in shown and "期限：持续推进" in shown


def test_an_ongoing_task_with_a_deadline_is_refused() -> None:
    bad = ONGOING.replace("        kind: ongoing\n", "        kind: ongoing\n        due: 2026-06-30\n")
    [(line, path, message)] = _problems(bad)
    assert path == "groups[2].tasks[1]" and "ongoing task (持续推进) has no deadline" in message
    assert line == _line_of(bad, "- code: S.3")


# ---- 责任领导 --------------------------------------------------------------------------------------


def test_the_responsible_leader_is_kept_and_shown(engine: Engine) -> None:
    loaded = load_plan_file(DISTRICT)
    _import(engine, loaded)
    assert not _import(engine, loaded).changed
    with Session(engine) as s:
        assert s.exec(select(Task.responsible_leader).where(Task.code == "1.1")).one() == "分管副区长"
        view = service.plan_view(session=s, plan=s.exec(select(Plan)).one())
    [task] = [t for g in view.groups for t in g.tasks if t.code == "1.1"]
    assert task.leader == "分管副区长"
    shown = render(
        "plan_show.txt.j2",
        locale="en",
        plan=view.plan,
        groups=view.groups,
        goals=view.goals,
        departments=view.departments,
        archived=[],
        task_count=0,
        target_count=0,
    )
    assert "responsible leader: 分管副区长" in shown
    edited = DISTRICT.read_text(encoding="utf-8").replace("leader: 分管副区长", "leader: 王副区长")
    report = _import(engine, parse_plan_text(edited, "district.yaml"))
    assert report.changes == ["~ task 1.1: responsible_leader: 分管副区长 → 王副区长"]


# ---- rates and growth ------------------------------------------------------------------------------

GROWTH = DISTRICT.read_text(encoding="utf-8").replace(
    """        lead: gov_office
        kind: recurring
""",
    """        lead: gov_office
        kind: recurring
      - code: S.4
        title: 区级一般公共预算收入
        source: 区级一般公共预算收入增长6.5%。主要责任单位：区财政局。
        lead: finance
        kind: metric
        targets:
          - metric: revenue_growth
            name: 区级一般公共预算收入增长
            unit: "%"
            measure: growth
            period: annual
            value: 6.5
          - metric: satisfaction
            name: 实事项目群众满意度
            unit: "%"
            measure: rate
            value: 90
            due: 2026-12-31
""",
)


def test_growth_and_rates_are_the_latest_value_never_pro_rated(engine: Engine) -> None:
    _import(engine, parse_plan_text(GROWTH, "growth.yaml"))
    calendar = WorkCalendar(ROOT / "config" / "holidays")
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "S.4")).one()
        growth = s.exec(select(Target).where(Target.metric == "revenue_growth")).one()
        assert growth.measure == "growth"
        before = task_quota_progress(session=s, task=task, today=date(2026, 4, 10))
        for day, value in ((date(2026, 3, 31), 3.0), (date(2026, 4, 8), 4.5)):
            s.add(Observation(target_id=growth.id, value=value, mode="increment", observed_on=day))
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "S.4")).one()
        after = task_quota_progress(session=s, task=task, today=date(2026, 4, 10))
        preview = preview_task(
            session=s,
            calendar=calendar,
            now=datetime(2026, 4, 10, 8, tzinfo=SHANGHAI),
            task_code="S.4",
            horizon=timedelta(days=7),
        )
    assert [(q.metric, q.actual, q.expected, q.has_value) for q in before] == [
        ("revenue_growth", 0.0, None, False),
        ("satisfaction", 0.0, None, False),
    ]
    # 4.5% is the growth so far, not 3 + 4.5; and no 序时 of a rate ("0/6.5 %（序时 2）" meant nothing).
    assert (after[0].metric, after[0].actual, after[0].expected) == ("revenue_growth", 4.5, None)
    [text] = [p.text for p in preview if p.kind == "periodic"]
    assert "· 区级一般公共预算收入增长：目标增长6.5%，期末考核；最新报送 4.5%" in text
    assert "· 实事项目群众满意度：目标90%，期末考核；暂无数据" in text
    assert "序时" not in text


def test_a_cumulative_rate_is_refused() -> None:
    bad = GROWTH.replace("            measure: rate\n", "            measure: rate\n            period: cumulative\n")
    [(line, path, message)] = _problems(bad)
    assert path == "groups[2].tasks[1].targets[1]" and "a rate is not added up over years" in message
    assert line == _line_of(bad, "- metric: satisfaction")


# ---- tolerance (左右, ±) ---------------------------------------------------------------------------

ABOUT = GROWTH.replace(
    "            measure: growth\n            period: annual\n            value: 6.5\n",
    "            measure: growth\n            period: annual\n            value: 6.5\n            about: true\n"
    "            tolerance: 0.5\n",
)


def test_about_a_value_counts_within_its_tolerance(engine: Engine) -> None:
    _import(engine, parse_plan_text(ABOUT, "about.yaml"))
    with session_scope(engine) as s:
        growth = s.exec(select(Target).where(Target.metric == "revenue_growth")).one()
        assert (growth.about, growth.tolerance) == (True, 0.5)
        s.add(Observation(target_id=growth.id, value=6.1, mode="total", observed_on=date(2026, 11, 30)))
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "S.4")).one()
        [q, _] = task_quota_progress(session=s, task=task, today=date(2026, 12, 31))
        assert (q.actual, q.reached, q.about, q.tolerance) == (6.1, True, True, 0.5)  # 6.1 is 6.5 ± 0.5
        view = service.plan_view(session=s, plan=s.exec(select(Plan)).one())
        preview = preview_task(
            session=s,
            calendar=WorkCalendar(ROOT / "config" / "holidays"),
            now=datetime(2026, 12, 1, 8, tzinfo=SHANGHAI),
            task_code="S.4",
            horizon=timedelta(days=7),
        )
    assert not dataclasses.replace(q, actual=5.9).reached
    shown = render(
        "plan_show.txt.j2",
        locale="zh",
        plan=view.plan,
        groups=view.groups,
        goals=view.goals,
        departments=view.departments,
        archived=[],
        task_count=0,
        target_count=0,
    )
    assert "区级一般公共预算收入增长：每年增长6.5%左右（±0.5%）（期末考核）" in shown
    assert "目标增长6.5%左右（±0.5），期末考核；最新报送 6.1%" in preview[0].text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("            tolerance: 7\n", "is not below the value 6.5"),
        ("            tolerance: -1\n", "greater than or equal to 0"),
    ],
)
def test_a_tolerance_that_allows_anything_is_refused(edit: str, message: str) -> None:
    bad = ABOUT.replace("            tolerance: 0.5\n", edit)
    [(line, path, got)] = _problems(bad)
    assert message in got and path.startswith("groups[2].tasks[1].targets[0]")
    assert line == _line_of(bad, "tolerance:" if "-1" in edit else "- metric: revenue_growth")


# ---- quarterly and half-yearly deadlines ----------------------------------------------------------


def test_a_quarterly_deadline_is_reminded_before_each_quarters_end(engine: Engine) -> None:
    quarterly = DISTRICT.read_text(encoding="utf-8").replace(
        "        lead: gov_office\n        kind: recurring\n",
        "        lead: gov_office\n        kind: recurring\n        every: quarterly\n",
    )
    _import(engine, parse_plan_text(quarterly, "quarterly.yaml"))
    with Session(engine) as s:
        assert s.exec(select(Task.deadline_every).where(Task.code == "S.2")).one() == "quarterly"
        preview = preview_task(
            session=s,
            calendar=WorkCalendar(ROOT / "config" / "holidays"),
            now=datetime(2026, 3, 1, 8, tzinfo=SHANGHAI),
            task_code="S.2",
            horizon=timedelta(days=122),
        )
        view = service.plan_view(session=s, plan=s.exec(select(Plan)).one())
    dated = [(p.kind, p.fire_at.date()) for p in preview if p.kind in ("before_due", "due_today", "overdue")]
    # Q1 ends Tue 03-31, Q2 ends Tue 06-30: 10, 5, 1 working days before and on the day (before 06-30:
    # 06-19 is the Dragon Boat holiday, so ten working days reach back to 06-15).
    assert dated == [
        ("before_due", date(2026, 3, 17)),
        ("before_due", date(2026, 3, 24)),
        ("before_due", date(2026, 3, 30)),
        ("due_today", date(2026, 3, 31)),
        ("before_due", date(2026, 6, 15)),
        ("before_due", date(2026, 6, 23)),
        ("before_due", date(2026, 6, 29)),
        ("due_today", date(2026, 6, 30)),
    ]
    first = next(p for p in preview if p.kind == "before_due")
    assert "距本季度报送期限还有10个工作日（2026-03-31）" in first.text
    shown = render(
        "plan_show.txt.j2",
        locale="zh",
        plan=view.plan,
        groups=view.groups,
        goals=view.goals,
        departments=view.departments,
        archived=[],
        task_count=0,
        target_count=0,
    )
    assert "期限：每年常态推进，每季度末报送" in shown


def test_half_yearly_ends_and_a_one_off_cannot_come_round() -> None:
    from coordbot.scheduling.policy import _period_ends

    assert [label for _, label in _period_ends(date(2026, 1, 1), date(2026, 12, 31), "half-yearly")] == ["H1", "H2"]
    bad = DISTRICT.read_text(encoding="utf-8").replace(
        "        due: 2026-09-30\n", "        due: 2026-09-30\n        every: half-yearly\n"
    )
    [(line, path, message)] = _problems(bad)
    assert path == "groups[1].tasks[0]" and "not a one-off one" in message
    assert line == _line_of(bad, '- code: "2.1"')


# ---- several leads ---------------------------------------------------------------------------------

# 主要责任单位：区教育局（主责）、区民政局、虹桥镇 — several leads, one marked primary.
SEVERAL = DISTRICT.read_text(encoding="utf-8").replace(
    "        lead: edu\n        co: [finance]\n        due: 2026-09-30\n",
    "        lead: [civil, edu, hongqiao_town]\n        primary: edu\n        co: [finance]\n        due: 2026-09-30\n",
)


async def test_several_leads_are_all_reminded_and_the_primary_is_marked(engine: Engine) -> None:
    loaded = parse_plan_text(SEVERAL, "several.yaml")
    _import(engine, loaded)
    assert not _import(engine, loaded).changed
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        lead = s.get(Department, task.lead_department_id)
        assert (lead.code, task.lead_primary) == ("edu", True)
        rows = s.exec(
            select(Department.code, TaskDepartment.role)
            .join(Department, col(Department.id) == TaskDepartment.department_id)
            .where(TaskDepartment.task_id == task.id)
        ).all()
        assert sorted(rows) == [("civil", "lead"), ("finance", "co"), ("hongqiao_town", "lead")]
        view = service.plan_view(session=s, plan=s.exec(select(Plan)).one())
        contacts = {}
        for code in ("edu", "civil", "hongqiao_town", "finance"):
            dept = s.exec(select(Department).where(Department.code == code)).one()
            contact = Contact(department_id=dept.id, name=f"{code}联络员", address=f"addr-{code}")
            s.add(contact)
            s.flush()
            contacts[code] = contact.id
    [shown] = [t for g in view.groups for t in g.tasks if t.code == "2.1"]
    assert (shown.lead, shown.joint_leads, shown.co) == ("edu", ["civil", "hongqiao_town"], ["finance"])
    text = render(
        "plan_show.txt.j2",
        locale="zh",
        plan=view.plan,
        groups=view.groups,
        goals=view.goals,
        departments=view.departments,
        archived=[],
        task_count=0,
        target_count=0,
    )
    assert "牵头：闵行区教育局（主责）、闵行区民政局、虹桥镇　配合：闵行区财政局" in text
    clock = FakeClock(datetime(2026, 9, 10, 8, tzinfo=SHANGHAI))
    eng = ReminderEngine(engine=engine, calendar=WorkCalendar(ROOT / "config" / "holidays"), clock=clock, channels={})
    eng.sync()
    with Session(engine) as s:
        task_id = s.exec(select(Task.id).where(Task.code == "2.1")).one()
        reminded = set(s.exec(select(ReminderOccurrence.contact_id).where(ReminderOccurrence.task_id == task_id)))
    # Every lead's contact is reminded of the deadline; the co-department is not (as before).
    assert reminded == {contacts["edu"], contacts["civil"], contacts["hongqiao_town"]}


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        (
            "        primary: edu\n",
            "        primary: housing\n",
            "groups[1].tasks[0]",
            "is not one of the task's leads",
        ),
        ("[civil, edu, hongqiao_town]", "[civil, edu, nobody]", "groups[1].tasks[0].lead[2]", "unknown department"),
        ("[civil, edu, hongqiao_town]", "[civil, edu, finance]", "groups[1].tasks[0]", "both lead and co-department"),
    ],
)
def test_bad_leads_are_refused_with_their_line(old: str, new: str, path: str, message: str) -> None:
    bad = SEVERAL.replace(old, new)
    [(line, got_path, got)] = _problems(bad)
    assert got_path == path and message in got
    assert line == _line_of(bad, new.strip() if "lead[" in path else '- code: "2.1"')


# ---- collective assignees (各乡镇、街道) -------------------------------------------------------------

COLLECTIVE = (
    DISTRICT.read_text(encoding="utf-8")
    .replace("  office: gov_office\n", "  office: gov_office\n  organisation: minhang\n")
    .replace(
        "\ngroups:\n",
        "\ncollectives:\n  - {code: all_towns, name: 各镇、街道, kinds: [town]}\n"
        "  - {code: all_bureaus, name: 区政府各部门, members: [finance, civil, edu, housing, amr]}\n\ngroups:\n",
    )
    .replace(
        "        lead: gov_office\n        kind: recurring\n",
        "        lead: gov_office\n        co: [all_towns]\n        kind: recurring\n",
    )
)


def test_a_collective_expands_to_the_organisations_members(engine: Engine) -> None:
    _import(engine, parse_plan_text(COLLECTIVE, "a.yaml"))
    # A second plan of the organisation brings another town: the collective reaches it too.
    second = (
        COLLECTIVE.replace("minhang-shishi-2026", "minhang-2027")
        .replace("2026年闵行区政府实事项目任务分解表", "2027年闵行区实事")
        .replace("闵府办〔2026〕3号", "闵府办〔2027〕1号")
        .replace(
            "    kind: town\n    aliases: [虹桥镇政府]\n",
            "    kind: town\n    aliases: [虹桥镇政府]\n"
            "  - code: xinzhuang_town\n    name: 上海市闵行区莘庄镇人民政府\n    short_name: 莘庄镇\n    kind: town\n",
        )
        .replace("co: [all_towns]", "co: [all_towns, all_bureaus]\n        assignments: {all_bureaus: proposed}")
    )
    _import(engine, parse_plan_text(second, "b.yaml"))
    with Session(engine) as s:
        plan = s.exec(select(Plan).where(Plan.code == "minhang-2027")).one()
        task = s.exec(select(Task).where(Task.plan_id == plan.id, Task.code == "S.2")).one()
        rows = s.exec(
            select(Department.code, TaskDepartment.assignment)
            .join(Department, col(Department.id) == TaskDepartment.department_id)
            .where(TaskDepartment.task_id == task.id)
        ).all()
    assert sorted(rows) == [
        ("amr", "proposed"),
        ("civil", "proposed"),
        ("edu", "proposed"),
        ("finance", "proposed"),
        ("hongqiao_town", "stated"),
        ("housing", "proposed"),
        ("xinzhuang_town", "stated"),
    ]
    # Re-importing the first plan now finds the second town as well: it is the organisation's member.
    report = _import(engine, parse_plan_text(COLLECTIVE, "a.yaml"))
    assert report.changes == ["~ task S.2: co-department xinzhuang_town added"]


def test_a_collective_is_checked_like_a_department() -> None:
    clash = COLLECTIVE.replace("code: all_towns, name", "code: finance, name").replace(
        "co: [all_towns]", "co: [finance]"
    )
    problems = _problems(clash)
    assert ("collectives[0].code" in [p for _, p, _ in problems]) and any(
        "already a department" in m for *_, m in problems
    )
    unknown = COLLECTIVE.replace("members: [finance, civil", "members: [nobody, civil")
    [(line, path, message)] = _problems(unknown)
    assert path == "collectives[1].members[0]" and "unknown department 'nobody'" in message
    assert line == _line_of(unknown, "code: all_bureaus")
    empty = COLLECTIVE.replace(
        "{code: all_towns, name: 各镇、街道, kinds: [town]}", "{code: all_towns, name: 各镇、街道}"
    )
    [(_, path, message)] = _problems(empty)
    assert path == "collectives[0]" and "needs 'kinds'" in message


# ---- milestones ------------------------------------------------------------------------------------

MILESTONES = DISTRICT.read_text(encoding="utf-8").replace(
    "        lead: edu\n        co: [finance]\n        due: 2026-09-30\n",
    """        lead: edu
        co: [finance]
        due: 2026-09-30
        milestones:
          - name: 完成试点学校遴选
            due: 2026-03-31
            source: 3月底前完成试点学校遴选。
          - name: 春季学期试点覆盖
            due: 2026-06-30
            targets:
              - {metric: pilot_schools, name: 课后服务试点学校, unit: 所, value: 40, source: 6月底前试点学校达到40所。}
""",
)


def test_milestones_have_their_dates_reminders_and_targets(engine: Engine) -> None:
    loaded = parse_plan_text(MILESTONES, "milestones.yaml")
    _import(engine, loaded)
    assert not _import(engine, loaded).changed
    calendar = WorkCalendar(ROOT / "config" / "holidays")
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        assert [m["name"] for m in task.milestones] == ["完成试点学校遴选", "春季学期试点覆盖"]
        target = s.exec(select(Target).where(Target.metric == "pilot_schools")).one()
        assert (target.task_id, target.due_date, target.value) == (task.id, date(2026, 6, 30), 40.0)
        preview = preview_task(
            session=s,
            calendar=calendar,
            now=datetime(2026, 3, 1, 8, tzinfo=SHANGHAI),
            task_code="2.1",
            horizon=timedelta(days=31),
        )
        view = service.plan_view(session=s, plan=s.exec(select(Plan)).one())
    dated = [(p.kind, p.fire_at.date()) for p in preview]
    assert dated == [
        ("before_due", date(2026, 3, 17)),
        ("before_due", date(2026, 3, 24)),
        ("before_due", date(2026, 3, 30)),
        ("due_today", date(2026, 3, 31)),
    ]
    assert "距节点“完成试点学校遴选”（2026-03-31）还有10个工作日" in preview[0].text
    assert "今天是节点“完成试点学校遴选”的期限（2026-03-31）" in preview[-1].text
    shown = render(
        "plan_show.txt.j2",
        locale="zh",
        plan=view.plan,
        groups=view.groups,
        goals=view.goals,
        departments=view.departments,
        archived=[],
        task_count=0,
        target_count=0,
    )
    assert "节点：2026-06-30 春季学期试点覆盖" in shown
    assert "课后服务试点学校：到2026-06-30达到40所" in shown


def test_a_milestone_after_its_tasks_deadline_is_refused() -> None:
    bad = MILESTONES.replace(
        "            due: 2026-06-30\n            targets:", "            due: 2026-10-31\n            targets:"
    )
    [(line, path, message)] = _problems(bad)
    assert path == "groups[1].tasks[0]" and "after the task's deadline 2026-09-30" in message
    assert line == _line_of(bad, '- code: "2.1"')
    outside = MILESTONES.replace("            due: 2026-03-31\n", "            due: 2025-12-31\n")
    problems = _problems(outside)
    assert ("groups[1].tasks[0].milestones[0].due" in [p for _, p, _ in problems]) and any(
        "outside the plan period" in m for *_, m in problems
    )


def test_a_joint_lead_reports_and_asks_for_an_extension(engine: Engine) -> None:
    from coordbot.channels.base import Inbound
    from coordbot.replies.conversation import Conversation

    _import(engine, parse_plan_text(SEVERAL, "several.yaml"))
    with session_scope(engine) as s:
        for code, address in (("civil", "9001"), ("finance", "9002")):
            dept = s.exec(select(Department).where(Department.code == code)).one()
            s.add(Contact(department_id=dept.id, name=f"{code}联络员", address=address))
    conv = Conversation(
        engine=engine,
        calendar=WorkCalendar(ROOT / "config" / "holidays"),
        clock=FakeClock(datetime(2026, 9, 1, 10, tzinfo=SHANGHAI)),
    )

    def say(uid: str, sender: str, command: str, args: str) -> str:
        reply = conv.handle(
            Inbound(
                channel="telegram",
                external_id=uid,
                chat_id=sender,
                sender_id=sender,
                text=f"/{command} {args}",
                kind="command",
                command=command,
                args=args,
                message_ref=uid,
            )
        )
        assert reply is not None
        return reply.text

    assert "不属于" not in say("e1", "9001", "extend", "2.1 2026-10-30 场地改造推迟")  # civil leads jointly
    assert "不属于您的单位" in say("e2", "9002", "extend", "2.1 2026-10-30 场地改造推迟")  # finance only helps
    with Session(engine) as s:
        assert len(s.exec(select(Extension)).all()) == 1
