"""coordbot's HTTP side (aiohttp): the Telegram webhook and a health check; more pages later."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

MAX_BODY = 1 << 20


async def health(_: web.Request) -> web.Response:
    """Liveness for load balancers and docker."""
    return web.json_response({"ok": True})


def make_web_app(routes: Iterable[web.RouteDef] = ()) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app.add_routes([web.get("/healthz", health), *routes])
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)  # access logs would carry chat ids: off by default
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
