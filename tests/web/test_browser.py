"""The desk in a real headless browser: Playwright's Python package driving Debian's Chromium
(``/usr/bin/chromium``; ``playwright install`` cannot download a browser here) against the app served on
127.0.0.1 from a thread. One browser for the module, a fresh context (no cookies) per test.

Without the browser, its driver package or the CJK fonts these tests skip with what to install, and fail
under ``CI=true``: ``.ci/run`` installs ``chromium chromium-driver fonts-noto-cjk`` and the dev extras
bring ``playwright`` and ``fonttools``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import subprocess
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlmodel import col, select

from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType
from coordbot.plan import actions
from coordbot.plan.models import Contact, Task
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.web import make_web_app, start_site
from coordbot.web.desk import DESK
from coordbot.web.signin import issue_link_token, set_password

from .conftest import NOW, Desk, settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]  # Playwright gives every launch a new empty --user-data-dir of its own
CJK_FAMILY = "Noto Sans CJK SC"
CALENDAR = WorkCalendar(tz="Asia/Shanghai")
OFFICE_PASSWORD = "desk-password-for-the-office"
TIMEOUT_MS = 15_000
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the browser, not the database


def _missing(what: str) -> None:
    message = f"{what} (.ci/run installs it: apt-get install -y chromium chromium-driver fonts-noto-cjk; pip: .[dev])"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        _missing(f"Debian's Chromium is not installed ({CHROMIUM})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def serving(desk: Desk, *, public: bool = False) -> Iterator[tuple[str, web.Application]]:
    """The desk on 127.0.0.1 (a free port) with its own event loop in a thread; yields (base URL, app). With
    ``public`` the address is the desk's ``public_url`` (reminders then carry reply links to it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    base = f"http://127.0.0.1:{port}"
    conf = dataclasses.replace(settings(), public_url=base) if public else settings()
    app = make_web_app(engine=desk.engine, settings=conf, calendar=CALENDAR, clock=desk.clock)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="desk", daemon=True)
    thread.start()
    runner = asyncio.run_coroutine_threadsafe(start_site(app, "127.0.0.1", port), loop).result(10)
    try:
        yield base, app
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def site(desk_db: Desk) -> Iterator[tuple[str, web.Application]]:
    with session_scope(desk_db.engine) as s:
        office = s.get(Contact, desk_db.ids["zhang"])
        assert office is not None
        set_password(session=s, contact=office, password=OFFICE_PASSWORD, now=NOW)
    with serving(desk_db) as served:
        yield served


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    yield p
    context.close()


def sign_in_office(page: Any, base: str) -> None:
    """The office's password form, filled and sent as a person would."""
    page.goto(f"{base}/login")
    form = page.locator("form[action^='/login/password']")
    form.locator("input[name=department]").fill("amr")
    form.locator("input[name=name]").fill("张静")
    form.locator("input[name=password]").fill(OFFICE_PASSWORD)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert page.url.rstrip("/") == base, page.url


