"""The reminder engine: occurrences generated from the policy, claimed under a lease, sent, escalated.

The database is the source of truth and APScheduler only the clock (DESIGN decision 1). Each tick:

1. ``claim``: one transaction takes due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one
   writer because every transaction begins IMMEDIATE), marks them ``claimed`` by this worker with a lease,
   and folds rows older than the catch-up grace into one message per contact;
2. ``dispatch``: renders and sends each claimed row through its channel (tenacity retries transient errors,
   honouring ``retry_after``), marks it ``sent`` with the channel's reference as soon as its send returned
   (a few sends per transaction), or ``failed``, or releases it to be tried again.

Outages (issue 17): a transient error (connection refused, 5xx, timeouts, 429) never fails a reminder. It is
released with a back-off doubling from a minute to ten, and tried again for as long as it is useful: once its
grace window has passed it is folded into the contact's one catch-up message. A contact with another address
falls back to it after ``MAX_ATTEMPTS`` ticks. Permanent errors (blocked, chat not found) fail at once.

A send that got no answer after its request went out (``maybe_delivered``: a read timeout) is not retried
within the tick; a contact's messages go out one after another, so the next one is sent only once that
outcome is known, and the channel waits longer for its answers (Telegram: ``PATIENT_READ_TIMEOUT``). The
retry is then the one possible copy: at most one duplicate per chat for one slow spell.

A claim whose worker died is taken over after its lease. ``delivery = "at-least-once"`` (default) sends it
again — a message may then arrive twice if the worker died between sending and recording, which with
recording as each send completes is at most the sends in flight (``concurrency`` per channel); with
``"at-most-once"`` it is marked failed instead and the office is told, so nothing is ever sent twice (an
unanswered send is failed likewise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from coordbot.channels.base import (
    Channel,
    ChannelError,
    Delivery,
    NoChannelError,
    Outbound,
    TransientChannelError,
)
from coordbot.core import events, metrics
from coordbot.core.clock import Clock, SystemClock
from coordbot.core.db import is_postgres, row_id, session_scope
from coordbot.core.events import EventType
from coordbot.plan.contacts import is_reachable, mark_unreachable, reachable_routes
from coordbot.plan.models import OPEN_STATUSES, Contact, Plan, Role, Target, Task, TaskDepartment, TaskStatus
from coordbot.plan.policy import ReminderPolicy
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.models import Claimed, OccurrenceStatus, ReminderKind, ReminderOccurrence
from coordbot.scheduling.outbox import insert_occurrences, notify_office
from coordbot.scheduling.policy import TaskSchedule, plan_reminders

if TYPE_CHECKING:
    from coordbot.scheduling.messages import ReplyLink

log = logging.getLogger("coordbot.scheduling")

POLICY_KINDS = ("before_due", "due_today", "overdue", "periodic", "checkpoint", "event_ahead")
MAX_ATTEMPTS = 3  # ticks in a row a transient failure may last before a contact's other address is tried
SEND_TRIES = 4  # tries within one tick (tenacity)
SEND_CONCURRENCY = 32  # sends in flight per channel: what a killed process may have sent and not recorded
RETRY_BACKOFF = timedelta(minutes=1)  # after the first failed tick; doubling after each further one
MAX_BACKOFF = timedelta(minutes=10)
UNCONFIRMED = "unconfirmed: "  # error prefix of a row whose last send may have been delivered
DOWN_PROBE_SECONDS = 5.0  # after a send failed every try, the batch's others on that channel wait this long
# A platform asking for a longer pause (DingTalk's 10-minute throttle) gets the row back with that lease
# instead of a tick that sleeps holding every other send.
MAX_WAIT_IN_TICK = 30.0
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


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def plan_policy(plan: Plan) -> ReminderPolicy:
    return ReminderPolicy.from_mapping(plan.reminder_policy or {}, where=f"plan {plan.code} reminders")


def task_policy(task: Task, base: ReminderPolicy) -> ReminderPolicy:
    if not task.reminder_policy:
        return base
    return ReminderPolicy.from_mapping(task.reminder_policy, base=base, where=f"task {task.code} reminders")


def task_schedule(task: Task, plan: Plan, targets: Sequence[Target]) -> TaskSchedule:
    has_quota = any(t.period in ("annual", "cumulative") and t.value is not None for t in targets)
    return TaskSchedule(
        code=task.code,
        kind=task.kind,
        start=task.start_date or plan.start_date,
        end=plan.end_date,
        due=task.due_date if task.kind == "one-off" else None,
        events=tuple((e["name"], e["day"]) for e in task.dated_events),
        has_quota=has_quota,
        # 到…达到 / 三年新增 by a date: a recurring or metric task is reminded before it (one-off: its due).
        every=task.deadline_every,
        milestones=tuple(date.fromisoformat(m["due"]) for m in task.milestones),
        target_dates=tuple(
            sorted({t.due_date for t in targets if t.due_date is not None and t.period in ("at-date", "cumulative")})
        ),
    )


# ---- generation ------------------------------------------------------------------------------------


@dataclass
class SyncReport:
    created: int = 0
    cancelled: int = 0
    tasks: int = 0


def sync_reminders(
    *,
    session: Session,
    calendar: WorkCalendar,
    now: datetime,
    horizon: timedelta = timedelta(days=14),
    lookback: timedelta = timedelta(days=7),
    plan_ids: Sequence[int] | None = None,
) -> SyncReport:
    """Make the pending occurrences in [now - lookback, now + horizon) match the policy. Idempotent.

    New rows are inserted with ON CONFLICT DO NOTHING on the occurrence key, so two processes syncing at
    once agree; pending rows the policy no longer wants (deadline moved, task done or archived) are
    cancelled. Rows already sent or failed are history and never touched.
    """
    report = SyncReport()
    window_start, window_end = now - lookback, now + horizon
    plans = session.exec(select(Plan).where(col(Plan.id).in_(plan_ids)) if plan_ids else select(Plan)).all()
    for plan in plans:
        # New rows only from where the last sync stopped (never before now on a first sync); the whole
        # window is still planned so that pending rows the policy still wants are not cancelled.
        synced = plan.reminders_synced_until
        insert_from = now if synced is None else max(window_start, min(now, synced))
        base = plan_policy(plan)
        tasks = session.exec(select(Task).where(Task.plan_id == plan.id)).all()
        targets: dict[int, list[Target]] = defaultdict(list)
        for t in session.exec(select(Target).where(Target.plan_id == plan.id, col(Target.archived_at).is_(None))):
            if t.task_id is not None:
                targets[t.task_id].append(t)
        recipients: dict[int, list[int]] = defaultdict(list)
        for c in session.exec(
            select(Contact).where(
                Contact.role == Role.CONTACT,
                Contact.active,
                col(Contact.address).is_not(None),
                is_reachable(),
            )
        ):
            recipients[c.department_id].append(row_id(c))
        # several lead departments: the others are reminded like the task row's lead
        joint_leads: dict[int, list[int]] = defaultdict(list)
        for jt, jd in session.exec(
            select(TaskDepartment.task_id, TaskDepartment.department_id)
            .join(Task, col(Task.id) == TaskDepartment.task_id)
            .where(Task.plan_id == plan.id, TaskDepartment.role == "lead")
        ):
            joint_leads[jt].append(jd)
        # keyed by task id (a policy reminder always has one)
        # only the key and the id: the rows no longer wanted are cancelled by one UPDATE, not through the ORM
        existing: dict[int | None, dict[tuple[int, str, datetime], int]] = defaultdict(dict)
        for occ in session.execute(
            sa_select(
                col(ReminderOccurrence.id),
                col(ReminderOccurrence.task_id),
                col(ReminderOccurrence.contact_id),
                col(ReminderOccurrence.kind),
                col(ReminderOccurrence.fire_at),
            ).where(
                col(ReminderOccurrence.plan_id) == plan.id,
                col(ReminderOccurrence.status) == OccurrenceStatus.PENDING,
                col(ReminderOccurrence.kind).in_(POLICY_KINDS),
                col(ReminderOccurrence.fire_at) >= window_start,
                col(ReminderOccurrence.fire_at) < window_end,
            )
        ):
            existing[occ.task_id][(occ.contact_id, occ.kind, occ.fire_at)] = occ.id

        rows: list[dict[str, Any]] = []
        unwanted: list[int] = []
        for task in tasks:
            task_id = row_id(task)
            wanted: set[tuple[int, str, datetime]] = set()
            active = (
                task.archived_at is None
                and task.status in OPEN_STATUSES
                and task.status not in (TaskStatus.REPORTED_DONE,)
            )
            if active:
                report.tasks += 1
                policy = task_policy(task, base)
                planned = plan_reminders(
                    task_schedule(task, plan, targets[task_id]),
                    policy,
                    calendar,
                    window_start=window_start,
                    window_end=window_end,
                    tz=plan.timezone,
                )
                leads = [task.lead_department_id, *joint_leads.get(task_id, ())]
                for p in planned:
                    for contact_id in (c for dept in leads for c in recipients[dept]):
                        key = (contact_id, p.kind, p.fire_at)
                        wanted.add(key)
                        if key not in existing[task_id] and p.fire_at >= insert_from:
                            rows.append(
                                {
                                    "plan_id": plan.id,
                                    "task_id": task.id,
                                    "contact_id": contact_id,
                                    "kind": p.kind,
                                    "fire_at": p.fire_at,
                                    "ref_date": p.ref_date,
                                    "detail": p.detail,
                                    "status": OccurrenceStatus.PENDING,
                                    "attempts": 0,
                                    "body": "",
                                    "error": "",
                                    "created_at": now,
                                }
                            )
            unwanted.extend(occ_id for key, occ_id in existing[task_id].items() if key not in wanted)
        for chunk in range(0, len(unwanted), 10_000):  # bound the IN list (SQLite's variable limit)
            session.execute(
                update(ReminderOccurrence)
                .where(col(ReminderOccurrence.id).in_(unwanted[chunk : chunk + 10_000]))
                .values(
                    status=OccurrenceStatus.CANCELLED,
                    error="no longer wanted by the policy (deadline moved, task done or archived)",
                )
            )
        report.cancelled += len(unwanted)
        if rows:
            report.created += insert_occurrences(session, rows)
        plan.reminders_synced_until = max(window_end, synced) if synced else window_end
        if report.cancelled:
            events.record(session, EventType.REMINDER_CANCELLED, at=now, plan_id=plan.id, count=report.cancelled)
        if rows:
            events.record(
                session,
                EventType.REMINDER_SCHEDULED,
                at=now,
                plan_id=plan.id,
                count=len(rows),
                window=[window_start, window_end],
            )
    session.flush()
    return report


# ---- claiming --------------------------------------------------------------------------------------


def claim_due(
    *,
    engine: Engine,
    worker: str,
    now: datetime,
    lease: timedelta,
    grace: timedelta,
    limit: int = 200,
    at_most_once: bool = False,
    sending: Collection[int] = (),
) -> list[Claimed]:
    """Claim up to ``limit`` due occurrences for ``worker`` in one transaction; ``sending``: rows this worker is
    sending right now (its claims overlap), never taken again here even when their lease has run out.

    Fresh rows and rows whose lease ran out are read by two queries, each walking ``ix_reminder_due``
    (status, fire_at) in order and stopping at ``limit``: one query with an OR of the two would sort every
    due row on each claim, which made a large backlog quadratic. The claim itself is one UPDATE.
    """
    with session_scope(engine) as session:
        if at_most_once:
            _fail_expired_claims(session, now, sending)
        occ = ReminderOccurrence
        stale = and_(col(occ.fire_at) < now - grace, col(occ.kind).in_(POLICY_KINDS))
        fresh = and_(
            col(occ.status) == OccurrenceStatus.PENDING,
            col(occ.fire_at) <= now,
            # a released row waits for its back-off (lease_until) before it is tried again
            or_(col(occ.lease_until).is_(None), col(occ.lease_until) <= now),
        )
        expired = and_(col(occ.status) == OccurrenceStatus.CLAIMED, col(occ.lease_until) < now)
        # A row backing off after failed sends is past its use once stale too: folded, not tried again.
        foldable = or_(col(occ.status) == OccurrenceStatus.PENDING, expired)
        _fold_stale(session, engine, foldable & stale, now=now)
        # Stale rows are only ever folded (above, here or by another process), never sent one by one.
        postgres = is_postgres(engine)
        found: list[Any] = []
        for which in (fresh, expired):
            query = (
                sa_select(
                    col(occ.id),
                    col(occ.kind),
                    col(occ.contact_id),
                    col(occ.task_id),
                    col(occ.fire_at),
                    col(occ.attempts),
                    col(occ.status),
                    col(occ.claimed_by),
                )
                .where(which, ~stale)
                .order_by(col(occ.fire_at), col(occ.id))
                .limit(limit)
            )
            if sending:
                query = query.where(col(occ.id).not_in(list(sending)))
            if postgres:
                query = query.with_for_update(skip_locked=True)
            found.extend(session.execute(query).all())
        # the first ``limit`` of both in (fire_at, id) order; on PostgreSQL the rest stay locked until commit
        rows = sorted(found, key=lambda r: (r.fire_at, r.id))[:limit]
        if not rows:
            return []
        # A catch-up stands for the rows folded into it, also when it is claimed again after a retry.
        catch_ups = [r.id for r in rows if r.kind == ReminderKind.CATCH_UP]
        folded: dict[int, list[int]] = defaultdict(list)
        if catch_ups:
            for occ_id, parent in session.exec(
                select(occ.id, occ.folded_into_id).where(col(occ.folded_into_id).in_(catch_ups)).order_by(col(occ.id))
            ):
                folded[parent].append(occ_id)  # type: ignore[index,arg-type]
        for r in rows:
            if r.status == OccurrenceStatus.CLAIMED:
                events.record(
                    session,
                    EventType.REMINDER_LEASE_EXPIRED,
                    at=now,
                    task_id=r.task_id,
                    contact_id=r.contact_id,
                    occurrence=r.id,
                    previous_worker=r.claimed_by,
                )
        ids = [r.id for r in rows]
        session.execute(
            update(occ)
            .where(col(occ.id).in_(ids))
            .values(
                status=OccurrenceStatus.CLAIMED, claimed_by=worker, lease_until=now + lease, attempts=occ.attempts + 1
            )
            .execution_options(synchronize_session=False)
        )
        session.flush()
        return [
            Claimed(r.id, r.kind, r.contact_id, r.task_id, r.fire_at, r.attempts + 1, tuple(folded.get(r.id, ())))
            for r in rows
        ]


# Held (per transaction) by the one process folding stale rows, so a contact's missed reminders are never split
# between two processes' catch-ups; the others leave stale rows alone meanwhile.
_FOLD_LOCK = 0x636F6F7264  # "coord"


def _fold_stale(session: Session, engine: Engine, stale_due: Any, *, now: datetime) -> None:
    """Reminders missed by more than the grace window become one catch-up message per contact: no flood after
    downtime. Every stale row of a contact is folded at once (not only those of a claim batch), into the
    contact's catch-up not yet sent when there is one; the catch-up is then claimed like any due row."""
    postgres = is_postgres(engine)
    if postgres and not session.execute(select(func.pg_try_advisory_xact_lock(_FOLD_LOCK))).scalar():
        return  # another process is folding right now
    query = select(ReminderOccurrence).where(stale_due).order_by(col(ReminderOccurrence.fire_at))
    if postgres:
        query = query.with_for_update(skip_locked=True)  # a row another process claimed as fresh is its own
    by_contact: dict[int, list[ReminderOccurrence]] = defaultdict(list)
    for occ in session.exec(query):
        by_contact[occ.contact_id].append(occ)
    if not by_contact:
        return
    # A contact whose catch-up is being sent right now keeps its stale rows until that send is decided: they
    # join it if it is released, and are not split off into a second catch-up while it may still fail.
    for contact_id in session.exec(
        select(ReminderOccurrence.contact_id).where(
            col(ReminderOccurrence.kind) == ReminderKind.CATCH_UP,
            col(ReminderOccurrence.status) == OccurrenceStatus.CLAIMED,
            col(ReminderOccurrence.lease_until) >= now,
            col(ReminderOccurrence.contact_id).in_(list(by_contact)),
        )
    ):
        by_contact.pop(contact_id, None)
    if not by_contact:
        return
    waiting = {
        o.contact_id: o
        for o in session.exec(
            select(ReminderOccurrence).where(
                col(ReminderOccurrence.kind) == ReminderKind.CATCH_UP,
                col(ReminderOccurrence.status) == OccurrenceStatus.PENDING,
                col(ReminderOccurrence.contact_id).in_(list(by_contact)),
            )
        )
    }
    for contact_id, old in by_contact.items():
        catch_up = waiting.get(contact_id)
        if catch_up is None:
            catch_up = ReminderOccurrence(
                plan_id=old[0].plan_id,
                contact_id=contact_id,
                kind=ReminderKind.CATCH_UP,
                fire_at=now,
                status=OccurrenceStatus.PENDING,
                detail="0",
            )
            session.add(catch_up)
            session.flush()
        catch_up.detail = str(int(catch_up.detail or 0) + len(old))
        for occ in old:
            occ.status = OccurrenceStatus.CANCELLED
            occ.folded_into_id = catch_up.id
            occ.error = "missed while coordbot was down; folded into a catch-up message"
        events.record(
            session,
            EventType.REMINDER_FOLDED,
            at=now,
            contact_id=contact_id,
            occurrence=catch_up.id,
            folded=[o.id for o in old],
        )
    session.flush()


