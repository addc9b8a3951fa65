"""Telegram HTML to WeCom markdown and text, split at WeCom's byte limits."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from coordbot.channels.wecom import MAX_MARKDOWN_BYTES, has_markup, plain_text, split_rendered


def nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def test_markdown_subset() -> None:
    html = (
        '<b>任务2.1</b> 加大保护 &amp; <a href="https://x.example/a?b=1&amp;c=2">详情</a>\n'
        "<code>run</code> <i>斜</i><u>下</u><s>删</s>"
    )
    [md] = split_rendered(html, MAX_MARKDOWN_BYTES)
    assert md == "**任务2.1** 加大保护 & [详情](https://x.example/a?b=1&c=2)\n`run` 斜下删"


def test_styles_close_at_line_ends() -> None:
    [md] = split_rendered("<b>一\n二</b>", MAX_MARKDOWN_BYTES)
    assert md == "**一**\n**二**"


def test_plain_text_keeps_links() -> None:
    assert plain_text('<b>看</b> <a href="https://x.example">这里</a>') == "看 这里 (https://x.example)"
    assert not has_markup("纯文本 &lt;b&gt;")
    assert plain_text("纯文本 &lt;b&gt;") == "纯文本 <b>"
    assert has_markup("<b>粗</b>")


def test_split_at_lines_within_the_limit() -> None:
    lines = [f"第{i}行：" + "进展" * 20 for i in range(100)]
    parts = split_rendered("\n".join(lines), 2048, markdown=False)
    assert len(parts) > 1
    assert all(nbytes(p) <= 2048 for p in parts)
    assert "\n".join(parts) == "\n".join(lines)  # cut between lines only


def test_a_long_bold_run_is_cut_with_its_markup_closed() -> None:
    parts = split_rendered("<b>" + "字" * 2000 + "</b>", 2048)
    assert all(nbytes(p) <= 2048 for p in parts)
    assert all(p.startswith("**") and p.endswith("**") for p in parts)
    assert "".join(p.strip("*") for p in parts) == "字" * 2000


def test_four_byte_characters_are_never_halved() -> None:
    parts = split_rendered("😀" * 1000, 2047, markdown=False)
    assert all(nbytes(p) <= 2047 for p in parts)
    assert "".join(parts) == "😀" * 1000


_piece = st.one_of(
    st.text(alphabet="ab 字😀&<>\n", min_size=1, max_size=30).map(
        lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    ),
    st.sampled_from(["<b>", "</b>", "<i>", "</i>", "<code>", "</code>", '<a href="https://e.x/p">', "</a>", "\n"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_piece, max_size=60), st.integers(min_value=24, max_value=300))
def test_property_parts_fit_and_lose_no_text(pieces: list[str], limit: int) -> None:
    html = "".join(pieces)
    for markdown in (True, False):
        parts = split_rendered(html, limit, markdown=markdown)
        assert all(nbytes(p) <= limit for p in parts)
        # every visible character survives, in order (markup and line breaks aside)
        seen = re.sub(r"\*\*|`|\[|\]\(https://e\.x/p\)| \(https://e\.x/p\)|\s", "", "".join(parts))
        expected = re.sub(r"\s", "", plain_text(html).replace(" (https://e.x/p)", ""))
        if markdown:
            expected = expected.replace("*", "").replace("`", "").replace("[", "").replace("]", "")
            seen = seen.replace("*", "").replace("`", "").replace("[", "").replace("]", "")
        assert seen == expected
