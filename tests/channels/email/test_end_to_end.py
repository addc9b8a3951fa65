"""The whole conversation by mail: a contact binds with "绑定 <code>", the real ReminderEngine mails the
weekly reminder through the e-mail channel, the contact answers above the quoted reminder, and the report is
stored from the reply's own text (the quote stripped). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.email import EmailFrontend
from coordbot.core.clock import FakeClock
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, ProgressReport, Task
from coordbot.runtime import Runtime, make_runtime
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.testing.fake_email import FakeMail

from ..conftest import at
from .conftest import WANG, mail_settings

HOLIDAYS = Path(__file__).resolve().parents[3] / "config" / "holidays"


@pytest.fixture
async def mail_runtime(
    mail: FakeMail, db_url: str, engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan
) -> AsyncIterator[tuple[Runtime, EmailFrontend]]:
    settings = mail_settings(
        mail.smtp,
        imap_port=mail.imap.port,
        database_url=db_url,
        holidays_dir=HOLIDAYS,
        tick_seconds=3600.0,
        handler_processes=0,
    )
    runtime = make_runtime(settings, engine, clock=clock)
    fe = EmailFrontend(runtime.settings, runtime.handle)
    runtime.channels["email"] = fe.channel
    await runtime.conversation_runner().start()
    await fe.start()
    try:
        yield runtime, fe
    finally:
        await fe.stop()
        await runtime.close()


async def test_bind_by_mail_get_a_reminder_mail_and_report_by_replying(
    mail_runtime: tuple[Runtime, EmailFrontend],
    mail: FakeMail,
    invite: Callable[..., str],
    clock: FakeClock,
    engine: Engine,
) -> None:
    runtime, _ = mail_runtime
    code = invite("amr", name="王敏")
    await mail.user_sends(WANG, f"绑定 {code}\n\n发自我的iPhone", subject="绑定")
    [welcome] = await mail.wait_for_mail(WANG, 1)
    assert "欢迎" in welcome["text"], welcome["text"]
    with Session(engine) as s:
        contact = s.exec(select(Contact).where(Contact.address == WANG)).one()
    assert contact.channel == "email"

    reminders = runtime.build_reminders()
    reminders.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    report = await reminders.tick()
    assert (report.sent, report.failed) == (2, 0), report.errors
    mails = await mail.wait_for_mail(WANG, 3)
    by_task = {m["subject"].removeprefix("【催办】").split()[0]: m for m in mails[1:]}
    reminder = by_task["任务2.1"]
    assert reminder["text"].startswith("任务2.1 加大行政保护力度\n请报送本周进展")
    assert "请回复数字选择：\n1. ✅ 已完成" in reminder["text"]
    with Session(engine) as s:
        occ = s.exec(
            select(ReminderOccurrence).where(ReminderOccurrence.message_ref == reminder["headers"]["Message-ID"])
        ).one()

    await mail.user_sends(WANG, "本周开展双随机检查2项，专项行动筹备中", reply_to=reminder, style="foxmail")
    [*_, answer] = await mail.wait_for_mail(WANG, 4)
    assert "已记录：任务2.1" in answer["text"], answer["text"]
    assert answer["headers"]["In-Reply-To"]
    with Session(engine) as s:
        [stored] = s.exec(select(ProgressReport)).all()
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
    assert stored.task_id == task.id and stored.reminder_id == occ.id
    assert stored.text == "本周开展双随机检查2项，专项行动筹备中"  # nothing of the quoted reminder
    assert "原始邮件" not in stored.text and "请报送" not in stored.text
