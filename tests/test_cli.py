"""The command line as the office uses it, against both databases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbot.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COORDBOT_DATABASE_URL", db_url)
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "no-config.yaml"))
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    return run


def test_import_and_show_the_shipped_plan(cli) -> None:
    out = cli("plan", "import", str(SHIPPED))
    assert "plan songjiang-ip-2024-2026 created" in out
    assert cli("plan", "import", str(SHIPPED)).strip() == "plan songjiang-ip-2024-2026: no changes"

    shown = cli("plan", "show")
    codes = re.findall(r"^  (\d\.\d|S\.\d) ", shown, flags=re.M)
    assert codes == [f"{g}.{i}" for g in "12345" for i in (1, 2, 3)] + ["S.1", "S.2", "S.3"]
    # Every quantitative target of the seed text, in words the office reads.
    for phrase in (
        "每年不少于10项",
        "累计新增不少于100家",
        "累计新增不少于20项",
        "每年不少于4次",
        "到2026-12-31达到30件",
        "每年4月26日 世界知识产权日",
        "每年3月15日 消费者权益保护日",
    ):
        assert phrase in shown, phrase
    assert "牵头：区市场监管局" in shown
    assert "（建议，待办公室确认）" in shown
    assert "共 18 项任务" in shown

    english = cli("plan", "show", "--lang", "en")
    assert "at least 10 项 every year" in english
    assert "18 tasks" in english

    depts = cli("departments", "list")
    assert re.search(r"^amr\s+上海市松江区市场监督管理局", depts, flags=re.M)


def test_validate_reports_problems_with_lines(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHIPPED.read_text(encoding="utf-8").replace("lead: amr", "lead: nobody", 1), encoding="utf-8")
    out = cli("plan", "validate", str(bad), ok=False)
    assert re.search(r"bad\.yaml:\d+ \[groups\[0\]\.tasks\[0\]\.lead\]: unknown department 'nobody'", out)
    out = cli("plan", "import", str(bad), ok=False)
    assert "nothing was imported" in out
    assert "no plan yet" in cli("plan", "show", ok=False)
    assert "OK" in cli("plan", "validate", str(SHIPPED))


def test_db_upgrade_and_config_mask_secrets(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "database at revision" in cli("db", "upgrade")
    monkeypatch.setenv("COORDBOT_TELEGRAM_TOKEN", "42:VERYSECRET")
    shown = cli("config")
    assert "VERYSECRET" not in shown
    assert "telegram_token: (set)" in shown
