"""The HTML reports' table headers are words, and a status colour is a shaded cell with its word (issue 16: emoji
are boxes without an emoji font and not what an official page uses)."""

from __future__ import annotations

import re
from datetime import timedelta

import html5lib
import pytest
from sqlmodel import col, select

from coordbot.core import events
from coordbot.core.events import EventType
from coordbot.plan.models import Task
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


def _items(page: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(text, [(class, text) of its spans]) of every list item of the page."""
    doc = html5lib.parse(page, namespaceHTMLElements=False)
    return [
        ("".join(li.itertext()), [(s.get("class") or "", "".join(s.itertext())) for s in li.iter("span")])
        for li in doc.iter("li")
    ]


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_digest_page_change_list_says_colours_in_shaded_words(plan_in, locale: str) -> None:
    """本周变化's "green → red" items (the shared R.change macro): shaded words on the page, emoji in chat."""
    s, plan = plan_in()
    task = s.exec(select(Task).where(Task.plan_id == plan.id).order_by(col(Task.position))).first()
    assert task is not None
    for old, new, hours in (("green", "yellow", 30), ("yellow", "red", 3)):  # as actions.recolour writes them
        events.record(
            s,
            EventType.TASK_COLOUR_CHANGED,
            at=NOW - timedelta(hours=hours),
            plan_id=plan.id,
            task_id=task.id,
            old=old,
            new=new,
            reason="overdue",
        )
    s.flush()
    digest = build_digest(session=s, plan=plan, now=NOW, week=DIGEST_WEEK, locale=locale, store=False)
    page, chat = digest.render("html"), digest.render("text")
    s.rollback()  # the quarter is shared by the module's tests
    s.close()
    assert not EMOJI.search(page), EMOJI.findall(page)
    words = WORDS[locale]
    turns = [spans for text, spans in _items(page) if "→" in text and spans]
    assert turns, "the scripted quarter changes some task's colour"
    for spans in turns:
        assert len(spans) == 2
        for cls, text in spans:
            assert cls.startswith("shade ") and text == words[cls.split()[1]], (cls, text)
    assert re.search("[🟢🟡🔴]→[🟢🟡🔴]", chat), "chat keeps its emoji (chat apps render them)"
