"""Chinese and English numerals → Decimal. Small and hand-written: the replies only need counts,
amounts and percentages, and every run is capped so adversarial input costs O(length)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CN_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
    "壹": 1, "贰": 2, "叁": 3, "肆": 4, "伍": 5, "陆": 6, "柒": 7, "捌": 8, "玖": 9,
}  # fmt: skip
CN_SMALL = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
CN_BIG = {"万": 10_000, "亿": 100_000_000}
CN_CHARS = "".join(CN_DIGITS) + "".join(CN_SMALL) + "".join(CN_BIG)
MAX_RUN = 16  # longer runs are not numbers anyone writes in a progress reply

EN_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a": 1, "an": 1,
}  # fmt: skip


def cn_to_int(s: str) -> int | None:
    """Parse a Chinese numeral (三, 十二, 二十, 一百零五, 两千, 1万-style handled by caller).

    Returns None for strings that are not a well-formed number (两三 = "two or three", 万 alone, 千万 as the
    adverb "by all means"), so that the caller treats them as words.
    """
    if not s or len(s) > MAX_RUN:
        return None
    has_unit = any(c in CN_SMALL or c in CN_BIG for c in s)
    if not has_unit:
        # Digit-by-digit numbers (二〇二六) only when unmistakable; 两三/一二 are approximate words.
        if len(s) == 1:
            return CN_DIGITS.get(s)
        if "两" in s or not (len(s) >= 3 or "〇" in s or "零" in s):
            return None
        return int("".join(str(CN_DIGITS[c]) for c in s))
    if s[0] not in CN_DIGITS and s[0] not in ("十", "拾"):
        return None  # 万 / 千万 / 百 alone are words, not numbers
    total = 0
    section = 0
    number: int | None = None
    last_small = 10**9
    for c in s:
        if c in CN_DIGITS:
            if number is not None and CN_DIGITS[c] != 0 and number != 0:
                return None  # two digits in a row inside a structured numeral: 三四十 etc.
            number = CN_DIGITS[c]
        elif c in CN_SMALL:
            unit = CN_SMALL[c]
            if unit >= last_small:
                return None
            section += (1 if number is None else number) * unit
            number = None
            last_small = unit
        else:  # 万 / 亿
            big = CN_BIG[c]
            section += number or 0
            if section == 0 and total == 0:
                return None
            if big == 100_000_000 or total == 0:
                total = (total + section) * big
            else:
                total += section * big
            section = 0
            number = None
            last_small = 10**9
    return total + section + (number or 0)


def to_decimal(s: str) -> Decimal | None:
    """Arabic digits with optional thousands commas and one decimal point."""
    if len(s) > 24:
        return None
    s = s.replace(",", "")
    if s.count(".") > 1:
        return None
    try:
        return Decimal(s)
    except InvalidOperation:
        return None


def parse_number(s: str) -> Decimal | None:
    """Arabic or Chinese numeral (二十一点五 too), or an Arabic number with a trailing 万/亿/千 multiplier."""
    if not s:
        return None
    if s[0].isascii():
        return to_decimal(s)
    if "点" in s:  # 二十一点五 / 一点五: a Chinese decimal, the fraction read digit by digit
        whole, _, frac = s.partition("点")
        n = cn_to_int(whole)
        if n is None or not frac or len(frac) > 6 or any(c not in CN_DIGITS or c == "两" for c in frac):
            return None
        return Decimal(f"{n}.{''.join(str(CN_DIGITS[c]) for c in frac)}")
    n = cn_to_int(s)
    return None if n is None else Decimal(n)
