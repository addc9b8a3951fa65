"""The desk against a real database (SQLite and PostgreSQL): the minimal plan, its people bound, and a test
client per person.

People (``PEOPLE``): 王敏 contact of amr (lead of 1.1, 2.1, 2.2), 赵磊 contact of finance (co of 1.1),
李强 leader of finance, 张静 the office (amr), 孙丽 a contact of sci without a bound address.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.core.clock import FakeClock
from coordbot.core.config import Secret, Settings
from coordbot.core.db import row_id, session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department, Role
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.web import make_web_app
from coordbot.web.desk import DESK
from coordbot.web.signin import issue_link_token

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 6, 12, 10, 0, tzinfo=TZ)  # a Wednesday
PEOPLE = {
    "wang": ("amr", "王敏", Role.CONTACT, "telegram", "1001"),
    "zhao": ("finance", "赵磊", Role.CONTACT, "wecom", "zhaolei"),
    "li": ("finance", "李强", Role.LEADER, "telegram", "1003"),
    "zhang": ("amr", "张静", Role.OFFICE, "telegram", "1004"),
    "sun": ("sci", "孙丽", Role.CONTACT, "telegram", None),
}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Desk:
    engine: Engine
    clock: FakeClock
    ids: dict[str, int]  # person key -> contact id

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


@pytest.fixture
def desk_db(engine: Engine, minimal_plan: LoadedPlan) -> Iterator[Desk]:
    clock = FakeClock(NOW)
    ids: dict[str, int] = {}
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan, now=NOW)
        for key, (dept_code, name, role, channel, address) in PEOPLE.items():
            dept = s.exec(select(Department).where(Department.code == dept_code)).one()
            c = s.exec(
                select(Contact).where(Contact.department_id == dept.id, Contact.name == name, Contact.role == role)
            ).first()
            if c is None:
                c = Contact(department_id=row_id(dept), name=name, role=role)
                s.add(c)
            c.channel, c.address, c.bound_at = channel, address, NOW if address else None
            s.flush()
            ids[key] = row_id(c)
    yield Desk(engine, clock, ids)


def settings() -> Settings:
    return Settings(web_secret=Secret("test-secret-for-the-desk"), public_url="")


@pytest.fixture
async def app_client(desk_db: Desk) -> AsyncIterator[TestClient]:
    app = make_web_app(
        engine=desk_db.engine, settings=settings(), calendar=WorkCalendar(tz="Asia/Shanghai"), clock=desk_db.clock
    )
    async with TestClient(TestServer(app)) as client:
        yield client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def login_as(client: TestClient, desk: Desk, who: str) -> str:
    """Sign ``who`` in through a sign-in link, as a person would; returns the session's CSRF token."""
    app_desk = client.server.app[DESK]
    with session_scope(desk.engine) as s:
        contact = s.get(Contact, desk.ids[who])
        assert contact is not None
        token = issue_link_token(session=s, desk=app_desk, contact=contact, now=desk.clock.now())
    resp = await client.get(f"/login/{token}")
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/login/{token}", data={"csrf": csrf_of(await resp.text())}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    resp = await client.get("/")
    assert resp.status == 200
    return csrf_of(await resp.text())


@pytest.fixture
def login(app_client: TestClient, desk_db: Desk):  # type: ignore[no-untyped-def]
    async def do(who: str) -> str:
        return await login_as(app_client, desk_db, who)

    return do
