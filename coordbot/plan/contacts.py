"""Contacts and how they bind their chat: one-time invite codes, stored only as hashes.

The office creates an invite for a department and role; the person opens the deep link
``https://t.me/<bot>?start=<code>`` (or sends ``绑定 <code>`` on a channel without deep links); the code is
checked (exists, unused, not expired) and the address is bound.

A contact has a preferred address (on the contact row) and further ones, one per channel
(:class:`ContactAddress`), tried in order when the preferred one gives up. Binding on a new channel makes it
the preferred address and keeps the old one as the first fallback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, or_
from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.clock import utcnow
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.plan.models import Contact, ContactAddress, Department, Invite, Plan, Role

INVITE_TTL = timedelta(days=7)
CODE_BYTES = 18  # 24 URL-safe characters: fits Telegram's 64-character start parameter


class BindError(ValueError):
    """Why a code cannot bind; ``reason`` is one of unknown, used, expired (for the chat's message)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewInvite:
    code: str  # shown once, never stored
    invite: Invite

    def link(self, bot_username: str) -> str:
        return f"https://t.me/{bot_username}?start={self.code}"


def find_department(*, session: Session, code: str, plan_code: str | None = None) -> Department:
    """The department with this code in the plan's organisation; without a plan, the only one with the code
    (a code two organisations use is refused with their plans, so nobody binds to another plan's department)."""
    query = select(Department).where(Department.code == code)
    scope = select(Department.code).order_by(col(Department.code))
    if plan_code is not None:
        plan = session.exec(select(Plan).where(Plan.code == plan_code)).first()
        if plan is None:
            known = ", ".join(session.exec(select(Plan.code).order_by(col(Plan.code))))
            raise ValueError(f"no plan {plan_code!r} (plans: {known or 'none'})")
        query = query.where(Department.organisation_id == plan.organisation_id)
        scope = scope.where(Department.organisation_id == plan.organisation_id)
    found = session.exec(query).all()
    if len(found) > 1:
        orgs = [d.organisation_id for d in found]
        plans = session.exec(
            select(Plan.code).where(col(Plan.organisation_id).in_(orgs)).order_by(col(Plan.code))
        ).all()
        raise ValueError(
            f"department {code!r} is in the organisations of several plans ({', '.join(plans)}): give one with --plan"
        )
    if not found:
        known = ", ".join(dict.fromkeys(session.exec(scope)))
        raise ValueError(f"unknown department {code!r} (known: {known})")
    return found[0]


def create_invite(
    *,
    session: Session,
    department_code: str,
    plan_code: str | None = None,
    name: str,
    role: str = Role.CONTACT,
    language: str = "zh",
    created_by: str = "office",
    ttl: timedelta = INVITE_TTL,
    now: datetime | None = None,
) -> NewInvite:
    now = now or utcnow()
    if role not in {r.value for r in Role}:
        raise ValueError(f"role must be one of contact, leader, office; got {role!r}")
    dept = find_department(session=session, code=department_code, plan_code=plan_code)
    if not name.strip():
        raise ValueError("an invite needs the person's name")
    code = secrets.token_urlsafe(CODE_BYTES)
    invite = Invite(
        code_hash=hash_code(code),
        department_id=row_id(dept),
        role=role,
        name=name.strip(),
        language=language,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    session.flush()
    events.record(
        session,
        EventType.INVITE_CREATED,
        at=now,
        department_id=dept.id,
        actor=created_by,
        invite=invite.id,
        role=role,
        name=invite.name,
        expires_at=invite.expires_at,
    )
    return NewInvite(code, invite)


def redeem_invite(*, session: Session, code: str, channel: str, address: str, now: datetime | None = None) -> Contact:
    """Bind ``address`` on ``channel`` with a code; single use; the contact is created or re-bound."""
    now = now or utcnow()
    digest = hash_code(code.strip())
    invite = session.exec(select(Invite).where(Invite.code_hash == digest)).first()
    # compare_digest keeps the check constant-time even though the lookup is by hash.
    if invite is None or not hmac.compare_digest(invite.code_hash, digest):
        raise BindError("unknown")
    if invite.used_at is not None:
        raise BindError("used")
    if invite.expires_at <= now:
        raise BindError("expired")
    contact = session.exec(
        select(Contact).where(
            Contact.department_id == invite.department_id, Contact.role == invite.role, Contact.name == invite.name
        )
    ).first()
    if contact is None:
        contact = Contact(department_id=invite.department_id, name=invite.name, role=invite.role)
        session.add(contact)
    elif contact.address and contact.channel != channel:
        session.flush()
        _demote_preferred(session, contact)
    for further in session.exec(
        select(ContactAddress).where(ContactAddress.contact_id == contact.id, ContactAddress.channel == channel)
    ):
        session.delete(further)  # this channel becomes the preferred one
    contact.channel = channel
    contact.address = address
    contact.language = invite.language
    contact.active = True
    contact.unreachable = False
    contact.bound_at = now
    session.flush()
    invite.used_at = now
    invite.contact_id = contact.id
    events.record(
        session,
        EventType.CONTACT_BOUND,
        at=now,
        department_id=invite.department_id,
        contact_id=contact.id,
        actor=f"{channel}:{address}",
        role=invite.role,
        invite=invite.id,
    )
    return contact


def _demote_preferred(session: Session, contact: Contact) -> None:
    """The contact's preferred address becomes its first further address (the others move one down)."""
    further = list(
        session.exec(
            select(ContactAddress).where(ContactAddress.contact_id == contact.id).order_by(col(ContactAddress.position))
        )
    )
    for row in further:
        row.position += 1
    if contact.address and all(row.channel != contact.channel for row in further):
        session.add(
            ContactAddress(
                contact_id=row_id(contact),
                channel=contact.channel,
                address=contact.address,
                position=1,
                unreachable=contact.unreachable,
                bound_at=contact.bound_at,
            )
        )


def add_address(
    *, session: Session, contact: Contact, channel: str, address: str, now: datetime | None = None
) -> ContactAddress:
    """The office sets a further address of a contact (an e-mail address it knows, a WeCom userid …)."""
    if channel == contact.channel and contact.address:
        raise ValueError(f"{contact.name}'s preferred address is already on {channel}; bind again to change it")
    row = session.exec(
        select(ContactAddress).where(ContactAddress.contact_id == contact.id, ContactAddress.channel == channel)
    ).first()
    if row is None:
        positions = session.exec(select(ContactAddress.position).where(ContactAddress.contact_id == contact.id)).all()
        row = ContactAddress(
            contact_id=row_id(contact), channel=channel, address=address, position=max(positions, default=0) + 1
        )
        session.add(row)
    row.address, row.unreachable, row.bound_at = address, False, now or utcnow()
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class Route:
    """One way to reach a contact: a channel and the address on it."""

    channel: str
    address: str
    further: bool  # False: the preferred address on the contact row; True: a ContactAddress


def reachable_routes(*, session: Session, contacts: Sequence[Contact]) -> dict[int, list[Route]]:
    """{contact id: its routes in fallback order, without the ones marked unreachable}, in one query."""
    out: dict[int, list[Route]] = {
        row_id(c): [Route(c.channel, c.address, False)] if c.address and not c.unreachable else [] for c in contacts
    }
    if out:
        further = session.exec(
            select(ContactAddress)
            .where(col(ContactAddress.contact_id).in_(list(out)), ~col(ContactAddress.unreachable))
            .order_by(col(ContactAddress.contact_id), col(ContactAddress.position), col(ContactAddress.id))
        )
        for row in further:
            out[row.contact_id].append(Route(row.channel, row.address, True))
    return out


def is_reachable() -> ColumnElement[bool]:
    """SQL: the contact has an address not marked unreachable (its preferred one or a further one)."""
    return or_(
        ~col(Contact.unreachable),
        col(Contact.id).in_(select(ContactAddress.contact_id).where(~col(ContactAddress.unreachable))),
    )


def mark_unreachable(*, session: Session, contact: Contact, channel: str) -> bool:
    """Mark the contact's address on ``channel`` as one that can never receive; whether any route is left."""
    if contact.channel == channel:
        contact.unreachable = True
    for row in session.exec(
        select(ContactAddress).where(ContactAddress.contact_id == contact.id, ContactAddress.channel == channel)
    ):
        row.unreachable = True
    session.flush()
    return bool(reachable_routes(session=session, contacts=[contact])[row_id(contact)])


def routes(*, session: Session, contact: Contact) -> list[tuple[str, str]]:
    """(channel, address) in the order a reminder tries them: the preferred one, then the further ones."""
    out = [(contact.channel, contact.address)] if contact.address else []
    further = session.exec(
        select(ContactAddress)
        .where(ContactAddress.contact_id == contact.id)
        .order_by(col(ContactAddress.position), col(ContactAddress.id))
    )
    return out + [(row.channel, row.address) for row in further]


def contacts_for_address(*, session: Session, channel: str, address: str) -> list[Contact]:
    """Every active binding of an address (a person may be a contact of one department and leader of none),
    whether it is the contact's preferred address or a further one."""
    return list(session.exec(_CONTACTS_FOR_ADDRESS, params={"channel": channel, "address": address}))


# Built once: it runs on every inbound update.
_CONTACTS_FOR_ADDRESS = (
    select(Contact)
    .where(
        or_(
            (col(Contact.channel) == bindparam("channel")) & (col(Contact.address) == bindparam("address")),
            col(Contact.id).in_(
                select(ContactAddress.contact_id).where(
                    ContactAddress.channel == bindparam("channel"), ContactAddress.address == bindparam("address")
                )
            ),
        ),
        Contact.active,
    )
    .order_by(col(Contact.id))
)
