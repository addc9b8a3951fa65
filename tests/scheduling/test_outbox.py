"""What the outbox stores is what the channel gets: plain bodies escaped once, rendered HTML kept as it is."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from coordbot.plan.loader import LoadedPlan
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import ReminderKind

from .test_messages import _build, _queue


def test_a_plain_body_is_escaped_once_and_an_html_body_is_kept(
    engine: Engine, loaded_plan: LoadedPlan, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    office = bind("amr", role="office", address="9000")
    plain = _queue(engine, office, ReminderKind.NOTICE, None, body="无法向<王敏>发送提醒（R&D 组）", detail="a")
    rendered = _queue(engine, office, ReminderKind.NOTICE, None, body="<b>工作周报 2026-W10</b>", detail="b", html=True)
    messages = _build(engine, calendar, plain, rendered)
    assert messages[plain.id][1].text.strip() == "无法向&lt;王敏&gt;发送提醒（R&amp;D 组）"
    assert messages[rendered.id][1].text.strip() == "<b>工作周报 2026-W10</b>"  # bold on the chat, not "<b>" shown
