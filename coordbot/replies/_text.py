"""Length-preserving text normalisation and clause lookup for the reply parser.

Every offset the parser reports must point into the caller's original string, so normalisation maps
each character to exactly one character (``str.translate`` + ``str.lower``); nothing is inserted or
removed. That also keeps normalisation a single C-speed pass, whatever the input size.
"""

from __future__ import annotations

import re
from bisect import bisect_right

# Traditional → simplified for the words contacts actually use in progress replies. Per-character on
# purpose: a full converter is a heavy dependency and phrase-level conversion would change lengths.
_TRAD = (
    "進进 項项 檢检 辦办 結结 經经 還还 沒没 難难 風风 險险 調调 協协 請请 區区 財财 務务 專专 億亿 萬万 兩两"
    " 週周 個个 與与 啟启 動动 順顺 遲迟 滯滞 後后 來来 長长 時时 間间 這这 們们 實实 點点 現现 狀状 態态 號号"
    " 體体 處处 應应 會会 議议 場场 監监 質质 貸贷 額额 訓训 練练 導导 評评 範范 單单 機机 構构 業业 總总 續续"
    " 達达 無无 礙碍 劃划 開开 預预 計计 畫画 緩缓 慢慢 準准 備备 階阶 段段 數数 據据 權权 專专 標标 獲获 發发"
    " 況况 問问 題题 線线 於于 參参 屆届 組组 織织 報报 齊齐 啓启 門门 節节 慶庆 壓压 優优 顯显 戰战 擴扩 卡卡"
    " 嚴严 紀纪 錄录 員员 雙双 隨随 護护 爭争 將将 屬属 約约 紐纽 歲岁 幾几 錢钱 費费 聯联 係系 層层 衛卫 輪轮"
)
_TABLE: dict[int, int | str] = {}
for _pair in _TRAD.split():
    _TABLE[ord(_pair[0])] = _pair[1]
for _c in range(0xFF01, 0xFF5F):  # full-width ASCII block → ASCII (１２％：→ 12%:)
    _TABLE[_c] = _c - 0xFEE0
for _c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]:
    _TABLE[_c] = " " if _c != 0x0A else "\n"
for _cp in (0x3000, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00A0, 0x2028, 0x2029):
    _TABLE[_cp] = " "
_TABLE[0x0130] = "i"  # 'İ'.lower() is two characters; the only such code point
_TABLE[0xFFE5] = "¥"
_TABLE[0x3002] = "。"
_TABLE[0xFF61] = "。"
for _ch, _r in (("\u2014", "-"), ("\u2013", "-"), ("\u301c", "~"), ("\u2018", "'"), ("\u2019", "'")):
    _TABLE[ord(_ch)] = _r


def normalise(text: str) -> str:
    """Return a same-length, lower-cased, half-width, mostly simplified copy of ``text``."""
    out = text.translate(_TABLE).lower()
    if len(out) != len(text):  # defensive: never let offsets drift, fall back to the untouched text
        return text
    return out


# Clause boundaries: sentence punctuation, newlines, and commas that are not thousands separators.
_BOUNDARY = re.compile(r"[。！？!?；;\n]|[，,](?![0-9]{3}(?![0-9]))|\.(?=\s)|\s-\s")
_SENTENCE = re.compile(r"[。！？!?；;\n]|\.(?=\s)")


class Clauses:
    """Maps an offset to the [start, end) of the clause (comma-level) or sentence containing it."""

    __slots__ = ("_cl", "_se", "n")

    def __init__(self, text: str) -> None:
        self.n = len(text)
        self._cl = [0, *(m.end() for m in _BOUNDARY.finditer(text))]
        self._se = [0, *(m.end() for m in _SENTENCE.finditer(text))]

    @staticmethod
    def _find(bounds: list[int], pos: int, n: int) -> tuple[int, int]:
        i = bisect_right(bounds, pos) - 1
        start = bounds[max(i, 0)]
        end = bounds[i + 1] if i + 1 < len(bounds) else n
        return start, end

    # Context windows are clamped to ±WINDOW characters: a "clause" of thousands of characters (no
    # punctuation) would otherwise make every per-hit lookup proportional to the input.
    WINDOW = 160

    def clause(self, pos: int) -> tuple[int, int]:
        s, e = self._find(self._cl, pos, self.n)
        return max(s, pos - self.WINDOW), min(e, pos + self.WINDOW)

    def sentence(self, pos: int) -> tuple[int, int]:
        s, e = self._find(self._se, pos, self.n)
        return max(s, pos - self.WINDOW), min(e, pos + self.WINDOW)


_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"[a-z]{2,}")
# Acronyms and tokens that appear inside Chinese replies without making them English.
_NOT_ENGLISH = frozenset({"pct", "iso", "gdp", "ip", "pdf", "ppt", "rmb", "cny", "vs", "etc", "doc", "docx"})


def detect_language(norm: str) -> str:
    cjk = 1 if _CJK.search(norm) else 0
    words = 0
    for m in _WORD.finditer(norm):
        if m.group() not in _NOT_ENGLISH:
            words += 1
            break
    if cjk and words:
        return "mixed"
    if words:
        return "en"
    return "zh"
