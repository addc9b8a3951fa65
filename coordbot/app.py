"""The running bot: the database, the reminder clock, the channels and the web endpoint, wired together.

``main()``-style wiring only; the behaviour lives in the packages. APScheduler is the clock and nothing
else: its jobs are in memory and each tick reads the durable occurrences from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine
from sqlmodel import select

from coordbot.channels.base import Channel
from coordbot.core import events
from coordbot.core.clock import Clock, SystemClock
from coordbot.core.config import Settings
from coordbot.core.db import session_scope
from coordbot.core.events import EventType
from coordbot.plan.models import Plan
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import ReminderEngine
from coordbot.scheduling.escalation import review_tasks

log = logging.getLogger("coordbot.app")

REVIEW_EVERY = timedelta(minutes=15)
# Changes after which the occurrences must be regenerated at the next tick, not at the next housekeeping.
RESCHEDULING_EVENTS = (
    EventType.EXTENSION_APPROVED,
    EventType.TASK_REPORTED_DONE,
    EventType.TASK_CLOSED,
    EventType.TASK_ARCHIVED,
    EventType.TASK_UPDATED,
    EventType.TASK_ASSIGNED,
    EventType.CONTACT_BOUND,
)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    calendar: WorkCalendar
    clock: Clock
    channels: dict[str, Channel] = field(default_factory=dict)
    reminders: ReminderEngine | None = None
    chat_reports: Callable[..., str] | None = None  # /digest and /summary in chat
    changed: bool = False  # set by event subscribers (other threads): regenerate occurrences at the next tick

    def note_change(self, _event: object) -> None:
        self.changed = True

    def build_reminders(self) -> ReminderEngine:
        self.reminders = ReminderEngine(
            engine=self.engine,
            channels=self.channels,
            calendar=self.calendar,
            clock=self.clock,
            lease=timedelta(seconds=self.settings.lease_seconds),
            at_most_once=self.settings.delivery == "at-most-once",
            locale=self.settings.locale,
        )
        return self.reminders

    def review(self) -> None:
        with session_scope(self.engine) as session:
            review_tasks(session=session, calendar=self.calendar, now=self.clock.now())

    async def housekeeping(self) -> None:
        """Generate occurrences for the coming days and recolour / escalate tasks."""
        assert self.reminders is not None
        report = await asyncio.to_thread(self.reminders.sync)
        await asyncio.to_thread(self.review)
        if report.created or report.cancelled:
            log.info("reminders: %d scheduled, %d cancelled", report.created, report.cancelled)

    async def weekly_digest_job(self) -> None:
        try:
            queued = await asyncio.to_thread(self.weekly_digest)
        except Exception:  # the digest must not stop the clock
            log.exception("weekly digest failed")
            return
        if queued:
            log.info("weekly digest queued for %d recipient(s)", queued)
            await self.tick()

    def weekly_digest(self) -> int:
        """Queue the week's digest (office) and summaries (leaders) on the week's last working day up to Friday."""
        from coordbot.reports.digest import queue_weekly_digest

        today = self.clock.now().astimezone(self.calendar.tz).date()
        friday = today + timedelta(days=4 - today.weekday())
        if today.weekday() > 4 or not self.calendar.is_workday(today):
            return 0
        if any(self.calendar.is_workday(today + timedelta(days=d)) for d in range(1, (friday - today).days + 1)):
            return 0  # a later working day this week will send it
        queued = 0
        with session_scope(self.engine) as session:
            for plan in session.exec(select(Plan)).all():
                queued += queue_weekly_digest(session=session, plan=plan, now=self.clock.now(), calendar=self.calendar)
        return queued

    async def tick(self) -> None:
        assert self.reminders is not None
        if self.changed:
            self.changed = False
            await asyncio.to_thread(self.reminders.sync)
        try:
            report = await self.reminders.tick()
        except Exception:  # a bad tick must not stop the clock; the rows stay and the next tick retries
            log.exception("reminder tick failed")
            return
        if report.claimed:
            log.info(
                "tick: %d claimed, %d sent, %d failed, %d retried later, %d folded",
                report.claimed,
                report.sent,
                report.failed,
                report.released,
                report.folded,
            )


@contextlib.asynccontextmanager
async def build_channels(runtime: Runtime) -> AsyncIterator[Runtime]:
    """Send-only channels (no update receiving), for one-shot commands such as ``reminders dispatch``."""
    bot = None
    if runtime.settings.telegram_token:
        from telegram.ext import ExtBot

        from coordbot.channels.ratelimit import TelegramRateLimiter
        from coordbot.channels.telegram import TelegramChannel

        s = runtime.settings
        bot = ExtBot(
            s.telegram_token.get(),
            base_url=s.telegram_base_url,
            rate_limiter=TelegramRateLimiter(overall_per_second=s.telegram_rate_per_second),
        )
        await bot.initialize()
        runtime.channels["telegram"] = TelegramChannel(bot)
    try:
        yield runtime
    finally:
        if bot is not None:
            await bot.shutdown()


def _project_path(path: Path) -> Path:
    """A relative path from the settings, found from the working directory or else from the project."""
    if path.is_absolute() or path.exists():
        return path
    from coordbot.core.db import PROJECT_ROOT

    return PROJECT_ROOT / path


def make_runtime(settings: Settings, engine: Engine, *, clock: Clock | None = None) -> Runtime:
    from coordbot.reports.digest import chat_reports

    return Runtime(
        settings=settings,
        engine=engine,
        calendar=WorkCalendar(_project_path(settings.holidays_dir), tz=settings.timezone),
        clock=clock or SystemClock(),
        chat_reports=chat_reports,
    )


async def serve(runtime: Runtime, *, stop: asyncio.Event | None = None) -> None:
    """Run until stopped (SIGINT/SIGTERM or ``stop``): the clock, and every channel's front end."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    frontends = []
    if runtime.settings.telegram_token:
        from coordbot.channels.telegram import TelegramFrontend

        frontend = TelegramFrontend(runtime)
        runtime.channels["telegram"] = frontend.channel
        frontends.append(frontend)
    else:
        log.warning("no Telegram token set (COORDBOT_TELEGRAM_TOKEN): reminders have no channel to go out on")

    runtime.build_reminders()
    web_runner = None
    if runtime.settings.telegram_mode == "webhook" and frontends:
        from coordbot.web.app import make_web_app, start_site

        # Listen before the webhook is registered, so Telegram's first delivery finds us.
        routes = [r for f in frontends for r in f.webhook_routes()]
        web_runner = await start_site(make_web_app(routes), runtime.settings.web_host, runtime.settings.web_port)
        log.info("webhook listening on %s:%s", runtime.settings.web_host, runtime.settings.web_port)
    for f in frontends:
        await f.start()
    unsubscribe = [events.subscribe(kind, runtime.note_change) for kind in RESCHEDULING_EVENTS]
    await runtime.housekeeping()
    scheduler = AsyncIOScheduler(timezone=runtime.settings.timezone)
    scheduler.add_job(
        runtime.tick, "interval", seconds=runtime.settings.tick_seconds, id="tick", max_instances=1, coalesce=True
    )
    scheduler.add_job(
        runtime.housekeeping,
        "interval",
        seconds=REVIEW_EVERY.total_seconds(),
        id="housekeeping",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(runtime.weekly_digest_job, "cron", hour=16, minute=0, id="weekly_digest")
    scheduler.start()
    log.info("coordbot running: tick every %ss", runtime.settings.tick_seconds)
    try:
        await runtime.tick()
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        for undo in unsubscribe:
            undo()
        if web_runner is not None:
            await web_runner.cleanup()
        for f in reversed(frontends):
            await f.stop()
        log.info("coordbot stopped")
