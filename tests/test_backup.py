"""``coordbot db backup`` / ``db restore`` and ``coordbot plan export`` on a database with a played demo.

The demo is played once (``coordbot demo``, SQLite, about 35 s) and its rows are copied into each test's own
database, SQLite or PostgreSQL; backup → drop → restore must give back the same digest byte for byte.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

import coordbot.models  # noqa: F401 - every table in SQLModel.metadata
from coordbot.cli import main
from coordbot.core.backup import code_head
from coordbot.core.db import make_engine, upgrade
from coordbot.plan import service
from coordbot.reports.digest import build_digest
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.slow  # the demo, played once for the module
TZ = ZoneInfo("Asia/Shanghai")
DIGEST_NOW = datetime(2026, 3, 13, 16, 0, tzinfo=TZ)  # the demo's second Friday


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    env = {"COORDBOT_CONFIG": str(workdir.parent / "none.yaml")}
    result = CliRunner().invoke(main, ["demo", "--workdir", str(workdir)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output[-3000:]
    return workdir / "demo.db"


def _copy_rows(src_url: str, dst_url: str) -> None:
    """Every row of every table, in foreign-key order; PostgreSQL's id sequences moved past the copied ids."""
    src, dst = make_engine(src_url), make_engine(dst_url)
    with src.connect() as s, dst.begin() as d:
        for table in SQLModel.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in s.execute(select(table))]
            if rows:
                d.execute(table.insert(), rows)
            if dst.dialect.name == "postgresql" and "id" in table.c and rows:
                d.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), :n)"), {"n": len(rows)}
                )
    src.dispose()
    dst.dispose()


def _digests(url: str) -> bytes:
    """The week's digest in Markdown and HTML, compiled without storing it."""
    engine = make_engine(url)
    with Session(engine) as s:
        p = service.get_plan(session=s)
        assert p is not None
        out = build_digest(session=s, plan=p, now=DIGEST_NOW, store=False)
        body = (out.render("md") + "\n----\n" + out.render("html")).encode()
    engine.dispose()
    return body


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as c:
        counts = {
            t.name: c.execute(select(func.count()).select_from(t)).scalar_one() for t in SQLModel.metadata.sorted_tables
        }
    engine.dispose()
    return counts


def _cli(url: str, *args: str, tmp: Path) -> Result:
    env = {"COORDBOT_CONFIG": str(tmp / "none.yaml"), "COORDBOT_DATABASE_URL": url}
    return CliRunner().invoke(main, list(args), env=env)


def _admin(sql: str) -> None:
    admin = make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(sql))
    admin.dispose()


