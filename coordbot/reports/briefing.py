"""The joint-meeting briefing (联席会议简报) for the period since the last meeting: DOCX, HTML and Markdown.

The words and numbers come from one template (``reports/briefing.txt.j2``) rendered into blocks; this
module only lays the blocks out, so the three formats can never disagree. Charts are PNG (see charts.py),
embedded in the DOCX and, as data URIs, in the HTML.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import distinct, func
from sqlmodel import Session, col, select

from coordbot.core import events
from coordbot.core.db import row_id
from coordbot.core.events import EventType
from coordbot.core.text import TEMPLATES_DIR, environment
from coordbot.plan.models import Plan
from coordbot.reports import charts
from coordbot.reports.digest import render_report
from coordbot.reports.models import Briefing
from coordbot.reports.rollup import Rollup, TaskLine, build_rollup, exceptions, heading_number, meeting_period
from coordbot.scheduling.calendar import WorkCalendar

Format = Literal["docx", "html", "md"]
MAX_ROWS = 40  # tasks per group and items per list; a province-size plan lists exceptions first, then the rest
MAX_DEPARTMENTS = 250

# Official document look (GB/T 9704): fonts by name, then fallbacks in the eastAsia name (LibreOffice reads a
# ";" list; Word substitutes by script), ending in the Noto CJK fonts the project installs.
TITLE_FONT = "方正小标宋简体;小标宋;华文中宋;STZhongsong;Noto Serif CJK SC"
HEADING_FONT = "黑体;SimHei;STHeiti;Noto Sans CJK SC"
SUBHEADING_FONT = "楷体_GB2312;楷体;KaiTi;STKaiti;Noto Serif CJK SC"
BODY_FONT = "仿宋_GB2312;仿宋;FangSong;STFangsong;Noto Serif CJK SC"
RED = "FF0000"  # 红头 and the separator line
SHADES = {"red": "F4CCCC", "yellow": "FFF2CC", "green": "D9EAD3"}  # status cells, light enough to read on print
TYPE_AREA_CM = 21 - 2.8 - 2.6  # A4 less the left and right margins
COLOURS = ("red", "yellow", "green")


@dataclass
class Block:
    kind: str  # title | sub | meta | h1 | h2 | p | ol | table | img
    text: str = ""
    items: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    name: str = ""
    caption: str = ""
    png: bytes | None = None
    marks: list[list[str]] = field(default_factory=list)  # per table cell: its status colour, or ""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png or b"").decode("ascii")


def words(locale: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for loc in dict.fromkeys(("zh", locale)):
        path = TEMPLATES_DIR / loc / "reports" / "words.yaml"
        if path.exists():
            merged.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


def _arabic_heading(position: int) -> str:
    return f"{position + 1}. "


def group_labels(rollup: Rollup, locale: str) -> list[str]:
    """Chart labels of the task groups: （一）… in Chinese, (1)… otherwise; a safeguard group by its title."""
    labels: list[str] = []
    main = 0
    for g in rollup.groups:
        if g.kind == "main":
            main += 1
            labels.append(g.number if locale == "zh" else f"({main})")
        else:
            labels.append(charts.short(g.title, 6))
    return labels


def _cell(value: Any) -> str:
    return " ".join(str(value).split())  # no tab or line break inside a block's field


def _rows_for(tasks: list[TaskLine], limit: int) -> list[TaskLine]:
    """All tasks of a group when they fit; otherwise red and yellow first, then the rest up to the limit,
    kept in plan order."""
    if len(tasks) <= limit:
        return tasks
    chosen = {t.code for t in exceptions(tasks)[:limit]}
    for t in tasks:
        if len(chosen) >= limit:
            break
        chosen.add(t.code)
    return [t for t in tasks if t.code in chosen]


def parse_blocks(text: str, *, locale: str = "zh") -> list[Block]:
    blocks: list[Block] = []
    number = heading_number if locale == "zh" else _arabic_heading
    h1 = 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        kind, _, rest = raw.partition("\t")
        fields = rest.split("\t")
        kind = kind.strip().upper()
        if kind == "H1":
            blocks.append(Block("h1", number(h1) + rest))
            h1 += 1
        elif kind in ("HEAD", "NO", "TITLE", "SUB", "META", "H2", "P"):
            blocks.append(Block(kind.lower(), rest))
        elif kind == "LI":
            if blocks and blocks[-1].kind == "ol":
                blocks[-1].items.append(rest)
            else:
                blocks.append(Block("ol", items=[rest]))
        elif kind == "ISSUER":
            blocks.append(Block("issuer", fields[0], items=fields[1:]))
        elif kind == "TH":
            blocks.append(Block("table", header=fields))
        elif kind == "TR":
            if not blocks or blocks[-1].kind != "table":
                raise ValueError(f"briefing template: a table row outside a table: {raw!r}")
            blocks[-1].rows.append(fields)
        elif kind == "END":
            continue
        elif kind == "IMG":
            blocks.append(Block("img", name=rest.strip()))
        elif kind == "CAP":
            if blocks and blocks[-1].kind == "img":
                blocks[-1].caption = rest
        else:
            raise ValueError(f"briefing template: unknown block {kind!r} in {raw!r}")
    return blocks


# ---- official Chinese text ----------------------------------------------------------------------------

_CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
_SPACE_AFTER_CJK = re.compile(rf"(?<=[{_CJK}]) +(?=\S)")
# a number inside a sentence ("逾期14 天") joins the next word; a code opening an item ("：3.2 标题") keeps its space
_SPACE_AFTER_NUMBER = re.compile(r"(?<=[\u4e00-\u9fff])([\d.,%]+) +(?=[\u4e00-\u9fff])")
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_PADDED = re.compile(r"(?<!\d)0(\d)(?=[月日])")
_CN_DATE = r"\d{4}年\d{1,2}月\d{1,2}日"
_ARROW = re.compile(rf"(?:原定)?({_CN_DATE})\s*→\s*({_CN_DATE})")


def official_text(text: str) -> str:
    """Chinese text as an official document writes it: dates as 2026年3月16日 (never 03月, never 2026-03-16),
    a date change as 由…延至…, and no spaces between Chinese words (the shared templates space words for
    chat). Applied to the briefing's blocks, so DOCX, HTML and Markdown keep the same words."""
    text = _ISO.sub(lambda m: f"{m[1]}年{int(m[2])}月{int(m[3])}日", text)
    text = _PADDED.sub(r"\1", text)
    text = _ARROW.sub(r"由\1延至\2", text)
    text = _SPACE_AFTER_CJK.sub("", text)
    return _SPACE_AFTER_NUMBER.sub(r"\1", text)


