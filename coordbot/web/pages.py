"""Every route of the desk, in one list (``make_web_app`` mounts it beside the webhooks)."""

from __future__ import annotations

from aiohttp import web

from coordbot.web import office, reply, signin, views
from coordbot.web.desk import STATIC_DIR


def desk_routes() -> list[web.AbstractRouteDef]:
    return [
        *signin.routes(),
        *views.routes(),
        *office.routes(),
        *reply.routes(),
        web.static("/static", STATIC_DIR, append_version=False),
    ]
