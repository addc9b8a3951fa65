"""The composition root: the database, the reminder clock, the conversation, the channels and the web app.

``main()``-style wiring only; the behaviour lives in the rooms below. Channel adapters come from the
registry and get one ``handle(inbound) -> reply`` callable; the conversation runs in a thread or in worker
processes (:mod:`coordbot.runtime.workers`). APScheduler is the clock and nothing else: its jobs are in
memory and each tick reads the durable occurrences from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import Engine
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from coordbot.channels import registry
from coordbot.channels.base import Channel, Frontend, Inbound, Reply, TransientChannelError
from coordbot.core import events, metrics
from coordbot.core.clock import Clock, configured_clock
from coordbot.core.config import Settings
from coordbot.core.db import session_scope
from coordbot.core.logformat import log_context
from coordbot.core.logs import install_redaction
from coordbot.core.paths import locate
from coordbot.reports.digest import DIGEST_HOUR, queue_weekly_digests
from coordbot.runtime.workers import ConversationRunner, WorkerConfig, build_conversation, make_runner
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.engine import RESCHEDULING_EVENTS, ReminderEngine
from coordbot.scheduling.escalation import review_tasks

log = logging.getLogger("coordbot.runtime")

REVIEW_EVERY = timedelta(minutes=15)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    calendar: WorkCalendar
    clock: Clock
    channels: dict[str, Channel] = field(default_factory=dict)
    reminders: ReminderEngine | None = None
    runner: ConversationRunner | None = None  # where inbound messages are handled; built on first use
    changed: bool = False  # set by event subscribers (other threads): regenerate occurrences at the next tick

    def note_change(self, _event: object) -> None:
        self.changed = True

    # ---- inbound ----

    def conversation_config(self) -> WorkerConfig:
        s = self.settings
        return WorkerConfig(
            database_url=s.database_url,
            holidays_dir=self.calendar.overrides_dir or s.holidays_dir,
            timezone=s.timezone,
            locale=s.locale,
            log_format=s.log_format,
            log_level=logging.getLogger().getEffectiveLevel(),
        )

    def conversation_runner(self) -> ConversationRunner:
        if self.runner is None:
            config = self.conversation_config()
            self.runner = make_runner(
                # built at the first update handled in this process (never, while every one goes to a worker)
                conversation=functools.partial(build_conversation, config, self.engine, clock=self.clock),
                config=config,
                processes=self.settings.handler_processes,
                idle_seconds=self.settings.handler_idle_seconds,
            )
        return self.runner

    async def handle(self, inbound: Inbound) -> Reply | None:
        """What every channel's front end calls: the update, stamped with this process's clock."""
        ids = log_context(update_id=inbound.external_id, channel=inbound.channel)
        with metrics.timed_inbound(inbound.channel), ids:
            return await self.conversation_runner().handle(inbound, now=self.clock.now())

    def frontends(self) -> list[Frontend]:
        """A front end for every two-way channel the settings configure; its sender joins ``channels``."""
        built = []
        for adapter in registry.configured(self.settings):
            if adapter.frontend is None:
                continue
            frontend = adapter.frontend(self.settings, self.handle)
            self.channels[adapter.name] = frontend.channel
            built.append(frontend)
        return built

    async def close(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.close()

    # ---- the clock ----

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
        """Queue the week's digest (office) and summaries (leaders) if today is the digest day."""
        with session_scope(self.engine) as session:
            return queue_weekly_digests(session=session, now=self.clock.now(), calendar=self.calendar)

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
                "tick: %d claimed, %d sent, %d failed, %d retried later, %d folded, %d unconfirmed",
                report.claimed,
                report.sent,
                report.failed,
                report.released,
                report.folded,
                report.unconfirmed,  # sent without an answer: each may arrive twice once retried
            )


@contextlib.asynccontextmanager
async def build_channels(runtime: Runtime) -> AsyncIterator[Runtime]:
    """Send-only channels (no update receiving), for one-shot commands such as ``reminders dispatch``."""
    async with contextlib.AsyncExitStack() as stack:
        for adapter in registry.configured(runtime.settings):
            runtime.channels[adapter.name] = await stack.enter_async_context(adapter.open_sender(runtime.settings))
        yield runtime


def make_runtime(settings: Settings, engine: Engine, *, clock: Clock | None = None) -> Runtime:
    install_redaction(settings)  # before any channel logs a request URL (the token) or its parameters
    return Runtime(
        settings=settings,
        engine=engine,
        calendar=WorkCalendar(locate(settings.holidays_dir), tz=settings.timezone),
        clock=clock or configured_clock(settings.clock_start, settings.clock_speed),
    )


START_BACKOFF_MAX = 60.0  # seconds between attempts to reach a platform at start-up, at most


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, TransientChannelError | OSError)


