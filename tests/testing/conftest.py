"""Fixtures for the fake Bot API tests: a running server whose every answer is checked against the spec."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import Bot

from coordbot.testing.fake_telegram import FakeBotAPI

from .botapi_spec import BotApiSpec, load_spec

TOKEN = "123456:TEST-token_abc"
ZHANG = 1001  # zh-hans user
ALICE = 1002  # en user
GROUP = -1001234567890  # supergroup


class SpecRecorder:
    """A response hook validating every answer; violations are asserted when the test ends."""

    def __init__(self, spec: BotApiSpec) -> None:
        self.spec = spec
        self.violations: list[str] = []
        self.validated: set[str] = set()  # methods whose successful result passed validation

    def __call__(self, method: str, params: dict[str, Any], status: int, body: dict[str, Any]) -> None:
        if body.get("ok") and not self.spec.has_method(method):
            self.violations.append(f"{method}: served but not in the spec")
            return
        errors = self.spec.validate_response(method, body)
        self.violations += [f"{method}: {e}" for e in errors]
        if body.get("ok") and not errors:
            self.validated.add(method)


@pytest.fixture(scope="session")
def spec() -> BotApiSpec:
    return load_spec()


@pytest.fixture
def recorder(spec: BotApiSpec) -> SpecRecorder:
    return SpecRecorder(spec)


@pytest.fixture
async def server(recorder: SpecRecorder) -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN, bot_username="coordbot_test_bot") as srv:
        srv.response_hooks.append(recorder)
        srv.add_user(ZHANG, "张三", username="zhangsan", language_code="zh-hans")
        srv.add_user(ALICE, "Alice", last_name="Liddell", language_code="en")
        srv.add_group(GROUP, "工作计划协调群")
        yield srv
    assert not recorder.violations, "answers violating the Bot API spec:\n" + "\n".join(recorder.violations)


@pytest.fixture
async def bot(server: FakeBotAPI) -> AsyncIterator[Bot]:
    async with Bot(server.token, base_url=server.base_url, base_file_url=server.base_file_url) as b:
        yield b
