"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``COORDBOT_TEST_POSTGRES_URL`` (default: the local server, database ``test``); each
test run creates its own scratch database there and drops it at the end. If PostgreSQL cannot be reached the
PostgreSQL half of the suite fails: it is never silently skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel

from coordbot.core.db import make_engine, upgrade
from coordbot.plan.loader import LoadedPlan, load_plan_file

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
PG_ADMIN_URL = os.environ.get("COORDBOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _admin_engine() -> Engine:
    return make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this test run, migrated to head."""
    name = f"coordbot_test_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - reported as a failure, not a skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL!r} ({exc}); .ci/run starts it", pytrace=False)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (faster than migrating per test)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A clean, migrated database URL: a fresh SQLite file, or the run's PostgreSQL database emptied."""
    if request.param == "sqlite":
        path = tmp_path / "coordbot.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("pg_database_url")
    empty_postgres(url)
    yield url


def empty_postgres(url: str) -> None:
    """Delete every row of every table (keeping the migrated schema)."""
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        # A test that failed mid-transaction can leave its connection idle in it, holding locks the TRUNCATE
        # would wait on until the timeout: end those sessions, so one failure does not hang the next test.
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        )
        conn.execute(text("SET LOCAL lock_timeout = '30s'"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    """The run's PostgreSQL database, emptied: for tests that are about PostgreSQL only."""
    empty_postgres(pg_database_url)
    return pg_database_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def minimal_plan_path() -> Path:
    return DATA / "plans" / "minimal.yaml"


@pytest.fixture
def minimal_plan(minimal_plan_path: Path) -> LoadedPlan:
    return load_plan_file(minimal_plan_path)
