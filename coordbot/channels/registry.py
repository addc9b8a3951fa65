"""Which channel adapters exist, whether the settings configure each, and how to build it.

The runtime asks the registry instead of naming adapters: a new channel registers one :class:`Adapter`
here and is wired everywhere (``coordbot run``, one-shot sending, the demo). An adapter's module is
imported only when the settings configure it, so an instance without Telegram never loads its library.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

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


def _telegram_sender(settings: Settings) -> AbstractAsyncContextManager[Channel]:
    from coordbot.channels.telegram import open_sender

    return open_sender(settings)


def _telegram_frontend(settings: Settings, handle: InboundHandler) -> Frontend:
    from coordbot.channels.telegram import TelegramFrontend

    return TelegramFrontend(settings, handle)


register(
    Adapter(
        name="telegram",
        configured=lambda s: bool(s.telegram_token),
        open_sender=_telegram_sender,
        frontend=_telegram_frontend,
        missing_hint="COORDBOT_TELEGRAM_TOKEN",
    )
)
