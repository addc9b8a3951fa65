"""coordbot's HTTP side (aiohttp): the platforms' webhooks, a health check and the office's web desk.

``make_web_app(routes)`` alone serves the webhooks and ``/healthz`` (what the channel tests and benches
start); given the engine, settings, calendar and clock it also mounts the desk (pages, sign-in, static
files) on the same application::

    app = make_web_app(engine=engine, settings=settings, calendar=calendar, clock=clock, routes=webhooks)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.engine import Engine

from coordbot.core.clock import Clock, SystemClock
from coordbot.core.config import Settings
from coordbot.core.logformat import log_context
from coordbot.scheduling.calendar import WorkCalendar

MAX_BODY = 1 << 20
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Each request's log lines carry its id: the proxy's ``X-Request-ID`` when it sends a sane one, else a
    fresh one; the response says which."""
    given = request.headers.get("X-Request-ID", "")
    rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
    with log_context(request_id=rid):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["X-Request-ID"] = rid
            raise
    response.headers["X-Request-ID"] = rid
    return response


async def health(_: web.Request) -> web.Response:
    """Liveness for load balancers and docker."""
    return web.json_response({"ok": True})


def make_web_app(
    routes: Iterable[web.RouteDef] = (),
    *,
    engine: Engine | None = None,
    settings: Settings | None = None,
    calendar: WorkCalendar | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """The application: ``/healthz`` and ``routes`` (webhooks); with ``engine``, the desk as well."""
    if engine is None:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[request_ids])
    else:
        from coordbot.web.auth import middlewares
        from coordbot.web.desk import DESK, Desk

        settings = settings or Settings()
        desk = Desk(
            engine=engine,
            settings=settings,
            calendar=calendar or WorkCalendar(tz=settings.timezone),
            clock=clock or SystemClock(),
        )
        app = web.Application(client_max_size=MAX_BODY, middlewares=[request_ids, *middlewares(desk)])
        app[DESK] = desk
        from coordbot.web.collector import raise_young_threshold

        raise_young_threshold()  # a page's short-lived objects die before a collection promotes them
    from coordbot.web.metrics import metrics

    app.add_routes([web.get("/healthz", health), web.get("/metrics", metrics), *routes])
    if engine is not None:
        from coordbot.web import api
        from coordbot.web.pages import desk_routes

        app.add_routes(desk_routes())
        app.add_routes(api.routes())  # last: it ends with the catch-all of /api/ (problem details)
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)  # access logs would carry chat ids: off by default
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
