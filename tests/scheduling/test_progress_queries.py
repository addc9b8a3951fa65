"""plan.queries: one definition of a task's latest report and of its quota progress, wherever it is read.

Each test here failed while the definitions differed: the 督办 review took the highest report id as the
latest (a reply received earlier but stored later won), and the reminder preview left out the quota lines
of targets to stay under (<=) that the reminder itself shows.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan, parse_plan_text
from coordbot.plan.models import Contact, Department, Observation, ProgressReport, Target, Task
from coordbot.plan.queries import latest_reports, task_quota_progress
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import sync_reminders
from coordbot.scheduling.escalation import review_tasks
from coordbot.scheduling.messages import build_messages
from coordbot.scheduling.models import Claimed, ReminderKind, ReminderOccurrence
from coordbot.scheduling.views import preview_task

from .conftest import at

STAY_UNDER = """          - metric: complaints
            name: 投诉举报量
            unit: 件
            value: 50
            comparator: "<="
            period: annual
"""


def _report(s: Session, task: Task, *, received_hours: int, status: str, **kw) -> ProgressReport:  # type: ignore[no-untyped-def]
    r = ProgressReport(
        task_id=task.id,  # type: ignore[arg-type]
        department_id=task.lead_department_id,
        received_at=at(2026, 3, 2, received_hours),
        text=status,
        status=status,
        **kw,
    )
    s.add(r)
    s.flush()
    return r


def test_the_latest_report_is_the_newest_received_live_one(engine: Engine, loaded_plan: LoadedPlan) -> None:
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.2")).one()
        later = _report(s, task, received_hours=10, status="at_risk")
        _report(s, task, received_hours=9, status="on_track")  # received earlier, stored later: higher id
        _report(s, task, received_hours=11, status="blocked", voided=True)  # undone
        newer = _report(s, task, received_hours=12, status="blocked")
        _report(s, task, received_hours=12, status="done", superseded_by_id=newer.id)  # replaced by another
        _report(s, task, received_hours=8, status="blocked", superseded_by_id=later.id)
        newer.voided = True
        s.flush()
        [latest] = latest_reports(session=s, task_ids=[task.id]).values()  # type: ignore[list-item]
        assert (latest.id, latest.status, latest.received_at) == (later.id, "at_risk", at(2026, 3, 2, 10))
        assert latest_reports(session=s, task_ids=[]) == {}


def test_the_review_colours_by_the_latest_received_report(
    engine: Engine, loaded_plan: LoadedPlan, calendar: WorkCalendar
) -> None:
    """1.2 has no deadline and no trajectory (a level without a baseline): only the report can turn it yellow."""
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.2")).one()
        task.status = "in_progress"
        _report(s, task, received_hours=10, status="at_risk")
        _report(s, task, received_hours=9, status="on_track")  # handled after the 10:00 one: a higher id
    with session_scope(engine) as s:
        review_tasks(session=s, calendar=calendar, now=at(2026, 3, 2, 18))
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.2")).one()
        assert (task.colour, task.colour_reason) == ("yellow", "reported_at_risk")


def test_the_preview_shows_the_quota_lines_the_reminder_shows(
    engine: Engine, minimal_plan_path: Path, calendar: WorkCalendar
) -> None:
    text = minimal_plan_path.read_text(encoding="utf-8")
    anchor = "            aliases: [专项行动, 双随机检查]\n"
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=parse_plan_text(text.replace(anchor, anchor + STAY_UNDER), "t.yaml"))
        amr = s.exec(select(Department).where(Department.code == "amr")).one()
        s.add(Contact(department_id=amr.id, name="联络员", address="1001"))
    now = at(2026, 3, 2, 8)
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        for metric, value in (("complaints", 7.0), ("special_actions", 2.0)):
            target = s.exec(select(Target).where(Target.metric == metric)).one()
            s.add(Observation(target_id=target.id, value=value, observed_on=now.date(), recorded_at=now))  # type: ignore[arg-type]
        sync_reminders(session=s, calendar=calendar, now=now, horizon=timedelta(days=7))
    with Session(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        occ = s.exec(
            select(ReminderOccurrence)
            .where(ReminderOccurrence.task_id == task.id, ReminderOccurrence.kind == ReminderKind.PERIODIC)
            .order_by(ReminderOccurrence.fire_at)  # type: ignore[arg-type]
        ).first()
        assert occ is not None
        quotas = task_quota_progress(session=s, task=task, today=now.date())
        previews = preview_task(session=s, calendar=calendar, now=now, task_code="2.1", horizon=timedelta(days=7))
    assert [(q.metric, q.actual, q.goal) for q in quotas] == [("special_actions", 2.0, 10), ("complaints", 7.0, 50)]
    claimed = Claimed(occ.id, occ.kind, occ.contact_id, occ.task_id, occ.fire_at, 1)  # type: ignore[arg-type]
    [(_, sent)] = build_messages(engine, [claimed], now=occ.fire_at, calendar=calendar).values()
    [preview] = [p for p in previews if (p.fire_at, p.kind) == (occ.fire_at, occ.kind)]
    assert "· 投诉举报量：今年 7/50 件" in sent.text
    assert preview.text == sent.text
