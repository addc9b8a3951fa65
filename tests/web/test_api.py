"""The JSON API (/api/v1): every route, every refusal as RFC 9457 problem details, on SQLite and PostgreSQL.

People as in conftest: 王敏 (wang) contact of amr, 赵磊 (zhao) contact of finance (co of 1.1), 李强 (li) leader,
张静 (zhang) the office. Machine clients use tokens made by ``coordbot.web.tokens`` (the CLI's function).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner
from sqlmodel import col, select

from coordbot.cli import main
from coordbot.core.db import session_scope
from coordbot.core.events import Event, EventType
from coordbot.plan import actions
from coordbot.plan.models import Contact, Extension, Task, TaskStatus
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.web.api import OPS, openapi_document
from coordbot.web.tokens import create_token, revoke_token

from .conftest import NOW, Desk

API = "/api/v1"
TASK = f"{API}/tasks/test-plan/1.1"
PROBLEM = "application/problem+json"
GETS = [
    f"{API}/me",
    f"{API}/plans",
    f"{API}/tasks",
    TASK,
    f"{TASK}/reports",
    f"{TASK}/events",
    f"{API}/events",
    f"{API}/departments",
    f"{API}/departments/amr",
    f"{API}/digests/current",
    f"{API}/digests/current/markdown",
]
POSTS = [f"{TASK}/extensions/1/decision", f"{TASK}/close", f"{TASK}/confirm"]


def token(desk: Desk, role: str, name: str | None = None) -> dict[str, str]:
    with session_scope(desk.engine) as s:
        value = create_token(session=s, name=name or f"{role}-bot", role=role, now=NOW)
    return {"Authorization": f"Bearer {value}"}


def extension(desk: Desk, code: str = "1.1") -> int:
    with session_scope(desk.engine) as s:
        task = s.exec(select(Task).where(Task.code == code)).one()
        wang = s.get(Contact, desk.ids["wang"])
        ext = actions.request_extension(
            session=s, task=task, new_due=date(2025, 6, 30), reason="资金未到位", contact=wang, now=NOW
        )
        return ext.id  # type: ignore[return-value]


def state(desk: Desk) -> tuple[int, int, list[str], list[str]]:
    with desk.session() as s:
        return (
            len(s.exec(select(Event)).all()),
            len(s.exec(select(ReminderOccurrence)).all()),
            [t.status for t in s.exec(select(Task).order_by(col(Task.id)))],
            [e.status for e in s.exec(select(Extension).order_by(col(Extension.id)))],
        )


def events_of(desk: Desk, type: str) -> list[Event]:
    with desk.session() as s:
        return list(s.exec(select(Event).where(Event.type == type).order_by(col(Event.id))))


async def problem(resp: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    body = await resp.text()
    assert resp.status == status, body
    assert resp.content_type == PROBLEM, body
    data: dict[str, Any] = await resp.json(content_type=PROBLEM)
    assert {"type", "title", "status", "detail", "instance"} <= set(data), data
    assert data["status"] == status
    assert data["instance"].startswith("/api/")
    if kind:
        assert data["type"] == f"/api/v1/problems/{kind}", data
    return data


# ---- the document ----------------------------------------------------------------------------------


async def test_openapi_document_names_every_route_and_needs_no_sign_in(app_client: TestClient) -> None:
    resp = await app_client.get(f"{API}/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert doc == openapi_document()
    for op in OPS:
        operation = doc["paths"][API + op.path][op.method.lower()]
        for status, answer in operation["responses"].items():
            for content in answer["content"].values():
                ref = content["schema"].get("$ref", "")
                assert not ref or ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]
            if status != "200":
                assert list(answer["content"]) == [PROBLEM]
    task_list = doc["paths"][f"{API}/tasks"]["get"]
    params = {p["name"]: p for p in task_list["parameters"]}
    assert params["colour"]["schema"]["enum"] == ["red", "yellow", "green"]
    assert params["limit"]["schema"]["maximum"] == 500
    assert "TaskSummaryPublic" in doc["components"]["schemas"]


# ---- refusals --------------------------------------------------------------------------------------


async def test_anonymous_gets_401_problems_everywhere(app_client: TestClient, desk_db: Desk) -> None:
    before = state(desk_db)
    for path in GETS:
        data = await problem(await app_client.get(path), 401, "unauthorized")
        assert "资金" not in str(data)
    for path in POSTS:
        resp = await app_client.post(path, json={"decision": "approve"})
        await problem(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert state(desk_db) == before


@pytest.mark.parametrize(
    "header",
    ["Bearer coordbot_not-a-token", "Bearer nonsense", "Bearer ", "Basic dXNlcjpwdw==", "coordbot_x"],
)
async def test_a_bad_token_is_401(app_client: TestClient, desk_db: Desk, header: str) -> None:
    for path in (f"{API}/tasks", f"{TASK}/close"):
        resp = await app_client.request(
            "GET" if path.endswith("tasks") else "POST", path, headers={"Authorization": header}
        )
        await problem(resp, 401, "invalid-token")
        assert "error=" in resp.headers["WWW-Authenticate"]


async def test_a_revoked_token_stops_working(app_client: TestClient, desk_db: Desk) -> None:
    headers = token(desk_db, "leader", "dash")
    assert (await app_client.get(f"{API}/tasks", headers=headers)).status == 200
    with session_scope(desk_db.engine) as s:
        assert revoke_token(session=s, name="dash", now=NOW)
    await problem(await app_client.get(f"{API}/tasks", headers=headers), 401, "invalid-token")


async def test_a_bad_token_is_refused_even_with_a_good_session(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("li")
    assert (await app_client.get(f"{API}/tasks")).status == 200
    resp = await app_client.get(f"{API}/tasks", headers={"Authorization": "Bearer coordbot_wrong"})
    await problem(resp, 401, "invalid-token")


async def test_leaders_cannot_write(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    ext = extension(desk_db)
    before = state(desk_db)
    leader = token(desk_db, "leader")
    paths = [f"{TASK}/extensions/{ext}/decision", f"{TASK}/close", f"{TASK}/confirm"]
    for path in paths:
        data = await problem(await app_client.post(path, json={"decision": "approve"}, headers=leader), 403)
        assert "资金" not in str(data)
    await login("li")
    me = await (await app_client.get(f"{API}/me")).json()
    for path in paths:
        resp = await app_client.post(path, json={"decision": "approve"}, headers={"X-CSRF-Token": me["csrf_token"]})
        await problem(resp, 403, "forbidden")
    assert state(desk_db) == before


async def test_contacts_cannot_write_or_read_plan_wide(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    ext = extension(desk_db)
    before = state(desk_db)
    await login("wang")
    me = await (await app_client.get(f"{API}/me")).json()
    headers = {"X-CSRF-Token": me["csrf_token"]}
    for path in (f"{TASK}/extensions/{ext}/decision", f"{TASK}/close", f"{TASK}/confirm"):
        await problem(await app_client.post(path, json={"decision": "approve"}, headers=headers), 403, "forbidden")
    for path in (f"{API}/events", f"{API}/digests/current", f"{API}/digests/current/markdown"):
        await problem(await app_client.get(path), 403, "forbidden")
    assert state(desk_db) == before


async def test_a_contact_sees_only_their_departments_tasks(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("wang")  # amr: leads 1.1, 2.1, 2.2
    page = await (await app_client.get(f"{API}/tasks")).json()
    assert sorted(t["code"] for t in page["items"]) == ["1.1", "2.1", "2.2"]
    assert page["total"] == 3
    for path in (
        f"{API}/tasks/test-plan/1.2",
        f"{API}/tasks/test-plan/1.2/reports",
        f"{API}/tasks/test-plan/1.2/events",
        f"{API}/departments/sci",
    ):
        data = await problem(await app_client.get(path), 403, "forbidden")
        assert "高价值" not in str(data)
    assert (await app_client.get(f"{API}/departments/amr")).status == 200


async def test_a_co_department_contact_sees_the_task_it_helps_with(app_client: TestClient, login) -> None:  # type: ignore[no-untyped-def]
    await login("zhao")  # finance: co of 1.1
    page = await (await app_client.get(f"{API}/tasks")).json()
    assert [t["code"] for t in page["items"]] == ["1.1"]
    assert (await app_client.get(TASK)).status == 200
    dept = await (await app_client.get(f"{API}/departments/finance")).json()
    assert [t["code"] for t in dept["co_tasks"]] == ["1.1"] and dept["lead_tasks"] == []
    await problem(await app_client.get(f"{API}/departments/amr"), 403)


async def test_csrf_is_needed_for_writes_with_the_cookie(app_client: TestClient, desk_db: Desk, login) -> None:  # type: ignore[no-untyped-def]
    ext = extension(desk_db)
    await login("zhang")
    before = state(desk_db)
    path = f"{TASK}/extensions/{ext}/decision"
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        data = await problem(await app_client.post(path, json={"decision": "approve"}, headers=headers), 403, "csrf")
        assert "X-CSRF-Token" in data["detail"]
    me = await (await app_client.get(f"{API}/me")).json()
    assert me["via"] == "session" and me["role"] == "office" and me["department"] == "amr"
    cross = {"X-CSRF-Token": me["csrf_token"], "Origin": "https://evil.example"}
    await problem(await app_client.post(path, json={"decision": "approve"}, headers=cross), 403, "csrf")
    assert state(desk_db) == before
    resp = await app_client.post(path, json={"decision": "approve"}, headers={"X-CSRF-Token": me["csrf_token"]})
    assert resp.status == 200, await resp.text()
    [ev] = events_of(desk_db, EventType.EXTENSION_APPROVED)
    assert ev.actor == f"web:{desk_db.ids['zhang']}"


async def test_bad_input_is_422_with_the_field(app_client: TestClient, desk_db: Desk) -> None:
    leader = token(desk_db, "leader")
    cases = {
        f"{API}/tasks?colour=blue": "colour",
        f"{API}/tasks?limit=0": "limit",
        f"{API}/tasks?limit=abc": "limit",
        f"{API}/tasks?offset=-1": "offset",
        f"{API}/tasks?overdue=perhaps": "overdue",
        f"{TASK}/events?limit=501": "limit",
        f"{API}/digests/current?lang=fr": "lang",
        f"{API}/tasks?department=a%00b": "department",
    }
    for path, name in cases.items():
        data = await problem(await app_client.get(path, headers=leader), 422, "invalid-input")
        assert [(e["name"], e["location"]) for e in data["errors"]] == [(name, "query")], data


async def test_bad_bodies(app_client: TestClient, desk_db: Desk) -> None:
    ext = extension(desk_db)
    office = token(desk_db, "office")
    path = f"{TASK}/extensions/{ext}/decision"
    before = state(desk_db)
    data = await problem(await app_client.post(path, json={"decision": "maybe"}, headers=office), 422)
    assert [(e["name"], e["location"]) for e in data["errors"]] == [("decision", "body")]
    data = await problem(await app_client.post(path, json={}, headers=office), 422)
    assert data["errors"][0]["name"] == "decision"
    data = await problem(await app_client.post(path, json={"decision": "approve", "x": 1}, headers=office), 422)
    assert data["errors"][0]["name"] == "x"
    await problem(await app_client.post(path, json=["approve"], headers=office), 422)
    await problem(await app_client.post(path, headers=office), 422)  # no body
    bad_json = {**office, "Content-Type": "application/json"}
    data = await problem(await app_client.post(path, data=b"{nope", headers=bad_json), 400, "bad-request")
    assert data["errors"][0]["location"] == "body"
    await problem(await app_client.post(path, data={"decision": "approve"}, headers=office), 415)
    assert state(desk_db) == before


async def test_not_found(app_client: TestClient, desk_db: Desk) -> None:
    leader = token(desk_db, "leader")
    office = token(desk_db, "office")
    for path in (
        f"{API}/tasks/test-plan/9.9",
        f"{API}/tasks/no-plan/1.1",
        f"{API}/tasks?plan=no-plan",
        f"{API}/events?plan=no-plan",
        f"{API}/departments/nowhere",
        f"{API}/digests/2024-W60",
        f"{API}/digests/last-week",
        f"{API}/nothing-here",
        "/api/v2/tasks",
    ):
        await problem(await app_client.get(path, headers=leader), 404, "not-found")
    for path in (f"{TASK}/extensions/999/decision", f"{TASK}/extensions/0/decision", f"{TASK}/extensions/x/decision"):
        await problem(await app_client.post(path, json={"decision": "approve"}, headers=office), 404)
    resp = await app_client.delete(f"{API}/tasks", headers=leader)
    await problem(resp, 405, "method-not-allowed")
    assert resp.headers["Allow"] == "GET, HEAD"


# ---- reading ---------------------------------------------------------------------------------------


async def test_leader_reads_tasks_with_filters(app_client: TestClient, desk_db: Desk) -> None:
    leader = token(desk_db, "leader")
    page = await (await app_client.get(f"{API}/tasks", headers=leader)).json()
    assert page["week"] == "2024-W24"
    assert [t["code"] for t in page["items"]] == ["1.1", "1.2", "2.1", "2.2"]
    t21 = next(t for t in page["items"] if t["code"] == "2.1")
    assert t21["lead"] == "amr" and t21["group"] == "2" and t21["url"] == f"{API}/tasks/test-plan/2.1"
    assert t21["quotas"][0]["metric"] == "special_actions" and t21["quotas"][0]["goal"] == 10
    amr = await (await app_client.get(f"{API}/tasks?department=amr", headers=leader)).json()
    assert [t["code"] for t in amr["items"]] == ["1.1", "2.1", "2.2"]
    paged = await (await app_client.get(f"{API}/tasks?limit=1&offset=1", headers=leader)).json()
    assert [t["code"] for t in paged["items"]] == ["1.2"] and paged["total"] == 4
    for colour in ("red", "yellow", "green"):
        got = await (await app_client.get(f"{API}/tasks?colour={colour}", headers=leader)).json()
        assert all(t["colour"] == colour for t in got["items"])
    overdue = await (await app_client.get(f"{API}/tasks?overdue=true", headers=leader)).json()
    assert all(t["overdue_days"] > 0 for t in overdue["items"])


async def test_one_task_with_targets_quota_and_extensions(app_client: TestClient, desk_db: Desk) -> None:
    ext = extension(desk_db)
    leader = token(desk_db, "leader")
    t = await (await app_client.get(f"{API}/tasks/test-plan/2.1", headers=leader)).json()
    assert t["targets"][0]["metric"] == "special_actions"
    assert t["quotas"][0]["trajectory"] in ("behind", "ahead", "on_line", "")
    t11 = await (await app_client.get(TASK, headers=leader)).json()
    assert t11["co"] == [{"code": "finance", "name": "区财政局", "assignment": "proposed"}]
    assert t11["extensions"][0]["id"] == ext and t11["extensions"][0]["requested_by"] == "王敏"
    assert t11["status"] == TaskStatus.EXTENSION_REQUESTED


async def test_reports_and_events_are_paginated(app_client: TestClient, desk_db: Desk) -> None:
    extension(desk_db)
    leader = token(desk_db, "leader")
    events = await (await app_client.get(f"{TASK}/events", headers=leader)).json()
    assert events["items"][0]["type"] == "extension.requested" and events["items"][0]["task"] == "1.1"
    assert events["total"] >= 2
    one = await (await app_client.get(f"{TASK}/events?limit=1&offset=1", headers=leader)).json()
    assert one["items"] == events["items"][1:2]
    plan = await (await app_client.get(f"{API}/events?type=extension.requested", headers=leader)).json()
    assert [e["type"] for e in plan["items"]] == ["extension.requested"]
    everything = await (await app_client.get(f"{API}/events?limit=500", headers=leader)).json()
    assert everything["total"] == len(everything["items"]) > events["total"]
    reports = await (await app_client.get(f"{TASK}/reports", headers=leader)).json()
    assert reports == {"items": [], "total": 0, "limit": 100, "offset": 0}


async def test_reports_list(app_client: TestClient, desk_db: Desk) -> None:
    from decimal import Decimal

    from coordbot.plan.models import ProgressReport

    with session_scope(desk_db.engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        for i, pct in enumerate((Decimal("53.3"), None)):
            s.add(
                ProgressReport(
                    task_id=task.id,
                    contact_id=desk_db.ids["wang"],
                    department_id=task.lead_department_id,
                    received_at=NOW.replace(hour=8 + i),
                    text=f"第{i}次",
                    percent=pct,
                    status="in_progress",
                )
            )
    reports = await (await app_client.get(f"{TASK}/reports", headers=token(desk_db, "leader"))).json()
    assert [(r["text"], r["percent"], r["contact"], r["department"]) for r in reports["items"]] == [
        ("第1次", None, "王敏", "amr"),
        ("第0次", 53.3, "王敏", "amr"),
    ]


async def test_departments_plans_and_me(app_client: TestClient, desk_db: Desk) -> None:
    leader = token(desk_db, "leader", "board")
    depts = await (await app_client.get(f"{API}/departments", headers=leader)).json()
    assert [d["code"] for d in depts["items"]] == ["amr", "finance", "sci"]
    amr = await (await app_client.get(f"{API}/departments/amr", headers=leader)).json()
    assert [t["code"] for t in amr["lead_tasks"]] == ["1.1", "2.1", "2.2"]
    plans = await (await app_client.get(f"{API}/plans", headers=leader)).json()
    assert [p["code"] for p in plans["items"]] == ["test-plan"]
    me = await (await app_client.get(f"{API}/me", headers=leader)).json()
    assert me == {
        "via": "token",
        "name": "board",
        "role": "leader",
        "department": None,
        "actor": "api:board",
        "csrf_token": None,
    }


async def test_the_weeks_digest_as_json_and_markdown(app_client: TestClient, desk_db: Desk) -> None:
    leader = token(desk_db, "leader")
    digest = await (await app_client.get(f"{API}/digests/current", headers=leader)).json()
    assert digest["week"] == "2024-W24" and digest["plan"] == "test-plan"
    assert digest["counts"]["tasks"] == 4
    assert sum(digest["counts"][c] for c in ("red", "yellow", "green")) == 4
    assert len(digest["red"]) == digest["counts"]["red"]
    resp = await app_client.get(digest["markdown_url"], headers=leader)
    assert resp.status == 200 and resp.content_type == "text/markdown"
    md = await resp.text()
    assert "测试工作方案" in md or "2024-W24" in md
    en = await app_client.get(f"{API}/digests/2024-W23/markdown?lang=en", headers=leader)
    assert en.status == 200
    last = await (await app_client.get(f"{API}/digests/2024-W23", headers=leader)).json()
    assert last["week"] == "2024-W23"
    with desk_db.session() as s:  # reading a digest does not compile (store) one
        assert not events_of(desk_db, EventType.DIGEST_COMPILED)
        assert s is not None


# ---- writing ---------------------------------------------------------------------------------------


async def test_office_token_decides_an_extension_like_the_desk(app_client: TestClient, desk_db: Desk) -> None:
    ext = extension(desk_db)
    office = token(desk_db, "office", "ci")
    path = f"{TASK}/extensions/{ext}/decision"
    resp = await app_client.post(path, json={"decision": "approve"}, headers=office)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "approved" and body["decided_by"] == "api:ci" and body["new_due"] == "2025-06-30"
    [ev] = events_of(desk_db, EventType.EXTENSION_APPROVED)
    assert ev.actor == "api:ci" and ev.payload["extension"] == ext
    with desk_db.session() as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        assert task.due_date == date(2025, 6, 30) and task.original_due_date == date(2024, 12, 31)
        notice = s.exec(select(ReminderOccurrence).where(ReminderOccurrence.detail == f"extension:{ext}")).one()
        assert notice.contact_id == desk_db.ids["wang"]
    before = state(desk_db)
    data = await problem(await app_client.post(path, json={"decision": "refuse"}, headers=office), 409, "conflict")
    assert "already approved" in data["detail"]
    assert state(desk_db) == before


async def test_refusing_an_extension(app_client: TestClient, desk_db: Desk) -> None:
    ext = extension(desk_db)
    resp = await app_client.post(
        f"{TASK}/extensions/{ext}/decision", json={"decision": "refuse"}, headers=token(desk_db, "office")
    )
    assert (await resp.json())["status"] == "rejected"
    assert len(events_of(desk_db, EventType.EXTENSION_REJECTED)) == 1


async def test_an_extension_of_another_task_is_404(app_client: TestClient, desk_db: Desk) -> None:
    ext = extension(desk_db, "2.1")
    before = state(desk_db)
    resp = await app_client.post(
        f"{TASK}/extensions/{ext}/decision", json={"decision": "approve"}, headers=token(desk_db, "office")
    )
    await problem(resp, 404, "not-found")
    assert state(desk_db) == before


async def test_closing_a_task(app_client: TestClient, desk_db: Desk) -> None:
    office = token(desk_db, "office", "closer")
    before = state(desk_db)
    data = await problem(await app_client.post(f"{TASK}/close", headers=office), 409, "conflict")
    assert "not been reported done" in data["detail"]
    assert state(desk_db) == before
    with session_scope(desk_db.engine) as s:
        s.exec(select(Task).where(Task.code == "1.1")).one().status = TaskStatus.REPORTED_DONE
    resp = await app_client.post(f"{TASK}/close", headers=office)
    assert resp.status == 200, await resp.text()
    task = await resp.json()
    assert task["status"] == "closed" and task["progress"] == 100
    [ev] = events_of(desk_db, EventType.TASK_CLOSED)
    assert ev.actor == "api:closer"
    await problem(await app_client.post(f"{TASK}/close", headers=office), 409, "conflict")


async def test_confirming_proposed_departments(app_client: TestClient, desk_db: Desk) -> None:
    office = token(desk_db, "office")
    resp = await app_client.post(f"{TASK}/confirm", headers=office)
    assert resp.status == 200, await resp.text()
    task = await resp.json()
    assert task["assignment"] == "confirmed" and task["co"][0]["assignment"] == "confirmed"
    await problem(await app_client.post(f"{TASK}/confirm", headers=office), 409, "conflict")


# ---- tokens from the command line --------------------------------------------------------------------


def test_cli_creates_lists_and_revokes_tokens(desk_db: Desk, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COORDBOT_DATABASE_URL", desk_db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "no-config.yaml"))
    runner = CliRunner()
    made = runner.invoke(main, ["web", "token", "create", "--name", "dash", "--role", "leader"])
    assert made.exit_code == 0, made.output
    value = made.stdout.strip()
    assert value.startswith("coordbot_") and len(value) > 40
    again = runner.invoke(main, ["web", "token", "create", "--name", "dash", "--role", "office"])
    assert again.exit_code != 0 and "exists already" in again.output
    wrong = runner.invoke(main, ["web", "token", "create", "--name", "x", "--role", "contact"])
    assert wrong.exit_code != 0
    listed = runner.invoke(main, ["web", "token", "list"])
    assert "dash\tleader\tlive" in listed.output and value not in listed.output
    with desk_db.session() as s:
        from coordbot.web.models import ApiToken

        row = s.exec(select(ApiToken)).one()
        assert row.token_hash != value and len(row.token_hash) == 64
    assert runner.invoke(main, ["web", "token", "revoke", "--name", "dash"]).exit_code == 0
    assert runner.invoke(main, ["web", "token", "revoke", "--name", "dash"]).exit_code != 0


async def test_a_department_code_two_organisations_use_is_not_guessed(  # type: ignore[no-untyped-def]
    app_client: TestClient, desk_db: Desk, login
) -> None:
    from pathlib import Path

    from coordbot.plan import service
    from coordbot.plan.loader import load_plan_file

    district = Path(__file__).resolve().parents[1] / "data" / "plans" / "district-shishi-2026.yaml"
    with session_scope(desk_db.engine) as s:
        service.import_plan(session=s, loaded=load_plan_file(district))  # its own 区财政局, coded finance too
    await login("zhao")  # finance of the test plan: their own department, not the district's
    dept = await (await app_client.get(f"{API}/departments/finance")).json()
    assert [t["code"] for t in dept["co_tasks"]] == ["1.1"]
    await login("zhang")  # the office sees both: refused, not one of them at random
    await problem(await app_client.get(f"{API}/departments/finance"), 409, "conflict")