def _tidy(blocks: list[Block]) -> None:
    for b in blocks:
        b.text, b.caption = official_text(b.text), official_text(b.caption)
        b.items = [official_text(i) for i in b.items]
        b.header = [official_text(h) for h in b.header]
        b.rows = [[official_text(c) for c in row] for row in b.rows]


def _width(text: str) -> float:
    """Printed width in ems: a Chinese character is one, a Latin letter or digit about half."""
    return sum(1.0 if ord(ch) > 0x2E7F else 0.5 for ch in text)


# A title breaks after these words or before an opening bracket, never inside a word.
_BREAK_AFTER = ("的", "方案", "工作", "建设", "城区", "计划", "意见", "通知", "情况", "报告", "会议", "办法", "规划")


def title_lines(title: str, per_line: float = 18) -> list[str]:
    """The title in lines of at most ``per_line`` ems, each broken at a word boundary where one fits
    (at 二号 on the A4 type area a line holds 20 characters; 18 leaves room for a wider substitute font)."""
    if _width(title) <= per_line:
        return [title]
    lines: list[str] = []
    rest = title
    while _width(rest) > per_line:
        cuts = [i for i in range(1, len(rest)) if rest[i] in "（《(" or rest[:i].endswith(_BREAK_AFTER)]
        fitting = [i for i in cuts if _width(rest[:i]) <= per_line]
        cut = fitting[-1] if fitting else max(1, int(per_line))
        lines.append(rest[:cut])
        rest = rest[cut:]
    return [*lines, rest] if rest else lines


