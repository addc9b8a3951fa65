"""Commands and buttons as tables: one guard per role, one handler per button action, one codec for button data."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from coordbot.channels.base import Button, ButtonAction, Inbound, decode_button, encode_button
from coordbot.channels.telegram import MAX_CALLBACK_BYTES, callback_data
from coordbot.core.clock import FakeClock
from coordbot.core.db import session_scope
from coordbot.plan import service
from coordbot.plan.loader import LoadedPlan
from coordbot.plan.models import Contact, Department, Role
from coordbot.replies.ambiguity import Ambiguity
from coordbot.replies.conversation import BUTTONS, COMMANDS, Conversation
from coordbot.scheduling.calendar import WorkCalendar

ROOT = Path(__file__).resolve().parents[2]


def test_button_data_round_trips_with_separators_in_the_ref() -> None:
    button = Button("选", ButtonAction.SET_QUANTITY, "p12:0:3")
    assert encode_button(button) == "setqty:p12:0:3"
    assert decode_button(encode_button(button)) == ("setqty", "p12:0:3")
    assert decode_button("undo") == ("undo", "")
    with pytest.raises(ValueError):
        encode_button(Button("x", "a:b", "1"))


def test_telegram_refuses_button_data_over_its_limit() -> None:
    assert callback_data(Button("ok", ButtonAction.PICK, "i1:2.1")) == "pick:i1:2.1"
    with pytest.raises(ValueError, match="64 bytes"):
        callback_data(Button("x", ButtonAction.PICK, "i1:" + "任" * (MAX_CALLBACK_BYTES // 3)))


def test_every_button_action_has_a_handler() -> None:
    assert set(BUTTONS) == set(ButtonAction)


def test_every_ambiguity_the_parser_gives_is_named() -> None:
    source = (ROOT / "coordbot" / "replies" / "parser.py").read_text(encoding="utf-8")
    assert not re.findall(r'amb\.append\("(\w+)"\)', source)  # no bare strings: Ambiguity members
    names = set(re.findall(r"amb\.append\(Ambiguity\.(\w+)\)", source)) | {"PARSER_ERROR"}
    assert len(names) > 10
    assert names <= set(Ambiguity.__members__)


@pytest.fixture
def conversation(engine: Engine, minimal_plan: LoadedPlan) -> Conversation:
    with session_scope(engine) as s:
        service.import_plan(session=s, loaded=minimal_plan)
        depts = {d.code: d for d in s.exec(select(Department))}
        s.add(Contact(department_id=depts["amr"].id, name="联络员", address="1001"))  # type: ignore[arg-type]
        s.add(Contact(department_id=depts["finance"].id, name="领导", address="1002", role=Role.LEADER))  # type: ignore[arg-type]
        s.add(Contact(department_id=depts["amr"].id, name="办公室", address="1003", role=Role.OFFICE))  # type: ignore[arg-type]
    clock = FakeClock(datetime(2026, 3, 4, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    return Conversation(engine=engine, calendar=WorkCalendar(ROOT / "config" / "holidays"), clock=clock)


def _send(conv: Conversation, sender: str, uid: str, **kw) -> str:  # type: ignore[no-untyped-def]
    reply = conv.handle(Inbound(channel="telegram", external_id=uid, chat_id=sender, sender_id=sender, **kw))
    assert reply is not None
    return reply.text


CONTACT_ONLY = "只有牵头或配合单位的联络员可以报送进展。"
OFFICE_ONLY = "该命令仅限联席会议办公室使用。"
READERS_ONLY = "该命令仅限分管领导和联席会议办公室使用。"
UNKNOWN = "无法识别的命令。"


@pytest.mark.parametrize(
    ("sender", "command", "refused"),
    [
        ("1003", "report", CONTACT_ONLY),  # the office does not report progress
        ("1002", "extend", CONTACT_ONLY),
        ("1001", "close", OFFICE_ONLY),
        ("1002", "digest", OFFICE_ONLY),  # a leader reads the summary, not the digest
        ("1001", "summary", READERS_ONLY),
        ("1001", "nonsense", UNKNOWN),
        ("1003", "summary", UNKNOWN),  # allowed, but this conversation was given no reports
    ],
)
def test_each_command_is_guarded_for_its_roles(conversation: Conversation, sender: str, command: str, refused: str):  # type: ignore[no-untyped-def]
    text = _send(conversation, sender, "u1", kind="command", command=command, args="2.1 x")
    assert text.startswith(refused)


def test_commands_anyone_may_give(conversation: Conversation) -> None:
    for sender, name in (("1001", "联络员"), ("1002", "领导"), ("1003", "办公室")):
        assert name in _send(conversation, sender, f"w{sender}", kind="command", command="whoami")
        for command in ("help", "start", "tasks"):
            text = _send(conversation, sender, f"{command}{sender}", kind="command", command=command)
            assert not text.startswith((UNKNOWN, CONTACT_ONLY, OFFICE_ONLY, READERS_ONLY))
    assert set(COMMANDS) >= {"start", "help", "whoami", "tasks", "report", "done", "blocked", "extend", "close"}


def test_a_button_of_an_unknown_action_or_for_the_office_is_refused(conversation: Conversation) -> None:
    gone = "该操作已失效。"
    assert (
        _send(conversation, "1001", "b1", kind="callback", callback_action="later", callback_ref="o1").strip() == gone
    )
    assert _send(conversation, "1001", "b2", kind="callback", callback_action="approve", callback_ref="e1").startswith(
        OFFICE_ONLY
    )
    assert (
        _send(conversation, "1003", "b3", kind="callback", callback_action="approve", callback_ref="e99").strip()
        == gone
    )
