"""The task page (and the API's task) with the 责任领导 the plan names, and a rate target read at the period's
end: the latest value against the target, no trajectory line."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from sqlmodel import select

from coordbot.core.db import session_scope
from coordbot.plan.models import Task

from .conftest import Desk
from .test_api import API, token


async def test_the_task_page_names_the_responsible_leader(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    with session_scope(desk_db.engine) as s:
        s.exec(select(Task).where(Task.code == "2.1")).one().responsible_leader = "分管副区长张明"
    await login("li")
    text = await (await app_client.get("/tasks/test-plan/2.1")).text()
    assert "<dt>责任领导</dt><dd>分管副区长张明</dd>" in text
    assert "责任领导" not in await (await app_client.get("/tasks/test-plan/2.2")).text()  # none named: no row
    detail = await (await app_client.get(f"{API}/tasks/test-plan/2.1", headers=token(desk_db, "office"))).json()
    assert detail["leader"] == "分管副区长张明"