def _pg_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def played_templates(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The played demo migrated and copied once per backend: a SQLite file and a PostgreSQL template database."""
    sqlite_path = tmp_path_factory.mktemp("played") / "played.db"
    pg_name = f"coordbot_played_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{pg_name}"')
    try:
        for url in (f"sqlite:///{sqlite_path}", _pg_url(pg_name)):
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            _copy_rows(f"sqlite:///{demo_db}", url)
        yield {"sqlite": str(sqlite_path), "postgresql": pg_name}
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


class _Database:
    """A database of the test's own that the test may drop: a SQLite file or a scratch PostgreSQL database,
    made from the played template."""

    def __init__(self, backend: str, tmp: Path, template: str) -> None:
        self.backend, self.template = backend, template
        if backend == "sqlite":
            self.path = tmp / "coordbot.db"
            self.url = f"sqlite:///{self.path}"
            shutil.copy(template, self.path)
        else:
            self.name = f"coordbot_backup_{uuid.uuid4().hex[:10]}"
            self.url = _pg_url(self.name)
            _admin(f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"')

    def empty(self) -> None:
        """Drop the database and make an empty one in its place (SQLite: no file at all)."""
        self.drop()
        if self.backend == "postgresql":
            _admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        else:
            _admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def played(request: pytest.FixtureRequest, tmp_path: Path, played_templates: dict[str, str]) -> Iterator[_Database]:
    """A database of the test's own holding the played demo."""
    db = _Database(request.param, tmp_path, played_templates[request.param])
    yield db
    db.drop()


def test_backup_drop_restore_gives_back_the_same_digest(played: _Database, tmp_path: Path) -> None:
    before, counts = _digests(played.url), _counts(played.url)
    assert "本周" in before.decode() or "周报" in before.decode()
    assert counts["progress_report"] > 0 and counts["event"] > 100
    backup = tmp_path / ("coordbot.backup" if played.backend == "postgresql" else "coordbot-backup.db")

    made = _cli(played.url, "db", "backup", str(backup), tmp=tmp_path)
    assert made.exit_code == 0, made.output
    assert f"schema {code_head()}" in made.output and backup.stat().st_size > 0
    assert not list(tmp_path.glob(".*.partial"))  # written beside, then renamed

    played.empty()
    restored = _cli(played.url, "db", "restore", "--yes", str(backup), tmp=tmp_path)
    assert restored.exit_code == 0, restored.output
    assert f"schema {code_head()}" in restored.output

    assert _counts(played.url) == counts
    assert _digests(played.url) == before  # byte-identical


def _backup_at_revision(played: _Database, tmp_path: Path, revision: str) -> Path:
    """A real backup of ``played`` whose alembic_version says ``revision`` (a newer coordbot's)."""
    backup = tmp_path / "future.backup"
    engine = make_engine(played.url)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    made = _cli(played.url, "db", "backup", str(backup), tmp=tmp_path)
    assert made.exit_code == 0, made.output
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": code_head()})
    engine.dispose()
    return backup


def test_a_backup_of_a_newer_schema_is_refused_and_nothing_changes(played: _Database, tmp_path: Path) -> None:
    backup = _backup_at_revision(played, tmp_path, "0099_future")
    # The target: the same data with one more report, so a restore would show.
    engine = make_engine(played.url)
    with engine.begin() as c:
        c.execute(text("UPDATE task SET title = 'changed after the backup' WHERE code = '2.1'"))
    engine.dispose()
    before, counts = _digests(played.url), _counts(played.url)
    file_before = played.path.read_bytes() if played.backend == "sqlite" else b""

    refused = _cli(played.url, "db", "restore", "--yes", str(backup), tmp=tmp_path)
    assert refused.exit_code == 1
    assert "0099_future, newer than this coordbot knows" in refused.output and "nothing was changed" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) <= 2
    assert _digests(played.url) == before and _counts(played.url) == counts
    if played.backend == "sqlite":
        assert played.path.read_bytes() == file_before


def test_restoring_over_a_newer_target_schema_is_refused(played: _Database, tmp_path: Path) -> None:
    backup = tmp_path / "now.backup"
    assert _cli(played.url, "db", "backup", str(backup), tmp=tmp_path).exit_code == 0
    engine = make_engine(played.url)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    counts = _counts(played.url)
    refused = _cli(played.url, "db", "restore", "--yes", str(backup), tmp=tmp_path)
    assert refused.exit_code == 1
    assert "target database has schema revision 0099_future" in refused.output
    assert "refusing to restore over a newer schema" in refused.output
    assert _counts(played.url) == counts


