"""Reading a reply mail: the reply's own text without the quote or the signature, as Foxmail, QQ 邮箱, Outlook
(Chinese and English), Gmail and iPhone Mail write them; the reply token verified; auto-replies and bounces
skipped; Chinese encodings; "绑定 CODE"."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from coordbot.channels.base import Button, Outbound
from coordbot.channels.email import EmailChannel, ParsedMail, parse_mail, strip_reply
from coordbot.core.config import Secret, Settings
from coordbot.testing.fake_email import STYLES, reply_mail
from coordbot.testing.fake_email.smtp import Received

from .conftest import IMAP_PASSWORD, MAIL_FROM, OFFICE, WANG

REPLY = "本周开展双随机检查2项，专项行动筹备中。\n下周完成方案报审。"
ORIGINAL = "<b>任务2.1 加大行政保护力度</b>\n请报送本周进展\n\n请直接回复本消息报送进展，或点击下方按钮。"


@pytest.fixture
def channel() -> EmailChannel:
    return EmailChannel(
        Settings(smtp_host="127.0.0.1", mail_from=MAIL_FROM, mail_reply_to=OFFICE, imap_password=Secret(IMAP_PASSWORD))
    )


def sent_mail(channel: EmailChannel, ident: str = "abcdefghijklmnop") -> dict[str, Any]:
    mail, to = channel.build(Outbound(WANG, ORIGINAL, buttons=((Button("✅ 已完成", "done", "o1"),),)), ident=ident)
    raw = mail.as_bytes()
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return Received(OFFICE, [to], raw, parsed=message).as_dict()


def parse(channel: EmailChannel, raw: bytes) -> ParsedMail:
    return parse_mail(
        raw, identity=channel.identity, tokens=channel.tokens, fallback_id="imap:1:7", own_addresses={OFFICE}
    )


@pytest.mark.parametrize("style", STYLES)
async def test_each_clients_reply_is_read_without_its_quote(channel: EmailChannel, style: str) -> None:
    sent = sent_mail(channel)
    raw = reply_mail(sent, sender=f"王敏 <{WANG}>", text=REPLY, style=style)
    if style != "plain":
        assert "请报送本周进展" in BytesParser(policy=policy.default).parsebytes(raw).get_body().get_content()
    parsed = parse(channel, raw)
    inbound = parsed.inbound
    assert inbound is not None, parsed.skipped
    assert inbound.text == REPLY
    assert (inbound.channel, inbound.sender_id, inbound.chat_id, inbound.sender_name) == ("email", WANG, WANG, "王敏")
    assert inbound.reply_to_ref == sent["headers"]["Message-ID"]
    assert inbound.reply_to_text == "【催办】任务2.1 加大行政保护力度"  # names the task when the ref is lost
    assert inbound.external_id.startswith("<") and inbound.kind == "message"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Outlook's older "-----原始邮件-----" (Coremail web mail writes the same)
        (
            "已完成。\n\n-----原始邮件-----\n发件人: 联席会议办公室 [mailto:office@example.gov.cn]\n"
            "发送时间: 2026年3月2日 9:00\n"
            "收件人: 王敏\n主题: 【催办】任务2.1\n\n任务2.1 …",
            "已完成。",
        ),
        # a full-width colon in the header block, bold markers from an HTML-to-text conversion
        ("进度60%\n\n*发件人：* 联席会议办公室\n*发送时间：* 2026年3月2日\n*主题：* 任务2.1", "进度60%"),
        # a "-- " signature and a Chinese mobile footer
        ("正常推进\n-- \n王敏\n市场监管局知识产权科\n电话 021-1234", "正常推进"),
        ("正常推进\n--\n王敏", "正常推进"),
        ("有风险，资金未到位\n\n发自网易邮箱大师", "有风险，资金未到位"),
        ("受阻\n\n发自我的华为手机", "受阻"),
        ("Done.\n\nGet Outlook for iOS\n________________________________\nFrom: Office", "Done."),
        # inline answers between quoted lines are kept; the quoted lines go
        ("> 任务2.1 进度？\n80%\n> 任务2.2？\n已完成", "80%\n已完成"),
        # "From:" in the reply's own words is not a header block
        ("From: 我们这边看，进度正常", "From: 我们这边看，进度正常"),
    ],
)
def test_strip_reply_cuts_at_quote_headers_and_signatures(body: str, expected: str) -> None:
    assert strip_reply(body) == expected


def test_a_forged_token_is_refused_and_in_reply_to_still_threads(channel: EmailChannel) -> None:
    sent = sent_mail(channel)
    good = sent["headers"]["Reply-To"]
    forged = good.replace("+abcdefghijklmnop", "+bbcdefghijklmnop")  # another id with the old signature
    raw = reply_mail(None, sender=WANG, text="已完成", to=forged)
    parsed = parse(channel, raw)
    assert parsed.inbound is not None and parsed.inbound.reply_to_ref == ""
    other_key = EmailChannel(
        Settings(smtp_host="x", mail_from=MAIL_FROM, mail_reply_to=OFFICE, imap_password=Secret("someone else's"))
    )
    other = sent_mail(other_key, ident="cccccccccccccccc")["headers"]["Reply-To"]
    assert parse(channel, reply_mail(None, sender=WANG, text="x", to=other)).inbound.reply_to_ref == ""  # type: ignore[union-attr]
    # the token alone (a client that drops In-Reply-To) threads the reply
    raw = reply_mail(None, sender=WANG, text="已完成", to=good)
    assert parse(channel, raw).inbound.reply_to_ref == "<abcdefghijklmnop@example.gov.cn>"  # type: ignore[union-attr]
    # In-Reply-To alone threads it too, when it is one of our Message-IDs
    raw = reply_mail(
        None, sender=WANG, text="已完成", to=OFFICE, headers={"In-Reply-To": sent["headers"]["Message-ID"]}
    )
    assert parse(channel, raw).inbound.reply_to_ref == sent["headers"]["Message-ID"]  # type: ignore[union-attr]
    raw = reply_mail(None, sender=WANG, text="已完成", to=OFFICE, headers={"In-Reply-To": "<abcdefghijklmnop@evil.cn>"})
    assert parse(channel, raw).inbound.reply_to_ref == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "sender", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, WANG, "auto-submitted"),
        ({"Auto-Submitted": "auto-generated"}, WANG, "auto-submitted"),
        ({"X-Autoreply": "yes"}, WANG, "auto-reply header"),
        ({"Precedence": "bulk"}, WANG, "bulk"),
        ({"List-Id": "<staff.example.gov.cn>"}, WANG, "mailing list"),
        ({"Subject": "自动回复: 【催办】任务2.1"}, WANG, "auto-reply subject"),
        ({"Subject": "Automatic reply: 任务2.1"}, WANG, "auto-reply subject"),
        ({}, "MAILER-DAEMON@mx.example.gov.cn", "bounce"),
        ({}, OFFICE, "our own mail"),
    ],
)
def test_auto_replies_bounces_and_lists_are_skipped(
    channel: EmailChannel, headers: dict[str, str], sender: str, reason: str
) -> None:
    subject = headers.pop("Subject", "")
    raw = reply_mail(None, sender=sender, text="我正在休假，3月9日返回。", to=OFFICE, headers=headers, subject=subject)
    parsed = parse(channel, raw)
    assert parsed.inbound is None and reason in parsed.skipped
    assert parse(channel, reply_mail(None, sender=WANG, text="x", to=OFFICE, headers={"Auto-Submitted": "no"})).inbound


def test_a_delivery_report_is_a_bounce(channel: EmailChannel) -> None:
    raw = (
        b"From: Mail Delivery System <mailer@mx.example.gov.cn>\r\nTo: office@example.gov.cn\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    parsed = parse(channel, raw)
    assert parsed.inbound is None and parsed.skipped == "delivery report"


def test_gbk_mail_and_a_binding_code(channel: EmailChannel) -> None:
    raw = reply_mail(
        None, sender=f"王敏 <{WANG}>", text="绑定 AbCd1234xyz\n\n发自我的iPhone", to=OFFICE, charset="gb2312"
    )
    assert b"gb2312" in raw
    inbound = parse(channel, raw).inbound
    assert inbound is not None
    assert (inbound.kind, inbound.command, inbound.start_code, inbound.text) == (
        "command", "start", "AbCd1234xyz", "绑定 AbCd1234xyz"
    )  # fmt: skip
    by_subject = parse(channel, reply_mail(None, sender=WANG, text="", subject="绑定 AbCd1234xyz", to=OFFICE))
    assert by_subject.inbound is not None and by_subject.inbound.start_code == "AbCd1234xyz"


def test_without_a_message_id_the_mailbox_uid_is_the_key(channel: EmailChannel) -> None:
    raw = b"From: wang@amr.example.gov.cn\r\nTo: office@example.gov.cn\r\nSubject: x\r\n\r\n80%\r\n"
    inbound = parse(channel, raw).inbound
    assert inbound is not None and inbound.external_id == "imap:1:7" and inbound.text == "80%"


def test_no_secret_means_no_token_and_threading_by_message_id() -> None:
    bare = EmailChannel(Settings(smtp_host="x", mail_from=MAIL_FROM))
    sent = sent_mail(bare)
    assert sent["headers"]["Reply-To"] == OFFICE
    raw = reply_mail(sent, sender=WANG, text="进展顺利", style="gmail_en")
    assert parse(bare, raw).inbound.reply_to_ref == sent["headers"]["Message-ID"]  # type: ignore[union-attr]


def test_a_slash_command_on_the_first_line_is_a_command(channel: EmailChannel) -> None:
    raw = reply_mail(None, sender=WANG, text="/extend 2.1 2026-06-30 资金未到位\n\n发自我的iPhone", to=OFFICE)
    inbound = parse(channel, raw).inbound
    assert inbound is not None
    assert (inbound.kind, inbound.command, inbound.args) == ("command", "extend", "2.1 2026-06-30 资金未到位")
    plain = parse(channel, reply_mail(None, sender=WANG, text="本周完成2项 /tasks", to=OFFICE)).inbound
    assert plain is not None and plain.kind == "message"
