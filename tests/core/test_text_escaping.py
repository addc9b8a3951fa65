"""core.text: a shared macro module escapes payload once for HTML callers and not at all for plain ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from markupsafe import escape

from coordbot.core.text import environment, render

EVIL = "<script>alert(1)</script> & <b>"
ESCAPED = str(escape(EVIL))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    zh = tmp_path / "zh"
    (zh / "sub").mkdir(parents=True)
    files = {
        "_m.j2": "{% macro line(x) %}[{{ x }}|{{ x ~ '!' }}|{{ inner(x) }}]{% endmacro %}"
        "{% macro inner(x) %}({{ x }}){% endmacro %}",
        "sub/_n.j2": '{% import "_m.j2" as M %}{% macro wrap(x) %}{{ M.line(x) }}{% endmacro %}',
        "_part.j2": "<i>{{ x }}</i>",
        "_base.j2": "{% block body %}{% endblock %}",
        "page.html": '{% import "_m.j2" as M %}{{ M.line(x) }}',
        "nested.html": '{% import "sub/_n.j2" as N %}{{ N.wrap(x) }}',
        "from.html": '{% from "_m.j2" import line %}{{ line(x) }}',
        "incl.html": '{% include "_part.j2" %}',
        "ext.html": '{% extends "_base.j2" %}{% block body %}{{ x }}{% endblock %}',
        "cut.html": '{% import "_m.j2" as M %}{{ M.inner(x)|truncate(n, True, "…", 0) }}',
        "plain.txt": '{% import "_m.j2" as M %}{{ M.line(x) }}',
        "plain.md.j2": '{% import "sub/_n.j2" as N %}{{ N.wrap(x) }}',
    }
    for name, text in files.items():
        (zh / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_macro_module_escapes_once_for_an_html_caller(root: Path) -> None:
    want = f"[{ESCAPED}|{ESCAPED}!|({ESCAPED})]"
    for name in ("page.html", "nested.html", "from.html"):
        assert render(name, root=root, x=EVIL).strip() == want, name
    assert render("incl.html", root=root, x=EVIL).strip() == f"<i>{ESCAPED}</i>"
    assert render("ext.html", root=root, x=EVIL).strip() == ESCAPED


def test_the_same_module_stays_raw_for_plain_callers(root: Path) -> None:
    want = f"[{EVIL}|{EVIL}!|({EVIL})]"
    assert render("plain.txt", root=root, x=EVIL).strip() == want
    assert render("plain.md.j2", root=root, x=EVIL).strip() == want
    # whichever is compiled first, the other keeps its own escaping
    assert render("page.html", root=root, x=EVIL).strip().startswith(f"[{ESCAPED}")
    assert render("plain.txt", root=root, x=EVIL).strip() == want


def test_already_escaped_values_are_not_escaped_again(root: Path) -> None:
    out = render("page.html", root=root, x=escape(EVIL))
    assert "&amp;amp;" not in out and "&amp;lt;" not in out and ESCAPED in out


@pytest.mark.parametrize("n", range(3, 12))
def test_truncating_escaped_text_never_cuts_an_entity(root: Path, n: int) -> None:
    out = render("cut.html", root=root, x="&&<<>>&&", n=n).strip()
    visible = "(&&<<>>&&)"
    assert out == str(escape(visible if len(visible) <= n else visible[: n - 1] + "…"))


def test_plain_strings_are_not_autoescaped(root: Path) -> None:
    assert environment("zh", root).from_string("{{ x }}").render(x=EVIL) == EVIL
