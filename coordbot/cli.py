"""The ``coordbot`` command: plan administration for the office, the database, and the bot itself."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.engine import Engine

from coordbot.core.config import ConfigError, Settings, load_settings
from coordbot.core.db import make_engine, row_id, session_scope, upgrade
from coordbot.core.logformat import FORMATS, configure_logging
from coordbot.core.logs import install_redaction
from coordbot.core.text import render
from coordbot.plan import service
from coordbot.plan.loader import PlanFileError, load_plan_file

if TYPE_CHECKING:
    from sqlmodel import Session

    from coordbot.plan.models import Contact, DepartmentPublic
    from coordbot.reports.briefing import Format as BriefingFormat
    from coordbot.reports.digest import Format as DigestFormat


class Ctx:
    def __init__(self, config: Path | None, verbose: int, log_format: str | None = None) -> None:
        self._config = config
        self._settings: Settings | None = None
        self._engine: Engine | None = None
        self.verbose = verbose
        self._log_format = log_format
        self._level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
        # The option, else the variable (read now, so lines before the settings are read have the format too);
        # a format only the settings file names applies once it is read.
        early = log_format or os.environ.get("COORDBOT_LOG_FORMAT", "text")
        configure_logging(self._level, early if early in FORMATS else "text")
        install_redaction()  # token-shaped parts now; the settings' secrets once they are read

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self._config)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from exc
            install_redaction(self._settings)
            if self._log_format is None:
                configure_logging(self._level, self._settings.log_format)
        return self._settings

    def engine(self, *, migrate: bool = True) -> Engine:
        if self._engine is None:
            from sqlalchemy.exc import ArgumentError

            try:
                self._engine = make_engine(self.settings.database_url)
            except ArgumentError as exc:  # also an unknown dialect or driver (NoSuchModuleError)
                raise click.ClickException(
                    f"setting database_url is not a database URL we can use: {self.database()!r} ({exc})\n"
                    "  set COORDBOT_DATABASE_URL (or database_url in the settings file) to e.g. "
                    "sqlite:///var/coordbot.db or postgresql+psycopg://user:password@host:5432/coordbot"
                ) from exc
            except ImportError as exc:
                raise click.ClickException(
                    f"the database driver for {self.database()!r} is not installed ({exc})\n"
                    "  coordbot ships drivers for sqlite:/// and postgresql+psycopg://"
                ) from exc
            if migrate:
                upgrade(self._engine)
        return self._engine

    def database(self) -> str:
        """The database URL with its password masked, for messages."""
        return str(self.settings.public_dict()["database_url"])


pass_ctx = click.make_pass_decorator(Ctx)

LANG_HELP = "Language of the text: zh (Chinese) or en (default: the settings' locale)."
PLAN_HELP = "Plan code, for a task code that several plans use (refused as ambiguous without it)."


def _existing_parent(_ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--out goes into a directory that exists: a mistyped path must not quietly create a tree of folders."""
    if value is not None and not value.parent.is_dir():
        raise click.BadParameter(
            f"the directory {str(value.parent)!r} does not exist: create it first or choose another path", param=param
        )
    return value


def _explain(exc: Exception, ctx: Ctx | None) -> str:
    """One or two lines for what went wrong outside the commands' own checks: what, where, what to do."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from coordbot.channels.base import ChannelAuthError, ChannelError

    where = ""
    if ctx is not None and ctx._settings is not None:
        where = f" at {ctx.database()}"
    unreachable = isinstance(exc, OperationalError | InterfaceError)
    if isinstance(exc, DBAPIError) and (unreachable or exc.connection_invalidated):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        return (
            f"cannot use the database{where}: {first}\n"
            "  is the database server running and reachable? check COORDBOT_DATABASE_URL (or database_url)"
        )
    if isinstance(exc, ChannelAuthError):
        return f"{exc}\n  check the channel's token or secret in the settings (coordbot config shows which are set)"
    if isinstance(exc, ChannelError):
        return f"{exc}\n  the platform could not be reached; try again later"
    return f"unexpected {type(exc).__name__}: {exc}\n  run again with -v for the traceback, and report it"


class _Main(click.Group):
    """Ends every failure in one or two lines and a non-zero exit; ``-v`` adds the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            raise  # the reader went away (`coordbot config | head`): click's main exits quietly, as on EPIPE
        except click.ClickException as exc:
            _traceback_if_verbose(ctx, exc.__cause__)
            raise
        except Exception as exc:
            _traceback_if_verbose(ctx, exc)
            raise click.ClickException(_explain(exc, ctx.obj if isinstance(ctx.obj, Ctx) else None)) from exc


