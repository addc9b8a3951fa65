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
    assert "valid" in cli("plan", "validate", str(SHIPPED))


def test_db_upgrade_and_config_mask_secrets(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "database at revision" in cli("db", "upgrade")
    monkeypatch.setenv("COORDBOT_TELEGRAM_TOKEN", "42:VERYSECRET")
    shown = cli("config")
    assert "VERYSECRET" not in shown
    assert "telegram_token: (set)" in shown


def test_digest_briefing_and_meeting_commands(cli, tmp_path: Path) -> None:
    cli("plan", "import", str(SHIPPED))
    md = cli("digest", "--week", "2026-W11", "--format", "md")
    assert "2026-W11" in md and "18" in md
    assert "ISO week" in cli("digest", "--week", "2026-11", ok=False)
    out = tmp_path / "digest.html"
    assert "digest written to" in cli("digest", "--format", "html", "--out", str(out))
    assert out.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")

    docx = tmp_path / "briefing.docx"
    assert "briefing written" in cli("briefing", "--meeting-date", "2026-03-27", "--format", "docx", "--out", str(docx))
    assert docx.read_bytes()[:2] == b"PK"  # a zip container, as DOCX files are

    decisions = tmp_path / "decisions.yaml"
    decisions.write_text(
        'meeting:\n  date: 2026-03-27\ndecisions:\n  deadlines:\n    - task: "4.2"\n      due: 2026-09-30\n'
        "      reason: 会议明确阶段性时限\n",
        encoding="utf-8",
    )
    assert "1 decision(s) applied" in cli("meeting", "record", str(decisions))
    shown = cli("plan", "show")
    assert "4.2" in shown and "2026-09-30" in shown
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'meeting:\n  date: 2026-03-28\ndecisions:\n  closures:\n    - task: "9.9"\n      reason: x\n', encoding="utf-8"
    )
    refused = cli("meeting", "record", str(bad), ok=False)
    assert re.search(r"bad\.yaml:\d+", refused) and "9.9" in refused


def test_contacts_on_several_channels_and_a_department_group_robot(cli) -> None:
    cli("plan", "import", str(SHIPPED))
    invite = cli("contacts", "invite", "amr", "--name", "王伟", "--bot", "coordbot_test_bot")
    code = re.search(r"绑定 (\S+)", invite)
    assert code and "https://t.me/coordbot_test_bot?start=" + code.group(1) in invite
    out = cli(
        "contacts",
        "address",
        "amr",
        "--name",
        "王伟",
        "--channel",
        "email",
        "--address",
        "wang@amr.example.gov.cn",
        ok=False,
    )
    assert "no contact named '王伟' in department 'amr'" in out  # not bound yet: no contact row
    robot = cli("contacts", "robot", "amr", "--robot", "amr-group", "--kind", "wecom_robot")
    assert "wecom_robot robot 'amr-group'" in robot
    listed = cli("contacts", "list")
    assert re.search(r"amr\s+group\s+\S+工作群\s+wecom_robot\s+bound", listed)
    cli("contacts", "robot", "amr", "--robot", "amr-group-2", "--kind", "dingtalk_robot")  # the same group, moved
    assert cli("contacts", "list").count("工作群") == 1
