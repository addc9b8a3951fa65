"""Where coordbot's shipped files are: ``templates/``, ``migrations/`` and ``config/`` (holiday overrides, the plan).

In the checkout, and so in an editable install, they are the top-level folders beside ``coordbot/``; a wheel
carries the same folders inside the package as ``coordbot/_templates``, ``_migrations`` and ``_config``
(``[tool.setuptools.package-dir]`` in pyproject.toml). Both are real folders on disk (jinja2 and alembic read them).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

#: Top-level folder of the checkout -> its name inside the installed package.
SHIPPED = {"templates": "_templates", "migrations": "_migrations", "config": "_config"}
DEMO_PLAN = Path("config/plans/songjiang-ip-2024-2026.yaml")


@cache
def shipped_dir(name: str) -> Path:
    """The shipped folder ``name`` (``templates``, ``migrations`` or ``config``), installed or in the checkout.

    If neither exists the installed location is returned, so the caller's own "not found" names a real place.
    """
    package = Path(str(files("coordbot")))
    installed = package / SHIPPED[name]
    if installed.is_dir():
        return installed
    checkout = package.parent / name
    if (package.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return installed


def templates_dir() -> Path:
    return shipped_dir("templates")


def migrations_dir() -> Path:
    return shipped_dir("migrations")


def holidays_dir() -> Path:
    """The shipped working-day override files, ``config/holidays/<year>.yaml``."""
    return shipped_dir("config") / "holidays"


def demo_plan_file() -> Path:
    """The plan ``coordbot demo`` imports (沪松府〔2024〕41号)."""
    return locate(DEMO_PLAN)


def locate(path: Path) -> Path:
    """A path as the settings and docs write it: as given if absolute or found from the working directory,
    else, if it starts with a shipped folder (``config/holidays``, ``config/plans/x.yaml``), the shipped copy."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not path.parts or path.parts[0] not in SHIPPED:
        return path
    return shipped_dir(path.parts[0]).joinpath(*path.parts[1:])