def _fail_expired_claims(session: Session, now: datetime, sending: Collection[int] = ()) -> None:
    expired = session.exec(
        select(ReminderOccurrence).where(
            ReminderOccurrence.status == OccurrenceStatus.CLAIMED,
            col(ReminderOccurrence.lease_until) < now,
            col(ReminderOccurrence.id).not_in(list(sending)),
        )
    ).all()
    for occ in expired:
        occ.status = OccurrenceStatus.FAILED
        occ.error = "its worker stopped while sending; not sent again (delivery: at-most-once)"
        events.record(
            session,
            EventType.REMINDER_FAILED,
            at=now,
            task_id=occ.task_id,
            contact_id=occ.contact_id,
            occurrence=occ.id,
            reason="lease_expired",
            permanent=True,
        )
    if expired:  # one notice for the lot: the office needs to know, not to be flooded
        notify_office(
            session=session,
            now=now,
            body=f"{len(expired)}条提醒可能未送达（发送进程中断，按“至多一次”策略不再重发）。请用 coordbot reminders "
            f"list --status failed 核对。 / {len(expired)} reminder(s) may not have been delivered: the sending "
            "process stopped and, delivery being at-most-once, they are not sent again.",
        )


# ---- sending ---------------------------------------------------------------------------------------


def _backoff(attempts: int, exc: ChannelError) -> timedelta:
    """A minute after the first failed tick, doubling up to ten; never shorter than the platform asked."""
    doubled: timedelta = RETRY_BACKOFF * (1 << min(max(attempts - 1, 0), 10))
    return max(min(doubled, MAX_BACKOFF), timedelta(seconds=exc.retry_after or 0))


