"""``--log-format json`` (and ``log_format`` / ``COORDBOT_LOG_FORMAT``): one redacted JSON object per line,
with the ids of what is being handled. Real processes, so the logging set-up is the one coordbot makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from coordbot.web.app import make_web_app

SECRET = "sup3r-secret-token-value"
BOT_TOKEN = "123456789:AAEhBOweik6ad9r_QRSTUVWXYZabcdefghi"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDBOT_")}
    return {**env, "COORDBOT_CONFIG": str(tmp_path / "none.yaml"), "PYTHONIOENCODING": "utf-8", **extra}


def _objects(stderr: str) -> list[dict[str, Any]]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, "no log line at all"
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not one JSON object per line: {line!r}")
    return out


def test_the_cli_logs_json_objects_with_time_level_logger_and_message(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    done = subprocess.run(
        [sys.executable, "-m", "coordbot", "--log-format", "json", "-v", "db", "upgrade"],
        env=_env(tmp_path, COORDBOT_DATABASE_URL=f"sqlite:///{db}", COORDBOT_TELEGRAM_TOKEN=BOT_TOKEN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "database at revision" in done.stdout  # what the command says stays plain text on stdout
    objects = _objects(done.stderr)
    assert all({"time", "level", "logger", "message"} <= set(o) for o in objects)
    assert any(o["logger"].startswith("alembic") and "Running upgrade" in o["message"] for o in objects)
    assert all(o["time"].endswith("+00:00") and o["level"] in ("DEBUG", "INFO", "WARNING", "ERROR") for o in objects)


@pytest.mark.parametrize("where", ["env", "config"])
def test_the_setting_chooses_json_too(tmp_path: Path, where: str) -> None:
    extra = {"COORDBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    if where == "env":
        extra["COORDBOT_LOG_FORMAT"] = "json"
    else:
        config = tmp_path / "coordbot.yaml"
        config.write_text("log_format: json\n", encoding="utf-8")
        extra["COORDBOT_CONFIG"] = str(config)
    done = subprocess.run(
        [sys.executable, "-m", "coordbot", "-v", "db", "upgrade"],
        env={**_env(tmp_path), **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert any("Running upgrade" in o["message"] for o in _objects(done.stderr))


def test_a_bad_log_format_setting_is_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coordbot", "config"],
        env=_env(tmp_path, COORDBOT_LOG_FORMAT="xml"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: setting 'log_format' expects 'text' or 'json'"


SCRIPT = textwrap.dedent(
    f"""
    import logging, threading, asyncio
    from coordbot.core.logformat import configure_logging, log_context
    from coordbot.core.logs import install_redaction

    configure_logging(logging.INFO, "json")
    install_redaction(extra=({SECRET!r},))
    log = logging.getLogger("coordbot.test")
    with log_context(update_id="700000042", channel="telegram"):
        log.info("handling with %s", {SECRET!r})
        async def inner():
            await asyncio.to_thread(log.warning, "in a worker thread")
        asyncio.run(inner())
    log.info("GET https://api.telegram.org/bot{BOT_TOKEN}/getMe", extra={{"request_id": "r-1"}})
    try:
        raise RuntimeError("failed with " + {SECRET!r})
    except RuntimeError:
        log.exception("boom")
    log.info("after the block")
    import warnings
    warnings.warn("a library warns")
    """
)


def test_json_lines_carry_the_ids_and_no_secret() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stderr and BOT_TOKEN not in done.stderr and BOT_TOKEN.split(":")[1] not in done.stderr
    handling, threaded, request, boom, after, warned = _objects(done.stderr)
    assert handling["message"] == "handling with ****"
    assert handling["update_id"] == "700000042" and handling["channel"] == "telegram"
    assert threaded["update_id"] == "700000042"  # asyncio.to_thread carries the context
    assert request["request_id"] == "r-1" and "/bot****/getMe" in request["message"]
    assert boom["level"] == "ERROR" and "RuntimeError: failed with ****" in boom["exc"]
    assert "update_id" not in after
    assert warned["logger"] == "py.warnings" and "a library warns" in warned["message"]


async def test_web_requests_get_an_id_echoed_back() -> None:
    async with TestClient(TestServer(make_web_app())) as client:
        given = await client.get("/healthz", headers={"X-Request-ID": "lb-1234.abc"})
        assert given.status == 200 and given.headers["X-Request-ID"] == "lb-1234.abc"
        made = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
        assert len(made.headers["X-Request-ID"]) == 16 and made.headers["X-Request-ID"] != "bad id with spaces"
        missing = await client.get("/no-such-page")
        assert missing.status == 404 and "X-Request-ID" in missing.headers