def _traceback_if_verbose(ctx: click.Context, exc: BaseException | None) -> None:
    if exc is not None and isinstance(ctx.obj, Ctx) and ctx.obj.verbose:
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


@click.group(cls=_Main)
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), help="Settings file (YAML).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default=None,
    help="Log lines as text or as JSON objects, one a line (default: the setting log_format, text).",
)
@click.version_option(package_name="coordbot")
@click.pass_context
def main(ctx: click.Context, config: Path | None, verbose: int, log_format: str | None) -> None:
    """coordbot keeps a multi-department work plan moving: reminders, replies, digests, briefings."""
    ctx.obj = Ctx(config, verbose, log_format)


# ---- db ---------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema, backup and restore."""


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


@db.command("backup")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), callback=_existing_parent)
@pass_ctx
def db_backup(ctx: Ctx, file: Path) -> None:
    """Write a consistent backup of the database to FILE (SQLite: a copy; PostgreSQL: a pg_dump archive)."""
    from coordbot.core.backup import BackupError, backup

    try:
        info = backup(ctx.settings.database_url, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"backup of {ctx.database()} written to {file}: {info.backend}, schema {info.revision}, "
        f"{info.size / 1024:.0f} KiB in {info.seconds:.2f} s"
    )


@db.command("restore")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the database.")
@pass_ctx
def db_restore(ctx: Ctx, file: Path, yes: bool) -> None:
    """Replace the database with the backup FILE (refused when the backup or the database is newer than
    this coordbot); the restored database keeps the backup's schema until 'coordbot db upgrade'."""
    from coordbot.core.backup import BackupError, code_head, preflight, restore

    try:
        preflight(ctx.settings.database_url, file)  # a wrong file is refused before asking
        if not yes:
            click.confirm(f"replace everything in {ctx.database()} with {file}?", abort=True)
        info = restore(ctx.settings.database_url, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"restored {file} into {ctx.database()}: schema {info.revision}, in {info.seconds:.2f} s")
    if info.revision != code_head():
        click.echo(f"  run 'coordbot db upgrade' to bring it to this coordbot's schema {code_head()}")


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


def _load(file: Path, verdict: str = "nothing was imported"):  # type: ignore[no-untyped-def]
    try:
        return load_plan_file(file)
    except PlanFileError as exc:
        raise click.ClickException(exc.render(verdict)) from exc


@plan.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def plan_validate(file: Path) -> None:
    """Check a plan file without touching the database."""
    loaded = _load(file, verdict="not valid (nothing to import)")
    d = loaded.data
    targets = sum(len(t.targets) for _, t in d.tasks()) + len(d.goals)
    click.echo(
        f"{file}: valid — plan {d.plan.code}: {len(d.departments)} departments, {len(d.groups)} groups, "
        f"{len(d.tasks())} tasks, {targets} targets"
    )


@plan.command("extract")
@click.argument("doc", type=click.Path(exists=True, path_type=Path, dir_okay=False))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the draft plan file here (default: print it).")  # fmt: skip
@click.option("--code", help="Plan code for the draft (default: plan-<year>-<hash of the title>).")
def plan_extract(doc: Path, out: Path | None, code: str | None) -> None:
    """Draft a plan file from an official document (.txt in UTF-8 or GB18030, .docx) for the office to review."""
    from coordbot.plan.extract import ExtractError, extract, render_yaml

    try:
        extraction = extract(doc)
    except ExtractError as exc:
        raise click.ClickException(str(exc)) from exc
    text = render_yaml(extraction, code=code, source_name=doc.name)
    tasks = extraction.tasks()
    stated = sum(1 for t in tasks if t.stated)
    targets = sum(len(t.targets) for t in tasks) + len(extraction.goals)
    summary = (
        f"{doc}: {len(extraction.groups)} groups, {len(tasks)} tasks ({stated} with the lead the text names, "
        f"{len(tasks) - stated} proposed), {targets} targets"
    )
    if out is None:
        click.echo(text, nl=False)
        click.echo(summary, err=True)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"{summary} → {out}; review it, then 'coordbot plan validate {out}'")


