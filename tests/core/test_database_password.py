"""``database_password`` (COORDBOT_DATABASE_PASSWORD or its _FILE: a compose secret) goes into the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from coordbot.core.config import ConfigError, load_settings
from coordbot.core.logs import settings_secrets


def test_the_password_file_goes_into_the_url_and_never_shows(tmp_path: Path) -> None:
    secret = tmp_path / "db_password"
    secret.write_text("pw%with:odd@chars\n", encoding="utf-8")
    env = {
        "COORDBOT_CONFIG": str(tmp_path / "none.yaml"),
        "COORDBOT_DATABASE_URL": "postgresql+psycopg://coordbot@db:5432/coordbot",
        "COORDBOT_DATABASE_PASSWORD_FILE": str(secret),
    }
    s = load_settings(env=env)
    assert make_url(s.database_url).password == "pw%with:odd@chars"
    assert make_url(s.database_url).host == "db"
    assert "pw%with" not in repr(s) and s.public_dict()["database_password"] == "(set)"
    assert "pw%with:odd@chars" in settings_secrets(s)  # redacted from every log line


def test_a_password_for_sqlite_is_refused(tmp_path: Path) -> None:
    env = {"COORDBOT_CONFIG": str(tmp_path / "none.yaml"), "COORDBOT_DATABASE_PASSWORD": "something"}
    with pytest.raises(ConfigError, match="the database is SQLite, which has no password"):
        load_settings(env=env)
