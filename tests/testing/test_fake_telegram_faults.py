"""The fake Bot API's outages and late answers, as python-telegram-bot sees them."""

from __future__ import annotations

import httpx
import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut
from telegram.request import HTTPXRequest

from coordbot.testing.fake_telegram import FakeBotAPI

from .conftest import ALICE, ZHANG


@pytest.fixture(autouse=True)
def _no_flood_limits(server: FakeBotAPI) -> None:
    server.rate_limits.enabled = False  # several messages to one chat within a second


async def test_refused_then_back_on_the_same_port(server: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(ZHANG, "before")  # a kept-alive connection the outage must cut too
    port = server.port
    await server.go_down("refused")
    assert server.down == "refused"
    with pytest.raises(NetworkError) as caught:
        await bot.send_message(ZHANG, "while down")
    assert isinstance(caught.value.__cause__, httpx.ConnectError | httpx.RemoteProtocolError | httpx.ReadError)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{server.base_url}{server.token}/getMe")  # a new connection: refused
    await server.come_up()
    assert server.port == port and server.down is None
    await bot.send_message(ZHANG, "after")
    assert [m["text"] for m in server.sent_messages(ZHANG)] == ["before", "after"]


async def test_bad_gateway_answers_html_and_nothing_takes_effect(server: FakeBotAPI, bot: Bot) -> None:
    await server.go_down("502")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(ZHANG, "while down")
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{server.base_url}{server.token}/sendMessage", data={"chat_id": ZHANG, "text": "x"})
    assert (
        answer.status_code == 502 and "nginx" in answer.text and answer.headers["content-type"].startswith("text/html")
    )
    server.user_sends(ZHANG, "a reply meanwhile")
    assert server.pending_updates()  # kept for when it is back
    await server.come_up()
    assert server.sent_messages(ZHANG) == []
    assert [c.status for c in server.calls_to("sendMessage")] == [502, 502]


async def test_a_stalled_answer_times_out_after_the_message_was_sent(server: FakeBotAPI) -> None:
    async with Bot(server.token, base_url=server.base_url, request=HTTPXRequest(read_timeout=0.2)) as slow:
        server.stall_next("sendMessage", 0.6, chat_id=ZHANG)
        with pytest.raises(TimedOut) as caught:
            await slow.send_message(ZHANG, "accepted, answer late")
        assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
        # Taken before the answer was held: the chat has it although the client gave up.
        assert [m["text"] for m in server.sent_messages(ZHANG)] == ["accepted, answer late"]
        await slow.send_message(ALICE, "another chat is answered at once")
        await slow.send_message(ZHANG, "the rule was used up", read_timeout=2.0)
    assert len(server.sent_messages(ZHANG)) == 2
