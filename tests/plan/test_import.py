"""Importing plan files: creation, idempotency, updates in place, archiving, atomic refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from coordbot.core.db import session_scope
from coordbot.core.events import Event
from coordbot.models import Contact, Department, Plan, Target, Task, TaskDepartment
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan, PlanFileError, parse_plan_text


def _import(engine: Engine, loaded: LoadedPlan) -> service.ImportReport:
    with session_scope(engine) as s:
        return service.import_plan(session=s, loaded=loaded)


def _snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of the plan tables, for 'nothing changed' comparisons."""
    out: dict[str, list[tuple]] = {}
    with Session(engine) as s:
        for model in (Plan, Department, Task, TaskDepartment, Target, Contact, Event):
            rows = s.exec(select(model)).all()
            out[model.__name__] = sorted((tuple(sorted(r.model_dump().items(), key=str)) for r in rows), key=repr)
    return out


def test_import_creates_everything(engine: Engine, minimal_plan: LoadedPlan) -> None:
    report = _import(engine, minimal_plan)
    assert report.created
    with Session(engine) as s:
        plan = s.exec(select(Plan)).one()
        assert plan.code == "test-plan"
        tasks = {t.code: t for t in s.exec(select(Task))}
        assert set(tasks) == {"1.1", "1.2", "2.1", "2.2"}
        depts = {d.id: d.code for d in s.exec(select(Department))}
        assert depts[tasks["1.1"].lead_department_id] == "amr"
        assert tasks["1.1"].assignment == "proposed"
        assert tasks["1.1"].due_date.isoformat() == "2024-12-31"
        assert tasks["1.1"].original_due_date == tasks["1.1"].due_date
        co = s.exec(select(TaskDepartment).where(TaskDepartment.task_id == tasks["1.1"].id)).all()
        assert [depts[r.department_id] for r in co] == ["finance"]
        targets = {t.metric: t for t in s.exec(select(Target))}
        assert targets["special_actions"].period == "annual"
        assert targets["special_actions"].value == 10
        assert targets["special_actions"].task_id == tasks["2.1"].id
        assert targets["pct_growth"].task_id is None
        assert targets["pct_growth"].comparator == "qualitative"
        assert tasks["2.1"].dated_events == [{"name": "世界知识产权日", "day": "04-26"}]
        assigned = s.exec(select(func.count()).select_from(Event).where(Event.type == "task.assigned")).one()
        assert assigned == 4
        assert s.exec(select(func.count()).select_from(Contact)).one() == 2


def test_importing_twice_changes_nothing(engine: Engine, minimal_plan: LoadedPlan) -> None:
    _import(engine, minimal_plan)
    before = _snapshot(engine)
    report = _import(engine, minimal_plan)
    assert not report.changed
    assert report.changes == []
    assert _snapshot(engine) == before


def test_edited_file_updates_in_place_and_archives(engine: Engine, minimal_plan_path: Path) -> None:
    text = minimal_plan_path.read_text(encoding="utf-8")
    _import(engine, parse_plan_text(text, "v1.yaml"))
    with Session(engine) as s:
        ids = {t.code: t.id for t in s.exec(select(Task))}

    # v2: a new title, a new deadline, a co-department swapped, a target value changed, task 2.2 removed.
    v2 = (
        text.replace("title: 完善政策体系", "title: 完善政策引导和激励体系")
        .replace("due: 2024-12-31", "due: 2025-06-30")
        .replace("co: [finance]", "co: [sci]")
        .replace("value: 10\n", "value: 12\n")
    )
    v2 = v2[: v2.index('      - code: "2.2"')] + v2[v2.index("contacts:") :]
    report = _import(engine, parse_plan_text(v2, "v2.yaml"))
    joined = "\n".join(report.changes)
    assert "~ task 1.1: title: 完善政策体系 → 完善政策引导和激励体系" in joined
    assert "due_date: 2024-12-31 → 2025-06-30" in joined
    assert "co-department finance removed" in joined and "co-department sci added" in joined
    assert "~ target special_actions (task 2.1): value: 10.0 → 12.0" in joined
    assert "- task 2.2 archived" in joined
    assert "- target pilot_units archived" in joined

    with Session(engine) as s:
        tasks = {t.code: t for t in s.exec(select(Task))}
        assert {c: t.id for c, t in tasks.items()} == ids  # updated in place, nothing re-created
        assert tasks["1.1"].title == "完善政策引导和激励体系"
        assert tasks["2.2"].archived_at is not None  # kept, with its history
        types = [e.type for e in s.exec(select(Event).where(Event.task_id == ids["2.2"]).order_by(Event.id))]
        assert types == ["task.assigned", "task.archived"]

    # Back to v1: the archived task returns, same row.
    report = _import(engine, parse_plan_text(text, "v1.yaml"))
    assert any(line.startswith("~ task 2.2") and "archived" in line for line in report.changes)
    with Session(engine) as s:
        t22 = s.exec(select(Task).where(Task.code == "2.2")).one()
        assert t22.id == ids["2.2"] and t22.archived_at is None


def test_approved_extension_survives_reimport(engine: Engine, minimal_plan: LoadedPlan) -> None:
    import datetime as dt

    _import(engine, minimal_plan)
    with session_scope(engine) as s:
        t = s.exec(select(Task).where(Task.code == "1.1")).one()
        t.due_date = dt.date(2025, 3, 31)  # as an approved extension would
    report = _import(engine, minimal_plan)
    assert not report.changed
    with Session(engine) as s:
        t = s.exec(select(Task).where(Task.code == "1.1")).one()
        assert (t.original_due_date, t.due_date) == (dt.date(2024, 12, 31), dt.date(2025, 3, 31))


