"""events.record_many: the same rows as record, one INSERT, subscribers only after the commit."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType

AT = datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with Session(engine) as s:
        found = s.exec(select(Event).order_by(col(Event.id))).all()
    return [(e.type, e.at, e.task_id, e.contact_id, e.actor, e.payload) for e in found]


def test_record_many_writes_what_record_writes(engine: Engine) -> None:
    items = [{"contact_id": None, "occurrence": i, "kind": "periodic", "ref": f"m{i}", "when": AT} for i in range(3)]
    with session_scope(engine) as s:
        for item in items:
            events.record(s, EventType.REMINDER_SENT, at=AT, **item)
    one_by_one = _rows(engine)
    with session_scope(engine) as s:
        for ev in s.exec(select(Event)):
            s.delete(ev)
    with session_scope(engine) as s:
        assert events.record_many(s, EventType.REMINDER_SENT, items, at=AT) == 3
    assert _rows(engine) == one_by_one
    assert [p[-1]["occurrence"] for p in one_by_one] == [0, 1, 2]  # in the order given
    assert one_by_one[0][-1]["when"] == AT.isoformat()


def test_record_many_subscribers_after_commit_only(engine: Engine) -> None:
    seen: list[object] = []
    unsubscribe = events.subscribe(EventType.REMINDER_SENT, lambda ev: seen.append(ev.payload["occurrence"]))
    try:
        with pytest.raises(RuntimeError), session_scope(engine) as s:
            events.record_many(s, EventType.REMINDER_SENT, [{"occurrence": 1}], at=AT)
            raise RuntimeError("boom")
        assert seen == [] and _rows(engine) == []  # rolled back with the transaction, nobody told
        with session_scope(engine) as s:
            events.record_many(s, EventType.REMINDER_SENT, [{"occurrence": 2}, {"occurrence": 3}], at=AT)
            assert seen == []
        assert seen == [2, 3]
    finally:
        unsubscribe()
