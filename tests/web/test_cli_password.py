"""``coordbot web password``: the office's desk password, from a file (CI) or typed twice at the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbot.cli import main
from coordbot.plan.models import Contact
from coordbot.web.signin import check_password

from .conftest import Desk


def _checks(desk: Desk, password: str) -> bool:
    with desk.session() as s:
        office = s.get(Contact, desk.ids["zhang"])
        assert office is not None
        return check_password(session=s, contact=office, password=password)


def test_web_password_from_a_file_and_from_the_prompt(
    desk_db: Desk, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORDBOT_DATABASE_URL", db_url)
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "none.yaml"))
    runner = CliRunner()
    args = ["web", "password", "--department", "amr", "--name", "张静"]
    secret = tmp_path / "pw.txt"
    secret.write_text("first-desk-password\n", encoding="utf-8")

    result = runner.invoke(main, [*args, "--password-file", str(secret)])
    assert result.exit_code == 0, result.output
    assert "desk password set for 张静" in result.output
    assert _checks(desk_db, "first-desk-password")

    result = runner.invoke(main, args, input="second-desk-password\nsecond-desk-password\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Password") == 1 and "Repeat for confirmation" in result.output
    assert _checks(desk_db, "second-desk-password") and not _checks(desk_db, "first-desk-password")

    # typed differently twice: asked again; nothing set when the input runs out
    result = runner.invoke(main, args, input="third-desk-password\nthird-desk-passwort\n")
    assert result.exit_code != 0 and "do not match" in result.output
    assert _checks(desk_db, "second-desk-password")


def test_web_password_refusals(desk_db: Desk, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDBOT_DATABASE_URL", db_url)
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "none.yaml"))
    runner = CliRunner()
    short = tmp_path / "short.txt"
    short.write_text("short\n", encoding="utf-8")
    result = runner.invoke(main, ["web", "password", "--department", "amr", "--name", "张静", "--password-file", short])
    assert result.exit_code == 1 and "at least 12 characters" in result.output
    long = tmp_path / "long.txt"
    long.write_text("a-long-enough-password\n", encoding="utf-8")
    # a contact (not the office) has no desk password: the command finds no office person of that name
    result = runner.invoke(main, ["web", "password", "--department", "amr", "--name", "王敏", "--password-file", long])
    assert result.exit_code == 1 and "no office named '王敏'" in result.output
    assert not _checks(desk_db, "a-long-enough-password")
