"""Replies as real mail clients write them: their quote headers, quoting and footers, byte for byte.

Each style below was modelled on mail those clients send (Foxmail 7.2 and QQ 邮箱 web: the "原始邮件" rule and
a 发件人/发送时间/收件人/主题 block; Outlook 365 Chinese: an underscore rule and the same block; Gmail: "… 于
2026年3月2日周一 09:00写道：" or "On … wrote:" with ">" quoting; iPhone Mail: "发自我的iPhone" and a quoted
"在 2026年3月2日，09:00，… 写道："). ``reply_mail`` builds the whole MIME mail a contact's client would send.
"""

from __future__ import annotations

import html
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

STYLES = ("foxmail", "qq", "outlook_zh", "outlook_en", "gmail_zh", "gmail_en", "iphone_zh", "iphone_en", "plain")

_DATE_ZH = "2026年3月2日(星期一) 上午9:00"


def _quoted(original: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in original.splitlines())


def reply_text(style: str, reply: str, *, original: str, office: str, subject: str) -> str:
    """The text/plain body of a reply in ``style``: the reply on top, the client's quote below."""
    name, _, addr = office.partition(" <")
    addr = addr.rstrip(">") or name
    if style == "foxmail" or style == "qq":
        return (
            f"{reply}\n\n\n------------------ 原始邮件 ------------------\n"
            f'发件人: "{name}"<{addr}>;\n发送时间: {_DATE_ZH}\n收件人: "王敏"<wang@amr.example.gov.cn>;\n'
            f"主题: {subject}\n\n{original}\n"
        )
    if style == "outlook_zh":
        return (
            f"{reply}\n\n________________________________\n发件人: {name} <{addr}>\n"
            f"发送时间: 2026年3月2日 9:00\n收件人: 王敏 <wang@amr.example.gov.cn>\n主题: {subject}\n\n{original}\n"
        )
    if style == "outlook_en":
        return (
            f"{reply}\n\n-----Original Message-----\nFrom: {name} <{addr}>\nSent: Monday, March 2, 2026 9:00 AM\n"
            f"To: Wang Min <wang@amr.example.gov.cn>\nSubject: {subject}\n\n{original}\n"
        )
    if style == "gmail_zh":
        return f"{reply}\n\n{name} <{addr}> 于2026年3月2日周一 09:00写道：\n\n{_quoted(original)}\n"
    if style == "gmail_en":
        # Gmail wraps a long attribution line before the address.
        return f"{reply}\n\nOn Mon, Mar 2, 2026 at 9:00 AM {name} <\n{addr}> wrote:\n\n{_quoted(original)}\n"
    if style == "iphone_zh":
        return (
            f"{reply}\n\n发自我的iPhone\n\n> 在 2026年3月2日，09:00，{name} <{addr}> 写道：\n>\n{_quoted(original)}\n"
        )
    if style == "iphone_en":
        attribution = f"> On Mar 2, 2026, at 09:00, {name} <{addr}> wrote:"
        return f"{reply}\n\nSent from my iPhone\n\n{attribution}\n>\n{_quoted(original)}\n"
    if style == "plain":
        return reply + "\n"
    raise ValueError(f"unknown style {style!r}")


def qq_html(reply: str, *, original: str, office: str, subject: str) -> str:
    """QQ 邮箱 web's HTML reply: the reply in divs, then its grey quote box (no text/plain alternative)."""
    name, _, addr = office.partition(" <")
    addr = addr.rstrip(">")
    body = "".join(f"<div>{html.escape(line)}</div>" for line in reply.splitlines())
    quote = "".join(f"<div>{html.escape(line)}</div>" for line in original.splitlines())
    return (
        '<meta http-equiv="Content-Type" content="text/html; charset=GB18030">'
        f"<div>{body}</div><div><br></div><div><br></div>"
        '<div style="font-size: 12px;font-family: Arial Narrow;padding:2px 0 2px 0;">'
        "------------------&nbsp;原始邮件&nbsp;------------------</div>"
        '<div style="font-size: 12px;background:#efefef;padding:8px;">'
        f'<div><b>发件人:</b>&nbsp;"{html.escape(name)}"&lt;{addr}&gt;;</div>'
        f"<div><b>发送时间:</b>&nbsp;{_DATE_ZH}</div>"
        '<div><b>收件人:</b>&nbsp;"王敏"&lt;wang@amr.example.gov.cn&gt;;<wbr></div>'
        f"<div></div><div><b>主题:</b>&nbsp;{html.escape(subject)}</div></div><div><br></div>{quote}"
    )


def reply_mail(
    sent: dict[str, Any] | None,
    *,
    sender: str,
    text: str,
    style: str = "gmail_zh",
    subject: str = "",
    to: str = "",
    headers: dict[str, str] | None = None,
    charset: str = "utf-8",
) -> bytes:
    """The mail ``sender``'s client sends: a reply to ``sent`` (a dict from ``FakeSMTP.sent_to``) when given
    (To its Reply-To, In-Reply-To/References its Message-ID, "Re:" its subject, its text quoted), else a new
    mail to ``to``."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["Date"] = format_datetime(datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].rstrip(">") or "example.com")
    if sent is not None:
        h = sent["headers"]
        msg["To"] = h.get("Reply-To") or h["From"]
        chinese = style.endswith("zh") or style in ("qq", "foxmail")
        msg["Subject"] = subject or ("回复：" if chinese else "Re: ") + sent["subject"]
        msg["In-Reply-To"] = h["Message-ID"]
        msg["References"] = h["Message-ID"]
        original, office, original_subject = sent["text"].strip(), h["From"], sent["subject"]
    else:
        msg["To"] = to
        msg["Subject"] = subject or text.splitlines()[0][:40]
        original, office, original_subject = "", "", ""
    for k, v in (headers or {}).items():
        msg[k] = v
    if sent is not None and style == "qq":
        msg.set_content(
            qq_html(text, original=original, office=office, subject=original_subject), subtype="html", charset=charset
        )
    elif sent is not None:
        msg.set_content(
            reply_text(style, text, original=original, office=office, subject=original_subject), charset=charset
        )
    else:
        msg.set_content(text + "\n", charset=charset)
    return msg.as_bytes()
