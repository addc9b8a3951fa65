"""A wheel carries what coordbot reads at run time: templates/, migrations/ and config/ ride inside the package
(coordbot/_templates, _migrations, _config) and coordbot.core.paths finds them there or in the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from coordbot.core.paths import SHIPPED, demo_plan_file, holidays_dir, locate, migrations_dir, templates_dir

ROOT = Path(__file__).resolve().parents[1]
# What the build reads; copied so the build neither writes build/ nor *.egg-info into the checkout nor picks up
# a stale build/lib from it.
SOURCES = ("pyproject.toml", "README.md", "coordbot", "templates", "migrations", "config")
# Files of the shipped folders the wheel must carry (the suffixes of [tool.setuptools.package-data]).
SHIPPED_SUFFIXES = {
    "templates": {".html", ".j2", ".yaml", ".txt", ".md"},
    "migrations": {".py", ".mako", ".md"},
    "config": {".yaml", ".md"},
}
STEP_TIMEOUT = 240


def _setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_pyproject_lists_every_package_and_maps_the_shipped_folders() -> None:
    cfg = _setuptools_config()
    mapped = {f"coordbot.{inside}": name for name, inside in SHIPPED.items()}
    assert cfg["package-dir"] == mapped
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "coordbot").rglob("__init__.py")}
    # A package missing here is missing from the wheel (the editable install would not notice).
    assert set(cfg["packages"]) - set(mapped) == on_disk


def test_the_checkout_finds_the_top_level_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from the checkout or its editable install (as `make test` does), away from the working directory.
    monkeypatch.chdir(tmp_path)
    assert templates_dir() == ROOT / "templates"
    assert migrations_dir() == ROOT / "migrations"
    assert holidays_dir() == ROOT / "config" / "holidays"
    assert demo_plan_file() == ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"
    assert locate(Path("config/holidays")) == ROOT / "config" / "holidays"
    assert locate(Path("var/out")) == Path("var/out")  # not shipped: left to the working directory
    (tmp_path / "config" / "holidays").mkdir(parents=True)
    assert locate(Path("config/holidays")) == Path("config/holidays")  # the working directory's own wins


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    bin: Path
    env: dict[str, str]

    def run(self, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=STEP_TIMEOUT
        )


def _check(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel, installed with its dependencies into a fresh virtualenv that has nothing else.

    `pip wheel` builds coordbot's wheel and collects its dependencies' wheels (from pip's cache or the index,
    as `make test`'s own install does), then the venv installs from that folder only (`--no-index`): an honest
    `pip install coordbot`, with no path to the checkout or the dev venv. Measured: ~10 s build, ~20 s install.
    """
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(source, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COORDBOT_", "PYTHON", "VIRTUAL_ENV"))}
    env["COORDBOT_CONFIG"] = str(tmp / "no-config.yaml")
    env["MPLCONFIGDIR"] = str(tmp / "mpl")
    wheelhouse = tmp / "wheelhouse"
    step = Installed(wheel=wheelhouse, venv=tmp / "venv", bin=tmp / "venv" / "bin", env=env)
    _check(step.run(sys.executable, "-m", "pip", "wheel", "-q", "-w", wheelhouse, src, cwd=tmp))
    (wheel,) = wheelhouse.glob("coordbot-*.whl")
    _check(step.run(sys.executable, "-m", "venv", step.venv, cwd=tmp))
    pip = (step.bin / "python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse)
    _check(step.run(*pip, wheel, cwd=tmp))
    return Installed(wheel=wheel, venv=step.venv, bin=step.bin, env=env)


def _empty_dir(tmp_path: Path) -> Path:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return cwd


@pytest.mark.slow
def test_the_wheel_carries_templates_migrations_and_config(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "coordbot").rglob("*.py")}
    for name, inside in SHIPPED.items():
        for p in (ROOT / name).rglob("*"):
            if p.is_file() and p.suffix in SHIPPED_SUFFIXES[name] and "__pycache__" not in p.parts:
                expected.add(f"coordbot/{inside}/{p.relative_to(ROOT / name).as_posix()}")
    assert {
        "coordbot/_templates/zh/labels.yaml",
        "coordbot/_templates/en/reports/digest.md.j2",
        "coordbot/_migrations/env.py",
        "coordbot/_migrations/script.py.mako",
        "coordbot/_migrations/versions/0001_plan_tables_and_event_log.py",
        "coordbot/_config/holidays/2027.yaml",
        "coordbot/_config/plans/songjiang-ip-2024-2026.yaml",
    } <= expected
    assert sorted(expected - names) == []
    # Nothing lands beside coordbot in site-packages (no top-level `templates` or `config` package).
    assert {n.split("/")[0] for n in names} == {"coordbot", "coordbot-0.1.0.dist-info"}
    assert "License-Expression: MIT" in metadata


@pytest.mark.slow
def test_the_installed_package_finds_its_own_files(installed: Installed, tmp_path: Path) -> None:
    probe = (
        "import coordbot, coordbot.core.db as db, coordbot.core.text as text, coordbot.core.paths as p\n"
        "shown = coordbot.__file__, text.TEMPLATES_DIR, db.MIGRATIONS_DIR, p.holidays_dir(), p.demo_plan_file()\n"
        "print(*shown, sep='\\n')\n"
    )
    printed = _check(installed.run(installed.bin / "python", "-c", probe, cwd=_empty_dir(tmp_path))).split()
    site = Path(printed[0]).parent.parent
    assert site.is_relative_to(installed.venv)
    assert [Path(p) for p in printed[1:]] == [
        site / "coordbot" / "_templates",
        site / "coordbot" / "_migrations",
        site / "coordbot" / "_config" / "holidays",
        site / "coordbot" / "_config" / "plans" / "songjiang-ip-2024-2026.yaml",
    ]


def _assert_demo_ran(result: subprocess.CompletedProcess[str], workdir: Path) -> None:
    out = _check(result)
    assert "18 项任务" in out and "周报与联席会议简报已生成" in out
    for name in ("weekly-digest.md", "weekly-digest.html", "briefing-2026-03-16.docx", "briefing-2026-03-16.html"):
        assert (workdir / "out" / name).stat().st_size > 0
    assert (workdir / "demo.db").exists()  # migrated from the shipped migrations


@pytest.mark.slow
def test_demo_from_the_wheel_as_the_readme_runs_it(installed: Installed, tmp_path: Path) -> None:
    cwd = _empty_dir(tmp_path)
    _assert_demo_ran(installed.run(installed.bin / "coordbot", "demo", cwd=cwd), cwd / "var" / "demo")


@pytest.mark.slow
def test_the_runtime_calendar_reads_the_shipped_holidays(installed: Installed, tmp_path: Path) -> None:
    probe = (
        "from coordbot.core.config import Settings\n"
        "from coordbot.core.db import make_engine\n"
        "from coordbot.core.paths import holidays_dir\n"
        "from coordbot.runtime import make_runtime\n"
        "rt = make_runtime(Settings(database_url='sqlite://'), make_engine('sqlite://'))\n"
        "print(rt.calendar.overrides_dir, holidays_dir(), sep='\\n')\n"
    )
    used, shipped = _check(installed.run(installed.bin / "python", "-c", probe, cwd=_empty_dir(tmp_path))).split()
    assert Path(shipped).is_dir()
    assert Path(used) == Path(shipped)
