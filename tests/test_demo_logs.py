"""``coordbot -vv demo``: the whole demo's debug log holds neither the bot token nor any invite code it made."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from coordbot.demo import TelegramPlatform

pytestmark = pytest.mark.slow  # the whole demo: about 40 s


def _hashed_codes_in(text: str, hashes: set[str], length: int) -> list[str]:
    """Every substring of ``text`` shaped like an invite code whose SHA-256 is one of ``hashes``."""
    found = []
    for run in re.findall(rf"[A-Za-z0-9_-]{{{length},}}", text):
        for i in range(len(run) - length + 1):
            if hashlib.sha256(run[i : i + length].encode()).hexdigest() in hashes:
                found.append(run[i : i + length])
    return found


def test_the_demo_at_debug_logs_no_token_and_no_invite_code(tmp_path: Path) -> None:
    env = {**os.environ, "COORDBOT_CONFIG": str(tmp_path / "none.yaml"), "PYTHONIOENCODING": "utf-8"}
    workdir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "coordbot", "-vv", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr
    assert "DEBUG" in log and "getUpdates" in log and "/start ****" in log  # a real debug log of the bindings
    token = TelegramPlatform.token
    assert token not in log and token.split(":")[1] not in log
    with sqlite3.connect(workdir / "demo.db") as db:
        hashes = {row[0] for row in db.execute("SELECT code_hash FROM invite")}
        stored = [row[0] for row in db.execute("SELECT text FROM inbound_message WHERE text LIKE '/start%'")]
    assert len(hashes) >= 5
    assert stored and all(text == "/start ****" for text in stored), stored
    assert _hashed_codes_in(log + done.stdout, hashes, length=24) == []  # secrets.token_urlsafe(18)
