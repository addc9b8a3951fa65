"""Fixtures for the group-robot tests: the fake webhook server with its limits on (windows shortened by
``SCALE``), a robots file pointing at it, and the adapter's senders opened on that file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import yaml

from coordbot.channels.robots import RobotChannel, open_sender
from coordbot.core.config import Settings
from coordbot.testing.fake_robots import FakeRobots

SCALE = 0.01  # a minute lasts 0.6 s, DingTalk's ten minutes 6 s
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "d1e2a3d4b5e6e7f8"
DING_SECRET = "SEC0123456789abcdef"
FEISHU_TOKEN = "0a1b2c3d-feishu-hook"
FEISHU_SECRET = "feishu-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeRobots]:
    async with FakeRobots(time_scale=SCALE) as server:
        server.add_wecom("amr-group", WECOM_KEY)
        server.add_dingtalk("office-group", DING_TOKEN, secret=DING_SECRET)
        server.add_feishu("leaders", FEISHU_TOKEN, secret=FEISHU_SECRET)
        server.add_dingtalk("plain-ding", "unsigned-token")
        server.add_feishu("plain-feishu", "unsigned-hook")
        yield server


def write_robots(path: Path, base_url: str, **overrides: dict[str, str]) -> Path:
    robots: dict[str, dict[str, str]] = {
        "amr-group": {"kind": "wecom_robot", "key": WECOM_KEY},
        "office-group": {"kind": "dingtalk_robot", "access_token": DING_TOKEN, "secret": DING_SECRET},
        "leaders": {"kind": "feishu_robot", "token": FEISHU_TOKEN, "secret": FEISHU_SECRET},
        "plain-ding": {"kind": "dingtalk_robot", "access_token": "unsigned-token"},
        "plain-feishu": {"kind": "feishu_robot", "token": "unsigned-hook"},
    }
    robots.update(overrides)
    for r in robots.values():
        r.setdefault("base_url", base_url)
    path.write_text(yaml.safe_dump(robots, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def robots_file(tmp_path: Path, fake: FakeRobots) -> Path:
    return write_robots(tmp_path / "robots.yaml", fake.base_url)


@pytest.fixture
def settings(robots_file: Path) -> Settings:
    return Settings(robots_file=robots_file)


Opener = Callable[..., AbstractAsyncContextManager[RobotChannel]]


@pytest.fixture
def sender(settings: Settings) -> Opener:
    """sender("wecom_robot") -> the adapter's send-only channel, at the tests' time scale."""

    def _open(kind: str, **kwargs: object) -> AbstractAsyncContextManager[RobotChannel]:
        return open_sender(settings, kind, time_scale=SCALE, **kwargs)  # type: ignore[arg-type]

    return _open