@plan.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--rename", "rename", metavar="OLD", help="The plan's code before the file changed it.")
@click.option("--new-plan", is_flag=True, help="Import as a new plan even though a stored plan looks the same.")
@click.option(
    "--update-organisation", is_flag=True, help="Let the file rename departments other plans of its organisation share."
)
@pass_ctx
def plan_import(ctx: Ctx, file: Path, rename: str | None, new_plan: bool, update_organisation: bool) -> None:
    """Import or update a plan from FILE (idempotent; removed tasks are archived)."""
    loaded = _load(file)
    try:
        with session_scope(ctx.engine()) as session:
            report = service.import_plan(
                session=session,
                loaded=loaded,
                actor="cli",
                rename=rename,
                new_plan=new_plan,
                update_organisation=update_organisation,
            )
    except service.ImportRefused as exc:
        raise click.ClickException(f"{file}: {exc}; nothing was imported") from exc
    if not report.changed:
        click.echo(f"plan {report.plan_code}: no changes")
        return
    verb = "created" if report.created else "updated"
    click.echo(f"plan {report.plan_code} {verb}: {len(report.changes)} change(s)")
    for line in report.changes:
        click.echo(f"  {line}")


@plan.command("show")
@click.option("--plan", "code", help="Plan code (default: the most recently imported plan).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None, help=LANG_HELP)
@click.option("--archived", is_flag=True, help="Also list archived tasks.")
@pass_ctx
def plan_show(ctx: Ctx, code: str | None, lang: str | None, archived: bool) -> None:
    """Print the plan as a tree: groups, tasks, departments, deadlines, targets."""
    with session_scope(ctx.engine()) as session:
        p = _plan_or_fail(session, code)
        view = service.plan_view(session=session, plan=p, include_archived=archived)
    tasks = sum(len(g.tasks) for g in view.groups)
    targets = sum(len(t.targets) for g in view.groups for t in g.tasks) + len(view.goals)
    click.echo(
        render(
            "plan_show.txt.j2",
            locale=lang or ctx.settings.locale,
            plan=view.plan,
            groups=view.groups,
            goals=view.goals,
            departments=view.departments,
            archived=view.archived,
            task_count=tasks,
            target_count=targets,
        ),
        nl=False,
    )


@plan.command("export")
@click.option("--plan", "code", help="Plan code (default: the most recently imported plan).")
@click.option(
    "--plan-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The plan file to include (default: the file the plan was imported from, if unchanged).",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), callback=_existing_parent)
@pass_ctx
def plan_export(ctx: Ctx, code: str | None, plan_file: Path | None, file: Path) -> None:
    """Write the plan's whole history (tasks, targets, reports, events, digests, briefings) to a zip FILE."""
    from coordbot.core.clock import SystemClock
    from coordbot.core.db import current_revision
    from coordbot.reports.export import export_plan

    engine = ctx.engine()
    revision = current_revision(engine)  # before the session: on SQLite it holds the write lock
    with session_scope(engine) as session:
        p = _plan_or_fail(session, code)
        done = export_plan(
            session=session,
            plan=p,
            out=file,
            now=SystemClock().now().astimezone(ctx.settings.tz),
            revision=revision,
            plan_file=plan_file,
        )
    counts = ", ".join(f"{v} {k}" for k, v in done.counts.items() if k in ("tasks", "reports", "events"))
    size = f"{done.size / 1024:.0f} KiB"
    click.echo(f"plan {done.plan_code} exported to {file}: {len(done.files)} files, {counts}, {size}")
    for warning in done.warnings:
        click.echo(f"  note: {warning}", err=True)


# ---- departments ------------------------------------------------------------------------------------


@main.group()
def departments() -> None:
    """Departments of the joint meeting."""


@departments.command("list")
@click.option("--plan", "plan_code", help="Only the departments of this plan's organisation.")
@pass_ctx
def departments_list(ctx: Ctx, plan_code: str | None) -> None:
    """List every department with its code."""
    groups: list[tuple[str, list[DepartmentPublic]]]  # (heading, departments)
    with session_scope(ctx.engine()) as session:
        if plan_code:
            groups = [("", service.list_departments(session=session, plan=_plan_or_fail(session, plan_code)))]
        else:
            orgs = [o for o in service.departments_by_organisation(session=session) if o.departments]
            # Several organisations: one code can be two departments, so each is listed under its organisation.
            groups = [(_organisation_heading(o) if len(orgs) > 1 else "", o.departments) for o in orgs]
    if not any(rows for _, rows in groups):
        click.echo("no departments yet: run 'coordbot plan import FILE'")
    width = max((len(d.code) for _, rows in groups for d in rows), default=4)
    for heading, rows in groups:
        if heading:
            click.echo(heading)
        for d in rows:
            short = f"（{d.short_name}）" if d.short_name and d.short_name != d.name else ""
            click.echo(f"{'  ' if heading else ''}{d.code:<{width}}  {d.name}{short}")


