"""A contact on several channels: binding a second channel makes it preferred and keeps the first as a
fallback; the office adds an address it knows; an inbound message is recognised on any of them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.plan import service
from coordbot.plan.contacts import add_address, contacts_for_address, create_invite, redeem_invite, routes
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, ContactAddress

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def wang(engine: Engine, minimal_plan: LoadedPlan) -> int:
    """Contact 王 of amr, bound on Telegram; returns the contact id."""
    with Session(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
        invite = create_invite(session=s, department_code="amr", name="王", role="contact", created_by="t", now=NOW)
        contact = redeem_invite(session=s, code=invite.code, channel="telegram", address="1001", now=NOW)
        s.commit()
        assert contact.id is not None
        return contact.id


def _bind(engine: Engine, channel: str, address: str) -> Contact:
    with Session(engine) as s:
        invite = create_invite(session=s, department_code="amr", name="王", role="contact", created_by="t", now=NOW)
        contact = redeem_invite(session=s, code=invite.code, channel=channel, address=address, now=NOW)
        s.commit()
        s.refresh(contact)
        return contact


def test_binding_a_second_channel_makes_it_preferred_and_keeps_the_first(engine: Engine, wang: int) -> None:
    contact = _bind(engine, "wecom", "wangwei")
    assert contact.id == wang and (contact.channel, contact.address) == ("wecom", "wangwei")
    with Session(engine) as s:
        assert routes(session=s, contact=s.get(Contact, wang)) == [("wecom", "wangwei"), ("telegram", "1001")]
        # Both addresses still reach the same person.
        assert [c.id for c in contacts_for_address(session=s, channel="telegram", address="1001")] == [wang]
        assert [c.id for c in contacts_for_address(session=s, channel="wecom", address="wangwei")] == [wang]


def test_binding_the_same_channel_again_replaces_the_address(engine: Engine, wang: int) -> None:
    _bind(engine, "telegram", "2002")
    with Session(engine) as s:
        assert routes(session=s, contact=s.get(Contact, wang)) == [("telegram", "2002")]
        assert contacts_for_address(session=s, channel="telegram", address="1001") == []


def test_rebinding_a_fallback_channel_promotes_it_without_a_duplicate(engine: Engine, wang: int) -> None:
    _bind(engine, "wecom", "wangwei")
    _bind(engine, "telegram", "1001")  # back to Telegram: WeCom becomes the fallback, once
    with Session(engine) as s:
        assert routes(session=s, contact=s.get(Contact, wang)) == [("telegram", "1001"), ("wecom", "wangwei")]
        assert len(s.exec(select(ContactAddress)).all()) == 1


def test_the_office_adds_an_email_address_as_the_next_fallback(engine: Engine, wang: int) -> None:
    with Session(engine) as s:
        contact = s.get(Contact, wang)
        assert contact is not None
        add_address(session=s, contact=contact, channel="email", address="wang@amr.example.gov.cn", now=NOW)
        add_address(session=s, contact=contact, channel="wecom", address="wangwei", now=NOW)
        s.commit()
        assert routes(session=s, contact=contact) == [
            ("telegram", "1001"),
            ("email", "wang@amr.example.gov.cn"),
            ("wecom", "wangwei"),
        ]
        with pytest.raises(ValueError, match="preferred address is already on telegram"):
            add_address(session=s, contact=contact, channel="telegram", address="3003")


def test_an_inactive_contact_is_not_found_by_its_further_address(engine: Engine, wang: int) -> None:
    with Session(engine) as s:
        contact = s.get(Contact, wang)
        assert contact is not None
        add_address(session=s, contact=contact, channel="email", address="wang@amr.example.gov.cn", now=NOW)
        contact.active = False
        s.commit()
        assert contacts_for_address(session=s, channel="email", address="wang@amr.example.gov.cn") == []


def _plan_with_contacts(minimal_plan: LoadedPlan, contacts: list[dict]) -> LoadedPlan:
    from coordbot.plan.loader import parse_plan_text

    data = minimal_plan.data.model_dump(mode="json", exclude_defaults=True)
    data["contacts"] = contacts
    import yaml

    return parse_plan_text(yaml.safe_dump(data, allow_unicode=True), "contacts.yaml")


def test_the_plan_file_names_further_addresses_and_group_robots(engine: Engine, minimal_plan: LoadedPlan) -> None:
    contacts = [
        {"department": "amr", "name": "王", "addresses": [{"channel": "email", "address": "wang@amr.example.gov.cn"}]},
        {
            "department": "amr",
            "name": "市场监管局工作群",
            "role": "group",
            "channel": "wecom_robot",
            "address": "amr-group",
        },
    ]
    loaded = _plan_with_contacts(minimal_plan, contacts)
    with Session(engine) as s:
        first = service.import_plan(session=s, loaded=loaded)
        s.commit()
        again = service.import_plan(session=s, loaded=loaded)  # idempotent: nothing to change the second time
        s.commit()
        wang = s.exec(select(Contact).where(Contact.name == "王")).one()
        group = s.exec(select(Contact).where(Contact.role == "group")).one()
        assert routes(session=s, contact=wang) == [("email", "wang@amr.example.gov.cn")]
        assert (group.channel, group.address) == ("wecom_robot", "amr-group")
    assert any("+ email address" in line for line in first.changes)
    assert not again.changed


@pytest.mark.parametrize(
    ("contact", "message"),
    [
        ({"role": "group", "channel": "wecom_robot"}, "a group contact is a group robot"),
        ({"channel": "dingtalk_robot", "address": "x"}, "only role 'group' uses it"),
        ({"address": "1001"}, "an address needs its channel"),
        (
            {"channel": "email", "address": "a@b.cn", "addresses": [{"channel": "email", "address": "c@d.cn"}]},
            "one address per channel",
        ),
        ({"channel": "sms", "address": "1"}, "channel"),
    ],
)
def test_bad_contact_routes_are_refused_with_the_field(minimal_plan: LoadedPlan, contact: dict, message: str) -> None:
    from coordbot.plan.loader import PlanFileError

    with pytest.raises(PlanFileError) as err:
        _plan_with_contacts(minimal_plan, [{"department": "amr", "name": "王", **contact}])
    rendered = err.value.render()
    assert message in rendered and "contacts.yaml:" in rendered and "[contacts[0]" in rendered