def issue_number(session: Session, plan: Plan, meeting_date: date) -> int:
    """期号: this meeting's place among the plan's briefings (one number per meeting, whatever the formats)."""
    earlier = session.exec(
        select(func.count(distinct(col(Briefing.meeting_date)))).where(
            Briefing.plan_id == row_id(plan), Briefing.meeting_date < meeting_date
        )
    ).one()
    return int(earlier) + 1


def _mark_colours(blocks: list[Block], w: dict[str, str], locale: str) -> None:
    sep = "：" if locale == "zh" else ": "
    starts = {c: w[c] + sep for c in COLOURS}
    for b in blocks:
        if b.kind == "table":
            b.marks = [
                [next((c for c, s in starts.items() if cell.startswith(s)), "") for cell in row] for row in b.rows
            ]


@dataclass
class BriefingDoc:
    rollup: Rollup
    meeting_date: date
    blocks: list[Block]
    locale: str
    created: datetime | None = None

    def to_markdown(self) -> str:
        out: list[str] = []
        for b in self.blocks:
            if b.kind == "head":
                out.append(f"**{b.text}**")
            elif b.kind == "no":
                out.append(b.text)
            elif b.kind == "issuer":
                out.append("　".join([b.text, *b.items]) + "\n\n---")
            elif b.kind == "title":
                out.append(f"# {b.text}")
            elif b.kind == "sub":
                out.append(f"## {b.text}")
            elif b.kind == "meta":
                out.append(f"*{b.text}*")
            elif b.kind == "h1":
                out.append(f"## {b.text}")
            elif b.kind == "h2":
                out.append(f"### {b.text}")
            elif b.kind == "p":
                out.append(b.text)
            elif b.kind == "ol":
                out.append("\n".join(f"{i}. {item}" for i, item in enumerate(b.items, 1)))
            elif b.kind == "table":

                def row(cells: list[str]) -> str:
                    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

                lines = [row(b.header), "|" + "---|" * len(b.header)] + [row(r) for r in b.rows]
                out.append("\n".join(lines))
            elif b.kind == "img":
                out.append(
                    f"*{b.caption}*（图表见 DOCX / HTML 版）"
                    if self.locale == "zh"
                    else f"*{b.caption}* (chart in DOCX / HTML)"
                )
        return "\n\n".join(out) + "\n"

    def to_html(self) -> str:
        title = next((b.text for b in self.blocks if b.kind == "title"), "")
        return render_report(
            "reports/briefing_page.html",
            locale=self.locale,
            blocks=self.blocks,
            title_lines=title_lines,
            lang="zh-CN" if self.locale == "zh" else "en",
            page_title=title,
        )

    def to_docx(self) -> bytes:
        return _docx(self.blocks, words(self.locale), created=self.created, locale=self.locale)


def build_briefing(
    *,
    session: Session,
    plan: Plan,
    meeting_date: date,
    now: datetime,
    since: date | None = None,
    locale: str = "zh",
    calendar: WorkCalendar | None = None,
    with_charts: bool = True,
) -> BriefingDoc:
    """Roll up the period since the last meeting (or ``since``) up to the meeting date, as blocks with charts."""
    period = meeting_period(session=session, plan=plan, meeting_date=meeting_date, since=since)
    rollup = build_rollup(session=session, plan=plan, period=period, now=now, calendar=calendar)
    by_code = {t.code: t for t in rollup.tasks}
    meeting_items = []
    if rollup.last_meeting is not None:
        for d in rollup.last_meeting.decisions:
            t = by_code.get(d.get("task_code", ""))
            meeting_items.append({**d, "status": t.status if t else "", "colour": t.colour if t else ""})
    environment(locale, TEMPLATES_DIR).filters.setdefault("cell", _cell)
    w = words(locale)
    text = render_report(
        "reports/briefing.txt.j2",
        locale=locale,
        r=rollup,
        meeting_date=meeting_date,
        rows={g.code: _rows_for(g.tasks, MAX_ROWS) for g in rollup.groups},
        max_rows=MAX_ROWS,
        max_departments=MAX_DEPARTMENTS,
        meeting_items=meeting_items,
        issue_no=issue_number(session, plan, meeting_date),
        issuing_body=w["issuer"],
        colour_words={c: w[c] for c in COLOURS},
    )
    blocks = parse_blocks(text, locale=locale)
    if locale == "zh":
        _tidy(blocks)
    _mark_colours(blocks, w, locale)
    pngs: dict[str, bytes | None] = {}
    if with_charts:
        pngs = {
            "colours": charts.colour_chart(
                rollup.groups, title=w["colour_chart"], names=w, labels=group_labels(rollup, locale)
            ),
            "quotas": charts.quota_chart(
                rollup.quotas + rollup.goals,
                title=w["quota_chart"],
                actual_label=w["actual"],
                expected_label=w["expected"],
            ),
            "response": charts.response_chart(rollup.departments, title=w["response_chart"]),
        }
    for b in blocks:
        if b.kind == "img":
            b.png = pngs.get(b.name)
    blocks = [b for b in blocks if b.kind != "img" or b.png]
    return BriefingDoc(rollup=rollup, meeting_date=meeting_date, blocks=blocks, locale=locale, created=now)


