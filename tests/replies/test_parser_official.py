"""Issue 12: progress the way officials write it. Examples written for these tests (not from the corpus)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from coordbot.replies import TargetRef, parse_reply
from coordbot.replies.ambiguity import Ambiguity

TODAY = date(2025, 6, 11)


def p(text: str, targets: tuple[TargetRef, ...] = ()):  # type: ignore[no-untyped-def]
    return parse_reply(text, today=TODAY, targets=targets)


@pytest.mark.parametrize(
    ("text", "pct"),
    [
        ("截至5月底，已完成年度目标的53.3%", Decimal("53.3")),
        ("园区道路工程开工率85.07%", Decimal("85.07")),
        ("资金执行率0.5%，刚刚起步", Decimal("0.5")),
        ("两项改造均已完成，完成率100%", Decimal("100")),
        ("前五个月完成年度投资计划的41.25%", Decimal("41.25")),
        ("目前进度62.5%", Decimal("62.5")),
    ],
)
def test_decimal_percents_are_kept_as_written(text: str, pct: Decimal) -> None:
    r = p(text)
    assert r.percent == pct and str(r.percent) == str(pct)
    assert "percent" in r.evidence


@pytest.mark.parametrize(
    "text",
    [
        "已办结的有4件，占承办总数的22.8%",
        "小微企业贷款占比5.4%",
        "完成整改的有3项，占目标任务的30%",
        "仍有过半项目没有开工",
        "时间过半任务过半",
    ],
)
def test_a_share_or_a_population_is_not_progress(text: str) -> None:
    assert p(text).percent is None


def test_a_share_of_the_annual_plan_with_nothing_done_is_asked() -> None:
    r = p("该类项目占年度计划的18.6%")
    assert r.percent is None and Ambiguity.SHARE_OR_PROGRESS in r.ambiguities


@pytest.mark.parametrize(
    "text", ["税收收入同比增长3.9%", "较上一年提升9.2%", "完成率低于50%的项目有4个", "完成进度在60%到80%之间"]
)
def test_growth_rates_and_thresholds_are_not_progress(text: str) -> None:
    assert p(text).percent is None


def test_percentage_points_below_target_are_at_risk_not_a_percent() -> None:
    r = p("上半年财政收入低于目标11.1个百分点")
    assert r.percent is None and r.status is not None and r.status.value == "at_risk"
    assert not [q for q in r.quantities if q.written_unit in ("个", "个百分点")]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("路网改造未达序时进度", "at_risk"),
        ("绿化提升工程欠进度", "at_risk"),
        ("两处泵站略低于序时进度", "at_risk"),
        ("该项工作年底前不能全部完成", "at_risk"),
        ("完成有一定困难", "at_risk"),
        ("排水管网改造达到序时进度", "on_track"),
        ("进展情况良好，年底前能确保完成", "on_track"),
        ("按计划推进", "on_track"),
        ("文化馆已通过验收", "done"),
        ("本批提案已办结", "done"),
        ("已提前完成全年任务", "done"),
        ("受上级政策限制，暂时不能解决", "blocked"),
        ("社区食堂尚未开工", "not_started"),
        ("智慧停车项目未启动", "not_started"),
        ("已完成24个", "done"),
    ],
)
def test_official_status_phrasing(text: str, status: str) -> None:
    r = p(text)
    assert r.status is not None and r.status.value == status
    assert r.evidence.get("status")


def test_units_are_kept_as_written_and_money_is_offered_in_wan_yuan() -> None:
    r = p("截至6月底累计完成投资2.35亿元")
    (q,) = r.quantities
    assert (q.written_value, q.written_unit, q.mode) == (Decimal("2.35"), "亿元", "total")
    assert q.wan_yuan == Decimal("23500")


def test_a_quota_in_wan_yuan_counts_a_reply_in_yi_yuan() -> None:
    quota = TargetRef("fund", "专项资金", "万元", aliases=("资金",))
    (q,) = p("专项资金累计到位1.2亿元", (quota,)).quantities
    assert q.metric == "fund" and q.value == Decimal("12000") and q.unit == "万元"


def test_dollars_square_metres_and_hectares() -> None:
    got = {
        (q.written_value, q.written_unit)
        for q in p("实际利用外资3.6亿美元，改造面积12.5万平方米，复垦8公顷").quantities
    }
    assert (Decimal("3.6"), "亿美元") in got
    assert (Decimal("125000"), "平方米") in got
    assert (Decimal("8"), "公顷") in got


def test_a_bare_count_in_a_to_date_report_asks_total_or_increment() -> None:
    target = TargetRef("fixes", "整改事项", "项", aliases=("整改",))
    r = p("截至9月底，各街镇情况如下。整改3项", (target,))
    assert Ambiguity.TOTAL_OR_INCREMENT in r.ambiguities


def _qty(text: str) -> list[tuple[Decimal | None, str | None, str]]:
    return sorted((q.written_value, q.written_unit, q.mode) for q in p(text).quantities)


def test_from_a_level_to_a_level_keeps_only_the_level_reached_as_a_total() -> None:
    assert _qty("五年间签约项目由120个增加到431个") == [(Decimal("431"), "个", "total")]


def test_a_difference_from_another_period_is_growth_not_an_observation() -> None:
    assert _qty("新登记市场主体1.6万家，较上年同期增加2100家") == [(Decimal("16000"), "家", "total")]


def test_a_qizhong_part_shares_the_period_of_the_figure_it_splits() -> None:
    got = _qty("3月份到位资金2.4亿元，其中外资到位0.6亿元")
    assert got == [(Decimal("0.6"), "亿元", "increment"), (Decimal("2.4"), "亿元", "increment")]


def test_a_marker_of_an_earlier_number_does_not_decide_a_later_one() -> None:
    assert _qty("区级实事共12项（其中新增4项），其中7项已完成") == [
        (Decimal("4"), "项", "increment"),
        (Decimal("7"), "项", "total"),
        (Decimal("12"), "项", "total"),
    ]


def test_without_targets_counts_of_items_in_a_state_are_as_of_figures() -> None:
    assert _qty("在建项目9个，另有4个尚未开工") == [(Decimal("4"), "个", "total"), (Decimal("9"), "个", "total")]


def test_the_whole_a_percent_is_taken_of_is_not_an_observation() -> None:
    assert _qty("招商到位资金8.1亿元，完成年度任务15亿元的54%") == [(Decimal("8.1"), "亿元", "total")]


def test_the_object_of_completion_is_not_a_plan_and_an_actual_figure_follows_a_plan() -> None:
    assert _qty("完成年度目标任务的有21项") == [(Decimal("21"), "项", "total")]
    assert _qty("64个年度计划新开工项目实际开工52个") == [(Decimal("52"), "个", "total")]


def test_a_multiplier_without_a_measure_word_counts_nothing() -> None:
    assert _qty("帮助860万农村人口稳定增收") == []


@pytest.mark.parametrize(
    "text",
    [
        "区级实事共15项，其中9项已完成",
        "这312件建议均已办结",
        "全面完成年度目标任务的有17项",
        "所提问题已经解决或基本解决的有36件",
    ],
)
def test_counting_items_in_the_done_state_reports_done_for_them(text: str) -> None:
    r = p(text)
    assert r.status is not None and r.status.value == "done", text
    assert r.evidence.get("status")


def test_a_count_done_under_a_target_is_still_a_quantity_not_the_task_done() -> None:
    target = TargetRef("fixes", "整改事项", "项", aliases=("整改",))
    r = p("整改事项9项已完成", (target,))
    assert r.status is None and [q.value for q in r.quantities] == [Decimal("9")]


def test_the_done_word_of_a_percent_is_no_verdict() -> None:
    r = p("招商到位资金8.1亿元，完成市下达任务15亿元的54%")
    assert r.status is None and r.percent == Decimal("54")


def test_a_start_rate_of_100_is_not_done() -> None:
    r = p("列入计划的项目开工率达100%")
    assert r.percent == Decimal("100") and (r.status is None or r.status.value != "done")


def test_replied_to_is_done_and_its_rate_is_not_a_status_word() -> None:
    r = p("交办的建议均已办复")
    assert r.status is not None and r.status.value == "done"
    r = p("建议办复率96%")
    assert r.status is None and r.percent == Decimal("96")


def test_under_construction_as_an_attribute_of_the_items_is_no_verdict() -> None:
    assert p("全区46个在建重点项目完成投资31.2亿元").status is None
    r = p("在建工程9个，其中3个已进入收尾阶段")
    assert r.status is not None and r.status.value == "on_track"  # the verdict comes from 收尾


def test_done_words_under_an_as_of_date_report_what_was_done_by_then() -> None:
    r = p("截至9月底，交办的议案全部在规定时限内办复")
    assert r.status is not None and r.status.value == "done"
    r = p("截至9月底，已开展检查7项，10月底前可完成剩余3项")  # a plan of its own still reads as a plan
    assert r.status is not None and r.status.value == "on_track"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("污水泵站工程低于时间进度", "at_risk"),
        ("老旧小区改造未达到时序进度", "at_risk"),
        ("两条支路推进不力", "at_risk"),
        ("道路提升工程达到时间进度", "on_track"),
        ("安置房项目正在施工", "on_track"),
        ("文体中心已建成投用", "done"),
        ("配套政策已出台", "done"),
        ("智慧停车系统未实施", "not_started"),
    ],
)
def test_time_schedule_and_delivery_phrasing(text: str, status: str) -> None:
    r = p(text)
    assert r.status is not None and r.status.value == status, text


def test_a_done_word_describing_a_thing_is_no_verdict() -> None:
    assert p("已建成的停车楼闲置8个月").status is None
