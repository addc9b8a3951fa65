"""Migration 0012: a database populated at 0011 (two plans sharing departments, a bound contact, tasks, a
co-department) upgrades with every row kept, its plans in one organisation, and the new uniqueness in force."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from coordbot.core.db import make_engine, session_scope, upgrade
from coordbot.core.types import AwareDateTime
from coordbot.plan import service
from coordbot.plan.loader import parse_plan_text
from tests.conftest import PG_ADMIN_URL, _admin_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0011(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """An empty database migrated to 0011 only."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        upgrade(engine, "0011")
        yield engine
        engine.dispose()
        return
    name = f"coordbot_mig_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    upgrade(engine, "0011")
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _insert(conn: sa.Connection, table: str, **given: Any) -> int:
    """A row with the columns given and a plain value for every other NOT NULL column (the 0011 schema)."""
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    values = dict(given)
    for column in reflected.columns:
        if column.name in values or column.nullable or column.primary_key:
            continue
        kind = column.type
        if isinstance(kind, sa.JSON):
            values[column.name] = {}
        elif isinstance(kind, sa.Boolean):
            values[column.name] = False
        elif isinstance(kind, sa.Integer | sa.Numeric | sa.Float):
            values[column.name] = 0
        elif isinstance(kind, sa.DateTime | AwareDateTime):
            values[column.name] = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
        elif isinstance(kind, sa.Date):
            values[column.name] = date(2026, 1, 1)
        else:
            values[column.name] = ""
    row = conn.execute(sa.insert(reflected).values(**values).returning(reflected.c.id)).scalar_one()
    return int(row)


def test_a_populated_0011_database_upgrades_into_one_shared_organisation(at_0011: Engine) -> None:
    with at_0011.begin() as conn:
        plans = [
            _insert(conn, "plan", code=code, title=code, start_date=date(2026, 1, 1), end_date=date(2026, 12, 31))
            for code in ("old-a", "old-b")
        ]
        finance = _insert(conn, "department", code="finance", name="区财政局", aliases=["财政局"])
        amr = _insert(conn, "department", code="amr", name="区市场监管局", aliases=[])
        contact = _insert(conn, "contact", department_id=finance, name="联络员", role="contact", address="42")
        group = _insert(conn, "task_group", plan_id=plans[0], code="1", title="一")
        task = _insert(
            conn, "task", plan_id=plans[0], group_id=group, code="1.1", title="任务", lead_department_id=finance
        )
        _insert(conn, "target", plan_id=plans[0], task_id=task, metric="m", name="指标", value=3.0)
        conn.execute(
            text("INSERT INTO task_department (task_id, department_id, assignment) VALUES (:t, :d, 'stated')"),
            {"t": task, "d": amr},
        )

    upgrade(at_0011)

    with at_0011.connect() as conn:
        orgs = conn.execute(text("SELECT id, code FROM organisation")).all()
        assert [code for _, code in orgs] == ["shared"]  # two plans shared departments: kept together
        org = orgs[0][0]
        assert conn.execute(text("SELECT organisation_id FROM plan ORDER BY id")).scalars().all() == [org, org]
        rows = conn.execute(text("SELECT id, code, organisation_id, aliases FROM department ORDER BY id")).all()
        assert [(r[0], r[1], r[2]) for r in rows] == [(finance, "finance", org), (amr, "amr", org)]
        assert conn.execute(text("SELECT department_id, address FROM contact")).one() == (finance, "42")
        assert conn.execute(text("SELECT lead_department_id FROM task WHERE id = :t"), {"t": task}).scalar() == finance
        assert conn.execute(text("SELECT department_id, role FROM task_department")).one() == (amr, "co")
        # The plan format's new columns, at their defaults on the rows already there.
        leader, every, primary, milestones = conn.execute(
            text("SELECT responsible_leader, deadline_every, lead_primary, milestones FROM task")
        ).one()
        assert (leader, every, bool(primary)) == ("", "", False)
        assert milestones in ([], "[]")
        assert contact
        measure, about, tolerance = conn.execute(text("SELECT measure, about, tolerance FROM target")).one()
        assert (measure, bool(about), tolerance) == ("count", False, None)
        if at_0011.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # The same code in another organisation is allowed now; twice in one organisation is not.
    with at_0011.begin() as conn:
        other = _insert(conn, "organisation", code="other", name="")
        _insert(conn, "department", code="finance", name="另一区财政局", organisation_id=other)
    with pytest.raises(sa.exc.IntegrityError), at_0011.begin() as conn:
        _insert(conn, "department", code="finance", name="重复", organisation_id=other)


def test_a_single_plan_database_gets_the_plans_own_organisation(at_0011: Engine, minimal_plan_path) -> None:  # type: ignore[no-untyped-def]
    text_ = minimal_plan_path.read_text(encoding="utf-8")
    loaded = parse_plan_text(text_, "minimal.yaml")
    with at_0011.begin() as conn:
        _insert(
            conn,
            "plan",
            code=loaded.data.plan.code,
            title=loaded.data.plan.title,
            start_date=loaded.data.plan.start,
            end_date=loaded.data.plan.end,
        )
        _insert(conn, "department", code="amr", name="旧名", aliases=[])
    upgrade(at_0011)
    with at_0011.connect() as conn:
        assert conn.execute(text("SELECT code FROM organisation")).scalars().all() == [loaded.data.plan.code]
    # Re-importing the plan's file works on the migrated rows: the stored department is updated in place.
    with session_scope(at_0011) as s:
        report = service.import_plan(session=s, loaded=loaded)
    assert not report.created
    assert any(c.startswith("~ department amr: name: 旧名 →") for c in report.changes)


def test_the_migration_goes_back_down_to_0011(at_0011: Engine) -> None:
    from alembic import command

    from coordbot.core.backup import code_head
    from coordbot.core.db import alembic_config, current_revision

    with at_0011.begin() as conn:
        _insert(conn, "plan", code="p", title="p", start_date=date(2026, 1, 1), end_date=date(2026, 12, 31))
        _insert(conn, "department", code="finance", name="区财政局", aliases=[])
    upgrade(at_0011)
    command.downgrade(alembic_config(at_0011), "0011")
    assert current_revision(at_0011) == "0011"
    with at_0011.connect() as conn:
        assert conn.execute(text("SELECT code FROM department")).scalars().all() == ["finance"]
        assert "organisation_id" not in {c["name"] for c in sa.inspect(conn).get_columns("department")}
    with pytest.raises(sa.exc.IntegrityError), at_0011.begin() as conn:  # one code per database again
        _insert(conn, "department", code="finance", name="重复", aliases=[])
    upgrade(at_0011)  # and up again
    assert current_revision(at_0011) == code_head()
