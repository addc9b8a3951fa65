"""``split_html``: Telegram HTML cut into messages of at most 4096 visible characters.

Every part is checked with the fake Bot API's model of Telegram's own HTML parser (``parse_html``: unknown or
unbalanced tags and broken entities are errors there, as they are a 400 from Telegram) and with a plain tag
balance check; "visible" text is what that parser returns. Cuts may drop the newline they fall on, so text is
compared without newlines.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from coordbot.channels.telegram import MAX_TEXT, split_html
from coordbot.testing.fake_telegram import parse_html

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>")


def _visible(part: str) -> str:
    """The text Telegram shows for ``part`` (EntityParseError when Telegram would refuse it)."""
    return parse_html(part)[0]


def _balanced(part: str) -> bool:
    stack: list[str] = []
    for m in _TAG.finditer(part):
        name = m.group(2).lower()
        if not m.group(1):
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False
    return not stack


def _check(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split ``text`` and assert what holds for every split: each part parses and balances on its own, has at
    most ``limit`` visible characters, and together the parts show the text in order."""
    parts = split_html(text, limit)
    for part in parts:
        assert _balanced(part), part
        assert len(_visible(part)) <= limit, part
    shown = "".join(_visible(p) for p in parts)
    assert shown.replace("\n", "") == _visible(text).replace("\n", "")
    return parts


# ---- limits ----------------------------------------------------------------------------------------


def test_a_message_within_the_limit_is_one_part_unchanged() -> None:
    text = "<b>周报</b>\n" + "进" * (MAX_TEXT - 4) + "&amp;"
    assert len(_visible(text)) == MAX_TEXT
    assert split_html(text) == [text]


def test_tags_and_entities_do_not_count_towards_the_limit() -> None:
    text = '<a href="https://example.org/?a=1&amp;b=2"><b>' + "&lt;" * MAX_TEXT + "</b></a>"
    assert split_html(text) == [text]


def test_one_visible_character_over_the_limit_makes_two_parts() -> None:
    parts = _check("x" * (MAX_TEXT + 1))
    assert [len(_visible(p)) for p in parts] == [MAX_TEXT, 1]


@pytest.mark.parametrize("limit", [1, 2, 3, 10, 50])
def test_small_limits(limit: int) -> None:
    text = "<b>ab</b>cd &amp; <i>e\nf</i>\n" * 5
    parts = _check(text, limit)
    assert len(parts) > 1


def test_lines_are_kept_whole_when_they_fit() -> None:
    lines = [f"{i:03d} " + "任务进展" * 20 for i in range(200)]  # 84 visible characters a line
    parts = _check("\n".join(lines))
    assert len(parts) > 1
    for part in parts:
        for line in _visible(part).split("\n"):
            assert line in lines  # no line cut in two
    assert all(len(_visible(p)) > MAX_TEXT - 85 for p in parts[:-1])  # and the parts are full


