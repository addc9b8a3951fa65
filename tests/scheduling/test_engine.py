"""The reminder engine on a controllable clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.base import Delivery, MemoryChannel, Outbound, PermanentChannelError, TransientChannelError
from coordbot.core.db import session_scope
from coordbot.core.events import Event
from coordbot.plan import actions
from coordbot.plan.models import Contact, Extension, Task, TaskStatus
from coordbot.scheduling.engine import claim_due
from coordbot.scheduling.escalation import review_tasks
from coordbot.scheduling.models import ReminderOccurrence

from .conftest import at, rows


def _task(engine: Engine, code: str) -> Task:
    return rows(engine, Task, Task.code == code)[0]


def _extend(engine: Engine, code: str, new_due: date, now) -> None:
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == code)).one()
        ext = actions.request_extension(
            session=s, task=task, new_due=new_due, reason="需要更多时间", contact=None, now=now
        )
        actions.decide_extension(session=s, extension=ext, approve=True, decided_by="office", now=now)


def _statuses(engine: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    for occ in rows(engine, ReminderOccurrence):
        out[occ.status] = out.get(occ.status, 0) + 1
    return out


async def test_sync_is_idempotent_and_sends_each_due_reminder_once(engine, bind, make_engine, clock, channel) -> None:
    bind("amr", address="1001")
    eng = make_engine()
    first = eng.sync()
    assert first.created > 0
    assert eng.sync().created == 0
    assert len(rows(engine, ReminderOccurrence)) == first.created

    clock.set(at(2026, 3, 2, 9, 29))
    assert (await eng.tick()).sent == 0  # Monday's 09:30 requests are not due yet
    clock.set(at(2026, 3, 2, 9, 31))
    report = await eng.tick()
    # amr leads 2.1 (recurring) and 2.2 (metric): one weekly request each, Monday 09:30.
    assert report.sent == 2
    assert sorted(m.text.splitlines()[0] for m in channel.sent) == [
        "<b>任务2.1 加大行政保护力度</b>",
        "<b>任务2.2 试点示范单位</b>",
    ]
    msg = next(m for m in channel.sent if "2.1" in m.text)
    assert "专项行动和双随机检查：今年 0/10 项" in msg.text
    assert msg.ask_reply and [b.action for row in msg.buttons for b in row] == [
        "done",
        "on_track",
        "at_risk",
        "blocked",
        "report",
    ]
    assert all(len(f"r:{b.ref}:{b.action}".encode()) <= 64 for row in msg.buttons for b in row)
    assert (await eng.tick()).sent == 0  # nothing twice
    sent = rows(engine, ReminderOccurrence, ReminderOccurrence.status == "sent")
    assert len(sent) == 2 and all(o.message_ref and o.sent_at == clock.now() for o in sent)
    assert len(rows(engine, Event, Event.type == "reminder.sent")) == 2


async def test_moving_a_deadline_reschedules_and_completion_cancels(engine, bind, make_engine, clock) -> None:
    bind("amr", address="1001")
    eng = make_engine()
    _extend(engine, "1.1", date(2026, 3, 20), clock.now())
    eng.sync()
    t11 = _task(engine, "1.1")
    pending = rows(engine, ReminderOccurrence, ReminderOccurrence.task_id == t11.id)
    # 10 and 5 working days before Fri 2026-03-20, at 09:30 (March 2026 has no holidays).
    assert sorted((o.kind, o.fire_at) for o in pending) == [
        ("before_due", at(2026, 3, 6, 9, 30)),
        ("before_due", at(2026, 3, 13, 9, 30)),
    ]
    assert (t11.original_due_date, t11.due_date) == (date(2024, 12, 31), date(2026, 3, 20))

    _extend(engine, "1.1", date(2026, 4, 30), clock.now())
    report = eng.sync()
    assert report.cancelled == 2
    assert {o.status for o in rows(engine, ReminderOccurrence, ReminderOccurrence.task_id == t11.id)} == {"cancelled"}

    t21 = _task(engine, "2.1")
    with session_scope(engine) as s:
        s.get(Task, t21.id).status = TaskStatus.REPORTED_DONE
    eng.sync()
    assert {o.status for o in rows(engine, ReminderOccurrence, ReminderOccurrence.task_id == t21.id)} == {"cancelled"}


async def test_catch_up_after_three_days_down_folds_per_contact(engine, bind, make_engine, clock, channel) -> None:
    bind("amr", address="1001")
    bind("amr", address="1002")
    _extend(engine, "1.1", date(2026, 3, 19), clock.now())  # 10 working days before: Thu 03-05 09:30
    eng = make_engine()
    eng.sync()  # Monday 09:00, then the bot is down until Thursday 10:00
    clock.set(at(2026, 3, 5, 10, 0))
    report = await eng.tick()

    by_address: dict[str, list[Outbound]] = {}
    for m in channel.sent:
        by_address.setdefault(m.address, []).append(m)
    assert sorted(by_address) == ["1001", "1002"]
    for messages in by_address.values():
        catch_up = [m for m in messages if "机器人离线期间" in m.text]
        assert len(catch_up) == 1  # Monday's two requests, folded into one message
        assert "任务2.1" in catch_up[0].text and "任务2.2" in catch_up[0].text
        assert "2条提醒" in catch_up[0].text
        within_grace = [m for m in messages if "距完成期限还有10个工作日" in m.text]
        assert len(within_grace) == 1  # this morning's reminder is still sent as itself
        assert len(messages) == 2
    assert report.folded == 4
    folded = rows(engine, ReminderOccurrence, ReminderOccurrence.folded_into_id.is_not(None))  # type: ignore[union-attr]
    assert len(folded) == 4 and {o.status for o in folded} == {"cancelled"}
    assert len(rows(engine, Event, Event.type == "reminder.folded")) == 2


@pytest.mark.parametrize("at_most_once", [False, True])
async def test_claim_of_a_dead_worker_is_taken_over_by_policy(
    engine, bind, make_engine, clock, channel, at_most_once
) -> None:
    bind("amr", address="1001")
    bind("amr", role="office", address="9000")
    eng = make_engine(at_most_once=at_most_once, lease=timedelta(minutes=5))
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    dead = claim_due(
        engine=engine, worker="dead-worker", now=clock.now(), lease=timedelta(minutes=5), grace=timedelta(hours=24)
    )
    assert len(dead) == 2  # claimed, then the process died before sending

    clock.set(at(2026, 3, 2, 9, 33))
    assert (await eng.tick()).sent == 0  # still leased to the dead worker
    clock.set(at(2026, 3, 2, 9, 37))
    await eng.tick()
    task_rows = [o for o in rows(engine, ReminderOccurrence) if o.kind == "periodic" and o.fire_at <= clock.now()]
    if at_most_once:
        assert {o.status for o in task_rows} == {"failed"}
        assert [m.address for m in channel.sent] == ["9000"]  # the office is told once, nobody gets it twice
        assert "2条提醒可能未送达" in channel.sent[0].text
    else:
        assert {o.status for o in task_rows} == {"sent"}
        assert sorted(m.address for m in channel.sent) == ["1001", "1001"]
        assert len(rows(engine, Event, Event.type == "reminder.lease_expired")) == 2


class ScriptedChannel(MemoryChannel):
    """Fails as told per address, then delivers."""

    def __init__(self, script: dict[str, list[Exception]]) -> None:
        super().__init__("telegram")
        self.script = script
        self.calls = 0

    async def send(self, message: Outbound) -> Delivery:
        self.calls += 1
        failures = self.script.get(message.address)
        if failures:
            raise failures.pop(0)
        return await super().send(message)


async def test_transient_errors_retry_and_permanent_ones_do_not(engine, bind, make_engine, clock) -> None:
    ok = bind("amr", address="ok")
    blocked = bind("amr", address="blocked")
    bind("finance", role="office", address="office")
    channel = ScriptedChannel(
        {
            "ok": [TransientChannelError("flood", retry_after=0.01), TransientChannelError("502")],
            "blocked": [PermanentChannelError("Forbidden: bot was blocked by the user") for _ in range(2)],
        }
    )
    eng = make_engine(channels={"telegram": channel}, send_tries=3)
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    report = await eng.tick()
    assert report.failed == 2  # both of the blocked contact's reminders, each tried once
    by_contact = {
        c: [o for o in rows(engine, ReminderOccurrence, ReminderOccurrence.contact_id == c)] for c in (ok, blocked)
    }
    assert {o.status for o in by_contact[ok]} >= {"sent"}
    assert sorted(o.status for o in by_contact[blocked] if o.fire_at <= clock.now()) == ["failed", "failed"]
    assert {o.status for o in by_contact[blocked] if o.fire_at > clock.now()} == {"cancelled"}
    with Session(engine) as s:
        assert s.get(Contact, blocked).unreachable
        assert not s.get(Contact, ok).unreachable
    office_msgs = [m for m in channel.sent if m.address == "office"]
    assert office_msgs and "bot was blocked" in office_msgs[0].text
    assert len(rows(engine, Event, Event.type == "contact.unreachable")) == 1
    # An unreachable contact gets no new reminders until re-bound.
    clock.set(at(2026, 3, 9, 9, 0))
    eng.sync()
    assert not [
        o for o in rows(engine, ReminderOccurrence, ReminderOccurrence.contact_id == blocked) if o.status == "pending"
    ]


async def test_transient_failures_back_off_never_fail_and_are_folded_after_the_grace(
    engine, bind, make_engine, clock
) -> None:
    """A platform that is down (issue 17, item 2): retried with a back-off doubling from a minute, never failed;
    once past the grace window the reminders become the contact's one catch-up, sent when the platform is back."""
    bind("amr", address="flaky")
    channel = ScriptedChannel({"flaky": [TransientChannelError("502 Bad Gateway") for _ in range(100)]})
    eng = make_engine(channels={"telegram": channel}, send_tries=1)
    eng.sync()
    tries = []
    # due 09:30; tried at 09:31, then 1, 2, 4, 8 and 10 (not 16: the back-off caps at ten) minutes later
    for when in ("09:31", "09:31:30", "09:32", "09:33", "09:34", "09:37", "09:38", "09:45", "09:46", "09:55", "09:56"):
        hh, mm, *ss = (int(x) for x in when.split(":"))
        clock.set(at(2026, 3, 2, hh, mm, *(ss or [0])))
        report = await eng.tick()
        assert report.failed == 0 and report.sent == 0
        tries.append(report.claimed)
    assert tries == [2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2]
    pending = [o for o in rows(engine, ReminderOccurrence) if o.fire_at <= clock.now()]
    assert {o.status for o in pending} == {"pending"} and all("502" in o.error for o in pending)

    clock.set(at(2026, 3, 3, 10, 0))  # a day on: past the 24 h grace, and the platform still down
    down = await eng.tick()
    assert (down.folded, down.failed, down.sent) == (2, 0, 0)
    channel.script.clear()  # back
    clock.advance(timedelta(minutes=2))
    back = await eng.tick()
    assert (back.sent, back.failed) == (1, 0)
    [catch_up] = channel.sent
    assert "机器人离线期间" in catch_up.text and "2条提醒" in catch_up.text
    assert _statuses(engine).get("failed", 0) == 0


