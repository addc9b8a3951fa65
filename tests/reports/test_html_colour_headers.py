"""The HTML reports' table headers are words, and a status colour is a shaded cell with its word (issue 16: emoji
are boxes without an emoji font and not what an official page uses)."""

from __future__ import annotations

import re

import html5lib
import pytest

from coordbot.reports.digest import build_digest

from .conftest import DIGEST_WEEK, NOW

EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
WORDS = {"zh": {"red": "红", "yellow": "黄", "green": "绿"}, "en": {"red": "Red", "yellow": "Yellow", "green": "Green"}}


def _cells(page: str, tag: str) -> list[tuple[str, str]]:
    """(class, text) of every ``tag`` cell of the page's tables."""
    doc = html5lib.parse(page, namespaceHTMLElements=False)
    return [(el.get("class") or "", "".join(el.itertext()).strip()) for el in doc.iter(tag)]


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_digest_page_headers_are_words_and_colours_are_shaded_cells(plan_in, locale: str) -> None:
    s, plan = plan_in()
    digest = build_digest(session=s, plan=plan, now=NOW, week=DIGEST_WEEK, locale=locale, store=False)
    page = digest.render("html")
    s.close()
    headers = _cells(page, "th")
    assert headers and all(text and not EMOJI.search(text) for _, text in headers), headers
    words = WORDS[locale]
    for colour in ("red", "yellow", "green"):
        assert (f"shade {colour}", words[colour]) in headers  # 总体情况's columns
    assert [t for c, t in headers if c == "shade red"] == [words["red"]] * 2  # and 各单位报送情况's
    colour_cells = [(c, t) for c, t in _cells(page, "td") if c.startswith("shade ")]
    assert colour_cells, "the red and yellow items' colour column"
    for cls, text in colour_cells:
        assert text == words[cls.split()[1]], (cls, text)
    assert not any(EMOJI.search(t) for _, t in _cells(page, "td"))
    assert ".shade.red" in page  # the colour itself is the cell's shading