# ---- entities ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", range(-3, 4))
@pytest.mark.parametrize("entity", ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x1F44D;", "&#128077;"])
def test_an_entity_at_the_cut_stays_whole(entity: str, offset: int) -> None:
    text = "a" * (MAX_TEXT + offset) + entity * 3 + "b" * 10
    parts = _check(text)
    assert len(parts) == 2
    assert all(p.count("&") == p.count(";") for p in parts)


def test_a_long_run_of_entities_is_cut_between_them() -> None:
    parts = _check("&amp;&lt;" * MAX_TEXT)
    assert [len(_visible(p)) for p in parts] == [MAX_TEXT, MAX_TEXT]


# ---- tags ---------------------------------------------------------------------------------------------


def test_nested_tags_open_at_a_cut_are_closed_and_opened_again() -> None:
    link = '<a href="https://example.org/plan?week=2026-W13&amp;x=1">'
    text = "<b>重点任务 <i>" + link + "y" * (MAX_TEXT + 500) + "</a> tail</i> bold</b> plain"
    parts = _check(text)
    assert len(parts) == 2
    assert parts[0].endswith("</a></i></b>")
    assert parts[1].startswith("<b><i>" + link)
    entities = parse_html(parts[1])[1]
    assert {e["type"] for e in entities} == {"bold", "italic", "text_link"}


def test_a_tag_closed_before_the_cut_is_not_opened_again() -> None:
    text = "<b>title</b>\n" + "z" * (MAX_TEXT + 10)
    parts = _check(text)
    assert "<b>" not in parts[1]


@pytest.mark.parametrize(
    "opening, closing",
    [
        ('<span class="tg-spoiler">', "</span>"),
        ("<blockquote expandable>", "</blockquote>"),
        ("<pre>", "</pre>"),
        ('<pre><code class="language-python">', "</code></pre>"),
        ("<u>", "</u>"),
    ],
)
def test_tags_with_attributes_are_opened_again_as_written(opening: str, closing: str) -> None:
    parts = _check(opening + "line of text\n" * 700 + closing)
    assert len(parts) == 3
    assert all(p.startswith(opening) and p.endswith(closing) for p in parts)


# ---- a long run without newlines -----------------------------------------------------------------------


def test_a_long_run_without_newlines_fills_each_part() -> None:
    text = "长" * (2 * MAX_TEXT + 1808)
    parts = _check(text)
    assert [len(p) for p in parts] == [MAX_TEXT, MAX_TEXT, 1808]
    assert "".join(parts) == text


def test_a_long_run_inside_a_tag_is_cut_inside_the_tag() -> None:
    parts = _check("intro\n<b>" + "y" * (3 * MAX_TEXT) + "</b>")
    assert len(parts) == 4
    assert all(p.startswith("<b>") and p.endswith("</b>") for p in parts[1:])


def test_a_long_run_after_a_short_line_continues_the_part() -> None:
    # the part is less than half full: the run fills it rather than starting a part of its own
    parts = _check("short line\n" + "w" * (MAX_TEXT * 2))
    assert _visible(parts[0]).startswith("short line\nw")
    assert len(_visible(parts[0])) == MAX_TEXT


# ---- any well-formed message ------------------------------------------------------------------------------

_OPENINGS = ["<b>", "<i>", "<u>", "<s>", "<code>", '<a href="https://example.org/?q=1&amp;r=2">',
             "<blockquote>", '<span class="tg-spoiler">']  # fmt: skip
_words = st.text(alphabet="abc xyz 进度完成 👍\n", min_size=1, max_size=12)
_entities = st.sampled_from(["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x1F44D;"])


def _element(pair: tuple[str, list[str]]) -> str:
    opening, children = pair
    name = opening[1:].split(">")[0].split(" ")[0]
    return opening + "".join(children) + f"</{name}>"


_html = st.lists(
    st.recursive(
        st.one_of(_words, _entities),
        lambda inner: st.tuples(st.sampled_from(_OPENINGS), st.lists(inner, max_size=4)).map(_element),
        max_leaves=24,
    ),
    min_size=1,
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_html, limit=st.integers(min_value=1, max_value=40))
def test_every_part_parses_fits_and_the_text_is_preserved(text: str, limit: int) -> None:
    try:
        _visible(text)
    except ValueError:
        assume(False)  # nesting Telegram itself refuses: not split_html's business
    _check(text, limit)


# ---- known bugs (xfail, strict) -------------------------------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="split_html sends a part with nothing to show when the cut falls on a newline just before closing "
    "tags or trailing whitespace: '<pre>…\\n</pre>' gives a last part '<pre></pre>', '…\\n   ' a part '   '; "
    "Telegram refuses both ('message text is empty') after the first part went out",
)
@pytest.mark.parametrize(
    "text",
    ["<pre>" + "x" * MAX_TEXT + "\n</pre>", "<b>" + "x" * MAX_TEXT + "\n</b>", "x" * MAX_TEXT + "\n   "],
    ids=["pre", "bold", "whitespace"],
)
def test_no_part_is_empty(text: str) -> None:
    parts = _check(text)
    assert all(_visible(p).strip() for p in parts), parts


@pytest.mark.xfail(
    strict=True,
    reason="TAG matches only [a-zA-Z]+ names, so <tg-spoiler> (and <tg-emoji>) is taken for text: counted as "
    "visible and not closed and opened again at a cut, and both parts are refused ('Can't find end tag' / "
    "'Unexpected end tag')",
)
def test_a_tg_spoiler_open_at_a_cut_is_closed_and_opened_again() -> None:
    parts = _check("<tg-spoiler>" + "secret " * 1000 + "</tg-spoiler>")
    assert all(p.startswith("<tg-spoiler>") and p.endswith("</tg-spoiler>") for p in parts)


@pytest.mark.xfail(
    strict=True,
    reason="the docstring's 'cuts at line ends where it can' fails for a line split into several tokens by a tag "
    "or entity: the cut falls before the token that overflows, mid-line, although the line end before it "
    "leaves the part more than half full (a line of plain text is moved to the next part whole)",
)
def test_a_line_with_an_entity_is_moved_whole_like_a_plain_line() -> None:
    first = "a" * 3000
    second = "b " * 400 + "&amp;" + " c" * 600
    parts = _check(first + "\n" + second)
    assert [_visible(p) for p in parts] == [first, _visible(second)]
