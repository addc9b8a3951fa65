"""The one small interface every channel adapter implements, and the messages that cross it.

Core code talks to channels only through these types; it never imports a channel library (Telegram,
e-mail, WeCom …). A :class:`Channel` sends a rendered message to an address and returns a delivery
reference; a :class:`Frontend` receives the platform's updates, turns them into :class:`Inbound` values,
hands each to the ``handle`` callable it was given and sends back the :class:`Reply`. Adapters know
nothing of the conversation, the reports or the runtime that wires them (``coordbot.runtime``).

Errors map onto what the reminder engine does next: :class:`TransientChannelError` is retried (honouring
``retry_after``); :class:`PermanentChannelError` is not, and marks the contact unreachable when the address
is the problem (blocked, chat gone); :class:`ContentRejectedError`, :class:`ChannelAuthError` and
:class:`NoChannelError` are permanent but blame coordbot, not the contact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiohttp import web

_log = logging.getLogger("coordbot.channels")


class ButtonAction(StrEnum):
    """What pressing a button asks for (the conversation has a handler for each), with the ref it carries."""

    DONE = "done"  # a reminder's status buttons: o<occurrence id>
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BLOCKED = "blocked"
    REPORT = "report"  # ask for a written report: o<occurrence id>
    UNDO = "undo"  # p<report id>
    SET_STATUS = "setstatus"  # p<report id>:<status action>
    SET_QUANTITY = "setqty"  # p<report id>:<number index>:<target index>
    SET_SHARE = "setshare"  # p<report id>:progress|share — a percent of the plan: completion, or only a share?
    SET_MODE = "setmode"  # p<report id>:total|increment — a count in a to-date report: so far, or new?
    SET_RATE = "setrate"  # p<report id>:<rate target index>|progress — a percent: a rate target's value, or progress?
    PICK = "pick"  # the task a reply is about: i<inbound message id>:<task code>
    APPROVE = "approve"  # e<extension id>
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    action: str  # a ButtonAction
    ref: str = ""  # what the action is about: an occurrence id, a task code, a report id


BUTTON_SEPARATOR = ":"


def encode_button(button: Button) -> str:
    """The data a pressed button sends back: ``action:ref``. The one format; ``decode_button`` reads it.

    Platforms limit its size (Telegram: 64 bytes): the adapter checks its own limit.
    """
    if not button.action or BUTTON_SEPARATOR in button.action:
        raise ValueError(f"a button action is a word without {BUTTON_SEPARATOR!r}, not {button.action!r}")
    return f"{button.action}{BUTTON_SEPARATOR}{button.ref}"


def decode_button(data: str) -> tuple[str, str]:
    """(action, ref) of a pressed button's data; the ref may itself contain the separator."""
    action, _, ref = data.partition(BUTTON_SEPARATOR)
    return action, ref


@dataclass(frozen=True, slots=True)
class Outbound:
    address: str
    text: str  # HTML subset (b, i, u, s, code, pre, a): Telegram's, and what e-mail renders
    buttons: tuple[tuple[Button, ...], ...] = ()  # rows of buttons
    ask_reply: bool = False  # invite a plain reply attached to this message (Telegram ForceReply)
    document: tuple[str, bytes] | None = None  # (file name, content)


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    ref: str  # the channel's id of the (first) message, e.g. "<chat_id>:<message_id>"


