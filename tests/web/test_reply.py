"""Reply by link: the reminder's one-time form goes through the chat's parser, apply and undo."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlmodel import Session, col, select

from coordbot.channels.base import Inbound
from coordbot.core.config import Secret, Settings
from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType
from coordbot.plan.models import Observation, ProgressReport, Task
from coordbot.replies.conversation import Conversation
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.messages import build_messages
from coordbot.scheduling.models import Claimed, ReminderKind, ReminderOccurrence
from coordbot.scheduling.outbox import add_occurrence
from coordbot.web import make_web_app
from coordbot.web.desk import DESK
from coordbot.web.reply import REPLY_TTL, reply_links

from .conftest import NOW, Desk

PUBLIC = "https://desk.example.gov.cn"
CAL = WorkCalendar(tz="Asia/Shanghai")
TASK_FIELDS = ("status", "progress", "colour", "colour_reason", "last_report_at", "escalation_level")


@pytest.fixture
async def client(desk_db: Desk) -> AsyncIterator[TestClient]:
    settings = Settings(web_secret=Secret("test-secret-for-the-desk"), public_url=PUBLIC)
    app = make_web_app(engine=desk_db.engine, settings=settings, calendar=CAL, clock=desk_db.clock)
    async with TestClient(TestServer(app)) as c:
        yield c


def _occurrence(desk: Desk, who: str = "wang", code: str = "2.1") -> Claimed:
    with session_scope(desk.engine) as s:
        task_id = s.exec(select(Task.id).where(Task.code == code)).one()
        add_occurrence(
            session=s, contact_id=desk.ids[who], kind=ReminderKind.PERIODIC, fire_at=NOW, task_id=task_id, plan_id=None
        )
        occ = s.exec(select(ReminderOccurrence).order_by(col(ReminderOccurrence.id).desc())).first()
        assert occ is not None and occ.id is not None
        return Claimed(occ.id, occ.kind, occ.contact_id, occ.task_id, occ.fire_at, 1)


def _reminder_link(client: TestClient, desk: Desk, claimed: Claimed) -> str:
    """The path of the link in the reminder as build_messages renders it."""
    reply_link = reply_links(client.server.app[DESK])
    (_, msg), *_ = build_messages(desk.engine, [claimed], now=NOW, calendar=CAL, reply_link=reply_link).values()
    line = next(ln for ln in msg.text.splitlines() if ln.startswith("也可在网页填报："))
    url = line.removeprefix("也可在网页填报：").strip()
    assert url.startswith(PUBLIC + "/r/")
    return urlsplit(url).path


def _task(desk: Desk, code: str = "2.1") -> Task:
    with desk.session() as s:
        return s.exec(select(Task).where(Task.code == code)).one()


def _reports(desk: Desk) -> list[ProgressReport]:
    with desk.session() as s:
        return list(s.exec(select(ProgressReport).order_by(col(ProgressReport.id))))


def _state(s: Session, report: ProgressReport) -> dict[str, Any]:
    """What a report stored, without what differs by where it came from (ids, source, the link's hash)."""
    obs = s.exec(select(Observation).where(Observation.report_id == report.id).order_by(col(Observation.id))).all()
    evs = s.exec(select(Event).where(col(Event.id) > 0).order_by(col(Event.id))).all()
    mine = [
        (e.type, e.department_id, e.contact_id, {k: v for k, v in e.payload.items() if k not in ("report", "source")})
        for e in evs
        if e.payload.get("report") == report.id
    ]
    fields = report.model_dump(exclude={"id", "source", "source_ref", "reminder_id", "received_at"})
    return {
        "report": fields,
        "observations": [(o.target_id, o.value, o.mode, o.observed_on, o.voided) for o in obs],
        "events": mine,
    }


async def _submit(client: TestClient, path: str, **data: str) -> tuple[int, str]:
    resp = await client.post(path, data=data)
    return resp.status, await resp.text()


# ---- the reminder's text ----------------------------------------------------------------------------


async def test_a_reminder_carries_the_link_only_when_public_url_is_set(client: TestClient, desk_db: Desk) -> None:
    claimed = _occurrence(desk_db)
    assert _reminder_link(client, desk_db, claimed).startswith("/r/")
    (_, plain), *_ = build_messages(desk_db.engine, [claimed], now=NOW, calendar=CAL).values()
    assert "网页填报" not in plain.text and "/r/" not in plain.text
    no_public = make_web_app(
        engine=desk_db.engine,
        settings=Settings(web_secret=Secret("x"), public_url=""),
        calendar=CAL,
        clock=desk_db.clock,
    )
    assert reply_links(no_public[DESK]) is None


# ---- the form -------------------------------------------------------------------------------------


async def test_get_shows_task_targets_and_statuses_and_writes_nothing(client: TestClient, desk_db: Desk) -> None:
    path = _reminder_link(client, desk_db, _occurrence(desk_db))
    for _ in range(2):  # a chat app's preview, then the contact: neither uses the link up
        resp = await client.get(path)
        html = await resp.text()
        assert resp.status == 200
    assert "任务2.1 加大行政保护力度" in html
    assert "专项行动和双随机检查（项）" in html and "今年 0/10 项" in html
    for label in ("已完成", "正常推进", "有风险", "受阻"):
        assert label in html
    assert 'name="n0"' in html and 'inputmode="decimal"' in html and 'name="viewport"' in html
    assert _reports(desk_db) == []
    en = await client.get(path + "?lang=en")
    assert "Task 2.1" in await en.text()


async def test_post_records_what_the_same_chat_text_records(client: TestClient, desk_db: Desk) -> None:
    claimed = _occurrence(desk_db)
    path = _reminder_link(client, desk_db, claimed)
    before = _task(desk_db)
    status, html = await _submit(client, path, status="", n0="3", m0="increment", note="本周开展联合检查")
    assert status == 200, html
    assert "已记录" in html and "新增 3 项" in html
    (web_report,) = _reports(desk_db)
    assert (web_report.source, web_report.reminder_id) == ("web", claimed.id)
    assert web_report.text == "专项行动和双随机检查新增3项。本周开展联合检查"
    after_web = _task(desk_db)
    assert after_web.last_report_at is not None and after_web.last_report_at != before.last_report_at
    assert after_web.status == "in_progress"
    with desk_db.session() as s:
        web_state = _state(s, web_report)
    # undo from the confirmation page restores the task exactly; then the same text through chat
    resp = await client.post(path + "/undo")
    assert resp.status == 200 and "已撤销" in await resp.text()
    restored = _task(desk_db)
    assert [getattr(restored, f) for f in TASK_FIELDS] == [getattr(before, f) for f in TASK_FIELDS]
    conv = Conversation(engine=desk_db.engine, calendar=CAL, clock=desk_db.clock)
    reply = conv.handle(
        Inbound(channel="telegram", external_id="u1", chat_id="1001", sender_id="1001", text="2.1 " + web_report.text),
        now=NOW,
    )
    assert reply is not None and "2.1" in reply.text
    _, chat_report = _reports(desk_db)
    after_chat = _task(desk_db)
    with desk_db.session() as s:
        chat_state = _state(s, chat_report)
    assert chat_report.source == "chat" and chat_state == web_state
    assert [getattr(after_chat, f) for f in TASK_FIELDS] == [getattr(after_web, f) for f in TASK_FIELDS]


async def test_a_status_is_recorded_as_the_reminder_button_records_it(client: TestClient, desk_db: Desk) -> None:
    first, second = _occurrence(desk_db), _occurrence(desk_db, code="2.2")
    status, html = await _submit(client, _reminder_link(client, desk_db, first), status="done")
    assert status == 200, html
    conv = Conversation(engine=desk_db.engine, calendar=CAL, clock=desk_db.clock)
    conv.handle(
        Inbound(
            channel="telegram",
            external_id="b1",
            chat_id="1001",
            sender_id="1001",
            kind="callback",
            callback_action="done",
            callback_ref=f"o{second.id}",
        ),
        now=NOW,
    )
    web_report, chat_report = _reports(desk_db)
    assert (web_report.source, chat_report.source) == ("web", "button")
    assert web_report.status == chat_report.status == "done"
    web_task, chat_task = _task(desk_db, "2.1"), _task(desk_db, "2.2")
    assert web_task.status == chat_task.status == "reported_done" and web_task.progress == 100
    assert web_task.last_report_at == chat_task.last_report_at == NOW
    with desk_db.session() as s:
        done = s.exec(select(Event).where(Event.type == EventType.TASK_REPORTED_DONE)).all()
    assert sorted(e.task_id for e in done) == sorted([web_task.id, chat_task.id])


# ---- refusals -------------------------------------------------------------------------------------


async def test_a_second_submit_is_refused_in_words_and_shows_what_was_recorded(
    client: TestClient, desk_db: Desk
) -> None:
    path = _reminder_link(client, desk_db, _occurrence(desk_db))
    assert (await _submit(client, path, n0="2"))[0] == 200
    status, html = await _submit(client, path, n0="5", status="blocked")
    assert status == 409
    assert "此链接已经提交过一次，不能再次提交" in html and "新增 2 项" in html and "撤销本次填报" in html
    assert len(_reports(desk_db)) == 1
    page = await client.get(path)  # opening it again shows the same
    assert page.status == 200 and "已经提交过" in await page.text()
    # undo once; a second undo says it was already undone
    assert (await client.post(path + "/undo")).status == 200
    again = await client.post(path + "/undo")
    assert again.status == 409 and "此前已经撤销" in await again.text()
    assert (await _submit(client, path, n0="5"))[0] == 409  # still single use after undo
    with desk_db.session() as s:
        undone = s.exec(select(Event).where(Event.type == EventType.PROGRESS_UNDONE)).all()
    assert [e.actor for e in undone] == [f"web:{desk_db.ids['wang']}"]


async def test_an_expired_link_is_refused(client: TestClient, desk_db: Desk) -> None:
    path = _reminder_link(client, desk_db, _occurrence(desk_db))
    desk_db.clock.advance(REPLY_TTL + timedelta(minutes=1))
    resp = await client.get(path)
    assert resp.status == 410 and "已过期" in await resp.text()
    status, html = await _submit(client, path, n0="2")
    assert status == 410 and "已过期" in html and "未做任何记录" in html
    assert _reports(desk_db) == []


async def test_a_tampered_token_is_refused(client: TestClient, desk_db: Desk) -> None:
    path = _reminder_link(client, desk_db, _occurrence(desk_db))
    other = _occurrence(desk_db, code="2.2")
    occ, contact, expires, sig = path.removeprefix("/r/").split(".")
    tampered = [
        f"/r/{other.id}.{contact}.{expires}.{sig}",  # another reminder
        f"/r/{occ}.{desk_db.ids['zhao']}.{expires}.{sig}",  # another contact
        f"/r/{occ}.{contact}.{int(expires) + 86400 * 30}.{sig}",  # a later expiry
        f"/r/{occ}.{contact}.{expires}.{sig[:-2]}xx",
        "/r/garbage",
    ]
    for bad in tampered:
        resp = await client.get(bad)
        assert resp.status == 400 and "无效" in await resp.text(), bad
        status, _ = await _submit(client, bad, status="done")
        assert status == 400
    assert _reports(desk_db) == []


async def test_bad_input_is_refused_per_field_and_stores_nothing(client: TestClient, desk_db: Desk) -> None:
    path = _reminder_link(client, desk_db, _occurrence(desk_db))
    before = _task(desk_db)
    for data, message in [
        ({"n0": "三个"}, "请填写数字"),
        ({"n0": "-2"}, "不能为负数"),
        ({"n0": "1e20"}, "数字过大"),
        ({"status": "finished"}, "请从列出的状态中选择"),
        ({"note": "进" * 2001}, "备注最多2000字"),
        ({}, "请至少选择一个状态"),
        ({"note": "好的"}, "未能从填写内容中读出进展"),
    ]:
        status, html = await _submit(client, path, **data)
        assert status == 400 and message in html and "未做任何记录" in html, (data, html)
    status, html = await _submit(client, path, n0="abc", note="本周开展联合检查")
    assert 'aria-invalid="true" aria-describedby="err-n0"' in html and "本周开展联合检查" in html  # kept
    assert _reports(desk_db) == []
    with desk_db.session() as s:
        assert s.exec(select(Observation)).all() == []
    after = _task(desk_db)
    assert [getattr(after, f) for f in TASK_FIELDS] == [getattr(before, f) for f in TASK_FIELDS]
    # the link still works after refused input; full-width digits are read
    status, html = await _submit(client, path, n0="４")
    assert status == 200 and "新增 4 项" in html


async def test_a_post_from_another_site_is_refused(client: TestClient, desk_db: Desk) -> None:
    path = _reminder_link(client, desk_db, _occurrence(desk_db))
    resp = await client.post(path, data={"status": "done"}, headers={"Origin": "https://evil.example"})
    assert resp.status == 403
    resp = await client.post(path, data={"status": "done"}, headers={"Origin": PUBLIC})
    assert resp.status == 200
    assert len(_reports(desk_db)) == 1


EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")


@pytest.mark.parametrize("lang", ["", "?lang=en"])
async def test_the_form_says_statuses_in_shaded_words_not_emoji(client: TestClient, desk_db: Desk, lang: str) -> None:
    """Issue 16: the chat's buttons carry 🟢🟡🔴; the page says the words in the colour's shaded box."""
    path = _reminder_link(client, desk_db, _occurrence(desk_db))
    html = await (await client.get(path + lang)).text()
    assert not EMOJI.search(html), EMOJI.findall(html)
    words = ("On track", "At risk", "Blocked") if lang else ("正常推进", "有风险", "受阻")
    for colour, word in zip(("green", "yellow", "red"), words, strict=True):
        assert f'<span class="colour {colour}">{word}</span>' in html
    status, done = await _submit(client, path, status="at_risk")
    assert status == 200, done
    assert '<span class="colour yellow">有风险</span>' in done and not EMOJI.search(done)
