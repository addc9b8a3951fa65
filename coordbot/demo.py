"""``coordbot demo``: the whole loop on a fresh machine with no account and no token.

It starts the project's fake Telegram Bot API server (real HTTP; real python-telegram-bot on the bot's side,
Telegram's rate limits enforced), imports the shipped plan into a fresh SQLite database, binds simulated
contacts with invite links, and plays a few weeks in accelerated time: reminders go out, contacts reply in
plain Chinese and press buttons, a blocker asks another department for help, an extension is approved,
silence escalates. Everything the bot sends and receives is printed as it happens.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlmodel import select

from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.core.config import Secret, Settings
from coordbot.core.db import make_engine, session_scope, upgrade
from coordbot.plan import service
from coordbot.plan.contacts import create_invite
from coordbot.plan.loader import load_plan_file
from coordbot.runtime import Runtime, make_runtime
from coordbot.testing.fake_telegram import FakeBotAPI

TOKEN = "100000001:DEMO-TOKEN-not-a-secret"
TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class Person:
    user_id: int
    name: str
    department: str
    role: str = "contact"


CAST = [
    Person(7001, "王敏", "amr"),
    Person(7002, "赵强", "amr", "leader"),
    Person(7003, "李娜", "finance_office"),
    Person(7004, "刘洋", "finance"),
    Person(7005, "陈静", "publicity"),
    Person(7009, "张主任", "amr", "office"),
]


def _plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@dataclass
class Demo:
    server: FakeBotAPI
    runtime: Runtime
    clock: FakeClock
    frontend: TelegramFrontend
    people: dict[int, Person] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)  # messages already printed per chat

    def when(self) -> str:
        return self.clock.now().astimezone(TZ).strftime("%m-%d %a %H:%M")

    def show_new(self) -> list[dict[str, Any]]:
        """Print what the bot sent since last time, per chat; return those messages."""
        new: list[dict[str, Any]] = []
        for chat, person in self.people.items():
            msgs = self.server.sent_messages(chat)
            for msg in msgs[self.seen.get(chat, 0) :]:
                text = _plain(msg.get("text", "")).strip()
                buttons = [b["text"] for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
                first, *rest = text.splitlines() or [""]
                click.echo(f"  🤖 → {person.name}（{person.department}）: {first}")
                for line in rest[:8]:
                    click.echo(f"  {'':6}{line}")
                if len(rest) > 8:
                    click.echo(f"  {'':6}…")
                if buttons:
                    click.echo(f"  {'':6}[{'] ['.join(buttons)}]")
                new.append(msg)
            self.seen[chat] = len(msgs)
        return new

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every queued update was fetched and the bot has stopped sending."""
        await self.server.wait_until_consumed(timeout=timeout)
        last, quiet = -1, 0
        while quiet < 3:
            await asyncio.sleep(0.2)
            count = len(self.server.sent_messages())
            quiet = quiet + 1 if count == last else 0
            last = count

    async def say(self, person: Person, text: str, *, reply_to: dict[str, Any] | None = None) -> None:
        quoted = f"（回复：{_plain(reply_to['text']).splitlines()[0]}）" if reply_to else ""
        click.echo(f"  👤 {person.name}: {text}{quoted}")
        self.server.user_sends(person.user_id, text, reply_to_message_id=reply_to["message_id"] if reply_to else None)
        await self.settle()
        self.show_new()

    async def press(self, person: Person, message: dict[str, Any], label: str) -> None:
        for row in message["reply_markup"]["inline_keyboard"]:
            for button in row:
                if button["text"].endswith(label):
                    click.echo(f"  👆 {person.name} 点击 [{button['text']}]")
                    self.server.user_presses(person.user_id, message["message_id"], button["callback_data"])
                    await self.settle()
                    self.show_new()
                    return
        raise LookupError(f"no button {label!r}")

    async def tick_at(self, when: datetime, title: str) -> list[dict[str, Any]]:
        self.clock.set(when)
        await self.runtime.housekeeping()
        await self.runtime.tick()
        await self.settle()
        if any(len(self.server.sent_messages(chat)) > n for chat, n in self.seen.items()):
            click.echo(f"\n[{self.when()}] {title}")
        return self.show_new()

    def reminder(self, messages: list[dict[str, Any]], person: Person, code: str) -> dict[str, Any]:
        for m in messages:
            text = m.get("text", "")
            if m["chat"]["id"] == person.user_id and (f"任务{code} " in text or f" {code} " in text):
                return m
        raise LookupError(f"no reminder for {code} to {person.name}")


