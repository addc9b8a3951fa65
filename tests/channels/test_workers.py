"""The conversation in a worker process (the default outside the tests): the same answers, the caller's
clock, events reaching this process's subscribers, and a worker that dies replaced."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.telegram import TelegramFrontend
from coordbot.core import events
from coordbot.core.clock import FakeClock
from coordbot.core.config import ConfigError, Settings, load_settings
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import ProgressReport
from coordbot.replies.conversation import Conversation
from coordbot.replies.models import InboundMessage
from coordbot.runtime import Runtime, make_runtime
from coordbot.runtime.workers import OnDemandRunner, ProcessRunner, ThreadRunner, WorkerConfig, make_runner

from .conftest import HOLIDAYS, OFFICE, WANG, BoundFactory, buttons, task_row


@pytest.fixture
def runtime(
    make_settings: Callable[..., Settings], engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan
) -> Runtime:
    # the workers from the start (handler_idle_seconds=0); on demand: test_workers_start_on_a_burst_*
    return make_runtime(make_settings(handler_processes=1, handler_idle_seconds=0), engine, clock=clock)


@pytest.fixture
def committed() -> Iterator[list[events.Event]]:
    """Every event this process's subscribers are told of."""
    seen: list[events.Event] = []
    unsubscribe = events.subscribe("*", seen.append)
    yield seen
    unsubscribe()


def _worker_pids(runtime: Runtime) -> list[int]:
    runner = runtime.runner
    assert isinstance(runner, ProcessRunner) and runner._pool is not None
    return [p.pid for p in runner._pool._processes.values()]  # type: ignore[union-attr]


async def test_a_report_goes_through_the_worker_with_the_callers_clock(
    frontend: TelegramFrontend,
    runtime: Runtime,
    bound: BoundFactory,
    engine: Engine,
    clock: FakeClock,
    committed: list[events.Event],
) -> None:
    assert isinstance(runtime.runner, ProcessRunner)
    assert all(pid != os.getpid() for pid in _worker_pids(runtime))
    wang = await bound(WANG, "amr")
    clock.advance(timedelta(hours=3))
    answer = await wang.say("/report 2.1 本周开展双随机检查2项")
    assert "已记录：任务2.1" in answer["text"] and "今年2/10" in answer["text"]
    with Session(engine) as s:
        [report] = s.exec(select(ProgressReport)).all()
        inbound = s.exec(select(InboundMessage).where(InboundMessage.text.startswith("/report"))).one()  # type: ignore[attr-defined]
    assert buttons(answer) == [("↩️ 撤销", f"undo:p{report.id}")]
    # Stamped by this process's (fake) clock, not the worker's system clock.
    assert report.received_at == clock.now() and inbound.received_at == clock.now()
    assert task_row(engine, "2.1").last_report_at == clock.now()
    # The events the worker committed reached this process's subscribers, as after a commit here.
    kinds = [ev.type for ev in committed]
    assert "contact.bound" in kinds and "progress.reported" in kinds
    [reported] = [ev for ev in committed if ev.type == "progress.reported"]
    assert reported.payload["report"] == report.id and reported.payload["quantities"] == [
        ["special_actions", 2.0, "increment"]
    ]
    assert reported.at == clock.now() and reported.task_id == task_row(engine, "2.1").id


async def test_office_digest_is_built_in_the_worker(
    frontend: TelegramFrontend, bound: BoundFactory, clock: FakeClock
) -> None:
    wang = await bound(WANG, "amr")
    await wang.say("/report 2.1 本周开展双随机检查2项")
    office = await bound(OFFICE, "amr", role="office")
    clock.advance(timedelta(minutes=5))  # the digest counts what came before its own time
    text = (await office.say("/digest"))["text"]
    # The week of the fake clock (2026-03-02 is in W10), and this week's one report counted.
    assert text.startswith("📋 ") and "工作周报 2026-W10" in text, text
    assert "本周报送 1 条，涉及 1 项任务" in text, text