def write_briefing(
    *,
    session: Session,
    plan: Plan,
    meeting_date: date,
    fmt: Format,
    out: Path,
    now: datetime,
    since: date | None = None,
    locale: str = "zh",
) -> Briefing:
    """For ``coordbot briefing``: build, write ``out`` and store the Briefing row (with an event)."""
    doc = build_briefing(
        session=session,
        plan=plan,
        meeting_date=meeting_date,
        now=now,
        since=since,
        locale=locale,
        with_charts=fmt != "md",
    )
    if fmt == "docx":
        data = doc.to_docx()
    elif fmt == "html":
        data = doc.to_html().encode("utf-8")
    elif fmt == "md":
        data = doc.to_markdown().encode("utf-8")
    else:
        raise ValueError(f"unknown briefing format {fmt!r}; expected docx, html or md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    row = Briefing(
        plan_id=row_id(plan),
        meeting_date=meeting_date,
        period_start=doc.rollup.period.start,
        period_end=doc.rollup.period.end,
        format=fmt,
        created_at=now,
        content_sha256=hashlib.sha256(data).hexdigest(),
        path=str(out),
    )
    session.add(row)
    session.flush()
    events.record(
        session,
        EventType.BRIEFING_ISSUED,
        at=now,
        plan_id=plan.id,
        briefing=row.id,
        format=fmt,
        meeting_date=meeting_date,
        path=str(out),
        sha256=row.content_sha256,
    )
    return row


# ---- DOCX layout -----------------------------------------------------------------------------------


