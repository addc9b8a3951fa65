"""The conversation's workers on demand (the default): none while idle, started when updates overlap (the
thread answers meanwhile), stopped after ``handler_idle_seconds`` without updates."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from coordbot.channels.telegram import TelegramFrontend
from coordbot.core.clock import FakeClock
from coordbot.core.config import Settings
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import ProgressReport
from coordbot.runtime import Runtime, make_runtime
from coordbot.runtime.workers import OnDemandRunner

from .conftest import WANG, ZHAO, BoundFactory


@pytest.fixture
def runtime(
    make_settings: Callable[..., Settings], engine: Engine, clock: FakeClock, loaded_plan: LoadedPlan
) -> Runtime:
    return make_runtime(make_settings(handler_processes=1, handler_idle_seconds=1.0), engine, clock=clock)


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


async def test_workers_start_on_a_burst_and_stop_when_idle(
    frontend: TelegramFrontend, runtime: Runtime, bound: BoundFactory, engine: Engine
) -> None:
    runner = runtime.runner
    assert isinstance(runner, OnDemandRunner)
    wang, zhao = await bound(WANG, "amr"), await bound(ZHAO, "sci")
    assert not runner.running and runner.process._pool is None  # one at a time: the thread, no worker
    # two chats at once: the workers start, while the thread answers both
    first, _ = await asyncio.gather(wang.say("/report 2.1 本周开展双随机检查1项"), zhao.say("/whoami"))
    assert "已记录：任务2.1" in first["text"]
    await _until(lambda: runner.running)
    assert runner.running and runner.process._pool is not None
    pids = [p.pid for p in runner.process._pool._processes.values()]  # type: ignore[union-attr]
    assert pids and all(pid != os.getpid() for pid in pids)
    # the workers take the next update, so the reaper does not stop them meanwhile: it is not idle
    assert "已记录：任务2.1" in (await wang.say("/report 2.1 本周开展双随机检查1项"))["text"]
    await _until(lambda: not runner.running)  # idle for handler_idle_seconds: stopped
    assert not runner.running and runner.process._pool is None
    assert "已记录：任务2.1" in (await wang.say("/report 2.1 本周开展双随机检查1项"))["text"]  # the thread
    with Session(engine) as s:
        assert len(s.exec(select(ProgressReport)).all()) == 3
