"""责任领导 where readers look for it (issue 15), and rate and growth targets in the reports: the latest value
against the target, compared only at the period's end, never pro-rated."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.loader import parse_plan_text
from coordbot.plan.models import CrossRequest, Department, Observation, Plan, Target, Task, TaskStatus
from coordbot.reports.briefing import build_briefing
from coordbot.reports.digest import build_digest

TZ = ZoneInfo("Asia/Shanghai")
RATES = Path(__file__).resolve().parents[1] / "data" / "plans" / "rates.yaml"
NOW = datetime(2026, 10, 23, 17, 0, tzinfo=TZ)  # a Friday in October: the annual growth is not due yet


def _import(engine: Engine, text: str) -> None:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=parse_plan_text(text, "rates.yaml"), now=datetime(2026, 1, 5, tzinfo=TZ))


def _block_and_ask(engine: Engine) -> None:
    """1.1 blocked (a red task in 需协调事项), 1.2 asks 区财政局 for help (a 待配合 line)."""
    with session_scope(engine) as s:
        tasks = {t.code: t for t in s.exec(select(Task))}
        depts = {d.code: d for d in s.exec(select(Department))}
        tasks["1.1"].status = TaskStatus.BLOCKED
        s.add(
            CrossRequest(
                task_id=tasks["1.2"].id,
                from_department_id=depts["amr"].id,
                to_department_id=depts["finance"].id,
                text="需区财政局配合核拨经费",
                created_at=datetime(2026, 10, 20, 10, tzinfo=TZ),
            )
        )


def _observe(engine: Engine, metric: str, value: float, on: date) -> None:
    with session_scope(engine) as s:
        target = s.exec(select(Target).where(Target.metric == metric)).one()
        s.add(Observation(target_id=target.id, value=value, mode="total", observed_on=on))


def _digests(engine: Engine, now: datetime = NOW) -> dict[tuple[str, str], str]:
    with Session(engine) as s:
        plan = s.exec(select(Plan)).one()
        out = {}
        for locale in ("zh", "en"):
            d = build_digest(session=s, plan=plan, now=now, locale=locale, store=False)
            for fmt in ("text", "html", "md"):
                out[(locale, fmt)] = d.render(fmt)  # type: ignore[arg-type]
        return out


def _briefing(engine: Engine, locale: str, now: datetime = NOW) -> str:
    with Session(engine) as s:
        plan = s.exec(select(Plan)).one()
        doc = build_briefing(session=s, plan=plan, meeting_date=now.date(), now=now, locale=locale, with_charts=False)
        return doc.to_markdown()


# ---- 责任领导 ---------------------------------------------------------------------------------------


def test_the_digest_names_the_responsible_leader_of_each_task_line(engine: Engine) -> None:
    _import(engine, RATES.read_text(encoding="utf-8"))
    _block_and_ask(engine)
    got = _digests(engine)
    for fmt in ("text", "html", "md"):
        # the red task's line (红色事项 / 需协调事项 受阻) and the request's line (待配合)
        assert "1.1 区级一般公共预算收入（区财政局，责任领导：分管副区长张明）" in got[("zh", fmt)], fmt
        assert "Responsible leader" not in got[("zh", fmt)]
        assert "1.1 区级一般公共预算收入 (区财政局; responsible leader: 分管副区长张明)" in got[("en", fmt)], fmt
    assert "已 3 天；责任领导：分管副区长李华）" in got[("zh", "md")]  # 待配合: the task's leader
    assert "3 days ago; responsible leader: 分管副区长李华)" in got[("en", "md")]
    assert "<td>区财政局，责任领导：分管副区长张明</td>" in got[("zh", "html")]  # the red and yellow table


def test_the_briefing_names_the_responsible_leader_in_task_rows_and_matters_to_coordinate(engine: Engine) -> None:
    _import(engine, RATES.read_text(encoding="utf-8"))
    _block_and_ask(engine)
    zh, en = _briefing(engine, "zh"), _briefing(engine, "en")
    assert "| 1.1 | 区级一般公共预算收入 | 区财政局，责任领导：分管副区长张明 |" in zh  # the task row's lead cell
    assert "受阻：1.1 区级一般公共预算收入（区财政局，责任领导：分管副区长张明）" in zh  # 需协调事项
    assert "责任领导：分管副区长李华）" in zh  # 待配合
    assert "区财政局; responsible leader: 分管副区长张明" in en


def test_without_a_leader_nothing_is_added(engine: Engine) -> None:
    text = (
        RATES.read_text(encoding="utf-8")
        .replace("        leader: 分管副区长张明\n", "")
        .replace("        leader: 分管副区长李华\n", "")
    )
    _import(engine, text)
    _block_and_ask(engine)
    got = _digests(engine)
    assert "1.1 区级一般公共预算收入（区财政局）" in got[("zh", "md")]
    assert all("责任领导" not in v and "responsible leader" not in v for v in got.values())
    assert "责任领导" not in _briefing(engine, "zh")
