"""The log redaction: configured secrets and token-shaped parts masked in message, arguments and traceback."""

from __future__ import annotations

import logging

import pytest

from coordbot.core.config import Secret, Settings
from coordbot.core.logs import MASK, install_redaction, redact


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("HTTP Request: POST http://127.0.0.1:9/bot123456:AAH-x_y/getUpdates", "123456:AAH-x_y"),
        ("token 7000000001:AAHkq-3JmYzQ0Nzc4ZWYxNDk5YjQ2ZWM5Z", "7000000001:AAHkq-3JmYzQ0Nzc4ZWYxNDk5YjQ2ZWM5Z"),
        ("GET https://oapi.dingtalk.com/robot/send?access_token=abc123def&timestamp=1", "abc123def"),
        ("POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx", "693a91f6-7xxx"),
        ("GET /cgi-bin/gettoken?corpid=ww1&corpsecret=S3cr3tValue", "S3cr3tValue"),
        ("POST https://open.feishu.cn/open-apis/bot/v2/hook/2ab5-cdef-0123", "2ab5-cdef-0123"),
        ("setWebhook {'url': 'https://x', 'secret_token': 'hook-secret-1'}", "hook-secret-1"),
        ("postgresql+psycopg://coordbot:pa55word@db:5432/coordbot", "pa55word"),
        ("update text='/start AbCdEfGh12345678_-xyz'", "AbCdEfGh12345678_-xyz"),
        ("https://t.me/coordbot_bot?start=AbCdEfGh12345678", "AbCdEfGh12345678"),
        ("收到：绑定 AbCdEfGh12345678xyz", "AbCdEfGh12345678xyz"),
    ],
)
def test_token_shaped_parts_are_masked(text: str, hidden: str) -> None:
    out = redact(text)
    assert hidden not in out and MASK in out, out


def test_ordinary_text_is_left_alone() -> None:
    for text in ("tick: 3 claimed, 3 sent", "您已绑定为联络员", "https://t.me/coordbot_bot", "key: value"):
        assert redact(text) == text


def test_every_secret_setting_is_masked_in_message_args_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        telegram_token=Secret("plain-token-no-shape"),
        wecom_secret=Secret("wecom-app-secret-value"),
        smtp_password=Secret("mail password 42"),
        database_url="postgresql://u:db-password-9@h/d",
    )
    install_redaction(settings)
    log = logging.getLogger("coordbot.test.redaction")
    with caplog.at_level(logging.DEBUG):
        log.debug("sent %s and %r", "plain-token-no-shape", {"secret": "wecom-app-secret-value"})
        try:
            raise RuntimeError("login failed with mail password 42")
        except RuntimeError:
            log.exception("db-password-9 refused")
    text = caplog.text
    assert "sent **** and {'secret': '****'}" in text
    assert "RuntimeError: login failed with ****" in text
    for secret in ("plain-token-no-shape", "wecom-app-secret-value", "mail password 42", "db-password-9"):
        assert secret not in text
