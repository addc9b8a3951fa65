"""The office's actions on the desk (POST forms with CSRF): filled in by the next commit."""

from __future__ import annotations

from aiohttp import web


def routes() -> list[web.RouteDef]:
    return []
