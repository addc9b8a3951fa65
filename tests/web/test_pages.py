"""The dashboard, department and task pages, the downloads, and who may see what."""

from __future__ import annotations

import re
from datetime import timedelta

import html5lib
from aiohttp.test_utils import TestClient
from sqlmodel import select

from coordbot.core import events
from coordbot.core.db import session_scope
from coordbot.core.events import EventType
from coordbot.plan import actions
from coordbot.plan.models import Contact, Observation, Target, Task
from coordbot.reports.models import Briefing

from .conftest import NOW, Desk


async def test_dashboard_for_the_office(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    text = await (await app_client.get("/")).text()
    assert "测试工作方案" in text
    for code in ("2.1", "2.2"):  # yellow: listed; 1.1 and 1.2 are green, folded (see test_dashboard.py)
        assert f"/tasks/test-plan/{code}" in text
    assert "绿灯" in text or "黄灯" in text or "红灯" in text  # colour in words, not emoji
    assert "🟢" not in text and "🔴" not in text
    assert "/digest?plan=test-plan" in text


async def test_dashboard_quota_trajectory(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    with session_scope(desk_db.engine) as s:
        target = s.exec(select(Target).where(Target.metric == "special_actions")).one()
        s.add(Observation(target_id=target.id, value=7, observed_on=NOW.date()))  # 7 of 10 by mid-June
    await login("zhang")
    text = await (await app_client.get("/?group=2")).text()  # 2.1 is ahead now: green, listed in its group
    assert "今年 7/10项" in text
    assert "快于序时" in text


async def test_dashboard_filters(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    text = await (await app_client.get("/?department=sci&colour=green")).text()
    assert "/tasks/test-plan/1.2" in text and "/tasks/test-plan/2.1" not in text
    text = await (await app_client.get("/?overdue=1")).text()
    assert "/tasks/test-plan/" not in text  # nothing is overdue in June 2024
    text = await (await app_client.get("/?colour=purple")).text()  # an unknown colour is ignored
    assert "/tasks/test-plan/2.1" in text


async def test_contact_sees_only_their_departments_tasks(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhao")  # finance: co-department of 1.1 only
    text = await (await app_client.get("/?colour=green")).text()
    assert "/tasks/test-plan/1.1" in text
    assert "/tasks/test-plan/1.2" not in text and "/tasks/test-plan/2.1" not in text
    assert "/digest" not in text
    assert (await app_client.get("/tasks/test-plan/1.1")).status == 200


async def test_contact_of_another_department_gets_403_without_data(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhao")
    for path in ("/tasks/test-plan/2.1", "/departments/amr", "/departments/sci"):
        resp = await app_client.get(path)
        assert resp.status == 403, path
        text = await resp.text()
        assert "加大行政保护力度" not in text and "王敏" not in text and "区市场监管局" not in text
    assert (await app_client.get("/digest")).status == 403
    assert (await app_client.get("/briefing")).status == 403


async def test_anonymous_gets_the_login_page_for_every_page(app_client: TestClient) -> None:
    for path in ("/", "/tasks/test-plan/1.1", "/departments/amr", "/digest", "/briefing"):
        resp = await app_client.get(path, allow_redirects=False)
        assert resp.status == 302, path
        assert resp.headers["Location"].startswith("/login?next="), path


async def test_task_page(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    with session_scope(desk_db.engine) as s:
        target = s.exec(select(Target).where(Target.metric == "special_actions")).one()
        s.add(Observation(target_id=target.id, value=3, observed_on=NOW.date()))
    await login("li")  # a leader reads everything
    resp = await app_client.get("/tasks/test-plan/2.1")
    assert resp.status == 200
    text = await resp.text()
    assert "<svg" in text and 'class="trajectory"' in text and "3 / 10" in text
    assert "王敏" in text  # who is bound for it
    assert "办理记录" in text and 'data-type="task.assigned"' in text
    assert "办公室操作" not in text  # a leader sees no office forms
    assert (await app_client.get("/tasks/test-plan/9.9")).status == 404


async def test_task_page_shows_requests_and_extensions(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    from coordbot.plan.models import CrossRequest

    with session_scope(desk_db.engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        wang = s.get(Contact, desk_db.ids["wang"])
        actions.request_extension(
            session=s, task=task, new_due=task.due_date.replace(year=2025), reason="等待财政资金", contact=wang, now=NOW
        )
        s.add(
            CrossRequest(
                task_id=task.id,
                from_department_id=task.lead_department_id,
                to_department_id=2,
                text="请区财政局安排资金",
            )
        )
    await login("zhang")
    text = await (await app_client.get("/tasks/test-plan/1.1")).text()
    assert "请区财政局安排资金" in text and "等待财政资金" in text and "批准延期" in text
    assert "确认牵头/配合单位" in text  # 1.1's lead is only proposed


async def test_department_page(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("wang")
    resp = await app_client.get("/departments/amr")
    assert resp.status == 200
    text = await resp.text()
    assert "王敏" in text and "已绑定（telegram）" in text and "1001" not in text  # no chat ids
    assert "邀请联络人" not in text  # contacts do not invite
    assert (await app_client.get("/departments/nope")).status == 404


async def test_digest_download(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("li")
    resp = await app_client.get("/digest?fmt=md")
    assert resp.status == 200
    assert "attachment" in resp.headers["Content-Disposition"] and "2024-W24" in resp.headers["Content-Disposition"]
    assert "测试工作方案" in await resp.text()
    html = await app_client.get("/digest?fmt=html")
    assert html.status == 200 and html.content_type == "text/html"


async def test_briefing_download(app_client: TestClient, desk_db: Desk, login, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    assert (await app_client.get("/briefing")).status == 404
    path = tmp_path / "briefing.md"
    path.write_text("# 简报", encoding="utf-8")
    with session_scope(desk_db.engine) as s:
        plan_id = s.exec(select(Task)).first().plan_id  # type: ignore[union-attr]
        s.add(
            Briefing(
                plan_id=plan_id,
                meeting_date=NOW.date(),
                period_start=NOW.date(),
                period_end=NOW.date(),
                format="md",
                path=str(path),
            )
        )
    text = await (await app_client.get("/")).text()
    assert "最新简报" in text
    resp = await app_client.get("/briefing")
    assert resp.status == 200 and "简报" in await resp.text()


async def test_english_pages(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    text = await (await app_client.get("/?lang=en")).text()
    assert "Lead department" in text and 'href="/tasks/test-plan/2.1?lang=en"' in text
    text = await (await app_client.get("/tasks/test-plan/2.1?lang=en")).text()
    assert "History" in text and "Office actions" in text


async def test_pages_carry_security_headers(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhang")
    resp = await app_client.get("/")
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
COLOUR_WORDS = {"": {"红灯", "黄灯", "绿灯", "红", "黄", "绿"}, "en": {"Red", "Yellow", "Green"}}


async def test_status_colours_are_shaded_words_on_every_page(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    """Issue 16: no 🟢🟡🔴 on the desk's pages nor in the HTML digest it serves; each colour is a word in a box
    shaded by its class (the dashboard's counts and rows, a task's heading, a department's list, 本周变化)."""
    with session_scope(desk_db.engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        events.record(  # a colour change this week, as actions.recolour writes it: 本周变化 says "绿 → 黄"
            s,
            EventType.TASK_COLOUR_CHANGED,
            at=NOW - timedelta(hours=2),
            plan_id=task.plan_id,
            task_id=task.id,
            old="green",
            new="yellow",
            reason="behind_quota",
        )
    await login("zhang")
    for lang in ("", "en"):
        for path in (
            "/",
            "/?colour=green",
            "/?group=1",
            "/tasks/test-plan/2.1",
            "/departments/amr",
            "/digest?fmt=html",
        ):
            url = path + (("&" if "?" in path else "?") + "lang=en" if lang else "")
            resp = await app_client.get(url)
            assert resp.status == 200, url
            page = await resp.text()
            assert not EMOJI.search(page), (url, EMOJI.findall(page))
            doc = html5lib.parse(page, namespaceHTMLElements=False)
            boxes = [
                (span.get("class", ""), "".join(span.itertext()).strip())
                for span in doc.iter("span")
                if {"colour", "shade"} & set(span.get("class", "").split())
            ]
            assert boxes, url
            for cls, text in boxes:
                assert text in COLOUR_WORDS[lang], (url, cls, text)
