"""``GET /metrics``: coordbot's counters (:mod:`coordbot.core.metrics`) in Prometheus text format, with the
gauges that live in the database (open escalations, the latest digest) read at each scrape."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coordbot.core.metrics import LAST_DIGEST, OPEN_ESCALATIONS, REGISTRY
from coordbot.plan.models import OPEN_STATUSES, Task
from coordbot.reports.models import Digest
from coordbot.web.desk import DESK


def _refresh(engine: Engine) -> None:
    with Session(engine) as s:
        escalated = s.exec(
            select(func.count())
            .select_from(Task)
            .where(
                col(Task.escalation_level) >= 1,
                col(Task.archived_at).is_(None),
                col(Task.status).in_([str(x) for x in OPEN_STATUSES]),
            )
        ).one()
        latest = s.exec(select(func.max(Digest.created_at))).one()
    OPEN_ESCALATIONS.set(escalated)
    if latest is not None:
        LAST_DIGEST.set(latest.timestamp())


async def metrics(request: web.Request) -> web.Response:
    """The scrape; the database gauges only when the app has the desk (and so the database)."""
    desk = request.app.get(DESK)
    if desk is not None:
        await asyncio.to_thread(_refresh, desk.engine)
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
