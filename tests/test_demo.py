"""The main job of a fresh machine: `coordbot demo` plays the whole loop with no account or token."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from coordbot.cli import main

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
