"""The briefing (简报) in official form (GB/T 9704-2012 and common 简报 practice), read from the DOCX itself:
charts shown whole, no emoji, tables that read across pages, 红头 with 期号, Chinese dates, document
properties; and page 1 rendered by LibreOffice with every character in the font it used."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from docx import Document
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.shared import Cm
from docx.text.paragraph import Paragraph

from coordbot.reports.briefing import build_briefing, write_briefing

from .conftest import NOW, Q_START

# The form does not depend on the database: SQLite only, to keep the suite fast.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")
ZERO_PADDED = re.compile(r"年0\d月|月0\d日|(?<!\d)0\d月")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
CJK = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"
STRAY_SPACE = re.compile(rf"{CJK} +{CJK}")


@pytest.fixture
def docx_bytes(plan_in) -> bytes:
    s, plan = plan_in()
    try:
        return build_briefing(session=s, plan=plan, meeting_date=NOW.date(), since=Q_START, now=NOW).to_docx()
    finally:
        s.close()


@pytest.fixture
def docx(docx_bytes: bytes) -> DocxDocument:
    return Document(io.BytesIO(docx_bytes))


def _paragraphs(doc: DocxDocument) -> list[Paragraph]:
    cells = [p for t in doc.tables for row in t.rows for c in row.cells for p in c.paragraphs]
    return list(doc.paragraphs) + cells


def test_picture_paragraphs_have_no_exact_line_spacing(docx: DocxDocument) -> None:
    pictures = [p for p in docx.paragraphs if p._p.xpath(".//pic:pic")]
    assert len(pictures) == 3
    for p in pictures:
        spacing = p._p.pPr.find(qn("w:spacing")) if p._p.pPr is not None else None
        # an explicit auto rule on the paragraph itself: the body's exact 28 pt would cut the picture
        assert spacing is not None and spacing.get(qn("w:lineRule")) in (None, "auto"), p._p.xml[:400]
        assert p.paragraph_format.line_spacing in (None, 1.0)


def test_no_emoji_in_any_run(docx: DocxDocument) -> None:
    for p in _paragraphs(docx):
        for run in p.runs:
            assert not EMOJI.search(run.text), run.text


def test_status_colours_are_words_and_shading(docx: DocxDocument) -> None:
    task_table = docx.tables[0]
    status_col = [c.text for c in task_table.columns[-1].cells[1:]]
    assert all(re.match("^(红色|黄色|绿色)", t) for t in status_col), status_col
    shaded = [c for c in task_table.columns[-1].cells[1:] if c._tc.xpath("./w:tcPr/w:shd")]
    assert len(shaded) == len(status_col)


def test_table_header_rows_repeat_rows_do_not_split_and_widths_are_set(docx: DocxDocument) -> None:
    assert docx.tables
    for table in docx.tables:
        header = table.rows[0]._tr
        assert header.xpath("./w:trPr/w:tblHeader"), "header row must repeat on every page"
        for row in table.rows:
            assert row._tr.xpath("./w:trPr/w:cantSplit"), "a row must not break across pages"
        grid = [int(g.get(qn("w:w"))) for g in table._tbl.tblGrid.findall(qn("w:gridCol"))]
        assert len(set(grid)) > 1, "columns are not all equal"
        widths = [c.width for c in table.rows[0].cells]
        assert all(w for w in widths)
        assert sum(widths) <= Cm(15.6) + Cm(0.1)  # the type area of A4 with GB/T 9704 margins
    task_table = docx.tables[0]
    widths = [c.width for c in task_table.rows[0].cells]
    assert widths[-1] == max(widths)  # 情况 gets the room


def test_dates_are_chinese_and_not_zero_padded(docx: DocxDocument) -> None:
    text = "\n".join(p.text for p in _paragraphs(docx))
    assert not ZERO_PADDED.search(text), ZERO_PADDED.search(text)
    assert not ISO_DATE.search(text), ISO_DATE.search(text)
    assert "→" not in text
    assert "2026年3月27日" in text
    assert "时限由2026年3月20日延至2026年5月29日" in text


def test_no_stray_spaces_between_chinese_words(docx: DocxDocument) -> None:
    for p in _paragraphs(docx):
        # the 红头's own spacing (the issuing body and the date) is full-width layout, not words
        if p.style.name == "Briefing Masthead":
            continue
        assert not STRAY_SPACE.search(p.text), p.text


def test_red_header_issue_number_and_separator(plan_in, docx: DocxDocument, tmp_path: Path) -> None:
    paras = docx.paragraphs
    head = paras[0]
    assert head.text.replace(" ", "").replace("\u3000", "") == "联席会议简报"
    assert str(head.style.font.color.rgb) == "FF0000" and all(r.font.color.rgb is None for r in head.runs)
    assert paras[1].text == "第1期"
    issuer = paras[2].text
    assert "联席会议办公室" in issuer and "人民政府" not in issuer and "2026年3月27日" in issuer
    border = paras[2]._p.xpath("./w:pPr/w:pBdr/w:bottom")
    assert border and border[0].get(qn("w:color")) == "FF0000", "a red separator line under the 红头"
    # the title breaks at a word boundary: before the bracketed years, never inside a word
    title = [p for p in paras if p.style.name == "Title"]
    assert title and "\n" in title[0].text
    first, _, rest = title[0].text.partition("\n")
    assert rest.startswith("（") or first.endswith(("方案", "工作", "城区", "建设")), title[0].text
    assert "强市" in first and "方案" in rest  # neither word is cut

    # 期号 counts the plan's earlier briefings (one number per meeting, whatever the formats)
    s, plan = plan_in()
    write_briefing(session=s, plan=plan, meeting_date=Q_START, fmt="md", out=tmp_path / "a.md", now=NOW)
    write_briefing(session=s, plan=plan, meeting_date=NOW.date(), fmt="docx", out=tmp_path / "b.docx", now=NOW)
    write_briefing(session=s, plan=plan, meeting_date=NOW.date(), fmt="html", out=tmp_path / "b.html", now=NOW)
    s.commit()
    again = Document(str(tmp_path / "b.docx"))
    assert again.paragraphs[1].text == "第2期"
    assert "第2期" in (tmp_path / "b.html").read_text(encoding="utf-8")
    s.close()


def test_fonts_as_gb_t_9704_uses_them(docx: DocxDocument) -> None:
    def east_asia(style: str) -> str:
        return docx.styles[style].element.rPr.rFonts.get(qn("w:eastAsia"))

    assert east_asia("Normal").startswith("仿宋_GB2312")
    assert east_asia("Heading 1").startswith("黑体")
    assert east_asia("Heading 2").startswith("楷体")
    # fallbacks named for machines without the GB2312 fonts (Word and LibreOffice read the list)
    assert "FangSong" in east_asia("Normal") and "SimHei" in east_asia("Heading 1")


def test_core_properties_set(docx: DocxDocument) -> None:
    props = docx.core_properties
    assert props.author == "联席会议办公室"
    assert props.created is not None and props.created.date() == NOW.date()
    assert props.title and "简报" in props.title
    assert props.language == "zh-CN"


def test_briefing_html_has_no_emoji_and_words_for_colours(plan_in) -> None:
    s, plan = plan_in()
    doc = build_briefing(session=s, plan=plan, meeting_date=NOW.date(), since=Q_START, now=NOW, with_charts=False)
    s.close()
    html = doc.to_html()
    assert not EMOJI.search(html), EMOJI.search(html)
    assert 'class="red"' in html and "红色" in html
    assert "第1期" in html and "联席会议办公室" in html
    assert not EMOJI.search(doc.to_markdown())


# ---- page 1 as LibreOffice renders it ------------------------------------------------------------------


def _tools() -> tuple[str, str] | None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftoppm = shutil.which("pdftoppm")
    return (soffice, pdftoppm) if soffice and pdftoppm else None


def _pdf_fonts(pdf: Path) -> list[str]:
    """Base font names embedded in the PDF (LibreOffice embeds what it used, subset-prefixed ABCDEF+Name)."""
    data = pdf.read_bytes()
    return sorted({m.decode("latin-1").split("+", 1)[-1] for m in re.findall(rb"/BaseFont\s*/([^\s/\[\]<>()]+)", data)})


def _font_file(postscript_name: str) -> Path | None:
    """The installed file of a PDF font, by PostScript name (LibreOffice may add a suffix such as -VKana)."""
    parts = postscript_name.split("-")
    for n in range(len(parts), 0, -1):
        name = "-".join(parts[:n])
        out = subprocess.run(
            ["fc-list", f":postscriptname={name}", "file"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            return Path(out.splitlines()[0].rstrip(":"))
    return None


@pytest.mark.timeout(180)
def test_page_one_renders_without_missing_glyphs(docx_bytes: bytes, docx: DocxDocument, tmp_path: Path) -> None:
    tools = _tools()
    if tools is None:
        install = "apt-get install -y libreoffice-writer-nogui poppler-utils"
        if os.environ.get("CI") == "true":
            pytest.fail(f"LibreOffice and pdftoppm are needed for the briefing screenshot test: {install}")
        pytest.skip(f"no soffice/pdftoppm ({install})")
    soffice, pdftoppm = tools
    src = tmp_path / "briefing.docx"
    src.write_bytes(docx_bytes)
    env = {**os.environ, "HOME": str(tmp_path)}  # a private LibreOffice profile: no clash with a running one
    subprocess.run(
        [soffice, "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=150,
        env=env,
    )
    pdf = tmp_path / "briefing.pdf"
    assert pdf.exists()
    subprocess.run(
        [
            pdftoppm,
            "-png",
            "-r",
            os.environ.get("COORDBOT_SCREENSHOT_DPI", "60"),
            "-f",
            "1",
            "-l",
            "1",
            str(pdf),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    pngs = sorted(tmp_path.glob("page*.png"))
    assert pngs and pngs[0].stat().st_size > 5000
    if os.environ.get("COORDBOT_KEEP_SCREENSHOT"):
        shutil.copy(pngs[0], os.environ["COORDBOT_KEEP_SCREENSHOT"])

    # The text of page 1 (红头, title, overview) against the fonts LibreOffice put in the PDF.
    from fontTools.ttLib import TTCollection, TTFont

    text = "".join(p.text for p in docx.paragraphs[:12])
    needed = {ch for ch in text if not ch.isspace()}
    fonts = _pdf_fonts(pdf)
    assert fonts, "LibreOffice embedded no font"
    covered: set[str] = set()
    for name in fonts:
        path = _font_file(name)
        if path is None or not path.exists():
            continue
        faces = TTCollection(str(path)).fonts if path.suffix.lower() == ".ttc" else [TTFont(str(path))]
        for face in faces:
            covered |= {chr(c) for c in face.getBestCmap()}
    missing = sorted(needed - covered)
    assert not missing, f"no glyph for {''.join(missing)!r} in the fonts LibreOffice used: {fonts}"