async def test_a_worker_that_dies_is_replaced_and_the_next_update_answered(
    frontend: TelegramFrontend, runtime: Runtime, bound: BoundFactory, engine: Engine
) -> None:
    wang = await bound(WANG, "amr")
    [pid] = _worker_pids(runtime)
    os.kill(pid, signal.SIGKILL)
    answer = await wang.say("/report 2.1 本周开展双随机检查1项")
    assert "已记录：任务2.1" in answer["text"]
    assert _worker_pids(runtime) != [pid]
    with Session(engine) as s:
        assert len(s.exec(select(ProgressReport)).all()) == 1  # once, not twice


def _config(url: str) -> WorkerConfig:
    return WorkerConfig(database_url=url, holidays_dir=HOLIDAYS, timezone="Asia/Shanghai", locale="zh")


def test_a_thread_when_asked_or_when_the_database_cannot_be_shared(engine: Engine) -> None:
    conversation = Conversation(engine=engine, calendar=None)  # type: ignore[arg-type]
    assert isinstance(
        make_runner(conversation=conversation, config=_config("sqlite:///x.db"), processes=0), ThreadRunner
    )
    for url in ("sqlite://", "sqlite:///:memory:"):
        assert isinstance(make_runner(conversation=conversation, config=_config(url), processes=2), ThreadRunner)
    runner = make_runner(conversation=conversation, config=_config("sqlite:///x.db"), processes=2)
    assert isinstance(runner, ProcessRunner) and runner.processes == 2
    on_demand = make_runner(conversation=conversation, config=_config("sqlite:///x.db"), processes=2, idle_seconds=9)
    assert isinstance(on_demand, OnDemandRunner) and on_demand.process.processes == 2


def test_handler_processes_setting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "none.yaml"
    env = {"COORDBOT_CONFIG": str(missing)}
    assert load_settings(env=env).handler_processes == 1
    assert load_settings(env={**env, "COORDBOT_HANDLER_PROCESSES": "0"}).handler_processes == 0
    with pytest.raises(ConfigError, match="handler_processes"):
        load_settings(env={**env, "COORDBOT_HANDLER_PROCESSES": "-1"})
    with pytest.raises(ConfigError, match=r"handler_processes.*expects int"):
        load_settings(env={**env, "COORDBOT_HANDLER_PROCESSES": "two"})


async def test_a_worker_logs_at_the_main_process_level(engine: Engine, capfd: pytest.CaptureFixture[str]) -> None:
    """`coordbot -v run`: the INFO lines written in a worker reach the log, as those of the main process do."""
    from coordbot.channels.base import Inbound
    from coordbot.core.clock import SystemClock

    url = engine.url.render_as_string(hide_password=False)
    start = Inbound(
        channel="telegram",
        external_id="u-1",
        chat_id="77",
        sender_id="77",
        kind="command",
        command="start",
        start_code="NOT-A-CODE",
    )
    for level, shown in ((logging.WARNING, False), (logging.INFO, True)):
        runner = ProcessRunner(
            WorkerConfig(
                database_url=url, holidays_dir=HOLIDAYS, timezone="Asia/Shanghai", locale="zh", log_level=level
            ),
            1,
        )
        try:
            reply = await runner.handle(dataclasses.replace(start, external_id=f"u-{level}"), now=SystemClock().now())
        finally:
            await runner.close()
        assert reply is not None and reply.text
        assert ("binding refused" in capfd.readouterr().err) is shown, logging.getLevelName(level)


def test_the_workers_take_the_main_process_log_level(runtime: Runtime) -> None:
    root = logging.getLogger()
    before = root.level
    try:
        for level in (logging.INFO, logging.WARNING):
            root.setLevel(level)
            assert runtime.conversation_config().log_level == level
    finally:
        root.setLevel(before)
