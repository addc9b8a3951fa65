"""The joint-meeting briefing (联席会议简报) for the period since the last meeting: DOCX, HTML and Markdown.

The words and numbers come from one template (``reports/briefing.txt.j2``) rendered into blocks; this
module only lays the blocks out, so the three formats can never disagree. Charts are PNG (see charts.py),
embedded in the DOCX and, as data URIs, in the HTML.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlmodel import Session

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

# Official document look (GB/T 9704): fonts by name, so Word substitutes what the reader's machine has.
TITLE_FONT = "方正小标宋简体"
HEADING_FONT = "黑体"
SUBHEADING_FONT = "楷体_GB2312"
BODY_FONT = "仿宋_GB2312"


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
        elif kind in ("TITLE", "SUB", "META", "H2", "P"):
            blocks.append(Block(kind.lower(), rest))
        elif kind == "LI":
            if blocks and blocks[-1].kind == "ol":
                blocks[-1].items.append(rest)
            else:
                blocks.append(Block("ol", items=[rest]))
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


@dataclass
class BriefingDoc:
    rollup: Rollup
    meeting_date: date
    blocks: list[Block]
    locale: str

    def to_markdown(self) -> str:
        out: list[str] = []
        for b in self.blocks:
            if b.kind == "title":
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
            lang="zh-CN" if self.locale == "zh" else "en",
            page_title=title,
        )

    def to_docx(self) -> bytes:
        return _docx(self.blocks, words(self.locale))


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
    text = render_report(
        "reports/briefing.txt.j2",
        locale=locale,
        r=rollup,
        meeting_date=meeting_date,
        rows={g.code: _rows_for(g.tasks, MAX_ROWS) for g in rollup.groups},
        max_rows=MAX_ROWS,
        max_departments=MAX_DEPARTMENTS,
        meeting_items=meeting_items,
    )
    blocks = parse_blocks(text, locale=locale)
    w = words(locale)
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
    return BriefingDoc(rollup=rollup, meeting_date=meeting_date, blocks=blocks, locale=locale)


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


def _docx(blocks: list[Block], w: dict[str, str]) -> bytes:
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Cm, Pt, RGBColor

    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.top_margin, section.bottom_margin = Cm(3.7), Cm(3.5)
    section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)

    def font(style_or_run: Any, name: str, size: float, bold: bool = False) -> None:
        f = style_or_run.font
        f.name, f.size, f.bold = name, Pt(size), bold
        f.color.rgb = RGBColor(0, 0, 0)
        rpr = style_or_run.element.get_or_add_rPr()
        rpr.get_or_add_rFonts().set(_qn("w:eastAsia"), name)  # Chinese text uses the eastAsia font

    styles = doc.styles
    font(styles["Normal"], BODY_FONT, 16)  # 三号仿宋
    styles["Normal"].paragraph_format.line_spacing = Pt(28)
    font(styles["Title"], TITLE_FONT, 22)  # 二号小标宋
    font(styles["Heading 1"], HEADING_FONT, 16)  # 一、 黑体
    font(styles["Heading 2"], SUBHEADING_FONT, 16)  # （一） 楷体
    for name in ("Title", "Heading 1", "Heading 2"):
        styles[name].paragraph_format.space_before = Pt(6)
        styles[name].paragraph_format.space_after = Pt(6)
    table_text = styles.add_style("Table Text", 1)
    table_text.base_style = styles["Normal"]
    font(table_text, BODY_FONT, 10.5)  # 五号 in tables
    table_text.paragraph_format.line_spacing = 1.0
    caption = styles["Caption"]
    font(caption, BODY_FONT, 12)

    for b in blocks:
        if b.kind in ("title", "sub"):
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
            table = doc.add_table(rows=1, cols=len(b.header))
            table.style = "Table Grid"
            for cell, text in zip(table.rows[0].cells, b.header, strict=False):
                cell.text = text
                cell.paragraphs[0].style = table_text
                for run in cell.paragraphs[0].runs:
                    run.bold = True
            for values in b.rows:
                for cell, text in zip(table.add_row().cells, values, strict=False):
                    cell.text = text
                    cell.paragraphs[0].style = table_text
        elif b.kind == "img" and b.png:
            doc.add_picture(io.BytesIO(b.png), width=Cm(15))
            doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
            if b.caption:
                p = doc.add_paragraph(b.caption, style="Caption")
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER

    _page_numbers(section, w.get("page", "{page}"))
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


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
