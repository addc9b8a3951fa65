"""Telegram HTML → DingTalk markdown, the split at DingTalk's limits, the title, and the callback sign."""

from __future__ import annotations

import json
import re

import pytest

from coordbot.channels.dingtalk import (
    MAX_MARKDOWN_CHARS,
    MAX_PARAM_BYTES,
    callback_sign,
    title_of,
    to_markdown_parts,
    verify_callback,
)
from coordbot.testing.fake_dingtalk import sign as fake_sign

from .conftest import APP_SECRET


def _unmark(md: str) -> str:
    """The visible text of our markdown: markers, hard breaks and escapes removed."""
    md = md.replace("  \n", "\n")
    md = re.sub(r"(?<!\\)\*\*", "", md)
    return re.sub(r"\\(.)", r"\1", md)


def test_the_html_subset_renders_as_dingtalk_markdown() -> None:
    html = (
        '<b>任务2.1 加大行政保护力度</b>\n请报送<i>本周</i>进展，<a href="https://gov.example.cn/r?x=1">填报</a>\n'
        "<code>a*b</code> &lt;tag&gt; &amp;"
    )
    [md] = to_markdown_parts(html)
    assert md == (
        "**任务2.1 加大行政保护力度**  \n请报送*本周*进展，[填报](https://gov.example.cn/r?x=1)  \na\\*b <tag> &"
    )


def test_spaces_stay_outside_the_markers_and_line_starts_do_not_become_headings() -> None:
    [md] = to_markdown_parts("<b> 粗体 </b>x\n# 不是标题\n> 不是引用\n1. 选项保持有序列表")
    assert md.splitlines() == ["**粗体** x  ", "\\# 不是标题  ", "\\> 不是引用  ", "1. 选项保持有序列表"]


def test_links_only_for_web_urls() -> None:
    [md] = to_markdown_parts('<a href="javascript:alert(1)">点我</a> <a href="https://a.cn/x y">b</a>')
    assert md == "点我 [b](https://a.cn/x%20y)"


def test_a_short_message_is_one_part() -> None:
    assert to_markdown_parts("你好") == ["你好"]
    assert to_markdown_parts("") == []


def test_long_text_splits_between_lines_within_both_limits() -> None:
    lines = [f"<b>第{i}行</b> " + "进展情况说明" * 30 for i in range(200)]
    parts = to_markdown_parts("\n".join(lines))
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= MAX_MARKDOWN_CHARS
        param = json.dumps({"title": "标题" * 15, "text": part}, ensure_ascii=False)
        assert len(param.encode()) <= MAX_PARAM_BYTES
        assert part.count("**") % 2 == 0  # no part opens bold it does not close
        assert not part.startswith("  ") and not part.endswith("\n")
    # every line whole, in order, in exactly one part (the cuts fell between lines)
    shown = [line.rstrip() for part in parts for line in part.split("  \n")]
    assert shown == [f"**第{i}行** " + "进展情况说明" * 30 for i in range(200)]


def test_one_long_bold_line_is_cut_between_characters_each_piece_bold() -> None:
    text = "很" * 12_000
    parts = to_markdown_parts(f"<b>{text}</b>\n末行")
    assert len(parts) >= 3
    assert all(p.startswith("**") for p in parts[:-1])
    assert all(len(p) <= MAX_MARKDOWN_CHARS for p in parts)
    assert "".join(_unmark(p) for p in parts).replace("\n", "") == text + "末行"


def test_ascii_text_is_bounded_by_characters_and_cjk_by_bytes() -> None:
    ascii_parts = to_markdown_parts("x" * 12_000)
    assert [len(p) for p in ascii_parts] == [5000, 5000, 2000]
    cjk_parts = to_markdown_parts("字" * 12_000)
    assert all(len(p.encode()) <= MAX_PARAM_BYTES - 100 for p in cjk_parts)
    assert sum(len(p) for p in cjk_parts) == 12_000


def test_escapes_never_split_from_their_character() -> None:
    parts = to_markdown_parts("*" * 9_000)
    assert all(not re.search(r"(?<!\\)(\\\\)*\\$", p) for p in parts)
    assert "".join(_unmark(p) for p in parts) == "*" * 9_000


def test_title_is_the_first_visible_line_shortened() -> None:
    assert title_of("\n<b>任务2.1 加大行政保护力度</b>\n正文") == "任务2.1 加大行政保护力度"
    assert title_of("长" * 40) == "长" * 29 + "…"
    assert title_of("") == "coordbot"


# ---- the callback's sign ----

# Computed with OpenSSL, not Python: printf '1577262236757\n<secret>' | openssl dgst -sha256 -hmac <secret>
# -binary | base64. The timestamp is the one in DingTalk's "机器人接收消息" example header; DingTalk
# publishes no secret with it, so the secrets are ours (the first is the custom robot document's sample).
VECTORS = [
    ("1577262236757", "this is secret", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="),
    ("1577262236757", APP_SECRET, "l/XBiS/uBNbIf3RzaX9hfaSFZKTInjtbOzsB0lVgxx8="),
]


@pytest.mark.parametrize(("timestamp", "secret", "expected"), VECTORS)
def test_sign_matches_an_independent_hmac(timestamp: str, secret: str, expected: str) -> None:
    assert callback_sign(timestamp, secret) == expected
    assert fake_sign(timestamp, secret) == expected  # the fake's own implementation agrees


def test_verify_accepts_within_the_hour_and_refuses_outside() -> None:
    ts = 1_700_000_000_000
    good = callback_sign(str(ts), APP_SECRET)
    assert verify_callback(str(ts), good, APP_SECRET, now_ms=ts) == ""
    assert verify_callback(str(ts), good, APP_SECRET, now_ms=ts + 3_600_000) == ""
    assert verify_callback(str(ts), good, APP_SECRET, now_ms=ts - 3_600_000) == ""
    assert "window" in verify_callback(str(ts), good, APP_SECRET, now_ms=ts + 3_600_001)
    assert "window" in verify_callback(str(ts), good, APP_SECRET, now_ms=ts - 3_600_001)
    assert verify_callback(str(ts), ("B" if good[0] == "A" else "A") + good[1:], APP_SECRET, now_ms=ts) == "wrong sign"
    assert verify_callback(str(ts), good, APP_SECRET + "x", now_ms=ts) == "wrong sign"
    assert verify_callback("", good, APP_SECRET, now_ms=ts) != ""
    assert verify_callback("12ab", good, APP_SECRET, now_ms=ts) != ""
    assert verify_callback(str(ts), good, "", now_ms=ts) != ""  # no secret configured: nothing is authentic
