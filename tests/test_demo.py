"""The main job of a fresh machine: `coordbot demo` plays the whole loop with no account or token."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coordbot.cli import main
from coordbot.testing.fake_email import dovecot_binary

pytestmark = pytest.mark.slow


def _desk_while_served(url: str, password_line: str) -> dict[str, Any]:
    """What a person gets from the demo's desk while it serves: health, the sign-in page, the dashboard."""
    seen: dict[str, Any] = {}
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as r:
        seen["healthz"] = (r.status, json.loads(r.read()))
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with browser.open(f"{url}/login", timeout=10) as r:
        login = r.read().decode()
        seen["login"] = (r.status, login)
    dept, name, password = re.search(r"部门 (\S+)，姓名 (\S+)，密码 (\S+)", password_line).groups()  # type: ignore[union-attr]
    csrf = re.search(r'name="csrf" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"csrf": csrf, "department": dept, "name": name, "password": password}).encode()
    with browser.open(f"{url}/login/password", data=form, timeout=30) as r:  # follows the 303 to the dashboard
        seen["dashboard"] = (r.status, r.geturl(), r.read().decode())
    return seen


def _assert_story_is_true(out: str, out_dir: Path) -> None:
    """Issue 16: the console's clock only runs forward; what the chat and the Friday digest message print equals
    the reports written next to them; one ask-back (the bot asks instead of guessing) is shown, and answered."""
    stamps = re.findall(r"^\[(\d\d-\d\d) \w{3} (\d\d:\d\d)\]", out, re.M)
    assert len(stamps) >= 5 and stamps == sorted(stamps), stamps
    md = (out_dir / "weekly-digest.md").read_text(encoding="utf-8")
    # the last figure the chat confirmed for task 2.1 is the digest's
    chat = re.findall(r"专项行动和双随机检查[^（\n]*（今年(\d+)/(\d+)）", out)
    report = re.search(r"^\| 2\.1 \| 专项行动和双随机检查 \| (\d+) \| (\d+)项 \|", md, re.M)
    assert chat and report, (chat, md[:1500])
    assert chat[-1] == report.groups(), (chat, report.groups())
    # the digest message the office got on Friday carries the figures of the digest file
    said = re.findall(
        r"任务 (\d+) 项：🔴 (\d+) · 🟡 (\d+) · 🟢 (\d+)；已销号 (\d+)\n"
        r".*?本周报送 (\d+) 条.*?催办 (\d+) 次，回复率 (\d+)%",
        out,
    )
    table = re.search(r"^\|" + r" (\d+) \|" * 7 + r" (\d+)% \|", md, re.M)
    assert said and table, (said, md[:800])
    assert said[-1] == table.groups(), (said[-1], table.groups())
    # one ask-back exchange: the question with its two answers, the answer pressed, the count recorded as a total
    assert out.count("是累计总数还是本次新增？") == 1, out[-3000:]
    asked = out.index("是累计总数还是本次新增？")
    answered = out.find("累计总数", asked + len("是累计总数还是本次新增？") + 12)
    assert "本次新增" in out[asked : asked + 200] and answered > 0
    assert "专项行动和双随机检查累计5（今年5/10）" in out[answered:]


def test_demo_plays_the_loop_and_serves_the_desk(tmp_path: Path) -> None:
    """``coordbot demo --serve`` (as a process, stopped with Ctrl-C): the whole loop, then the desk over its data."""
    env = {**os.environ, "COORDBOT_CONFIG": str(tmp_path / "none.yaml"), "PYTHONIOENCODING": "utf-8"}
    cmd = [sys.executable, "-m", "coordbot", "demo", "--workdir", str(tmp_path / "demo"), "--serve"]
    proc = subprocess.Popen(
        [*cmd, "--serve-seconds", "120"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "密码 " in line:
                break
        url = re.search(r"工作台（web desk）：(http://127\.0\.0\.1:\d+)/", "".join(lines))
        assert url, "".join(lines)[-3000:]
        seen = _desk_while_served(url.group(1), lines[-1])
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert proc.returncode == 0, out[-3000:]
    assert "工作台已停止" in out
    assert seen["healthz"] == (200, {"ok": True})
    assert seen["login"][0] == 200 and 'name="password"' in seen["login"][1]
    status, landed, dashboard = seen["dashboard"]
    assert status == 200 and landed.rstrip("/") == url.group(1), landed
    assert "松江区" in dashboard or "知识产权" in dashboard, dashboard[:500]
    assert "/tasks/" in dashboard and "张主任" in dashboard
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
    _assert_story_is_true(out, tmp_path / "demo" / "out")


def _needs_dovecot() -> None:
    if dovecot_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: .ci/run must apt-get install -y dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install -y dovecot-imapd)")


# E-mail plays the same script too (`coordbot demo --channel email`, 50 s); its whole loop is tested faster in
# tests/channels/test_whole_loop.py, so the suite plays the demo on WeCom only.
@pytest.mark.parametrize("channel", ["wecom"])
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
    _assert_story_is_true(out, tmp_path / "demo" / "out")


def test_demo_on_email_without_dovecot_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("coordbot.testing.fake_email.dovecot_binary", lambda: None)
    monkeypatch.setenv("COORDBOT_CONFIG", str(tmp_path / "none.yaml"))
    result = CliRunner().invoke(main, ["demo", "--channel", "email", "--workdir", str(tmp_path / "demo")])
    assert result.exit_code != 0
    assert "apt-get install dovecot-imapd" in result.output
    assert not (tmp_path / "demo").exists()  # nothing touched
