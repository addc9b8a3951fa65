"""The roll-up's "latest report" is plan.queries.latest_reports' (newest received, then newest id; not undone,
not superseded), found in the rows the roll-up loads in bulk."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from coordbot.plan.models import OPEN_STATUSES, Plan, ProgressReport, Task, TaskStatus
from coordbot.plan.queries import latest_reports
from coordbot.reports.rollup import TaskLine, build_rollup, week_period

from .conftest import DIGEST_WEEK, NOW


def _lines(s: Session, plan: Plan) -> dict[str, TaskLine]:
    period = week_period(plan=plan, now=NOW, week=DIGEST_WEEK)
    r = build_rollup(session=s, plan=plan, period=period, now=NOW)
    return {t.code: t for g in r.groups for t in g.tasks}


def test_a_superseded_report_is_not_the_latest(plan_in) -> None:
    s, plan = plan_in()
    before = _lines(s, plan)
    # an open task the roll-up colours green for no reason: only a report's status can turn it yellow
    code = next(
        c
        for c, t in before.items()
        if t.colour == "green" and not t.reason and t.status in OPEN_STATUSES and t.status != TaskStatus.REPORTED_DONE
    )
    task = s.exec(select(Task).where(Task.code == code)).one()
    at_risk = ProgressReport(
        task_id=task.id,
        department_id=task.lead_department_id,
        received_at=NOW - timedelta(hours=2),
        text="有风险",
        status="at_risk",
    )
    s.add(at_risk)
    s.flush()
    # received later, but superseded: before, the roll-up took the last report of the period, this one (green)
    s.add(
        ProgressReport(
            task_id=task.id,
            department_id=task.lead_department_id,
            received_at=NOW - timedelta(hours=1),
            text="正常推进",
            status="on_track",
            superseded_by_id=at_risk.id,
        )
    )
    s.flush()
    assert task.id is not None
    assert latest_reports(session=s, task_ids=[task.id])[task.id].status == "at_risk"
    line = _lines(s, plan)[code]
    assert (line.colour, line.reason) == ("yellow", "reported_at_risk")
    assert line.reports == before[code].reports + 2  # both still count as reports in the period
    s.close()
