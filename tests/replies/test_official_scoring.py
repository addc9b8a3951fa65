"""The real-text corpus' scorer compares quantities in the units its labels cover (issue 12's list) only."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from coordbot.replies import parse_reply
from tests.replies.corpus import OFFICIAL_UNITS, official_actual, score_official


def test_quantities_outside_the_labelled_units_are_left_out_of_the_comparison() -> None:
    parsed = parse_reply("改造棚户区3200户，完成投资1.5亿元", today=date(2025, 6, 11))
    assert {q.written_unit for q in parsed.quantities} == {"户", "亿元"}  # the parser still reads both
    got = official_actual(parsed)
    assert got["qty"] == [(Decimal("1.5"), "亿元", "total")]
    assert "户" not in OFFICIAL_UNITS


def test_a_wrong_quantity_in_a_labelled_unit_still_costs_precision() -> None:
    got = official_actual(parse_reply("完成投资1.5亿元，新建站点12个", today=date(2025, 6, 11)))
    expected = {"status": None, "pct": None, "qty": [(Decimal("1.5"), "亿元", "total")]}
    rows = {name: (p, r) for name, p, r, _, _ in score_official([(expected, got)])}
    assert rows["quantities"] == (0.5, 1.0)
