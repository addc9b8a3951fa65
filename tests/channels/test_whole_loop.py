"""The whole loop on the channels the plan's people really use: one contact on WeCom and one on e-mail, in one
runtime. Each binds with "绑定 CODE" on their own channel, the real ReminderEngine reminds both through their
adapters, both answer there, and the week's digest carries both reports. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.email import EmailFrontend
from coordbot.channels.wecom import WeComFrontend
from coordbot.core.clock import FakeClock
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Plan, ProgressReport, Task
from coordbot.reports.digest import build_digest
from coordbot.runtime import Runtime, make_runtime
from coordbot.testing.fake_email import FakeMail
from coordbot.testing.fake_wecom import FakeWeCom, RateLimits
from coordbot.web.app import make_web_app, start_site

from .conftest import HOLIDAYS, at, free_port
from .email.conftest import mail_settings, needs_dovecot
from .wecom.conftest import WANG, wecom_settings

ZHAO_MAIL = "zhao@sci.example.gov.cn"


@pytest.fixture
async def mail() -> AsyncIterator[FakeMail]:
    needs_dovecot()
    async with FakeMail() as server:
        yield server


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(rate_limits=RateLimits(enabled=False)) as server:
        server.add_user(WANG, "王敏")
        yield server


@pytest.fixture
async def runtime(
    wecom: FakeWeCom, mail: FakeMail, db_url: str, engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan
) -> AsyncIterator[Runtime]:
    """One runtime, both channels configured as `coordbot run` would have them (front ends from the registry)."""
    wecom_part = wecom_settings(wecom).__getattribute__
    mail_part = mail_settings(mail.smtp, imap_port=mail.imap.port).__getattribute__
    fields: dict[str, Any] = {
        name: wecom_part(name) for name in ("wecom_corp_id", "wecom_agent_id", "wecom_secret", "wecom_token")
    }
    fields |= {"wecom_aes_key": wecom_part("wecom_aes_key"), "wecom_base_url": wecom_part("wecom_base_url")}
    fields |= {
        name: mail_part(name)
        for name in (
            "smtp_host", "smtp_port", "smtp_username", "smtp_password", "smtp_security", "mail_from",
            "mail_reply_to", "imap_host", "imap_port", "imap_username", "imap_password", "imap_security",
            "imap_poll_seconds",
        )
    }  # fmt: skip
    settings = wecom_settings(wecom, database_url=db_url, holidays_dir=HOLIDAYS, **fields)
    rt = make_runtime(settings, engine, clock=clock)
    frontends = rt.frontends()  # the registry builds every configured two-way channel
    assert sorted(rt.channels) == ["email", "wecom"]
    await rt.conversation_runner().start()
    port = free_port()
    site = await start_site(make_web_app([r for f in frontends for r in f.webhook_routes()]), "127.0.0.1", port)
    for f in frontends:
        await f.start()
    await wecom.set_callback(f"http://127.0.0.1:{port}/wecom/callback")
    rt.frontend_by_name = {type(f).__name__: f for f in frontends}  # type: ignore[attr-defined]
    try:
        yield rt
    finally:
        for f in frontends:
            await f.stop()
        await site.cleanup()
        await rt.close()


async def test_a_wecom_contact_and_an_email_contact_through_reminder_reply_and_digest(
    runtime: Runtime,
    wecom: FakeWeCom,
    mail: FakeMail,
    invite: Callable[..., str],
    clock: FakeClock,
    engine: Engine,
) -> None:
    fronts: dict[str, Any] = runtime.frontend_by_name  # type: ignore[attr-defined]
    wecom_front: WeComFrontend = fronts["WeComFrontend"]
    assert isinstance(fronts["EmailFrontend"], EmailFrontend)

    # Binding, each on their own channel.
    await wecom.user_sends(WANG, f"绑定 {invite('amr', name='王敏')}")
    await wecom_front.drain()
    [welcome] = wecom.sent_to(WANG)
    assert "欢迎" in welcome["text"]
    await mail.user_sends(ZHAO_MAIL, f"绑定 {invite('sci', name='赵磊')}", subject="绑定")
    [mail_welcome] = await mail.wait_for_mail(ZHAO_MAIL, 1)
    assert "欢迎" in mail_welcome["text"]
    with Session(engine) as s:
        bound = {c.name: (c.channel, c.address) for c in s.exec(select(Contact))}
    assert bound["王敏"] == ("wecom", WANG) and bound["赵磊"] == ("email", ZHAO_MAIL)

    # The real engine reminds both, each on their channel.
    reminders = runtime.build_reminders()
    reminders.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    report = await reminders.tick()
    assert report.failed == 0 and report.sent >= 3, report
    wecom_reminders = [m for m in wecom.sent_to(WANG) if m["text"].startswith("任务2.1")]
    mail_reminders = [m for m in await mail.wait_for_mail(ZHAO_MAIL, 2) if "任务1.2" in m["subject"]]
    assert wecom_reminders and mail_reminders

    # Both answer where they were asked.
    await wecom.user_sends(WANG, "任务2.1 本周开展双随机检查2项")
    await wecom_front.drain()
    assert "已记录：任务2.1" in wecom.sent_to(WANG)[-1]["text"]
    await mail.user_sends(ZHAO_MAIL, "1.2 已完成季度统计，进度60%", reply_to=mail_reminders[0], style="outlook_zh")
    [*_, mail_answer] = await mail.wait_for_mail(ZHAO_MAIL, 3)
    assert "已记录：任务1.2" in mail_answer["text"], mail_answer["text"]

    # The week's digest carries both reports.
    clock.set(at(2026, 3, 6, 16, 0))
    with Session(engine) as s:
        reports = {s.get(Task, r.task_id).code: r for r in s.exec(select(ProgressReport))}  # type: ignore[union-attr]
        assert set(reports) == {"2.1", "1.2"} and reports["1.2"].percent == 60
        plan = s.exec(select(Plan)).one()
        digest = build_digest(session=s, plan=plan, now=clock.now(), calendar=runtime.calendar).render("md")
    # Both departments reported this week, one on each channel; the WeCom report counted toward the quota.
    assert re.search(r"\| 区市场监管局 \| 3 \| 0 \| 2 \| 1 \| 50% \| 1 \|", digest), digest
    assert re.search(r"\| 区科委 \| 1 \| 1 \| 1 \| 1 \| 100% \| 1 \|", digest), digest
    assert re.search(r"\| 2\.1 \| 专项行动和双随机检查 \| 2 \| 10项 \|", digest), digest
