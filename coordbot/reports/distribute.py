"""Send a report file (a briefing, a digest) to the office and the leaders through the channels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.base import Channel, ChannelError, Outbound
from coordbot.core import events
from coordbot.core.clock import Clock
from coordbot.core.db import session_scope
from coordbot.core.events import EventType
from coordbot.core.text import render
from coordbot.plan.models import Contact, Role
from coordbot.reports.models import Briefing
from coordbot.scheduling.engine import send_with_retry


@dataclass(frozen=True)
class Sent:
    delivered: list[str]  # contact names
    failed: list[tuple[str, str]]  # (name, error)


async def send_report_file(
    *,
    engine: Engine,
    channels: dict[str, Channel],
    path: Path,
    title: str,
    clock: Clock,
    briefing_id: int | None = None,
) -> Sent:
    """Deliver ``path`` as a document to every bound office contact and leader; record who got it."""
    with Session(engine) as session:
        recipients = session.exec(
            select(Contact)
            .where(
                Contact.active,
                ~col(Contact.unreachable),
                col(Contact.address).is_not(None),
                col(Contact.role).in_([Role.OFFICE, Role.LEADER]),
            )
            .order_by(col(Contact.id))
        ).all()
    content = path.read_bytes()
    delivered: list[str] = []
    failed: list[tuple[str, str]] = []
    for c in recipients:
        channel = channels.get(c.channel)
        if channel is None:
            failed.append((c.name, f"no channel '{c.channel}' is configured"))
            continue
        caption = render("reports/file_caption.html", locale=c.language, title=title)
        try:
            await send_with_retry(channel, Outbound(c.address, caption, document=(path.name, content)))  # type: ignore[arg-type]
        except ChannelError as exc:
            failed.append((c.name, str(exc)))
        else:
            delivered.append(c.name)
    with session_scope(engine) as session:
        events.record(
            session,
            EventType.REPORT_SENT,
            at=clock.now(),
            file=path.name,
            title=title,
            recipients=delivered,
            failed=[name for name, _ in failed],
        )
        if briefing_id is not None and delivered:
            briefing = session.get(Briefing, briefing_id)
            if briefing is not None:
                briefing.sent_at = clock.now()
    return Sent(delivered, failed)