async def test_silence_escalates_to_leader_then_office_and_red_escalates(
    engine, bind, make_engine, clock, calendar, channel
) -> None:
    bind("amr", address="contact")
    bind("amr", role="leader", address="leader")
    bind("finance", role="office", address="office")
    eng = make_engine()
    eng.sync()  # Monday 09:00, before the first weekly request
    mondays = [at(2026, 3, 2, 9, 31) + timedelta(weeks=w) for w in range(4)]
    levels = []
    for monday in mondays:
        clock.set(monday)
        eng.sync()
        await eng.tick()
        with session_scope(engine) as s:
            review_tasks(session=s, calendar=calendar, now=clock.now())
        await eng.tick()
        levels.append(_task(engine, "2.1").escalation_level)
    assert levels == [0, 1, 1, 2]  # two silent weeks: the leader; four: the office
    leader = [m.text for m in channel.sent if m.address == "leader"]
    office = [m.text for m in channel.sent if m.address == "office"]
    assert any("【督办】" in t and "任务2.1" in t and "已连续2次提醒未报送" in t for t in leader)
    assert any("任务2.1" in t and "联席会议办公室协调" in t for t in office)
    escalations = rows(engine, Event, Event.type == "task.escalated")
    assert sorted(
        (e.payload["level"], e.payload["reason"]) for e in escalations if e.task_id == _task(engine, "2.1").id
    ) == [
        (1, "unanswered"),
        (2, "unanswered"),
    ]
    # Task 1.1 (due 2024-12-31) is overdue: red, with task.overdue, and escalated at once.
    t11 = _task(engine, "1.1")
    assert (t11.colour, t11.colour_reason) == ("red", "overdue")
    assert rows(engine, Event, Event.type == "task.overdue", Event.task_id == t11.id)
    assert any("任务1.1" in t and "已逾期" in t for t in leader)