def _docx(blocks: list[Block], w: dict[str, str], *, created: datetime | None, locale: str) -> bytes:
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING, WD_TAB_ALIGNMENT
    from docx.shared import Cm, Pt, RGBColor

    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.top_margin, section.bottom_margin = Cm(3.7), Cm(3.5)
    section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)

    def font(style_or_run: Any, name: str, size: float, bold: bool = False, colour: str = "000000") -> None:
        f = style_or_run.font
        f.name, f.size, f.bold = name.split(";")[0], Pt(size), bold
        f.color.rgb = RGBColor.from_string(colour)
        rpr = style_or_run.element.get_or_add_rPr()
        rpr.get_or_add_rFonts().set(_qn("w:eastAsia"), name)  # Chinese text uses the eastAsia font (and fallbacks)

    styles = doc.styles
    font(styles["Normal"], BODY_FONT, 16)  # 三号仿宋
    styles["Normal"].paragraph_format.line_spacing = Pt(28)
    font(styles["Title"], TITLE_FONT, 22)  # 二号小标宋
    font(styles["Heading 1"], HEADING_FONT, 16)  # 一、 黑体
    font(styles["Heading 2"], SUBHEADING_FONT, 16)  # （一） 楷体
    for name in ("Title", "Heading 1", "Heading 2"):
        styles[name].paragraph_format.space_before = Pt(6)
        styles[name].paragraph_format.space_after = Pt(6)
    styles["Title"].paragraph_format.line_spacing = Pt(36)
    _no_border(styles["Title"])  # python-docx's Title has a blue rule under it
    table_text = styles.add_style("Table Text", 1)
    table_text.base_style = styles["Normal"]
    font(table_text, BODY_FONT, 10.5)  # 五号 in tables
    table_text.paragraph_format.line_spacing = 1.0
    caption = styles["Caption"]
    font(caption, BODY_FONT, 12)
    masthead = styles.add_style("Briefing Masthead", 1)
    masthead.base_style = styles["Normal"]
    font(masthead, TITLE_FONT, 36, colour=RED)  # 红头: the name of the briefing in red
    masthead.paragraph_format.line_spacing = 1.0
    masthead.paragraph_format.space_after = Pt(6)

    def picture_spacing(p: Any) -> None:
        # the body's exact 28 pt would cut a picture to a strip: its paragraph sizes to the picture
        p.paragraph_format.line_spacing_rule = WD_LINE_SPACING.SINGLE

    for b in blocks:
        if b.kind == "head":
            p = doc.add_paragraph(b.text, style=masthead)
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif b.kind == "no":
            p = doc.add_paragraph(b.text)
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif b.kind == "issuer":
            # issuing body on the left, date on the right, the red separator line under both
            p = doc.add_paragraph("\t".join([b.text, *b.items]))
            p.paragraph_format.tab_stops.add_tab_stop(Cm(TYPE_AREA_CM), WD_TAB_ALIGNMENT.RIGHT)
            p.paragraph_format.space_after = Pt(18)
            _bottom_border(p, RED)
        elif b.kind == "title":
            p = doc.add_paragraph(style="Title")
            lines = title_lines(b.text)
            for i, line in enumerate(lines):
                run = p.add_run(line)
                if i < len(lines) - 1:
                    run.add_break()
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif b.kind == "sub":
            p = doc.add_paragraph(b.text, style="Title")
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif b.kind == "meta":
            p = doc.add_paragraph(b.text)
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif b.kind == "h1":
            doc.add_heading(b.text, level=1)
        elif b.kind == "h2":
            doc.add_heading(b.text, level=2)
        elif b.kind == "p":
            p = doc.add_paragraph(b.text)
            p.paragraph_format.first_line_indent = Pt(32)  # two characters
        elif b.kind == "ol":
            for i, item in enumerate(b.items, 1):
                p = doc.add_paragraph(f"{i}. {item}")
                p.paragraph_format.first_line_indent = Pt(32)
        elif b.kind == "table":
            _table(doc, b, table_text)
        elif b.kind == "img" and b.png:
            doc.add_picture(io.BytesIO(b.png), width=Cm(15))
            doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
            picture_spacing(doc.paragraphs[-1])
            if b.caption:
                p = doc.add_paragraph(b.caption, style="Caption")
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER

    props = doc.core_properties
    props.author = props.last_modified_by = w.get("issuer", "")
    props.title = " ".join(b.text for b in blocks if b.kind in ("head", "title"))
    props.language = "zh-CN" if locale == "zh" else "en"
    props.comments = ""
    props.revision = 1
    if created is not None:
        props.created = props.modified = created.astimezone(UTC).replace(tzinfo=None)  # core.xml stores UTC
    _page_numbers(section, w.get("page", "{page}"))
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def column_widths(header: list[str], rows: list[list[str]], total: float) -> list[float]:
    """Widths (in the unit of ``total``) from what the columns hold: short columns get what they need,
    long ones (a task's title, its 情况) share the rest by the square root of their length, so the longest
    text wraps over a few lines rather than a dozen."""
    per_em = total / 42  # 五号 characters across the A4 type area, less cell padding
    need = [
        max([_width(h) for h in [header[i]]] + [_width(r[i]) for r in rows if i < len(r)]) + 1
        for i in range(len(header))
    ]
    if sum(need) * per_em <= total:
        return [n * total / sum(need) for n in need]
    short_cols = [i for i, n in enumerate(need) if n <= 8]
    fixed = sum(need[i] for i in short_cols) * per_em
    long_cols = [i for i in range(len(need)) if i not in short_cols]
    weights = {i: need[i] ** 0.5 for i in long_cols}
    rest = max(total - fixed, total * 0.3)
    widths = [
        need[i] * per_em if i in short_cols else rest * weights[i] / sum(weights.values()) for i in range(len(need))
    ]
    scale = total / sum(widths)
    return [x * scale for x in widths]


def _table(doc: Any, b: Block, style: Any) -> None:
    from docx.enum.style import WD_STYLE_TYPE
    from docx.shared import Cm

    # The style's id looked up once: python-docx's paragraph.style setter walks every style of the document
    # on each assignment (to find the default), most of a province-size briefing's time. Setting the id on
    # the paragraph's XML is what that setter does after the look-up.
    style_id = doc.part.get_style_id(style, WD_STYLE_TYPE.PARAGRAPH)
    table = doc.add_table(rows=1, cols=len(b.header))
    table.style = "Table Grid"
    table.autofit = False  # fixed layout: Word and LibreOffice keep the widths below
    widths = [Cm(x) for x in column_widths(b.header, b.rows, TYPE_AREA_CM)]
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
    for cell, text, width in zip(table.rows[0].cells, b.header, widths, strict=False):
        cell.text, cell.width = text, width
        cell.paragraphs[0]._p.style = style_id
        for run in cell.paragraphs[0].runs:
            run.bold = True
        _shade(cell, "E7E6E6")
    _row_flags(table.rows[0], header=True)
    for r, values in enumerate(b.rows):
        row = table.add_row()
        _row_flags(row, header=False)
        # add_row gives each cell its column's width (gridCol) already
        for c, (cell, text) in enumerate(zip(row.cells, values, strict=False)):
            cell.text = text
            cell.paragraphs[0]._p.style = style_id
            mark = b.marks[r][c] if r < len(b.marks) and c < len(b.marks[r]) else ""
            if mark:
                _shade(cell, SHADES[mark])


def _row_flags(row: Any, *, header: bool) -> None:
    """cantSplit: a row never breaks across pages; tblHeader: the header row repeats on every page."""
    from docx.oxml import OxmlElement

    tr_pr = row._tr.get_or_add_trPr()
    tr_pr.append(OxmlElement("w:cantSplit"))
    if header:
        tr_pr.append(OxmlElement("w:tblHeader"))


def _shade(cell: Any, fill: str) -> None:
    from docx.oxml import OxmlElement

    shd = OxmlElement("w:shd")
    shd.set(_qn("w:val"), "clear")
    shd.set(_qn("w:color"), "auto")
    shd.set(_qn("w:fill"), fill)
    cell._tc.get_or_add_tcPr().append(shd)


def _bottom_border(p: Any, colour: str) -> None:
    from docx.oxml import OxmlElement

    p_pr = p._p.get_or_add_pPr()
    bdr = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for k, v in (("val", "single"), ("sz", "12"), ("space", "4"), ("color", colour)):  # 1.5 pt
        bottom.set(_qn(f"w:{k}"), v)
    bdr.append(bottom)
    # schema order: pBdr comes before shd, tabs, spacing, ind, jc …
    later = ("w:shd", "w:tabs", "w:suppressAutoHyphens", "w:spacing", "w:ind", "w:jc", "w:outlineLvl", "w:rPr")
    p_pr.insert_element_before(bdr, *later)


def _no_border(style: Any) -> None:
    p_pr = style.element.find(_qn("w:pPr"))
    if p_pr is not None:
        for bdr in p_pr.findall(_qn("w:pBdr")):
            p_pr.remove(bdr)


def _qn(tag: str) -> str:
    from docx.oxml.ns import qn

    return qn(tag)


def _page_numbers(section: Any, pattern: str) -> None:
    """Centred page number in the footer, as a PAGE field so Word counts the pages."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement

    p = section.footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    before, _, after = pattern.partition("{page}")
    if before:
        p.add_run(before)
    run = p.add_run()
    for kind, text in (("begin", None), (None, " PAGE "), ("separate", None), (None, "1"), ("end", None)):
        if kind:
            el = OxmlElement("w:fldChar")
            el.set(_qn("w:fldCharType"), kind)
        elif text == " PAGE ":
            el = OxmlElement("w:instrText")
            el.set(_qn("xml:space"), "preserve")
            el.text = text
        else:
            el = OxmlElement("w:t")
            el.text = text
        run._r.append(el)
    if after:
        p.add_run(after)
