"""Sending through a real SMTP server (aiosmtpd): the MIME that arrives, the reply token, attachments, the
connection reused and re-opened, each SMTP failure as its channel error, the pace, and STARTTLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from coordbot.channels.base import (
    Button,
    ChannelAuthError,
    ChannelError,
    ContentRejectedError,
    Outbound,
    PermanentChannelError,
    TransientChannelError,
)
from coordbot.channels.email import EmailChannel, MailIdentity, ReplyTokens
from coordbot.core.config import Secret
from coordbot.testing.fake_email import FakeSMTP, RateLimits

from .conftest import IMAP_PASSWORD, MAIL_FROM, OFFICE, SMTP_PASSWORD, WANG, mail_settings

REMINDER = (
    "<b>任务2.1 加大行政保护力度</b>\n请报送本周进展\n· 专项行动：今年 0/10 项\n"
    "状态：🟢正常推进　进度：30%\n\n请直接回复本消息报送进展，或点击下方按钮。"
)
STATUS = (
    (Button("✅ 已完成", "done", "o7"), Button("🟢 正常推进", "on_track", "o7")),
    (Button("🟡 有风险", "at_risk", "o7"), Button("🔴 受阻", "blocked", "o7")),
    (Button("✍️ 填报进展", "report", "o7"),),
)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def test_a_reminder_arrives_as_multipart_alternative_with_a_signed_reply_token(
    channel: EmailChannel, smtp: FakeSMTP
) -> None:
    delivery = await channel.send(Outbound(WANG, REMINDER, buttons=STATUS))
    [got] = smtp.sent_to(WANG)
    msg, h = got["message"], got["headers"]
    assert got["authenticated"] and got["mail_from"] == OFFICE and got["rcpt_tos"] == [WANG]
    assert got["subject"] == "【催办】任务2.1 加大行政保护力度"
    raw_headers = got["raw"].split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii() and b"Subject: =?utf-8?" in raw_headers  # RFC 2047, no raw UTF-8 in headers
    assert h["From"] == MAIL_FROM and h["To"] == WANG
    assert h["Message-ID"] == delivery.ref and delivery.ref.endswith("@example.gov.cn>")
    assert delivery.channel == "email" and h["Date"] and h["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert got["text"].startswith("任务2.1 加大行政保护力度\n请报送本周进展\n")
    assert "请回复数字选择：\n1. ✅ 已完成\n2. 🟢 正常推进\n3. 🟡 有风险\n4. 🔴 受阻\n5. ✍️ 填报进展" in got["text"]
    assert "<b>任务2.1 加大行政保护力度</b><br>" in got["html"] and "5. ✍️ 填报进展" in got["html"]
    # Reply-To: office+<id><sig>@example.gov.cn, the id being the Message-ID's, the signature ours.
    local, _, domain = h["Reply-To"].partition("@")
    base, _, token = local.partition("+")
    assert (base, domain) == ("office", "example.gov.cn") and token == token.lower() and len(token) == 32
    ident = ReplyTokens(IMAP_PASSWORD).verify(token)
    assert ident is not None and MailIdentity.of(channel.settings).message_id(ident) == delivery.ref
    assert ReplyTokens("another secret").verify(token) is None


async def test_a_document_is_an_attachment_with_its_chinese_file_name(channel: EmailChannel, smtp: FakeSMTP) -> None:
    content = b"PK\x03\x04" + bytes(range(256)) * 40
    await channel.send(Outbound(WANG, "<b>联席会议简报（第3期）</b>", document=("联席会议简报（第3期）.docx", content)))
    [got] = smtp.sent_to(WANG)
    assert got["message"].get_content_type() == "multipart/mixed"
    assert got["attachments"] == [("联席会议简报（第3期）.docx", DOCX, content)]
    assert b"filename*" in got["raw"] and b"utf-8''%E8%81%94" in got["raw"]  # RFC 2231
    assert got["subject"] == "联席会议简报（第3期）"


async def test_html_part_escapes_what_is_not_the_subset(channel: EmailChannel, smtp: FakeSMTP) -> None:
    text = (
        'a &lt;script&gt; <i>b</i> <a href="javascript:alert(1)">x</a> <a href="https://e.cn/?a=1&amp;b=2">链接</a>'
        "\n<pre>x < y\n  z</pre><img src=x onerror=y>"
    )
    await channel.send(Outbound(WANG, text))
    [got] = smtp.sent_to(WANG)
    html = got["html"]
    assert "<script" not in html and "javascript:" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "<i>b</i>" in html and '<a href="https://e.cn/?a=1&amp;b=2">链接</a>' in html
    assert "&lt;img src=x onerror=y&gt;" in html
    assert got["text"].startswith("a <script> b x 链接 (https://e.cn/?a=1&b=2)\nx < y\n  z")


async def test_one_connection_is_reused_and_reopened_when_the_server_dropped_it(
    channel: EmailChannel, smtp: FakeSMTP
) -> None:
    for i in range(3):
        await channel.send(Outbound(WANG, f"第{i}封"))
    assert smtp.connections == 1
    smtp._drop_connections()  # the server closed the idle connection
    await asyncio.sleep(0)
    await channel.send(Outbound(WANG, "第4封"))
    assert smtp.connections == 2 and len(smtp.sent_to(WANG)) == 4


@pytest.mark.parametrize(
    ("code", "error", "address_problem"),
    [
        (550, PermanentChannelError, True),
        (551, PermanentChannelError, True),
        (553, PermanentChannelError, True),
        (450, TransientChannelError, False),
        (451, TransientChannelError, False),
        (452, TransientChannelError, False),
        (421, TransientChannelError, False),
        (552, ContentRejectedError, False),
        (554, ContentRejectedError, False),
        (535, ChannelAuthError, False),
    ],
)
async def test_each_smtp_refusal_is_its_channel_error(
    smtp: FakeSMTP, code: int, error: type[ChannelError], address_problem: bool
) -> None:
    channel = EmailChannel(mail_settings(smtp), rate_per_second=1000)
    try:
        smtp.fail_next(1, code)
        with pytest.raises(ChannelError) as caught:
            await channel.send(Outbound(WANG, "进展如何？"))
        assert type(caught.value) is error, caught.value
        assert getattr(caught.value, "address_problem", False) is address_problem
        assert str(code) in str(caught.value)
        await channel.send(Outbound(WANG, "再试一次"))  # the next mail goes through (on a fresh session if needed)
        assert [m["text"] for m in smtp.sent_to(WANG)] == ["再试一次\n"]
    finally:
        await channel.close()


async def test_a_wrong_password_is_an_auth_error_and_an_unknown_mailbox_permanent(smtp: FakeSMTP) -> None:
    wrong = EmailChannel(mail_settings(smtp, smtp_password=Secret("wrong")))
    with pytest.raises(ChannelAuthError, match="535"):
        await wrong.send(Outbound(WANG, "x"))
    await wrong.close()
    smtp.strict_recipients = True
    smtp.add_user(WANG)
    channel = EmailChannel(mail_settings(smtp))
    with pytest.raises(PermanentChannelError) as caught:
        await channel.send(Outbound("left@amr.example.gov.cn", "x"))
    assert caught.value.address_problem
    with pytest.raises(PermanentChannelError, match="not an e-mail address"):
        await channel.send(Outbound("1001", "x"))
    await channel.send(Outbound(WANG, "ok"))
    await channel.close()


async def test_an_outage_is_transient_and_the_channel_recovers(channel: EmailChannel, smtp: FakeSMTP) -> None:
    await channel.send(Outbound(WANG, "before"))
    async with smtp.outage():
        with pytest.raises(TransientChannelError):
            await channel.send(Outbound(WANG, "during"))
    await channel.send(Outbound(WANG, "after"))
    assert [m["text"].strip() for m in smtp.sent_to(WANG)] == ["before", "after"]


async def test_a_fan_out_is_paced_below_the_servers_rate() -> None:
    async with FakeSMTP(users={OFFICE: SMTP_PASSWORD}, rate_limits=RateLimits(per_second=20)) as smtp:
        channel = EmailChannel(mail_settings(smtp), rate_per_second=20)
        started = time.monotonic()
        await asyncio.gather(*(channel.send(Outbound(f"u{i}@x.example.cn", f"提醒{i}")) for i in range(30)))
        elapsed = time.monotonic() - started
        await channel.close()
    assert smtp.rate_limited == 0 and len(smtp.received) == 30
    assert 29 / 20 - 0.05 <= elapsed < 29 / 20 + 0.5


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_starttls_with_the_servers_certificate_and_auth_only_after_it(tmp_path: Path) -> None:
    key, cert = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with FakeSMTP(users={OFFICE: SMTP_PASSWORD}, tls_context=server_ctx) as smtp:
        settings = mail_settings(smtp, smtp_security="starttls")
        trusted = ssl.create_default_context(cafile=str(cert))
        channel = EmailChannel(settings, tls_context=trusted)
        await channel.send(Outbound(WANG, "加密发送"))
        await channel.close()
        assert smtp.sent_to(WANG)[0]["authenticated"]
        untrusting = EmailChannel(settings)  # the system's CAs do not know this certificate
        with pytest.raises(ChannelAuthError):
            await untrusting.send(Outbound(WANG, "x"))
        await untrusting.close()
        plain = EmailChannel(mail_settings(smtp, smtp_security="none"))  # the server insists on STARTTLS
        with pytest.raises(ChannelError):
            await plain.send(Outbound(WANG, "x"))
        await plain.close()
    assert len(smtp.sent_to(WANG)) == 1