def _organisation_heading(org: service.OrganisationDepartments) -> str:
    name = f"（{org.name}）" if org.name and org.name != org.code else ""
    return f"{org.code}{name} — plans: {', '.join(org.plans)}"


# ---- the bot and its reminders ----------------------------------------------------------------------


def _runtime(ctx: Ctx):  # type: ignore[no-untyped-def]
    from coordbot.runtime import make_runtime

    return make_runtime(ctx.settings, ctx.engine())


def _import_configured_plan(ctx: Ctx) -> None:
    if ctx.settings.plan_file:
        loaded = _load(ctx.settings.plan_file)
        with session_scope(ctx.engine()) as session:
            report = service.import_plan(session=session, loaded=loaded, actor="run")
        if report.changed:
            click.echo(f"plan {report.plan_code}: {len(report.changes)} change(s) from {ctx.settings.plan_file}")


@main.command("run")
@pass_ctx
def run_bot(ctx: Ctx) -> None:
    """Run the bot: migrate, import the configured plan, start the reminder clock and the channels."""
    import asyncio

    from coordbot.channels import registry
    from coordbot.runtime import serve

    _import_configured_plan(ctx)
    s = ctx.settings
    names = [a.name for a in registry.configured(s)]
    mode = f"telegram {s.telegram_mode}" if "telegram" in names else "no telegram"
    # One line at the default verbosity, so an operator sees it is up and with what (no secret in it).
    click.echo(
        f"coordbot starting: {mode}; database {ctx.database()}; channels {', '.join(names) or 'none'}; "
        f"web desk http://{s.web_host}:{s.web_port} (Ctrl-C stops)"
    )
    asyncio.run(serve(_runtime(ctx)))


@main.group()
def reminders() -> None:
    """Reminder occurrences: what is scheduled, what was sent."""


