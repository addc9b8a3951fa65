"""build_messages on its own: what each kind of claimed occurrence becomes, and what is left out."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.core.db import session_scope
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Observation, Target, Task
from coordbot.scheduling.calendar import WorkCalendar
from coordbot.scheduling.messages import BATCH_MIN, build_messages
from coordbot.scheduling.models import Claimed, ReminderKind, ReminderOccurrence
from coordbot.scheduling.outbox import add_occurrence

from .conftest import at

NOW = at(2026, 3, 2, 9, 0)


def _queue(engine: Engine, contact_id: int, kind: ReminderKind, task: str | None, **kw) -> Claimed:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        task_id = s.exec(select(Task.id).where(Task.code == task)).one() if task else None
        fire_at = kw.pop("fire_at", NOW)
        add_occurrence(session=s, contact_id=contact_id, kind=kind, fire_at=fire_at, task_id=task_id, **kw)
        occ = s.exec(select(ReminderOccurrence).order_by(ReminderOccurrence.id.desc())).first()  # type: ignore[union-attr]
        assert occ is not None
        return Claimed(occ.id, occ.kind, occ.contact_id, occ.task_id, occ.fire_at, 1)  # type: ignore[arg-type]


def _build(engine: Engine, calendar: WorkCalendar, *claimed: Claimed):  # type: ignore[no-untyped-def]
    return build_messages(engine, claimed, now=NOW, calendar=calendar)


def test_a_task_reminder_has_its_quotas_and_five_status_buttons(
    engine: Engine, loaded_plan: LoadedPlan, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    wang = bind("amr", address="1001")
    with session_scope(engine) as s:
        target = s.exec(select(Target).where(Target.metric == "special_actions")).one()
        s.add(Observation(target_id=target.id, value=4, observed_on=NOW.date(), recorded_at=NOW))  # type: ignore[arg-type]
        s.add(Observation(target_id=target.id, value=9, observed_on=NOW.date(), recorded_at=NOW, voided=True))  # type: ignore[arg-type]
    c = _queue(engine, wang, ReminderKind.PERIODIC, "2.1")
    [(channel, msg)] = _build(engine, calendar, c).values()
    assert (channel, msg.address, msg.ask_reply) == ("telegram", "1001", True)
    assert "任务2.1" in msg.text and "专项行动和双随机检查：今年 4/10 项" in msg.text
    assert [[(b.action, b.ref) for b in row] for row in msg.buttons] == [
        [("done", f"o{c.id}"), ("on_track", f"o{c.id}")],
        [("at_risk", f"o{c.id}"), ("blocked", f"o{c.id}"), ("report", f"o{c.id}")],
    ]


def test_reminders_of_done_tasks_and_contacts_without_address_are_left_out(
    engine: Engine, loaded_plan: LoadedPlan, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    wang = bind("amr", address="1001")
    gone = bind("amr", address="1002", name="已解绑")
    done = _queue(engine, wang, ReminderKind.PERIODIC, "2.2")
    unbound = _queue(engine, gone, ReminderKind.PERIODIC, "2.1")
    with session_scope(engine) as s:
        s.exec(select(Task).where(Task.code == "2.2")).one().status = "reported_done"
        s.get(Contact, gone).address = None  # type: ignore[union-attr]
    assert _build(engine, calendar, done, unbound) == {}


def test_notices_cross_requests_and_catch_ups(
    engine: Engine, loaded_plan: LoadedPlan, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    zhao = bind("sci", address="1002")
    notice = _queue(engine, zhao, ReminderKind.NOTICE, None, body="周报已生成")
    cross = _queue(engine, zhao, ReminderKind.CROSS_REQUEST, "2.2", body="区市场监管局请求配合", detail="1")
    missed = _queue(engine, zhao, ReminderKind.PERIODIC, "1.2", fire_at=at(2026, 2, 23, 9))
    with session_scope(engine) as s:
        catch_up = ReminderOccurrence(contact_id=zhao, kind=ReminderKind.CATCH_UP, fire_at=NOW, detail="1")
        s.add(catch_up)
        s.flush()
        s.get(ReminderOccurrence, missed.id).folded_into_id = catch_up.id  # type: ignore[union-attr]
        folded = Claimed(catch_up.id, catch_up.kind, zhao, None, NOW, 1, (missed.id,))  # type: ignore[arg-type]
    out = _build(engine, calendar, notice, cross, folded)
    assert "周报已生成" in out[notice.id][1].text and out[notice.id][1].buttons == ()
    assert not out[notice.id][1].ask_reply
    cross_msg = out[cross.id][1]
    assert "区市场监管局请求配合" in cross_msg.text and cross_msg.ask_reply
    assert [b.action for row in cross_msg.buttons for b in row] == ["at_risk", "blocked", "report"]
    assert "1.2" in out[folded.id][1].text


def test_a_contacts_many_progress_requests_go_out_as_one_message(
    engine: Engine, loaded_plan: LoadedPlan, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    wang = bind("amr", address="1001")
    claimed = [_queue(engine, wang, ReminderKind.PERIODIC, code) for code in ("1.1", "2.1", "2.2")]
    assert len(claimed) >= BATCH_MIN
    out = _build(engine, calendar, *claimed)
    [message] = {id(m): m for _, m in out.values()}.values()
    assert set(out) == {c.id for c in claimed}
    assert [(b.action, b.ref) for row in message.buttons for b in row] == [("report", f"o{c.id}") for c in claimed]
    with Session(engine) as s:
        assert all(t.code in message.text for t in s.exec(select(Task).where(Task.code != "1.2")))


def test_a_task_reminder_names_the_responsible_leader_when_the_plan_does(
    engine: Engine, loaded_plan: LoadedPlan, bind: Callable[..., int], calendar: WorkCalendar
) -> None:
    wang = bind("amr", address="1001")
    wang_en = bind("amr", address="1002", language="en")
    with session_scope(engine) as s:
        task = s.exec(select(Task).where(Task.code == "2.1")).one()
        task.responsible_leader = "分管副区长张明"
    zh, en = _queue(engine, wang, ReminderKind.PERIODIC, "2.1"), _queue(engine, wang_en, ReminderKind.PERIODIC, "2.1")
    plain = _queue(engine, wang, ReminderKind.PERIODIC, "2.2")  # no leader named: no line
    messages = _build(engine, calendar, zh, en, plain)
    assert "<b>任务2.1 加大行政保护力度</b>\n责任领导：分管副区长张明\n" in messages[zh.id][1].text
    assert "\nResponsible leader: 分管副区长张明\n" in messages[en.id][1].text
    assert "责任领导" not in messages[plain.id][1].text
