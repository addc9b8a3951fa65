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
