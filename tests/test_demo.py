"""The main job of a fresh machine: `coordbot demo` plays the whole loop with no account or token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbot.cli import main
from coordbot.testing.fake_email import dovecot_binary

pytestmark = pytest.mark.slow


def test_demo_plays_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "none.yaml"))
    result = CliRunner().invoke(main, ["demo", "--workdir", str(tmp_path / "demo")], catch_exceptions=False)
    out = result.output
    assert result.exit_code == 0, out[-3000:]
    assert "18 项任务" in out
    assert "您已绑定为" in out and "您尚未绑定" in out  # binding, and the stranger refused
    assert "请报送本周进展（13项任务）" in out  # one weekly message for the busy contact
    assert "已记录：任务2.1，正常推进，专项行动和双随机检查+2（今年2/10）" in out
    assert "已向区财政局发送协调请求" in out and "【协调请求】" in out
    assert "延期申请 #1（任务4.2）已批准，新期限 2027-03-31" in out
    assert "【督办】" in out
    assert "提醒已发送：" in out
    assert "领导周报摘要" in out and "工作周报" in out
    for name in ("weekly-digest.md", "weekly-digest.html", "briefing-2026-03-16.docx", "briefing-2026-03-16.html"):
        assert (tmp_path / "demo" / "out" / name).stat().st_size > 0
    assert (tmp_path / "demo" / "demo.db").exists()


def _needs_dovecot() -> None:
    if dovecot_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: .ci/run must apt-get install -y dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install -y dovecot-imapd)")


@pytest.mark.parametrize("channel", ["wecom", "email"])
def test_demo_plays_the_loop_on_another_platform(channel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same script on another platform's fake server: the same outcomes reach the same people."""
    if channel == "email":
        _needs_dovecot()
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "none.yaml"))
    result = CliRunner().invoke(
        main, ["demo", "--channel", channel, "--workdir", str(tmp_path / "demo")], catch_exceptions=False
    )
    out = result.output
    assert result.exit_code == 0, out[-3000:]
    assert "18 项任务" in out
    assert "您已绑定为" in out and "您尚未绑定" in out
    assert "请报送本周进展（13项任务）" in out
    assert "已记录：任务2.1，正常推进，专项行动和双随机检查+2（今年2/10）" in out
    assert "已向区财政局发送协调请求" in out and "【协调请求】" in out
    assert "已记录：任务5.3，正常推进，进度40%，预计2026-04-10完成" in out  # asked back which task, on WeCom
    assert "延期申请 #1（任务4.2）已批准，新期限 2027-03-31" in out
    assert "【督办】" in out
    assert "提醒已发送：" in out
    assert "领导周报摘要" in out and "工作周报" in out
    for name in ("weekly-digest.md", "weekly-digest.html", "briefing-2026-03-16.docx", "briefing-2026-03-16.html"):
        assert (tmp_path / "demo" / "out" / name).stat().st_size > 0
    assert (tmp_path / "demo" / "demo.db").exists()


def test_demo_on_email_without_dovecot_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("coordbot.testing.fake_email.dovecot_binary", lambda: None)
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "none.yaml"))
    result = CliRunner().invoke(main, ["demo", "--channel", "email", "--workdir", str(tmp_path / "demo")])
    assert result.exit_code != 0
    assert "apt-get install dovecot-imapd" in result.output
    assert not (tmp_path / "demo").exists()  # nothing touched
