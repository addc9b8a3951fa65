"""Every chat command, for the roles that may and may not use it, through PTB and the fake Bot API."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.events import Event
from coordbot.plan.models import Extension, Observation, ProgressReport
from coordbot.testing.fake_telegram import FakeBotAPI

from .conftest import OFFICE, WANG, ZHAO, BoundFactory, button_data, buttons, task_row


def _reports(engine: Engine) -> list[ProgressReport]:
    with Session(engine) as s:
        return list(s.exec(select(ProgressReport).order_by(ProgressReport.id)))


# ---- contacts -------------------------------------------------------------------------------------


async def test_tasks_lists_only_the_own_department_with_colour_deadline_and_last_report(
    frontend: TelegramFrontend, bound: BoundFactory
) -> None:
    wang = await bound(WANG, "amr")
    await wang.say("/report 2.1 本周开展双随机检查2项")
    text = (await wang.say("/tasks"))["text"]
    assert text.startswith("区市场监管局（3项）")
    assert "1.1 完善政策体系" in text and "期限2024-12-31" in text  # lead
    assert "2.1 加大行政保护力度" in text and "专项行动和双随机检查 2/10项" in text
    assert "2.2 试点示范单位" in text  # lead (sci is its co-department)
    assert "1.2" not in text and "高价值专利培育" not in text  # sci's task
    assert "🟢" in text
    assert "最近报送 03-02：本周开展双随机检查2项" in text
    zhao = await bound(ZHAO, "sci")
    sci = (await zhao.say("/tasks"))["text"]
    assert "1.2 高价值专利培育" in sci and "2.2 试点示范单位" in sci  # lead and co-department
    assert "1.1" not in sci and "2.1" not in sci


async def test_report_updates_the_task_and_confirms_with_an_undo_button(
    frontend: TelegramFrontend, bound: BoundFactory, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    answer = await wang.say("/report 2.1 本周开展双随机检查2项，专项行动筹备中")
    assert "已记录：任务2.1" in answer["text"]
    assert "专项行动和双随机检查+2（今年2/10）" in answer["text"]
    [report] = _reports(engine)
    assert buttons(answer) == [("↩️ 撤销", f"undo:p{report.id}")]
    assert (report.task_id, report.source) == (task_row(engine, "2.1").id, "command")
    assert task_row(engine, "2.1").status == "in_progress"
    with Session(engine) as s:
        assert [o.value for o in s.exec(select(Observation))] == [2.0]


async def test_done_then_the_office_closes(frontend: TelegramFrontend, bound: BoundFactory, engine: Engine) -> None:
    wang = await bound(WANG, "amr")
    office = await bound(OFFICE, "amr", role="office")
    early = await office.say("/close 1.1")
    assert "has not been reported done yet" in early["text"]
    assert task_row(engine, "1.1").status != "closed"
    done = await wang.say("/done 1.1 政策文件已印发")
    assert "已完成（已报结，待办公室销号）" in done["text"]
    assert (task_row(engine, "1.1").status, task_row(engine, "1.1").progress) == ("reported_done", 100)
    closed = await office.say("/close 1.1")
    assert closed["text"].strip() == "任务1.1 完善政策体系已销号。"
    assert task_row(engine, "1.1").status == "closed"
    assert "1.1" not in (await wang.say("/tasks"))["text"]  # closed tasks leave the contact's list


async def test_blocked_turns_the_task_red_and_the_office_sees_it_in_overdue(
    frontend: TelegramFrontend, bound: BoundFactory, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    office = await bound(OFFICE, "amr", role="office")
    usage = await wang.say("/blocked 2.1")
    assert "用法：/blocked 任务编号 受阻原因" in usage["text"]
    answer = await wang.say("/blocked 2.1 执法人员抽调，检查暂停")
    assert "受阻" in answer["text"] and "🔴" in answer["text"]
    task = task_row(engine, "2.1")
    assert (task.status, task.colour, task.colour_reason) == ("blocked", "red", "blocked")
    overdue = (await office.say("/overdue"))["text"]
    assert "🔴 2.1 加大行政保护力度｜区市场监管局｜受阻" in overdue
    assert "1.2" not in overdue and "2.2" not in overdue  # green tasks are not listed


async def test_extension_request_is_approved_by_the_office_button(
    frontend: TelegramFrontend, bound: BoundFactory, engine: Engine, server: FakeBotAPI
) -> None:
    wang = await bound(WANG, "amr")
    office = await bound(OFFICE, "amr", role="office")
    office_before = len(office.messages())
    answer = await wang.say("/extend 1.1 2026-12-31 配套资金尚未到位")
    assert "已提交任务1.1的延期申请：2024-12-31 → 2026-12-31" in answer["text"]
    assert task_row(engine, "1.1").status == "extension_requested"
    [notice] = (await server.wait_for_messages(OFFICE, office_before + 1))[office_before:]
    assert "延期申请" in notice["text"] and "配套资金尚未到位" in notice["text"] and "2026-12-31" in notice["text"]
    with Session(engine) as s:
        [ext] = s.exec(select(Extension)).all()
    assert buttons(notice) == [("同意", f"approve:e{ext.id}"), ("不同意", f"reject:e{ext.id}")]

    wang_before = len(wang.messages())
    decided = await office.press(notice, button_data(notice, "approve"))
    assert "已批准，新期限 2026-12-31" in decided[0]["text"]
    [told] = (await server.wait_for_messages(WANG, wang_before + 1))[wang_before:]
    assert "已批准，新期限 2026-12-31" in told["text"]
    task = task_row(engine, "1.1")
    assert (task.due_date, task.original_due_date) == (date(2026, 12, 31), date(2024, 12, 31))
    assert task.status == "in_progress"
    again = await office.press(notice, button_data(notice, "approve"))  # a second tap changes nothing
    assert "already approved" in again[0]["text"]
    with Session(engine) as s:
        assert len(s.exec(select(Event).where(Event.type == "extension.approved")).all()) == 1


async def test_whoami_and_help(frontend: TelegramFrontend, bound: BoundFactory) -> None:
    wang = await bound(WANG, "amr", name="王敏")
    assert (await wang.say("/whoami"))["text"].strip() == "王敏：区市场监管局（区知识产权局） 联络员"
    help_text = (await wang.say("/help"))["text"]
    for command in ("/tasks", "/report", "/done", "/blocked", "/extend", "/whoami"):
        assert command in help_text
    assert "/approve" not in help_text  # office commands are not offered to contacts
    office = await bound(OFFICE, "amr", role="office")
    assert "/approve" in (await office.say("/help"))["text"]


async def test_report_on_another_departments_task_is_refused(
    frontend: TelegramFrontend, bound: BoundFactory, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    answer = await wang.say("/report 1.2 新增高价值专利30件")
    assert answer["text"].strip() == "任务1.2不属于您的单位，无法为其报送。"
    assert _reports(engine) == []
    assert "未找到任务 9.9" in (await wang.say("/report 9.9 something"))["text"]


OFFICE_ONLY = "该命令仅限联席会议办公室使用。"
READERS_ONLY = "该命令仅限分管领导和联席会议办公室使用。"


async def test_contact_cannot_use_office_and_reader_commands(
    frontend: TelegramFrontend, bound: BoundFactory, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    for command, refusal in (
        ("/overdue", OFFICE_ONLY),
        ("/approve 1", OFFICE_ONLY),
        ("/reject e1", OFFICE_ONLY),
        ("/close 1.1", OFFICE_ONLY),
        ("/digest", OFFICE_ONLY),
        ("/summary", READERS_ONLY),
    ):
        assert (await wang.say(command))["text"].strip() == refusal, command
    assert task_row(engine, "1.1").status == "assigned"


async def test_office_cannot_report_progress(frontend: TelegramFrontend, bound: BoundFactory, engine: Engine) -> None:
    office = await bound(OFFICE, "amr", role="office")
    answer = await office.say("/report 2.1 本周开展检查2项")
    assert "只有牵头或配合单位的联络员可以报送进展" in answer["text"]
    assert _reports(engine) == []
