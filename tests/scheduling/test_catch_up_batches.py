"""Catch-up folding is one message per contact however the due rows are split (issue 17, item 6): across
claim batches of one process and across processes claiming at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from coordbot.channels.base import MemoryChannel
from coordbot.scheduling.models import ReminderOccurrence

from .conftest import at, rows

CONTACTS = 12


def _catch_ups(channel: MemoryChannel) -> Counter[str]:
    return Counter(m.address for m in channel.sent if "机器人离线期间" in m.text)


@pytest.mark.parametrize("processes", [1, 2])
async def test_three_weeks_down_gives_each_contact_one_catch_up(
    engine, bind, make_engine, clock, channel, processes
) -> None:
    addresses = [str(2000 + i) for i in range(CONTACTS)]
    for address in addresses:
        bind("amr", address=address)
    engines = [make_engine(batch_size=5, worker=f"instance-{i}") for i in range(processes)]
    engines[0].sync()  # Monday 2026-03-02 09:00, then down for three weeks
    missed = [o for o in rows(engine, ReminderOccurrence) if o.fire_at < at(2026, 3, 20, 10, 0)]
    per_contact = Counter(o.contact_id for o in missed)
    assert len(per_contact) == CONTACTS and min(per_contact.values()) >= 3  # several batches' worth each

    clock.set(at(2026, 3, 23, 10, 0))
    reports = await asyncio.gather(*(e.tick() for e in engines))

    assert _catch_ups(channel) == dict.fromkeys(addresses, 1)
    assert sum(r.folded for r in reports) == len(missed)
    folded = rows(engine, ReminderOccurrence, ReminderOccurrence.folded_into_id.is_not(None))  # type: ignore[union-attr]
    assert len(folded) == len(missed) and {o.status for o in folded} == {"cancelled"}
    catch_up_rows = rows(engine, ReminderOccurrence, ReminderOccurrence.kind == "catch_up")
    assert len(catch_up_rows) == CONTACTS and {o.status for o in catch_up_rows} == {"sent"}


async def test_a_catch_up_being_sent_keeps_its_contacts_stale_rows_until_it_is_decided(
    engine, bind, make_engine, clock, channel
) -> None:
    """Rows going stale while the contact's catch-up is in flight are not split off into a second catch-up:
    they wait, and join it if its send is released (a platform down), or follow it once it is sent."""
    from datetime import timedelta

    from coordbot.core.db import session_scope
    from coordbot.scheduling.engine import claim_due

    contact = bind("amr", address="2001")
    eng = make_engine()
    eng.sync()  # Monday 09:00
    clock.set(at(2026, 3, 23, 10, 0))  # three weeks on: everything older than the grace
    grace = timedelta(hours=24)
    [catch_up] = claim_due(engine=engine, worker="w1", now=clock.now(), lease=timedelta(minutes=5), grace=grace)
    assert catch_up.kind == "catch_up" and catch_up.folded
    with session_scope(engine) as s:  # meanwhile one more reminder of the contact went stale
        late = ReminderOccurrence(
            plan_id=None, task_id=None, contact_id=contact, kind="periodic", fire_at=at(2026, 3, 20, 9, 30)
        )
        s.add(late)
        s.flush()
        late_id = late.id
    assert claim_due(engine=engine, worker="w2", now=clock.now(), lease=timedelta(minutes=5), grace=grace) == []
    assert len(rows(engine, ReminderOccurrence, ReminderOccurrence.kind == "catch_up")) == 1
    [late_row] = rows(engine, ReminderOccurrence, ReminderOccurrence.id == late_id)
    assert late_row.status == "pending" and late_row.folded_into_id is None
