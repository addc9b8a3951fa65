"""load_robots: the robots file validated with errors that name the file, the robot and the field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coordbot.channels import registry
from coordbot.channels.robots import load_robots
from coordbot.core.config import ConfigError, Settings

GOOD = """
amr-group:
  kind: wecom_robot
  key: 693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa
office-group:
  kind: dingtalk_robot
  access_token: abc
  secret: SECxyz
leaders:
  kind: feishu_robot
  token: hook-token
  secret: s3cret
  base_url: https://open.feishu.example.gov.cn/
"""


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "robots.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_loads_and_hides_its_secrets(tmp_path: Path) -> None:
    robots = load_robots(_file(tmp_path, GOOD))
    assert {n: r.kind for n, r in robots.items()} == {
        "amr-group": "wecom_robot",
        "office-group": "dingtalk_robot",
        "leaders": "feishu_robot",
    }
    assert robots["office-group"].secret.get() == "SECxyz"
    assert robots["leaders"].base_url == "https://open.feishu.example.gov.cn"
    assert robots["amr-group"].base_url == ""
    assert "693a91f6" not in repr(robots) and "SECxyz" not in repr(robots)


def test_it_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = _file(tmp_path, GOOD)
    first = load_robots(path)
    assert load_robots(path) is first
    path.write_text(GOOD.replace("abc", "new-token"), encoding="utf-8")
    os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 1_000_000))
    assert load_robots(path)["office-group"].credential.get() == "new-token"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "g:\n  kind: slack_robot\n  key: k\n",
            r"robot 'g': field 'kind' is 'slack_robot'; expected one of wecom_robot",
        ),
        ("g:\n  kind: wecom_robot\n", r"robot 'g': field 'key' is missing; wecom_robot needs it"),
        ("g:\n  kind: dingtalk_robot\n  token: t\n", r"robot 'g': unknown field 'token' for kind dingtalk_robot"),
        ("g:\n  kind: wecom_robot\n  key: k\n  secret: s\n", r"robot 'g': unknown field 'secret' for kind wecom_robot"),
        ("g:\n  kind: feishu_robot\n  token: ''\n", r"robot 'g': field 'token': expected non-empty text"),
        (
            "g:\n  kind: wecom_robot\n  key: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k\n",
            r"robot 'g': field 'key': expected only the key part of the webhook address",
        ),
        ("g:\n  kind: feishu_robot\n  token: t\n  base_url: open.feishu.cn\n", r"robot 'g': field 'base_url'"),
        ("g: just-a-key\n", r"robot 'g': expected a mapping"),
        ("- a\n- b\n", r"expected a mapping of robot names"),
        ("g: [unclosed\n", r"not valid YAML at line"),
    ],
)
def test_errors_name_the_file_the_robot_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_robots(path)
    assert str(caught.value).startswith(str(path))


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"robots\.yaml: the robots file \(setting robots_file\) does not exist"):
        load_robots(tmp_path / "robots.yaml")


def test_the_registry_sees_which_kinds_the_file_configures(tmp_path: Path) -> None:
    path = _file(tmp_path, "g:\n  kind: wecom_robot\n  key: k\n")
    names = [a.name for a in registry.configured(Settings(robots_file=path))]
    assert "wecom_robot" in names and "dingtalk_robot" not in names and "feishu_robot" not in names
    assert not any(a.name.endswith("_robot") for a in registry.configured(Settings()))
