"""HTML in what the desk shows (a task title, a contact's name, a report note, a request for help, an
extension's reason) is escaped exactly once on every page and in the HTML digest, raw in the Markdown digest;
form values a visitor typed come back escaped."""

from __future__ import annotations

import html5lib
from aiohttp.test_utils import TestClient
from markupsafe import escape
from sqlmodel import select

from coordbot.core.db import session_scope
from coordbot.plan import actions
from coordbot.plan.models import Contact, CrossRequest, Department, ProgressReport, Task

from .conftest import CSRF, NOW, Desk, csrf_of

EVIL = "<script>alert(1)</script> & <b>"
ESCAPED = str(escape(EVIL))
TWICE = ("&amp;amp;", "&amp;lt;", "&amp;gt;", "&amp;#34;")


def assert_escaped_once(page: str, where: str = "") -> None:
    assert "<script" not in page and EVIL not in page, where
    assert not any(t in page for t in TWICE), (where, [t for t in TWICE if t in page])
    assert ESCAPED in page, where


def taint(desk: Desk) -> None:
    with session_scope(desk.engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        task.title = "标题" + EVIL
        wang = s.get(Contact, desk.ids["wang"])
        assert wang is not None
        wang.name = "王" + EVIL
        s.add(
            ProgressReport(
                task_id=task.id,
                contact_id=wang.id,
                department_id=task.lead_department_id,
                received_at=NOW,
                text="进展" + EVIL,
                status="blocked",
                percent=30,
            )
        )
        task.last_report_at, task.progress = NOW, 30
        finance = s.exec(select(Department).where(Department.code == "finance")).one()
        s.add(
            CrossRequest(
                task_id=task.id,
                from_department_id=task.lead_department_id,
                to_department_id=finance.id,
                text="求助" + EVIL,
                created_at=NOW,
            )
        )
        actions.request_extension(
            session=s, task=task, new_due=task.due_date.replace(year=2027), reason="理由" + EVIL, contact=wang, now=NOW
        )


async def test_desk_pages_escape_payload_once(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    taint(desk_db)
    await login("zhang")  # the office sees everything
    # the dashboard folds green tasks (1.1 is green): its group unfolded
    for path in (
        "/?group=1",
        "/tasks/test-plan/1.1",
        "/departments/amr",
        "/?group=1&lang=en",
        "/tasks/test-plan/1.1?lang=en",
    ):
        resp = await app_client.get(path)
        assert resp.status == 200, path
        page = await resp.text()
        html5lib.HTMLParser(strict=False).parse(page)
        assert_escaped_once(page, path)
        assert f"标题{ESCAPED}" in page, path
    task_page = await (await app_client.get("/tasks/test-plan/1.1")).text()
    for raw in ("求助", "理由", "王"):
        assert f"{raw}{ESCAPED}" in task_page, raw


async def test_digest_download_escapes_html_once_and_keeps_markdown_raw(  # type: ignore[no-untyped-def]
    app_client: TestClient, desk_db: Desk, login
) -> None:
    taint(desk_db)
    await login("zhang")
    for lang in ("", "&lang=en"):
        resp = await app_client.get(f"/digest?fmt=html{lang}")
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
        html5lib.HTMLParser(strict=True).parse(page)
        assert_escaped_once(page)
        # the lines the report macros make (the extension with its reason, the request for help)
        assert f"理由{ESCAPED}" in page and f"标题{ESCAPED}" in page
        md = await (await app_client.get(f"/digest?fmt=md{lang}")).text()
        assert f"理由{EVIL}" in md and f"标题{EVIL}" in md and "&lt;" not in md and "&amp;" not in md


async def test_login_form_values_come_back_escaped(app_client: TestClient) -> None:
    page = await (await app_client.get("/login")).text()
    typed = '"><script>alert(1)</script>'
    resp = await app_client.post("/login", data={"csrf": csrf_of(page), "department": typed, "name": ""})
    assert resp.status == 400
    text = await resp.text()
    assert "<script" not in text and f'value="{escape(typed)}"' in text
    assert CSRF.search(text)
