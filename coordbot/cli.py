"""The ``coordbot`` command: plan administration for the office, the database, and the bot itself."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from sqlalchemy.engine import Engine

from coordbot.core.config import ConfigError, Settings, load_settings
from coordbot.core.db import make_engine, session_scope, upgrade
from coordbot.core.text import render
from coordbot.plan import service
from coordbot.plan.loader import PlanFileError, load_plan_file


class Ctx:
    def __init__(self, config: Path | None, verbose: int) -> None:
        self._config = config
        self._settings: Settings | None = None
        self._engine: Engine | None = None
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self._config)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._settings

    def engine(self, *, migrate: bool = True) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
            if migrate:
                upgrade(self._engine)
        return self._engine


pass_ctx = click.make_pass_decorator(Ctx)


@click.group()
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), help="Settings file (YAML).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="coordbot")
@click.pass_context
def main(ctx: click.Context, config: Path | None, verbose: int) -> None:
    """coordbot keeps a multi-department work plan moving: reminders, replies, digests, briefings."""
    ctx.obj = Ctx(config, verbose)


# ---- db ---------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Ctx) -> None:
    """Apply every pending migration."""
    from coordbot.core.db import current_revision

    engine = ctx.engine(migrate=False)
    upgrade(engine)
    click.echo(f"database at revision {current_revision(engine)}")


@db.command("revision")
@click.option("-m", "--message", required=True)
@pass_ctx
def db_revision(ctx: Ctx, message: str) -> None:
    """Write a new migration from the difference between the models and the database (developers)."""
    from alembic import command

    from coordbot.core.db import alembic_config

    engine = ctx.engine(migrate=True)
    command.revision(alembic_config(engine), message=message, autogenerate=True)


# ---- config -----------------------------------------------------------------------------------------


@main.command("config")
@pass_ctx
def config_show(ctx: Ctx) -> None:
    """Show the settings in force (secrets only say whether they are set)."""
    for key, value in ctx.settings.public_dict().items():
        click.echo(f"{key}: {value}")


# ---- plan -------------------------------------------------------------------------------------------


@main.group()
def plan() -> None:
    """Load, check and show the work plan."""


def _load(file: Path):  # type: ignore[no-untyped-def]
    try:
        return load_plan_file(file)
    except PlanFileError as exc:
        raise click.ClickException(exc.render()) from exc


@plan.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def plan_validate(file: Path) -> None:
    """Check a plan file without touching the database."""
    loaded = _load(file)
    d = loaded.data
    targets = sum(len(t.targets) for _, t in d.tasks()) + len(d.goals)
    click.echo(
        f"{file}: OK — plan {d.plan.code}: {len(d.departments)} departments, {len(d.groups)} groups, "
        f"{len(d.tasks())} tasks, {targets} targets"
    )


@plan.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_ctx
def plan_import(ctx: Ctx, file: Path) -> None:
    """Import or update a plan from FILE (idempotent; removed tasks are archived)."""
    loaded = _load(file)
    with session_scope(ctx.engine()) as session:
        report = service.import_plan(session=session, loaded=loaded, actor="cli")
    if not report.changed:
        click.echo(f"plan {report.plan_code}: no changes")
        return
    verb = "created" if report.created else "updated"
    click.echo(f"plan {report.plan_code} {verb}: {len(report.changes)} change(s)")
    for line in report.changes:
        click.echo(f"  {line}")


@plan.command("show")
@click.option("--plan", "code", help="Plan code (default: the most recently imported plan).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None)
@click.option("--archived", is_flag=True, help="Also list archived tasks.")
@pass_ctx
def plan_show(ctx: Ctx, code: str | None, lang: str | None, archived: bool) -> None:
    """Print the plan as a tree: groups, tasks, departments, deadlines, targets."""
    with session_scope(ctx.engine()) as session:
        p = service.get_plan(session=session, code=code)
        if p is None:
            raise click.ClickException(
                f"no plan {code!r} in the database" if code else "no plan yet: run 'coordbot plan import FILE'"
            )
        view = service.plan_view(session=session, plan=p, include_archived=archived)
    tasks = sum(len(g.tasks) for g in view.groups)
    targets = sum(len(t.targets) for g in view.groups for t in g.tasks) + len(view.goals)
    click.echo(
        render(
            "plan_show.txt.j2", locale=lang or ctx.settings.locale, plan=view.plan, groups=view.groups,
            goals=view.goals, departments=view.departments, archived=view.archived,
            task_count=tasks, target_count=targets,
        ),
        nl=False,
    )


# ---- departments ------------------------------------------------------------------------------------


@main.group()
def departments() -> None:
    """Departments of the joint meeting."""


@departments.command("list")
@pass_ctx
def departments_list(ctx: Ctx) -> None:
    """List every department with its code."""
    with session_scope(ctx.engine()) as session:
        rows = service.list_departments(session=session)
    if not rows:
        click.echo("no departments yet: run 'coordbot plan import FILE'")
    width = max((len(d.code) for d in rows), default=4)
    for d in rows:
        short = f"（{d.short_name}）" if d.short_name and d.short_name != d.name else ""
        click.echo(f"{d.code:<{width}}  {d.name}{short}")


def run() -> None:
    """Entry point for ``python -m coordbot``."""
    main(prog_name="coordbot")


if __name__ == "__main__":
    sys.exit(run())