def test_office_signs_in_opens_a_task_and_approves_an_extension(
    page: Any, site: tuple[str, web.Application], desk_db: Desk
) -> None:
    base, _ = site
    with session_scope(desk_db.engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        wang = s.get(Contact, desk_db.ids["wang"])
        actions.request_extension(
            session=s, task=task, new_due=date(2025, 6, 30), reason="资金未到位", contact=wang, now=NOW
        )

    page.goto(f"{base}/")
    assert "/login" in page.url  # signed out: sent to the sign-in page
    sign_in_office(page, base)
    body = page.locator("body")
    assert "测试工作方案" in body.inner_text()
    assert "张静" in page.locator("header.top").inner_text()
    for code in ("2.1", "2.2"):  # yellow: listed; group 1's green tasks are folded into a count
        assert page.locator(f"a[href='/tasks/test-plan/{code}']").count() >= 1
    assert page.locator("a[href='/tasks/test-plan/1.1']").count() == 0
    with page.expect_navigation():
        page.locator("section#g-1 p.folded a").click()  # 展开本组
    assert page.url.endswith("group=1")
    for code in ("1.1", "1.2"):
        assert page.locator(f"a[href='/tasks/test-plan/{code}']").count() >= 1

    with page.expect_navigation():
        page.locator("a[href='/tasks/test-plan/1.1']").first.click()
    assert page.url.endswith("/tasks/test-plan/1.1")
    assert "完善政策体系" in page.locator("h1").inner_text()
    assert "资金未到位" in body.inner_text()

    approve = page.locator("button[name=decision][value=approve]")
    with page.expect_response(lambda r: r.request.method == "POST" and "/extensions/" in r.url) as posted:
        approve.click()
    assert posted.value.status == 303  # the real form's POST, with its CSRF field, through the browser
    page.wait_for_load_state()
    assert "已批准延期。" in body.inner_text()  # the flash message on the task page it returned to
    assert page.locator("button[name=decision]").count() == 0  # nothing left to decide

    with desk_db.session() as s:
        (ev,) = s.exec(select(Event).where(Event.type == EventType.EXTENSION_APPROVED).order_by(col(Event.id)))
        assert ev.actor == f"web:{desk_db.ids['zhang']}"
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        assert task.due_date == date(2025, 6, 30)


def test_wrong_office_password_says_so_and_signs_nobody_in(page: Any, site: tuple[str, web.Application]) -> None:
    base, _ = site
    page.goto(f"{base}/login")
    form = page.locator("form[action^='/login/password']")
    form.locator("input[name=department]").fill("amr")
    form.locator("input[name=name]").fill("张静")
    form.locator("input[name=password]").fill("not-the-password")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        form.locator("button[type=submit]").click()
    assert posted.value.status == 403
    page.wait_for_load_state()
    assert page.locator("[aria-invalid=true]").count() == 1
    assert page.goto(f"{base}/tasks/test-plan/1.1").url.startswith(f"{base}/login")


def test_contact_signs_in_by_link_and_sees_only_their_department(
    page: Any, site: tuple[str, web.Application], desk_db: Desk
) -> None:
    base, app = site
    with session_scope(desk_db.engine) as s:
        wang = s.get(Contact, desk_db.ids["wang"])
        assert wang is not None
        token = issue_link_token(session=s, desk=app[DESK], contact=wang, now=NOW)

    page.goto(f"{base}/login/{token}")  # opening the link signs nobody in (chat apps preview links) …
    assert "王敏" in page.locator("body").inner_text()
    with page.expect_navigation():
        page.locator("main form button[type=submit]").click()  # … its button does
    assert page.url.rstrip("/") == base
    assert "王敏" in page.locator("header.top").inner_text()
    for code in ("2.1", "2.2"):  # amr leads these (and 1.1, green: folded)
        assert page.locator(f"a[href='/tasks/test-plan/{code}']").count() >= 1
    assert "1 项，已折叠" in page.locator("section#g-1").inner_text()  # 1.1 only: 1.2 is sci's
    with page.expect_navigation():
        page.locator("section#g-1 p.folded a").click()
    assert page.locator("a[href='/tasks/test-plan/1.1']").count() >= 1
    assert page.locator("a[href='/tasks/test-plan/1.2']").count() == 0  # sci's task
    assert page.locator("a[href^='/digest']").count() == 0

    refused = page.goto(f"{base}/tasks/test-plan/1.2")
    assert refused is not None and refused.status == 403
    assert "高价值专利培育" not in page.locator("body").inner_text()
    assert page.goto(f"{base}/departments/sci").status == 403  # type: ignore[union-attr]

    second = page.context.new_page()  # the link is used up: a second use says so in words
    second.goto(f"{base}/login/{token}")
    assert second.locator("main").inner_text().strip()
    assert second.locator("main form button[type=submit]").count() == 0


# ---- reply by link: the reminder's one-time form, on a phone ------------------------------------------------


def test_contact_reports_through_the_reminders_link_on_a_phone(browser: Any, desk_db: Desk) -> None:
    from coordbot.plan.models import ProgressReport
    from coordbot.scheduling.messages import build_messages
    from coordbot.scheduling.models import Claimed, ReminderKind, ReminderOccurrence
    from coordbot.scheduling.outbox import add_occurrence
    from coordbot.web.reply import reply_links

    with serving(desk_db, public=True) as (base, app):
        with session_scope(desk_db.engine) as s:
            task_id = s.exec(select(Task.id).where(Task.code == "2.1")).one()
            add_occurrence(
                session=s, contact_id=desk_db.ids["wang"], kind=ReminderKind.PERIODIC, fire_at=NOW, task_id=task_id
            )
            occ = s.exec(select(ReminderOccurrence).order_by(col(ReminderOccurrence.id).desc())).first()
            assert occ is not None and occ.id is not None
            claimed = Claimed(occ.id, occ.kind, occ.contact_id, occ.task_id, occ.fire_at, 1)
        messages = build_messages(
            desk_db.engine, [claimed], now=NOW, calendar=CALENDAR, reply_link=reply_links(app[DESK])
        )
        (_, reminder), *_ = messages.values()
        line = next(ln for ln in reminder.text.splitlines() if ln.startswith("也可在网页填报："))
        url = line.removeprefix("也可在网页填报：").strip()
        assert url.startswith(f"{base}/r/"), url

        phone = browser.new_context(
            locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        phone.set_default_timeout(TIMEOUT_MS)
        try:
            page = phone.new_page()
            page.goto(url)  # the reminder's link, opened on the phone: no sign-in
            assert "任务2.1 加大行政保护力度" in page.locator("h1").inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
            page.locator("input[name=n0]").fill("3")
            page.locator("select[name=m0]").select_option("increment")
            page.locator("textarea[name=note]").fill("本周开展联合检查")
            with page.expect_response(lambda r: r.request.method == "POST") as posted:
                page.locator("form.reply button[type=submit]").click()
            assert posted.value.status == 200
            page.wait_for_load_state()
            done = page.locator("main").inner_text()
            assert "已记录" in done and "新增 3 项" in done, done
            keep = os.environ.get("COORDBOT_SCREENSHOT_DIR")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(keep) / "reply-recorded.png"), full_page=True)
            with desk_db.session() as s:
                (report,) = s.exec(select(ProgressReport))
                assert (report.source, report.reminder_id, report.voided) == ("web", claimed.id, False)
                assert report.text == "专项行动和双随机检查新增3项。本周开展联合检查"

            page.goto(url)  # the link again: it was used, and shows what it recorded, with the undo
            assert page.locator("[data-state=used]").count() == 1
            with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/undo")) as undone:
                page.locator("form[action$='/undo'] button").click()
            assert undone.value.status == 200
            page.wait_for_load_state()
            assert page.locator("[data-state=undone]").count() == 1
            with desk_db.session() as s:
                (report,) = s.exec(select(ProgressReport))
                assert report.voided
        finally:
            phone.close()


