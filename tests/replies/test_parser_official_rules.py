"""Issue 12, second round: instructions, other rates, durations and session numbers. Examples written for these
tests (not from the corpus)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from coordbot.replies import parse_reply
from coordbot.replies.ambiguity import Ambiguity
from coordbot.replies.parser import Status

TODAY = date(2025, 6, 11)


def p(text: str, **kw):  # type: ignore[no-untyped-def]
    return parse_reply(text, today=TODAY, **kw)


@pytest.mark.parametrize(
    "text",
    [
        "对工作推进缓慢的街道，牵头单位要切实加强督导。",
        "下一步，各部门将加快推进剩余工程建设。",
        "5月计划：督促未开工项目尽快开工。",
        "各责任单位要会同区督查室，对进度滞后的任务逐项通报。",
    ],
)
def test_an_instruction_or_plan_reports_no_status(text: str) -> None:
    assert p(text).status is None


def test_a_report_before_next_steps_keeps_its_status() -> None:
    assert p("道路工程已完成，下一步要加强养护管理").status is Status.DONE
    assert p("目前进度滞后，下一步要加快施工").status is Status.AT_RISK


@pytest.mark.parametrize(
    "text", ["群众满意率达到98.5%", "议案立案率为91%", "服务对象基本满足率100%", "56项任务中，有90%预计年内完成"]
)
def test_rates_of_a_population_and_parts_of_it_are_not_progress(text: str) -> None:
    assert p(text).percent is None


def test_a_completion_rate_is_still_progress() -> None:
    assert p("项目开工率达88.5%").percent == Decimal("88.5")


@pytest.mark.parametrize(
    "text",
    ["前8个月新签约项目36个", "该地块已闲置14个月", "区人大五届三次会议以来，共收到建议210件", "“五件实事”进展顺利"],
)
def test_durations_session_numbers_and_names_are_not_counts(text: str) -> None:
    got = {(q.written_value, q.written_unit) for q in p(text).quantities}
    assert not any(u in ("个", "次", "件") and v in (8, 14, 3, 5) for v, u in got)


def test_a_share_answered_as_progress_is_read_as_progress() -> None:
    text = "绿化项目占年度计划的42.5%"
    assert p(text).share_percent == Decimal("42.5") and p(text).percent is None
    r = p(text, answers={Ambiguity.SHARE_OR_PROGRESS: "progress"})
    assert r.percent == Decimal("42.5") and Ambiguity.SHARE_OR_PROGRESS not in r.ambiguities
    assert p(text, answers={Ambiguity.SHARE_OR_PROGRESS: "share"}).percent is None