@reminders.command("list")
@click.option("--due-before", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]), help="Local date or time.")
@click.option(
    "--status",
    type=click.Choice(["pending", "claimed", "sent", "failed", "cancelled", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--task", "task_code", help="Only this task code.")
@click.option("--plan", "plan_code", help=PLAN_HELP)
@click.option("--limit", default=50, show_default=True)
@pass_ctx
def reminders_list(ctx: Ctx, due_before, status: str, task_code: str | None, plan_code: str | None, limit: int) -> None:  # type: ignore[no-untyped-def]
    """List reminder occurrences, soonest first (times in the plan's time zone)."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from coordbot.plan.models import Contact
    from coordbot.scheduling import views

    tz = ctx.settings.tz
    before = due_before.replace(tzinfo=tz) if due_before else None
    with session_scope(ctx.engine()) as session:
        try:
            items = views.list_occurrences(
                session=session, status=status, due_before=before, task_code=task_code, plan_code=plan_code, limit=limit
            )
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
        bound = session.exec(
            select(func.count()).select_from(Contact).where(col(Contact.address).is_not(None), Contact.active)
        ).one()
    if not items:
        click.echo("no reminders match")
        if not bound:  # the usual surprise right after an import
            click.echo(
                "  no contact is bound yet: reminders are scheduled for bound contacts only; create invite links "
                "with 'coordbot contacts invite DEPT --name NAME'"
            )
        elif status == "pending":
            click.echo(
                "  'coordbot run' schedules them for the coming days; 'coordbot reminders preview TASK' shows what "
                "the policy will send"
            )
    for i in items:
        click.echo(
            f"{i.fire_at.astimezone(tz):%Y-%m-%d %H:%M}  {i.status:<9} {i.kind:<12} "
            f"{i.task_code or '-':<5} → {i.contact}  {i.detail}"
        )


@reminders.command("preview")
@click.argument("task_code")
@click.option("--plan", "plan_code", help=PLAN_HELP)
@click.option("--days", default=60, show_default=True, help="How far ahead.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None, help=LANG_HELP)
@pass_ctx
def reminders_preview(ctx: Ctx, task_code: str, plan_code: str | None, days: int, lang: str | None) -> None:
    """Show what will be sent for TASK_CODE, and when, from the policy (nothing is stored)."""
    from datetime import timedelta

    from coordbot.core.text import html_to_text
    from coordbot.scheduling import views

    rt = _runtime(ctx)
    with session_scope(ctx.engine()) as session:
        try:
            preview = views.preview_task(
                session=session,
                calendar=rt.calendar,
                now=rt.clock.now(),
                task_code=task_code,
                horizon=timedelta(days=days),
                locale=lang or ctx.settings.locale,
                plan_code=plan_code,
            )
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    tz = ctx.settings.tz
    click.echo(f"task {task_code}: {len(preview)} reminder(s) in the next {days} days")
    for p in preview:
        who = ", ".join(p.recipients) or "(no bound contact yet)"
        click.echo(f"\n{p.fire_at.astimezone(tz):%Y-%m-%d %a %H:%M}  {p.kind}  → {who}")
        click.echo("    " + html_to_text(p.text).strip().replace("\n", "\n    "))


@reminders.command("dispatch")
@pass_ctx
def reminders_dispatch(ctx: Ctx) -> None:
    """Send what is due now, once, and exit (for cron-style deployments; `run` does this continuously)."""
    import asyncio

    from coordbot.runtime import build_channels

    rt = _runtime(ctx)

    async def once() -> None:
        async with build_channels(rt):
            report = await rt.build_reminders().tick()
        click.echo(
            f"claimed {report.claimed}, sent {report.sent}, failed {report.failed}, "
            f"retry later {report.released}, folded {report.folded}"
        )

    asyncio.run(once())


@main.command("demo")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("config/plans/songjiang-ip-2024-2026.yaml"),
    show_default=True,
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("var/demo"),
    show_default=True,
    help="Recreated on every run.",
)
@click.option(
    "--channel",
    type=click.Choice(["telegram", "wecom", "dingtalk", "feishu", "email"]),
    default="telegram",
    show_default=True,
    help="The platform whose fake server the demo plays on (email needs Dovecot).",
)
@click.option("--serve", is_flag=True, help="Then keep the web desk running on 127.0.0.1 until Ctrl-C.")
@click.option("--serve-seconds", type=click.FloatRange(min=0), help="With --serve: stop after this many seconds.")
def demo(plan_file: Path, workdir: Path, channel: str, serve: bool, serve_seconds: float | None) -> None:
    """Play the whole loop against a built-in fake server (Telegram by default): no account or token needed."""
    import asyncio

    from coordbot.core.paths import locate
    from coordbot.demo import run_demo

    demo_run = run_demo(
        plan_file=locate(plan_file),
        workdir=workdir,
        out_dir=workdir / "out",
        channel=channel,
        serve=serve,
        serve_seconds=serve_seconds,
    )
    try:
        asyncio.run(demo_run)
    except KeyboardInterrupt:
        click.echo("\n工作台已停止。")


# ---- reports ----------------------------------------------------------------------------------------


def _plan_or_fail(session, code: str | None):  # type: ignore[no-untyped-def]
    from sqlmodel import col, select

    from coordbot.plan.models import Plan

    p = service.get_plan(session=session, code=code)
    if p is None:
        codes = session.exec(select(Plan.code).order_by(col(Plan.code))).all()
        if not codes:
            raise click.ClickException("no plan yet: run 'coordbot plan import FILE'")
        raise click.ClickException(f"no plan {code!r}; plans: {', '.join(codes)} (give one with --plan)")
    return p


@main.command("digest")
@click.option("--week", help="ISO week such as 2026-W48 (default: this week).")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "text"]), default="md", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    callback=_existing_parent,
    help="Write to this file (else print).",
)
@click.option("--plan", "code", help="Plan code (default: the most recent plan).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None, help=LANG_HELP)
@pass_ctx
def digest_cmd(
    ctx: Ctx, week: str | None, fmt: DigestFormat, out: Path | None, code: str | None, lang: str | None
) -> None:
    """Compile the weekly digest (stored; printed or written to --out)."""
    from coordbot.core.clock import SystemClock
    from coordbot.reports.digest import write_digest

    with session_scope(ctx.engine()) as session:
        p = _plan_or_fail(session, code)
        try:
            text = write_digest(
                session=session,
                plan=p,
                now=SystemClock().now(),
                fmt=fmt,
                out=out,
                week=week,
                locale=lang or ctx.settings.locale,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if fmt == "text":  # the chat's HTML: a terminal or a text file wants it without tags
        from coordbot.core.text import html_to_text

        text = html_to_text(text)
        if out:
            out.write_text(text, encoding="utf-8")
    click.echo(f"digest written to {out}" if out else text, nl=bool(out))


@main.command("briefing")
@click.option("--meeting-date", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Date of the joint meeting.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Start of the period (default: the last meeting).")
@click.option("--format", "fmt", type=click.Choice(["docx", "html", "md"]), default="docx", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), required=True, callback=_existing_parent, help="File."
)
@click.option("--plan", "code", help="Plan code (default: the most recent plan).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None, help=LANG_HELP)
@click.option("--send", is_flag=True, help="Also send the file to the office and the leaders through the channels.")
@pass_ctx
def briefing_cmd(  # type: ignore[no-untyped-def]
    ctx: Ctx, meeting_date, since, fmt: BriefingFormat, out: Path, code: str | None, lang: str | None, send: bool
) -> None:
    """Generate the joint-meeting briefing (联席会议简报) as DOCX, HTML or Markdown."""
    import asyncio

    from coordbot.core.clock import SystemClock
    from coordbot.reports.briefing import write_briefing
    from coordbot.reports.distribute import send_report_file
    from coordbot.runtime import build_channels

    if since and since.date() > meeting_date.date():
        raise click.BadParameter(
            f"{since:%Y-%m-%d} is after --meeting-date {meeting_date:%Y-%m-%d}: the period must start on or before "
            "the meeting",
            param_hint="'--since'",
        )
    with session_scope(ctx.engine()) as session:
        p = _plan_or_fail(session, code)
        try:
            row = write_briefing(
                session=session,
                plan=p,
                meeting_date=meeting_date.date(),
                fmt=fmt,
                out=out,
                now=SystemClock().now(),
                since=since.date() if since else None,
                locale=lang or ctx.settings.locale,
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        title, briefing_id = f"{p.title} 联席会议简报（{meeting_date.date():%Y-%m-%d}）", row.id
    click.echo(f"briefing written to {out}")
    if not send:
        return
    rt = _runtime(ctx)

    async def deliver():  # type: ignore[no-untyped-def]
        async with build_channels(rt):
            if not rt.channels:
                raise click.ClickException("no channel to send with: set COORDBOT_TELEGRAM_TOKEN")
            return await send_report_file(
                engine=rt.engine, channels=rt.channels, path=out, title=title, clock=rt.clock, briefing_id=briefing_id
            )

    sent = asyncio.run(deliver())
    click.echo(f"sent to {len(sent.delivered)}: {', '.join(sent.delivered) or '-'}")
    for name, error in sent.failed:
        click.echo(f"not delivered to {name}: {error}", err=True)


@main.group()
def meeting() -> None:
    """Joint meetings: record their decisions."""


@meeting.command("record")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@pass_ctx
def meeting_record(ctx: Ctx, file: Path) -> None:
    """Apply a meeting's decisions (new tasks, deadlines, reassignments, closures) from a YAML FILE."""
    from coordbot.core.clock import SystemClock
    from coordbot.plan.meetings import MeetingFileError, record_meeting

    try:
        with session_scope(ctx.engine()) as session:
            m = record_meeting(
                session=session,
                data=file.read_text(encoding="utf-8"),
                now=SystemClock().now(),
                file=str(file),
                actor="cli",
            )
            held_on, applied = m.held_on, len(m.decisions)
    except MeetingFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"meeting of {held_on}: {applied} decision(s) applied")


# ---- contacts ---------------------------------------------------------------------------------------


@main.group()
def contacts() -> None:
    """Contacts, leaders and office members, and their invite links."""


@contacts.command("invite")
@click.argument("department")
@click.option("--name", required=True, help="The person's name.")
@click.option("--role", type=click.Choice(["contact", "leader", "office"]), default="contact", show_default=True)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="Language the person gets their messages in: zh (Chinese) or en.",
)
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True, help="Days until the link expires.")
@click.option("--bot", "bot_username", default="", help="Bot username for the link (default: asked from Telegram).")
@click.option("--plan", "plan_code", help="A plan of the department's organisation (when several have DEPARTMENT).")
@pass_ctx
def contacts_invite(
    ctx: Ctx, department: str, name: str, role: str, lang: str, days: int, bot_username: str, plan_code: str | None
) -> None:
    """Create a one-time invite link for DEPARTMENT (code); the link is shown once, only its hash is kept."""
    from datetime import timedelta

    from coordbot.plan.contacts import create_invite

    username = bot_username or _bot_username(ctx)
    with session_scope(ctx.engine()) as session:
        try:
            new = create_invite(
                session=session,
                department_code=department,
                plan_code=plan_code,
                name=name,
                role=role,
                language=lang,
                created_by="cli",
                ttl=timedelta(days=days),
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        expires = new.invite.expires_at.astimezone(ctx.settings.tz)
    click.echo(f"invite for {name} ({role}, {department}), valid until {expires:%Y-%m-%d %H:%M}:")
    if username:
        click.echo(f"  Telegram: {new.link(username)}")
    click.echo(f"  WeCom, DingTalk, Feishu or e-mail: send the bot the message  绑定 {new.code}")


def _bot_username(ctx: Ctx) -> str:
    if not ctx.settings.telegram_token:
        return ""
    import asyncio

    from telegram import Bot

    async def ask() -> str:
        async with Bot(ctx.settings.telegram_token.get(), base_url=ctx.settings.telegram_base_url) as bot:
            return bot.username or ""

    try:
        return asyncio.run(ask())
    except Exception as exc:  # the link can still be built by hand from the code
        click.echo(f"warning: could not ask Telegram for the bot's name ({type(exc).__name__})", err=True)
        return ""


@contacts.command("list")
@pass_ctx
def contacts_list(ctx: Ctx) -> None:
    """Every contact with department, role and whether a chat is bound; then the invites not used yet."""
    from sqlmodel import col, select

    from coordbot.core.clock import SystemClock
    from coordbot.plan.contacts import reachable_routes
    from coordbot.plan.models import Contact, Department, Invite, Organisation

    with session_scope(ctx.engine()) as session:
        all_depts = list(session.exec(select(Department)))
        orgs = {o.id: o.code for o in session.exec(select(Organisation))}
        # Several organisations may use one code: then each department is named with its organisation.
        depts = {d.id: (f"{orgs[d.organisation_id]}/{d.code}" if len(orgs) > 1 else d.code) for d in all_depts}
        rows = session.exec(
            select(Contact).order_by(col(Contact.department_id), col(Contact.role), col(Contact.name))
        ).all()
        options = reachable_routes(session=session, contacts=rows)
        for c in rows:
            state = "unreachable" if not options[row_id(c)] and c.address else ("bound" if c.address else "not bound")
            further = ", ".join(f"{r.channel}" for r in options[row_id(c)] if r.further)
            line = f"{depts[c.department_id]:<16} {c.role:<8} {c.name:<12} {c.channel:<14} {state}"
            click.echo(line + (f"  (then: {further})" if further else ""))
        invites = session.exec(
            select(Invite)
            .where(col(Invite.used_at).is_(None), Invite.expires_at > SystemClock().now())
            .order_by(col(Invite.department_id), col(Invite.role), col(Invite.name))
        ).all()
        if invites:
            click.echo("invited, not bound yet:")
        for i in invites:
            expires = i.expires_at.astimezone(ctx.settings.tz)
            click.echo(f"{depts[i.department_id]:<16} {i.role:<8} {i.name:<12} invite expires {expires:%Y-%m-%d %H:%M}")
    if not rows and not invites:
        click.echo("no contacts yet: create invite links with 'coordbot contacts invite DEPT --name NAME'")


def _find_department(session: Session, department: str, plan_code: str | None):  # type: ignore[no-untyped-def]
    from coordbot.plan.contacts import find_department

    try:
        return find_department(session=session, code=department, plan_code=plan_code)
    except ValueError as exc:
        raise click.ClickException(f"{exc} (see 'coordbot departments list')") from exc


def _find_contact(session: Session, department: str, name: str, role: str, plan_code: str | None = None) -> Contact:
    from sqlmodel import select

    from coordbot.plan.models import Contact

    dept = _find_department(session, department, plan_code)
    found = session.exec(
        select(Contact).where(Contact.department_id == dept.id, Contact.name == name, Contact.role == role)
    ).first()
    if found is None:
        raise click.ClickException(
            f"no {role} named {name!r} in department {department!r} (see 'coordbot contacts list')"
        )
    return found


@contacts.command("address")
@click.argument("department")
@click.option("--name", required=True, help="The contact's name.")
@click.option("--role", type=click.Choice(["contact", "leader", "office"]), default="contact", show_default=True)
@click.option("--channel", type=click.Choice(["email", "wecom", "dingtalk", "feishu", "telegram"]), required=True)
@click.option("--address", required=True, help="The address on that channel (e-mail address, userid, open_id).")
@click.option("--plan", "plan_code", help="A plan of the department's organisation (when several have DEPARTMENT).")
@pass_ctx
def contacts_address(
    ctx: Ctx, department: str, name: str, role: str, channel: str, address: str, plan_code: str | None
) -> None:
    """Add a further address to a contact: reminders fall back to it when the preferred channel gives up."""
    from coordbot.plan.contacts import add_address, routes

    with session_scope(ctx.engine()) as session:
        contact = _find_contact(session, department, name, role, plan_code)
        try:
            add_address(session=session, contact=contact, channel=channel, address=address)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        order = " -> ".join(ch for ch, _ in routes(session=session, contact=contact))
    click.echo(f"{name} ({role}, {department}) is reached on: {order}")


@contacts.command("robot")
@click.argument("department")
@click.option("--robot", required=True, help="The robot's name in the robots file (COORDBOT_ROBOTS_FILE).")
@click.option("--kind", type=click.Choice(["wecom_robot", "dingtalk_robot", "feishu_robot"]), required=True)
@click.option("--name", default="", help="What to call the group (default: <department> group).")
@click.option("--plan", "plan_code", help="A plan of the department's organisation (when several have DEPARTMENT).")
@pass_ctx
def contacts_robot(ctx: Ctx, department: str, robot: str, kind: str, name: str, plan_code: str | None) -> None:
    """Set DEPARTMENT's group chat, reached by a send-only group robot (digests and notices)."""
    from sqlmodel import select

    from coordbot.plan.models import Contact, Role

    with session_scope(ctx.engine()) as session:
        dept = _find_department(session, department, plan_code)
        label = name or f"{dept.short_name or dept.name}工作群"
        group = session.exec(
            select(Contact).where(Contact.department_id == dept.id, Contact.role == Role.GROUP, Contact.name == label)
        ).first()
        if group is None:
            group = Contact(department_id=row_id(dept), role=Role.GROUP, name=label)
            session.add(group)
        group.channel, group.address, group.active, group.unreachable = kind, robot, True, False
    click.echo(f"{label} ({department}) is reached by the {kind} robot {robot!r}")


# ---- the web desk -----------------------------------------------------------------------------------


@main.group()
def web() -> None:
    """The office's web desk."""


@web.command("password")
@click.option("--department", required=True, help="The office's department code.")
@click.option("--name", required=True, help="The office contact's name.")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Read the password from this file (its first line) instead of asking twice.",
)
@click.option("--plan", "plan_code", help="A plan of the department's organisation (when several have DEPARTMENT).")
@pass_ctx
def web_password(ctx: Ctx, department: str, name: str, password_file: Path | None, plan_code: str | None) -> None:
    """Set (or replace) an office contact's password for signing in to the web desk."""
    from coordbot.core.clock import SystemClock
    from coordbot.web.signin import set_password

    if password_file is not None:
        lines = password_file.read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with session_scope(ctx.engine()) as session:
        contact = _find_contact(session, department, name, "office", plan_code)
        try:
            set_password(session=session, contact=contact, password=password, now=SystemClock().now())
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"desk password set for {name} (office, {department}): sign in at /login")