def test_extension_keeps_both_dates_and_needs_the_office(engine, loaded_plan, clock) -> None:
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "1.1")).one()
        with pytest.raises(actions.ActionError, match="must be later"):
            actions.request_extension(session=s, task=task, new_due=date(2024, 6, 1), reason="x", contact=None)
        ext = actions.request_extension(
            session=s, task=task, new_due=date(2025, 6, 30), reason="资金未到位", contact=None, now=clock.now()
        )
        assert task.status == "extension_requested" and task.due_date == date(2024, 12, 31)
        with pytest.raises(actions.ActionError, match="already waiting"):
            actions.request_extension(session=s, task=task, new_due=date(2025, 7, 30), reason="y", contact=None)
        actions.decide_extension(session=s, extension=ext, approve=True, decided_by="office", now=clock.now())
        with pytest.raises(actions.ActionError, match="already approved"):
            actions.decide_extension(session=s, extension=ext, approve=False, decided_by="office")
    t = _task(engine, "1.1")
    assert (t.original_due_date, t.due_date, t.status) == (date(2024, 12, 31), date(2025, 6, 30), "in_progress")
    assert rows(engine, Extension)[0].status == "approved"
    types = [e.type for e in sorted(rows(engine, Event, Event.task_id == t.id), key=lambda e: e.id)]
    assert types[-2:] == ["extension.requested", "extension.approved"]


