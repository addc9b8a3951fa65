"""Corpus-driven and focused tests for coordbot.replies.parse_reply."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest

from coordbot.replies import DepartmentRef, ParsedReply, Quantity, Status, TargetRef, parse_reply
from coordbot.replies._numbers import cn_to_int, parse_number
from tests.replies.corpus import BLIND_PATH, FIELDS, FLAG_FIELDS, actual_fields, load_corpus, score

CASES, DEPARTMENTS, TASK_CODES = load_corpus()
TODAY = date(2025, 6, 11)  # a Wednesday

INSPECT = TargetRef("special_actions", "专项行动和双随机检查", "项", ("专项行动", "双随机检查", "检查", "inspections"))
EVENTS = TargetRef("finance_events", "入园惠企活动", "次", ("入园惠企", "活动", "events"))
PLEDGE = TargetRef("pledge_amount", "质押融资登记金额", "万元", ("质押融资", "融资", "pledge"))
PLEDGE_YI = TargetRef("pledge_amount", "质押融资登记金额", "亿元", ("质押融资", "融资"))
NAV = TargetRef("patent_nav", "专利导航项目", "项", ("专利导航", "导航项目"))
FINANCE = DepartmentRef("finance", "区财政局", ("财政局", "Finance Bureau"))
STC = DepartmentRef("stc", "区科委", ("科委",))


def parse(text: str, **kw: object) -> ParsedReply:
    kw.setdefault("today", TODAY)
    return parse_reply(text, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- corpus
def test_corpus_is_large_and_varied() -> None:
    assert len(CASES) >= 320
    langs = {c.expected["lang"] for c in CASES}
    assert langs == {"zh", "en", "mixed"}
    assert sum(1 for c in CASES if c.expected["amb"]) >= 20
    assert len({c.ctx for c in CASES}) >= 6


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else [])
        for c in CASES
    ],
)
def test_corpus_case(case) -> None:  # type: ignore[no-untyped-def]
    parsed = parse_reply(
        case.text, today=case.today, targets=case.targets, departments=DEPARTMENTS, task_codes=TASK_CODES
    )
    got = actual_fields(parsed)
    diffs = {f: (case.expected[f], got[f]) for f in FIELDS if got[f] != case.expected[f]}
    assert not diffs, f"{case.text!r}: field → (expected, got) {diffs}; ambiguities={parsed.ambiguities}"


# ------------------------------------------------------------------------------------------ blind corpus
# tests/data/replies_blind.yaml was written by someone who never saw the parser. Its failures were looked at
# once (see its header for the baseline) and general causes fixed; it is held to a per-field floor, not to
# per-case equality. The cases still wrong are strict xfails, each with the category of what is missing.
BLIND_CASES, BLIND_DEPARTMENTS, BLIND_TASK_CODES = load_corpus(BLIND_PATH)
BLIND_FLOOR = 0.85  # per-field precision and recall (status, percent, date, code, quantities, help)

_HOLIDAY = "dates: a day after an official holiday (国庆后) needs the holiday calendar; the parser is holiday-blind"
_OTHER_COUNT = "quantities: a count of something else that fits the target's unit (企业/次数/意向授信)"
_EN_ALIAS = "quantities: an English paraphrase of the target name (high-value invention patents per 10k people)"
_DISPUTED = "disputed label: replies.yaml labels the same construction differently (see the report)"
BLIND_XFAIL = {
    "inspect-0b29b5ca": "quantities: 做了三项了 … 剩下的 implies a year-to-date total; no marker word",
    "inspect-8b02d558": "quantities: 今年以来共 in an earlier clause of a list carries over to 3次",
    "inspect-c8068c08": _HOLIDAY,
    "inspect-8ec56674": "voice-input typo (两箱 for 两项): not guessed",
    "inspect-261a555d": "departments: an unlisted abbreviation (市监局 for 市场监管局)",
    "inspect-88953181": "ambiguity: 涉案金额600万元 with no money target reads as an unmatched number",
    "inspect-ba1dc9a6": "quantities: 'N total YTD' in a later sentence than the target word",
    "inspect-0919dedc": "quantities: 'only 5 of 10 done' with no target word in the sentence",
    "inspect-428e9119": _HOLIDAY,
    "inspect-ee2976f4": "quantities: the corrected value of a bare 'should be 12 not 21' without a target word",
    "pilot-615cc86d": _OTHER_COUNT,
    "pilot-5c5565df": _DISPUTED + " — 均已立项 is 已+verb → total under the replies.yaml header",
    "finance-ab9a4843": "ambiguity: a money figure without a unit is taken as the target unit without asking",
    "finance-7939002d": _OTHER_COUNT,
    "finance-fd653602": _OTHER_COUNT,
    "finance-b4910e1b": "status vocabulary: colloquial progress (活动办了 钱也贷出去了) without a status word",
    "finance-f02e1522": "ambiguity: a numbered report with many figures; 27份 申报材料 reads as an unmatched count",
    "finance-9343b24f": "quantities: an ordinal (event #3) that implies a running total",
    "finance-c44daa4f": "quantities: 'N 次 done' after YTD in an earlier clause is read as an increment",
    "patents-e82a159e": "quantities: the change of a level (较年初提高2.1件) next to the level itself",
    "patents-f4aed46e": "quantities: 万人…拥有量 (a shortened target name) with a Chinese decimal",
    "patents-a1b3cb77": _EN_ALIAS,
    "patents-ee955d70": _EN_ALIAS,
    "mediation-a65a7127": "quantities/dates: attendees (来了四十多个人) counted as mediators; 下个月 vs 十月二十号",
    "mediation-7bc1d219": "status vocabulary: 'venue confirmed' as a finished sub-step",
    "mediation-938633da": "status vocabulary: 'no training yet' as not started",
    "plain-eff973a0": _DISPUTED + " — 预计…提交 without a status word is null there (一是…三是预计7月中旬印发)",
    "plain-b29f6612": _DISPUTED + " — 党校培训已列入秋季班，9月中旬开课 is null there",
    "plain-f2321220": "dates/status: 本周 + a future verb (本周印发) read as a past frame",
    "plain-6f54129b": _HOLIDAY,
    "plain-3015d94b": "status: three items set up (已设立/已落实/已开通) read as done; the label says on_track",
    "plain-5b2f2176": "status: a signed mechanism document (会签完毕) read as done; the label says on_track",
    "plain-39d5678e": "status vocabulary: waiting for a leader without 等/待 (领导还在出差，回来后再定)",
    "plain-619879e8": "dates: N月前 (11月前到位) read as the end of that month, the label says the month before",
    "plain-2bda5fa0": "task codes: an unknown code at the start of a reply (2.6) is not flagged",
    "plain-dacd00ee": "ambiguity: a withdrawn message (撤回…发错群了) is flagged as a correction but not asked about",
    "plain-d962e5f6": "quantities: with no targets, 校本教材1套 is reported as an unmatched count",
    "plain-72a93c46": _DISPUTED + " — 7月初 → the 5th there (月初), the 10th here (月初 = 上旬)",
    "plain-561043b0": _HOLIDAY,
    "publicity-d7cf6233": "quantities: 共 distributed over a list of two figures (共开展…12场，发布…36篇)",
    "publicity-8dbb276b": "quantities/status: 'in total' over 'A and B'; a finished event week as a sub-step",
}


def _parse_blind(case):  # type: ignore[no-untyped-def]
    return parse_reply(
        case.text, today=case.today, targets=case.targets, departments=BLIND_DEPARTMENTS, task_codes=BLIND_TASK_CODES
    )


def test_blind_xfail_ids_exist() -> None:
    assert set(BLIND_XFAIL) <= {c.id for c in BLIND_CASES}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, id=c.id, marks=[pytest.mark.xfail(reason=BLIND_XFAIL[c.id], strict=True)] if c.id in BLIND_XFAIL else []
        )
        for c in BLIND_CASES
    ],
)
def test_blind_case(case) -> None:  # type: ignore[no-untyped-def]
    got = actual_fields(_parse_blind(case))
    diffs = {f: (case.expected[f], got[f]) for f in FIELDS if got[f] != case.expected[f]}
    assert not diffs, f"{case.text!r}: field → (expected, got) {diffs}"


@pytest.mark.parametrize(
    ("cases", "parse_case", "floor"),
    [
        pytest.param(CASES, None, 0.95, id="main"),
        pytest.param(BLIND_CASES, _parse_blind, BLIND_FLOOR, id="blind"),
    ],
)
def test_field_precision_and_recall_floor(cases, parse_case, floor) -> None:  # type: ignore[no-untyped-def]
    def main_parse(c):  # type: ignore[no-untyped-def]
        return parse_reply(c.text, today=c.today, targets=c.targets, departments=DEPARTMENTS, task_codes=TASK_CODES)

    pairs = [(c.expected, actual_fields((parse_case or main_parse)(c))) for c in cases]
    low = [
        (name, round(p, 3), round(r, 3))
        for name, p, r, _, _ in score(pairs)
        if name not in FLAG_FIELDS and (p < floor or r < floor)
    ]
    assert not low, f"fields below {floor}: {low}"


# --------------------------------------------------------------------------------------------- numerals
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("三", 3),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("二十五", 25),
        ("一百零五", 105),
        ("两千", 2000),
        ("三千万", 30_000_000),
        ("一亿二千万", 120_000_000),
        ("十万", 100_000),
        ("二〇二六", 2026),
    ],
)
def test_chinese_numerals(text: str, value: int) -> None:
    assert cn_to_int(text) == value


@pytest.mark.parametrize("text", ["万", "千万", "两三", "一二", "十十", "", "三四十", "亿" * 20])
def test_chinese_numeral_words_are_not_numbers(text: str) -> None:
    assert cn_to_int(text) is None


def test_arabic_numbers_with_separators() -> None:
    assert parse_number("1,200") == Decimal(1200)
    assert parse_number("1.25") == Decimal("1.25")
    assert parse_number("1.2.3") is None


@pytest.mark.parametrize(
    ("text", "unit_target", "value"),
    [
        ("质押融资1.2亿元", PLEDGE, Decimal(12000)),
        ("质押融资3000万元", PLEDGE, Decimal(3000)),
        ("质押融资3000万元", PLEDGE_YI, Decimal("0.3")),
        ("质押融资1.2亿", PLEDGE, Decimal(12000)),
        ("pledge financing RMB 120 million", PLEDGE, Decimal(12000)),
        ("融资500000元", PLEDGE, Decimal(50)),
    ],
)
def test_money_is_normalised_to_the_target_unit(text: str, unit_target: TargetRef, value: Decimal) -> None:
    (q,) = parse(text, targets=[unit_target]).quantities
    assert (q.metric, q.value, q.unit) == ("pledge_amount", value, unit_target.unit)


def test_quantity_span_points_into_the_original_text() -> None:
    text = "本周开展双随机检查２项"
    (q,) = parse(text, targets=[INSPECT]).quantities
    assert text[q.span[0] : q.span[1]] == "２项"


def test_completed_n_items_is_a_quantity_not_done() -> None:
    r = parse("完成了3项", targets=[INSPECT])
    assert r.status is None
    assert [(q.metric, q.value, q.mode) for q in r.quantities] == [("special_actions", 3, "increment")]


def test_unit_alone_cannot_choose_between_two_targets() -> None:
    r = parse("新增2项", targets=[INSPECT, NAV])
    assert r.quantities[0].metric is None
    assert "unit_fits_several_targets" in r.ambiguities
    r = parse("专利导航新增2项", targets=[INSPECT, NAV])
    assert r.quantities[0].metric == "patent_nav" and not r.ambiguities


def test_bare_number_next_to_a_target_word_uses_that_target() -> None:
    (q,) = parse("双随机检查：2", targets=[INSPECT]).quantities
    assert q.metric == "special_actions" and q.unit == "项"
    r = parse("本周忙，数字是7", targets=[INSPECT])
    assert not r.quantities and "number_without_unit" in r.ambiguities


def test_dates_percents_and_codes_are_not_quantities() -> None:
    r = parse("任务2.1：6月30日前完成，进度60%", targets=[INSPECT, EVENTS], task_codes=["2.1"])
    assert r.quantities == ()
    assert (r.task_code, r.percent, r.expected_date) == ("2.1", 60, date(2025, 6, 30))


# -------------------------------------------------------------------------------------- status/negation
@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("已完成", Status.DONE),
        ("尚未完成", None),
        ("还没完成", None),
        ("未完成", None),
        ("没有困难", Status.ON_TRACK),
        ("无困难", Status.ON_TRACK),
        ("有困难", Status.BLOCKED),
        ("不是很顺利", Status.AT_RISK),
        ("顺利", Status.ON_TRACK),
        ("不正常", Status.AT_RISK),
        ("no blockers", Status.ON_TRACK),
        ("blocked", Status.BLOCKED),
        ("not done yet", None),
        ("not started", Status.NOT_STARTED),
        ("尚未启动", Status.NOT_STARTED),
        ("不断推进中", Status.ON_TRACK),
        ("没有滞后", Status.ON_TRACK),
        ("滞后", Status.AT_RISK),
        ("完成率50%", None),
        ("預計下週完成", Status.ON_TRACK),
        ("受阻", Status.BLOCKED),
    ],
)
def test_status_and_negation(text: str, status: Status | None) -> None:
    assert parse(text).status is status


def test_percent_100_means_done_and_conflicts_are_reported() -> None:
    assert parse("进度100%").status is Status.DONE
    r = parse("已完成，但受阻")
    assert r.status is None and "conflicting_status" in r.ambiguities


@pytest.mark.parametrize(
    ("text", "pct"),
    [
        ("60%", 60),
        ("６０％", 60),
        ("百分之六十", 60),
        ("六成", 60),
        ("过半", 50),
        ("一半", 50),
        ("half done", 50),
        ("大半", 70),
        ("60 percent", 60),
        ("进度3/4", 75),
        ("完成四分之三", 75),
        ("62.5%", Decimal("62.5")),
        ("同比增长20%", None),
        ("进度从40%提高到60%", 60),
        ("成员3人", None),
    ],
)
def test_percent_forms(text: str, pct: int | None) -> None:
    assert parse(text).percent == pct


# ---------------------------------------------------------------------------------------------- dates
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6月底前完成", date(2025, 6, 30)),
        ("5月底前完成", date(2026, 5, 31)),
        ("下周五完成", date(2025, 6, 20)),
        ("本周五前", date(2025, 6, 13)),
        ("月底前完成", date(2025, 6, 30)),
        ("年底前完成", date(2025, 12, 31)),
        ("下个月中旬完成", date(2025, 7, 15)),
        ("预计2026-12-31完成", date(2026, 12, 31)),
        ("预计2026年12月31日完成", date(2026, 12, 31)),
        ("12月31日前完成", date(2025, 12, 31)),
        ("12.31前完成", date(2025, 12, 31)),
        ("by end of June", date(2025, 6, 30)),
        ("by Friday", date(2025, 6, 13)),
        ("next Friday", date(2025, 6, 20)),
        ("done in two weeks", date(2025, 6, 25)),
        ("春节前完成", date(2026, 2, 16)),
        ("十月底前完成", date(2025, 10, 31)),
        ("3个工作日内", date(2025, 6, 16)),
    ],
)
def test_expected_dates(text: str, expected: date) -> None:
    assert parse(text).expected_date == expected


@pytest.mark.parametrize(
    "text",
    [
        "昨天召开了推进会",
        "6月5日已召开推进会",
        "截至5月底累计完成8项",
        "上周完成检查",
        "6月以来开展了3次",
        "本周开展2项",
    ],
)
def test_dates_of_things_that_happened_are_not_expected(text: str) -> None:
    assert parse(text).expected_date is None


def test_a_passed_day_rolls_to_next_year_only_without_an_explicit_year() -> None:
    assert parse("预计2025年5月31日前完成").expected_date == date(2025, 5, 31)
    assert parse("预计5月31日前完成").expected_date == date(2026, 5, 31)


# -------------------------------------------------------------------------------------- help/code/misc
def test_help_departments_by_name_short_name_and_alias() -> None:
    r = parse("需区财政局配合，请科委协调", departments=[FINANCE, STC])
    assert r.help_departments == ("finance", "stc")
    assert parse("waiting for the Finance Bureau", departments=[FINANCE]).help_departments == ("finance",)
    assert parse("区财政局已拨付资金", departments=[FINANCE]).help_departments == ()
    assert parse("在区财政局支持下已完成", departments=[FINANCE]).help_departments == ()
    assert parse("进度正常，需Finance Bureau support", departments=[FINANCE]).help_departments == ("finance",)
    assert parse("市知识产权局已反馈", departments=[DepartmentRef("ipo", "区知识产权局")]).help_departments == ()


def test_task_codes_only_from_the_known_list_when_given() -> None:
    assert parse("2.1 已完成", task_codes=["2.1"]).task_code == "2.1"
    assert parse("【2.1】推进中").task_code == "2.1"
    r = parse("任务9.9已完成", task_codes=["2.1"])
    assert r.task_code is None and "unknown_task_code" in r.ambiguities
    assert parse("1.2亿元已发放", task_codes=["1.2"]).task_code is None


def test_correction_and_language() -> None:
    assert parse("更正：应为3项").is_correction
    assert parse("correction: 3 not 2").is_correction
    assert not parse("已完成").is_correction
    assert parse("已完成").language == "zh"
    assert parse("done").language == "en"
    assert parse("task 2.1 已完成").language == "mixed"


def test_result_is_frozen_and_slotted() -> None:
    r = parse("已完成")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = None  # type: ignore[misc]
    assert not hasattr(r, "__dict__") and not hasattr(Quantity(None, Decimal(1), "", "increment", (0, 1)), "__dict__")
    assert 0.0 <= r.confidence <= 1.0


def test_nothing_parsed_asks() -> None:
    r = parse("好的")
    assert r.ambiguities == ("no_information",) and r.confidence < 0.5


def test_very_long_input_is_capped_and_says_so() -> None:
    r = parse("已完成。" + "推进中" * 5000)
    assert "text_truncated" in r.ambiguities
