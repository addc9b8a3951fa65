"""The decisions loop: a valid file is applied with events and shows in the next briefing; each bad file is
refused naming the line and field, and changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import func, select

from coordbot.core.events import Event
from coordbot.plan.meetings import MeetingFileError, record_meeting
from coordbot.plan.models import Department, Meeting, Task, TaskStatus
from coordbot.reports.briefing import build_briefing
from tests.reports.conftest import NOW

VALID = """\
meeting:
  date: 2026-03-27
  title: 2026年第一次联席会议
decisions:
  new_tasks:
    - group: "3"
      code: "3.4"
      title: 开展知识产权质押融资专项行动
      lead: finance_office
      co: [finance]
      due: 2026-09-30
  deadlines:
    - task: "5.2"
      due: 2026-06-30
      reason: 会议明确阶段性时限
  reassignments:
    - task: "5.3"
      lead: media
      co: [publicity]
      reason: 由区融媒体中心牵头
  closures:
    - task: "5.1"
      reason: 会议同意销号
"""


def test_valid_decisions_are_applied_and_reported(plan_in) -> None:
    s, plan = plan_in()
    before = s.exec(select(func.count()).select_from(Event)).one()
    meeting = record_meeting(session=s, data=VALID, now=NOW, file="m.yaml")
    s.commit()
    tasks = {t.code: t for t in s.exec(select(Task))}
    media = s.exec(select(Department).where(Department.code == "media")).one()
    assert tasks["3.4"].due_date == date(2026, 9, 30) and tasks["3.4"].status == "assigned"
    assert tasks["5.2"].due_date == date(2026, 6, 30)
    assert tasks["5.3"].lead_department_id == media.id
    assert tasks["5.1"].status == TaskStatus.CLOSED
    types = [e.type for e in s.exec(select(Event).order_by(Event.id).offset(before))]
    assert types == ["task.assigned", "task.updated", "task.updated", "task.closed", "meeting.recorded"]
    assert len(meeting.decisions) == 4
    doc = build_briefing(
        session=s, plan=plan, meeting_date=NOW.date() + timedelta(days=28), now=NOW + timedelta(days=1)
    )
    md = doc.to_markdown()
    assert doc.rollup.period.start == date(2026, 3, 28)  # the day after the recorded meeting
    # Chinese dates without zero padding (GB/T 9704), as the briefing now writes them
    assert "上次会议议定事项落实情况" in md and "2026年3月27日联席会议议定事项4项" in md
    assert "新增任务：3.4 开展知识产权质押融资专项行动" in md and "销号：5.1" in md
    s.close()


BAD = [
    ("meeting:\n  date: 2026-02-30\n", 2, "meeting.date", "real date"),
    (
        "meeting:\n  date: 2026-03-27\ndecisions:\n  closures:\n    - task: '9.9'\n      reason: x\n",
        5,
        "decisions.closures[0].task",
        "unknown task '9.9'",
    ),
    (
        "meeting:\n  date: 2026-03-27\ndecisions:\n  deadlines:\n    - task: '2.1'\n      due: 2027-05-01\n"
        "      reason: x\n",
        6,
        "decisions.deadlines[0].due",
        "outside the plan period",
    ),
    (
        "meeting:\n  date: 2026-03-27\ndecisions:\n  reassignments:\n    - task: '2.1'\n      lead: nobody\n"
        "      reason: x\n",
        6,
        "decisions.reassignments[0].lead",
        "unknown department 'nobody'",
    ),
    (
        "meeting:\n  date: 2026-03-27\ndecisions:\n  new_tasks:\n    - group: '3'\n      code: '2.1'\n"
        "      title: t\n      lead: amr\n",
        6,
        "decisions.new_tasks[0].code",
        "already exists",
    ),
    (
        "meeting:\n  date: 2026-03-27\ndecisions:\n  closures:\n    - task: '1.1'\n      reason: x\n",
        5,
        "decisions.closures[0].task",
        "already closed",
    ),
    (
        "meeting:\n  date: 2026-03-27\ndecisions:\n  closures:\n    - task: '2.1'\n      reasn: x\n",
        5,
        "decisions.closures[0].reason",
        "required field",
    ),
    ("meeting:\n  date: 2026-03-27\n  colour: red\n", 3, "meeting.colour", "unknown field"),
]


@pytest.mark.parametrize(("text", "line", "path", "message"), BAD)
def test_bad_decisions_are_refused_and_change_nothing(plan_in, text, line, path, message) -> None:
    s, _plan = plan_in()
    counts = (
        s.exec(select(func.count()).select_from(Event)).one(),
        s.exec(select(func.count()).select_from(Task)).one(),
    )
    with pytest.raises(MeetingFileError) as err:
        record_meeting(session=s, data=text, now=NOW, file="m.yaml")
    s.rollback()
    problems = [(p.line, p.path, p.message) for p in err.value.problems]
    assert any(ln == line and p == path and message in m for ln, p, m in problems), problems
    assert f"m.yaml:{line} [{path}]" in str(err.value) and "nothing was changed" in str(err.value)
    assert counts == (
        s.exec(select(func.count()).select_from(Event)).one(),
        s.exec(select(func.count()).select_from(Task)).one(),
    )
    assert s.exec(select(Meeting)).first() is None
    s.close()
