"""Settings: one object, read from a YAML config file and overridden by ``COORDBOT_*`` environment variables.

Secrets (tokens, app secrets, message-encryption keys, passwords: every field typed :class:`Secret`) come only
from the environment or from a file outside git (``COORDBOT_TELEGRAM_TOKEN_FILE``); they are wrapped in
:class:`Secret` so they never print. Every platform's base URL is a setting, for private deployments
(政务微信, 专有钉钉, a private Feishu).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

ENV_PREFIX = "COORDBOT_"
DEFAULT_CONFIG = Path("config/coordbot.yaml")
DEFAULT_DATABASE_URL = "sqlite:///var/coordbot.db"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the setting and where it came from."""


class Secret:
    """A string that does not show itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # The database's password kept out of the URL (COORDBOT_DATABASE_PASSWORD or its _FILE, e.g. a compose
    # secret): put into database_url when the settings are read.
    database_password: Secret = field(default_factory=lambda: Secret(""))
    timezone: str = "Asia/Shanghai"
    locale: str = "zh"
    plan_file: Path | None = None
    holidays_dir: Path = Path("config/holidays")
    templates_dir: Path | None = None
    tick_seconds: float = 30.0
    lease_seconds: float = 300.0
    delivery: str = "at-least-once"  # or "at-most-once": what happens to a claim whose process died
    # For tests and demos only: the clock says this time ("2026-03-02T09:25:00+08:00") when first read and runs
    # clock_speed times as fast as the wall clock (retry back-offs, leases, grace windows all scale with it).
    clock_start: str = ""
    clock_speed: float = 1.0
    telegram_token: Secret = field(default_factory=lambda: Secret(""))
    telegram_base_url: str = "https://api.telegram.org/bot"
    # polling | webhook | send (sends only; another instance receives the updates: one poller per bot token)
    telegram_mode: str = "polling"
    telegram_rate_per_second: float = 30.0  # Telegram's broadcast limit; paid broadcasts allow more
    webhook_url: str = ""
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    output_dir: Path = Path("var/out")
    log_format: str = "text"  # text | json (one object per line, for a log collector)
    # Inbound updates wait here (fsynced) until the database has them; default: beside a SQLite database
    # file, else var/spool. Local to each machine: keep it on a persistent disk.
    spool_dir: Path | None = None
    # Worker processes that handle chat updates beside the event loop (0: a thread of the main process).
    handler_processes: int = 1
    # They start when updates overlap (a burst) and stop after this many seconds without updates, so an idle
    # instance holds no worker; 0: they run from the start for as long as coordbot does.
    handler_idle_seconds: float = 300.0
    # Public https:// base of this instance, for the platforms' callback URLs and for reply links.
    public_url: str = ""
    # Signs the web desk's session cookies and sign-in links (COORDBOT_WEB_SECRET); unset: a random key per
    # process, so sessions and links do not survive a restart.
    web_secret: Secret = field(default_factory=lambda: Secret(""))

    # WeCom (企业微信 / 政务微信) self-built application: sending and the encrypted callback.
    wecom_corp_id: str = ""
    wecom_agent_id: str = ""
    wecom_secret: Secret = field(default_factory=lambda: Secret(""))
    wecom_token: Secret = field(default_factory=lambda: Secret(""))  # the callback's signature token
    wecom_aes_key: Secret = field(default_factory=lambda: Secret(""))  # EncodingAESKey, 43 characters
    wecom_base_url: str = "https://qyapi.weixin.qq.com"

    # DingTalk (钉钉 / 专有钉钉) enterprise internal app robot.
    dingtalk_app_key: str = ""  # the app's Client ID (AppKey)
    dingtalk_app_secret: Secret = field(default_factory=lambda: Secret(""))
    dingtalk_robot_code: str = ""
    dingtalk_base_url: str = "https://api.dingtalk.com"
    dingtalk_oapi_url: str = "https://oapi.dingtalk.com"

    # Feishu (飞书) app bot: tenant_access_token, im/v1/messages and the event subscription.
    feishu_app_id: str = ""
    feishu_app_secret: Secret = field(default_factory=lambda: Secret(""))
    feishu_verification_token: Secret = field(default_factory=lambda: Secret(""))
    feishu_encrypt_key: Secret = field(default_factory=lambda: Secret(""))
    feishu_base_url: str = "https://open.feishu.cn"

    # Group webhook robots (WeCom 群机器人, DingTalk and Feishu custom bots): a YAML file outside git naming
    # each robot with its platform, key and signing secret; departments and the office refer to them by name.
    robots_file: Path | None = None

    # E-mail: SMTP out, replies in by IMAP.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: Secret = field(default_factory=lambda: Secret(""))
    smtp_security: str = "starttls"  # starttls | tls | none
    mail_from: str = ""  # e.g. 联席会议办公室 <office@example.gov.cn>
    mail_reply_to: str = ""  # replies go to local+<token>@domain of this address, so each finds its reminder
    imap_host: str = ""
    imap_port: int = 993
    imap_username: str = ""
    imap_password: Secret = field(default_factory=lambda: Secret(""))
    imap_security: str = "tls"  # tls | starttls | none
    imap_folder: str = "INBOX"
    imap_poll_seconds: float = 60.0  # when the server has no IDLE

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def __repr__(self) -> str:  # the URL may carry a password: show only the public view
        return f"Settings({self.public_dict()!r})"

    def public_dict(self) -> dict[str, Any]:
        """Settings as shown to people: secrets say only whether they are set."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                out[f.name] = "(set)" if value else "(not set)"
            elif f.name == "database_url":
                out[f.name] = _mask_url_password(value)
            else:
                out[f.name] = str(value) if isinstance(value, Path) else value
        return out


