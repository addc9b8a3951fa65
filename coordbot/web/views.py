"""The desk's pages: the dashboard, a department, a task."""

from __future__ import annotations

from aiohttp import web

from coordbot.web.auth import Roles, require
from coordbot.web.desk import page


async def dashboard(request: web.Request) -> web.Response:
    viewer = await require(request, Roles.ANY)
    return page(request, "dashboard.html", viewer=viewer)


def routes() -> list[web.RouteDef]:
    return [web.get("/", dashboard)]
