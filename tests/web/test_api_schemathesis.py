"""Property-based tests of the JSON API against its own OpenAPI document (schemathesis).

The app is served on 127.0.0.1 in this process (its own event loop in a thread) over the desk's test
database, with an office token; for every operation schemathesis generates requests from the document
(valid and invalid: wrong types, out-of-range numbers, missing or extra fields, no or bad credentials) and
checks every answer against it: status codes and content types documented, bodies valid against the
response schemas, no 500 ever, invalid input refused with a 4xx, auth not ignored.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import date

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from sqlmodel import select

from coordbot.core.db import session_scope
from coordbot.plan import actions
from coordbot.plan.models import Contact, Task, TaskStatus
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.web import make_web_app
from coordbot.web.api import openapi_document
from coordbot.web.tokens import create_token

from .conftest import NOW, Desk
from .conftest import settings as desk_settings

EXAMPLES = 12  # per operation and backend (valid and invalid ones): the suite keeps its 10-minute budget
pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_dict(openapi_document())


class LiveServer:
    """An aiohttp app on 127.0.0.1:<free port>, served by its own event loop in a thread."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            port = self.runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, name="api-under-test", daemon=True)
        self.thread.start()
        assert ready.wait(10), "the server did not start"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def live_api(desk_db: Desk) -> Iterator[tuple[str, dict[str, str]]]:
    with session_scope(desk_db.engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        actions.request_extension(  # extension 1 of 1.1, the document's example: a decision can succeed once
            session=s,
            task=task,
            new_due=date(2025, 6, 30),
            reason="资金未到位",
            contact=s.get(Contact, desk_db.ids["wang"]),
            now=NOW,
        )
        s.exec(select(Task).where(Task.code == "2.1")).one().status = TaskStatus.REPORTED_DONE
        token = create_token(session=s, name="schemathesis", role="office", now=NOW)
    app = make_web_app(
        engine=desk_db.engine, settings=desk_settings(), calendar=WorkCalendar(tz="Asia/Shanghai"), clock=desk_db.clock
    )
    server = LiveServer(app)
    try:
        yield server.url, {"Authorization": f"Bearer {token}"}
    finally:
        server.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_its_document_says(case: schemathesis.Case, live_api: tuple[str, dict[str, str]]) -> None:
    base_url, headers = live_api
    case.call_and_validate(base_url=base_url, headers=headers)