# ---- the dashboard's Chinese text: a screenshot, and every visible character in the page's CJK font --------


def _font_file(family: str) -> tuple[str, int]:
    if shutil.which("fc-match") is None:
        _missing("fontconfig's fc-match is not installed")
    out = subprocess.run(
        ["fc-match", "--format=%{file}\t%{index}\t%{family}", family], capture_output=True, text=True, check=True
    ).stdout
    path, index, found = out.split("\t")
    if family not in found.split(","):
        _missing(f"the font {family!r} is not installed (fc-match gave {found!r})")
    return path, int(index or 0)


def _cmap(path: str, index: int) -> set[int]:
    try:
        from fontTools.ttLib import TTCollection, TTFont
    except ImportError:
        _missing("the fonttools package is not installed")
    if path.lower().endswith((".ttc", ".otc")):
        font = TTCollection(path, lazy=True).fonts[index]
    else:
        font = TTFont(path, lazy=True)
    return set(font.getBestCmap())


def _first_family(css_value: str) -> str:
    return css_value.split(",")[0].strip().strip("\"'")


def test_dashboard_renders_its_chinese_text_in_the_cjk_font(
    page: Any, site: tuple[str, web.Application], tmp_path: Path
) -> None:
    base, _ = site
    sign_in_office(page, base)
    family = _first_family(page.evaluate("getComputedStyle(document.body).fontFamily"))
    assert family == CJK_FAMILY, f"the desk's CSS names {family!r} first"
    # every element's own font list starts with the same family (buttons, inputs, tables inherit it)
    families = set(page.evaluate("[...document.querySelectorAll('body *')].map(e => getComputedStyle(e).fontFamily)"))
    assert {_first_family(f) for f in families} == {CJK_FAMILY}, families

    text = page.evaluate("document.body.innerText")
    chars = {c for c in text if not c.isspace() and unicodedata.category(c)[0] != "C"}
    assert sum(1 for c in chars if unicodedata.east_asian_width(c) == "W") > 30, text[:200]
    path, index = _font_file(CJK_FAMILY)
    cmap = _cmap(path, index)
    missing = sorted(c for c in chars if ord(c) not in cmap)
    assert not missing, f"{path} has no glyph for {missing}"

    # what Chromium actually drew the text with (CDP: the platform fonts of each element's text nodes)
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]
    ids = cdp.send("DOM.querySelectorAll", {"nodeId": root["nodeId"], "selector": "body, body *"})["nodeIds"]
    used: dict[str, int] = {}
    for node_id in ids:
        for f in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node_id})["fonts"]:
            used[f["familyName"]] = used.get(f["familyName"], 0) + f["glyphCount"]
    assert used and set(used) <= {CJK_FAMILY}, f"text drawn in fallback fonts: {used}"

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    keep = os.environ.get("COORDBOT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "dashboard.png")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width == 1280 and height >= 400
