"""``coordbot demo``: the whole loop on a fresh machine with no account and no token.

It starts the project's fake Telegram Bot API server (real HTTP; real python-telegram-bot on the bot's side,
Telegram's rate limits enforced) — or, with ``--channel``, another platform's fake server and coordbot's
front end for it (the Platform classes below) — imports the shipped plan into a fresh SQLite database,
binds simulated contacts with invites, and plays a few weeks in accelerated time: reminders go out, contacts reply in
plain Chinese and press buttons, a blocker asks another department for help, an extension is approved,
silence escalates. Everything the bot sends and receives is printed as it happens.
"""

from __future__ import annotations

import abc
import asyncio
import html
import re
import shutil
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import click
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from coordbot.channels.base import Frontend
from coordbot.core.clock import FakeClock
from coordbot.core.config import Secret, Settings
from coordbot.core.db import make_engine, session_scope, upgrade
from coordbot.plan import service
from coordbot.plan.contacts import create_invite
from coordbot.plan.loader import load_plan_file
from coordbot.runtime import Runtime, make_runtime
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.web.app import make_web_app, start_site

TZ = ZoneInfo("Asia/Shanghai")
_TASK_CODE = re.compile(r"任务([0-9A-Z]+\.\d+) ")

# ---- the platforms ---------------------------------------------------------------------------------------
# Each a fake server of that platform (real HTTP, real SMTP/IMAP for e-mail) and coordbot's own front end for
# it, behind one small Platform interface. The script below talks to people only through it: add a person,
# let them ``say`` something (optionally answering a message), ``press`` a button by its label (on platforms
# without buttons: reply with the number of the line that has the label), read what the bot ``sent_to`` them,
# normalised to ``{"text", "buttons", "raw", …}``, and ``settle`` until everything was handled and the bot is
# quiet. Every platform but Telegram is wired the way ``coordbot run`` does it: front ends from the channel
# registry (``runtime.frontends()``), their webhook routes on coordbot's web app.

Message = dict[str, Any]
"""A message the bot sent, normalised: ``text`` (plain), ``buttons`` (labels), ``numbered`` (the buttons are
numbered lines of the text, answered with the number), ``address``, ``index`` (its place among what that
address received) and ``raw`` (the platform's own record)."""


