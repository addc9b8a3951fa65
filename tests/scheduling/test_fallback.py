"""A contact on two channels: when the preferred one gives up (blocked, or failing tick after tick) the
reminder goes out once more on the next address, the event log says so, and later reminders start there."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from coordbot.channels.base import Delivery, MemoryChannel, Outbound, PermanentChannelError, TransientChannelError
from coordbot.core.events import Event
from coordbot.plan.contacts import add_address
from coordbot.plan.models import Contact
from coordbot.scheduling.models import ReminderOccurrence

from .conftest import at, rows


class Failing(MemoryChannel):
    """A channel whose every send raises ``error``."""

    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(name)
        self.error = error
        self.tries = 0

    async def send(self, message: Outbound) -> Delivery:
        self.tries += 1
        raise self.error


def _with_email(engine: Engine, contact_id: int, address: str = "wang@amr.example.gov.cn") -> None:
    with Session(engine) as s:
        contact = s.get(Contact, contact_id)
        assert contact is not None
        add_address(session=s, contact=contact, channel="email", address=address)
        s.commit()


async def test_a_blocked_preferred_channel_falls_back_to_email_once(engine, bind, make_engine, clock) -> None:
    wang = bind("amr", address="1001")
    _with_email(engine, wang)
    telegram = Failing("telegram", PermanentChannelError("Forbidden: bot was blocked by the user"))
    email = MemoryChannel("email")
    eng = make_engine(channels={"telegram": telegram, "email": email})
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    first = await eng.tick()  # the tick claims again what it re-queued: the fallback goes out at once
    assert (first.fallbacks, first.sent, first.failed) == (2, 2, 0) and telegram.tries == 2
    assert {m.address for m in email.sent} == {"wang@amr.example.gov.cn"}
    sent = [o for o in rows(engine, ReminderOccurrence) if o.status == "sent"]
    assert {(o.channel, o.route) for o in sent} == {("email", 1)}
    [*fallbacks] = rows(engine, Event, Event.type == "reminder.fallback")
    assert len(fallbacks) == 2
    assert {(e.payload["from_channel"], e.payload["to_channel"]) for e in fallbacks} == {("telegram", "email")}
    with Session(engine) as s:
        contact = s.get(Contact, wang)
        assert contact is not None and contact.unreachable  # the Telegram address, not the person
    # The person is still reachable: later reminders are planned and go straight to e-mail.
    assert not rows(engine, Event, Event.type == "contact.unreachable")
    clock.set(at(2026, 3, 9, 9, 31))
    eng.sync()
    later = await eng.tick()
    assert later.sent >= 1 and later.fallbacks == 0 and telegram.tries == 2


async def test_a_fallback_is_taken_once_then_the_reminder_fails(engine, bind, make_engine, clock) -> None:
    wang = bind("amr", address="1001")
    _with_email(engine, wang)
    bind("finance", role="office", address="office")
    office = MemoryChannel("telegram")
    telegram = Failing("telegram", PermanentChannelError("Forbidden: bot was blocked by the user"))
    email = Failing("email", PermanentChannelError("550 mailbox unavailable"))

    class Router(MemoryChannel):
        """The office's messages get through on Telegram; Wang's do not."""

        async def send(self, message: Outbound) -> Delivery:
            if message.address == "office":
                return await office.send(message)
            return await telegram.send(message)

    eng = make_engine(channels={"telegram": Router("telegram"), "email": email})
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    report = await eng.tick()
    assert (report.fallbacks, report.failed, email.tries) == (2, 2, 2)
    due = [o for o in rows(engine, ReminderOccurrence) if o.contact_id == wang and o.fire_at <= clock.now()]
    assert {(o.status, o.channel) for o in due} == {("failed", "email")}
    # Now no address of Wang's can receive: the office is told once and nothing more is queued for him.
    assert len(rows(engine, Event, Event.type == "contact.unreachable")) == 1
    assert len(office.sent) == 1 and "550 mailbox unavailable" in office.sent[0].text
    pending = [o for o in rows(engine, ReminderOccurrence) if o.contact_id == wang and o.status == "pending"]
    assert pending == []


async def test_a_channel_failing_tick_after_tick_falls_back_after_its_attempts(
    engine, bind, make_engine, clock
) -> None:
    wang = bind("amr", address="1001")
    _with_email(engine, wang)
    telegram = Failing("telegram", TransientChannelError("502 Bad Gateway"))
    email = MemoryChannel("email")
    eng = make_engine(channels={"telegram": telegram, "email": email}, send_tries=1)
    eng.sync()
    for minute in (31, 33, 40):  # three ticks, each after the backoff
        clock.set(at(2026, 3, 2, 9, minute))
        report = await eng.tick()
    assert (report.fallbacks, report.sent, report.failed) == (2, 2, 0) and len(email.sent) >= 1
    with Session(engine) as s:
        contact = s.get(Contact, wang)
        assert contact is not None and not contact.unreachable  # a platform being down blames no address


async def test_a_contact_with_one_address_fails_as_before(engine, bind, make_engine, clock) -> None:
    bind("amr", address="1001")
    telegram = Failing("telegram", PermanentChannelError("Forbidden: bot was blocked by the user"))
    eng = make_engine(channels={"telegram": telegram})
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    report = await eng.tick()
    assert report.failed == 2 and report.fallbacks == 0
    assert not rows(engine, Event, Event.type == "reminder.fallback")


async def test_a_long_pause_asked_by_the_platform_releases_the_row_instead_of_sleeping(
    engine, bind, make_engine, clock
) -> None:
    """DingTalk's robot throttle asks for 10 minutes: the tick must not sleep them holding every other send."""
    import time

    bind("amr", address="1001")
    telegram = Failing("telegram", TransientChannelError("throttled for 10 minutes", retry_after=600))
    eng = make_engine(channels={"telegram": telegram}, send_tries=4)
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    started = time.monotonic()
    report = await eng.tick()
    assert time.monotonic() - started < 5 and telegram.tries == 2  # one try each, no in-tick retry
    assert report.released == 2
    pending = [o for o in rows(engine, ReminderOccurrence) if o.status == "pending" and o.fire_at <= clock.now()]
    assert pending and all((o.lease_until - clock.now()).total_seconds() >= 599 for o in pending)


