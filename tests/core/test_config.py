from pathlib import Path

import pytest

from coordbot.core.config import ConfigError, Secret, load_settings


def test_defaults_are_embedded_and_shanghai(tmp_path: Path) -> None:
    s = load_settings(env={"COORDBOT_CONFIG": str(tmp_path / "absent.yaml")})
    assert s.database_url.startswith("sqlite:///")
    assert s.timezone == "Asia/Shanghai"
    assert not s.telegram_token


def test_file_then_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timezone: Europe/Berlin\ntick_seconds: 5\nlocale: en\n")
    s = load_settings(cfg, env={"COORDBOT_TICK_SECONDS": "2.5", "COORDBOT_TELEGRAM_TOKEN": "123:SECRET"})
    assert s.timezone == "Europe/Berlin"
    assert s.tick_seconds == 2.5
    assert s.locale == "en"
    assert s.telegram_token.get() == "123:SECRET"


def test_secrets_never_print(tmp_path: Path) -> None:
    s = load_settings(
        env={
            "COORDBOT_CONFIG": str(tmp_path / "none.yaml"),
            "COORDBOT_TELEGRAM_TOKEN": "123:SUPERSECRET",
            "COORDBOT_DATABASE_URL": "postgresql://bot:pa55word@db/coordbot",
        }
    )
    shown = repr(s) + str(s.public_dict())
    assert "SUPERSECRET" not in shown
    assert "pa55word" not in shown
    assert s.public_dict()["telegram_token"] == "(set)"
    assert repr(Secret("x")) == "Secret('**********')"


def test_secret_from_file(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("999:FROMFILE\n")
    s = load_settings(env={"COORDBOT_CONFIG": str(tmp_path / "n.yaml"), "COORDBOT_TELEGRAM_TOKEN_FILE": str(f)})
    assert s.telegram_token.get() == "999:FROMFILE"


@pytest.mark.parametrize(
    ("content", "env", "expected"),
    [
        ("telegram_token: abc\n", {}, "is a secret"),
        ("colour: red\n", {}, "unknown setting 'colour'"),
        ("", {"COORDBOT_TIMEZONE": "Mars/Base"}, "unknown time zone"),
        ("", {"COORDBOT_TICK_SECONDS": "soon"}, "COORDBOT_TICK_SECONDS: setting 'tick_seconds' expects float"),
        ("", {"COORDBOT_DELIVERY": "twice"}, "'delivery'"),
        ("- a list\n", {}, "expected a mapping"),
        ("telegram_mode: webhook\n", {"COORDBOT_TELEGRAM_TOKEN": "1:x"}, "webhook mode needs a secret"),
        (
            "telegram_mode: webhook\nwebhook_url: http://bot.example\n",
            {"COORDBOT_TELEGRAM_TOKEN": "1:x", "COORDBOT_WEBHOOK_SECRET": "s3cret"},
            "must be the public https",
        ),
    ],
)
def test_bad_settings_say_which_and_why(tmp_path: Path, content: str, env: dict[str, str], expected: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(content)
    with pytest.raises(ConfigError, match=expected):
        load_settings(cfg, env=env)


def test_a_scaled_clock_for_tests_and_demos(tmp_path: Path) -> None:
    import time
    from datetime import datetime

    from coordbot.core.clock import ScaledClock, SystemClock, configured_clock

    base = {"COORDBOT_CONFIG": str(tmp_path / "none.yaml")}
    s = load_settings(env={**base, "COORDBOT_CLOCK_START": "2026-03-02T09:25:00+08:00", "COORDBOT_CLOCK_SPEED": "60"})
    clock = configured_clock(s.clock_start, s.clock_speed)
    assert isinstance(clock, ScaledClock)
    first = clock.now()  # it starts when first read, however long the process took to get there
    assert first == datetime.fromisoformat("2026-03-02T09:25:00+08:00")
    time.sleep(0.05)
    assert 2.5 <= (clock.now() - first).total_seconds() <= 30  # 60 times the wall clock
    assert isinstance(configured_clock("", 1.0), SystemClock)
    for env, expected in (
        ({"COORDBOT_CLOCK_START": "Monday"}, "'clock_start' expects an ISO time with its offset"),
        ({"COORDBOT_CLOCK_START": "2026-03-02T09:25:00"}, "'clock_start' expects an ISO time with its offset"),
        ({"COORDBOT_CLOCK_SPEED": "0"}, "'clock_speed' expects a number > 0"),
    ):
        with pytest.raises(ConfigError, match=expected):
            load_settings(env={**base, **env})
