"""Factories for the reminder engine tests: a plan in the database with bound contacts, a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.base import MemoryChannel
from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import ReminderEngine

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOLIDAYS = Path(__file__).resolve().parents[2] / "config" / "holidays"


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SHANGHAI)


@pytest.fixture
def calendar() -> WorkCalendar:
    return WorkCalendar(HOLIDAYS)


@pytest.fixture
def loaded_plan(engine: Engine, minimal_plan: LoadedPlan) -> LoadedPlan:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
    return minimal_plan


@pytest.fixture
def bind(engine: Engine, loaded_plan: LoadedPlan) -> Callable[..., int]:
    """bind("amr", role="contact", address="1001") -> contact id"""

    def _bind(dept: str, *, role: str = "contact", address: str, name: str | None = None, language: str = "zh") -> int:
        with session_scope(engine) as s:
            d = s.exec(select(Department).where(Department.code == dept)).one()
            c = Contact(
                department_id=d.id,
                name=name or f"{dept}-{role}-{address}",
                role=role,
                address=address,
                language=language,
            )
            s.add(c)
            s.flush()
            return c.id  # type: ignore[return-value]

    return _bind


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at(2026, 3, 2, 9, 0))


@pytest.fixture
def channel() -> MemoryChannel:
    return MemoryChannel("telegram")


@pytest.fixture
def make_engine(engine: Engine, calendar: WorkCalendar, clock: FakeClock, channel: MemoryChannel):
    def _make(**kwargs) -> ReminderEngine:
        kwargs.setdefault("channels", {"telegram": channel})
        kwargs.setdefault("send_tries", 2)
        return ReminderEngine(engine=engine, calendar=calendar, clock=clock, **kwargs)

    return _make


def rows(engine: Engine, model, *where):
    with Session(engine) as s:
        return s.exec(select(model).where(*where)).all()