async def test_a_contacts_weekly_requests_go_out_as_one_message(
    engine, minimal_plan_path, bind, make_engine, clock, channel, calendar
) -> None:
    from coordbot.channels.base import Inbound
    from coordbot.plan import service
    from coordbot.plan.loader import parse_plan_text
    from coordbot.plan.models import ProgressReport
    from coordbot.replies.conversation import Conversation

    # Make amr lead three recurring/metric tasks (1.2, 2.1, 2.2).
    text = minimal_plan_path.read_text(encoding="utf-8").replace("lead: sci", "lead: amr")
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=parse_plan_text(text, "three.yaml"))
    bind("amr", address="1001")
    eng = make_engine()
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    report = await eng.tick()
    assert report.sent == 3
    [message] = channel.sent  # one message, not three
    assert "请报送本周进展</b>（3项任务）" in message.text
    assert [b.label for row in message.buttons for b in row] == ["✍️ 1.2", "✍️ 2.1", "✍️ 2.2"]
    refs = {o.message_ref for o in rows(engine, ReminderOccurrence, ReminderOccurrence.status == "sent")}
    assert len(refs) == 1  # every row records the one delivery

    conv = Conversation(engine=engine, calendar=calendar, clock=clock)
    [ref] = refs

    def reply(uid: str, text: str):
        return conv.handle(
            Inbound(
                channel="telegram",
                external_id=uid,
                chat_id="1001",
                sender_id="1001",
                text=text,
                reply_to_ref=ref,
                message_ref=f"1001:{uid}",
            )
        )

    answer = reply("u1", "2.2 本月新增试点示范单位5家")
    assert "已记录：任务2.2" in answer.text
    asked = reply("u2", "本周开展双随机检查2项")  # no code: which of the three?
    assert "哪项任务" in asked.text
    assert [b.ref.split(":")[1] for row in asked.buttons for b in row] == ["1.2", "2.1", "2.2"]
    picked = conv.handle(
        Inbound(
            channel="telegram",
            external_id="u3",
            chat_id="1001",
            sender_id="1001",
            kind="callback",
            callback_action="pick",
            callback_ref=asked.buttons[1][0].ref,
        )
    )
    assert "已记录：任务2.1" in picked.text and "+2" in picked.text
    reports = rows(engine, ProgressReport)
    assert sorted(_task_code(engine, r.task_id) for r in reports) == ["2.1", "2.2"]