_NUMBERED = re.compile(r"^\s*(\d{1,2})[.．、]\s*(.+?)\s*$")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def plain_html(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def plain_markdown(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = re.sub(r"^\s{0,3}#{1,6}\s+", "", text, flags=re.M)
    text = re.sub(r"^\s{0,3}>\s?", "", text, flags=re.M)
    text = text.replace("**", "").replace("`", "")
    return "\n".join(line.rstrip() for line in text.splitlines())  # markdown's "  " line breaks


def numbered_options(text: str) -> list[tuple[str, str]]:
    """The ("2", label) pairs of the numbered option lines at the end of ``text`` (NumberedChoices' style)."""
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = _NUMBERED.match(line)
        if m:
            found.append((m.group(1), m.group(2)))
        elif found and line.strip():
            found = []  # options are the last block: a numbered list in the body is not one
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Platform(Protocol):
    name: str  # the channel's name (contacts' channel, the registry's adapter)
    label: str  # what the script calls it: "Telegram", "企业微信", …
    pace_note: str  # said when the Monday reminders go out: how the platform paces them
    quotes: bool  # a person can answer a given message (Telegram's reply, a mail's In-Reply-To)

    async def start(self) -> dict[str, Any]:
        """Start the fake server; the settings that point coordbot at it."""
        ...

    async def attach(self, runtime: Runtime) -> None:
        """Start coordbot's front end for this platform on ``runtime`` (conversation runner started)."""
        ...

    async def stop(self) -> None:
        """Stop coordbot's front end, then the fake server."""
        ...

    def add_person(self, address: str, name: str, *, stranger: bool = False) -> None: ...

    def bind(self, invite: Any) -> tuple[str, str]:
        """What the office hands out for ``invite`` (shown), and what the person sends to bind."""
        ...

    async def say(self, address: str, text: str, *, reply_to: Message | None = None) -> None: ...

    async def press(self, address: str, message: Message, label: str) -> str | None:
        """Press the button ``label`` of ``message``; the text sent instead (numbered options), else None."""
        ...

    def sent_to(self, address: str) -> list[Message]: ...

    def sent_count(self) -> int:
        """Everything the bot sent so far, to anyone (for waiting until it is quiet)."""
        ...

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until everything said so far was handled and the bot has stopped sending."""
        ...


async def _quiet(count: Callable[[], int], *, rounds: int = 3, pause: float = 0.2) -> None:
    last, quiet = -1, 0
    while quiet < rounds:
        await asyncio.sleep(pause)
        now = count()
        quiet = quiet + 1 if now == last else 0
        last = now


def _normalise(address: str, index: int, text: str, buttons: list[str], raw: Any, *, numbered: bool) -> Message:
    return {"address": address, "index": index, "text": text, "buttons": buttons, "numbered": numbered, "raw": raw}


def _with_numbers(address: str, index: int, text: str, raw: Any) -> Message:
    options = numbered_options(text)
    return _normalise(address, index, text, [label for _, label in options], raw, numbered=bool(options))


def _number_for(message: Message, label: str) -> str:
    for number, option in numbered_options(message["text"]):
        if option == label:
            return number
    raise LookupError(f"no numbered option {label!r}")


# ---- Telegram ------------------------------------------------------------------------------------------


class TelegramPlatform:
    """The fake Telegram Bot API (rate limits enforced) and coordbot's polling front end."""

    name = "telegram"
    label = "Telegram"
    pace_note = "Telegram 限制每个会话每秒 1 条，逐条发送"
    quotes = True
    token = "100000001:DEMO-TOKEN-not-a-secret"
    bot_username = "coordbot_demo_bot"

    def __init__(self) -> None:
        from coordbot.testing.fake_telegram import FakeBotAPI

        self.server = FakeBotAPI(token=self.token, bot_username=self.bot_username, bot_first_name="协调机器人")
        self.frontend: Any = None

    async def start(self) -> dict[str, Any]:
        await self.server.__aenter__()
        return {
            "telegram_token": Secret(self.token),
            "telegram_base_url": self.server.base_url,
            "telegram_mode": "polling",
        }

    async def attach(self, runtime: Runtime) -> None:
        from coordbot.channels.telegram import TelegramFrontend

        self.frontend = TelegramFrontend(runtime.settings, runtime.handle)
        runtime.channels["telegram"] = self.frontend.channel
        await runtime.conversation_runner().start()
        await self.frontend.start()

    async def stop(self) -> None:
        try:
            if self.frontend is not None:
                await self.frontend.stop()
        finally:
            await self.server.__aexit__(None, None, None)

    def add_person(self, address: str, name: str, *, stranger: bool = False) -> None:
        if stranger:
            self.server.add_user(int(address), name)
        else:
            self.server.add_user(int(address), name, language_code="zh-hans")

    def bind(self, invite: Any) -> tuple[str, str]:
        return f"{invite.link(self.bot_username)[:48]}…", f"/start {invite.code}"

    async def say(self, address: str, text: str, *, reply_to: Message | None = None) -> None:
        quoted = reply_to["raw"]["message_id"] if reply_to else None
        self.server.user_sends(int(address), text, reply_to_message_id=quoted)

    async def press(self, address: str, message: Message, label: str) -> str | None:
        for row in message["raw"]["reply_markup"]["inline_keyboard"]:
            for button in row:
                if button["text"] == label:
                    self.server.user_presses(int(address), message["raw"]["message_id"], button["callback_data"])
                    return None
        raise LookupError(f"no button {label!r}")

    def sent_to(self, address: str) -> list[Message]:
        out = []
        for i, msg in enumerate(self.server.sent_messages(int(address))):
            markup = msg.get("reply_markup") or {}
            buttons = [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
            out.append(_normalise(address, i, plain_html(msg.get("text", "")), buttons, msg, numbered=False))
        return out

    def sent_count(self) -> int:
        return len(self.server.sent_messages())

    async def settle(self, timeout: float = 30.0) -> None:
        await self.server.wait_until_consumed(timeout=timeout)
        await _quiet(self.sent_count)


# ---- the platforms coordbot serves webhooks for (and e-mail) ------------------------------------------------


class _Served(abc.ABC):
    """Front ends from the registry, their webhook routes on coordbot's web app on a free local port."""

    name = ""
    quotes = False
    server: Any  # the platform's fake server

    def add_person(self, address: str, name: str, *, stranger: bool = False) -> None:
        self.addresses.add(address)
        self.server.add_user(address, name)

    async def stop(self) -> None:
        try:
            await self.stop_frontends()
        finally:
            await self.server.stop()

    async def say(self, address: str, text: str, *, reply_to: Message | None = None) -> None:
        await self.server.user_sends(address, text)  # an app chat has no replies to a message: the text alone

    def __init__(self) -> None:
        self.frontends: list[Frontend] = []
        self.site: web.AppRunner | None = None
        self.port = 0
        self.addresses: set[str] = set()

    async def attach(self, runtime: Runtime) -> None:
        self.frontends = runtime.frontends()
        names = sorted(runtime.channels)
        if names != [self.name]:
            raise click.ClickException(f"demo: expected only the {self.name} channel configured, got {names}")
        await runtime.conversation_runner().start()
        self.port = free_port()
        routes = [r for f in self.frontends for r in f.webhook_routes()]
        self.site = await start_site(make_web_app(routes), "127.0.0.1", self.port)
        for f in self.frontends:
            await f.start()
        await self.serving(f"http://127.0.0.1:{self.port}")

    async def serving(self, base_url: str) -> None:  # noqa: B027 - a hook: most fakes need not be told
        """coordbot's web app listens at ``base_url``: tell the fake where its callbacks go."""

    async def stop_frontends(self) -> None:
        try:
            for f in self.frontends:
                await f.stop()
        finally:
            if self.site is not None:
                await self.site.cleanup()

    async def drain(self) -> None:
        """Wait until each front end handled what it accepted (``drain()`` where the adapter offers one)."""
        for f in self.frontends:
            drain = getattr(f, "drain", None)
            if drain is not None:
                await drain()

    def sent_count(self) -> int:
        return sum(len(self.sent_to(a)) for a in self.addresses)

    @abc.abstractmethod
    def sent_to(self, address: str) -> list[Message]:
        """What the bot sent this address, oldest first, normalised."""

    async def settle(self, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            await self.drain()
            await _quiet(self.sent_count)
            await self.drain()

    def bind(self, invite: Any) -> tuple[str, str]:
        return f"发送“绑定 {invite.code}”", f"绑定 {invite.code}"

    def _with_buttons(self, address: str, message: Message) -> Message:
        """``message``, or the first message after it with buttons (a long text goes before its card)."""
        if message["buttons"]:
            return message
        for later in self.sent_to(address)[message["index"] + 1 :]:
            if later["buttons"]:
                return later
        raise LookupError("no buttons on or after this message")


class WeComPlatform(_Served):
    """The fake WeCom (企业微信) API with its callback, WeCom's rate limits on; coordbot's callback endpoint."""

    name = "wecom"
    label = "企业微信"
    pace_note = "企业微信限制每人每分钟 30 条，逐条发送"

    def __init__(self) -> None:
        super().__init__()
        from coordbot.testing.fake_wecom import FakeWeCom

        self.server = FakeWeCom(
            corp_id=self.corp_id, agent_id=self.agent_id, secret=self.secret, token=self.token, aes_key=self.aes_key
        )

    # A made-up corp and app: the fake checks them as WeCom would (these are no one's credentials).
    corp_id = "ww0000000000demo01"
    agent_id = 1000002
    secret = "demo-app-secret-not-a-secret"
    token = "DemoCallbackToken0000000000000000"
    aes_key = "RGVtb0VuY29kaW5nQUVTS2V5Tm90QVNlY3JldDAwMDA"

    async def start(self) -> dict[str, Any]:
        await self.server.start()
        return {
            "wecom_corp_id": self.corp_id,
            "wecom_agent_id": str(self.agent_id),
            "wecom_secret": Secret(self.secret),
            "wecom_token": Secret(self.token),
            "wecom_aes_key": Secret(self.aes_key),
            "wecom_base_url": self.server.base_url,
        }

    async def serving(self, base_url: str) -> None:
        await self.server.set_callback(f"{base_url}/wecom/callback")

    async def press(self, address: str, message: Message, label: str) -> str | None:
        message = self._with_buttons(address, message)
        if message["numbered"]:
            number = _number_for(message, label)
            await self.server.user_sends(address, number)
            return number
        await self.server.user_presses(address, message["raw"], message["buttons"].index(label))
        return None

    def sent_to(self, address: str) -> list[Message]:
        out = []
        for i, msg in enumerate(self.server.sent_to(address)):
            card = msg.get("template_card")
            if isinstance(card, dict):
                text = str(msg.get("text", ""))
                buttons = [str(b["text"]) for b in card.get("button_list", [])]
                out.append(_normalise(address, i, text, buttons, msg, numbered=False))
            else:
                text = plain_markdown(str(msg.get("text", ""))) if msg.get("msgtype") == "markdown" else msg["text"]
                out.append(_with_numbers(address, i, str(text), msg))
        return out


class DingTalkPlatform(_Served):
    """The fake DingTalk open platform (robot messages, HTTP callback); options are numbered lines."""

    name = "dingtalk"
    label = "钉钉"
    pace_note = "钉钉机器人按 QPS 限制逐条发送"

    def __init__(self) -> None:
        super().__init__()
        from coordbot.testing.fake_dingtalk import FakeDingTalk

        self.server = FakeDingTalk("dingdemoappkey", "demo-app-secret-not-a-secret")

    async def start(self) -> dict[str, Any]:
        await self.server.start()
        return {
            "dingtalk_app_key": self.server.app_key,
            "dingtalk_app_secret": Secret(self.server.app_secret),
            "dingtalk_base_url": self.server.url,
            "dingtalk_oapi_url": self.server.url,
        }

    async def serving(self, base_url: str) -> None:
        from coordbot.channels.dingtalk import CALLBACK_PATH

        self.server.callback_url = f"{base_url}{CALLBACK_PATH}"

    async def press(self, address: str, message: Message, label: str) -> str | None:
        message = self._with_buttons(address, message)
        number = _number_for(message, label)
        await self.server.user_sends(address, number)
        return number

    def sent_to(self, address: str) -> list[Message]:
        return [
            _with_numbers(address, i, plain_markdown(str(msg.get("text", ""))), msg)
            for i, msg in enumerate(self.server.sent_to(address))
        ]


class EmailPlatform(_Served):
    """An SMTP sink for coordbot's mail and a real Dovecot IMAP mailbox for the replies; options are numbered
    lines, answered by replying with the number."""

    name = "email"
    label = "电子邮件"
    pace_note = "邮件逐封发送"
    quotes = True
    office = "office@example.gov.cn"

    def __init__(self) -> None:
        super().__init__()
        from coordbot.testing.fake_email import FakeMail, dovecot_binary

        if dovecot_binary() is None:
            raise click.ClickException(
                "coordbot demo --channel email needs Dovecot for the IMAP mailbox: apt-get install dovecot-imapd"
            )
        self.server = FakeMail(bot_address=self.office, smtp_user=self.office)
        self._stack = AsyncExitStack()

    async def start(self) -> dict[str, Any]:
        await self._stack.enter_async_context(self.server)
        return {
            "smtp_host": self.server.smtp.host,
            "smtp_port": self.server.smtp.port,
            "smtp_username": self.office,
            "smtp_password": Secret(self.server.smtp_password),
            "smtp_security": "none",
            "mail_from": f"联席会议办公室 <{self.office}>",
            "mail_reply_to": self.office,
            "imap_host": "127.0.0.1",
            "imap_port": self.server.imap.port,
            "imap_username": self.office,
            "imap_password": Secret(self.server.imap_password),
            "imap_security": "none",
            "imap_poll_seconds": 0.2,
        }

    async def stop(self) -> None:
        try:
            await self.stop_frontends()
        finally:
            await self._stack.aclose()

    def bind(self, invite: Any) -> tuple[str, str]:
        return f"来信“绑定 {invite.code}”", f"绑定 {invite.code}"

    async def say(self, address: str, text: str, *, reply_to: Message | None = None) -> None:
        if reply_to is not None:
            await self.server.user_sends(address, text, reply_to=reply_to["raw"], style="foxmail")
        else:
            await self.server.user_sends(address, text, subject=text[:30])

    async def press(self, address: str, message: Message, label: str) -> str | None:
        message = self._with_buttons(address, message)
        number = _number_for(message, label)
        await self.server.user_sends(address, number, reply_to=message["raw"], style="foxmail")
        return number

    def sent_to(self, address: str) -> list[Message]:
        return [
            _with_numbers(address, i, str(mail.get("text", "")).strip(), mail)
            for i, mail in enumerate(self.server.sent_to(address))
        ]

    async def settle(self, timeout: float = 30.0) -> None:
        """Until coordbot has read (flagged seen) every mail in its mailbox, then quiet SMTP."""
        async with asyncio.timeout(timeout):
            while True:
                flags = await self.server.mailbox.flags()
                if all("\\Seen" in f for f in flags.values()):
                    break
                await asyncio.sleep(0.1)
            await _quiet(self.sent_count)


PLATFORMS: dict[str, Callable[[], Platform]] = {
    "telegram": TelegramPlatform,
    "wecom": WeComPlatform,
    "dingtalk": DingTalkPlatform,
    "email": EmailPlatform,
}


@dataclass
class Person:
    user_id: int  # Telegram
    name: str
    department: str
    role: str = "contact"
    wecom: str = ""  # WeCom userid
    email: str = ""
    dingtalk: str = ""  # DingTalk staffId

    def address(self, channel: str) -> str:
        if channel == "telegram":
            return str(self.user_id)
        return str(getattr(self, channel))


CAST = [
    Person(7001, "王敏", "amr", wecom="WangMin", email="wang@amr.example.gov.cn", dingtalk="wangmin01"),
    Person(7002, "赵强", "amr", "leader", wecom="ZhaoQiang", email="zhao@amr.example.gov.cn", dingtalk="zhaoqiang02"),
    Person(7003, "李娜", "finance_office", wecom="LiNa", email="li@jrb.example.gov.cn", dingtalk="lina03"),
    Person(7004, "刘洋", "finance", wecom="LiuYang", email="liu@czj.example.gov.cn", dingtalk="liuyang04"),
    Person(7005, "陈静", "publicity", wecom="ChenJing", email="chen@xcb.example.gov.cn", dingtalk="chenjing05"),
    Person(7009, "张主任", "amr", "office", wecom="ZhangZhuren", email="zhang@amr.example.gov.cn", dingtalk="zhang09"),
]
STRANGER = Person(7999, "未绑定用户", "-", wecom="LuRen", email="luren@example.com", dingtalk="luren99")


@dataclass
class Demo:
    platform: Platform
    runtime: Runtime
    clock: FakeClock
    people: dict[str, Person] = field(default_factory=dict)  # by their address on the platform
    seen: dict[str, int] = field(default_factory=dict)  # messages already printed per address

    def when(self) -> str:
        return self.clock.now().astimezone(TZ).strftime("%m-%d %a %H:%M")

    def address(self, person: Person) -> str:
        return person.address(self.platform.name)

    def show_new(self) -> list[Message]:
        """Print what the bot sent since last time, per person; return those messages."""
        new: list[Message] = []
        for address, person in self.people.items():
            msgs = self.platform.sent_to(address)
            for msg in msgs[self.seen.get(address, 0) :]:
                text = msg["text"].strip()
                first, *rest = text.splitlines() or [""]
                click.echo(f"  🤖 → {person.name}（{person.department}）: {first}")
                for line in rest[:8]:
                    click.echo(f"  {'':6}{line}")
                if len(rest) > 8:
                    click.echo(f"  {'':6}…")
                if msg["buttons"] and not msg["numbered"]:
                    click.echo(f"  {'':6}[{'] ['.join(msg['buttons'])}]")
                new.append(msg)
            self.seen[address] = len(msgs)
        return new

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until everything said was handled and the bot has stopped sending."""
        await self.platform.settle(timeout)

    async def say(self, person: Person, text: str, *, reply_to: Message | None = None) -> None:
        quoted = f"（回复：{reply_to['text'].splitlines()[0]}）" if reply_to else ""
        click.echo(f"  👤 {person.name}: {text}{quoted}")
        await self.platform.say(self.address(person), text, reply_to=reply_to)
        await self.settle()
        new = self.show_new()
        code = _TASK_CODE.search(reply_to["text"]) if reply_to and not self.platform.quotes else None
        if code:  # the platform has no replies to a message: the bot may ask which task this was about
            for msg in new:
                label = next((b for b in msg["buttons"] if b.startswith(f"{code.group(1)} ")), "")
                if msg["address"] == self.address(person) and label:
                    await self.press(person, msg, label)
                    break

    async def press(self, person: Person, message: Message, label: str) -> None:
        address = self.address(person)
        candidates = [message, *self.platform.sent_to(address)[message["index"] + 1 :]]
        for msg in candidates:  # a long text may go before the card with its buttons
            for button in msg["buttons"]:
                if button.endswith(label):
                    number = await self.platform.press(address, msg, button)
                    if number is None:
                        click.echo(f"  👆 {person.name} 点击 [{button}]")
                    else:
                        click.echo(f"  👤 {person.name}: {number}（选择“{button}”）")
                    await self.settle()
                    self.show_new()
                    return
        raise LookupError(f"no button {label!r}")

    async def tick_at(self, when: datetime, title: str) -> list[Message]:
        self.clock.set(when)
        await self.runtime.housekeeping()
        await self.runtime.tick()
        await self.settle()
        if any(len(self.platform.sent_to(address)) > n for address, n in self.seen.items()):
            click.echo(f"\n[{self.when()}] {title}")
        return self.show_new()

    def reminder(self, messages: list[Message], person: Person, code: str) -> Message:
        address = self.address(person)
        for m in messages:
            text = m["text"]
            if m["address"] == address and (f"任务{code} " in text or f" {code} " in text):
                return m
        raise LookupError(f"no reminder for {code} to {person.name}")


async def run_demo(
    *,
    plan_file: Path,
    workdir: Path,
    out_dir: Path,
    channel: str = "telegram",
    serve: bool = False,
    serve_seconds: float | None = None,
) -> None:
    """Play the demo; with ``serve``, then keep the web desk on 127.0.0.1 until Ctrl-C (or ``serve_seconds``)."""
    if channel not in PLATFORMS:
        playable = ", ".join(PLATFORMS)
        raise click.ClickException(f"demo: no demo on {channel!r} yet (it plays on {playable})")
    platform = PLATFORMS[channel]()  # fails here, before anything is touched, when a server is missing
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db_url = f"sqlite:///{workdir / 'demo.db'}"
    fields = await platform.start()
    engine = runtime = None
    try:
        settings = Settings(database_url=db_url, output_dir=out_dir, **fields)
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
        await platform.attach(runtime)
        await _play(Demo(platform, runtime, clock), engine)
        if serve:
            await serve_desk(engine, settings, runtime.calendar, clock, seconds=serve_seconds)
    finally:
        await platform.stop()
        if runtime is not None:
            await runtime.close()
        if engine is not None:
            engine.dispose()


async def _play(demo: Demo, engine) -> None:  # type: ignore[no-untyped-def]
    platform, clock = demo.platform, demo.clock
    if platform.name == "telegram":
        click.echo("\n[绑定] 办公室为各部门生成邀请链接，联络员在 Telegram 中打开：")
    else:
        click.echo(f"\n[绑定] 办公室为各部门生成邀请码，联络员在{platform.label}中发给协调机器人：")
    for p in CAST:
        address = demo.address(p)
        platform.add_person(address, p.name)
        demo.people[address] = p
        with session_scope(engine) as s:
            invite = create_invite(
                session=s, department_code=p.department, name=p.name, role=p.role, created_by="demo", now=clock.now()
            )
        shown, binding = platform.bind(invite)
        click.echo(f"  🔗 {p.name}（{p.department}，{p.role}）: {shown}")
        await platform.say(address, binding)
    await demo.settle()
    for address, person in demo.people.items():  # only the first line of each welcome
        msgs = platform.sent_to(address)
        click.echo(f"  🤖 → {person.name}: {msgs[0]['text'].splitlines()[0]}" if msgs else "")
        demo.seen[address] = len(msgs)
    stranger = demo.address(STRANGER)
    platform.add_person(stranger, "路人", stranger=True)
    demo.people[stranger] = STRANGER
    click.echo("  👤 未绑定用户: /tasks")
    await platform.say(stranger, "/tasks")
    await demo.settle()
    demo.show_new()

    wang, zhao, li, _liu, chen, office = CAST
    monday = datetime(2026, 3, 2, 9, 30, tzinfo=TZ)
    sent = await demo.tick_at(
        monday, f"周一 09:30，时钟触发：向各牵头单位联络员发送本周进展提醒（{platform.pace_note}）"
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
    notice = platform.sent_to(demo.address(office))[-1]
    try:
        await demo.press(office, notice, "同意")
    except LookupError:  # the request did not reach the office as one (the platform did not read the command)
        click.echo(f"  （{office.name}没有收到可审批的延期申请）")

    clock.set(monday + timedelta(hours=2))
    await demo.say(office, "/overdue")

    # week two, up to its Friday: the clock only runs forward, and each reply is said once (what the chat confirms
    # is what the Friday reports show)
    friday = monday + timedelta(days=11, hours=6, minutes=30)  # Friday of week two, 16:00
    for day in range(1, 12):
        when = monday + timedelta(days=day)
        if not demo.runtime.calendar.is_workday(when.date()):
            continue
        sent = await demo.tick_at(when, "时钟" + ("：周一进展提醒" if when.weekday() == 0 else "：到期提醒与督办"))
        if when.weekday() == 0:
            await _week_two_replies(demo, sent)
    clock.set(friday)
    click.echo(f"\n[{demo.when()}] 周五 16:00：周报发联席会议办公室，领导摘要发分管领导")
    await asyncio.to_thread(demo.runtime.weekly_digest)
    await demo.runtime.tick()
    await demo.settle()
    demo.show_new()
    await demo.say(zhao, "/summary")
    _summary(engine)
    _write_reports(demo, engine)


async def _week_two_replies(demo: Demo, sent: list[Message]) -> None:
    """Week two's replies: 2.1 in the words of a to-date report, which leaves open whether its count is the total
    or new since the last report, so the bot asks back with buttons and the contact answers; 3.3 settles its
    blocker (its open request closes)."""
    wang, li = CAST[0], CAST[2]
    click.echo(f"\n[{demo.when()}] 回复不明确时，机器人追问（不猜测）：")
    await demo.say(
        wang, "2.1 截至3月6日，各街镇检查情况已汇总。开展专项检查5项", reply_to=demo.reminder(sent, wang, "2.1")
    )
    asked = demo.platform.sent_to(demo.address(wang))[-1]
    await demo.press(wang, asked, "累计总数")
    await demo.say(li, "3.3 贴息资金已落实，恢复正常推进", reply_to=demo.reminder(sent, li, "3.3"))


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
    from coordbot.plan.models import ProgressReport

    with session_scope(engine) as s:
        counts = dict(s.exec(select(Event.type, func.count()).group_by(Event.type)).all())
        # reports, not progress.reported events: an answered ask-back re-applies its report (a second event)
        live = col(ProgressReport.voided).is_(False)
        reports = s.exec(select(func.count()).select_from(ProgressReport).where(live)).one()
    click.echo("\n两周小结（事件日志）：")
    for kind, label in (
        (EventType.REMINDER_SENT, "提醒已发送"),
        ("reports", "进展报送"),
        (EventType.OBSERVATION_RECORDED, "指标数据"),
        (EventType.CROSSREQUEST_OPENED, "跨部门协调请求"),
        (EventType.TASK_ESCALATED, "督办"),
        (EventType.EXTENSION_APPROVED, "延期获批"),
        (EventType.TASK_COLOUR_CHANGED, "红黄绿变化"),
    ):
        click.echo(f"  {label}：{reports if kind == 'reports' else counts.get(kind, 0)}")


async def serve_desk(
    engine: Engine, settings: Settings, calendar: WorkCalendar, clock: FakeClock, *, seconds: float | None
) -> None:
    """The office's web desk over the demo's database on 127.0.0.1 (a free port) with the demo's clock: prints
    its address, a one-time sign-in link and a fresh password for the office, then serves until Ctrl-C (the
    cancellation of ``asyncio.run``) or for ``seconds``."""
    import dataclasses
    import secrets

    from coordbot.plan.models import Contact, Department, Role
    from coordbot.web.desk import DESK
    from coordbot.web.signin import issue_link_token, set_password

    desk_settings = dataclasses.replace(settings, web_secret=Secret(secrets.token_urlsafe(32)), public_url="")
    app = make_web_app(engine=engine, settings=desk_settings, calendar=calendar, clock=clock)
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    url = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    with session_scope(engine) as s:
        office = s.exec(select(Contact).where(Contact.role == Role.OFFICE, Contact.active)).first()
        if office is None:
            raise click.ClickException("demo: no office contact to sign in with")
        dept = s.get(Department, office.department_id)
        set_password(session=s, contact=office, password=password, now=clock.now())
        token = issue_link_token(session=s, desk=app[DESK], contact=office, now=clock.now())
        who = (dept.code if dept else "", office.name)
    click.echo(f"\n办公室工作台（web desk）：{url}/")
    click.echo(f"  一次性登录链接（15 分钟内有效）：{url}/login/{token}")
    click.echo(f"  或用密码登录：部门 {who[0]}，姓名 {who[1]}，密码 {password}")
    click.echo("  按 Ctrl-C 结束。" if seconds is None else f"  {seconds:g} 秒后结束。", nl=True)
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    finally:
        await runner.cleanup()