async def run_demo(*, plan_file: Path, workdir: Path, out_dir: Path) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db_url = f"sqlite:///{workdir / 'demo.db'}"
    async with FakeBotAPI(token=TOKEN, bot_username="coordbot_demo_bot", bot_first_name="协调机器人") as server:
        settings = Settings(
            database_url=db_url,
            telegram_token=Secret(TOKEN),
            telegram_base_url=server.base_url,
            telegram_mode="polling",
            output_dir=out_dir,
        )
        engine = make_engine(db_url)
        upgrade(engine)
        clock = FakeClock(datetime(2026, 3, 2, 8, 30, tzinfo=TZ))
        runtime = make_runtime(settings, engine, clock=clock)
        loaded = load_plan_file(plan_file)
        with session_scope(engine) as s:
            report = service.import_plan(session=s, loaded=loaded, actor="demo", now=clock.now())
        click.echo(f"导入工作方案：{loaded.data.plan.title}")
        click.echo(
            f"  {report.counts['tasks']} 项任务，{report.counts['targets']} 项指标，"
            f"{report.counts['departments']} 个部门（数据库：{workdir / 'demo.db'}）"
        )

        runtime.build_reminders()
        frontend = TelegramFrontend(runtime.settings, runtime.handle)
        runtime.channels["telegram"] = frontend.channel
        await runtime.conversation_runner().start()
        await frontend.start()
        demo = Demo(server, runtime, clock, frontend)
        try:
            await _play(demo, engine)
        finally:
            await frontend.stop()
            await runtime.close()
            engine.dispose()


async def _play(demo: Demo, engine) -> None:  # type: ignore[no-untyped-def]
    server, clock = demo.server, demo.clock
    click.echo("\n[绑定] 办公室为各部门生成邀请链接，联络员在 Telegram 中打开：")
    for p in CAST:
        server.add_user(p.user_id, p.name, language_code="zh-hans")
        demo.people[p.user_id] = p
        with session_scope(engine) as s:
            invite = create_invite(
                session=s, department_code=p.department, name=p.name, role=p.role, created_by="demo", now=clock.now()
            )
        click.echo(f"  🔗 {p.name}（{p.department}，{p.role}）: {invite.link('coordbot_demo_bot')[:48]}…")
        server.user_sends(p.user_id, f"/start {invite.code}")
    await demo.settle()
    for chat, person in demo.people.items():  # only the first line of each welcome
        msgs = server.sent_messages(chat)
        click.echo(f"  🤖 → {person.name}: {_plain(msgs[0]['text']).splitlines()[0]}" if msgs else "")
        demo.seen[chat] = len(msgs)
    stranger = 7999
    server.add_user(stranger, "路人")
    demo.people[stranger] = Person(stranger, "未绑定用户", "-")
    click.echo("  👤 未绑定用户: /tasks")
    server.user_sends(stranger, "/tasks")
    await demo.settle()
    demo.show_new()

    wang, zhao, li, _liu, chen, office = CAST
    monday = datetime(2026, 3, 2, 9, 30, tzinfo=TZ)
    sent = await demo.tick_at(
        monday, "周一 09:30，时钟触发：向各牵头单位联络员发送本周进展提醒（Telegram 限制每个会话每秒 1 条，逐条发送）"
    )

    click.echo(f"\n[{demo.when()}] 联络员直接回复提醒：")
    await demo.say(wang, "2.1 本周开展双随机检查2项，专项行动筹备中", reply_to=demo.reminder(sent, wang, "2.1"))
    await demo.press(li, demo.reminder(sent, li, "3.3"), "正常推进")
    await demo.say(li, "需区财政局配合落实贴息资金，目前受阻", reply_to=demo.reminder(sent, li, "3.3"))
    await demo.say(
        chen, "宣传周方案已完成初稿，进度约40%，预计4月10日前定稿", reply_to=demo.reminder(sent, chen, "5.3")
    )
    await demo.say(wang, "/tasks")

    click.echo(f"\n[{demo.when()}] 延期申请与审批：")
    await demo.say(wang, "/extend 4.2 2027-03-31 保护中心场地改造招标延后")
    notice = server.sent_messages(office.user_id)[-1]
    await demo.press(office, notice, "同意")

    clock.set(monday + timedelta(hours=2))
    await demo.say(office, "/overdue")

    replies = [(wang, "2.1 本周完成专项检查3项"), (li, "3.3 贴息资金已落实，恢复正常推进")]
    for day in range(1, 15):
        when = monday + timedelta(days=day)
        if not demo.runtime.calendar.is_workday(when.date()):
            continue
        sent = await demo.tick_at(when, "时钟" + ("：周一进展提醒" if when.weekday() == 0 else "：到期提醒与督办"))
        if when.weekday() == 0:
            for person, text in replies:
                code = text.split()[0]
                try:
                    await demo.say(person, text, reply_to=demo.reminder(sent, person, code))
                except LookupError:
                    continue
    friday = monday + timedelta(days=11, hours=6, minutes=30)  # Friday of week two, 16:00
    clock.set(friday)
    click.echo(f"\n[{demo.when()}] 周五 16:00：周报发联席会议办公室，领导摘要发分管领导")
    await asyncio.to_thread(demo.runtime.weekly_digest)
    await demo.runtime.tick()
    await demo.settle()
    demo.show_new()
    await demo.say(zhao, "/summary")
    _summary(engine)
    _write_reports(demo, engine)


