"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, in the test's own event loop, keeping every mail.

It speaks real ESMTP (EHLO, AUTH PLAIN/LOGIN against its users, STARTTLS when given a certificate, SIZE),
answers with the reply codes of RFC 5321 §4.2 and hosted mail's throttling (``451 4.7.0`` beyond its rate),
and parses what it accepts with the standard library (it shares no code with coordbot's adapter).

Test hooks, as on the other fakes: ``add_user`` (a mailbox that exists: others get ``550 5.1.1`` when
``strict_recipients``), ``sent_to(address)`` (the mails delivered to it, oldest first, each a dict with
``text``, ``html``, ``subject``, ``message`` …), ``wait_for(predicate, timeout)``, ``fail_next(n, code)``
(the next ``n`` transactions get ``code`` at the stage where a server gives it) and ``outage()``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# Where a server gives each code: RFC 5321 §4.2 and what hosted mail (Exmail, Coremail, Aliyun) answers.
STAGE_OF_CODE = {421: "MAIL", 450: "RCPT", 451: "RCPT", 452: "RCPT", 535: "AUTH", 552: "DATA", 554: "DATA"}
TEXT_OF_CODE = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox busy, try again later",
    451: "4.7.1 Requested action aborted: local error in processing",
    452: "4.5.3 Too many recipients",
    535: "5.7.8 Authentication credentials invalid",
    550: "5.1.1 Mailbox unavailable",
    551: "5.1.6 User not local",
    552: "5.3.4 Message size exceeds fixed maximum message size",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Message rejected as spam",
}


@dataclass
class RateLimits:
    """Messages accepted per sliding second (``slack`` forgives timer jitter, as the Telegram fake does)."""

    enabled: bool = True
    per_second: float = 10.0
    slack: float = 0.05


@dataclass
class _Fault:
    code: int
    stage: str
    left: int