class ChannelError(Exception):
    """Delivery failed. ``permanent`` failures (bot blocked, chat not found) are never retried."""

    permanent = False

    def __init__(self, message: str, *, retry_after: float | None = None, maybe_delivered: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # The platform may have accepted the message (no answer after the request was sent: a read timeout).
        # Sending it again may double it: the engine does not retry it at once (see scheduling.engine).
        self.maybe_delivered = maybe_delivered


class TransientChannelError(ChannelError):
    permanent = False


class PermanentChannelError(ChannelError):
    permanent = True
    address_problem = True  # the address can never receive (blocked, chat gone): the contact is unreachable


class NoChannelError(PermanentChannelError):
    """coordbot has no such channel configured: our problem, not the contact's."""

    address_problem = False


class ContentRejectedError(PermanentChannelError):
    """The platform refused this message (too long, malformed markup): sending it again cannot help."""

    address_problem = False


class ChannelAuthError(PermanentChannelError):
    """coordbot's own credentials were refused (bad token, app secret): every address fails alike."""

    address_problem = False


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """What a platform accepts in one message, so the core can shape messages before sending."""

    max_text: int  # characters of visible text in one message (longer text is split by the adapter)
    buttons: bool = True  # inline buttons; without them the options go out as numbered lines
    files: bool = True  # documents (the briefing DOCX)
    max_button_data: int | None = None  # bytes of a button's encoded reference


class Channel(Protocol):
    """Sends to one platform. ``send`` raises a :class:`ChannelError` subclass when it cannot."""

    name: str
    limits: ChannelLimits

    async def send(self, message: Outbound) -> Delivery:
        """Deliver one message; raise a ChannelError subclass when it cannot."""
        ...


@dataclass(frozen=True, slots=True)
class Inbound:
    """A normalised inbound message or button press."""

    channel: str
    external_id: str  # unique per channel: update id
    chat_id: str
    sender_id: str
    sender_name: str = ""
    language: str = ""
    kind: str = "message"  # message | edited | callback | command
    text: str = ""
    command: str = ""  # "tasks" for "/tasks@bot"
    args: str = ""
    reply_to_ref: str = ""  # the delivery ref of the message this one answers
    reply_to_text: str = ""  # and its text (a bot prompt names the task it asks about)
    message_ref: str = ""  # this message's own ref ("chat:message"), for edits and undo
    callback_action: str = ""
    callback_ref: str = ""
    is_group: bool = False
    start_code: str = ""  # deep-link /start payload


@dataclass
class Reply:
    """What the core answers to an inbound message (sent back on the same chat)."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    ask_reply: bool = False
    alert: str = ""  # for button presses: the short toast text
    extra: list[Outbound] = field(default_factory=list)  # messages to other people (e.g. the office)


InboundHandler = Callable[[Inbound], Awaitable[Reply | None]]


class InboundDeferred(Exception):
    """What an :data:`InboundHandler` raises when it cannot store a message now (its database is unreachable):
    nothing of it was stored, and the front end keeps it (spooled) to offer it again later."""


async def send_reply(channel: Channel, inbound: Inbound, reply: Reply, *, alert_as_text: bool = False) -> None:
    """The answer to an inbound message on its chat, then the messages to other people; a failure is logged
    and does not stop the rest (the inbound message is already stored: nothing is lost by a lost answer).

    ``alert_as_text``: platforms without toasts say a button's alert in the chat when there is no text.
    """
    text = reply.text or (reply.alert if alert_as_text else "")
    for out in (Outbound(inbound.chat_id, text, buttons=reply.buttons, ask_reply=reply.ask_reply), *reply.extra):
        if not out.text and out.document is None:
            continue
        try:
            await channel.send(out)
        except ChannelError as exc:
            _log.warning("%s: a reply could not be delivered: %s", channel.name, exc)


async def answer_inbound(
    channel: Channel, inbound: Inbound, handling: Awaitable[Reply | None], *, alert_as_text: bool = False
) -> None:
    """Wait for the conversation's answer to ``inbound`` (``handling``: the handler's coroutine, or a task
    already running it) and send it with :func:`send_reply`; a handler that fails is logged, nothing is sent."""
    try:
        reply = await handling
    except Exception:
        _log.exception("%s: message %s could not be handled", channel.name, inbound.external_id)
        return
    if reply is not None:
        await send_reply(channel, inbound, reply, alert_as_text=alert_as_text)


class ChatOrder:
    """One chat's messages are handled one after another, in the order they arrived; other chats in parallel.

    A report and its edit, or a binding and the button pressed just after it, must not race: the platforms
    deliver a chat's updates in order, and acknowledging each at once must not undo that. Locks are FIFO and
    dropped when nobody waits on them.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, chat: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(chat, asyncio.Lock())
        self._waiting[chat] = self._waiting.get(chat, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[chat] -= 1
            if not self._waiting[chat]:
                del self._waiting[chat], self._locks[chat]


class InboundTasks:
    """Platform callbacks must be acknowledged within seconds (WeCom 5 s, Feishu 3 s): each inbound message is
    handled in a task of its own, and ``drain`` waits for those in flight when the front end stops."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[None]] = set()
        self.order = ChatOrder()

    def spawn(self, work: Coroutine[Any, Any, None], *, chat: str | None = None) -> None:
        """Run ``work`` in its own task; with ``chat``, after the earlier messages of that chat."""
        task = asyncio.create_task(self._in_turn(chat, work) if chat is not None else work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def _in_turn(self, chat: str, work: Coroutine[Any, Any, None]) -> None:
        async with self.order.turn(chat):
            await work

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("%s: an inbound message could not be handled", self.name, exc_info=task.exception())

    async def drain(self, timeout: float | None = 10.0) -> None:
        """Wait for the messages being handled; cancel what is still running after ``timeout`` seconds.

        ``timeout=None``: wait, without cancelling, until none is left, those spawned meanwhile included."""
        if timeout is None:
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            return
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)


class Frontend(Protocol):
    """Receives a platform's updates (polling, a webhook, a stream) and answers them through ``handle``."""

    @property
    def channel(self) -> Channel:
        """The sender replies (and reminders) go out through."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def webhook_routes(self) -> Sequence[web.RouteDef]:
        """Routes to mount on coordbot's web app (empty when the platform is polled)."""
        ...


_INVITE = re.compile(r"^\s*(?:/start|/bind|bind|绑定)[\s:：]+([A-Za-z0-9_-]{8,64})\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*(?:回复|reply)?\s*([0-9０-９]{1,2})\s*[.。]?\s*$", re.IGNORECASE)


_COMMAND = re.compile(r"^\s*/([A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)


def command_in(text: str) -> tuple[str, str] | None:
    """(command, args) of a "/tasks" or "/extend 2.1 2026-06-30" message on a channel without bot commands
    of its own (lower-cased; a "/cmd@bot" suffix dropped); ``None`` for any other text."""
    m = _COMMAND.match(text or "")
    return (m.group(1).lower(), (m.group(2) or "").strip()) if m else None


def invite_code_in(text: str) -> str:
    """The invite code in "绑定 CODE" or "/start CODE": how a contact binds on a channel without deep links."""
    m = _INVITE.match(text or "")
    return m.group(1) if m else ""


class NumberedChoices:
    """Buttons for platforms without them: the options go out as numbered lines, and a bare-number reply
    ("2", "回复2") from the same address reads as pressing that button.

    Kept in memory, per address, for the latest message with options only: a restart forgets them, and the
    contact's "2" is then read as plain text (the conversation asks back). Bounded to ``max_addresses``.
    """

    def __init__(self, *, max_addresses: int = 10_000) -> None:
        self._offered: dict[str, tuple[Button, ...]] = {}
        self.max_addresses = max_addresses

    def offer(self, message: Outbound, *, intro: str) -> Outbound:
        flat = tuple(b for row in message.buttons for b in row)
        if not flat:
            return message
        self._offered.pop(message.address, None)
        if len(self._offered) >= self.max_addresses:
            self._offered.pop(next(iter(self._offered)))  # the oldest offer goes first
        self._offered[message.address] = flat
        return numbered_options(message, intro=intro)

    def press(self, address: str, text: str) -> Button | None:
        """The button a bare-number reply stands for, or ``None`` when the text is not one."""
        m = _NUMBER.match(text or "")
        offered = self._offered.get(address)
        if not m or not offered:
            return None
        index = int(m.group(1).translate(str.maketrans("０１２３４５６７８９", "0123456789")))
        return offered[index - 1] if 1 <= index <= len(offered) else None


def numbered_options(message: Outbound, *, intro: str) -> Outbound:
    """The message for a platform without buttons: each button becomes a numbered line ("回复1 …").

    ``intro`` is the localised line before the options. The buttons stay on the message so the adapter
    can remember which number stands for which action when the reply comes back.
    """
    flat = [b for row in message.buttons for b in row]
    if not flat:
        return message
    lines = [message.text, "", intro, *(f"{i}. {b.label}" for i, b in enumerate(flat, 1))]
    return replace(message, text="\n".join(lines))


class MemoryChannel:
    """A channel that keeps what it is given: for the demo, the benchmarks and tests of the core."""

    limits = ChannelLimits(max_text=1 << 20)

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.sent: list[Outbound] = []

    async def send(self, message: Outbound) -> Delivery:
        self.sent.append(message)
        return Delivery(self.name, f"{message.address}:{len(self.sent)}")
