"""`coordbot plan extract`: the shapes official plans use, read into tasks, departments, deadlines and
targets, and a draft that `coordbot plan validate` accepts.

The documents here are short, written for the test in the usual official style; the real documents are
in tests/data/plans_corpus/ (scored by bench/extract.py) and the seed plan (tests/plan/test_extract_seed.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import docx
import pytest
import yaml
from click.testing import CliRunner

from coordbot.cli import main
from coordbot.plan.extract import ExtractError, Extraction, Task, extract, extract_text
from coordbot.plan.loader import load_plan_file

HEAD = "某区知识产权工作实施方案（2025-2026年）\n"


def tasks(text: str) -> list[Task]:
    return extract_text(HEAD + text).tasks()


def names(found) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(f.value) for f in found]


@pytest.mark.parametrize(
    "line",
    [
        "1.建设知识产权公共服务平台。（区科委牵头，区财政局、区经委配合）",
        "1.建设知识产权公共服务平台。(区科委牵头,区财政局、区经委配合)",
        "1．建设知识产权公共服务平台。【牵头单位：区科委；配合单位：区财政局、区经委】",
        "1、建设知识产权公共服务平台。[牵头单位:区科委;责任单位:区财政局,区经委]",
    ],
)
def test_a_closing_parenthesis_names_lead_and_co_departments(line: str) -> None:
    (task,) = tasks("一、主要任务\n" + line + "\n")
    assert names(task.leads) == ["区科委"]
    assert names(task.co) == ["区财政局", "区经委"]
    assert task.stated
    assert task.leads[0].source  # the sentence it came from


def test_field_lines_on_their_own_and_x_fuze() -> None:
    found = tasks(
        "一、主要任务\n"
        "1.开展专利导航项目。\n"
        "牵头单位：区市场监管局\n"
        "责任单位：区科委、各街道\n"
        "完成时限：2025年6月底前\n"
        "2.加强知识产权执法。（区市场监管局、区公安分局负责）\n"
        "3.举办知识产权宣传周活动。（由区委宣传部负责）\n"
    )
    assert [(names(t.leads), names(t.co)) for t in found] == [
        (["区市场监管局"], ["区科委", "各街道"]),
        (["区市场监管局"], ["区公安分局"]),
        (["区委宣传部"], []),
    ]
    assert [d.value for d in found[0].deadlines] == [date(2025, 6, 30)]
    assert found[0].deadlines[0].source == "完成时限：2025年6月底前"
    assert "牵头单位" not in found[0].source  # the task's own text, the assignment kept apart


def test_several_leads_and_collective_co_departments() -> None:
    (task,) = tasks(
        "一、主要任务\n1.优化营商环境。（区政府办公室、区司法局牵头，区政府各部门及各镇、街道按职责分工负责）\n"
    )
    assert names(task.leads) == ["区政府办公室", "区司法局"]
    assert names(task.co) == ["区政府各部门", "各镇", "街道"]


def test_headings_give_groups_and_tasks_and_safeguards_come_last() -> None:
    e = extract_text(
        HEAD + "一、指导思想\n以……为指导。\n二、主要任务\n（一）激发创新活力\n一是完善政策。修订扶持政策。\n"
        "二是培育高价值专利。到2026年末，每万人口高价值发明专利拥有量达到30件。\n"
        "（二）严格保护\n一是加大行政保护力度。每年开展专项行动不少于10项。\n三、保障措施\n（一）加强组织领导\n"
        "区知识产权局履行联席会议办公室职责。\n"
    )
    assert [(g.code, g.title, g.kind) for g in e.groups] == [
        ("1", "激发创新活力", "main"),
        ("2", "严格保护", "main"),
        ("S", "保障措施", "safeguard"),
    ]
    assert [t.code for t in e.tasks()] == ["1.1", "1.2", "2.1", "S.1"]
    assert e.tasks()[0].source == "一是完善政策。修订扶持政策。"
    assert e.office is not None and e.office.value == "区知识产权局"
    assert (e.start, e.end) == (date(2025, 1, 1), date(2026, 12, 31))


@pytest.mark.parametrize(
    ("sentence", "value", "unit", "period", "comparator", "due"),
    [
        ("每年开展各类专项行动和双随机检查不少于10项", 10, "项", "annual", ">=", None),
        ("每年组织开展知识产权金融服务入园惠企活动4次以上", 4, "次", "annual", ">=", None),
        ("每年组织开展金融服务活动四次以上", 4, "次", "annual", ">=", None),
        ("三年新增各级试点示范单位100家", 100, "家", "cumulative", ">=", None),
        ("到2026年末，每万人口高价值发明专利拥有量达到30件", 30, "件", "at-date", ">=", date(2026, 12, 31)),
        ("全区地区生产总值增长6.5%左右", 6.5, "%", "at-date", ">=", None),
        ("城镇调查失业率控制在5.5%以内", 5.5, "%", "at-date", "<=", None),
    ],
)
def test_quantities(sentence: str, value: float, unit: str, period: str, comparator: str, due: date | None) -> None:
    (task,) = tasks(f"一、主要任务\n1.推进工作。{sentence}。（区市场监管局负责）\n")
    (target,) = [t for t in task.targets if t.value is not None]
    assert (target.value, target.unit, target.period, target.comparator, target.due) == (
        value,
        unit,
        period,
        comparator,
        due,
    )
    assert sentence.endswith(target.source) or target.source in sentence


def test_growth_and_about_are_marked_and_parameters_are_not_targets() -> None:
    (task,) = tasks(
        "一、主要任务\n1.稳定就业。城镇新增就业增长5%左右。符合条件的，可申请最高不超过15万元的贷款。（区人社局负责）\n"
    )
    (target,) = task.targets
    assert target.kind == "growth" and target.about


def test_a_word_table_with_lead_co_and_deadline_columns(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("某县2025年重点工作任务分解表")
    table = document.add_table(rows=3, cols=5)
    for cell, text in zip(
        table.rows[0].cells, ["序号", "重点任务", "牵头单位", "协同配合单位", "完成时限"], strict=True
    ):
        cell.text = text
    rows = [
        ["1", "新建城区公园2座。", "县住建局", "县财政局、县自然资源局", "2025年10月底前"],
        ["2", "完成老旧小区改造1200户。", "县住建局、县城投公司", "各乡镇", "持续推进"],
    ]
    for row, values in zip(table.rows[1:], rows, strict=True):
        for cell, text in zip(row.cells, values, strict=True):
            cell.text = text
    path = tmp_path / "plan.docx"
    document.save(str(path))
    found = extract(path).tasks()
    assert [(names(t.leads), names(t.co)) for t in found] == [
        (["县住建局"], ["县财政局", "县自然资源局"]),
        (["县住建局"], ["县城投公司", "各乡镇"]),
    ]
    assert [d.value for d in found[0].deadlines] == [date(2025, 10, 31)]
    assert [d.value for d in found[1].deadlines] == ["ongoing"]
    assert [(t.value, t.unit) for t in found[1].targets] == [(1200, "户")]


def test_a_table_flattened_one_cell_per_line() -> None:
    found = tasks(
        "序号\n民生实事\n责任单位\n完成时限\n1\n新建2座人行天桥。\n县住建局\n9月底前\n"
        "2\n启动县图书馆建设。\n县文体局\n县代建中心\n12月底前\n"
    )
    assert [(names(t.leads), names(t.co), [d.value for d in t.deadlines]) for t in found] == [
        (["县住建局"], [], [date(2025, 9, 30)]),
        (["县文体局"], ["县代建中心"], [date(2025, 12, 31)]),
    ]


def test_gb18030_text_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "plan.txt"
    path.write_bytes((HEAD + "一、主要任务\n1.建设平台。（区科委负责）\n").encode("gb18030"))
    assert names(extract(path).tasks()[0].leads) == ["区科委"]
    pdf = tmp_path / "plan.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(ExtractError, match=r"expected a \.txt or \.docx"):
        extract(pdf)
    empty = tmp_path / "empty.txt"
    empty.write_text("只有一句话，没有任务。", encoding="utf-8")
    with pytest.raises(ExtractError, match="no tasks found"):
        extract(empty)


def test_the_command_writes_a_draft_that_validates(tmp_path: Path) -> None:
    doc = tmp_path / "plan.txt"
    doc.write_text(
        HEAD + "一、主要任务\n1.建设知识产权公共服务平台，2025年12月底前建成。（区科委牵头，区财政局配合）\n"
        "2.加强知识产权宣传。每年开展宣传活动。\n",
        encoding="utf-8",
    )
    out = tmp_path / "draft.yaml"
    result = CliRunner().invoke(main, ["plan", "extract", str(doc), "-o", str(out), "--code", "ip-2025"])
    assert result.exit_code == 0, result.output
    assert "2 tasks (1 with the lead the text names, 1 proposed)" in result.output
    loaded = load_plan_file(out).data
    assert loaded.plan.code == "ip-2025"
    first, second = (t for _, t in loaded.tasks())
    assert (first.assignment, first.due) == ("stated", date(2025, 12, 31))
    assert second.assignment == "proposed" and "原文未写牵头单位" in second.description
    assert second.targets[0].value == 1 and "proposed" in second.targets[0].description
    text = out.read_text(encoding="utf-8")
    assert (
        "# lead (stated): 区科委 — 「建设知识产权公共服务平台，2025年12月底前建成。（区科委牵头，区财政局配合）」"
        in text
    )
    assert "# lead (proposed)" in text
    validate = CliRunner().invoke(main, ["plan", "validate", str(out)])
    assert validate.exit_code == 0, validate.output


def test_an_extraction_is_a_plain_value() -> None:
    e = extract_text(HEAD + "一、主要任务\n1.建设平台。（区科委负责）\n")
    assert isinstance(e, Extraction) and e.title == HEAD.strip()


CORPUS = Path(__file__).resolve().parents[1] / "data" / "plans_corpus"


PARTS = {
    d["file"]: d["part"] for d in yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))["documents"]
}


@pytest.mark.parametrize("doc", sorted(CORPUS.glob("*.txt")), ids=lambda p: p.stem)
def test_every_real_plan_gives_a_draft_that_validates(doc: Path, tmp_path: Path) -> None:
    """Every tuning document gives a draft that validates. A held-out document is not tuned on, so it may
    also be refused with the extractor's clear message — but never with anything else."""
    from coordbot.plan.extract import render_yaml

    assert PARTS[doc.name] in ("tuning", "held-out")
    if PARTS[doc.name] == "held-out":
        try:
            extraction = extract(doc)
        except ExtractError as refused:
            assert "no tasks found" in str(refused)
            return
    else:
        extraction = extract(doc)
    out = tmp_path / "draft.yaml"
    out.write_text(render_yaml(extraction, source_name=doc.name), encoding="utf-8")
    loaded = load_plan_file(out).data  # what `coordbot plan validate` checks
    found = {t.code: t for t in extraction.tasks()}
    for _, task in loaded.tasks():
        assert task.source
        assert task.assignment == ("stated" if found[task.code].stated else "proposed")


def test_a_word_table_with_lead_and_responsible_columns_and_other_deadlines(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("某市2025年营商环境重点任务清单")
    table = document.add_table(rows=4, cols=5)
    header = ["序号", "工作任务", "牵头单位", "责任单位", "完成时限"]
    rows = [
        ["1", "推行企业开办一日办结。", "市行政审批局", "市市场监管局、市税务局", "年底前"],
        ["2", "开展政务服务满意度评价。", "市政务服务中心", "各县（市、区）政府", "每季度"],
        ["3", "清理妨碍公平竞争的政策。", "市市场监管局", "市司法局", "长期坚持"],
    ]
    for row, values in zip(table.rows, [header, *rows], strict=True):
        for cell, text in zip(row.cells, values, strict=True):
            cell.text = text
    path = tmp_path / "list.docx"
    document.save(str(path))
    found = extract(path).tasks()
    assert [(names(t.leads), names(t.co), [d.value for d in t.deadlines]) for t in found] == [
        (["市行政审批局"], ["市市场监管局", "市税务局"], [date(2025, 12, 31)]),
        (["市政务服务中心"], ["各县（市、区）政府"], ["quarterly"]),
        (["市市场监管局"], ["市司法局"], ["ongoing"]),
    ]