BAD_CASES = {
    "bad_yaml": (lambda t: t.replace("  code: test-plan", "  code: [test-plan"), r"not valid YAML"),
    "unknown_department": (
        lambda t: t.replace("lead: sci", "lead: police"),
        r":\d+ \[groups\[0\]\.tasks\[1\]\.lead\]: unknown department 'police'",
    ),
    "duplicate_task_code": (lambda t: t.replace('code: "2.2"', 'code: "2.1"'), r"duplicate task code '2.1'"),
    "impossible_date": (
        lambda t: t.replace("due: 2024-12-31", "due: 2024-02-30"),
        r"\[groups\[0\]\.tasks\[0\]\.due\]: expected a real date as YYYY-MM-DD, got '2024-02-30'",
    ),
    "missing_field": (
        lambda t: t.replace("        title: 完善政策体系\n", ""),
        r"\[groups\[0\]\.tasks\[0\]\.title\]: required field is missing",
    ),
    "outside_period": (lambda t: t.replace("due: 2024-12-31", "due: 2027-01-15"), r"outside the plan period"),
    "unknown_field": (lambda t: t.replace("unit: 项", "unit: 项\n            valu: 3"), r"valu\]: unknown field"),
    "duplicate_key": (
        lambda t: t.replace("  office: amr\n", "  office: amr\n  office: sci\n"),
        r"key 'office' appears twice",
    ),
    "bad_kind": (
        lambda t: t.replace("kind: recurring", "kind: sometimes"),
        r"'one-off', 'recurring', 'metric' or 'ongoing'",
    ),
    "bad_month_day": (lambda t: t.replace('day: "04-26"', 'day: "04-31"'), r"day"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_is_refused_with_line_and_database_untouched(
    engine: Engine, minimal_plan: LoadedPlan, minimal_plan_path: Path, case: str
) -> None:
    _import(engine, minimal_plan)
    before = _snapshot(engine)
    edit, pattern = BAD_CASES[case]
    text = minimal_plan_path.read_text(encoding="utf-8")
    bad = edit(text)
    assert bad != text, "the edit must change the file"
    with pytest.raises(PlanFileError, match=pattern) as info:
        _import(engine, parse_plan_text(bad, "bad.yaml"))
    assert all(p.line is not None for p in info.value.problems), info.value.render()
    assert "bad.yaml:" in info.value.render()
    assert _snapshot(engine) == before


def test_failure_midway_rolls_back_everything(engine: Engine, minimal_plan: LoadedPlan, monkeypatch) -> None:
    """A database error in the middle of an import leaves no trace of it."""
    before = _snapshot(engine)
    original = service.target_values

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "target_values", explode)
    with pytest.raises(RuntimeError):
        _import(engine, minimal_plan)
    monkeypatch.setattr(service, "target_values", original)
    assert _snapshot(engine) == before


def test_reimport_keeps_later_decisions_but_file_edits_win(engine: Engine, minimal_plan_path: Path) -> None:
    """An unchanged file does not undo what happened after the import; a changed field in the file does."""
    import datetime as dt

    text = minimal_plan_path.read_text(encoding="utf-8")
    _import(engine, parse_plan_text(text, "v1.yaml"))
    with session_scope(engine) as s:
        sci = s.exec(select(Department).where(Department.code == "sci")).one()
        t11 = s.exec(select(Task).where(Task.code == "1.1")).one()
        t11.lead_department_id = sci.id  # as a meeting's reassignment would
        t11.title = "会议调整后的标题"
        plan = s.exec(select(Plan)).one()
        t11.due_date = dt.date(2025, 3, 31)
        extra = Task(
            plan_id=plan.id,
            group_id=t11.group_id,
            code="1.9",
            title="会议新增任务",
            lead_department_id=sci.id,
            origin="meeting:2026-03-27",
        )
        s.add(extra)
    report = _import(engine, parse_plan_text(text, "v1.yaml"))
    assert not report.changed, report.changes
    with Session(engine) as s:
        t11 = s.exec(select(Task).where(Task.code == "1.1")).one()
        assert (t11.title, t11.due_date) == ("会议调整后的标题", dt.date(2025, 3, 31))
        assert s.exec(select(Task).where(Task.code == "1.9")).one().archived_at is None

    edited = text.replace("title: 完善政策体系", "title: 完善政策引导体系")
    report = _import(engine, parse_plan_text(edited, "v2.yaml"))
    assert any("title: 会议调整后的标题 → 完善政策引导体系" in c for c in report.changes)
    with Session(engine) as s:
        t11 = s.exec(select(Task).where(Task.code == "1.1")).one()
        assert t11.title == "完善政策引导体系"
        assert t11.lead_department_id == sci.id  # the file's lead did not change, so the reassignment stays


def test_reminder_policy_in_the_file_is_checked_when_loading(minimal_plan_path: Path) -> None:
    text = minimal_plan_path.read_text(encoding="utf-8")
    ok = text.replace("  office: amr\n", '  office: amr\n  reminders: {periodic_weekday: 周三, send_time: "10:00"}\n')
    assert parse_plan_text(ok, "ok.yaml").data.plan.reminders["periodic_weekday"] == "周三"
    typo = '        kind: recurring\n        reminders: {send_tme: "10:00"}\n'
    bad = text.replace("        kind: recurring\n", typo)
    with pytest.raises(PlanFileError, match=r"bad\.yaml:\d+ \[groups\[1\]\.tasks\[0\]\.reminders\]: .*send_tme"):
        parse_plan_text(bad, "bad.yaml")
    bad_time = text.replace("  office: amr\n", '  office: amr\n  reminders: {send_time: "20:00"}\n')
    with pytest.raises(PlanFileError, match=r"\[plan\.reminders\]: .*sending window"):
        parse_plan_text(bad_time, "bad.yaml")
