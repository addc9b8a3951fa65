"""Real mail servers on 127.0.0.1 for the e-mail channel's tests: an SMTP sink (aiosmtpd) and Dovecot (IMAP).

:class:`FakeMail` is the two together, with the hooks every fake offers: ``add_user``, ``user_sends`` (a
contact's mail, as their client writes it, delivered into the bot's mailbox), ``sent_to`` and ``wait_for``
(what coordbot sent), ``fail_next`` and ``outage`` (on the SMTP side).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from coordbot.testing.fake_email.clients import STYLES, reply_mail, reply_text
from coordbot.testing.fake_email.dovecot import Dovecot, MailboxClient, dovecot_binary
from coordbot.testing.fake_email.smtp import FakeSMTP, RateLimits

__all__ = [
    "STYLES",
    "Dovecot",
    "FakeMail",
    "FakeSMTP",
    "MailboxClient",
    "RateLimits",
    "dovecot_binary",
    "reply_mail",
    "reply_text",
]


class FakeMail:
    """SMTP for coordbot's outgoing mail and the bot's IMAP mailbox for the replies."""

    def __init__(
        self,
        *,
        bot_address: str = "office@example.gov.cn",
        smtp_user: str = "office@example.gov.cn",
        smtp_password: str = "smtp-Secret-1",
        imap_password: str = "imap-Secret-2",
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.bot_address = bot_address
        self.smtp_password = smtp_password
        self.imap_password = imap_password
        self.smtp = FakeSMTP(users={smtp_user: smtp_password}, rate_limits=rate_limits)
        self.imap = Dovecot({bot_address: imap_password})
        self.mailbox = MailboxClient(self.imap, bot_address)
        self.names: dict[str, str] = {}

    async def __aenter__(self) -> FakeMail:
        await self.smtp.start()
        try:
            await self.imap.__aenter__()
        except BaseException:
            await self.smtp.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.imap.__aexit__(exc_type, exc, tb)
        await self.smtp.stop()

    def add_user(self, address: str, name: str = "") -> None:
        self.names[address.lower()] = name
        self.smtp.add_user(address, name)

    def _from(self, address: str) -> str:
        name = self.names.get(address.lower(), "")
        return f"{name} <{address}>" if name else address

    async def user_sends(
        self,
        address: str,
        text: str,
        *,
        reply_to: dict[str, Any] | None = None,
        style: str = "gmail_zh",
        subject: str = "",
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """``address`` writes ``text`` to the bot (answering ``reply_to``, a sent mail, in its client's style)."""
        raw = reply_mail(
            reply_to,
            sender=self._from(address),
            text=text,
            style=style,
            subject=subject,
            to=self.bot_address,
            headers=headers,
        )
        await self.mailbox.deliver(raw)
        return raw

    async def deliver_raw(self, raw: bytes) -> None:
        await self.mailbox.deliver(raw)

    def sent_to(self, address: str) -> list[dict[str, Any]]:
        return self.smtp.sent_to(address)

    async def wait_for(self, predicate: Callable[[FakeSMTP], bool], timeout: float = 10.0) -> None:
        await self.smtp.wait_for(predicate, timeout)

    async def wait_for_mail(self, address: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        return await self.smtp.wait_for_mail(address, count, timeout)

    def fail_next(self, n: int, code: int, *, stage: str | None = None) -> None:
        self.smtp.fail_next(n, code, stage=stage)

    def outage(self) -> Any:
        return self.smtp.outage()
