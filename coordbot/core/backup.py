"""Back up and restore a coordbot database: SQLite through its online backup API, PostgreSQL through
``pg_dump`` / ``pg_restore`` in their custom format (found on ``PATH``).

A backup is the database's own format, so an operator can also read it with the usual tools (``sqlite3``,
``pg_restore -l``): a SQLite file (a consistent copy taken while the bot runs), or a ``pg_dump -Fc`` archive.
The schema revision is read from the backup itself (its ``alembic_version`` row), so a restore can refuse a
backup made by a newer coordbot — or a target database a newer coordbot migrated — before it changes
anything. Both steps are atomic: a backup appears under its name only when complete (written beside it, then
renamed); a SQLite restore is one backup-API step into the target (one write transaction), a PostgreSQL
restore one ``psql --single-transaction`` that empties the schema and loads the archive, so a failure leaves
the target as it was.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from coordbot.core.db import MIGRATIONS_DIR, normalise_url

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"
LOCK_TIMEOUT = "30s"  # a restore waits this long for running instances' transactions, then fails cleanly


class BackupError(Exception):
    """What went wrong, in one line fit for the operator (what, where, what to do)."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    backend: str  # sqlite | postgresql
    revision: str | None
    size: int
    seconds: float


# ---- schema revisions --------------------------------------------------------------------------------


def _script():  # type: ignore[no-untyped-def]
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def code_head() -> str:
    """The newest schema revision this coordbot knows."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the wheel ships its migrations
        raise BackupError(f"no migrations found at {MIGRATIONS_DIR}; reinstall coordbot")
    return str(head)


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this coordbot's migrations (a newer coordbot's are not)."""
    from alembic.util import CommandError

    try:
        return _script().get_revision(revision) is not None
    except CommandError:
        return False


def check_restorable(backup_revision: str | None, target_revision: str | None, *, what: str) -> None:
    """Refuse a backup or target whose schema is newer than this coordbot's code (both checked before any
    change); an older backup is fine: the next ``coordbot db upgrade`` (or ``run``) migrates it."""
    head = code_head()
    if backup_revision is None:
        raise BackupError(f"{what} holds no schema revision (no alembic_version row): not a coordbot backup")
    if not known_revision(backup_revision):
        raise BackupError(
            f"{what} has schema revision {backup_revision}, newer than this coordbot knows (head {head}): "
            "restore it with the coordbot version that made it; nothing was changed"
        )
    if target_revision is not None and not known_revision(target_revision):
        raise BackupError(
            f"the target database has schema revision {target_revision}, newer than this coordbot knows "
            f"(head {head}): refusing to restore over a newer schema; nothing was changed"
        )


def backend_of(url: str) -> str:
    try:
        return make_url(normalise_url(url)).get_backend_name()
    except Exception as exc:
        raise BackupError(f"not a database URL: {exc}") from exc


def file_kind(path: Path) -> str:
    """``sqlite`` or ``postgresql`` from the file's first bytes; a clear error for anything else."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BackupError(f"{path}: is a directory, expected a backup file") from None
    except OSError as exc:
        raise BackupError(f"{path}: cannot read it ({exc.strerror})") from exc
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "postgresql"
    raise BackupError(f"{path}: not a coordbot backup (neither a SQLite file nor a pg_dump custom archive)")


def backup_revision(path: Path) -> str | None:
    """The schema revision stored in a backup file."""
    kind = file_kind(path)
    if kind == "sqlite":
        return _sqlite_revision(path)
    return _pg_archive_revision(path)


# ---- SQLite ------------------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path:
    u = make_url(normalise_url(url))
    if not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        raise BackupError(f"cannot back up or restore the SQLite database {u.database or ':memory:'!r}: not a file")
    return Path(u.database)


@contextmanager
def _sqlite(path: Path, *, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _sqlite_revision(path: Path) -> str | None:
    try:
        with _sqlite(path, readonly=True) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise BackupError(f"{path}: cannot read it as SQLite ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: a damaged SQLite file ({exc})") from exc
    return str(row[0]) if row else None


@contextmanager
def atomic_path(dest: Path, suffix: str) -> Iterator[Path]:
    """A temporary path in ``dest``'s directory, renamed onto ``dest`` when the block succeeds."""
    if not dest.parent.is_dir():
        raise BackupError(f"the directory {str(dest.parent)!r} does not exist: create it first or choose another path")
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _backup_sqlite(url: str, dest: Path) -> str | None:
    src_path = _sqlite_path(url)
    if not src_path.exists():
        raise BackupError(f"no SQLite database at {src_path}")
    with atomic_path(dest, ".partial") as tmp:
        with _sqlite(src_path, readonly=True) as src, _sqlite(tmp) as dst:
            src.backup(dst)  # one step: a consistent snapshot even while the bot writes (WAL)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            ok = dst.execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise BackupError(f"the copy of {src_path} failed its integrity check: {ok}")
        revision = _sqlite_revision(tmp)
    return revision


def _restore_sqlite(url: str, src: Path) -> str | None:
    target = _sqlite_path(url)
    revision = _sqlite_revision(src)
    current = _sqlite_revision(target) if target.exists() else None
    check_restorable(revision, current, what=str(src))
    if not target.parent.is_dir():
        raise BackupError(f"the directory {str(target.parent)!r} of the target database does not exist")
    with _sqlite(src, readonly=True) as source:
        ok = source.execute("PRAGMA quick_check").fetchone()
        if not ok or ok[0] != "ok":
            raise BackupError(f"{src}: fails SQLite's integrity check ({ok}); nothing was changed")
        with _sqlite(target) as dst:
            try:
                # One step: the whole target is replaced in one write transaction (waiting on running
                # writers up to the busy timeout), or not at all.
                source.backup(dst)
            except sqlite3.OperationalError as exc:
                raise BackupError(f"cannot write {target} ({exc}); nothing was changed") from exc
    return revision


