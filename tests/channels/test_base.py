"""The channel interface's own helpers: numbered options for platforms without buttons, invite codes in text."""

from __future__ import annotations

import asyncio

import pytest

from coordbot.channels.base import (
    Button,
    Delivery,
    Inbound,
    InboundTasks,
    MemoryChannel,
    NumberedChoices,
    Outbound,
    PermanentChannelError,
    Reply,
    answer_inbound,
    invite_code_in,
    numbered_options,
)

BUTTONS = ((Button("✅ 完成", "done", "17"), Button("⚠️ 有风险", "at_risk", "17")), (Button("📝 报送", "report", "17"),))


def test_numbered_options_list_every_button_in_order() -> None:
    out = numbered_options(Outbound("u1", "任务2.1 请报送进展", buttons=BUTTONS), intro="请回复数字选择：")
    assert out.text.splitlines() == [
        "任务2.1 请报送进展",
        "",
        "请回复数字选择：",
        "1. ✅ 完成",
        "2. ⚠️ 有风险",
        "3. 📝 报送",
    ]
    assert numbered_options(Outbound("u1", "无按钮"), intro="x").text == "无按钮"


@pytest.mark.parametrize(
    ("reply", "action"), [("1", "done"), (" 2 ", "at_risk"), ("回复3", "report"), ("３", "report")]
)
def test_a_bare_number_from_the_same_address_presses_that_button(reply: str, action: str) -> None:
    choices = NumberedChoices()
    choices.offer(Outbound("u1", "任务2.1", buttons=BUTTONS), intro="请回复数字选择：")
    pressed = choices.press("u1", reply)
    assert pressed is not None and (pressed.action, pressed.ref) == (action, "17")


@pytest.mark.parametrize("reply", ["4", "0", "本周完成2项", "12项", ""])
def test_other_replies_and_out_of_range_numbers_are_text(reply: str) -> None:
    choices = NumberedChoices()
    choices.offer(Outbound("u1", "任务2.1", buttons=BUTTONS), intro="x")
    assert choices.press("u1", reply) is None


def test_options_are_per_address_latest_only_and_bounded() -> None:
    choices = NumberedChoices(max_addresses=2)
    choices.offer(Outbound("u1", "a", buttons=BUTTONS), intro="x")
    assert choices.press("u2", "1") is None  # someone else's "1"
    choices.offer(Outbound("u1", "b", buttons=((Button("撤销", "undo", "p9"),),)), intro="x")
    assert choices.press("u1", "1") == Button("撤销", "undo", "p9")
    choices.offer(Outbound("u2", "c", buttons=BUTTONS), intro="x")
    choices.offer(Outbound("u3", "d", buttons=BUTTONS), intro="x")  # u1 is the oldest: forgotten
    assert choices.press("u1", "1") is None and choices.press("u3", "1") is not None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("绑定 AbC123xyz_-9", "AbC123xyz_-9"),
        ("/start AbC123xyz_-9", "AbC123xyz_-9"),
        ("绑定：AbC123xyz_-9", "AbC123xyz_-9"),
        ("bind abc123xyz99", "abc123xyz99"),
        ("绑定", ""),
        ("绑定 短", ""),
        ("请帮我绑定 AbC123xyz_-9 谢谢", ""),
        ("本周完成2项", ""),
    ],
)
def test_invite_codes_are_read_only_from_a_binding_message(text: str, code: str) -> None:
    assert invite_code_in(text) == code


INBOUND = Inbound(channel="memory", external_id="m1", chat_id="u1", sender_id="u1", kind="callback")


async def test_answer_inbound_sends_the_reply_and_its_extras_alert_as_text_when_asked() -> None:
    channel = MemoryChannel()

    async def reply() -> Reply:
        return Reply("", alert="已记录", extra=[Outbound("office", "请注意")])

    await answer_inbound(channel, INBOUND, reply(), alert_as_text=True)
    assert [(o.address, o.text) for o in channel.sent] == [("u1", "已记录"), ("office", "请注意")]
    channel.sent.clear()
    await answer_inbound(channel, INBOUND, reply())  # a toast platform: the alert is not said in the chat
    assert [(o.address, o.text) for o in channel.sent] == [("office", "请注意")]


async def test_answer_inbound_logs_a_failing_handler_and_a_failed_send_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Refusing(MemoryChannel):
        async def send(self, message: Outbound) -> Delivery:
            if message.address == "u1":
                raise PermanentChannelError("blocked")
            return await super().send(message)

    async def broken() -> Reply:
        raise RuntimeError("boom")

    async def reply() -> Reply:
        return Reply("好", extra=[Outbound("office", "抄送")])

    channel = Refusing()
    await answer_inbound(channel, INBOUND, broken())
    assert "m1 could not be handled" in caplog.text and not channel.sent
    await answer_inbound(channel, INBOUND, reply())
    assert "could not be delivered: blocked" in caplog.text
    assert [o.address for o in channel.sent] == ["office"]


async def test_inbound_tasks_drain_without_timeout_waits_for_tasks_spawned_meanwhile() -> None:
    tasks = InboundTasks("memory")
    done: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0.01)
        done.append("second")

    async def first() -> None:
        await asyncio.sleep(0.01)
        tasks.spawn(second())
        done.append("first")

    tasks.spawn(first())
    await tasks.drain(timeout=None)
    assert done == ["first", "second"]


async def test_inbound_tasks_drain_with_a_timeout_cancels_what_is_left() -> None:
    tasks = InboundTasks("memory")
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    tasks.spawn(forever())
    await started.wait()
    await tasks.drain(timeout=0.01)
    await tasks.drain(timeout=None)  # nothing left: returns at once


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("/tasks", ("tasks", "")),
        ("/extend 2.1 2026-06-30 资金未到位", ("extend", "2.1 2026-06-30 资金未到位")),
        ("/Summary@coordbot_bot", ("summary", "")),
        ("  /overdue  ", ("overdue", "")),
        ("本周完成2项", None),
        ("/", None),
        ("2.1 /tasks", None),
    ],
)
def test_slash_commands_are_read_on_channels_without_their_own(text: str, said: tuple[str, str] | None) -> None:
    from coordbot.channels.base import command_in

    assert command_in(text) == said


async def test_a_chats_messages_are_handled_in_arrival_order_and_other_chats_in_parallel() -> None:
    import asyncio

    from coordbot.channels.base import InboundTasks

    tasks, log = InboundTasks("test"), []
    slow_first = asyncio.Event()

    async def work(chat: str, n: int, wait: asyncio.Event | None = None) -> None:
        if wait is not None:
            await wait.wait()  # the chat's first message takes long (a report being stored)
        log.append((chat, n))

    tasks.spawn(work("a", 1, slow_first), chat="a")
    tasks.spawn(work("a", 2), chat="a")  # its edit, arriving while the report is handled
    tasks.spawn(work("b", 1), chat="b")
    await asyncio.sleep(0.05)
    assert log == [("b", 1)]  # another chat is not held up; chat a's second message waits for its first
    slow_first.set()
    await tasks.drain(None)
    assert log == [("b", 1), ("a", 1), ("a", 2)]
    assert not tasks.order._locks  # nothing kept once a chat is quiet
