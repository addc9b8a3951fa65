"""Send a report file (a briefing, a digest) to the office and the leaders through the channels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.channels.base import Channel, ChannelError, Outbound
from coordbot.core import events
from coordbot.core.clock import Clock
from coordbot.core.db import row_id, session_scope
from coordbot.core.events import EventType
from coordbot.core.text import render
from coordbot.plan.contacts import is_reachable, reachable_routes
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
                is_reachable(),
                col(Contact.address).is_not(None),
                col(Contact.role).in_([Role.OFFICE, Role.LEADER]),
            )
            .order_by(col(Contact.id))
        ).all()
        options = reachable_routes(session=session, contacts=recipients)
    content = path.read_bytes()
    delivered: list[str] = []
    failed: list[tuple[str, str]] = []
    for c in recipients:
        caption = render("reports/file_caption.html", locale=c.language, title=title)
        errors: list[str] = []
        # The contact's addresses in order: the first configured channel that delivers the file wins.
        for route in options[row_id(c)]:
            channel = channels.get(route.channel)
            if channel is None:
                errors.append(f"no channel '{route.channel}' is configured")
                continue
            try:
                await send_with_retry(channel, Outbound(route.address, caption, document=(path.name, content)))
            except ChannelError as exc:
                errors.append(str(exc))
            else:
                delivered.append(c.name)
                break
        else:
            failed.append((c.name, "; ".join(errors) or "no reachable address"))
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