@web.group("token")
def web_token() -> None:
    """Bearer tokens for machine clients of the JSON API (/api/v1)."""


@web_token.command("create")
@click.option("--name", required=True, help="What the token is for (letters, digits, . _ -); events name it api:NAME.")
@click.option("--role", type=click.Choice(["office", "leader"]), required=True, help="What the token may do.")
@pass_ctx
def web_token_create(ctx: Ctx, name: str, role: str) -> None:
    """Create an API token; it is printed once (only its hash is kept)."""
    from coordbot.core.clock import SystemClock
    from coordbot.web.tokens import create_token

    with session_scope(ctx.engine()) as session:
        try:
            token = create_token(session=session, name=name, role=role, now=SystemClock().now())
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(token)
    click.echo(f"API token {name!r} ({role}) created; it is shown only now: Authorization: Bearer <token>", err=True)


@web_token.command("list")
@pass_ctx
def web_token_list(ctx: Ctx) -> None:
    """The API tokens (names, roles, last use; never the tokens)."""
    from coordbot.web.tokens import list_tokens

    with session_scope(ctx.engine()) as session:
        for t in list_tokens(session=session):
            state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            click.echo(f"{t.name}\t{t.role}\t{state}\tlast used {used}")


@web_token.command("revoke")
@click.option("--name", required=True)
@pass_ctx
def web_token_revoke(ctx: Ctx, name: str) -> None:
    """Revoke an API token at once."""
    from coordbot.core.clock import SystemClock
    from coordbot.web.tokens import revoke_token

    with session_scope(ctx.engine()) as session:
        if not revoke_token(session=session, name=name, now=SystemClock().now()):
            raise click.ClickException(f"no live API token named {name!r}")
    click.echo(f"API token {name!r} revoked")


def run() -> None:
    """Entry point for ``python -m coordbot``."""
    main(prog_name="coordbot")


if __name__ == "__main__":
    run()
