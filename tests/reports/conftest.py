"""A scripted quarter (Q1 2026) of the shipped plan: contacts, weekly reminders, reports with quantities,
silence, a blocker with a request for help, an extension, an overdue task, a completion and a closure.

The script (``SCRIPT``) is plain data, so tests compute what the reports must say from it, not from the
code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.core import events
from coordbot.core.db import session_scope
from coordbot.plan import actions, service
from coordbot.plan.loader import load_plan_file
from coordbot.plan.models import (
    Contact,
    CrossRequest,
    Department,
    Observation,
    Plan,
    ProgressReport,
    Target,
    Task,
    TaskStatus,
)
from coordbot.scheduling.models import ReminderOccurrence

TZ = ZoneInfo("Asia/Shanghai")
PLAN_FILE = Path(__file__).resolve().parents[2] / "config" / "plans" / "songjiang-ip-2024-2026.yaml"
Q_START = date(2025, 12, 29)  # Monday of ISO week 2026-W01
WEEKS = 13
NOW = datetime(2026, 3, 27, 17, 0, tzinfo=TZ)  # Friday of 2026-W13, after the digest time
DIGEST_WEEK = "2026-W13"
MEETING = date(2026, 3, 27)
SILENT_TASKS = {"3.3", "4.1"}  # never answer (3.3: 区金融办's only task)
QUIET_FROM = {"5.3": 6}  # answers weeks 0-5 only
REPORT_PERCENT_STEP = 5  # each report adds 5 points


def local(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), TZ)


def monday(week: int) -> date:
    return Q_START + timedelta(weeks=week)


@dataclass
class Script:
    """What happened, as data the tests read."""

    reminders: list[tuple[str, int]] = field(default_factory=list)  # (task code, week)
    reports: list[tuple[str, int, int]] = field(default_factory=list)  # (task code, week, percent after)
    quantities: list[tuple[str, date, float, str]] = field(default_factory=list)  # (metric, date, value, mode)
    due_changes: dict[str, date] = field(default_factory=dict)
    extension: tuple[str, date, date] = ("2.3", date(2026, 3, 20), date(2026, 5, 29))
    blocked: str = "3.2"
    help_dept: str = "finance"
    overdue: str = "4.2"
    reported_done: str = "5.1"
    closed: str = "1.1"


@pytest.fixture
def quarter(engine: Engine) -> Script:
    script = Script()
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=load_plan_file(PLAN_FILE), now=local(Q_START, 8))
    with session_scope(engine) as s:
        plan = s.exec(select(Plan)).one()
        depts = {d.code: d for d in s.exec(select(Department))}
        contacts: dict[str, Contact] = {}
        for code, d in depts.items():
            c = Contact(department_id=d.id, name=f"{code}-联络员", role="contact", address=f"c-{code}")
            s.add(c)
            contacts[code] = c
        s.add(Contact(department_id=depts["amr"].id, name="办公室", role="office", address="office-1"))
        s.add(Contact(department_id=depts["finance_office"].id, name="分管领导", role="leader", address="lead-fo"))
        s.flush()
        tasks = {t.code: t for t in s.exec(select(Task).where(Task.plan_id == plan.id))}
        code_of = {d.id: code for code, d in depts.items()}
        targets = {t.metric: t for t in s.exec(select(Target))}

        # deadlines the office set within the plan period
        script.due_changes = {script.overdue: date(2026, 3, 13), script.extension[0]: script.extension[1]}
        for code, due in script.due_changes.items():
            tasks[code].due_date = tasks[code].original_due_date = due

        # history before the quarter: 63 pilot units by the end of 2025 (a running total)
        s.add(
            Observation(
                target_id=targets["pilot_demo_units"].id,
                value=63,
                mode="total",
                observed_on=date(2025, 12, 31),
                source="import",
                recorded_at=local(date(2025, 12, 31), 12),
            )
        )
        script.quantities.append(("pilot_demo_units", date(2025, 12, 31), 63, "total"))

        quantities = {  # (task, week) -> (metric, increment)
            ("2.1", 1): ("special_actions", 2),
            ("2.1", 5): ("special_actions", 3),
            ("2.1", 12): ("special_actions", 1),
            ("3.1", 4): ("pilot_demo_units", 4),
            ("3.1", 12): ("pilot_demo_units", 2),
        }
        for week in range(WEEKS):
            mon = monday(week)
            for code, task in sorted(tasks.items()):
                dept = code_of[task.lead_department_id]
                if task.status in (TaskStatus.CLOSED, TaskStatus.REPORTED_DONE):
                    continue  # nothing left to remind about
                rem = ReminderOccurrence(
                    plan_id=plan.id,
                    task_id=task.id,
                    contact_id=contacts[dept].id,
                    kind="periodic",
                    fire_at=local(mon, 9, 30),
                    status="sent",
                    sent_at=local(mon, 9, 30),
                    created_at=local(mon, 9),
                )
                s.add(rem)
                script.reminders.append((code, week))
                silent = code in SILENT_TASKS or week >= QUIET_FROM.get(code, WEEKS)
                if silent or (week % 2 == 1 and code[0] == "4"):
                    continue  # group 4 answers every other week
                s.flush()
                at = local(mon + timedelta(days=2), 10, len(script.reports) % 60)
                before = task.progress
                status = "in_progress"
                if code == script.blocked and week == 10:
                    status = "blocked"
                if code == script.reported_done and week == 11:
                    status = "reported_done"
                if code == script.closed and week == 7:
                    status = "reported_done"
                percent = 100 if status == "reported_done" else min(95, before + REPORT_PERCENT_STEP)
                report = ProgressReport(
                    task_id=task.id,
                    contact_id=contacts[dept].id,
                    department_id=task.lead_department_id,
                    received_at=at,
                    text=f"{code} 第{week + 1}周进展",
                    status=status,
                    percent=percent,
                    reminder_id=None,
                    previous={"progress": before, "status": task.status},
                )
                s.add(report)
                s.flush()
                task.progress, task.last_report_at = percent, at
                if task.status != TaskStatus.BLOCKED or status != "in_progress":
                    task.status = status
                events.record(
                    s,
                    "progress.reported",
                    at=at,
                    plan_id=plan.id,
                    task_id=task.id,
                    department_id=task.lead_department_id,
                    report=report.id,
                    percent=percent,
                )
                script.reports.append((code, week, percent))
                if status == "reported_done":
                    events.record(s, "task.reported_done", at=at, plan_id=plan.id, task_id=task.id, report=report.id)
                if status == "blocked":
                    events.record(s, "task.blocked", at=at, plan_id=plan.id, task_id=task.id, report=report.id)
                    s.add(
                        CrossRequest(
                            task_id=task.id,
                            from_department_id=task.lead_department_id,
                            to_department_id=depts[script.help_dept].id,
                            report_id=report.id,
                            text="需区财政局配合落实贴息资金，目前受阻",
                            created_at=at,
                        )
                    )
                    events.record(
                        s,
                        "crossrequest.opened",
                        at=at,
                        plan_id=plan.id,
                        task_id=task.id,
                        department_id=depts[script.help_dept].id,
                    )
                if (code, week) in quantities:
                    metric, value = quantities[(code, week)]
                    s.add(
                        Observation(
                            target_id=targets[metric].id,
                            value=value,
                            mode="increment",
                            observed_on=at.date(),
                            source="report",
                            report_id=report.id,
                            recorded_at=at,
                        )
                    )
                    script.quantities.append((metric, at.date(), value, "increment"))
            if week == 8:  # the office closes 1.1, reported done in week 7
                actions.close_task(session=s, task=tasks[script.closed], actor="office", now=local(mon, 15))
            if week == 10:  # 2.3 asks for more time; the office agrees two days later
                ext = actions.request_extension(
                    session=s,
                    task=tasks["2.3"],
                    new_due=script.extension[2],
                    reason="调解工作室选址调整",
                    contact=contacts["amr"],
                    now=local(mon, 11),
                )
                actions.decide_extension(
                    session=s, extension=ext, approve=True, decided_by="office", now=local(mon + timedelta(days=2), 16)
                )
            s.flush()
    return script


@pytest.fixture
def plan_in(engine: Engine, quarter: Script):
    def _open() -> tuple[Session, Plan]:
        s = Session(engine, expire_on_commit=False)
        return s, s.exec(select(Plan)).one()

    return _open
