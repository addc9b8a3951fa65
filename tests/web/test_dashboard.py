"""The dashboard by exception: red and yellow in full, green folded per group (``?group=`` expands one), paged
lists, and the week's roll-up kept per process until the next event is written.

In the minimal plan group 1 (1.1, 1.2) is green and group 2 (2.1, 2.2) yellow on NOW.
"""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import select

from coordbot.core.db import session_scope
from coordbot.core.events import Event
from coordbot.plan import actions
from coordbot.plan.models import Observation, Target, Task
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.web import make_web_app
from coordbot.web.desk import DESK
from coordbot.web.week_cache import event_revision

from .conftest import NOW, Desk, login_as, settings


async def test_green_tasks_fold_into_a_count_per_group(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    text = await (await app_client.get("/")).text()
    assert "/tasks/test-plan/2.1" in text and "/tasks/test-plan/2.2" in text  # yellow: in full
    assert "/tasks/test-plan/1.1" not in text and "/tasks/test-plan/1.2" not in text  # green: folded
    assert "2 项，已折叠" in text and 'href="/?plan=test-plan&amp;group=1"' in text
    assert 'data-n="4"' in text  # the count still covers every task


async def test_a_group_expands_to_its_full_list(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    text = await (await app_client.get("/?plan=test-plan&group=1")).text()
    assert "/tasks/test-plan/1.1" in text and "/tasks/test-plan/1.2" in text
    assert "/tasks/test-plan/2.1" not in text and "已折叠" not in text
    assert "仅显示：（一）" in text and "返回总览" in text
    en = await (await app_client.get("/?group=1&lang=en")).text()
    assert 'href="/tasks/test-plan/1.1?lang=en"' in en and "Back to the overview" in en


async def test_filters_keep_working_with_the_fold(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    green = await (await app_client.get("/?colour=green")).text()  # a filter for green shows green tasks
    assert "/tasks/test-plan/1.1" in green and "/tasks/test-plan/2.1" not in green and "已折叠" not in green
    sci = await (await app_client.get("/?department=sci")).text()  # 1.2 only, green: folded, the link keeps it
    assert "1 项，已折叠" in sci and "department=sci&amp;group=1" in sci
    assert "/tasks/test-plan/2.1" not in sci


async def test_long_lists_are_paged(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    app_client.server.app[DESK].page_size = 1  # the desk's setting, one row a page
    await login("zhang")
    first = await (await app_client.get("/?colour=green")).text()
    assert "/tasks/test-plan/1.1" in first and "/tasks/test-plan/1.2" not in first
    assert "第 1/2 页" in first and 'colour=green&amp;page=2" rel="next"' in first and 'rel="prev"' not in first
    second = await (await app_client.get("/?colour=green&page=2")).text()
    assert "/tasks/test-plan/1.2" in second and "/tasks/test-plan/1.1" not in second
    assert 'rel="prev"' in second and 'rel="next"' not in second
    for bad in ("abc", "0", "-1", "99"):  # a page that is not there: the nearest one, not an error
        resp = await app_client.get(f"/?colour=green&page={bad}")
        assert resp.status == 200 and "/tasks/test-plan/1." in await resp.text(), bad
    folded = await (await app_client.get("/")).text()  # a group whose tasks are all folded takes a row's place
    assert "2 项，已折叠" in folded and "/tasks/test-plan/2.1" not in folded and "第 1/3 页" in folded
    assert "/tasks/test-plan/2.1" in await (await app_client.get("/?page=2")).text()


async def test_the_week_is_kept_until_the_next_event(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    cache = app_client.server.app[DESK].rollups
    await login("zhang")
    builds = cache.builds
    await app_client.get("/")
    assert cache.builds == builds  # nothing written: the kept roll-up
    with session_scope(desk_db.engine) as s:  # a row without an event is not seen (every change writes one)
        target = s.exec(select(Target).where(Target.metric == "special_actions")).one()
        s.add(Observation(target_id=target.id, value=7, observed_on=NOW.date()))
    assert "/tasks/test-plan/2.1" in await (await app_client.get("/")).text()
    with session_scope(desk_db.engine) as s:  # a write elsewhere (the CLI, the bot, another desk …)
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        assert actions.confirm_assignment(session=s, task=task, actor="cli", now=NOW)
    text = await (await app_client.get("/")).text()
    assert cache.builds == builds + 1
    assert "/tasks/test-plan/2.1" not in text  # 2.1 is ahead of its line with 7 of 10: green, folded now


async def test_a_second_process_sees_the_first_ones_writes(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    other_app = make_web_app(
        engine=desk_db.engine, settings=settings(), calendar=WorkCalendar(tz="Asia/Shanghai"), clock=desk_db.clock
    )
    async with TestClient(TestServer(other_app)) as other:
        csrf = await login_as(other, desk_db, "zhang")
        await login("zhang")
        with session_scope(desk_db.engine) as s:  # 7 of 10 makes 2.1 green, but no event says so yet
            target = s.exec(select(Target).where(Target.metric == "special_actions")).one()
            s.add(Observation(target_id=target.id, value=7, observed_on=NOW.date()))
        assert "/tasks/test-plan/2.1" in await (await app_client.get("/")).text()
        # the other desk (another process: its own cache) confirms 1.1's departments, writing events
        resp = await other.post("/tasks/test-plan/1.1/confirm", data={"csrf": csrf}, allow_redirects=False)
        assert resp.status == 303, await resp.text()
        assert "/tasks/test-plan/2.1" not in await (await app_client.get("/")).text()


def test_the_revision_sees_an_event_committed_below_the_highest_id(desk_db: Desk) -> None:
    # PostgreSQL hands ids out before commit: a transaction may commit an id lower than one already read
    with session_scope(desk_db.engine) as s:
        top = event_revision(s)[0]
        s.add(Event(id=top + 10, type="test.late", actor="test"))
    with session_scope(desk_db.engine) as s:
        before = event_revision(s)
    with session_scope(desk_db.engine) as s:
        s.add(Event(id=top + 5, type="test.late", actor="test"))
    with session_scope(desk_db.engine) as s:
        after = event_revision(s)
    assert before[0] == after[0] == top + 10 and after != before
