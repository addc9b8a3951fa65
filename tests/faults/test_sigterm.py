"""Issue 17, item 7: SIGTERM in the middle of a flood stops ``coordbot run`` within 10 s, and nothing is lost:
what was not stored yet waits in the spool (or, not yet confirmed, at Telegram), and the next run stores it,
each update exactly once. A real process polling the fake Bot API, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ._inbound import answered, answers, report, running, sends, start_bot, world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
FLOOD = 300  # the 500-message flood is test_flood.py; here what matters is a stop in the middle
OTHERS = 4
EACH = 5


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_sigterm_mid_flood_stops_within_10s_and_the_next_run_stores_the_rest(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    async with world(request, backend, tmp_path, contacts=OTHERS + 2) as w:
        flooder, others = w.users[0], w.users[1 : OTHERS + 1]
        async with running(w) as bot:
            sent = list(sends(w.server, flooder, [f"测试消息{i}" for i in range(FLOOD)]))
            for k in range(EACH):
                for user in others:
                    sent += sends(w.server, user, [f"2.{1 + k % 2} 本周开展双随机检查{k + 1}项"])
            # Under way: the flood's first answer is out, the rest is being stored when the stop comes.
            await w.server.wait_for_messages(flooder, 1, timeout=20)
            stopped_in = await bot.sigterm()
        at_stop = len(w.stored(sent))
        in_spool = w.spooled()
        at_telegram = len(w.server.pending_updates())
        bot = await start_bot(w, "second")
        try:
            replayed = await w.wait_stored(sent, timeout=40)
            await answered(w, w.users[-1], "/help", timeout=10, bot=bot)
            second_stop = await bot.sigterm()
        finally:
            bot.kill()
    stored = Counter(w.stored(sent))
    report(
        f"SIGTERM mid-flood ({backend})",
        updates=len(sent),
        stop_s=f"{stopped_in:.2f}",
        stored_at_stop=at_stop,
        in_spool_at_stop=in_spool,
        unconfirmed_at_telegram=at_telegram,
        rest_stored_by_next_run_s=f"{replayed:.2f}",
        second_stop_s=f"{second_stop:.2f}",
    )
    assert stopped_in < 10.0
    assert at_stop < len(sent), "the stop should land before everything is stored"
    assert sorted(stored) == sorted(str(u) for u in sent) and set(stored.values()) == {1}
    for user in others:  # answered at most once each (an answer cut off by the stop is not sent again)
        assert len(answers(w.server, user)) <= EACH
    assert w.spooled() == 0
