"""Signing in: a one-time link over the person's channel, the office's password, sessions and CSRF."""

from __future__ import annotations

import re
from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlmodel import select

from coordbot.core.db import session_scope
from coordbot.plan.models import Contact
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.web.desk import DESK
from coordbot.web.models import WebSignin
from coordbot.web.signin import issue_link_token, set_password

from .conftest import Desk, csrf_of

LINK = re.compile(r"/login/(\S+)")


async def _ask_link(client: TestClient, department: str, name: str) -> int:
    page = await client.get("/login")
    assert page.status == 200
    resp = await client.post(
        "/login", data={"csrf": csrf_of(await page.text()), "department": department, "name": name}
    )
    return resp.status


def _notices(desk: Desk, who: str) -> list[ReminderOccurrence]:
    with desk.session() as s:
        return list(s.exec(select(ReminderOccurrence).where(ReminderOccurrence.contact_id == desk.ids[who])))


async def test_anonymous_pages_redirect_to_login(app_client: TestClient) -> None:
    resp = await app_client.get("/", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].startswith("/login?next=")


async def test_health_and_static_need_no_session(app_client: TestClient) -> None:
    assert (await app_client.get("/healthz")).status == 200
    css = await app_client.get("/static/desk.css")
    assert css.status == 200 and "@media" in await css.text()
    assert "Set-Cookie" not in css.headers


async def test_link_is_sent_through_the_outbox_and_signs_in_once(app_client: TestClient, desk_db: Desk) -> None:
    assert await _ask_link(app_client, "区市场监管局", "王敏") == 200
    (notice,) = _notices(desk_db, "wang")
    assert notice.kind == "notice" and notice.status == "pending"
    token = LINK.search(notice.body).group(1)  # type: ignore[union-attr]
    # a second request within a minute sends no second link
    assert await _ask_link(app_client, "amr", "王敏") == 200
    assert len(_notices(desk_db, "wang")) == 1

    page = await app_client.get(f"/login/{token}")  # a chat app's link preview: does not use it up
    assert page.status == 200 and "王敏" in await page.text()
    resp = await app_client.post(f"/login/{token}", data={"csrf": csrf_of(await page.text())}, allow_redirects=False)
    assert resp.status == 303
    home = await app_client.get("/")
    assert home.status == 200 and "王敏" in await home.text()

    again = await app_client.get(f"/login/{token}")
    assert again.status == 410
    assert "已使用过" in await again.text()


async def test_unknown_person_gets_the_same_answer_and_nothing_is_sent(app_client: TestClient, desk_db: Desk) -> None:
    assert await _ask_link(app_client, "amr", "不存在的人") == 200
    assert await _ask_link(app_client, "sci", "孙丽") == 200  # exists, but no bound address
    with desk_db.session() as s:
        assert s.exec(select(ReminderOccurrence)).all() == []


async def test_login_form_errors_per_field(app_client: TestClient, desk_db: Desk) -> None:
    page = await app_client.get("/login")
    resp = await app_client.post("/login", data={"csrf": csrf_of(await page.text()), "department": "", "name": ""})
    assert resp.status == 400
    text = await resp.text()
    assert "请填写单位名称或代码" in text and "请填写姓名" in text
    with desk_db.session() as s:
        assert s.exec(select(WebSignin)).all() == []


async def test_expired_link_says_so(app_client: TestClient, desk_db: Desk) -> None:
    desk = app_client.server.app[DESK]
    with session_scope(desk_db.engine) as s:
        contact = s.get(Contact, desk_db.ids["wang"])
        assert contact
        token = issue_link_token(session=s, desk=desk, contact=contact, now=desk_db.clock.now())
    desk_db.clock.advance(timedelta(minutes=16))
    resp = await app_client.get(f"/login/{token}")
    assert resp.status == 410
    assert "已过期" in await resp.text()


async def test_altered_link_is_refused(app_client: TestClient, desk_db: Desk) -> None:
    desk = app_client.server.app[DESK]
    with session_scope(desk_db.engine) as s:
        contact = s.get(Contact, desk_db.ids["wang"])
        assert contact
        token = issue_link_token(session=s, desk=desk, contact=contact, now=desk_db.clock.now())
    _cid, rest = token.split(".", 1)
    forged = f"{desk_db.ids['zhang']}.{rest}"  # someone else's id on a real link
    resp = await app_client.get(f"/login/{forged}")
    assert resp.status == 400 and "无效" in await resp.text()
    assert (await app_client.get("/login/garbage")).status == 400


async def test_link_post_without_csrf_is_refused(app_client: TestClient, desk_db: Desk) -> None:
    desk = app_client.server.app[DESK]
    with session_scope(desk_db.engine) as s:
        contact = s.get(Contact, desk_db.ids["wang"])
        assert contact
        token = issue_link_token(session=s, desk=desk, contact=contact, now=desk_db.clock.now())
    await app_client.get(f"/login/{token}")
    resp = await app_client.post(f"/login/{token}", data={"csrf": "wrong"})
    assert resp.status == 403
    resp = await app_client.post(f"/login/{token}", data={})
    assert resp.status == 403
    with desk_db.session() as s:
        assert s.exec(select(WebSignin)).one().used_at is None  # still usable


async def test_office_password(app_client: TestClient, desk_db: Desk) -> None:
    with session_scope(desk_db.engine) as s:
        contact = s.get(Contact, desk_db.ids["zhang"])
        assert contact
        set_password(session=s, contact=contact, password="correct horse battery", now=desk_db.clock.now())
    page = await app_client.get("/login")
    csrf = csrf_of(await page.text())
    form = {"csrf": csrf, "department": "amr", "name": "张静"}
    wrong = await app_client.post("/login/password", data={**form, "password": "nope nope nope"})
    assert wrong.status == 403 and "密码不正确" in await wrong.text()
    missing = await app_client.post("/login/password", data={**form, "password": ""})
    assert missing.status == 400 and "请填写密码" in await missing.text()
    ok = await app_client.post(
        "/login/password", data={**form, "password": "correct horse battery"}, allow_redirects=False
    )
    assert ok.status == 303
    home = await app_client.get("/")
    assert "张静" in await home.text()


def test_only_the_office_gets_a_password(desk_db: Desk) -> None:
    import pytest

    with session_scope(desk_db.engine) as s:
        contact = s.get(Contact, desk_db.ids["wang"])
        assert contact
        with pytest.raises(ValueError, match="only the office"):
            set_password(session=s, contact=contact, password="long enough password", now=desk_db.clock.now())
        office = s.get(Contact, desk_db.ids["zhang"])
        assert office
        with pytest.raises(ValueError, match="at least"):
            set_password(session=s, contact=office, password="short", now=desk_db.clock.now())


async def test_logout_needs_csrf_and_ends_the_session(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    csrf = await login("wang")
    assert (await app_client.post("/logout", data={"csrf": "x"})).status == 403
    resp = await app_client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert (await app_client.get("/", allow_redirects=False)).status == 302


async def test_cookie_is_httponly_and_samesite(app_client: TestClient) -> None:
    resp = await app_client.get("/login")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_inactive_contact_loses_the_session(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    await login("wang")
    with session_scope(desk_db.engine) as s:
        contact = s.get(Contact, desk_db.ids["wang"])
        assert contact
        contact.active = False
    assert (await app_client.get("/", allow_redirects=False)).status == 302


async def test_english(app_client: TestClient) -> None:
    resp = await app_client.get("/login?lang=en")
    text = await resp.text()
    assert "Sign in" in text and 'lang="en"' in text
    # remembered by the session
    assert "Sign in" in await (await app_client.get("/login")).text()
