"""A growth rate and a rate-or-progress question through PTB and the fake Bot API (the rates plan instead of the
minimal one): 增长4.2% is the growth target's value; 目前达到96% on a count-and-rate task asks with buttons."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.telegram import TelegramFrontend
from coordbot.plan.loader import LoadedPlan, load_plan_file
from coordbot.plan.models import Observation, Target

from .conftest import WANG, ZHAO, BoundFactory, button_data, buttons, task_row

RATES = Path(__file__).resolve().parents[1] / "data" / "plans" / "rates.yaml"


@pytest.fixture
def minimal_plan() -> LoadedPlan:
    return load_plan_file(RATES)


def _observed(engine: Engine) -> list[tuple[str, float, str]]:
    with Session(engine) as s:
        rows = s.exec(
            select(Target.metric, Observation.value, Target.unit)
            .join(Target, col(Target.id) == Observation.target_id)
            .where(~col(Observation.voided))
            .order_by(col(Observation.id))
        ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_growth_rate_reported_in_chat(frontend: TelegramFrontend, bound: BoundFactory, engine: Engine) -> None:
    zhao = await bound(ZHAO, "finance")
    answer = await zhao.say("1.1 今年前三季度增长4.2%")
    assert "区级一般公共预算收入增长4.2%（目标增长6.5%左右±0.5%，期末考核）" in answer["text"]
    assert _observed(engine) == [("revenue_growth", 4.2, "%")]
    assert task_row(engine, "1.1").progress == 0  # a growth is not completion


async def test_an_unclear_percent_is_asked_about_with_buttons(
    frontend: TelegramFrontend, bound: BoundFactory, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    asked = await wang.say("1.2 目前达到96%")
    assert "“96%”是消费者满意度的数值，还是任务的完成进度？" in asked["text"]
    labels = [label for label, data in buttons(asked) if data.startswith("setrate:")]
    assert labels == ["消费者满意度", "按完成进度记录"]
    assert _observed(engine) == []
    [answer] = await wang.press(asked, next(d for label, d in buttons(asked) if label == "消费者满意度"))
    assert "消费者满意度96%（目标95%，期末考核）" in answer["text"]
    assert _observed(engine) == [("satisfaction", 96.0, "%")]
    assert button_data(answer, "undo")
