"""Text for people: jinja2 templates under ``templates/<locale>/``, Chinese first, English available.

Templates whose name ends in ``.html`` are autoescaped (Telegram HTML, e-mail, web); plain ``.txt`` and
``.md`` templates are not. A template missing in English falls back to the Chinese one.

Payload text (titles, names, what contacts wrote) is escaped exactly once, for the output it goes to. A shared
macro module (``reports/_r.j2``, ``_macros.j2``, ``web/_forms.j2``) serves HTML and plain callers alike, and jinja2
marks a macro's result safe when an autoescaped template calls it, whatever the module's own setting. So a module
imported, included or extended from an HTML template is loaded as a second template, ``<name>@html``, compiled
with autoescape on (:meth:`_Environment.join_path`); from a ``.txt``/``.md`` template it stays plain, raw
characters and all.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import BaseLoader, Environment, FileSystemLoader, StrictUndefined, pass_environment
from jinja2.filters import do_truncate
from markupsafe import Markup, escape

from coordbot.core.paths import templates_dir

TEMPLATES_DIR = templates_dir()
LOCALES = ("zh", "en")
DEFAULT_LOCALE = "zh"


def _number(value: float | int | None) -> str:
    if value is None:
        return "—"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _date(value: date | datetime | None, fmt: str = "%Y-%m-%d", tz: str | None = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime) and tz:
        value = value.astimezone(ZoneInfo(tz))
    return value.strftime(fmt)


HTML_VARIANT = "@html"  # suffix of a macro module's name when it is loaded for an HTML caller
_HTML_NAMES = (".html", HTML_VARIANT)


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(_HTML_NAMES)


class _VariantLoader(BaseLoader):
    """``name@html`` is ``name``'s source: the same file, compiled (and cached) apart with autoescape on."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: Environment, template: str) -> Any:
        return self.inner.get_source(environment, template.removesuffix(HTML_VARIANT))

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


class _Environment(Environment):
    def join_path(self, template: str, parent: str) -> str:
        # jinja2 asks this for every import/include/extends, with the calling template's name
        if _autoescape(parent) and not _autoescape(template):
            return template + HTML_VARIANT
        return template


@pass_environment
def _truncate(
    env: Environment, s: str, length: int = 255, killwords: bool = False, end: str = "...", leeway: int | None = None
) -> str:
    """jinja2's truncate, which on escaped text (a macro's result in an HTML template) counts what a reader
    sees and never cuts an entity in two (``&am…``): unescape, cut, escape again."""
    if isinstance(s, Markup) and "<" not in s:  # text only, no tags: unescape() is exact
        return escape(do_truncate(env, s.unescape(), length, killwords, end, leeway))
    return do_truncate(env, s, length, killwords, end, leeway)


@lru_cache(maxsize=8)
def environment(locale: str = DEFAULT_LOCALE, root: Path = TEMPLATES_DIR) -> Environment:
    if locale not in LOCALES:
        locale = DEFAULT_LOCALE
    search = [str(root / locale)] + ([str(root / DEFAULT_LOCALE)] if locale != DEFAULT_LOCALE else [])
    env = _Environment(
        loader=_VariantLoader(FileSystemLoader(search)),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["num"] = _number
    env.filters["date"] = _date
    env.filters["truncate"] = _truncate
    env.globals["L"] = labels(locale, root)
    return env


@lru_cache(maxsize=8)
def labels(locale: str = DEFAULT_LOCALE, root: Path = TEMPLATES_DIR) -> dict[str, Any]:
    """Short words (buttons, status names) from ``templates/<locale>/labels.yaml``, Chinese as fallback."""
    import yaml

    if locale not in LOCALES:
        locale = DEFAULT_LOCALE
    merged: dict[str, Any] = {}
    for loc in dict.fromkeys((DEFAULT_LOCALE, locale)):
        path = root / loc / "labels.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
        for section, words in (data or {}).items():
            merged.setdefault(section, {}).update(words)
    return merged


def render(name: str, *, locale: str = DEFAULT_LOCALE, root: Path | None = None, **context: Any) -> str:
    """Render ``templates/<locale>/<name>`` with ``context``."""
    env = environment(locale, root or TEMPLATES_DIR)
    return env.get_template(name).render(**context).strip() + "\n"


class _PlainText(HTMLParser):
    """Collects the text of chat HTML; a link's address follows its label when the two differ."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._links: list[tuple[str, int]] = []  # (href, where its label starts in parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links:
            href, start = self._links.pop()
            if href and "".join(self.parts[start:]).strip() != href:
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Chat HTML (Telegram's subset: b, i, u, s, code, pre, a, blockquote, br) as plain text for a terminal:
    tags dropped, entities unescaped, links kept as "label (address)"."""
    parser = _PlainText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)
