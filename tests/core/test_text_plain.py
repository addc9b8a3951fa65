"""``html_to_text``: the chat HTML (Telegram's subset) as text for a terminal or a .txt file."""

from __future__ import annotations

from coordbot.core.text import html_to_text


def test_tags_go_entities_come_back_and_links_keep_their_address() -> None:
    html = (
        '<b>任务1.1 &amp; 2.1</b>\n<i>进度</i>：50%<br><a href="https://desk.example/r/1">填报</a> '
        "<code>&lt;x&gt;</code>"
    )
    assert html_to_text(html) == "任务1.1 & 2.1\n进度：50%\n填报 (https://desk.example/r/1) <x>"


def test_a_link_whose_label_is_its_address_is_not_repeated() -> None:
    assert html_to_text('<a href="https://t.me/bot">https://t.me/bot</a>') == "https://t.me/bot"
    assert html_to_text("纯文本，无标签") == "纯文本，无标签"