def _wait(retry_state: Any) -> float:
    """Exponential backoff, but never shorter than the server's retry_after."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    backoff = wait_exponential(multiplier=0.2, max=10)(retry_state)
    retry_after = getattr(exc, "retry_after", None) or 0
    return max(float(retry_after), backoff)


async def send_with_retry(channel: Channel, message: Outbound, *, tries: int = SEND_TRIES) -> Delivery:
    """Send, retrying transient errors; a permanent error or the last failure is raised."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(
            lambda e: (
                isinstance(e, ChannelError)
                and not e.permanent
                and not e.maybe_delivered  # sent again at once, a message the platform took would arrive twice
                and (e.retry_after or 0) <= MAX_WAIT_IN_TICK
            )
        ),
        stop=stop_after_attempt(tries),
        wait=_wait,
        reraise=True,
    ):
        with attempt, metrics.timed_send(channel.name):
            return await channel.send(message)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class TickReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    released: int = 0
    folded: int = 0
    fallbacks: int = 0  # gave up on one channel, queued again on the contact's next address
    unconfirmed: int = 0  # released after a send that may have been delivered (its retry may be a duplicate)
    errors: list[str] = field(default_factory=list)


def _still_reachable_on(session: Session, contact: Contact, channel: str) -> bool:
    """Whether the contact's address on ``channel`` is not yet marked unreachable (so it is reported once)."""
    return any(r.channel == channel for r in reachable_routes(session=session, contacts=[contact])[row_id(contact)])