def _write_reports(demo: Demo, engine) -> None:  # type: ignore[no-untyped-def]
    from coordbot.reports.briefing import Format as BriefingFormat
    from coordbot.reports.briefing import write_briefing
    from coordbot.reports.digest import Format as DigestFormat
    from coordbot.reports.digest import write_digest

    out = demo.runtime.settings.output_dir
    now = demo.clock.now()
    meeting = (now + timedelta(days=3)).astimezone(TZ).date()
    paths = []
    with session_scope(engine) as s:
        plan = service.get_plan(session=s)
        assert plan is not None
        digests: tuple[tuple[DigestFormat, str], ...] = (("md", "weekly-digest.md"), ("html", "weekly-digest.html"))
        for digest_fmt, name in digests:
            write_digest(session=s, plan=plan, now=now, fmt=digest_fmt, out=out / name)
            paths.append(out / name)
        briefings: tuple[BriefingFormat, ...] = ("docx", "html")
        for briefing_fmt in briefings:
            path = out / f"briefing-{meeting.isoformat()}.{briefing_fmt}"
            write_briefing(
                session=s, plan=plan, meeting_date=meeting, fmt=briefing_fmt, out=path, now=now, since=date(2026, 3, 1)
            )
            paths.append(path)
    click.echo("\n周报与联席会议简报已生成：")
    for p in paths:
        click.echo(f"  {p}")


def _summary(engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func

    from coordbot.core.events import Event, EventType

    with session_scope(engine) as s:
        counts = dict(s.exec(select(Event.type, func.count()).group_by(Event.type)).all())
    click.echo("\n两周小结（事件日志）：")
    for kind, label in (
        (EventType.REMINDER_SENT, "提醒已发送"),
        (EventType.PROGRESS_REPORTED, "进展报送"),
        (EventType.OBSERVATION_RECORDED, "指标数据"),
        (EventType.CROSSREQUEST_OPENED, "跨部门协调请求"),
        (EventType.TASK_ESCALATED, "督办"),
        (EventType.EXTENSION_APPROVED, "延期获批"),
        (EventType.TASK_COLOUR_CHANGED, "红黄绿变化"),
    ):
        click.echo(f"  {label}：{counts.get(kind, 0)}")
