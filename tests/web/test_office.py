"""The office's actions: each writes the same events as the chat/CLI path with actor web:<id>; leaders and
contacts cannot post them; a missing or wrong CSRF token is a 403; a wrong form changes nothing."""

from __future__ import annotations

import re
from datetime import date

from aiohttp.test_utils import TestClient
from sqlmodel import col, select

from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType
from coordbot.plan import actions
from coordbot.plan.models import Contact, Extension, Invite, Task, TaskStatus
from coordbot.scheduling.models import ReminderOccurrence

from .conftest import NOW, Desk

ACTIONS = [
    "/tasks/test-plan/1.1/confirm",
    "/tasks/test-plan/1.1/close",
    "/tasks/test-plan/1.1/remind",
    "/tasks/test-plan/1.1/extensions/1",
    "/departments/amr/invite",
]


def _events(desk: Desk, type: str) -> list[Event]:
    with desk.session() as s:
        return list(s.exec(select(Event).where(Event.type == type).order_by(col(Event.id))))


def _extension(desk: Desk) -> int:
    with session_scope(desk.engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        wang = s.get(Contact, desk.ids["wang"])
        ext = actions.request_extension(
            session=s, task=task, new_due=date(2025, 6, 30), reason="资金未到位", contact=wang, now=NOW
        )
        return ext.id  # type: ignore[return-value]


def _state(desk: Desk) -> tuple[int, int, int]:
    with desk.session() as s:
        return (
            len(s.exec(select(Event)).all()),
            len(s.exec(select(ReminderOccurrence)).all()),
            len(s.exec(select(Invite)).all()),
        )


async def test_anonymous_posts_are_sent_to_login(app_client: TestClient) -> None:
    for path in ACTIONS:
        resp = await app_client.post(path, data={"csrf": "x"}, allow_redirects=False)
        assert resp.status == 302, path


async def test_leader_and_contact_cannot_post_actions(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    _extension(desk_db)
    before = _state(desk_db)
    for who in ("li", "wang"):
        csrf = await login(who)
        for path in ACTIONS:
            resp = await app_client.post(path, data={"csrf": csrf, "decision": "approve", "name": "x"})
            assert resp.status == 403, (who, path)
            assert "资金未到位" not in await resp.text()
    assert _state(desk_db) == before


async def test_csrf_missing_or_wrong_is_refused(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    ext = _extension(desk_db)
    await login("zhang")
    before = _state(desk_db)
    for data in ({}, {"csrf": "wrong"}, {"csrf": ""}):
        resp = await app_client.post(f"/tasks/test-plan/1.1/extensions/{ext}", data={**data, "decision": "approve"})
        assert resp.status == 403
        assert "安全校验未通过" in await resp.text()
    assert _state(desk_db) == before


async def test_cross_site_origin_is_refused(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    csrf = await login("zhang")
    resp = await app_client.post(
        "/tasks/test-plan/1.1/remind", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert resp.status == 403


async def test_approve_extension(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    ext = _extension(desk_db)
    csrf = await login("zhang")
    resp = await app_client.post(
        f"/tasks/test-plan/1.1/extensions/{ext}", data={"csrf": csrf, "decision": "approve"}, allow_redirects=False
    )
    assert resp.status == 303
    (ev,) = _events(desk_db, EventType.EXTENSION_APPROVED)
    assert ev.actor == f"web:{desk_db.ids['zhang']}"
    with desk_db.session() as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        assert task.due_date == date(2025, 6, 30) and task.original_due_date == date(2024, 12, 31)
        notice = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.contact_id == desk_db.ids["wang"])).one()
        assert notice.kind == "notice" and "已批准" in notice.body
    page = await app_client.get("/tasks/test-plan/1.1")
    assert "已批准延期。" in await page.text()  # the flash message
    # a second decision is refused in words, and changes nothing
    before = _state(desk_db)
    again = await app_client.post(f"/tasks/test-plan/1.1/extensions/{ext}", data={"csrf": csrf, "decision": "refuse"})
    assert again.status == 409 and "already approved" in await again.text()
    assert _state(desk_db) == before


async def test_refuse_extension_and_form_errors(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    ext = _extension(desk_db)
    csrf = await login("zhang")
    before = _state(desk_db)
    bad = await app_client.post(f"/tasks/test-plan/1.1/extensions/{ext}", data={"csrf": csrf, "decision": "maybe"})
    assert bad.status == 400 and "请选择批准或不予批准" in await bad.text()
    missing = await app_client.post("/tasks/test-plan/1.1/extensions/999", data={"csrf": csrf, "decision": "approve"})
    assert missing.status == 404
    assert _state(desk_db) == before
    ok = await app_client.post(
        f"/tasks/test-plan/1.1/extensions/{ext}", data={"csrf": csrf, "decision": "refuse"}, allow_redirects=False
    )
    assert ok.status == 303
    (ev,) = _events(desk_db, EventType.EXTENSION_REJECTED)
    assert ev.actor == f"web:{desk_db.ids['zhang']}"
    with desk_db.session() as s:
        assert s.get(Extension, ext).status == "rejected"  # type: ignore[union-attr]


async def test_confirm_proposed_lead(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    csrf = await login("zhang")
    resp = await app_client.post("/tasks/test-plan/1.1/confirm", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    ev = _events(desk_db, EventType.TASK_UPDATED)[-1]
    assert ev.actor == f"web:{desk_db.ids['zhang']}" and ev.payload["changes"]["assignment"] == [
        "proposed",
        "confirmed",
    ]
    with desk_db.session() as s:
        assert s.exec(select(Task).where(Task.code == "1.1")).one().assignment == "confirmed"
    before = _state(desk_db)
    again = await app_client.post("/tasks/test-plan/1.1/confirm", data={"csrf": csrf})
    assert again.status == 409 and "no proposed department" in await again.text()
    assert _state(desk_db) == before


async def test_close_task(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    csrf = await login("zhang")
    before = _state(desk_db)
    early = await app_client.post("/tasks/test-plan/2.1/close", data={"csrf": csrf})
    assert early.status == 409 and "not been reported done" in await early.text()
    assert _state(desk_db) == before
    with session_scope(desk_db.engine) as s:
        s.exec(select(Task).where(Task.code == "2.1")).one().status = TaskStatus.REPORTED_DONE
    resp = await app_client.post("/tasks/test-plan/2.1/close", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    (ev,) = _events(desk_db, EventType.TASK_CLOSED)
    assert ev.actor == f"web:{desk_db.ids['zhang']}"


async def test_resend_reminder(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    csrf = await login("zhang")
    resp = await app_client.post("/tasks/test-plan/2.1/remind", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    with desk_db.session() as s:
        (occ,) = s.exec(select(ReminderOccurrence)).all()
        assert occ.contact_id == desk_db.ids["wang"] and occ.kind == "notice" and "2.1" in occ.body
    (ev,) = _events(desk_db, EventType.REMINDER_SCHEDULED)
    assert ev.actor == f"web:{desk_db.ids['zhang']}" and ev.payload["resent"] is True
    # sci's only contact has no bound address: nothing to send, said in words
    before = _state(desk_db)
    none = await app_client.post("/tasks/test-plan/1.2/remind", data={"csrf": csrf})
    assert none.status == 409 and "没有已绑定的联络员" in await none.text()
    assert _state(desk_db) == before


async def test_invite_contact_shows_the_code_once(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    csrf = await login("zhang")
    resp = await app_client.post(
        "/departments/finance/invite", data={"csrf": csrf, "name": "周涛", "role": "contact", "language": "zh"}
    )
    assert resp.status == 200
    text = await resp.text()
    code = re.search(r'<p class="code-once">([^<]+)</p>', text).group(1)  # type: ignore[union-attr]
    assert f"绑定 {code}" in text
    (ev,) = _events(desk_db, EventType.INVITE_CREATED)
    assert ev.actor == f"web:{desk_db.ids['zhang']}"
    with desk_db.session() as s:
        (invite,) = s.exec(select(Invite)).all()
        assert invite.name == "周涛" and invite.code_hash != code  # only the hash is stored
    assert code not in await (await app_client.get("/departments/finance")).text()


async def test_invite_form_errors_per_field_change_nothing(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    csrf = await login("zhang")
    before = _state(desk_db)
    resp = await app_client.post(
        "/departments/finance/invite", data={"csrf": csrf, "name": "", "role": "boss", "language": "fr"}
    )
    assert resp.status == 400
    text = await resp.text()
    assert (
        "请填写被邀请人的姓名" in text
        and "请选择联络员、分管领导或联席会议办公室" in text
        and "请选择中文或English" in text
    )
    long = await app_client.post(
        "/departments/finance/invite", data={"csrf": csrf, "name": "长" * 65, "role": "contact", "language": "zh"}
    )
    assert long.status == 400 and "不能超过 64 个字" in await long.text()
    assert _state(desk_db) == before
