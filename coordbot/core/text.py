"""Text for people: jinja2 templates under ``templates/<locale>/``, Chinese first, English available.

Templates whose name ends in ``.html`` are autoescaped (Telegram HTML, e-mail, web); plain ``.txt`` and
``.md`` templates are not. A template missing in English falls back to the Chinese one.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

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


@lru_cache(maxsize=8)
def environment(locale: str = DEFAULT_LOCALE, root: Path = TEMPLATES_DIR) -> Environment:
    if locale not in LOCALES:
        locale = DEFAULT_LOCALE
    search = [str(root / locale)] + ([str(root / DEFAULT_LOCALE)] if locale != DEFAULT_LOCALE else [])
    env = Environment(
        loader=FileSystemLoader(search),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["num"] = _number
    env.filters["date"] = _date
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
