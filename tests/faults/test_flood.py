"""Issue 17, item 7: one chat flooding 500 messages does not hold up another contact's answer (under 5 s), and
every one of the 500 is stored: a chat's messages wait in the spool and chats are served in turn. Over its flood
limit a chat gets one notice instead of answers (what it sends is still recorded).

A real ``coordbot run`` polls the fake Bot API, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from coordbot.channels.telegram import FLOOD_BURST

from ._inbound import answered, answers, report, running, sends, world

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
FLOOD = 500


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_flood_from_one_chat_does_not_delay_another_and_all_of_it_is_stored(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    async with world(request, backend, tmp_path, contacts=2) as w, running(w) as bot:
        flooder, other = w.users
        started = time.monotonic()
        flood = list(sends(w.server, flooder, [f"2.1 本周开展双随机检查{i}项" for i in range(FLOOD)]))
        # Queued behind all 500: Telegram hands the bot its updates in order.
        waited = await answered(w, other, "/tasks", timeout=30, bot=bot)
        await w.wait_stored(flood, timeout=40)
        stored_in = time.monotonic() - started
        stopped_in = await bot.sigterm()
    stored = Counter(w.stored(flood))
    texts = answers(w.server, flooder)
    notices = [t for t in texts if "发送的消息过多" in t]
    report(
        f"flood ({backend})",
        flood=FLOOD,
        other_answered_s=f"{waited:.2f}",
        all_stored_s=f"{stored_in:.2f}",
        stored=sum(stored.values()),
        flooder_answers=len(texts) - len(notices),
        notices=len(notices),
        stop_s=f"{stopped_in:.2f}",
    )
    assert waited < 5.0, f"the other contact waited {waited:.1f} s behind the flood"
    assert sorted(stored) == sorted(str(u) for u in flood) and set(stored.values()) == {1}
    # Answered up to the flood limit (a burst, then one a second), the rest only recorded. The one notice comes
    # after the burst's answers, which Telegram's limit lets out one a second: it may not be out yet.
    assert len(notices) <= 1
    assert len(texts) - len(notices) <= FLOOD_BURST + stored_in + 2
    assert w.spooled() == 0