def _task_code(engine: Engine, task_id: int) -> str:
    with Session(engine) as s:
        return s.get(Task, task_id).code


@pytest.mark.parametrize("at_most_once", [False, True])
async def test_a_send_that_may_have_been_delivered_is_not_retried_at_once(
    engine, bind, make_engine, clock, at_most_once
) -> None:
    """No answer after the request went out (a read timeout): sent again at once it would arrive twice. Released
    to back off (at-least-once: its retry is the one possible copy) or failed with the office told (at-most-once)."""
    bind("amr", address="slow")
    bind("finance", role="office", address="office")
    maybe = TransientChannelError("Telegram: no answer in time", maybe_delivered=True)
    channel = ScriptedChannel({"slow": [maybe, maybe]})
    eng = make_engine(channels={"telegram": channel}, send_tries=4, at_most_once=at_most_once)
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    report = await eng.tick()
    assert report.unconfirmed == 2 and channel.calls == 2 + len(channel.sent)  # each tried once, not four times
    rows_ = [
        o
        for o in rows(engine, ReminderOccurrence)
        if o.contact_id and o.fire_at <= clock.now() and o.kind == "periodic"
    ]
    assert all(o.error.startswith("unconfirmed: ") for o in rows_)
    if at_most_once:
        assert {o.status for o in rows_} == {"failed"} and report.failed == 2
        [notice] = [m for m in channel.sent if m.address == "office"]
        assert "2条提醒可能未送达" in notice.text
    else:
        assert {o.status for o in rows_} == {"pending"} and report.released == 2
        clock.advance(timedelta(minutes=2))
        assert (await eng.tick()).sent == 2
        assert [m.address for m in channel.sent] == ["slow", "slow"]


async def test_each_send_is_recorded_as_it_returns_not_at_the_end_of_the_batch(
    engine, bind, make_engine, clock
) -> None:
    """Issue 17, item 4: a process killed mid-batch doubles, after its lease, what it sent and had not recorded.
    While one send still hangs, the others of the same claim batch are already recorded sent."""
    import asyncio

    release = asyncio.Event()

    class OneHangs(MemoryChannel):
        async def send(self, message: Outbound) -> Delivery:
            if message.address == "hangs":
                await release.wait()
            return await super().send(message)

    for address in ("hangs", "a", "b", "c"):
        bind("amr", address=address)
    eng = make_engine(channels={"telegram": OneHangs("telegram")})
    eng.sync()
    clock.set(at(2026, 3, 2, 9, 31))
    tick = asyncio.create_task(eng.tick())
    with Session(engine) as s:
        hangs = s.exec(select(Contact.id).where(Contact.address == "hangs")).one()

    def statuses() -> dict[str, set[str]]:
        due = [o for o in rows(engine, ReminderOccurrence) if o.fire_at <= clock.now()]
        return {
            "others": {o.status for o in due if o.contact_id != hangs},
            "hanging": {o.status for o in due if o.contact_id == hangs},
        }

    for _ in range(200):
        if statuses()["others"] == {"sent"}:
            break
        await asyncio.sleep(0.02)
    assert statuses() == {"others": {"sent"}, "hanging": {"claimed"}}  # recorded while the batch is in flight
    release.set()
    report = await tick
    assert report.sent == 8 and statuses() == {"others": {"sent"}, "hanging": {"sent"}}
    assert len(rows(engine, Event, Event.type == "reminder.sent")) == 8  # one event each, not two
