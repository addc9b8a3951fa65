"""``coordbot plan extract``: an official plan document (.txt, .docx) → a draft plan file for the office.

The document's numbering (一、 / （一） / 1. / 一是) gives the groups and tasks; the usual ways of naming
departments give the leads and co-departments: a closing parenthesis "（X牵头，Y配合）", "（X负责）",
"〔责任单位：X、Y〕", lines "牵头单位：…" / "责任单位：…" / "配合单位：…", and task tables (Word tables, or
a table flattened to one cell per line) with 牵头/主要责任/协同配合/完成时限 columns. Quantities
(每年不少于N项, 每年N次以上, 三年新增N家, 到20XX年末达到N件, 增长X%左右) become targets and dated phrases
(2025年6月底前, 到2026年末) deadlines.

Everything found keeps the sentence it came from (:class:`Found`); everything guessed is marked
``proposed`` — a lead the text does not name, a count the text leaves out (每年开展… = once a year), a
deadline defaulted to the plan's end. The YAML written for the office carries those sentences as comments
above each task, and ``coordbot plan validate`` accepts it as it stands.

Full-width, small-form and ASCII punctuation are all accepted, and traditional characters read as
simplified: the text is matched through a one-to-one character map, so every source quoted is the
document's own characters.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import cn2an  # type: ignore[import-untyped]
import yaml

# ---- reading ---------------------------------------------------------------------------------------

# One character for one character, so offsets in the matched copy are offsets in the original.
_PUNCT = str.maketrans(
    {
        "（": "(", "）": ")", "：": ":", "；": ";", "，": ",", "、": "、", "［": "[", "］": "]",
        "〔": "[", "〕": "]", "【": "[", "】": "]", "．": ".", "　": " ", "％": "%", "﹪": "%",
        # Small form variants (U+FE50…): "1﹒" numbers an item like "1.", "﹐" separates like ",".
        "﹒": ".", "﹐": ",", "﹑": "、", "﹔": ";", "﹕": ":", "﹙": "(", "﹚": ")", "﹝": "[", "﹞": "]",
        # Traditional characters of the marker words, so a mirror in 繁體 is read the same way.
        "牽": "牵", "頭": "头", "負": "负", "責": "责", "單": "单", "協": "协", "職": "职", "門": "门",
        "時": "时", "間": "间", "導": "导", "辦": "办", "會": "会", "關": "关", "點": "点", "項": "项",
        "個": "个", "與": "与", "萬": "万", "億": "亿", "號": "号", "務": "务", "實": "实", "現": "现",
        "達": "达", "內": "内", "為": "为", "發": "发", "區": "区", "縣": "县", "級": "级", "廳": "厅",
        "們": "们", "應": "应", "劃": "划", "處": "处", "業": "业", "續": "续", "進": "进", "開": "开",
        "組": "组", "織": "织", "長": "长", "統": "统", "籌": "筹", "體": "体", "無": "无",
    }
    | {chr(0xFF10 + i): str(i) for i in range(10)}  # full-width digits
)  # fmt: skip


class ExtractError(ValueError):
    """The document cannot be read (unknown type, not text, no tasks found)."""


def read_document(path: Path) -> str:
    """The document's text: .txt in UTF-8 (with or without BOM) or GB18030, .docx paragraphs and tables
    in document order (a table row becomes one line, cells separated by " | ")."""
    suffix = path.suffix.lower()
    if suffix == ".docx":
        return _read_docx(path)
    if suffix not in (".txt", ".text", ""):
        raise ExtractError(f"{path}: expected a .txt or .docx file (a .doc or .pdf: save it as .docx or .txt first)")
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ExtractError(f"{path}: neither UTF-8 nor GB18030 text")


def _read_docx(path: Path) -> str:
    import docx  # python-docx; imported here so the text path needs nothing else
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(str(path))
    lines: list[str] = []
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append(Paragraph(child, document).text)
        elif tag == "tbl":
            for row in Table(child, document).rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = " ".join(cell.text.split())
                    if not cells or text != cells[-1]:  # a merged cell repeats itself across the row
                        cells.append(text)
                lines.append(TABLE_SEP.join(cells))
    return "\n".join(lines)


TABLE_SEP = " | "

# ---- what is found ---------------------------------------------------------------------------------


@dataclass
class Found:
    """A value found in (or, when ``proposed``, guessed for) the document, with the sentence behind it."""

    value: object
    source: str
    proposed: bool = False


@dataclass
class Target:
    name: str
    source: str
    unit: str = ""
    comparator: str = ">="  # >=, <=, ==, qualitative
    value: float | None = None
    period: str = "at-date"  # annual, cumulative, at-date
    start: date | None = None
    due: date | None = None
    about: bool = False  # 左右
    kind: str = "count"  # count, rate (%), growth (增长X%)
    implied: bool = False  # the text gives no number (每年开展… → once a year): proposed
    description: str = ""


@dataclass
class Task:
    code: str
    title: str
    source: str
    leads: list[Found] = field(default_factory=list)
    co: list[Found] = field(default_factory=list)
    deadlines: list[Found] = field(default_factory=list)  # date, or "ongoing" / "annual" / "quarterly"
    targets: list[Target] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (name, MM-DD, source)
    recurring: bool = False

    @property
    def stated(self) -> bool:
        return bool(self.leads) and not any(f.proposed for f in self.leads)


@dataclass
class Group:
    code: str
    title: str
    kind: str  # main, safeguard
    tasks: list[Task] = field(default_factory=list)


@dataclass
class Extraction:
    title: str
    issuer: str
    document_no: str
    issued: date | None
    start: date
    end: date
    office: Found | None
    groups: list[Group]
    goals: list[Target]

    def tasks(self) -> list[Task]:
        return [t for g in self.groups for t in g.tasks]


# ---- patterns --------------------------------------------------------------------------------------

CN_NUM = "一二三四五六七八九十"
H1 = re.compile(rf"^\s*([{CN_NUM}]+)、\s*(.*)$")
H2 = re.compile(rf"^\s*\(([{CN_NUM}]+)\)\s*(.*)$")
H3 = re.compile(r"^\s*(\d{1,3})(?:[.、](?!\d)|\s)\s*(.*)$")
H3P = re.compile(r"^\s*\((\d{1,3})\)\s*(.*)$")
H4 = re.compile(rf"^\s*([{CN_NUM}]+)是\s*(.*)$")
ROW_NUMBER = re.compile(r"^\s*\d{1,3}\s*$")

SKIP_SECTIONS = re.compile(r"指导思想|基本原则|工作原则|总体要求|总体思路|基本情况|背景|意义|主要内容|工作目标")
GOAL_SECTIONS = re.compile(r"目标")
SAFEGUARD = re.compile(r"保障措施|组织保障|工作要求|组织实施|保障机制")
PLAN_TITLE = re.compile(r"(方案|计划|要点|分解|分解表|清单|细则|分工|任务)(\([^()]*\))?$")

# The dividers between department names in a list; 及/和 only before a collective (及各县市区政府).
DEPT_SPLIT = re.compile(r"[、,;/]|\s+|及(?=各|有关|相关)|和(?=各|有关|相关)")
DEPT_TAIL = re.compile(
    r"(按职责分工负责|按职责分工|按职能分工负责|分别负责|共同负责|负责落实|牵头负责|具体负责|负责|牵头|配合|参与|落实|等)+$"
)
DEPT_HEAD = re.compile(r"^(由|请|会同|各牵头单位)")
DEPT_NAME = re.compile(
    r"(局|委|办|厅|部|署|院|中心|政府|管委会|办公室|委员会|集团|公司|支队|大队|分局|银行|海关|协会|联合会|工会|"
    r"团委|妇联|残联|科协|侨联|党校|法院|检察院|街道|乡镇|园区|开发区|科技城|专班|单位|部门|小组|指挥部|税务局|"
    r"宣传部|组织部|统战部|政法委|网信办|编办|总局|工商联|中央|总社|工委|镇|乡|处|所|站|台|馆|队|社|行|会)$"
)
COLLECTIVE = re.compile(r"^(各|有关|相关|其他|全[区县市省])")

LEAD_LABEL = r"(?:牵头单位|牵头部门|牵头责任单位|主要责任单位|主责单位|责任单位|责任部门|主办单位|部门分工|承办单位)"
CO_LABEL = r"(?:配合单位|配合部门|协同责任单位|协同配合单位|协同单位|协办单位|参与单位|协作单位)"
FIELD = re.compile(rf"({LEAD_LABEL}|{CO_LABEL}|完成时限|完成时间|时间节点|时限)\s*[:]\s*")
# (…牵头…), (…负责), [责任单位:…]: the assignment closes a paragraph or a sentence.
PAREN = re.compile(r"[(\[]((?:[^()\[\]]|\([^()\[\]]*\)){2,300}?)[)\]]")
ASSIGN_WORDS = re.compile(rf"牵头|负责|配合|{LEAD_LABEL}|{CO_LABEL}")
NOTE = re.compile(r"[(\[][^()\[\]]*(第一位|首位|下同|不再单独列出)[^()\[\]]*[)\]]")
# A clause of an assignment that states the convention ("排在第一位的部门为牵头部门", "下同"): names nobody.
NOTE_CLAUSE = re.compile(r"第一位|首位|下同|不再单独列出|不再做分工|不再分工")
YOU_FUZE = re.compile(r"由([^。;,]{2,120}?)负责(?:落实)?")

DAY_EVENT = re.compile(r"[“\"]?(\d{1,2})\.(\d{1,2})([^”\"\s,。、]{2,14}?日)")

UNITS = (
    "个百分点|万人次|人次|万人|万户|万套|万亩|万吨|亿元|万元|元|平方公里|万平方米|平方米|公里|千米|千瓦|兆瓦|万千瓦|项|次|家|个|件|户|人|所|座|处|套|台|"
    "班次|场|篇|名|批|条|亩|吨|张|份|起|支|辆|栋|间|公顷|米|斤|万斤|亿斤|类|款|本|部|种|%|‰"
)
NUMBER = rf"(\d+(?:\.\d+)?|[{CN_NUM}两百千零]+)"
QUANTITY = re.compile(rf"{NUMBER}\s*({UNITS})")
# 百万青年 / 10万名: a count of people written without 人
PEOPLE = re.compile(r"(百万|千万|\d+万|[一二三四五六七八九十]+万)(?:名)?(青年|职工|学生|农民|人才|人员|劳动者|毕业生)")
# Numbers that are policy parameters, not commitments: caps, thresholds, ages, durations, shares paid.
NOT_TARGET_BEFORE = re.compile(
    r"(不超过|最高|最低|标准|补贴|补助|奖励|奖补|给予|按|每人|每户|每亩|每名|满|年满|超过\d|比例|费率|至|第)$"
)
NOT_TARGET_AFTER = re.compile(
    r"^(以上的|以下的|以内的|的(企业|人员|单位|项目|家庭|政策)|\(含\)|—|-|~|至|到\d|期限|周岁|岁|年以上)"
)
TARGET_CONTEXT = re.compile(
    r"不少于|至少|以上|达到|达|新增|新建|建成|建设|完成|培育|累计|力争|突破|超过|增长|提高|提升|下降|降低|控制在|"
    r"开展|组织|召开|举办|打造|改造|发放|接收|帮助|创建|认定|引进|培训|新认定|实现|增补|增加|形成|推出|遴选|扶持|"
    r"支持|吸引|解决|安置|提供|覆盖|实施|启动|举行|筹集|落实|争取|创成|招引|设立|安排|筹措"
)

DATE_FULL = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日(?:前|之前|以前)")
DATE_MONTH = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(?:份)?(?:底|末)?(?:前|之前|以前)")
DATE_MONTH_END = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(?:底|末)")
DATE_YEAR = re.compile(r"(\d{4})年(?:底|末|年底|年末)(?:前|之前|以前)?")
DATE_BY = re.compile(r"到(\d{4})年(?:(\d{1,2})月)?(底|末)?")
QUARTER = re.compile(r"(第[一二三四1-4]季度|[一二三四1-4]季度)(?:末|底)?(?:前)?")
ONGOING = re.compile(r"持续推进|长期坚持|持续开展|长期推进|持续实施|常态化|长期")
EVERY = re.compile(r"每季度|每半年|每月|每年|年度")

# Phrases that make a clause a qualitative commitment (a goal to check at the period's end).
QUALITATIVE = re.compile(
    r"(处于|保持)(全市|全省|全国|全区|全县)(领先|前列)|显著扩大|增幅明显|制定《[^》]{2,60}》|全面推进[^,;。]{2,40}建设$"
)
GOAL_PHRASE = re.compile(r"保持良好增长态势|实现新提升|达到较高水平")
OFFICE = re.compile(r"([^,;。]{2,30}?)(?:履行|承担)[^,;。]{0,20}办公室(?:日常)?职责")
IMPLIED_EVENT = re.compile(r"每年(?:至少)?(开展|组织|召开|举办)([^,;。\d]{2,30}?(活动|行动|培训|会议))")
ANNUAL_REPORT = re.compile(r"建立[^,;。]{0,40}年度报告制度")


@functools.cache
def _table() -> dict[int, int | str | None]:
    """_PUNCT plus every traditional character OpenCC turns into one simplified character (殘聯 → 残联,
    費率 → 费率), so a 繁體 copy matches the same words; one character for one, offsets unchanged."""
    import opencc

    t2s = opencc.OpenCC("t2s")
    table: dict[int, int | str | None] = {}
    for code in range(0x4E00, 0xA000):
        simplified = t2s.convert(chr(code))
        if len(simplified) == 1 and simplified != chr(code):
            table[code] = simplified
    return table | _PUNCT


def _norm(text: str) -> str:
    return text.translate(_table())


def _cn_number(s: str) -> float | None:
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        return float(s)
    try:
        value = cn2an.cn2an(s.replace("两", "二"), "strict")
    except (ValueError, KeyError, IndexError, AttributeError):
        return None
    return float(value)


def _month_end(year: int, month: int) -> date | None:
    if not (1 <= month <= 12):
        return None
    return date(year, month, calendar.monthrange(year, month)[1])


# ---- lines and numbering ---------------------------------------------------------------------------


@dataclass
class Node:
    level: int  # 1 一、 2 （一） 3 1. 4 一是; 0 the document
    marker: str
    head: str  # the text on the numbered line after its number (original characters)
    line: str = ""  # the numbered line as written, number included
    body: list[str] = field(default_factory=list)  # the lines that follow it (original characters)
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    def text(self) -> str:
        return "".join([self.head, *self.body])

    def subtree_text(self) -> str:
        return self.text() + "".join(c.subtree_text() for c in self.children)


def _join_broken_lines(lines: list[str]) -> list[str]:
    """Join a paragraph split by a page break ("…智" / "慧化建设…"): a long line that stops mid-sentence
    continues on the next line unless that one starts a heading or a field."""
    out: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if out:
            prev = _norm(out[-1])
            starts_new = any(p.match(_norm(line)) for p in (H1, H2, H3, H3P, H4)) or FIELD.match(_norm(line))
            if (
                len(prev) >= 30
                and not re.search(r"[。;:!?)\]》”\"|]$", prev)
                and TABLE_SEP not in prev
                and not starts_new
                and not FIELD.match(prev)
            ):
                out[-1] = out[-1] + line
                continue
        out.append(line)
    return out


def _heading(line: str) -> tuple[int, str, str] | None:
    n = _norm(line)
    for level, pattern in ((1, H1), (2, H2), (3, H3P), (3, H3), (4, H4)):
        m = pattern.match(n)
        if m and m.group(2).strip():
            if level == 3 and re.match(r"\d{4}年|\d+月|\d+(\.\d+)?%", n.strip()):
                return None  # 2024年… / 5月底前 / 6.2%: not a numbered item
            start = len(line) - len(line.lstrip()) + m.start(2)
            return level, m.group(1), line[start:].strip()
    return None


def _parse_tree(lines: list[str]) -> Node:
    root = Node(0, "", "")
    stack = [root]
    for line in lines:
        h = _heading(line)
        if h is None:
            stack[-1].body.append(line)
            continue
        level, marker, head = h
        while stack[-1].level >= level:
            stack.pop()
        node = Node(level, marker, head, line=line.strip(), parent=stack[-1])
        stack[-1].children.append(node)
        stack.append(node)
    return root


def _body_start(lines: list[str]) -> int:
    """Skip the covering notice (印发…的通知, its own 一、二、 requests): the plan starts after the last
    line that is the plan's own title, when there is one in the first half of the document."""
    start = 0
    for i, line in enumerate(lines[: max(1, len(lines) // 2)]):
        n = _norm(line).strip()
        if (
            len(n) <= 60
            and PLAN_TITLE.search(n)
            and not re.search(r"[。,;:]", n)
            and "通知" not in n
            and not n.startswith("关于")
            and _heading(line) is None
            and not _in_header_run(lines, i)
        ):
            start = i + 1
    return start


def _in_header_run(lines: list[str], i: int) -> bool:
    """Line i is a cell of a flattened table's header ("序号" / "目标与任务" / "牵头责任单位"), not a title."""
    return _column_kind(lines[i]) is not None and any(
        0 <= j < len(lines) and _column_kind(lines[j]) is not None for j in (i - 1, i + 1)
    )


# ---- departments -----------------------------------------------------------------------------------


def split_departments(text: str) -> list[str]:
    """ "市发展改革委、市财政局按职责分工负责" → [市发展改革委, 市财政局]; "X等有关部门" → [X, 有关部门]."""
    n = _norm(text)
    names: list[str] = []
    cuts = [(m.start(), m.end()) for m in DEPT_SPLIT.finditer(n)]
    cuts += [(m.start(), m.end()) for m in re.finditer(r"等(?=有关|相关|各|其他)", n)]
    depth, inside = 0, set()
    for i, c in enumerate(n):  # 各县（市、区）政府 is one name: no cut inside brackets
        depth += (c in "([") - (c in ")]")
        if depth > 0:
            inside.add(i)
    cuts = sorted(c for c in cuts if c[0] not in inside)
    pos = 0
    for start, end in [*cuts, (len(n), len(n))]:
        a, b = pos, start
        pos = max(pos, end)
        if b <= a:
            continue
        piece = n[a:b]
        head = DEPT_HEAD.match(piece)
        h = head.end() if head else 0
        tail = DEPT_TAIL.search(piece[h:])
        t = h + tail.start() if tail else len(piece)
        name = text[a + h : a + t].strip(" .。")
        if len(name) >= 2 and name not in names:
            names.append(name)
    return names


def _looks_like_department(name: str) -> bool:
    n = re.sub(r"\([^()]*\)$", "", _norm(name))  # 省数据局（省营商局）: judge the name, not its note
    return 2 <= len(n) <= 40 and (bool(DEPT_NAME.search(n)) or bool(COLLECTIVE.match(n))) and "。" not in n


def _assignment(inner: str, source: str) -> tuple[list[Found], list[Found]] | None:
    """Leads and co-departments from an assignment phrase (the inside of the closing parenthesis, or the
    value of a field line). None when the phrase names no department."""
    n = _norm(inner)
    for m in reversed(list(NOTE.finditer(n))):  # "（列第一位者为牵头或汇总单位，下同）" explains, names nobody
        inner, n = (
            inner[: m.start()] + " " * (m.end() - m.start()) + inner[m.end() :],
            n[: m.start()] + " " * (m.end() - m.start()) + n[m.end() :],
        )
    for m in re.finditer(r"[^,;。]+", n):
        if NOTE_CLAUSE.search(m.group()):
            blank = " " * (m.end() - m.start())
            inner, n = inner[: m.start()] + blank + inner[m.end() :], n[: m.start()] + blank + n[m.end() :]
    stop = n.find("。")
    if 0 < stop < len(n.rstrip("。 ")):  # "A、B负责。列第一位者为牵头单位，下同": the note is not a list
        inner, n = inner[:stop], n[:stop]
    leads: list[str] = []
    co: list[str] = []
    fields = list(FIELD.finditer(n))
    if fields:
        for i, m in enumerate(fields):
            value = inner[m.end() : fields[i + 1].start() if i + 1 < len(fields) else len(inner)]
            value = value.rstrip(";。 ")
            label = m.group(1)
            if re.fullmatch(CO_LABEL, label):
                co += split_departments(value)
            elif re.fullmatch(LEAD_LABEL, label):
                sub = _assignment(value, source) if re.search(r"牵头|配合", _norm(value)) else None
                if sub:
                    leads += [str(f.value) for f in sub[0]]
                    co += [str(f.value) for f in sub[1]]
                else:
                    names = split_departments(value)
                    if "牵头" in label:
                        leads += names
                    elif leads:  # 牵头单位：X；责任单位：Y — Y helps
                        co += names
                    elif names:
                        leads.append(names[0])
                        co += names[1:]
    else:
        lead_at = re.search(r"牵头", n)
        if lead_at:
            leads = split_departments(inner[: lead_at.start()])
            rest = inner[lead_at.end() :]
            co = split_departments(rest.lstrip(",;、 "))
        else:
            names = split_departments(inner)
            if names:
                leads, co = names[:1], names[1:]
    leads = [x for x in leads if _looks_like_department(x)]
    co = [x for x in co if _looks_like_department(x) and x not in leads]
    if not leads and not co:
        return None
    if not leads:  # only 配合单位: the first of them is not the lead; leave the lead to the office
        return [], [Found(x, source) for x in co]
    return [Found(x, source) for x in leads], [Found(x, source) for x in co]


# ---- deadlines and quantities ----------------------------------------------------------------------


def _deadlines(text: str, source: str, year: int, *, field_value: bool = False) -> list[Found]:
    n = _norm(text)
    found: list[Found] = []
    seen: set[object] = set()

    def add(value: object) -> None:
        if value is not None and value not in seen:
            seen.add(value)
            found.append(Found(value, source))

    spans: list[tuple[int, int]] = []
    for m in DATE_FULL.finditer(n):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        with contextlib.suppress(ValueError):
            add(date(y, mo, d))
        spans.append(m.span())
    for pattern in (DATE_MONTH, DATE_MONTH_END) if field_value else (DATE_MONTH,):
        for m in pattern.finditer(n):
            if any(a <= m.start() < b for a, b in spans):
                continue
            if m.group(1) is None and not field_value and m.start() > 0 and n[m.start() - 1] == "日":
                continue
            if m.group(1) is None and m.start() > 0 and n[m.start() - 1].isdigit():
                continue
            add(_month_end(int(m.group(1) or year), int(m.group(2))))
            spans.append(m.span())
    for m in DATE_YEAR.finditer(n):
        if not any(a <= m.start() < b for a, b in spans):
            add(date(int(m.group(1)), 12, 31))
            spans.append(m.span())
    for m in DATE_BY.finditer(n):
        if any(a <= m.start() < b for a, b in spans):
            continue
        if m.group(2):
            add(_month_end(int(m.group(1)), int(m.group(2))))
        elif m.group(3) or field_value:
            add(date(int(m.group(1)), 12, 31))
    if field_value:
        if ONGOING.search(n):
            add("ongoing")
        q = QUARTER.search(n)
        if q and not found:
            add("quarterly")
        if re.search(r"每季度", n):
            add("quarterly")
        elif re.search(r"每半年", n):
            add("half-yearly")
        elif re.search(r"每年|年度", n) and not found:
            add("annual")
        if not found and re.search(r"(?<!\d)(年底|年末)", n):
            add(date(year, 12, 31))  # 年底前: the plan's year
        month = re.search(r"(?:(\d{4})年)?(?<![\d-])(\d{1,2})月(?!\d)", n)
        if not found and month:  # a 完成时限 cell "9月投入使用": done within that month
            add(_month_end(int(month.group(1) or year), int(month.group(2))))
        if not found and re.fullmatch(r"\s*(\d{4})年\s*", n):
            add(date(int(n.strip()[:4]), 12, 31))
    return found


def _clauses(sentence: str) -> Iterable[tuple[int, int]]:
    n = _norm(sentence)
    start = 0
    for m in re.finditer(r"[,;。:!?]", n):
        yield start, m.start()
        start = m.end()
    if start < len(n):
        yield start, len(n)


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    start = 0
    n = _norm(text)
    for m in re.finditer(r"[。!?]|;(?=\s*$)", n):
        out.append(text[start : m.end()])
        start = m.end()
    if text[start:].strip():
        out.append(text[start:])
    return [s.strip() for s in out if s.strip()]


def _strip_assignment(text: str) -> str:
    """The text without its assignment parentheses and field lines, for quantities and titles."""
    n = _norm(text)
    keep = list(text)
    for m in PAREN.finditer(n):
        if ASSIGN_WORDS.search(m.group(1)):
            for i in range(m.start(), m.end()):
                keep[i] = " "
    return "".join(keep)


ENTITLEMENT = re.compile(r"可(申请|返还|按|享受|给予|获得|领取|适当)|的,可|返还其")


# A count in Chinese numerals follows a verb of doing or a bound: 每年至少召开一次, 开展四次, 达到三家.
CN_COUNT_BEFORE = (
    r"(至少|不少于|达到|新增|新建|建成|建设|开展|组织|召开|举办|举行|完成|培育|创建|打造|每年|累计|增加|实施|"
    r"培训|引进|认定|设立|不低于|超过|^)\s*$"
)


def quantities(text: str, year: int, period_end: date) -> list[Target]:
    """Numeric targets in a task's text (assignment parentheses removed by the caller)."""
    targets: list[Target] = []
    for sentence in _sentences(text):
        n = _norm(sentence)
        if ENTITLEMENT.search(n):
            continue  # "…的，可申请最高不超过300万元": what someone may claim, not what the task commits to
        due = None
        by = DATE_BY.search(n) or DATE_YEAR.search(n)
        if by:
            due = date(int(by.group(1)), 12, 31)
        for a, b in _clauses(sentence):
            clause_n = n[a:b]
            clause = sentence[a:b]
            for m in QUANTITY.finditer(clause_n):
                number, unit = m.group(1), m.group(2)
                before, after = clause_n[: m.start()], clause_n[m.end() :]
                if NOT_TARGET_BEFORE.search(before) or NOT_TARGET_AFTER.match(after):
                    continue
                if re.search(r"\d$", before) or (before.endswith(".") and unit):
                    continue
                if unit in ("年", "月", "日"):
                    continue
                # 2024年 / 3年 / 6个月 are not quantities; QUANTITY has no 年 unit, but 个 + 月 slips in
                if unit == "个" and after.startswith(("月", "工作日", "百分点")):
                    continue
                if number == "一" and unit in ("批", "个", "部", "种", "类", "条"):
                    continue  # 一批/一个: "a number of", not a count
                if (
                    not re.search(r"\d", number)
                    and not re.search(CN_COUNT_BEFORE, before)
                    and not re.match(r"(以上|以下|左右|$)", after)
                ):
                    continue  # 统一部署 / 零部件: a numeral inside a word, not a count
                value = _cn_number(number)
                if not value:
                    continue
                if value is None or (not re.search(r"\d", number) and len(number) > 4):
                    continue
                if not TARGET_CONTEXT.search(clause_n) and "%" not in unit:
                    continue
                target = Target(name=_metric_name(clause_n, m.start()), source=clause.strip(), unit=unit, value=value)
                window = clause_n[max(0, m.start() - 12) : m.end() + 4]
                if re.search(r"增长|提高|增幅", window) and unit in ("%", "个百分点"):
                    target.kind = "growth"
                elif unit in ("%", "‰"):
                    target.kind = "rate"
                if re.search(r"左右", after[:3]):
                    target.about = True  # read as a minimum, with the 左右 said in the description
                if re.search(r"以内|以下|不高于|控制在|涨幅", clause_n[max(0, m.start() - 6) : m.end() + 3]):
                    target.comparator = "<="
                if re.search(r"每年|年均|每年度", clause_n[: m.start()]):
                    target.period = "annual"
                elif re.search(r"[三五两\d]年(累计)?新增|累计", clause_n[: m.start()]):
                    target.period = "cumulative"
                else:
                    target.due = due
                targets.append(target)
            for m in PEOPLE.finditer(clause_n):
                if not TARGET_CONTEXT.search(clause_n):
                    continue
                head = m.group(1)[:-1]
                base = {"百": 100.0, "千": 1000.0}.get(head) or _cn_number(head)
                if base:
                    targets.append(Target(name=_metric_name(clause_n, m.start()), source=clause.strip(), unit="人",
                                          value=base * 10_000, due=due))  # fmt: skip
    return targets


def _metric_name(clause: str, at: int) -> str:
    name = clause[:at]
    name = re.sub(r"^(到\d{4}年(底|末)?|努力实现|实现|力争|全年|今年|每年|确保|累计|三年|五年|新增|其中)+", "", name)
    name = re.sub(r"(不少于|至少|达到|超过|增长|达|为|新增|完成|建成|实现|提高到|控制在|突破)+$", "", name)
    return name.strip() or clause.strip()


def _qualitative(text: str, year: int) -> list[Target]:
    found: list[Target] = []
    for sentence in _sentences(text):
        n = _norm(sentence)
        by = DATE_BY.search(n)
        due = date(int(by.group(1)), 12, 31) if by else None
        for a, b in _clauses(sentence):
            clause = sentence[a:b].strip()
            if QUALITATIVE.search(_norm(clause)) and not QUANTITY.search(_norm(clause)):
                target = Target(name=clause, source=clause, comparator="qualitative", due=due,
                                description=f"原文：{clause}（定性目标，是否达成由办公室判断）")  # fmt: skip
                if due is None and re.search(r"每年", _norm(text)) and "保持" in clause:
                    target.period = "annual"
                found.append(target)
    return found


def _implied(text: str) -> list[Target]:
    """每年开展/组织/召开… with no count: once a year (proposed), and 建立…年度报告制度: one report a year."""
    found: list[Target] = []
    for sentence in _sentences(text):
        for a, b in _clauses(sentence):
            clause = sentence[a:b]
            n = _norm(clause)
            m = IMPLIED_EVENT.search(n)
            if m and not QUANTITY.search(n[m.start() :]):
                source = clause.strip()
                if len(m.group(2)) <= 4 and a > 0:  # "…工作室建设，每年组织工作培训": the clause before names it
                    prev = [c for c in _clauses(sentence) if c[1] <= a]
                    if prev:
                        source = sentence[prev[-1][0] : b].strip()
                note = "原文未写次数，按每年不少于1次计（proposed，请办公室确认）"
                found.append(Target(m.group(2), source, "次", value=1, period="annual", implied=True, description=note))
            if ANNUAL_REPORT.search(n):
                note = "年度报告制度：按每年1份计（proposed，请办公室确认完成时间）"
                source = clause.strip()
                found.append(Target(source, source, "份", value=1, period="annual", implied=True, description=note))
    return found


# ---- tasks -----------------------------------------------------------------------------------------


def _title(node: Node) -> str:
    head = _strip_assignment(node.head).strip()
    n = _norm(head)
    m = re.search(r"[。;]", n)
    title = head[: m.start()] if m else head
    if len(title) > 40:
        m = re.search(r"[,:]", _norm(title))
        title = title[: m.start()] if m and m.start() >= 4 else title[:40]
    return title.strip(" .。") or head[:40]


def _task_from(node: Node, code: str, year: int, period_end: date) -> Task:
    # The source: the numbered paragraph with its own lines, without field lines (they are the assignment).
    text_lines = [node.head, *[ln for ln in node.body if not FIELD.match(_norm(ln))]]
    if node.level >= 3:
        source = "".join([node.line or node.head, *text_lines[1:]])  # 一是… / 1.… as the plan writes it
    else:
        source = "".join(text_lines[1:]) or node.head  # a heading's source is what follows it
    source = source.strip()
    task = Task(code=code, title=_title(node), source=source)
    whole = node.text()
    n = _norm(whole)
    # Field lines (牵头单位：…) and table cells.
    field_lines = [ln for ln in node.body if FIELD.match(_norm(ln))]
    if field_lines:
        # "协同责任单位：…。" — a field line's full stop ends the line; it does not start a note
        values = [re.sub(r"[。.\s]+$", "", x) for x in field_lines]
        found = _assignment("".join(x if x.endswith((";", "；")) else x + ";" for x in values),
                            "\n".join(field_lines))  # fmt: skip
        if found:
            task.leads, task.co = found
        for ln in field_lines:
            m = re.match(r"(完成时限|完成时间|时间节点|时限)\s*[:：]\s*(.*)$", _norm(ln))
            if m:
                task.deadlines += _deadlines(ln[m.start(2) :], ln, year, field_value=True)
    for m in PAREN.finditer(n):
        if not task.leads and ASSIGN_WORDS.search(m.group(1)):
            found = _assignment(whole[m.start(1) : m.end(1)], _paren_source(whole, m.start(), m.end()))
            if found:
                task.leads, task.co = found
    if not task.leads and not task.co:
        opener = _unclosed(n)
        if opener is not None:  # "…重大项目。〔省委军民融合办、省发展改革委、…" cut off before its 〕
            rest = whole[opener + 1 :]
            names = split_departments(rest)
            if len(names) >= 2 and all(_looks_like_department(x) for x in names):
                found = _assignment(rest, _sentence_at(whole, opener))
                if found:
                    task.leads, task.co = found
    if not task.leads:
        m = YOU_FUZE.search(n)
        if m:
            found = _assignment(whole[m.start(1) : m.end(1)], _sentence_at(whole, m.start()))
            if found:
                task.leads, task.co = found
    if not task.leads and not task.co:
        # "发挥A、B、C等多部门联动": departments named, none said to lead.
        m = re.search(r"发挥([^,;。]{2,60}?)等多部门", n)
        if m:
            names = [x for x in split_departments(whole[m.start(1) : m.end(1)]) if len(x) >= 2]
            task.co = [Found(x, _sentence_at(whole, m.start())) for x in names]
    plain = _strip_assignment(source if node.level <= 2 else "".join(text_lines))
    if not task.leads:
        m = OFFICE.search(_norm(plain))
        if m:  # "区知识产权局履行…办公室职责": the office leads this task
            a = max(_norm(plain).rfind(c, 0, m.start(1) + 1) for c in "。,;") + 1
            name = re.sub(r"^(由|并|同时)", "", plain[a : m.end(1)].strip())
            if _looks_like_department(name):
                task.leads = [Found(name, _sentence_at(plain, m.start()))]
    for sentence in _sentences(plain):
        task.deadlines += [
            d for d in _deadlines(sentence, sentence.strip(), year) if d.value not in {x.value for x in task.deadlines}
        ]
    task.targets = quantities(plain, year, period_end) + _implied(plain) + _qualitative(plain, year)
    for m in DAY_EVENT.finditer(_norm(plain)):
        month, day = int(m.group(1)), int(m.group(2))
        if 1 <= month <= 12 and 1 <= day <= 31:
            task.events.append((m.group(3), f"{month:02d}-{day:02d}", _sentence_at(plain, m.start())))
    task.recurring = (
        bool(re.search(r"每年|每季度|每月|定期|常态化", n))
        or any(t.period == "annual" for t in task.targets)
        or bool(task.events)
    )
    return task


def _paren_source(text: str, start: int, end: int) -> str:
    """The sentence an assignment parenthesis closes, with the parenthesis: "建设平台。（区科委牵头）"."""
    n = _norm(text)
    before = n[:start].rstrip()
    if before.endswith(("。", ";")):
        before = before[:-1]
    a = max(before.rfind("。"), before.rfind(";"), before.rfind("\n")) + 1
    return text[a:end].strip()


def _unclosed(n: str) -> int | None:
    """The position of an opening bracket that is never closed, if any."""
    stack: list[int] = []
    for i, c in enumerate(n):
        if c in "([":
            stack.append(i)
        elif c in ")]" and stack:
            stack.pop()
    return stack[0] if stack else None


def _sentence_at(text: str, pos: int) -> str:
    n = _norm(text)
    a = max(n.rfind("。", 0, pos), n.rfind("\n", 0, pos)) + 1
    b = n.find("。", pos)
    return text[a : b + 1 if b >= 0 else len(text)].strip()


# ---- tables ----------------------------------------------------------------------------------------

COLUMN = {
    "leader": re.compile(r"领导$"),  # 分管县领导 / 牵头负责领导: people, not departments
    "lead": re.compile(r"牵头|主要责任|主责|责任单位|责任部门|承办"),
    "co": re.compile(r"配合|协同|协办|参与"),
    "due": re.compile(r"时限|完成时间|时间节点|进度"),
    "task": re.compile(r"任务|事项|内容|措施|实事|工作|项目|目标"),
    "no": re.compile(r"^序号$|^编号$"),
}


def _column_kind(cell: str) -> str | None:
    n = _norm(cell).strip()
    if re.search(r"[:。]", n) or _heading(cell) is not None:
        return None  # "牵头单位：X" is a field line and "1.开展…项目。" an item, not a column's name
    for kind in ("no", "leader", "co", "lead", "due", "task"):
        if COLUMN[kind].search(n) and len(n) <= 12:
            return kind
    return None


def _table_tasks(lines: list[str], year: int, period_end: date) -> list[tuple[str, Task]] | None:
    """Rows of a task table: a Word table (cells joined by " | ") or a table flattened one cell per line
    (序号 / 民生实事 / 责任单位 / 完成时限, then 1 / task / departments… / deadline)."""
    for i, line in enumerate(lines):
        if TABLE_SEP in line:
            cells = line.split(TABLE_SEP)
            header = [_column_kind(c) for c in cells]
            for col in range(len(cells)):  # 牵头单位 | 责任单位: the second column lists the helpers
                if header[col] == "lead" and any(header[j] == "lead" and "牵头" in _norm(cells[j]) for j in range(col)):
                    header[col] = "co"
            if "lead" in header and ("task" in header or "due" in header):
                return _grid_rows(lines[i + 1 :], header, year, period_end)
    # Flattened: a run of header cells, each on its own line.
    for i in range(len(lines)):
        kinds: list[str] = []
        j = i
        while j < len(lines) and (kind := _column_kind(lines[j])) is not None:
            if kind == "lead" and "lead" in kinds and "co" not in kinds and "牵头" in _norm(lines[j - 1]):
                kind = "co"  # 牵头责任单位 / 责任单位: the second column lists the helpers
            if kind in kinds:
                break
            kinds.append(kind)
            j += 1
        if "lead" in kinds and "task" in kinds and len(kinds) >= 3:
            return _flat_rows(lines[j:], kinds, year, period_end)
    return None


def _grid_rows(rows: list[str], header: list[str | None], year: int, period_end: date) -> list[tuple[str, Task]]:
    tasks: list[tuple[str, Task]] = []
    group = ""
    for row in rows:
        cells = row.split(TABLE_SEP)
        if len(cells) == 1:
            group = cells[0]
            continue
        values: dict[str, str] = {}
        for kind, cell in zip(header, cells, strict=False):
            if kind and cell.strip():
                values.setdefault(kind, cell.strip())
        text = values.get("task", "")
        if not text:
            continue
        task = _row_task(
            len(tasks) + 1,
            text,
            row,
            values.get("lead", ""),
            values.get("co", ""),
            values.get("due", ""),
            year,
            period_end,
        )
        tasks.append((group, task))
    return tasks


def _flat_rows(lines: list[str], kinds: list[str], year: int, period_end: date) -> list[tuple[str, Task]]:
    tasks: list[tuple[str, Task]] = []
    rows: list[list[str]] = []
    for line in lines:
        if ROW_NUMBER.match(line) and "no" in kinds:
            rows.append([])
        elif not rows:
            rows.append([])
            rows[-1].append(line)
        else:
            rows[-1].append(line)
    last_depts: list[str] = []
    columns = [k for k in kinds if k != "no"]
    for cells in rows:
        if "no" in kinds and len(cells) == len(columns) and "task" in columns:
            # One cell per column: read the row by position, when its department cells are departments.
            by = dict(zip(columns, cells, strict=True))
            depts = [by[k] for k in ("lead", "co") if k in by]
            if all(split_departments(x) and all(map(_looks_like_department, split_departments(x))) for x in depts):
                source = "\n".join(cells)
                task = _row_task(len(tasks) + 1, by["task"], source, by.get("lead", ""), by.get("co", ""),
                                 by.get("due", ""), year, period_end)  # fmt: skip
                tasks.append(("", task))
                continue
        # A row: task text, then department lines, then deadline lines; a merged row repeats (task, deadline).
        pending: dict[str, list[str]] = {"task": [], "lead": [], "due": []}
        entries: list[dict[str, list[str]]] = []
        for cell in cells:
            n = _norm(cell)
            if _deadlines(cell, cell, year, field_value=True) and len(n) <= 20:
                pending["due"].append(cell)
                entries.append(pending)
                pending = {"task": [], "lead": [], "due": []}
            elif _looks_like_department(cell) and not re.search(r"[。,]", n):
                pending["lead"].append(cell)
            else:
                if pending["task"] and (pending["lead"] or pending["due"]):
                    entries.append(pending)
                    pending = {"task": [], "lead": [], "due": []}
                pending["task"].append(cell)
        if pending["task"]:
            entries.append(pending)
        for entry in entries:
            if not entry["task"]:
                continue
            depts = entry["lead"] or last_depts  # a merged 责任单位 cell covers the row's later tasks
            last_depts = depts
            text = "".join(entry["task"])
            source = "\n".join([*entry["task"], *entry["lead"], *entry["due"]])
            task = _row_task(
                len(tasks) + 1, text, source, "、".join(depts), "", "".join(entry["due"]), year, period_end
            )
            tasks.append(("", task))
        last_depts = []
    return tasks


def _row_task(index: int, text: str, source: str, lead: str, co: str, due: str, year: int, period_end: date) -> Task:
    task = Task(code=str(index), title=_title(Node(3, "", text)), source=text.strip())
    names = split_departments(lead)
    names = [x for x in names if _looks_like_department(x)]
    if names:
        task.leads = [Found(names[0], source)]
        task.co = [Found(x, source) for x in names[1:]]
    if co:
        task.co += [Found(x, source) for x in split_departments(co) if _looks_like_department(x) and x not in names]
    if due:
        task.deadlines = _deadlines(due, due, year, field_value=True)
    for sentence in _sentences(text):
        task.deadlines += [
            d for d in _deadlines(sentence, sentence, year) if d.value not in {x.value for x in task.deadlines}
        ]
    task.targets = quantities(text, year, period_end) + _implied(text)
    task.recurring = bool(re.search(r"每年|每季度|每月", _norm(text)))
    return task


# ---- the document ----------------------------------------------------------------------------------


def _period(title: str, text: str) -> tuple[date, date, date | None]:
    n = _norm(title)
    m = re.search(r"(\d{4})\s*[-—–~至到]+\s*(\d{4})年?", n)
    issued = None
    tail = _norm(text[-400:])
    for pattern in (
        r"(\d{4})年(\d{1,2})月(\d{1,2})日印发",
        r"(\d{4})年(\d{1,2})月(\d{1,2})日\s*$",
        r"(\d{4})年(\d{1,2})月(\d{1,2})日",
    ):
        d = re.search(pattern, tail) or re.search(pattern, _norm(text[:2000]))
        if d:
            try:
                issued = date(int(d.group(1)), int(d.group(2)), int(d.group(3)))
            except ValueError:
                issued = None
            break
    if m:
        return date(int(m.group(1)), 1, 1), date(int(m.group(2)), 12, 31), issued
    y = re.search(r"(\d{4})年", n) or re.search(r"(\d{4})年", _norm(text[:3000]))
    year = int(y.group(1)) if y else (issued.year if issued else date.today().year)
    return date(year, 1, 1), date(year, 12, 31), issued


def extract_text(text: str) -> Extraction:
    """Read a plan document's text into groups, tasks, departments, deadlines and targets."""
    lines = _join_broken_lines(text.splitlines())
    # A table dumped one cell per line, each cell closed by " |" ("序号 |", "县教育局 |", "||" between rows):
    # the cells without their bars are a flattened table.
    lines = [c for c in (re.sub(r"\s*\|+\s*$", "", ln) for ln in lines) if c.strip()]
    if not lines:
        raise ExtractError("the document is empty")
    start = _body_start(lines)
    title = lines[start - 1].strip() if start else _guess_title(lines)
    if start >= 2:
        prev = _norm(lines[start - 2]).strip()
        if (
            len(prev) <= 30
            and not re.search(r"[。,:;]|\d{4}年\d{1,2}月\d{1,2}日|发布|号$|通知$", prev)
            and _heading(lines[start - 2]) is None
        ):
            title = lines[start - 2].strip() + title  # a title broken over two lines
    p0, p1, issued = _period(title, text)
    year = p0.year
    issuer = _issuer(text)
    document_no = ""
    m = re.search(r"[\u4e00-\u9fff]{1,8}[\[〔(]\d{4}[\]〕)]\s*\d+\s*号", _norm(text[:3000]))
    if m:
        document_no = text[:3000][m.start() : m.end()]

    body = lines[start:]
    for i, line in enumerate(body):
        if re.match(r"\s*(抄送|抄报|主送|分送)\s*:", _norm(line)):
            body = body[:i]  # the distribution list and the print line close the document
            break
    office = None
    for line in body:
        m = OFFICE.search(_norm(line))
        if m:
            clause_start = max(_norm(line).rfind(c, 0, m.start(1) + 1) for c in "。,;") + 1
            name = line[clause_start : m.end(1)].strip()
            name = re.sub(r"^(由|并|同时)", "", name)
            if _looks_like_department(name):
                office = Found(name, _sentence_at(line, m.start()))
            break

    groups: list[Group] = []
    goals: list[Target] = []
    table = _table_tasks(body, year, p1)
    if table:
        by_group: dict[str, Group] = {}
        for gtitle, task in table:
            g = by_group.get(gtitle)
            if g is None:
                g = Group(str(len(by_group) + 1), gtitle or title or "主要任务", "main")
                by_group[gtitle] = g
                groups.append(g)
            task.code = f"{g.code}.{len(g.tasks) + 1}"
            g.tasks.append(task)
    else:
        root = _parse_tree(body)
        _collect(root, groups, goals, year, p1, title)
    if not any(g.tasks for g in groups):
        raise ExtractError("no tasks found: expected numbered items (一、/（一）/1./一是) or a task table")
    return Extraction(title=title.strip(), issuer=issuer, document_no=document_no, issued=issued, start=p0, end=p1,
                      office=office, groups=[g for g in groups if g.tasks], goals=goals)  # fmt: skip


def _guess_title(lines: list[str]) -> str:
    for line in lines[:20]:
        n = _norm(line)
        if len(n) <= 80 and re.search(r"方案|计划|要点|意见|分解|规划", n) and not re.search(r"[。:]", n):
            return line.strip()
    return lines[0].strip()[:80]


def _issuer(text: str) -> str:
    head = _norm(text[:600])
    for pattern in (
        r"([\u4e00-\u9fff]{2,20}?(?:人民政府办公厅|人民政府办公室|人民政府))关于",
        r"([\u4e00-\u9fff]{2,20}?(?:人民政府办公厅|人民政府办公室|人民政府))(?:文件|办公)",
    ):
        m = re.search(pattern, head)
        if m:
            return text[m.start(1) : m.end(1)]
    tail = [ln.strip() for ln in text.strip().splitlines()[-6:] if ln.strip()]
    for ln in reversed(tail):
        if re.search(r"(人民政府|办公室|办公厅|委员会)$", _norm(ln)) and len(ln) <= 30:
            return ln
    return ""


def _has_assignment(node: Node) -> bool:
    text = _norm(node.subtree_text())
    return bool(FIELD.search(text) or re.search(r"[(\[][^()\[\]]{0,200}(牵头|负责|配合|责任单位)[^()\[\]]*[)\]]", text))


def _collect(root: Node, groups: list[Group], goals: list[Target], year: int, period_end: date, title: str) -> None:
    """Walk the numbering: the deepest numbered items are the tasks, their parents the groups."""
    sections = root.children
    for section in sections:
        head = _norm(section.head)
        if section.level == 1 and not _has_assignment(section):
            if SAFEGUARD.search(head):
                pass
            elif GOAL_SECTIONS.search(head):
                goals.extend(_goals(section, year, period_end))
                continue
            elif SKIP_SECTIONS.search(head):
                continue
        _walk(section, groups, year, period_end, safeguard=bool(SAFEGUARD.search(head)), default_title=title)
    # Numbered groups first, 保障措施 last as S.
    for i, g in enumerate([g for g in groups if g.kind == "main"], start=1):
        g.code = str(i)
        for j, t in enumerate(g.tasks, start=1):
            t.code = f"{g.code}.{j}"
    safeguards = [g for g in groups if g.kind == "safeguard"]
    for k, g in enumerate(safeguards):
        g.code = "S" if k == 0 else f"S{k + 1}"
        for j, t in enumerate(g.tasks, start=1):
            t.code = f"{g.code}.{j}"


def _walk(node: Node, groups: list[Group], year: int, period_end: date, *, safeguard: bool, default_title: str) -> None:
    if not node.children:
        parent = node.parent
        gtitle = _title(parent) if parent is not None and parent.level > 0 else default_title or "主要任务"
        key = id(parent)
        group = next((g for g in groups if getattr(g, "_key", None) == key), None)
        if group is None:
            group = Group("", gtitle, "safeguard" if safeguard else "main")
            group._key = key  # type: ignore[attr-defined]
            groups.append(group)
        group.tasks.append(_task_from(node, "", year, period_end))
        return
    for child in node.children:
        _walk(child, groups, year, period_end, safeguard=safeguard, default_title=default_title)


def _goals(section: Node, year: int, period_end: date) -> list[Target]:
    goals: list[Target] = []
    text = section.subtree_text()
    for sentence in _sentences(text):
        n = _norm(sentence)
        for a, b in _clauses(sentence):
            clause = n[a:b]
            m = GOAL_PHRASE.search(clause)
            if not m:
                continue
            subject = sentence[a : a + m.start()]
            for name in split_departments_like_items(subject):
                goals.append(Target(name=name, source=sentence.strip(), comparator="qualitative",
                                    period="annual" if "增长" in m.group(0) else "at-date",
                                    due=None if "增长" in m.group(0) else period_end,
                                    description=f"{m.group(0)}（定性目标，是否达成由办公室判断）"))  # fmt: skip
        for t in quantities(sentence, year, period_end):
            goals.append(t)
    return goals


def split_departments_like_items(text: str) -> list[str]:
    items = [x.strip() for x in re.split(r"[、]", _norm(text))]
    items = [re.sub(r"等$", "", x).strip() for x in items]
    return [x for x in items if len(x) >= 2]


def extract(path: Path) -> Extraction:
    return extract_text(read_document(path))


# ---- the plan file ---------------------------------------------------------------------------------


def _dept_kind(name: str) -> str:
    n = _norm(name)
    if re.search(r"公安|派出所|经侦", n):
        return "police"
    if re.search(r"法院|检察院", n):
        return "judicial"
    if re.search(r"(区|市|县|省)委|党校|宣传部|组织部|统战部|政法委|网信办|编办|党工委|纪委", n):
        return "party"
    if re.search(r"[镇乡]|街道", n):
        return "town"
    if re.search(r"园区|开发区|管委会|科技城|高新区", n):
        return "park"
    if re.search(r"协会|联盟|商会|工会|联合会|妇联|团委|残联|科协|侨联", n):
        return "association"
    if COLLECTIVE.match(n):
        return "other"
    return "government"


def to_plan(extraction: Extraction, *, code: str | None = None, source_name: str = "") -> dict[str, object]:
    """The plan file's content (docs/plan-format.md) as plain data; :func:`render_yaml` writes it."""
    names: list[str] = []

    def dept(name: str) -> str:
        if name not in names:
            names.append(name)
        return f"d{names.index(name) + 1:02d}"

    office_code = dept(str(extraction.office.value)) if extraction.office else None
    placeholder = "待定（请办公室指定牵头单位）"
    groups = []
    for g in extraction.groups:
        tasks = []
        for t in g.tasks:
            leads = [str(f.value) for f in t.leads]
            co = [str(f.value) for f in t.co]
            if leads:
                lead = dept(leads[0])
                co_names = leads[1:] + [c for c in co if c not in leads]  # several leads: the rest listed as co
            else:
                lead = office_code or dept(placeholder)
                co_names = co
            co_codes = [c for c in dict.fromkeys(dept(c) for c in co_names) if c != lead]
            task: dict[str, object] = {"code": t.code, "title": t.title, "source": t.source, "lead": lead}
            if co_codes:
                task["co"] = co_codes
            task["assignment"] = "stated" if t.stated else "proposed"
            dates = sorted(
                d.value
                for d in t.deadlines
                if isinstance(d.value, date) and extraction.start <= d.value <= extraction.end
            )
            numeric = [x for x in t.targets if x.comparator != "qualitative"]
            if t.recurring:
                task["kind"] = "recurring"
            elif numeric and any(x.period != "annual" for x in numeric) and not dates:
                task["kind"] = "metric"
            else:
                task["kind"] = "one-off"
            guessed = []
            if not t.stated:
                who = f"办公室（{extraction.office.value}）" if extraction.office else "待定单位"
                guessed.append(f"原文未写牵头单位，暂列{who}（proposed，请办公室指定）")
            if dates and task["kind"] == "one-off":
                task["due"] = dates[-1]
            elif task["kind"] == "one-off":
                task["due"] = extraction.end
                guessed.append("原文未写完成时间，暂按方案期末（proposed）")
            if guessed:
                task["description"] = "；".join(guessed)
            targets = []
            for i, x in enumerate(t.targets, start=1):
                targets.append(_target_dict(x, f"{t.code}.m{i}", extraction))
            if targets:
                task["targets"] = targets
            events = [{"name": name, "day": day} for name, day, _ in dict.fromkeys(t.events)]
            if events:
                task["events"] = events
            tasks.append(task)
        groups.append({"code": g.code, "title": g.title, "kind": g.kind, "tasks": tasks})
    goals = [_target_dict(x, f"goal.{i}", extraction) for i, x in enumerate(extraction.goals, start=1)]
    departments = [
        {"code": f"d{i:02d}", "name": name, "kind": _dept_kind(name) if name != placeholder else "other"}
        for i, name in enumerate(names, start=1)
    ]
    digest = hashlib.sha256(extraction.title.encode("utf-8")).hexdigest()[:8]
    meta: dict[str, object] = {
        "code": code or f"plan-{extraction.start.year}-{digest}",
        "title": extraction.title or "未命名方案",
    }
    if extraction.issuer:
        meta["issuer"] = extraction.issuer
    if extraction.document_no:
        meta["document_no"] = extraction.document_no
    if extraction.issued:
        meta["issued"] = extraction.issued
    meta |= {"start": extraction.start, "end": extraction.end, "timezone": "Asia/Shanghai"}
    if source_name:
        meta["source"] = source_name
    if office_code:
        meta["office"] = office_code
    plan: dict[str, object] = {"plan": meta, "departments": departments}
    if goals:
        plan["goals"] = goals
    plan["groups"] = groups
    plan["contacts"] = []
    return plan


def _target_dict(x: Target, metric: str, extraction: Extraction) -> dict[str, object]:
    d: dict[str, object] = {"metric": metric, "name": (x.name or x.source)[:60]}
    if x.unit:
        d["unit"] = x.unit
    comparator = x.comparator
    d["comparator"] = comparator
    if comparator != "qualitative":
        d["value"] = x.value if x.value is None or x.value != int(x.value) else int(x.value)
        if comparator == ">=" and not x.value:
            d["comparator"] = "=="
    d["period"] = x.period
    if x.period == "cumulative":
        d["start"], d["due"] = extraction.start, extraction.end
    elif x.due and extraction.start <= x.due <= extraction.end:
        d["due"] = x.due
    elif comparator != "qualitative" and x.period == "at-date":
        d["due"] = extraction.end  # a value at a date the text does not give: the plan's end
    notes = [x.description] if x.description else []
    if x.about:
        notes.append("原文为“左右”：按不低于该值计，约数（proposed，请办公室确认）")
    if x.kind == "growth":
        notes.append("增长率目标：期末比较，不按序时进度折算")
    if comparator == "qualitative" and not notes:
        notes.append(x.source)
    if notes:
        d["description"] = "；".join(notes)
    d["source"] = x.source
    return d


class _NoAliases(yaml.SafeDumper):
    """The same date twice is written twice, not as an anchor and an alias."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def render_yaml(extraction: Extraction, *, code: str | None = None, source_name: str = "") -> str:
    """The draft plan file: valid for ``coordbot plan validate``, with each task's evidence as comments."""
    plan = to_plan(extraction, code=code, source_name=source_name)

    def dump(data: object, indent: int) -> str:
        text = yaml.dump(
            data, Dumper=_NoAliases, allow_unicode=True, sort_keys=False, width=1000, default_flow_style=False
        )
        pad = " " * indent
        return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))

    out = [
        f"# Draft plan extracted by `coordbot plan extract` from {source_name or 'the document'}.\n",
        "# Review before importing: `assignment: proposed` marks a lead the text does not name (the office\n",
        "# decides), and every value guessed says so in its description. The comment above each task quotes\n",
        "# the sentences its lead, co-departments and deadline came from. Department codes d01… are\n",
        "# placeholders: rename them and add aliases as you like (docs/plan-format.md).\n\n",
    ]
    out.append(dump({"plan": plan["plan"]}, 0) + "\n")
    out.append(dump({"departments": plan["departments"]}, 0) + "\n")
    if "goals" in plan:
        out.append(dump({"goals": plan["goals"]}, 0) + "\n")
    out.append("groups:\n")
    tasks_by_code = {t.code: t for t in extraction.tasks()}
    for g in plan["groups"]:  # type: ignore[attr-defined]
        out.append(dump([{k: v for k, v in g.items() if k != "tasks"}], 2).rstrip("\n") + "\n    tasks:\n")
        for task in g["tasks"]:
            out.append("".join(_evidence(tasks_by_code[str(task["code"])], extraction)))
            out.append(dump([task], 6))
        out.append("\n")
    out.append("contacts: []\n")
    return "".join(out)


def _evidence(task: Task, extraction: Extraction) -> list[str]:
    lines: list[str] = []

    def quote(s: str) -> str:
        return " ".join(s.split())[:300]

    if task.leads:
        lines.append(
            f"# lead (stated): {'、'.join(str(f.value) for f in task.leads)} — 「{quote(task.leads[0].source)}」\n"
        )
    elif extraction.office:
        office = extraction.office
        lines.append(
            f"# lead (proposed): the text names none; the office {office.value} — 「{quote(office.source)}」\n"
        )
    else:
        lines.append("# lead (proposed): the text names none; the office must choose one\n")
    if task.co:
        lines.append(f"# co (stated): {'、'.join(str(f.value) for f in task.co)} — 「{quote(task.co[0].source)}」\n")
    for d in task.deadlines:
        lines.append(f"# deadline: {d.value} — 「{quote(d.source)}」\n")
    if not any(isinstance(d.value, date) for d in task.deadlines):
        lines.append("# deadline (proposed): none in the text; one-off tasks default to the plan's end\n")
    return ["      " + ln for ln in lines]
