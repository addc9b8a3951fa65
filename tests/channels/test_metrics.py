"""``/metrics`` after a few real events: reminders sent through the fake Bot API, replies handled by the
runtime and understood or not, a 429 retried; scraped over HTTP in Prometheus text format (issue 18)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from coordbot.channels.base import Outbound
from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.runtime import Runtime
from coordbot.scheduling.engine import send_with_retry
from coordbot.testing.fake_telegram import FakeBotAPI
from coordbot.web.app import make_web_app

from .conftest import WANG, BoundFactory, at

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(client: TestClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert "Set-Cookie" not in resp.headers  # a scraper is no desk visitor: no session
    text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_count_reminders_replies_and_rate_limits(
    frontend: TelegramFrontend,
    bound: BoundFactory,
    runtime: Runtime,
    clock: FakeClock,
    engine: Engine,
    server: FakeBotAPI,
) -> None:
    app = make_web_app(engine=engine, settings=runtime.settings, calendar=runtime.calendar, clock=clock)
    async with TestClient(TestServer(app)) as client:
        before = await _scrape(client)  # counters are per process: other tests may have counted already
        wang = await bound(WANG, "amr")
        reminders = runtime.build_reminders()
        reminders.sync()
        clock.set(at(2026, 3, 2, 9, 31))
        assert (await reminders.tick()).sent == 2
        await wang.say("2.1 本周开展双随机检查2项")
        await wang.say("2.1")  # nothing to record: asked what to record
        await wang.say("2.2 已全部完成，存在风险")  # done, yet at risk: asked which
        server.fail_next("sendMessage", status=429, retry_after=1)
        await send_with_retry(runtime.channels["telegram"], Outbound(address=str(WANG), text="hello"))
        after = await _scrape(client)

    assert _delta(before, after, "coordbot_reminders_total", channel="telegram", outcome="due") == 2
    assert _delta(before, after, "coordbot_reminders_total", channel="telegram", outcome="sent") == 2
    assert _delta(before, after, "coordbot_reminders_total", channel="telegram", outcome="failed") == 0
    assert _delta(before, after, "coordbot_inbound_updates_total", channel="telegram") == 4  # /start and three
    assert _delta(before, after, "coordbot_inbound_handling_seconds_count", channel="telegram") == 4
    assert _delta(before, after, "coordbot_parse_outcomes_total", outcome="understood") == 1
    assert _delta(before, after, "coordbot_parse_outcomes_total", outcome="asked_back") == 1
    assert _delta(before, after, "coordbot_parse_outcomes_total", outcome="no_information") == 1
    assert _delta(before, after, "coordbot_rate_limited_total", channel="telegram") == 1
    assert _delta(before, after, "coordbot_send_seconds_count", channel="telegram") == 2 + 1  # the 429 retried within
    assert after[("coordbot_open_escalations", ())] == 0
