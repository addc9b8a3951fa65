"""Telegram's ``parse_mode=HTML`` parser, modelled on tdlib's ``parse_html`` (MessageEntity.cpp).

Returns the plain text plus MessageEntity dicts (offsets in UTF-16 code units) or raises
:class:`EntityParseError` with tdlib's wording ("Unsupported start tag ...", "Can't find end tag ...").
Byte offsets in errors are UTF-8 offsets into the original text, as Telegram reports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_ALL_TAGS = {*_SIMPLE_TAGS, "a", "span", "tg-emoji", "blockquote", "tg-time"}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]{2,8}));")


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; ``str(exc)`` is the part after "can't parse entities: "."""


@dataclass
class _Open:
    tag: str
    start: int  # UTF-16 offset in the output text
    attrs: dict[str, str] = field(default_factory=dict)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of MessageEntity offsets."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode an HTML entity starting at ``text[i] == '&'``; return (char, next index) or None."""
    m = _ENTITY_RE.match(text, i)
    if not m:
        return None
    dec, hexa, name = m.groups()
    if name is not None:
        ch = _NAMED_ENTITIES.get(name)
        return (ch, m.end()) if ch is not None else None
    code = int(dec) if dec is not None else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end()


def _decode_attr_value(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "&":
            dec = _decode_entity(value, i)
            if dec:
                out.append(dec[0])
                i = dec[1]
                continue
        out.append(value[i])
        i += 1
    return "".join(out)


def _parse_attrs(text: str, i: int, tag: str, begin: int) -> tuple[dict[str, str], int]:
    """Parse attributes after the tag name; return them and the index just past '>'."""
    attrs: dict[str, str] = {}
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if text[i] == ">":
            return attrs, i + 1
        name_start = i
        while i < n and not text[i].isspace() and text[i] not in "=>":
            i += 1
        name = text[name_start:i].lower()
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            # tdlib accepts a bare "expandable" on blockquote only
            if tag == "blockquote" and name == "expandable":
                attrs[name] = ""
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(text, begin)}"
            )
        i += 1
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end < 0:
                offset = _byte_offset(text, begin)
                msg = f'Unclosed end of attribute value of the tag "{tag}" at byte offset {offset}'
                raise EntityParseError(msg)
            raw = text[i + 1 : end]
            i = end + 1
        else:
            val_start = i
            while i < n and not text[i].isspace() and text[i] != ">":
                i += 1
            raw = text[val_start:i]
        attrs[name] = _decode_attr_value(raw)


def _make_entity(op: _Open, end: int, parent: _Open | None) -> dict[str, Any] | None:
    length = end - op.start
    if length <= 0:
        return None  # Telegram silently drops empty entities
    ent: dict[str, Any] = {"offset": op.start, "length": length}
    if op.tag in _SIMPLE_TAGS:
        ent["type"] = _SIMPLE_TAGS[op.tag]
        if op.tag == "code" and parent is not None and parent.tag == "pre":
            lang = op.attrs.get("class", "")
            if lang.startswith("language-"):
                return None  # folded into the enclosing <pre> as its language (see below)
    elif op.tag == "a":
        url = op.attrs.get("href", "")
        if not url:
            return None  # tdlib drops links without a usable URL
        ent.update(type="text_link", url=url)
    elif op.tag == "span":
        ent["type"] = "spoiler"
    elif op.tag == "tg-emoji":
        ent.update(type="custom_emoji", custom_emoji_id=op.attrs.get("emoji-id", ""))
    elif op.tag == "blockquote":
        ent["type"] = "expandable_blockquote" if "expandable" in op.attrs else "blockquote"
    elif op.tag == "tg-time":
        ent.update(type="date_time", unix_time=int(op.attrs.get("unix", "0") or 0))
        if op.attrs.get("format"):
            ent["date_time_format"] = op.attrs["format"]
    return ent


def parse_html(text: str, *, strict_ampersand: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into (plain text, entities).

    With ``strict_ampersand`` a bare ``&`` that does not start a valid entity is an error. Real Telegram
    keeps such a ``&`` literally; the strict default catches text that skipped ``html.escape`` (which
    would otherwise silently turn a user's "&lt;" into "<").
    """
    out: list[str] = []
    out_len = 0  # UTF-16 length of the output so far
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    pre_languages: dict[int, str] = {}  # id(pre _Open) -> language from a nested <code class=...>
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            dec = _decode_entity(text, i)
            if dec is not None:
                out.append(dec[0])
                out_len += utf16_len(dec[0])
                i = dec[1]
                continue
            if strict_ampersand:
                raise EntityParseError(f'Unescaped "&" at byte offset {_byte_offset(text, i)}')
        if ch != "<":
            out.append(ch)
            out_len += 2 if ord(ch) > 0xFFFF else 1
            i += 1
            continue

        begin = i
        i += 1
        if i < n and text[i] == "/":
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
            i += 1
            name_start = i
            while i < n and not text[i].isspace() and text[i] != ">":
                i += 1
            end_name = text[name_start:i].lower()
            while i < n and text[i].isspace():
                i += 1
            if i >= n or text[i] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            i += 1
            op = stack.pop()
            if end_name and end_name != op.tag:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                    f'expected "</{op.tag}>", found "</{end_name}>"'
                )
            parent = stack[-1] if stack else None
            if op.tag == "code" and parent is not None and parent.tag == "pre":
                lang = op.attrs.get("class", "")
                if lang.startswith("language-"):
                    pre_languages[id(parent)] = lang[len("language-") :]
            ent = _make_entity(op, out_len, parent)
            if ent is not None:
                if op.tag == "pre" and id(op) in pre_languages:
                    ent["language"] = pre_languages.pop(id(op))
                entities.append(ent)
            continue

        name_start = i
        while i < n and not text[i].isspace() and text[i] != ">":
            i += 1
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        tag = text[name_start:i].lower()
        if tag not in _ALL_TAGS:
            raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, begin)}')
        attrs, i = _parse_attrs(text, i, tag, begin)
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}'
            )
        if tag == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError(
                f"Invalid custom emoji identifier specified at byte offset {_byte_offset(text, begin)}"
            )
        stack.append(_Open(tag, out_len, attrs))

    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities
