from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlmodel import Session, select

from coordbot.core import events
from coordbot.core.db import session_scope
from coordbot.core.events import Event


def test_aware_times_round_trip(engine: Engine) -> None:
    shanghai = timezone(timedelta(hours=8))
    at = datetime(2026, 10, 1, 9, 30, tzinfo=shanghai)
    with session_scope(engine) as s:
        events.record(s, "test.happened", at=at, note="x")
    with Session(engine) as s:
        ev = s.exec(select(Event)).one()
    assert ev.at == at
    assert ev.at.tzinfo is not None
    assert ev.at.utcoffset() == timedelta(0)
    assert ev.payload == {"note": "x"}


def test_naive_time_is_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as s:
        events.record(s, "test.naive", at=datetime(2026, 1, 1, 9, 0))


def test_subscribers_see_only_committed_events(engine: Engine) -> None:
    seen: list[str] = []
    unsubscribe = events.subscribe("test.thing", lambda ev: seen.append(ev.payload["n"]))
    try:
        with pytest.raises(RuntimeError), session_scope(engine) as s:
            events.record(s, "test.thing", n="rolled back")
            raise RuntimeError("boom")
        with session_scope(engine) as s:
            events.record(s, "test.thing", n="committed")
            events.record(s, "test.other", n="other type")
    finally:
        unsubscribe()
    assert seen == ["committed"]
    with Session(engine) as s:
        assert [e.payload["n"] for e in s.exec(select(Event).order_by(Event.id))] == ["committed", "other type"]


def test_a_failing_subscriber_does_not_break_the_commit(engine: Engine) -> None:
    def bad(ev: Event) -> None:
        raise ValueError("subscriber bug")

    unsubscribe = events.subscribe("test.x", bad)
    try:
        with session_scope(engine) as s:
            events.record(s, "test.x", at=datetime.now(UTC))
    finally:
        unsubscribe()
    with Session(engine) as s:
        assert len(s.exec(select(Event)).all()) == 1
