"""The shipped plan file checked against the text it encodes.

``config/plans/songjiang-ip-2024-2026.yaml`` encodes 沪松府〔2024〕41号; a verbatim copy of that text is kept in
``tests/data/seed/``. Every expectation below is read from the text itself (regular expressions over the
seed), never from the YAML's own numbers, so an edit that drifts from the document fails here.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from coordbot.plan.loader import load_plan_file
from coordbot.plan.schema import PlanFile, TargetIn, TaskIn

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
SEED = TESTS / "data" / "seed" / "songjiang-ip-plan-2024-2026.txt"
PLAN = REPO / "config" / "plans" / "songjiang-ip-2024-2026.yaml"

CN_NUM = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}
SENTENCE_END = ("。", "；", "：", "！", "？", "”")


def paragraphs(raw: str) -> list[str]:
    """The text's paragraphs, with page-break splits joined.

    Paragraphs are separated by a blank line. A page break inside a sentence shows up as a blank line
    after a body paragraph (one that already contains a full stop) which does not end a sentence, e.g.
    "推动数字化、信息化、智" + "慧化建设…": such a piece is glued to the next one. Headings contain no
    full stop, so they are never glued.
    """
    out: list[str] = []
    for piece in raw.split("\n\n"):
        piece = piece.strip()
        if not piece:
            continue
        if out and "。" in out[-1] and not out[-1].endswith(SENTENCE_END):
            out[-1] += piece
        else:
            out.append(piece)
    return out


@pytest.fixture(scope="module")
def raw() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def paras(raw: str) -> list[str]:
    return paragraphs(raw)


@pytest.fixture(scope="module")
def text(paras: list[str]) -> str:
    return "\n".join(paras)


@pytest.fixture(scope="module")
def plan() -> PlanFile:
    return load_plan_file(PLAN).data


def section(paras: list[str], start: str, stop: str) -> list[str]:
    i = paras.index(start)
    j = next(k for k in range(i + 1, len(paras)) if paras[k].startswith(stop))
    return paras[i + 1 : j]


@pytest.fixture(scope="module")
def main_tasks(paras: list[str]) -> dict[str, tuple[str, str, str]]:
    """code -> (group title, task title, paragraph), read from 主要任务 in the text."""
    out: dict[str, tuple[str, str, str]] = {}
    group_no, group_title = 0, ""
    for p in section(paras, "三、主要任务", "四、"):
        if m := re.fullmatch(r"（([一二三四五])）(.+)", p):
            group_no, group_title = CN_NUM[m[1]], m[2]
        elif m := re.match(r"([一二三])是(.+?)。", p):
            out[f"{group_no}.{CN_NUM[m[1]]}"] = (group_title, m[2], p)
        else:
            raise AssertionError(f"unexpected paragraph in 主要任务: {p[:30]}")
    return out


@pytest.fixture(scope="module")
def safeguards(paras: list[str]) -> dict[str, tuple[str, str]]:
    """code -> (title, paragraph), read from 保障措施 in the text."""
    body = section(paras, "四、保障措施", "抄送")
    out: dict[str, tuple[str, str]] = {}
    for heading, para in zip(body[::2], body[1::2], strict=True):
        m = re.fullmatch(r"（([一二三])）(.+)", heading)
        assert m, heading
        out[f"S.{CN_NUM[m[1]]}"] = (m[2], para)
    return out


def tasks_by_code(plan: PlanFile) -> dict[str, TaskIn]:
    return {t.code: t for _, t in plan.tasks()}


def all_targets(plan: PlanFile) -> list[TargetIn]:
    return [*plan.goals, *(x for _, t in plan.tasks() for x in t.targets)]


def task_quoting(plan: PlanFile, phrase: str) -> TaskIn:
    found = [t for _, t in plan.tasks() if phrase in t.source]
    assert len(found) == 1, f"{phrase!r} should be in exactly one task source, found {[t.code for t in found]}"
    return found[0]


# ---- the text and its copy -------------------------------------------------------------------------


def test_page_breaks_are_joined(raw: str, text: str) -> None:
    for split, joined in [
        ("智\n\n慧化", "智慧化"),
        ("跨区\n\n域", "跨区域"),
        ("促\n\n进", "促进全区"),
        ("专人、\n\n专窗", "专人、专窗"),
        ("促进知识产权\n\n高质量创造", "促进知识产权高质量创造"),
    ]:
        assert split in raw
        assert joined in text
    assert "（一）激发创新活力，推动知识产权高质量发展\n一是" in text  # headings stay separate


def test_plan_metadata_matches_the_text(plan: PlanFile, raw: str, paras: list[str]) -> None:
    m = plan.plan
    assert m.code == "songjiang-ip-2024-2026"
    assert m.document_no and m.document_no in paras
    assert m.title in paras and m.title.startswith("上海市松江区")
    issued = re.search(r"(\d{4})年(\d{1,2})月(\d{1,2})日印发", raw)
    assert issued and m.issued == date(*map(int, issued.groups()))
    assert m.issuer and f"{m.issuer}关于" in raw
    years = re.search(r"（(\d{4})-(\d{4})年）", m.title)
    assert years
    assert (m.start, m.end) == (date(int(years[1]), 1, 1), date(int(years[2]), 12, 31))
    assert m.timezone == "Asia/Shanghai"
    assert m.source == SEED.name


def test_no_personal_contacts(plan: PlanFile) -> None:
    assert plan.contacts == []  # contacts bind themselves through invite links


# ---- groups and tasks ------------------------------------------------------------------------------


def test_eighteen_tasks_in_five_main_groups_and_safeguards(plan: PlanFile, main_tasks, safeguards) -> None:
    assert len(main_tasks) == 15 and len(safeguards) == 3
    assert len(plan.tasks()) == 18
    main = [g for g in plan.groups if g.kind == "main"]
    safe = [g for g in plan.groups if g.kind == "safeguard"]
    assert [g.code for g in main] == ["1", "2", "3", "4", "5"]
    for g in main:
        assert [t.code for t in g.tasks] == [f"{g.code}.{i}" for i in (1, 2, 3)]
        assert g.title == main_tasks[f"{g.code}.1"][0]
    assert len(safe) == 1 and safe[0].code == "S" and safe[0].title == "保障措施"
    assert [t.code for t in safe[0].tasks] == ["S.1", "S.2", "S.3"]


def test_task_titles_and_sources_are_the_texts_paragraphs(plan: PlanFile, main_tasks, safeguards, paras) -> None:
    tasks = tasks_by_code(plan)
    expected = {code: (title, para) for code, (_, title, para) in main_tasks.items()} | safeguards
    assert set(tasks) == set(expected)
    for code, (title, para) in expected.items():
        assert tasks[code].title == title, code
        assert tasks[code].source == para, code  # the whole paragraph, verbatim
    sources = [t.source for t in tasks.values()]
    assert len(set(sources)) == len(sources)
    assert all(s in paras for s in sources)


def test_every_task_has_a_description_and_kind(plan: PlanFile) -> None:
    for _, t in plan.tasks():
        assert t.description, t.code
        if t.kind == "one-off":
            assert t.due is not None, f"one-off task {t.code} needs a due date"


# ---- targets ---------------------------------------------------------------------------------------


def test_every_target_source_is_in_the_text(plan: PlanFile, text: str) -> None:
    for target in all_targets(plan):
        assert target.source, target.metric
        assert target.source in text, target.metric
        assert target.aliases, target.metric
    for _, t in plan.tasks():
        for target in t.targets:
            assert target.source in t.source, f"{t.code}/{target.metric}: source not in its task's paragraph"


# (pattern over the text, period, unit, comparator); the number is the pattern's group 1.
NUMBERS = [
    (r"每年开展各类专项行动和双随机检查不少于(\d+)项", "annual", "项"),
    (r"三年新增各级试点示范单位(\d+)家", "cumulative", "家"),
    (r"三年新增各级专利导航、知识产权分析评议立项项目(\d+)项", "cumulative", "项"),
    (r"每年组织开展知识产权金融服务入园惠企活动(\d+)次以上", "annual", "次"),
    (r"到(\d{4})年末，[^。]*?每万人口高价值发明专利拥有量达到(\d+)件", "at-date", "件"),
]


@pytest.mark.parametrize(("pattern", "period", "unit"), NUMBERS)
def test_stated_numbers_are_targets(plan: PlanFile, text: str, pattern: str, period: str, unit: str) -> None:
    m = re.search(pattern, text)
    assert m, pattern
    number = int(m.groups()[-1])
    task = task_quoting(plan, m[0] if period != "at-date" else m[0][m[0].index("每万人口") :])
    found = [x for x in task.targets if x.value == number]
    assert len(found) == 1, f"task {task.code}: no single target with value {number}"
    target = found[0]
    assert target.period == period
    assert target.unit == unit
    assert target.comparator == ">="
    assert str(number) in target.source and target.source in m[0]
    if period == "cumulative":
        assert m[0].startswith("三年")
        assert (target.start, target.due) == (plan.plan.start, plan.plan.end)
    if period == "at-date":
        assert target.due == date(int(m[1]), 12, 31)


def test_the_expected_numbers_are_there(plan: PlanFile) -> None:
    numeric = sorted(int(t.value) for t in all_targets(plan) if t.comparator != "qualitative" and t.value != 1)
    assert numeric == [4, 10, 20, 30, 100]


def test_yearly_duties_without_a_number_count_once_a_year(plan: PlanFile, text: str) -> None:
    for phrase in (
        "每年开展跨区域知识产权联合行政执法行动",
        "每年组织工作培训",
        "每年至少召开一次全区知识产权工作会议",
        "年度报告制度",
    ):
        assert phrase in text
        task = task_quoting(plan, phrase)
        found = [x for x in task.targets if phrase in x.source]
        assert len(found) == 1, (task.code, phrase)
        assert (found[0].period, found[0].comparator, found[0].value) == ("annual", ">=", 1)


def test_numeric_targets_follow_the_texts_wording(plan: PlanFile) -> None:
    for target in all_targets(plan):
        if target.comparator == "qualitative":
            assert target.value is None and target.description
            continue
        if target.source.startswith("三年"):
            assert target.period == "cumulative", target.metric
        elif "每年" in target.source or "年度" in target.source:
            assert target.period == "annual", target.metric
        else:
            assert target.period == "at-date" and target.due, target.metric


def test_goals_cover_the_indicators_of_the_main_goals(plan: PlanFile, paras: list[str]) -> None:
    body = section(paras, "三、主要目标", "三、主要任务")
    indicators: list[str] = []
    for p in body:
        if m := re.search(r"坚持高(?:质量引领|效益运用)，(.+?)(?:等保持|实现新提升)", p):
            indicators += m[1].split("、")
    assert len(indicators) == 6
    indicators.append("知识产权保护社会满意度")
    goal_text = {g.metric: (g.name.replace(" ", ""), g.source) for g in plan.goals}
    for indicator in indicators:
        hits = [
            k for k, (name, source) in goal_text.items() if indicator.replace(" ", "") in name and indicator in source
        ]
        assert hits, f"no goal for {indicator}"
    for g in plan.goals:
        assert any(g.source in p for p in body), g.metric
        assert g.comparator == "qualitative"  # the goals section states no numbers


# ---- events ----------------------------------------------------------------------------------------


def test_dated_days_are_events(plan: PlanFile, text: str) -> None:
    days = re.findall(r"“(\d{1,2})\.(\d{1,2})([^”]+?日)”", text)
    assert len(days) == 2
    for month, day, name in days:
        task = task_quoting(plan, f"“{month}.{day}{name}”")
        assert {"name": name, "day": f"{int(month):02d}-{int(day):02d}"} in [e.stored() for e in task.events]
    assert ("04", "26") in [(f"{int(m):02d}", f"{int(d):02d}") for m, d, _ in days]


def test_publicity_week_is_an_event(plan: PlanFile) -> None:
    task = task_quoting(plan, "知识产权宣传周")
    assert [e.name for e in task.events] == ["知识产权宣传周"]
    # The national week is a week, not a day: 4.20 to 4.26 (世界知识产权日), as the task's description says.
    assert (task.events[0].day, task.events[0].until) == ("04-20", "04-26")
    assert "4月20日至26日" in task.description


# ---- departments and assignments -------------------------------------------------------------------


def names(dept) -> set[str]:
    return {dept.name, dept.short_name, *dept.aliases} - {""}


def test_every_referenced_department_exists_and_is_used(plan: PlanFile) -> None:
    assert plan.check_references() == []
    codes = {d.code for d in plan.departments}
    used = {plan.plan.office} | {t.lead for _, t in plan.tasks()} | {c for _, t in plan.tasks() for c in t.co}
    assert used <= codes
    assert codes == used, f"unused departments: {codes - used}"
    for d in plan.departments:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", d.code), d.code
        assert d.short_name and d.aliases


def test_office_is_the_ip_bureau_named_by_the_text(plan: PlanFile, text: str) -> None:
    m = re.search(r"(区\w{2,8}局)履行知识产权联席会议办公室职责", text)
    assert m
    office = next(d for d in plan.departments if d.code == plan.plan.office)
    assert m[1] in names(office)


def test_assignments_are_stated_only_where_the_text_names_them(plan: PlanFile) -> None:
    depts = {d.code: d for d in plan.departments}
    for _, t in plan.tasks():
        for code in (t.lead, *t.co):
            assignment = t.assignment_of(code)
            assert assignment in ("stated", "proposed"), t.code  # the office has confirmed nothing yet
            if assignment == "stated":
                assert any(n in t.source for n in names(depts[code])), f"{t.code}: {code} is not named in the text"
    stated = sorted(t.code for _, t in plan.tasks() if t.assignment == "stated")
    assert stated == ["2.2", "S.1"]


def test_task_2_2_names_its_departments_but_not_which_leads(plan: PlanFile, text: str) -> None:
    """发挥公安经侦、市场监管、文化执法等多部门联动: the departments are stated, the lead among them is a choice."""
    task = next(t for _, t in plan.tasks() if t.code == "2.2")
    assert "公安经侦、市场监管、文化执法" in task.source and "牵头" not in task.source
    assert task.assignment_of(task.lead) == "proposed"
    assert [task.assignment_of(c) for c in task.co] == ["stated", "stated"]
