"""docker/: the compose file, the image and the monitoring files say what the code does.

``docker compose config`` validates the compose file where the compose CLI is installed (it needs no
daemon); everywhere, the file is read here and its settings are loaded as coordbot would load them. The same
topology runs as processes in tests/runtime/test_topology.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordbot.core.config import load_settings
from coordbot.core.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))


def _compose_cli() -> list[str] | None:
    """``docker compose`` (the plugin) or the older ``docker-compose``, if either answers."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run([*cmd, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return cmd
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    cmd = _compose_cli()
    if cmd is None:
        pytest.skip(
            "neither the docker compose plugin nor docker-compose is installed (the file is still checked below)"
        )
    done = subprocess.run(
        [*cmd, "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [*cmd, "-f", str(DOCKER / "compose.yaml"), "config", "--services"], capture_output=True, text=True, check=False
    )
    assert {"db", "migrate", "bot-1", "bot-2"} <= set(listed.stdout.split())


def test_migrations_run_once_before_two_instances(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    command = " ".join(services["migrate"]["command"])
    assert "coordbot db upgrade" in command and "coordbot plan import" in command
    for name in ("bot-1", "bot-2"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert services[name].get("command") is None  # the image's: coordbot run
    modes = [services[n]["environment"]["COORDBOT_TELEGRAM_MODE"] for n in ("bot-1", "bot-2")]
    assert modes == ["polling", "send"]  # one poller per bot token
    hosts = [services[n]["ports"][0].split(":") for n in ("bot-1", "bot-2")]
    assert hosts[0][1] == hosts[1][1] == "8080" and hosts[0][0] != hosts[1][0]
    assert "db" in services and services["db"]["healthcheck"]["test"][1] == "pg_isready"


def test_every_instance_setting_loads_with_its_secrets(compose: dict[str, Any], tmp_path: Path) -> None:
    services = compose["services"]
    for name in ("migrate", "bot-1", "bot-2"):
        env = dict(services[name]["environment"])
        for key, value in list(env.items()):
            if key.endswith("_FILE"):
                secret = value.removeprefix("/run/secrets/")
                assert secret in services[name]["secrets"] and secret in compose["secrets"], key
                assert compose["secrets"][secret]["file"] == f"./secrets/{secret}"
                (tmp_path / secret).write_text(f"value-of-{secret}-1234567890", encoding="utf-8")
                env[key] = str(tmp_path / secret)
        settings = load_settings(env={**env, "COORDBOT_CONFIG": "/nonexistent"})
        assert settings.database_url.startswith("postgresql+psycopg://coordbot:value-of-db_password")
        assert settings.telegram_token and settings.web_secret and settings.log_format == "json"
    assert "docker/secrets/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"


def test_the_image_is_built_from_the_wheel_and_runs_as_a_user(compose: dict[str, Any]) -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert len(stages) == 2 and stages[0] == stages[1].split()[0]
    assert (
        "pip wheel" in dockerfile
        and "COPY --from=wheel" in dockerfile
        and "pip install --no-cache-dir /tmp/wheels" in dockerfile
    )
    assert "pip install -e" not in dockerfile
    user = re.search(r"^USER (\S+)", dockerfile, flags=re.M)
    assert user and user.group(1) not in ("root", "0")
    assert "fonts-noto-cjk" in dockerfile and "postgresql-client" in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, flags=re.M)
    assert "COORDBOT_WEB_HOST=0.0.0.0" in dockerfile
    out_dir = re.search(r"COORDBOT_OUTPUT_DIR=(\S+)", dockerfile)
    assert out_dir
    for name in ("bot-1", "bot-2"):
        assert f"reports:{out_dir.group(1)}" in compose["services"][name]["volumes"]
    assert "reports" in compose["volumes"]
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", "var", "**/__pycache__", ".pytest_cache", ".git", "docker/secrets"} <= set(ignored)


def _exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        kinds = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"]}
        names |= {family.name + suffix for suffix in kinds.get(family.type, [""])}
    return names


def test_the_dashboard_and_the_scrape_config_name_what_metrics_exports(compose: dict[str, Any]) -> None:
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "coordbot.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bcoordbot_[a-z_]+", e)}
    assert used and used <= _exported_names(), used - _exported_names()
    families = {f.name for f in REGISTRY.collect()}
    covered = {f for f in families if any(u.startswith(f) for u in used)}
    assert covered == families, f"no panel for {families - covered}"
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert set(job["static_configs"][0]["targets"]) == {"bot-1:8080", "bot-2:8080"}
    assert (
        "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in compose["services"]["prometheus"]["volumes"]
    )