@dataclass
class Received:
    """One accepted mail; parsed when a test looks at it (parsing is most of a fake server's work)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    parsed: EmailMessage | None = None
    peer_authenticated: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> EmailMessage:
        if self.parsed is None:
            message = BytesParser(policy=policy.default).parsebytes(self.raw)
            assert isinstance(message, EmailMessage)
            self.parsed = message
        return self.parsed

    def as_dict(self) -> dict[str, Any]:
        msg = self.message
        plain = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        return {
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "subject": str(msg.get("Subject", "")),
            # as a mail client shows it: canonical CRLF line ends read as newlines
            "text": plain.get_content().replace("\r\n", "\n") if plain is not None else "",
            "html": html.get_content().replace("\r\n", "\n") if html is not None else "",
            "headers": {k: str(v) for k, v in msg.items()},
            "attachments": [
                (a.get_filename(), a.get_content_type(), a.get_payload(decode=True)) for a in msg.iter_attachments()
            ],
            "message": msg,
            "raw": self.raw,
            "authenticated": self.peer_authenticated,
        }


class _Handler:
    def __init__(self, server: FakeSMTP) -> None:
        self.server = server

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        fake = self.server
        if fake._down:
            return "421 4.3.2 Service not available"
        fault = fake._take_fault("MAIL")
        if fault is not None:
            return f"{fault} {TEXT_OF_CODE.get(fault, 'refused')}"
        if not fake._rate_ok():
            fake.rate_limited += 1
            return "451 4.7.0 Rate limit exceeded, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        fake = self.server
        fault = fake._take_fault("RCPT")
        if fault is not None:
            return f"{fault} {TEXT_OF_CODE.get(fault, 'refused')}"
        if fake.strict_recipients and address.lower() not in fake.mailboxes:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fake = self.server
        fault = fake._take_fault("DATA")
        if fault is not None:
            return f"{fault} {TEXT_OF_CODE.get(fault, 'refused')}"
        raw = envelope.original_content or b""
        if fake.max_size and len(raw) > fake.max_size:
            return "552 5.3.4 Message size exceeds fixed maximum message size"
        await fake._store(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                peer_authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 OK: queued"


class FakeSMTP:
    """``async with FakeSMTP(users={"office@x": "pw"}) as smtp: smtp.port`` — a listening SMTP server."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        rate_limits: RateLimits | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        max_size: int = 20 * 1024 * 1024,
        strict_recipients: bool = False,
        hostname: str = "mail.example.gov.cn",
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.users = dict(users or {})
        self.rate_limits = rate_limits or RateLimits(enabled=False)
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.max_size = max_size
        self.strict_recipients = strict_recipients
        self.hostname = hostname
        self.mailboxes: dict[str, str] = {}
        self.received: list[Received] = []
        self.rate_limited = 0
        self.connections = 0
        self.auth_attempts = 0
        self._faults: deque[_Fault] = deque()
        self._accepted: deque[float] = deque()
        self._down = False
        self._failed_sessions: set[int] = set()
        self._server: asyncio.Server | None = None
        self._protocols: set[SMTP] = set()
        self._changed = asyncio.Condition()

    # ---- lifecycle ----

    def _protocol(self) -> SMTP:
        tls = self.tls_context if not self.implicit_tls else None
        with warnings.catch_warnings():  # AUTH without TLS: on loopback, on purpose
            warnings.simplefilter("ignore", UserWarning)
            proto = self._smtp(tls)
        self.connections += 1
        self._protocols.add(proto)
        return proto

    def _smtp(self, tls: ssl.SSLContext | None) -> SMTP:
        return SMTP(
            _Handler(self),
            hostname=self.hostname,
            data_size_limit=self.max_size,
            tls_context=tls,
            require_starttls=tls is not None,
            auth_required=bool(self.users),
            auth_require_tls=tls is not None,
            authenticator=self._authenticate,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self.host, self.port, ssl=self.tls_context if self.implicit_tls else None
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._drop_connections()
            await self._server.wait_closed()
            self._server = None

    def _drop_connections(self) -> None:
        for proto in list(self._protocols):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.close()
        self._protocols.clear()

    async def __aenter__(self) -> FakeSMTP:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---- the server's behaviour ----

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.auth_attempts += 1
        # A refused login refuses every mechanism the client tries next in that session (aiosmtplib tries all).
        if id(session) in self._failed_sessions or self._take_fault("AUTH") is not None:
            self._failed_sessions.add(id(session))
            return AuthResult(success=False, handled=False)
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        return AuthResult(success=self.users.get(user) == password, handled=False)

    def _take_fault(self, stage: str) -> int | None:
        if not self._faults or self._faults[0].stage != stage:
            return None
        fault = self._faults[0]
        fault.left -= 1
        if fault.left <= 0:
            self._faults.popleft()
        return fault.code

    def _rate_ok(self) -> bool:
        lim = self.rate_limits
        if not lim.enabled:
            return True
        now = time.monotonic()
        window = max(0.0, 1.0 - lim.slack)
        while self._accepted and self._accepted[0] <= now - window:
            self._accepted.popleft()
        if len(self._accepted) >= lim.per_second:
            return False
        self._accepted.append(now)
        return True

    async def _store(self, received: Received) -> None:
        async with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    # ---- test hooks ----

    def add_user(self, address: str, name: str = "") -> None:
        """A mailbox that exists (recipients outside these are refused when ``strict_recipients``)."""
        self.mailboxes[address.lower()] = name

    def sent_to(self, address: str) -> list[dict[str, Any]]:
        address = address.lower()
        return [r.as_dict() for r in self.received if address in (a.lower() for a in r.rcpt_tos)]

    def all_sent(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.received]

    async def wait_for(self, predicate: Callable[[FakeSMTP], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def wait_for_mail(self, address: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.wait_for(lambda s: len(s.sent_to(address)) >= count, timeout)
        return self.sent_to(address)

    def fail_next(self, n: int, code: int, *, stage: str | None = None) -> None:
        """The next ``n`` transactions get ``code`` at ``stage`` (MAIL, RCPT, DATA, AUTH; by default where a
        server gives that code)."""
        self._faults.append(_Fault(code, stage or STAGE_OF_CODE.get(code, "RCPT"), n))

    @asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """Connections are dropped and new ones refused until the block ends."""
        assert self._server is not None
        self._down = True
        self._server.close()
        self._drop_connections()
        await self._server.wait_closed()
        try:
            yield
        finally:
            self._down = False
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(
                self._protocol, self.host, self.port, ssl=self.tls_context if self.implicit_tls else None
            )
