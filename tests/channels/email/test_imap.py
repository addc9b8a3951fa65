"""The front end against a real IMAP server (Dovecot): IDLE picks a mail up at once, polling where the
server has no IDLE, \\Seen only once ``handle`` returned, auto-replies skipped, answers threaded, numbered
options pressed by a bare number."""

from __future__ import annotations

import asyncio
import time

from coordbot.channels.base import Button, Outbound, Reply
from coordbot.channels.email import EmailFrontend
from coordbot.testing.fake_email import Dovecot, FakeMail, MailboxClient, reply_mail

from .conftest import IMAP_PASSWORD, OFFICE, WANG, Recorder, mail_settings, needs_dovecot, wait_until


async def test_idle_picks_up_a_new_mail_within_a_second_or_two(
    running: EmailFrontend, mail: FakeMail, recorder: Recorder
) -> None:
    assert running.uses_idle
    started = time.monotonic()
    await mail.user_sends(WANG, "本周完成2项", subject="任务2.1 进展")
    [inbound] = await recorder.wait(1, timeout=5)
    assert time.monotonic() - started < 2.0
    assert (inbound.sender_id, inbound.text, inbound.kind) == (WANG, "本周完成2项", "message")
    await wait_until(lambda: running._idling)
    await mail.user_sends(WANG, "再补充一句")  # and the next one, after IDLE was issued again
    await recorder.wait(2, timeout=5)


async def test_without_idle_the_mailbox_is_polled(mail: FakeMail, recorder: Recorder) -> None:
    needs_dovecot()
    async with Dovecot({OFFICE: IMAP_PASSWORD}, idle=False) as imap:
        fe = EmailFrontend(mail_settings(mail.smtp, imap_port=imap.port, imap_poll_seconds=0.3), recorder)
        await fe.start()
        try:
            await wait_until(lambda: fe.uses_idle is not None)
            assert fe.uses_idle is False
            raw = reply_mail(None, sender=WANG, text="轮询也能收到", to=OFFICE)
            started = time.monotonic()
            await MailboxClient(imap, OFFICE).deliver(raw)
            [inbound] = await recorder.wait(1, timeout=5)
            assert inbound.text == "轮询也能收到" and time.monotonic() - started < 2.0
        finally:
            await fe.stop()


async def test_seen_only_after_handle_returned_and_a_failed_mail_is_read_again(
    running: EmailFrontend, mail: FakeMail, recorder: Recorder
) -> None:
    recorder.block = asyncio.Event()
    recorder.fail = 1
    await mail.user_sends(WANG, "进度80%")
    await asyncio.wait_for(recorder.entered.wait(), 5)
    assert "\\Seen" not in (await mail.mailbox.flags())[1]  # handle has not returned yet
    recorder.block.set()  # it raises once: the mail stays unseen and is read again
    [inbound] = await recorder.wait(1)
    assert inbound.text == "进度80%"
    async with asyncio.timeout(5):
        while "\\Seen" not in (await mail.mailbox.flags())[1]:
            await asyncio.sleep(0.05)
    assert len(recorder.seen) == 1 and not running._attempts


async def test_auto_replies_are_flagged_seen_without_reaching_handle(
    running: EmailFrontend, mail: FakeMail, recorder: Recorder
) -> None:
    await mail.user_sends(WANG, "我正在休假", headers={"Auto-Submitted": "auto-replied"})
    await mail.user_sends(WANG, "真正的回复")
    [inbound] = await recorder.wait(1)
    assert inbound.text == "真正的回复"
    flags = await mail.mailbox.flags()
    assert all("\\Seen" in f for f in flags.values()) and len(flags) == 2
    assert len(recorder.seen) == 1


async def test_the_answer_is_threaded_and_a_bare_number_presses_an_option(
    running: EmailFrontend, mail: FakeMail, recorder: Recorder
) -> None:
    await running.channel.send(
        Outbound(
            WANG, "<b>任务2.1</b> 状态？", buttons=((Button("已完成", "done", "o5"), Button("受阻", "blocked", "o5")),)
        )
    )
    [reminder] = mail.sent_to(WANG)
    recorder.answer = lambda inbound: Reply(f"收到：{inbound.callback_action or inbound.text}")
    raw = await mail.user_sends(WANG, "2", reply_to=reminder, style="iphone_zh")
    [pressed] = await recorder.wait(1)
    assert (pressed.kind, pressed.callback_action, pressed.callback_ref) == ("callback", "blocked", "o5")
    assert pressed.reply_to_ref == reminder["headers"]["Message-ID"]
    [_, answer] = await mail.wait_for_mail(WANG, 2)
    assert answer["text"].strip() == "收到：blocked"
    their_id = next(line for line in raw.decode().splitlines() if line.startswith("Message-ID:")).split(": ")[1]
    assert answer["headers"]["In-Reply-To"] == their_id
    assert answer["subject"] == "回复：【催办】任务2.1 状态？"


async def test_stop_ends_the_idle_promptly(mail: FakeMail, recorder: Recorder) -> None:
    fe = EmailFrontend(mail_settings(mail.smtp, imap_port=mail.imap.port), recorder)
    await fe.start()
    await wait_until(lambda: fe._idling)
    started = time.monotonic()
    await fe.stop()
    assert time.monotonic() - started < 3