async def test_a_platform_that_hangs_does_not_hold_another_channels_sends(engine, bind, make_engine, clock) -> None:
    """Every WeCom send hangs; the e-mail contacts' reminders in the same tick still go out at once."""
    import asyncio

    release = asyncio.Event()

    class Hanging(MemoryChannel):
        async def send(self, message: Outbound) -> Delivery:
            await release.wait()
            return await super().send(message)

    with Session(engine) as s:
        for n in range(4):  # more WeCom contacts than the engine's concurrency
            s.add(Contact(department_id=_department_id(s, "amr"), name=f"w{n}", channel="wecom", address=f"w{n}"))
        s.add(Contact(department_id=_department_id(s, "amr"), name="mail", channel="email", address="m@amr.cn"))
        s.commit()
    wecom, email = Hanging("wecom"), MemoryChannel("email")
    eng = make_engine(channels={"wecom": wecom, "email": email, "telegram": MemoryChannel("telegram")}, concurrency=2)
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    tick = asyncio.create_task(eng.tick())
    for _ in range(100):
        if email.sent:
            break
        await asyncio.sleep(0.02)
    assert email.sent and not wecom.sent  # e-mail went out while every WeCom slot was stuck
    release.set()
    await tick


def _department_id(s: Session, code: str) -> int:
    from sqlmodel import select

    from coordbot.plan.models import Department

    return s.exec(select(Department.id).where(Department.code == code)).one()  # type: ignore[return-value]