_SECRET_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type in ("Secret", Secret)}


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL we can parse: show nothing that could be a password
        return url.split("@")[-1]


def _with_password(url: str, values: dict[str, Any]) -> str:
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception as exc:
        raise ConfigError(f"setting 'database_url' is not a database URL: {_mask_url_password(url)!r}") from exc
    if u.get_backend_name() == "sqlite":
        raise ConfigError(f"{ENV_PREFIX}DATABASE_PASSWORD is set but the database is SQLite, which has no password")
    return u.set(password=values["database_password"].get()).render_as_string(hide_password=False)


def _coerce(name: str, raw: Any, target: Any, source: str) -> Any:
    kind = target.type if isinstance(target.type, str) else str(target.type)
    try:
        if name in _SECRET_FIELDS:
            return Secret(str(raw))
        if "Path" in kind:
            return None if raw in (None, "") and "None" in kind else Path(str(raw))
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: setting '{name}' expects {kind}, got {raw!r}") from exc


def load_settings(config_file: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build the settings: defaults, then the config file, then ``COORDBOT_*`` variables."""
    env = dict(os.environ if env is None else env)
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or Path(env.get(f"{ENV_PREFIX}CONFIG", DEFAULT_CONFIG))
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        for key, raw in data.items():
            if key not in fields:
                raise ConfigError(f"{path}: unknown setting '{key}' (known: {', '.join(sorted(fields))})")
            if key in _SECRET_FIELDS:
                raise ConfigError(
                    f"{path}: '{key}' is a secret; set {ENV_PREFIX}{key.upper()} or "
                    f"{ENV_PREFIX}{key.upper()}_FILE instead of writing it into a config file"
                )
            values[key] = _coerce(key, raw, fields[key], str(path))
    elif config_file is not None:
        raise ConfigError(f"config file {config_file} does not exist")

    for name, f in fields.items():
        var = f"{ENV_PREFIX}{name.upper()}"
        if var in env:
            values[name] = _coerce(name, env[var], f, var)
        elif name in _SECRET_FIELDS and f"{var}_FILE" in env:
            secret_path = Path(env[f"{var}_FILE"])
            try:
                values[name] = Secret(secret_path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(f"{var}_FILE: cannot read {secret_path}: {exc.strerror}") from exc

    if values.get("database_password"):
        values["database_url"] = _with_password(values.get("database_url", DEFAULT_DATABASE_URL), values)
    settings = Settings(**values)
    try:
        settings.tz  # noqa: B018 - validate early, with a message that names the setting
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"setting 'timezone': unknown time zone {settings.timezone!r}") from exc
    if settings.delivery not in ("at-least-once", "at-most-once"):
        raise ConfigError("setting 'delivery' expects 'at-least-once' or 'at-most-once'")
    if settings.telegram_mode not in ("polling", "webhook", "send"):
        raise ConfigError("setting 'telegram_mode' expects 'polling', 'webhook' or 'send' (send only, no updates)")
    if settings.telegram_mode == "webhook" and settings.telegram_token:
        if not settings.webhook_secret:
            raise ConfigError(
                f"webhook mode needs a secret: set {ENV_PREFIX}WEBHOOK_SECRET (Telegram sends it back on every update)"
            )
        if not settings.webhook_url.startswith("https://"):
            raise ConfigError("setting 'webhook_url' must be the public https:// address Telegram will call")
    if settings.clock_start:
        try:
            start = datetime.fromisoformat(settings.clock_start)
        except ValueError:
            start = None
        if start is None or start.tzinfo is None:
            raise ConfigError(
                f"setting 'clock_start' expects an ISO time with its offset, e.g. 2026-03-02T09:25:00+08:00, "
                f"got {settings.clock_start!r}"
            )
    if not settings.clock_speed > 0:
        raise ConfigError(f"setting 'clock_speed' expects a number > 0, got {settings.clock_speed!r}")
    if settings.handler_processes < 0:
        raise ConfigError("setting 'handler_processes' expects 0 (a thread) or a number of worker processes")
    if settings.log_format not in ("text", "json"):
        raise ConfigError("setting 'log_format' expects 'text' or 'json'")
    if settings.handler_idle_seconds < 0:
        raise ConfigError("setting 'handler_idle_seconds' expects 0 (workers always running) or seconds >= 0")
    if settings.locale not in ("zh", "en"):
        raise ConfigError("setting 'locale' expects 'zh' or 'en'")
    for name in ("smtp_security", "imap_security"):
        if getattr(settings, name) not in ("starttls", "tls", "none"):
            raise ConfigError(f"setting '{name}' expects 'starttls', 'tls' or 'none'")
    if settings.imap_host and settings.imap_security == "starttls":
        raise ConfigError("setting 'imap_security': 'starttls' is not supported for IMAP; use 'tls' on port 993")
    if settings.wecom_aes_key and len(settings.wecom_aes_key.get()) != 43:
        raise ConfigError(f"{ENV_PREFIX}WECOM_AES_KEY: the EncodingAESKey has 43 characters (WeCom's admin page)")
    return settings
