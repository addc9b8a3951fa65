"""What a long-running process does not use is not imported: checked in a fresh interpreter, structurally
(which modules are loaded), not by timing or by memory figures (bench/memory.py measures those)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

from coordbot.core.db import make_engine, upgrade

# The briefing's rendering (charts, DOCX) runs only when a briefing is asked for; alembic only when the
# schema is behind.
HEAVY = ("matplotlib", "docx", "alembic", "mako", "coordbot.reports.briefing", "coordbot.reports.charts")


def _loaded_after(code: str) -> set[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_the_runtime_does_not_import_the_briefing_or_migrations() -> None:
    assert _heavy(_loaded_after("import coordbot.runtime.app")) == []


def test_the_conversation_is_not_imported_until_an_update_is_handled_here(tmp_path: Path) -> None:
    # A runtime whose updates go to worker processes (or that has had none yet) builds no conversation.
    code = f"""
from coordbot.core.config import Settings
from coordbot.core.db import make_engine
from coordbot.runtime import make_runtime
url = "sqlite:///{tmp_path / "lazy.db"}"
runtime = make_runtime(Settings(database_url=url), make_engine(url))
runtime.conversation_runner()
"""
    loaded = _loaded_after(code)
    assert "coordbot.replies.conversation" not in loaded
    assert _heavy(loaded) == []


def test_a_database_at_the_head_is_recognised_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'head.db'}"
    engine: Engine = make_engine(url)
    upgrade(engine)  # a new database: alembic migrates it
    engine.dispose()
    code = f"""
from coordbot.core.db import make_engine, upgrade
upgrade(make_engine("{url}"))
"""
    assert _heavy(_loaded_after(code)) == []
