"""Fixtures for the e-mail channel: a real SMTP server (aiosmtpd) and a real IMAP server (Dovecot) on 127.0.0.1.

Dovecot comes from Debian (``apt-get install -y dovecot-imapd``) and is started per test from a temporary
configuration; without it the IMAP tests are skipped locally, and fail in CI (``CI`` set), where it must exist.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from coordbot.channels.base import Inbound, Reply
from coordbot.channels.email import EmailChannel, EmailFrontend
from coordbot.core.config import Secret, Settings
from coordbot.testing.fake_email import FakeMail, FakeSMTP, dovecot_binary

OFFICE = "office@example.gov.cn"
MAIL_FROM = f"联席会议办公室 <{OFFICE}>"
WANG = "wang@amr.example.gov.cn"
ZHAO = "zhao@sci.example.gov.cn"
SMTP_PASSWORD = "smtp-Secret-1"
IMAP_PASSWORD = "imap-Secret-2"
TIMEOUT = 10.0


def needs_dovecot() -> None:
    if dovecot_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: .ci/run must apt-get install -y dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install -y dovecot-imapd)")


def mail_settings(smtp: FakeSMTP, *, imap_port: int = 0, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_username": OFFICE,
        "smtp_password": Secret(SMTP_PASSWORD),
        "smtp_security": "none",
        "mail_from": MAIL_FROM,
        "mail_reply_to": OFFICE,
        "imap_host": "127.0.0.1" if imap_port else "",
        "imap_port": imap_port,
        "imap_username": OFFICE,
        "imap_password": Secret(IMAP_PASSWORD),
        "imap_security": "none",
        "imap_poll_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSMTP]:
    async with FakeSMTP(users={OFFICE: SMTP_PASSWORD}) as server:
        yield server


@pytest.fixture
async def channel(smtp: FakeSMTP) -> AsyncIterator[EmailChannel]:
    ch = EmailChannel(mail_settings(smtp), rate_per_second=1000)
    try:
        yield ch
    finally:
        await ch.close()


@pytest.fixture
async def mail() -> AsyncIterator[FakeMail]:
    needs_dovecot()
    async with FakeMail(bot_address=OFFICE, smtp_password=SMTP_PASSWORD, imap_password=IMAP_PASSWORD) as world:
        world.add_user(WANG, "王敏")
        world.add_user(ZHAO, "赵磊")
        yield world


@dataclass
class Recorder:
    """A handler that keeps what it was given and answers with ``answer``; ``block`` holds it until set."""

    answer: Callable[[Inbound], Reply | None] = lambda inbound: None
    seen: list[Inbound] = field(default_factory=list)
    fail: int = 0  # raise on this many calls first
    block: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, inbound: Inbound) -> Reply | None:
        self.entered.set()
        if self.block is not None:
            await self.block.wait()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("handler failed (test)")
        async with self._changed:
            self.seen.append(inbound)
            self._changed.notify_all()
        return self.answer(inbound)

    async def wait(self, count: int = 1, timeout: float = TIMEOUT) -> list[Inbound]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.seen) >= count)
        return self.seen


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def running(mail: FakeMail, recorder: Recorder) -> AsyncIterator[EmailFrontend]:
    """An e-mail front end reading the bot's mailbox (IDLE), answering through ``recorder``."""
    fe = EmailFrontend(mail_settings(mail.smtp, imap_port=mail.imap.port), recorder)
    await fe.start()
    try:
        await wait_until(lambda: fe._idling)
        yield fe
    finally:
        await fe.stop()