Batch = tuple[str, Outbound, list[Claimed]]  # channel name, message, the rows it stands for


def _round_robin(batches: Iterable[Batch]) -> list[Batch]:
    """Interleave messages by recipient, so one busy chat (1 message/s) does not hold up the others."""
    per_address: dict[str, list[Batch]] = defaultdict(list)
    for batch in batches:
        per_address[batch[1].address].append(batch)
    queues = list(per_address.values())
    out: list[Batch] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


class _KeyedLocks:
    """One asyncio lock per key (a channel's address), forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _SentRecorder:
    """Marks rows sent as their sends return, a few per transaction: a process killed mid-batch has then
    sent-but-unrecorded only the sends in flight, not the whole claim batch (issue 17, item 4)."""

    def __init__(self, engine: ReminderEngine) -> None:
        self.engine = engine
        self.pending: list[tuple[list[Claimed], str, str | None]] = []
        self.recorded: set[int] = set()
        self._flushing: asyncio.Task[None] | None = None

    def add(self, rows: list[Claimed], channel_name: str, ref: str | None) -> None:
        self.pending.append((rows, channel_name, ref))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await asyncio.to_thread(self.engine._mark_sent, batch)
            except Exception:  # the database is away: the final record step tries these rows again
                log.warning("could not record %d sent reminder(s) yet", len(batch), exc_info=True)
                return
            self.recorded.update(c.id for rows, _, _ in batch for c in rows)

    async def drain(self) -> None:
        """Until everything added is recorded (or handed back to the record step after a database error)."""
        while True:
            if self._flushing is not None and not self._flushing.done():
                await self._flushing
            elif self.pending:
                self._flushing = asyncio.create_task(self._flush())
            else:
                return


class ReminderEngine:
    """Claims due occurrences and sends them; one per process, several processes per database."""

    def __init__(
        self,
        *,
        engine: Engine,
        channels: Mapping[str, Channel],
        calendar: WorkCalendar,
        clock: Clock | None = None,
        lease: timedelta = timedelta(minutes=5),
        at_most_once: bool = False,
        batch_size: int = 200,
        concurrency: int = SEND_CONCURRENCY,
        send_tries: int = SEND_TRIES,
        locale: str = "zh",
        worker: str | None = None,
        grace: timedelta | None = None,  # default: the plan's reminder policy
        reply_link: ReplyLink | None = None,  # task reminders carry the web form's link (public_url set)
    ) -> None:
        self.engine = engine
        self.channels = channels  # a live mapping: channels started after the engine are seen too
        self.calendar = calendar
        self.clock = clock or SystemClock()
        self.lease = lease
        self.at_most_once = at_most_once
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.send_tries = send_tries
        self.locale = locale
        self.worker = worker or worker_id()
        self._grace = grace
        self.reply_link = reply_link
        self._lock = asyncio.Lock()
        self._addresses = _KeyedLocks()
        self._down: dict[str, tuple[str, float]] = {}  # channel -> (its last error, time.monotonic()) while down
        self._fresh_budgets()

    def _fresh_budgets(self) -> None:
        # Shared by the dispatches of a tick, which overlap: one budget of concurrent sends per channel, and
        # the messages claimed and not yet sent (the next claim waits until they are few).
        self._budgets: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(self.concurrency))
        self._unsent = 0
        self._progress = asyncio.Event()

    def grace(self) -> timedelta:
        if self._grace is not None:
            return self._grace
        with Session(self.engine) as session:
            plan = session.exec(select(Plan)).first()
        return plan_policy(plan).grace if plan else ReminderPolicy().grace

    def sync(self, now: datetime | None = None) -> SyncReport:
        with session_scope(self.engine) as session:
            return sync_reminders(session=session, calendar=self.calendar, now=now or self.clock.now())

    async def tick(self) -> TickReport:
        """One clock tick: claim what is due and send it, until nothing due is left.

        Claims overlap: the next batch is claimed once the one before is mostly sent, not when its slowest
        chat is done (a chat takes a message a second, a group a burst of 20 a minute), so a few busy chats
        never hold up the rest; each chat's messages still go out in the order they were claimed."""
        report = TickReport()
        async with self._lock:  # APScheduler may fire again while a long tick still runs
            grace = await asyncio.to_thread(self.grace)
            self._fresh_budgets()  # asyncio primitives belong to one event loop: this tick's
            running: dict[asyncio.Task[None], Sequence[Claimed]] = {}
            try:
                while True:
                    now = self.clock.now()
                    claimed = await asyncio.to_thread(
                        claim_due,
                        engine=self.engine,
                        worker=self.worker,
                        now=now,
                        lease=self.lease,
                        grace=grace,
                        limit=self.batch_size,
                        at_most_once=self.at_most_once,
                        sending=[c.id for rows in running.values() for c in rows],
                    )
                    if not claimed:
                        if not running:
                            break
                        # What a dispatch records may queue more (a notice to the office): claim again after it.
                        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                        for t in done:
                            del running[t]
                            t.result()
                        continue
                    report.claimed += len(claimed)
                    report.folded += sum(len(c.folded) for c in claimed)
                    self._unsent += len(claimed)  # counted down by dispatch as each row's message goes out
                    self._down.clear()  # each claim batch tries every platform again
                    task = asyncio.create_task(self.dispatch(claimed, report))
                    running[task] = claimed
                    task.add_done_callback(lambda _t: self._progress.set())
                    while self._unsent > self.batch_size // 2 and not all(t.done() for t in running):
                        self._progress.clear()
                        await self._progress.wait()
                    for t in [t for t in running if t.done()]:
                        del running[t]
                        t.result()  # a dispatch that failed ends the tick as before
            finally:
                if running:
                    await asyncio.gather(*running)
        return report

    async def dispatch(self, claimed: Sequence[Claimed], report: TickReport) -> None:
        from coordbot.scheduling.messages import build_messages

        messages = await asyncio.to_thread(
            build_messages,
            self.engine,
            claimed,
            now=self.clock.now(),
            calendar=self.calendar,
            default_locale=self.locale,
            reply_link=self.reply_link,
        )
        # One budget of concurrent sends per channel: a platform that is down or slow holds its own sends
        # (retrying them) without holding the others'.
        semaphores = self._budgets
        results: list[tuple[Claimed, str, str | None, ChannelError | None]] = []
        unsent = len(claimed)  # of what tick counted up in self._unsent
        # Rows folded into one message (a contact's weekly requests) share an Outbound: send it once.
        batches: dict[int, Batch] = {}
        recorder = _SentRecorder(self)
        for c in claimed:
            if c.id in messages:
                channel_name, outbound = messages[c.id]
                batches.setdefault(id(outbound), (channel_name, outbound, []))[2].append(c)

        async def one(channel_name: str, outbound: Outbound, rows: list[Claimed]) -> None:
            channel = self.channels.get(channel_name)
            async with semaphores[channel_name]:
                ref: str | None = None
                error: ChannelError | None = None
                if channel is None:
                    error = NoChannelError(f"no channel '{channel_name}' is configured")
                else:
                    try:
                        ref = (await self._send(channel, outbound)).ref
                    except ChannelError as exc:
                        error = exc
                    else:
                        recorder.add(rows, channel_name, ref)
                results.extend((c, channel_name, ref, error) for c in rows)
            nonlocal unsent
            unsent -= len(rows)
            self._unsent -= len(rows)
            self._progress.set()

        ordered = _round_robin(batches.values())
        try:
            await asyncio.gather(*(one(*batch) for batch in ordered))
            await recorder.drain()
        finally:
            self._unsent -= unsent  # rows with no message, and those a failure or a cancellation left unsent
            self._progress.set()
        missing = [c for c in claimed if c.id not in messages]
        await asyncio.to_thread(self._record, results, missing, report, recorder.recorded)

    async def _send(self, channel: Channel, outbound: Outbound) -> Delivery:
        """One message, after the previous one to the same address has its outcome: when that one got no
        answer, the channel knows before this one goes out (and waits longer for its answer).

        A platform that just failed every try of a send (refused, 5xx: down) is not tried again for each of
        the other messages of the claim batch: they get the same error at once and are released to back off,
        so an outage costs a probe per channel and batch (every few seconds in a long one), not every
        message's retries."""
        down = self._down.get(channel.name)
        if down is not None and time.monotonic() - down[1] < DOWN_PROBE_SECONDS:
            raise TransientChannelError(f"{down[0]} (not tried: the platform failed just before)")
        async with self._addresses.hold((channel.name, outbound.address)):
            try:
                delivery = await send_with_retry(channel, outbound, tries=self.send_tries)
            except ChannelError as exc:
                if not exc.permanent and not exc.maybe_delivered and exc.retry_after is None:
                    self._down[channel.name] = (str(exc), time.monotonic())
                raise
        self._down.pop(channel.name, None)
        return delivery

    def _mark_sent(self, batch: list[tuple[list[Claimed], str, str | None]]) -> None:
        """Record sends that returned: the rows (still claimed by this worker) sent, with their events."""
        now = self.clock.now()
        table = ReminderOccurrence.__table__  # type: ignore[attr-defined]
        with session_scope(self.engine) as session:
            session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("oid"), table.c.claimed_by == self.worker)
                .values(
                    status=OccurrenceStatus.SENT,
                    sent_at=now,
                    channel=bindparam("ch"),
                    message_ref=bindparam("ref"),
                    error="",
                    lease_until=None,
                ),
                [{"oid": c.id, "ch": ch, "ref": ref} for rows, ch, ref in batch for c in rows],
            )
            events.record_many(  # one executemany, not an ORM object and flush per reminder
                session,
                EventType.REMINDER_SENT,
                (
                    {"task_id": c.task_id, "contact_id": c.contact_id, "occurrence": c.id, "kind": c.kind, "ref": ref}
                    for rows, _ch, ref in batch
                    for c in rows
                ),
                at=now,
            )

    def _fall_back(self, session: Session, c: Claimed, channel_name: str, exc: ChannelError, now: datetime) -> bool:
        """Send a reminder that gave up on one channel once more on the contact's next address; whether it did.

        Once only: an occurrence already on a fallback route fails as before. An address the platform says can
        never receive is marked so, and later reminders start from the next address.
        """
        occ = session.get(ReminderOccurrence, c.id)
        contact = session.get(Contact, c.contact_id)
        if occ is None or contact is None or occ.route or occ.claimed_by != self.worker:
            return False
        options = reachable_routes(session=session, contacts=[contact])[row_id(contact)]
        following = next((r for r in options if r.channel != channel_name), None)
        if following is None:
            return False
        if exc.permanent and getattr(exc, "address_problem", False):
            mark_unreachable(session=session, contact=contact, channel=channel_name)
        occ.route, occ.channel, occ.status = 1, following.channel, OccurrenceStatus.PENDING
        occ.attempts, occ.lease_until, occ.claimed_by = 0, None, None
        occ.error = f"{channel_name} gave up ({exc}); sent on {following.channel}"[:500]
        events.record(
            session,
            EventType.REMINDER_FALLBACK,
            at=now,
            task_id=c.task_id,
            contact_id=c.contact_id,
            occurrence=c.id,
            kind=c.kind,
            from_channel=channel_name,
            to_channel=following.channel,
            error=str(exc)[:200],
        )
        return True

    def _record(
        self,
        results: list[tuple[Claimed, str, str | None, ChannelError | None]],
        missing: list[Claimed],
        report: TickReport,
        recorded: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """The outcome of a dispatch: sends not yet recorded as they returned, then failures and releases."""
        now = self.clock.now()
        delivered = [(c, channel_name, ref) for c, channel_name, ref, exc in results if exc is None]
        late: dict[tuple[str, str | None], list[Claimed]] = defaultdict(list)
        for c, ch, ref in delivered:
            metrics.reminder(ch, "sent")
            if c.id not in recorded:
                late[(ch, ref)].append(c)
        if late:  # before the session below: on SQLite a second writer would wait for it
            self._mark_sent([(rows, ch, ref) for (ch, ref), rows in late.items()])
        report.sent += len(delivered)
        with session_scope(self.engine) as session:
            lost_track: list[Claimed] = []  # at-most-once: sends that may have been delivered, never repeated
            for c, channel_name, _, exc in results:
                metrics.reminder(channel_name, "due")
                if exc is None:
                    continue
                mine = and_(col(ReminderOccurrence.id) == c.id, col(ReminderOccurrence.claimed_by) == self.worker)
                # A platform that is down fails nothing: the row is tried again until its grace window ends
                # and it is folded into a catch-up. After some ticks a contact's other address is tried.
                if (exc.permanent or c.attempts >= MAX_ATTEMPTS) and self._fall_back(
                    session, c, channel_name, exc, now
                ):
                    report.fallbacks += 1
                    continue
                permanent = exc.permanent or (exc.maybe_delivered and self.at_most_once)
                status = OccurrenceStatus.FAILED if permanent else OccurrenceStatus.PENDING
                error = (UNCONFIRMED if exc.maybe_delivered else "") + str(exc)
                session.execute(
                    update(ReminderOccurrence)
                    .where(mine)
                    .values(
                        status=status,
                        channel=channel_name,
                        error=error[:500],
                        # released: back off before the next try (doubling per attempt, or as asked)
                        lease_until=None if permanent else now + _backoff(c.attempts, exc),
                        claimed_by=None if not permanent else self.worker,
                    )
                )
                if exc.maybe_delivered:
                    report.unconfirmed += 1
                    metrics.reminder(channel_name, "unconfirmed")
                    if permanent:
                        lost_track.append(c)
                if not permanent:
                    report.released += 1
                    metrics.reminder(channel_name, "retried")
                    continue
                report.failed += 1
                metrics.reminder(channel_name, "failed")
                report.errors.append(str(exc))
                events.record(
                    session,
                    EventType.REMINDER_FAILED,
                    at=now,
                    task_id=c.task_id,
                    contact_id=c.contact_id,
                    occurrence=c.id,
                    kind=c.kind,
                    error=str(exc)[:500],
                    permanent=exc.permanent,
                )
                contact = session.get(Contact, c.contact_id)
                blame_address = exc.permanent and getattr(exc, "address_problem", False)
                if (
                    blame_address
                    and contact is not None
                    and contact.role != Role.OFFICE
                    and _still_reachable_on(session, contact, channel_name)
                    and not mark_unreachable(session=session, contact=contact, channel=channel_name)
                ):
                    session.execute(  # no point queueing more for a contact no address of whom can receive
                        update(ReminderOccurrence)
                        .where(
                            col(ReminderOccurrence.contact_id) == contact.id,
                            col(ReminderOccurrence.status) == OccurrenceStatus.PENDING,
                        )
                        .values(status=OccurrenceStatus.CANCELLED, error="contact unreachable")
                    )
                    events.record(
                        session,
                        EventType.CONTACT_UNREACHABLE,
                        at=now,
                        contact_id=contact.id,
                        department_id=contact.department_id,
                        error=str(exc)[:200],
                    )
                    notify_office(
                        session=session,
                        now=now,
                        body=f"无法向{contact.name}发送提醒（{exc}）。请核实联络员绑定。 / "
                        f"Cannot deliver to {contact.name} ({exc}); please check the contact's binding.",
                        task_id=c.task_id,
                    )
            if lost_track:  # one notice for the lot, as for claims whose process died
                notify_office(
                    session=session,
                    now=now,
                    body=f"{len(lost_track)}条提醒可能未送达（平台未应答，按“至多一次”策略不再重发）。请用 coordbot "
                    f"reminders list --status failed 核对。 / {len(lost_track)} reminder(s) may not have been "
                    "delivered: the platform did not answer and, delivery being at-most-once, they are not sent again.",
                )
            for c in missing:  # contact gone, or the task was done or archived after the row was made
                session.execute(
                    update(ReminderOccurrence)
                    .where(col(ReminderOccurrence.id) == c.id)
                    .values(status=OccurrenceStatus.CANCELLED, error="not sent: task done or archived, or contact gone")
                )
