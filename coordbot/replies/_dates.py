"""Date expressions in replies, resolved against the reply's own date.

Conventions (documented because a deadline word names a period, and the bot needs one day):
- 月底/月末/end of month, 年底/年末/年内/end of year, 下旬/late June → last day of the period.
- 上旬/early June → the 10th, 中旬/月中/mid-June → the 15th, 月初/beginning of → the 5th.
- 本周/this week, 下周/next week → Friday of that week; 周五/by Friday → next Friday on or after today.
- 上半年/H1 → 30 June; 一季度/Q1 … 四季度/Q4 → last day of the quarter.
- A month/day without a year that already passed (6月底 said in July) rolls to next year (``rolled``).
- 春节/端午/中秋 use the fixed table below (2024–2030); 春节前 → the eve. Festivals followed by 后 are skipped.
- N天内/within N days/in N weeks → today + N days/weeks; N个工作日 counts Monday–Friday only (holiday-blind:
  the parser stays pure; the scheduler owns the official calendar).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from ._numbers import EN_WORDS, cn_to_int

_FESTIVALS: dict[str, dict[int, date]] = {
    "春节": {
        2024: date(2024, 2, 10), 2025: date(2025, 1, 29), 2026: date(2026, 2, 17), 2027: date(2027, 2, 6),
        2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3),
    },
    "端午": {
        2024: date(2024, 6, 10), 2025: date(2025, 5, 31), 2026: date(2026, 6, 19), 2027: date(2027, 6, 9),
        2028: date(2028, 5, 28), 2029: date(2029, 6, 16), 2030: date(2030, 6, 5),
    },
    "中秋": {
        2024: date(2024, 9, 17), 2025: date(2025, 10, 6), 2026: date(2026, 9, 25), 2027: date(2027, 9, 15),
        2028: date(2028, 10, 3), 2029: date(2029, 9, 22), 2030: date(2030, 9, 12),
    },
}  # fmt: skip
_FIXED_FESTIVALS = {"元旦": (1, 1), "五一": (5, 1), "劳动节": (5, 1), "国庆": (10, 1), "国庆节": (10, 1)}

_MONTHS_EN = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4, "may": 5,
    "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9, "september": 9,
    "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}  # fmt: skip
_WEEKDAYS_EN = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
                "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4}  # fmt: skip
_WEEKDAYS_ZH = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}


@dataclass(frozen=True, slots=True)
class DateHit:
    start: int
    end: int
    value: date  # rolled to the next year when the year was implicit and the day already passed
    raw_past: bool  # the unrolled reading is before today (a date of something that happened)
    past_word: bool  # 昨天/上周/last week/yesterday: can never be an expected date
    explicit_year: bool


def _month_end(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    m += 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _safe(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _num(s: str | None) -> int | None:
    if not s:
        return None
    if s.isdigit() and s.isascii():
        return int(s)
    if s in EN_WORDS:
        return EN_WORDS[s]
    return cn_to_int(s)


def _part_day(y: int, m: int, part: str | None) -> date:
    if part in ("上旬", "early"):
        return date(y, m, 10)
    if part in ("中旬", "中", "mid", "middle"):
        return date(y, m, 15)
    if part in ("初", "beginning", "start"):
        return date(y, m, 5)
    return _month_end(y, m)  # 底/末/下旬/end/late and a bare month


def _friday_of_week(d: date, weeks_ahead: int) -> date:
    monday = d - timedelta(days=d.weekday())
    return monday + timedelta(days=7 * weeks_ahead + 4)


_CN_MON = r"1[0-2]|0?[1-9]|十[一二]|十|[一二三四五六七八九]"
_CN_DAY = r"3[01]|[12][0-9]|0?[1-9]|三十一?|二十[一二三四五六七八九]?|十[一二三四五六七八九]?|[一二三四五六七八九]"
_NUM = r"[0-9]{1,3}|[一二两三四五六七八九十]{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "ymd",
        re.compile(
            r"(?<![0-9.])(20[0-9]{2})\s{0,3}[-/.]\s{0,3}(1[0-2]|0?[1-9])\s{0,3}[-/.]\s{0,3}(3[01]|[12][0-9]|0?[1-9])(?![0-9])"
        ),
    ),
    (
        "zh_md",
        re.compile(
            rf"(?:(20[0-9]{{2}})\s{{0,3}}年|(今年|明年|后年))?\s{{0,3}}(?<![0-9.])({_CN_MON})\s{{0,3}}月份?\s{{0,3}}"
            rf"(?:({_CN_DAY})\s{{0,3}}(?:[日号]|(?=前|之前|以前|完成|,|，|。|\s|$))|(底|末|初|上旬|中旬|下旬|中(?!心|间|期|央)))?"
        ),
    ),
    (
        "zh_year",
        re.compile(
            r"(?:(20[0-9]{2})\s{0,3}年|(今年|明年|后年|本年度?))\s{0,3}(年底|年末|底|末|内|上半年|下半年|第?([一二三四1-4])季度)?"
        ),
    ),
    ("zh_yearpart", re.compile(r"(年底|年末|年内|岁末|上半年|下半年|第?([一二三四1-4])季度)")),
    (
        "zh_month_rel",
        re.compile(r"(本月|这个月|这月|当月|下下个?月|下个?月)\s{0,3}(底|末|初|上旬|中旬|下旬|中(?!心))?"),
    ),
    ("zh_month_part", re.compile(r"(?<![0-9一二三四五六七八九十个下本这当])月(底|末|初|中(?!心))")),
    (
        "zh_week",
        re.compile(
            r"(本周|这周|这个?星期|本星期|下下周|下周|下个?星期|下个?礼拜|上周|上个?星期)([一二三四五六日天末])?"
        ),
    ),
    ("zh_weekday", re.compile(r"(?<![本这下上个])(?:周|星期|礼拜)([一二三四五六日天])")),
    ("zh_day", re.compile(r"(今天|今日|明天|明日|后天|大后天|昨天|昨日|前天)")),
    (
        "zh_dur",
        re.compile(rf"({_NUM}|半)\s{{0,3}}个?\s{{0,3}}(天|日|工作日|周|星期|月)\s{{0,3}}(?:内|后|之内|以内|左右)"),
    ),
    ("zh_fest", re.compile(r"(春节|端午|中秋|元旦|五一|劳动节|国庆节?)\s{0,3}(前|之前|以前|后|之后|期间)?")),
    (
        "en_month",
        re.compile(
            r"\b(?:(end|mid|middle|early|late|beginning|start)\s{0,3}(?:of\s{1,3})?-?\s{0,3})?"
            r"(january|february|march|april|june|july|august|september|october|november|december|"
            r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec|may)\b\.?"
            r"(?:\s{1,3}(3[01]|[12][0-9]|0?[1-9])(?:st|nd|rd|th)?\b)?(?:,?\s{0,3}(20[0-9]{2}))?"
        ),
    ),
    (
        "en_dmy",
        re.compile(
            r"\b(3[01]|[12][0-9]|0?[1-9])(?:st|nd|rd|th)?\s{1,3}(?:of\s{1,3})?"
            r"(january|february|march|april|june|july|august|september|october|november|december|"
            r"jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec|may)\b(?:,?\s{0,3}(20[0-9]{2}))?"
        ),
    ),
    (
        "en_rel",
        re.compile(
            r"\b(?:(?:the\s{1,3})?end\s{1,3}of\s{1,3}(?:the\s{1,3}|this\s{1,3})?(month|year|week|quarter)|(month|year|quarter)[-\s]end|"
            r"end\s{1,3}of\s{1,3}next\s{1,3}(month|week)|(next|this)\s{1,3}(week|month)|(today|tomorrow|yesterday|tonight)|"
            r"(last)\s{1,3}(week|month|friday|monday|tuesday|wednesday|thursday)|"
            r"(next|this|by|on|before|until|till)\s{1,3}(monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
            r"(q[1-4])|(h[12])|(in|within)\s{1,3}(" + _NUM + r")\s{1,3}(days?|weeks?|months?|working\s{1,3}days?)|"
            r"(christmas|new\s{1,3}year|national\s{1,3}day|spring\s{1,3}festival|chinese\s{1,3}new\s{1,3}year))\b"
        ),
    ),
    (
        "slash_md",
        re.compile(r"(?<![0-9./])(1[0-2]|0?[1-9])\s{0,3}[/.]\s{0,3}(3[01]|[12][0-9]|0?[1-9])(?![0-9/%]|\.[0-9])"),
    ),
    # 30/6: day first when the first number cannot be a month (English/European habit)
    ("slash_dm", re.compile(r"(?<![0-9./])(3[01]|2[0-9]|1[3-9])\s{0,3}/\s{0,3}(1[0-2]|0?[1-9])(?![0-9/%]|\.[0-9])")),
]


_SLASH_BEFORE = re.compile(r"(?:\b(?:by|before|until|till|due|on)\s{0,3}|[于在]\s{0,3}|截止\s{0,3})$")
_SLASH_AFTER = re.compile(r"\s{0,3}(?:前|之前|以前|完成|[日号])")


def _roll(today: date, y: int | None, build: Callable[[int], date | None]) -> tuple[date, bool, bool] | None:
    """Build a date in ``y`` (or this year); roll an implicit-year date that already passed."""
    explicit = y is not None
    year = y if y is not None else today.year
    d = build(year)
    if d is None:
        return None
    raw_past = d < today
    if raw_past and not explicit:
        nd = build(year + 1)
        if nd is not None:
            return nd, True, explicit
    return d, raw_past, explicit


def _resolve(kind: str, m: re.Match[str], today: date, text: str) -> tuple[date, bool, bool, bool] | None:
    """→ (value, raw_past, past_word, explicit_year) or None when the match is not a date."""
    g = m.group
    if kind == "ymd":
        d = _safe(int(g(1)), int(g(2)), int(g(3)))
        return None if d is None else (d, d < today, False, True)
    if kind == "zh_md":
        mon = _num(g(3))
        if mon is None or not 1 <= mon <= 12:
            return None
        y = int(g(1)) if g(1) else ({"今年": today.year, "明年": today.year + 1, "后年": today.year + 2}.get(g(2)))
        day, part = _num(g(4)), g(5)
        if g(4) and (day is None or not 1 <= day <= 31):
            return None
        if not g(4) and not part:
            # bare "6月": only as a deadline (6月完成 / 6月前); "6月份开展了…" is a period, kept too
            pass

        month = mon  # narrowed to int above; the closure would see int | None

        def build(yr: int) -> date | None:
            return _safe(yr, month, day) if day else _part_day(yr, month, part)

        r = _roll(today, y, build)
        return None if r is None else (r[0], r[1], False, r[2])
    if kind == "zh_year":
        y = (
            int(g(1))
            if g(1)
            else {"今年": today.year, "明年": today.year + 1, "后年": today.year + 2}.get(g(2), today.year)
        )
        suffix = g(3)
        if not suffix:
            tail = text[m.end() : m.end() + 3]
            if not g(1) or not re.match(r"\s{0,3}(前|之前|以前|完成|内)", tail):
                return None  # a bare "2024年" is usually a period label (2024年度), not a deadline
            d = date(y, 12, 31)
        elif suffix == "上半年":
            d = date(y, 6, 30)
        elif g(4):
            q = _num(g(4)) or 4
            d = _month_end(y, q * 3)
        else:
            d = date(y, 12, 31)
        return d, d < today, False, bool(g(1))
    if kind == "zh_yearpart":
        if g(1) == "上半年":
            r = _roll(today, None, lambda yr: date(yr, 6, 30))
        elif g(2):
            q = _num(g(2)) or 4
            r = _roll(today, None, lambda yr: _month_end(yr, q * 3))
        else:
            r = (date(today.year, 12, 31), False, False)
        return None if r is None else (r[0], r[1], False, False)
    if kind == "zh_month_rel":
        rel = g(1)
        n = 0 if rel in ("本月", "这个月", "这月", "当月") else (2 if rel.startswith("下下") else 1)
        base = _add_months(today.replace(day=1), n)
        d = _part_day(base.year, base.month, g(2))
        return d, d < today, False, False
    if kind == "zh_month_part":
        d = _part_day(today.year, today.month, g(1))
        return d, d < today, False, False
    if kind == "zh_week":
        rel = g(1)
        if rel.startswith("上"):
            return today - timedelta(days=7), True, True, False
        weeks = 2 if rel.startswith("下下") else (1 if rel.startswith("下") else 0)
        wd = _WEEKDAYS_ZH.get(g(2) or "五", 4)
        d = today - timedelta(days=today.weekday()) + timedelta(days=7 * weeks + wd)
        return d, d < today, False, False
    if kind == "zh_weekday":
        wd = _WEEKDAYS_ZH[g(1)]
        d = today + timedelta(days=(wd - today.weekday()) % 7)
        return d, False, False, False
    if kind == "zh_day":
        off = {"今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3, "昨天": -1, "昨日": -1, "前天": -2}
        d = today + timedelta(days=off[g(1)])
        return d, off[g(1)] < 0, off[g(1)] < 0, False
    if kind == "zh_dur":
        amount = 0.5 if g(1) == "半" else _num(g(1))
        if amount is None or amount > 400:
            return None
        return _duration(today, amount, g(2)), False, False, False
    if kind == "zh_fest":
        name, rel = g(1), g(2)
        if rel in ("后", "之后"):
            return None
        d = _festival(today, name)
        if d is None:
            return None
        if rel in ("前", "之前", "以前"):
            d -= timedelta(days=1)
        return d, False, False, False
    if kind in ("en_month", "en_dmy"):
        if kind == "en_month":
            part, mname, day_s, yr = g(1), g(2), g(3), g(4)
            if mname == "may" and not (part or day_s):
                before = text[max(0, m.start() - 7) : m.start()]
                if not re.search(r"\b(by|in|of|until|before|till)\s{0,3}$", before):
                    return None  # "may be delayed" is the verb
            if mname in ("mar", "march") and not (part or day_s or yr):
                before = text[max(0, m.start() - 7) : m.start()]
                if not re.search(r"\b(by|in|of|until|before|till)\s{0,3}$", before):
                    return None
        else:
            day_s, mname, yr = g(1), g(2), g(3)
            part = None
        month_en = _MONTHS_EN[mname]
        day = int(day_s) if day_s else None
        y = int(yr) if yr else None

        def build_en(year: int) -> date | None:
            return _safe(year, month_en, day) if day else _part_day(year, month_en, part)

        r = _roll(today, y, build_en)
        return None if r is None else (r[0], r[1], False, r[2])
    if kind == "en_rel":
        return _resolve_en_rel(m, today, text)
    if kind in ("slash_md", "slash_dm"):
        # 12.31 / 6/30 collide with task codes, decimals and fractions: only with a deadline word attached
        before = text[max(0, m.start() - 8) : m.start()]
        after = text[m.end() : m.end() + 3]
        if not (_SLASH_BEFORE.search(before) or _SLASH_AFTER.match(after)):
            return None
        mon, day = (int(g(1)), int(g(2))) if kind == "slash_md" else (int(g(2)), int(g(1)))
        r = _roll(today, None, lambda yr: _safe(yr, mon, day))
        return None if r is None else (r[0], r[1], False, False)
    return None


def _duration(today: date, n: float, unit: str) -> date:
    if unit in ("天", "日", "day", "days"):
        return today + timedelta(days=int(n))
    if unit in ("周", "星期", "week", "weeks"):
        return today + timedelta(days=int(7 * n))
    if unit in ("月", "month", "months"):
        return today + timedelta(days=15) if n == 0.5 else _add_months(today, int(n))
    # working days: Monday–Friday only
    d, left = today, int(n)
    while left > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            left -= 1
    return d


def _festival(today: date, name: str) -> date | None:
    if name in _FIXED_FESTIVALS:
        mm, dd = _FIXED_FESTIVALS[name]
        d = date(today.year, mm, dd)
        return d if d >= today else date(today.year + 1, mm, dd)
    table = _FESTIVALS.get(name)
    if not table:
        return None
    for y in (today.year, today.year + 1):
        on = table.get(y)
        if on is not None and on >= today:
            return on
    return None


def _resolve_en_rel(m: re.Match[str], today: date, text: str = "") -> tuple[date, bool, bool, bool] | None:
    g = m.group
    if g(1) or g(2):
        what = g(1) or g(2)
        if what == "month":
            d = _month_end(today.year, today.month)
        elif what == "year":
            d = date(today.year, 12, 31)
        elif what == "week":
            d = _friday_of_week(today, 0)
        else:
            d = _month_end(today.year, ((today.month - 1) // 3 + 1) * 3)
        return d, False, False, False
    if g(3):
        if g(3) == "month":
            b = _add_months(today.replace(day=1), 1)
            return _month_end(b.year, b.month), False, False, False
        return _friday_of_week(today, 1), False, False, False
    if g(4):
        if g(5) == "week":
            return _friday_of_week(today, 1 if g(4) == "next" else 0), False, False, False
        b = _add_months(today.replace(day=1), 1 if g(4) == "next" else 0)
        return _month_end(b.year, b.month), False, False, False
    if g(6):
        off = {"today": 0, "tonight": 0, "tomorrow": 1, "yesterday": -1}[g(6)]
        return today + timedelta(days=off), off < 0, off < 0, False
    if g(7):
        return today - timedelta(days=7), True, True, False
    if g(9):
        wd = _WEEKDAYS_EN[g(10)]
        if g(9) == "next":
            d = today - timedelta(days=today.weekday()) + timedelta(days=7 + wd)
        elif g(9) == "this":
            d = today - timedelta(days=today.weekday()) + timedelta(days=wd)
        else:
            d = today + timedelta(days=(wd - today.weekday()) % 7)
        return d, d < today, False, False
    if g(11):
        q = int(g(11)[1])
        r = _roll(today, None, lambda yr: _month_end(yr, q * 3))
        return None if r is None else (r[0], r[1], False, False)
    if g(12):
        mm = 6 if g(12) == "h1" else 12
        r = _roll(today, None, lambda yr: _month_end(yr, mm))
        return None if r is None else (r[0], r[1], False, False)
    if g(13):
        n = _num(g(14))
        if n is None or n > 400:
            return None
        unit = g(15)
        if unit.startswith("working"):
            unit = "工作日"
        return _duration(today, n, unit), False, False, False
    if g(16):
        name = g(16)
        if "christmas" in name:
            d = date(today.year, 12, 25)
        elif name.startswith("new"):
            d = date(today.year + 1, 1, 1)
        elif name.startswith("national"):
            d = date(today.year, 10, 1)
        else:
            fd = _festival(today, "春节")
            if fd is None:
                return None
            d = fd
        before = text[max(0, m.start() - 8) : m.start()]
        if re.search(r"\bafter\s{1,3}(?:the\s{1,3})?$", before):
            return None  # after a holiday: like 国庆后, the day depends on the official calendar
        if re.search(r"\bbefore\s{1,3}(?:the\s{1,3})?$", before):
            d -= timedelta(days=1)  # before National Day → the eve, like 国庆前
        return d, d < today, False, False
    return None


_TRIGGERS: dict[str, tuple[str, ...]] = {
    "ymd": ("20",),
    "zh_md": ("月",),
    "zh_year": ("年",),
    "zh_yearpart": ("年", "季度", "岁末"),
    "zh_month_rel": ("月",),
    "zh_month_part": ("月",),
    "zh_week": ("周", "星期", "礼拜"),
    "zh_weekday": ("周", "星期", "礼拜"),
    "zh_day": ("天", "日"),
    "zh_dur": ("天", "日", "周", "星期", "月"),
    "zh_fest": ("春节", "端午", "中秋", "元旦", "五一", "劳动节", "国庆"),
    "slash_md": ("/", "."),
    "slash_dm": ("/",),
}


def find_dates(norm: str, today: date, blocked: list[tuple[int, int]]) -> list[DateHit]:
    """All date expressions, longest first, never overlapping each other or ``blocked`` spans."""
    raw: list[tuple[int, int, date, bool, bool, bool]] = []
    has_ascii = re.search(r"[a-z]", norm) is not None
    for kind, pat in _PATTERNS:
        trigger = _TRIGGERS.get(kind)
        if trigger is not None and not any(t in norm for t in trigger):
            continue  # cheap C-level check: most replies name no dates at all
        if kind.startswith("en_") and not has_ascii:
            continue
        for i, m in enumerate(pat.finditer(norm)):
            if i >= 16:  # a reply names a handful of dates; cap work on adversarial input
                break
            if m.end() == m.start():
                continue
            try:
                r = _resolve(kind, m, today, norm)
            except (ValueError, OverflowError):
                r = None
            if r is None:
                continue
            s, e = m.start(), m.end()
            while s < e and norm[s].isspace():
                s += 1
            raw.append((s, e, *r))
    raw.sort(key=lambda t: (-(t[1] - t[0]), t[0]))
    taken: list[tuple[int, int]] = list(blocked)
    hits: list[DateHit] = []
    for s, e, d, rp, pw, ex in raw:
        if any(s < b and a < e for a, b in taken):
            continue
        taken.append((s, e))
        hits.append(DateHit(s, e, d, rp, pw, ex))
    hits.sort(key=lambda h: h.start)
    return hits
