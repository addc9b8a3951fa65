"""Every mistake an operator makes on the command line, and every dependency that cannot be reached, ends in
one or two lines (what, where, what to do) and a non-zero exit; ``-v`` adds the traceback (issue 18)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from coordbot.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"

Run = Callable[..., str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Run:
    monkeypatch.setenv("COORDBOT_DATABASE_URL", db_url)
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "no-config.yaml"))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        if "-v" not in args:
            assert "Traceback" not in result.output
        return result.output

    return run


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """The command line on a migrated database (SQLite and PostgreSQL)."""
    return _runner(monkeypatch, tmp_path, db_url)


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Run]:
    """The command line on a database URL of the test's choosing (for mistakes no database is needed for)."""
    return lambda url: _runner(monkeypatch, tmp_path, url)


@pytest.fixture
def imported(cli: Run) -> Run:
    cli("plan", "import", str(SHIPPED))
    return cli


# ---- the database ----------------------------------------------------------------------------------


def test_a_malformed_database_url_says_which_setting_and_what_it_expects(bare: Callable[[str], Run]) -> None:
    out = bare("not-a-url")("plan", "show", code=1)
    assert "database_url is not a database URL" in out and "'not-a-url'" in out
    assert "COORDBOT_DATABASE_URL" in out and "postgresql+psycopg://" in out
    assert len(out.strip().splitlines()) == 2


def test_an_unreachable_postgresql_names_the_server_without_its_password(bare: Callable[[str], Run]) -> None:
    url = f"postgresql+psycopg://coordbot:Very-Secret-pw@127.0.0.1:{_free_port()}/coordbot"
    out = bare(url)("plan", "show", code=1)
    assert out.startswith("Error: cannot use the database at postgresql+psycopg://coordbot:***@127.0.0.1:")
    assert "Connection refused" in out or "connection failed" in out
    assert "is the database server running" in out and "COORDBOT_DATABASE_URL" in out
    assert "Very-Secret-pw" not in out
    assert len(out.strip().splitlines()) == 2
    verbose = bare(url)("-v", "plan", "show", code=1)
    assert "Traceback" in verbose and "OperationalError" in verbose  # -v adds the traceback
    assert "Very-Secret-pw" not in verbose.split("Traceback")[0]


# ---- the options -----------------------------------------------------------------------------------


def test_briefing_since_after_the_meeting_is_refused(bare: Callable[[str], Run], tmp_path: Path) -> None:
    out = bare("sqlite:///" + str(tmp_path / "x.db"))(
        "briefing", "--meeting-date", "2026-03-27", "--since", "2026-04-01", "--out", str(tmp_path / "b.md"), code=2
    )
    assert "Invalid value for '--since': 2026-04-01 is after --meeting-date 2026-03-27" in out
    assert not (tmp_path / "b.md").exists()


@pytest.mark.parametrize("command", [["digest"], ["briefing", "--meeting-date", "2026-03-27", "--format", "md"]])
def test_out_into_a_missing_directory_is_refused_and_nothing_is_created(
    bare: Callable[[str], Run], tmp_path: Path, command: list[str]
) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.md"
    out = bare("sqlite:///" + str(tmp_path / "x.db"))(*command, "--out", str(target), code=2)
    assert "Invalid value for '--out'" in out and str(target.parent) in out and "does not exist" in out
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("days", ["0", "-3"])
def test_an_invite_that_would_already_have_expired_is_refused(imported: Run, days: str) -> None:
    out = imported("contacts", "invite", "amr", "--name", "王伟", "--bot", "b", "--days", days, code=2)
    assert "Invalid value for '--days'" in out and "x>=1" in out
    assert "王伟" not in imported("contacts", "list")


def test_every_lang_option_says_what_it_is() -> None:
    def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
        found: list[tuple[str, click.Command]] = []
        for name, cmd in group.commands.items():
            found.append((prefix + name, cmd))
            if isinstance(cmd, click.Group):
                found += commands(cmd, prefix + name + " ")
        return found

    with_lang = {name: p for name, cmd in commands(main) for p in cmd.params if "--lang" in getattr(p, "opts", [])}
    assert {"digest", "briefing", "plan show", "reminders preview", "contacts invite"} <= set(with_lang)
    assert all(isinstance(p, click.Option) and p.help for p in with_lang.values()), with_lang


# ---- what the commands say -------------------------------------------------------------------------


def test_a_plan_that_does_not_exist_is_named_with_the_plans_that_do(imported: Run) -> None:
    for command in (["digest", "--plan", "nosuch"], ["plan", "show", "--plan", "nosuch"]):
        out = imported(*command, code=1)
        assert "no plan 'nosuch'; plans: songjiang-ip-2024-2026" in out
        assert "no plan yet" not in out


def test_contacts_list_shows_the_invites_not_used_yet(imported: Run) -> None:
    imported("contacts", "invite", "amr", "--name", "王伟", "--bot", "b", "--days", "3")
    imported("contacts", "invite", "sci", "--name", "赵磊", "--role", "leader", "--bot", "b")
    listed = imported("contacts", "list")
    assert "no contacts yet" not in listed
    assert re.search(r"^amr\s+contact\s+王伟\s+invite expires \d{4}-\d\d-\d\d \d\d:\d\d$", listed, flags=re.M)
    assert re.search(r"^sci\s+leader\s+赵磊\s+invite expires", listed, flags=re.M)


def test_reminders_list_explains_an_empty_list_and_an_unknown_task(imported: Run) -> None:
    out = imported("reminders", "list")
    assert "no reminders match" in out and "no contact is bound yet" in out and "contacts invite" in out
    out = imported("reminders", "list", "--task", "9.9", code=1)
    assert "no task '9.9'" in out and "plan show" in out


def test_text_for_the_terminal_has_no_chat_tags(imported: Run, tmp_path: Path) -> None:
    digest = imported("digest", "--format", "text")
    assert "<b>" not in digest and "</b>" not in digest and "工作周报" in digest
    written = tmp_path / "digest.txt"
    imported("digest", "--format", "text", "--out", str(written))
    assert "<b>" not in written.read_text(encoding="utf-8")
    preview = imported("reminders", "preview", "1.1", "--days", "30")
    assert "<b>" not in preview and "任务1.1" in preview


def test_validate_says_valid_or_not_valid_never_imported(cli: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHIPPED.read_text(encoding="utf-8").replace("lead: amr", "lead: nobody", 1), encoding="utf-8")
    out = cli("plan", "validate", str(bad), code=1)
    assert "1 problem(s), not valid (nothing to import)" in out and "imported" not in out
    assert f"{SHIPPED}: valid — plan songjiang-ip-2024-2026" in cli("plan", "validate", str(SHIPPED))
    assert "nothing was imported" in cli("plan", "import", str(bad), code=1)  # import keeps its own words


# ---- coordbot run ----------------------------------------------------------------------------------


def test_run_says_it_started_and_retries_an_unreachable_telegram(tmp_path: Path) -> None:
    """The real process: one start-up line on stdout, one line per retry while the Bot API is down, a clean
    exit on SIGINT (it used to exit 1 with a traceback)."""
    port = _free_port()
    env = {
        **os.environ,
        "COORDBOT_CONFIG": str(tmp_path / "no-config.yaml"),
        "COORDBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "COORDBOT_TELEGRAM_TOKEN": "123456:TEST-token_abc",
        "COORDBOT_TELEGRAM_BASE_URL": f"http://127.0.0.1:{_free_port()}/bot",
        "COORDBOT_WEB_PORT": str(port),
        "COORDBOT_HANDLER_PROCESSES": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordbot", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        started = proc.stdout.readline()
        retries = []
        for line in proc.stderr:
            if "cannot start" in line:
                retries.append(line)
                if len(retries) == 2:
                    break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert started.startswith("coordbot starting: telegram polling; database sqlite:///")
    assert f"channels telegram; web desk http://127.0.0.1:{port}" in started
    assert "TEST-token" not in started
    assert "telegram: cannot start (Telegram at http://127.0.0.1:" in retries[0] and "retrying in 1 s" in retries[0]
    assert "attempt 2, retrying in 2 s" in retries[1]
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_dispatch_with_telegram_unreachable_says_so_in_two_lines(
    bare: Callable[[str], Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORDBOT_TELEGRAM_TOKEN", "123456:TEST-token_abc")
    monkeypatch.setenv("COORDBOT_TELEGRAM_BASE_URL", f"http://127.0.0.1:{_free_port()}/bot")
    out = bare("sqlite:///" + str(tmp_path / "x.db"))("reminders", "dispatch", code=1)
    assert re.search(r"^Error: Telegram at http://127\.0\.0\.1:\d+/bot is not reachable: ", out, flags=re.M)
    assert "try again later" in out and "TEST-token" not in out


def test_a_reader_that_goes_away_is_not_an_error(tmp_path: Path) -> None:
    # `coordbot config | head`: the pipe is closed before coordbot writes, so its first write gets EPIPE
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
    env["COORDBOT_CONFIG"] = str(tmp_path / "no-config.yaml")
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "coordbot", "config"], stdout=write, stderr=subprocess.PIPE, env=env, timeout=60
        )
    finally:
        os.close(write)
    stderr = done.stderr.decode()
    assert "BrokenPipeError" not in stderr and "unexpected" not in stderr, stderr
    assert done.returncode == 1  # what Python and click exit with on EPIPE