# ---- PostgreSQL --------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not on PATH: install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
        )
    return found


def _libpq(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection options for the PostgreSQL tools: host, port, user and database as arguments, the password
    in the environment (never on a command line other users can read)."""
    u: URL = make_url(normalise_url(url))
    args = []
    if u.host:
        args += ["--host", u.host]
    if u.port:
        args += ["--port", str(u.port)]
    if u.username:
        args += ["--username", u.username]
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10")}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    if "sslmode" in u.query:
        env["PGSSLMODE"] = str(u.query["sslmode"])
    if not u.database:
        raise BackupError("the PostgreSQL URL names no database")
    return [*args, "--no-password"], {**env, "PGDATABASE": u.database}


def _run(cmd: list[str], env: dict[str, str], *, what: str, stdin: int | None = None) -> bytes:
    done = subprocess.run(cmd, env=env, stdin=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()), lines[0] if lines else "")
        raise BackupError(f"{what} failed: {first.strip() or f'exit status {done.returncode}'}")
    return done.stdout


def _pg_archive_revision(path: Path) -> str | None:
    pg_restore = _tool("pg_restore")
    out = _run(
        [pg_restore, "--data-only", "--table=alembic_version", "--file=-", str(path)],
        dict(os.environ),
        what=f"reading {path} with pg_restore",
    ).decode("utf-8", "replace")
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line:
            data = lines[i + 1] if i + 1 < len(lines) else "\\."
            return None if data == "\\." else data.split("\t")[0]
    return None


def _pg_revision(url: str) -> str | None:
    from sqlalchemy.exc import OperationalError

    from coordbot.core.db import current_revision, make_engine

    engine = make_engine(url)
    try:
        return current_revision(engine)
    except OperationalError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise BackupError(f"cannot reach the target database: {first}") from exc
    finally:
        engine.dispose()


def _backup_pg(url: str, dest: Path) -> str | None:
    pg_dump = _tool("pg_dump")
    args, env = _libpq(url)
    with atomic_path(dest, ".partial") as tmp:
        _run([pg_dump, *args, "--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}"], env, what="pg_dump")
        revision = _pg_archive_revision(tmp)
    return revision


# Empties the schema inside the restore's own transaction, so tables the backup does not have (a later
# migration's) go too, and a failure rolls the drop back with the rest.
_EMPTY_PUBLIC = f"""\
SET lock_timeout = '{LOCK_TIMEOUT}';
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  LOOP
    EXECUTE CASE r.relkind WHEN 'v' THEN 'DROP VIEW IF EXISTS ' WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS '
            WHEN 'S' THEN 'DROP SEQUENCE IF EXISTS ' WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS '
            ELSE 'DROP TABLE IF EXISTS ' END || 'public.' || quote_ident(r.relname) || ' CASCADE';
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
             AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
  LOOP
    EXECUTE 'DROP TYPE IF EXISTS public.' || quote_ident(r.typname) || ' CASCADE';
  END LOOP;
END $$;
"""


def _restore_pg(url: str, src: Path) -> str | None:
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    revision = _pg_archive_revision(src)
    current = _pg_revision(url)
    check_restorable(revision, current, what=str(src))
    args, env = _libpq(url)
    # The archive as SQL (schema and COPY data), after the statement that empties the schema; psql runs the
    # whole script as one transaction and stops at the first error.
    script = _run(
        [pg_restore, "--no-owner", "--no-privileges", "--schema=public", "--file=-", str(src)],
        dict(os.environ),
        what=f"reading {src} with pg_restore",
    )
    with tempfile.TemporaryFile() as f:
        f.write(_EMPTY_PUBLIC.encode())
        f.write(script)
        f.seek(0)
        _run(
            [psql, *args, "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1", "--file=-"],
            env,
            what="restoring with psql (nothing was changed)",
            stdin=f.fileno(),
        )
    return revision


# ---- the operations ----------------------------------------------------------------------------------


def backup(url: str, dest: Path) -> BackupInfo:
    """Write a backup of the database at ``url`` to ``dest`` (replaced only once the new one is complete)."""
    kind = backend_of(url)
    start = time.perf_counter()
    if kind == "sqlite":
        revision = _backup_sqlite(url, dest)
    elif kind == "postgresql":
        revision = _backup_pg(url, dest)
    else:
        raise BackupError(f"cannot back up a {kind} database: coordbot backs up SQLite and PostgreSQL")
    if revision is None:
        dest.unlink(missing_ok=True)
        raise BackupError("the database has no coordbot schema (no alembic_version): run 'coordbot db upgrade' first")
    return BackupInfo(dest, kind, revision, dest.stat().st_size, time.perf_counter() - start)


def preflight(url: str, src: Path) -> str:
    """What can be refused from the file alone, before anyone is asked to confirm: not a backup, a backup of
    the other backend, a newer schema. Returns the backend."""
    kind = backend_of(url)
    have = file_kind(src)
    if have != kind:
        raise BackupError(f"{src} is a {have} backup but the database is {kind}: restore it into a {have} database")
    check_restorable(backup_revision(src), None, what=str(src))
    return kind


def restore(url: str, src: Path) -> BackupInfo:
    """Replace the database at ``url`` with the backup ``src``; refuses (changing nothing) a backup of the
    other backend, a backup or target newer than this coordbot, or a file that is no backup."""
    kind = preflight(url, src)
    start = time.perf_counter()
    revision = _restore_sqlite(url, src) if kind == "sqlite" else _restore_pg(url, src)
    return BackupInfo(src, kind, revision, src.stat().st_size, time.perf_counter() - start)
