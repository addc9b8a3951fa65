"""Which channel adapters exist, whether the settings configure each, and how to build it.

The runtime asks the registry instead of naming adapters: a new channel registers one :class:`Adapter`
here and is wired everywhere (``coordbot run``, one-shot sending, the demo). An adapter's module is
imported only when the settings configure it, so an instance without Telegram never loads its library.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from importlib import import_module

from coordbot.channels.base import Channel, Frontend, InboundHandler
from coordbot.core.config import Settings


@dataclass(frozen=True, slots=True)
class Adapter:
    name: str  # the channel's name in contacts' addresses and in deliveries
    configured: Callable[[Settings], bool]
    open_sender: Callable[[Settings], AbstractAsyncContextManager[Channel]]  # send-only, for one-shot commands
    frontend: Callable[[Settings, InboundHandler], Frontend] | None = None  # two-way: receives replies
    missing_hint: str = ""  # what to set, logged when no channel at all is configured


_ADAPTERS: dict[str, Adapter] = {}


def register(adapter: Adapter) -> None:
    if adapter.name in _ADAPTERS:
        raise ValueError(f"a channel adapter named {adapter.name!r} is already registered")
    _ADAPTERS[adapter.name] = adapter


def adapters() -> list[Adapter]:
    return list(_ADAPTERS.values())


def configured(settings: Settings) -> list[Adapter]:
    """The adapters these settings configure, in registration order."""
    return [a for a in _ADAPTERS.values() if a.configured(settings)]


# ---- built-in adapters -----------------------------------------------------------------------------
# Each adapter module provides ``open_sender(settings)`` (an async context manager yielding its Channel) and,
# when it can receive, ``frontend(settings, handle)``. They are imported only when the settings need them.


def _sender(module: str) -> Callable[[Settings], AbstractAsyncContextManager[Channel]]:
    def open_sender(settings: Settings) -> AbstractAsyncContextManager[Channel]:
        sender: Callable[[Settings], AbstractAsyncContextManager[Channel]] = import_module(module).open_sender
        return sender(settings)

    return open_sender


def _frontend(module: str) -> Callable[[Settings, InboundHandler], Frontend]:
    def frontend(settings: Settings, handle: InboundHandler) -> Frontend:
        make: Callable[[Settings, InboundHandler], Frontend] = import_module(module).frontend
        return make(settings, handle)

    return frontend


def _robot_sender(kind: str) -> Callable[[Settings], AbstractAsyncContextManager[Channel]]:
    def open_sender(settings: Settings) -> AbstractAsyncContextManager[Channel]:
        from coordbot.channels.robots import open_sender as open_robots

        return open_robots(settings, kind)

    return open_sender


def _has_robots(kind: str) -> Callable[[Settings], bool]:
    def configured(settings: Settings) -> bool:
        if settings.robots_file is None:
            return False
        from coordbot.channels.robots import load_robots

        return any(r.kind == kind for r in load_robots(settings.robots_file).values())

    return configured


register(
    Adapter(
        name="telegram",
        configured=lambda s: bool(s.telegram_token),
        open_sender=_sender("coordbot.channels.telegram"),
        frontend=_frontend("coordbot.channels.telegram"),
        missing_hint="COORDBOT_TELEGRAM_TOKEN",
    )
)
register(
    Adapter(
        name="wecom",
        configured=lambda s: bool(s.wecom_corp_id and s.wecom_secret),
        open_sender=_sender("coordbot.channels.wecom"),
        frontend=_frontend("coordbot.channels.wecom"),
        missing_hint="COORDBOT_WECOM_CORP_ID and COORDBOT_WECOM_SECRET",
    )
)
register(
    Adapter(
        name="dingtalk",
        configured=lambda s: bool(s.dingtalk_app_key and s.dingtalk_app_secret),
        open_sender=_sender("coordbot.channels.dingtalk"),
        frontend=_frontend("coordbot.channels.dingtalk"),
        missing_hint="COORDBOT_DINGTALK_APP_KEY and COORDBOT_DINGTALK_APP_SECRET",
    )
)
register(
    Adapter(
        name="feishu",
        configured=lambda s: bool(s.feishu_app_id and s.feishu_app_secret),
        open_sender=_sender("coordbot.channels.feishu"),
        frontend=_frontend("coordbot.channels.feishu"),
        missing_hint="COORDBOT_FEISHU_APP_ID and COORDBOT_FEISHU_APP_SECRET",
    )
)
register(
    Adapter(
        name="email",
        configured=lambda s: bool(s.smtp_host and s.mail_from),
        open_sender=_sender("coordbot.channels.email"),
        # Replies come in only when a mailbox to read them is configured.
        frontend=_frontend("coordbot.channels.email"),
        missing_hint="COORDBOT_SMTP_HOST and COORDBOT_MAIL_FROM",
    )
)
for _kind in ("wecom_robot", "dingtalk_robot", "feishu_robot"):
    register(Adapter(name=_kind, configured=_has_robots(_kind), open_sender=_robot_sender(_kind)))
