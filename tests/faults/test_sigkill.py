"""SIGKILL mid-send (issue 17, item 4): a real ``coordbot run`` killed while sending Monday's reminders, then a
new one started. Counted in what the fake Bot API received: nothing lost, and the duplicates are exactly the sends
the killed process had made but not recorded — each send is recorded as it returns, so that is at most the sends
in flight (the engine's concurrency per channel), not the claim batch of 200. The killed process's conversation
worker (and any other child) ends with it.

Telegram's limits on (30/s overall, enforced by the fake server and kept by coordbot); the bot's clock at 60 times
the wall clock only to reach 09:30 at once. The restarted process's clock starts at 09:40, past the dead process's
2-minute leases, so it takes over what was claimed and not sent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from coordbot.plan.loader import LoadedPlan
from coordbot.scheduling.engine import SEND_CONCURRENCY
from coordbot.testing.fake_telegram import FakeBotAPI

from ._outage_procs import (
    MONDAY,
    TOKEN,
    alive,
    children,
    duplicates,
    occurrences,
    received,
    seed,
    settings_env,
    start,
    wait_until,
)

pytestmark = pytest.mark.slow
CONTACTS = 120
MESSAGES = 3  # each contact's 09:30 reminders: 360 messages, 12 s at Telegram's 30/s
KILL_AT = 100  # messages received when the process is killed
DUE = datetime.fromisoformat(MONDAY.format("09:30"))


async def test_sigkill_mid_send_loses_nothing_and_doubles_only_the_sends_in_flight(
    db_url: str, minimal_plan: LoadedPlan, tmp_path: Path
) -> None:
    async with FakeBotAPI(token=TOKEN) as server:  # Telegram's flood limits on
        chats = seed(db_url, minimal_plan, server, CONTACTS)
        env = settings_env(
            db_url,
            server,
            clock_start=MONDAY.format("09:28"),
            clock_speed=60,
            lease_seconds=120,
            handler_processes=1,
            handler_idle_seconds=0,  # the worker from the start (it starts on demand otherwise): a child to check
        )
        victim = await start(env, tmp_path / "victim.log")
        try:
            await victim.running()
            workers = children(victim.pid)
            await wait_until(lambda: len(server.sent_messages()) >= KILL_AT, 60, "sending began", bots=(victim,))
            os.kill(victim.pid, signal.SIGKILL)
            killed = time.monotonic()
            await victim.proc.wait()
            orphans_gone = await _gone(workers, 5.0, since=killed)
            await asyncio.sleep(0.5)  # a request already on the wire still lands
            at_kill = len(server.sent_messages())
            rows = [o for o in occurrences(db_url) if o.fire_at <= DUE]
            recorded = sum(o.status == "sent" for o in rows)
            claimed = sum(o.status == "claimed" for o in rows)
            unrecorded = at_kill - recorded  # each message is one row (two weekly requests are not batched)
        finally:
            for pid in children(victim.pid) if victim.proc.returncode is None else []:
                os.kill(pid, signal.SIGKILL)
            await victim.stop()

        env = {**env, "COORDBOT_CLOCK_START": MONDAY.format("09:40")}
        survivor = await start(env, tmp_path / "survivor.log")
        try:
            await survivor.running()
            began = time.monotonic()
            await wait_until(
                lambda: (
                    len(received(server, chats)) >= MESSAGES * CONTACTS
                    and not [o for o in occurrences(db_url) if o.fire_at <= DUE and o.status != "sent"]
                ),
                90,
                "every reminder after the restart",
                bots=(survivor,),
            )
            took = time.monotonic() - began
            await asyncio.sleep(1.0)
        finally:
            assert await survivor.stop() == 0, survivor.output()[-3000:]

    counts = received(server, chats)
    lost = MESSAGES * CONTACTS - len(counts)
    print(
        f"\nSIGKILL after {at_kill} of {MESSAGES * CONTACTS} messages: {recorded} recorded sent, {claimed} claimed "
        f"and not recorded, of which {unrecorded} sent (the in-flight window: at most {SEND_CONCURRENCY} sends per "
        f"channel); after the restart: lost {lost}, duplicates {duplicates(counts)}; {len(workers)} child "
        f"process(es) of the killed one, gone {orphans_gone:.2f} s after the kill; the rest sent in {took:.1f} s"
    )
    assert workers, "coordbot run starts a conversation worker by default: there was a child to check"
    assert orphans_gone >= 0, f"orphaned: {[p for p in workers if alive(p)]}"
    assert lost == 0
    assert duplicates(counts) == unrecorded <= SEND_CONCURRENCY
    assert claimed > unrecorded  # the claim batch was bigger than what could be doubled


async def _gone(pids: list[int], timeout: float, *, since: float) -> float:
    """Seconds from ``since`` until none of ``pids`` runs any more; -1 if some still do after ``timeout``."""
    while any(alive(p) for p in pids):
        if time.monotonic() - since > timeout:
            return -1.0
        await asyncio.sleep(0.01)
    return time.monotonic() - since