def test_restore_refuses_what_is_no_backup_of_this_backend(played: _Database, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup", encoding="utf-8")
    out = _cli(played.url, "db", "restore", "--yes", str(junk), tmp=tmp_path)
    assert out.exit_code == 1 and "not a coordbot backup" in out.output
    missing = _cli(played.url, "db", "restore", "--yes", str(tmp_path / "nope.db"), tmp=tmp_path)
    assert missing.exit_code == 1 and "no such file" in missing.output
    # A backup of the other backend.
    other = tmp_path / "other.backup"
    if played.backend == "sqlite":
        other.write_bytes(b"PGDMP" + b"\0" * 100)
        assert (
            "is a postgresql backup but the database is sqlite"
            in _cli(played.url, "db", "restore", "--yes", str(other), tmp=tmp_path).output
        )
    else:
        with sqlite3.connect(other) as c:
            c.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            c.execute("INSERT INTO alembic_version VALUES (?)", (code_head(),))
        assert (
            "is a sqlite backup but the database is postgresql"
            in _cli(played.url, "db", "restore", "--yes", str(other), tmp=tmp_path).output
        )


def test_restore_asks_first(played: _Database, tmp_path: Path) -> None:
    backup = tmp_path / "b.backup"
    assert _cli(played.url, "db", "backup", str(backup), tmp=tmp_path).exit_code == 0
    env = {"COORDBOT_CONFIG": str(tmp_path / "none.yaml"), "COORDBOT_DATABASE_URL": played.url}
    declined = CliRunner().invoke(main, ["db", "restore", str(backup)], env=env, input="n\n")
    assert declined.exit_code == 1 and "replace everything in" in declined.output and "Aborted" in declined.output


def test_without_the_postgresql_tools_the_error_says_what_to_install(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = _cli(pg_url, "db", "backup", str(tmp_path / "x.backup"), tmp=tmp_path)
    assert out.exit_code == 1
    assert "pg_dump is not on PATH" in out.output and "apt-get install postgresql-client" in out.output
    assert "Traceback" not in out.output and not (tmp_path / "x.backup").exists()


def test_a_pg_dump_failure_is_one_line_and_leaves_no_file(tmp_path: Path) -> None:
    url = make_url(PG_ADMIN_URL).set(database=f"no_such_db_{uuid.uuid4().hex[:6]}").render_as_string(False)
    out = _cli(url, "db", "backup", str(tmp_path / "x.backup"), tmp=tmp_path)
    assert out.exit_code == 1 and "pg_dump failed:" in out.output and "does not exist" in out.output
    assert not list(tmp_path.iterdir()) or all(p.name == "none.yaml" for p in tmp_path.iterdir())


# ---- plan export -------------------------------------------------------------------------------------


def test_plan_export_archives_the_whole_history(played: _Database, tmp_path: Path) -> None:
    out = tmp_path / "records.zip"
    done = _cli(played.url, "plan", "export", "--plan", "songjiang-ip-2024-2026", str(out), tmp=tmp_path)
    assert done.exit_code == 0, done.output
    assert "plan songjiang-ip-2024-2026 exported to" in done.output
    counts = _counts(played.url)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        for name, entry in manifest["files"].items():  # every file listed, with its true hash
            assert hashlib.sha256(zf.read(name)).hexdigest() == entry["sha256"], name
        assert names == {*manifest["files"], "manifest.json"}
        assert manifest["schema_revision"] == code_head() and manifest["format"] == "coordbot-plan-export"
        # The plan file as imported (the demo imports the shipped plan).
        engine = make_engine(played.url)
        with Session(engine) as s:
            plan = service.get_plan(session=s)
            assert plan is not None
            assert hashlib.sha256(zf.read("plan.yaml")).hexdigest() == plan.source_sha256
        engine.dispose()
        # One plan in the database: every task, report and event of it is in the archive.
        assert manifest["counts"]["tasks"] == counts["task"] == len(json.loads(zf.read("tasks.json")))
        organisation = json.loads(zf.read("organisation.json"))
        assert {d["organisation_id"] for d in json.loads(zf.read("departments.json"))} == {organisation["id"]}
        assert manifest["counts"]["reports"] == counts["progress_report"] > 0
        assert manifest["counts"]["events"] == len(json.loads(zf.read("events.json"))) > 100
        assert manifest["counts"]["targets"] == counts["target"]
        assert manifest["counts"]["digests"] == counts["digest"] >= 1
        assert manifest["counts"]["briefings"] == counts["briefing"] >= 1
        reports = json.loads(zf.read("reports.json"))
        assert any("双随机检查" in r["text"] for r in reports)
        tasks_csv = zf.read("tasks.csv")
        assert tasks_csv.startswith("\ufeff".encode())  # a spreadsheet reads the Chinese as UTF-8
        rows = list(csv.DictReader(io.StringIO(tasks_csv.decode("utf-8-sig"))))
        assert len(rows) == counts["task"] and {"code", "title", "status", "colour"} <= set(rows[0])
        contacts = json.loads(zf.read("contacts.json"))
        assert contacts and all("address" not in c for c in contacts)  # no chat addresses in the records
        assert any(n.startswith("files/briefing-") and n.endswith(".docx") for n in names)


def test_plan_export_of_an_unknown_plan_says_which_exist(played: _Database, tmp_path: Path) -> None:
    out = _cli(played.url, "plan", "export", "--plan", "nosuch", str(tmp_path / "x.zip"), tmp=tmp_path)
    assert out.exit_code == 1 and "no plan 'nosuch'; plans: songjiang-ip-2024-2026" in out.output
    assert not (tmp_path / "x.zip").exists()


def test_backup_of_a_database_without_the_schema_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    out = _cli(f"sqlite:///{empty}", "db", "backup", str(tmp_path / "b.db"), tmp=tmp_path)
    assert out.exit_code == 1 and "no coordbot schema" in out.output
    assert not (tmp_path / "b.db").exists()
    assert os.listdir(tmp_path) == ["empty.db"] or set(os.listdir(tmp_path)) <= {"empty.db", "none.yaml"}


def test_a_truncated_backup_is_refused_and_nothing_changes(played: _Database, tmp_path: Path) -> None:
    backup = tmp_path / "whole.backup"
    assert _cli(played.url, "db", "backup", str(backup), tmp=tmp_path).exit_code == 0
    cut = tmp_path / "cut.backup"
    cut.write_bytes(backup.read_bytes()[: backup.stat().st_size // 2])
    engine = make_engine(played.url)
    with engine.begin() as c:
        c.execute(text("UPDATE task SET title = 'after the backup' WHERE code = '2.1'"))
    engine.dispose()
    before, counts = _digests(played.url), _counts(played.url)
    out = _cli(played.url, "db", "restore", "--yes", str(cut), tmp=tmp_path)
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output and len(out.output.strip().splitlines()) <= 2, out.output
    assert _digests(played.url) == before and _counts(played.url) == counts


@pytest.fixture(params=["sqlite", "postgresql"])
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    name = f"coordbot_backup_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_older_backup_is_restored_then_upgraded(own_url: str, tmp_path: Path) -> None:
    """A backup made before the last migration goes back as it was; `db upgrade` then brings it to head."""
    from coordbot.core.backup import known_revision

    previous = _script_previous()
    engine = make_engine(own_url)
    upgrade(engine, previous)
    engine.dispose()
    backup = tmp_path / "older.backup"
    assert _cli(own_url, "db", "backup", str(backup), tmp=tmp_path).exit_code == 0
    engine = make_engine(own_url)
    upgrade(engine)  # the target is at head now
    engine.dispose()
    assert known_revision(previous) and previous != code_head()

    restored = _cli(own_url, "db", "restore", "--yes", str(backup), tmp=tmp_path)
    assert restored.exit_code == 0, restored.output
    assert f"schema {previous}" in restored.output and "run 'coordbot db upgrade'" in restored.output
    upgraded = _cli(own_url, "db", "upgrade", tmp=tmp_path)
    assert upgraded.exit_code == 0 and f"database at revision {code_head()}" in upgraded.output


def _script_previous() -> str:
    """The revision just before this coordbot's head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from coordbot.core.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_revision(code_head())
    assert head is not None and isinstance(head.down_revision, str)
    return head.down_revision


INSERT_EVENT = "INSERT INTO event (at, type, actor, payload) VALUES (CURRENT_TIMESTAMP, 'x', 't', '{}')"


def test_a_sqlite_backup_taken_while_writing_is_consistent(tmp_path: Path) -> None:
    """The online backup API: a copy made while another connection commits is one committed state."""
    import threading

    path = tmp_path / "busy.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    stop = threading.Event()
    written = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            with engine.begin() as c:  # two rows per transaction: a torn copy would show an odd count
                for _ in range(2):
                    c.execute(
                        text("INSERT INTO event (at, type, actor, payload) VALUES (CURRENT_TIMESTAMP, 'x', 't', '{}')")
                    )
            n += 2
            written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 50:
            time.sleep(0.01)
        backups = []
        for k in range(3):
            dest = tmp_path / f"busy-{k}.db"
            done = _cli(url, "db", "backup", str(dest), tmp=tmp_path)
            assert done.exit_code == 0, done.output
            backups.append(dest)
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    for dest in backups:
        with sqlite3.connect(dest) as c:
            assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            (count,) = c.execute("SELECT count(*) FROM event WHERE type = 'x'").fetchone()
        assert count % 2 == 0 and count > 0
        assert not Path(f"{dest}-wal").exists()  # one self-contained file