async def start_frontend(frontend: Frontend, stop: asyncio.Event) -> bool:
    """Start ``frontend``, retrying with backoff (1 s, doubling up to a minute; one log line each) while its
    platform cannot be reached, until it starts (True) or ``stop`` is set (False). Refused credentials and
    other permanent errors are raised: waiting cannot fix them."""
    name = frontend.channel.name

    async def pause(seconds: float) -> None:  # a stop during the wait ends it at once
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: cannot start (%s); attempt %d, retrying in %.0f s", name, exc, state.attempt_number, wait)

    retrying = AsyncRetrying(
        retry=retry_if_exception(_unreachable),
        wait=wait_exponential(multiplier=1, min=1, max=START_BACKOFF_MAX),
        stop=lambda _state: stop.is_set(),
        sleep=pause,
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        await retrying(frontend.start)
    except Exception as exc:
        if stop.is_set() and _unreachable(exc):
            return False
        raise
    return True


# From SIGTERM to the end of the process, at most (a supervisor usually sends SIGKILL at 10 s).
STOP_DEADLINE = 9.0


async def _unless_stopped(work: Awaitable[object], stop: asyncio.Event) -> None:
    """Await ``work``, unless ``stop`` comes first (a database that hangs must not hold a stop back)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        log.warning("stop requested while starting up: the start-up work is left unfinished")
        return
    task.result()


def _exit_later(seconds: float, code: int, message: str) -> None:
    """End the process in ``seconds`` unless it ended by then (a daemon timer: it dies with the process)."""

    def end() -> None:
        (log.warning if code == 0 else log.error)(message)
        logging.shutdown()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)

    timer = threading.Timer(seconds, end)
    timer.daemon = True
    timer.start()


def _exit_by_deadline(stop: asyncio.Event) -> None:
    """Once a stop is requested, end the process ``STOP_DEADLINE`` seconds later whatever still runs: a thread
    waiting on a database that does not answer would otherwise hold the interpreter's exit forever. Nothing
    received is lost by it: an update is acknowledged only once spooled, and stored only by a transaction."""
    message = f"coordbot did not stop within {STOP_DEADLINE:.0f} s: exiting now (what was received is in the spool)"
    task = asyncio.get_running_loop().create_task(stop.wait())
    task.add_done_callback(lambda _t: _exit_later(STOP_DEADLINE, 1, message))


async def serve(runtime: Runtime, *, stop: asyncio.Event | None = None) -> None:
    """Run until stopped (SIGINT/SIGTERM or ``stop``): the clock, and every channel's front end.

    Without ``stop`` the process is serve()'s own (``coordbot run``): after SIGTERM it ends within
    ``STOP_DEADLINE`` seconds, whatever hangs."""
    owns_process = stop is None
    stop = stop or asyncio.Event()
    if owns_process:
        _exit_by_deadline(stop)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    frontends = runtime.frontends()
    if not frontends:
        hints = ", ".join(a.missing_hint for a in registry.adapters() if a.missing_hint)
        log.warning("no channel configured (%s): reminders have no channel to go out on", hints)

    runtime.build_reminders()
    await runtime.conversation_runner().start()
    from coordbot.web.app import make_web_app, start_site

    # The desk, with the webhooks on the same app: listening before a webhook is registered, so the
    # platform's first delivery finds us.
    web_app = make_web_app(
        [r for f in frontends for r in f.webhook_routes()],
        engine=runtime.engine,
        settings=runtime.settings,
        calendar=runtime.calendar,
        clock=runtime.clock,
    )
    from coordbot.web.desk import DESK
    from coordbot.web.reply import reply_links

    # Task reminders carry the reply form's link (when public_url is set), signed with the desk's key.
    assert runtime.reminders is not None
    runtime.reminders.reply_link = reply_links(web_app[DESK])
    web_runner = await start_site(web_app, runtime.settings.web_host, runtime.settings.web_port)
    log.info("web desk on http://%s:%s", runtime.settings.web_host, runtime.settings.web_port)
    for f in frontends:
        await start_frontend(f, stop)
    unsubscribe = [events.subscribe(kind, runtime.note_change) for kind in RESCHEDULING_EVENTS]
    try:
        await _unless_stopped(runtime.housekeeping(), stop)
    except Exception:  # the database went away after start-up: the front ends keep (spool) what comes in
        log.exception("housekeeping failed; it runs again in %s", REVIEW_EVERY)
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
    scheduler.add_job(runtime.weekly_digest_job, "cron", hour=DIGEST_HOUR, minute=0, id="weekly_digest")
    scheduler.start()
    log.info(
        "coordbot running: tick every %ss; clock at %s",
        runtime.settings.tick_seconds,
        runtime.clock.now().astimezone(runtime.calendar.tz).isoformat(timespec="seconds"),
    )
    try:
        await _unless_stopped(runtime.tick(), stop)
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        for undo in unsubscribe:
            undo()
        if web_runner is not None:
            await web_runner.cleanup()
        for f in reversed(frontends):
            await f.stop()
        await runtime.close()
        log.info("coordbot stopped")
        if owns_process:  # all is flushed; only a thread stuck on the database could still hold the exit
            _exit_later(1.0, 0, "coordbot stopped, but a thread still waits (on the database?): exiting without it")
