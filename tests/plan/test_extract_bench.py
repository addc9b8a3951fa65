"""bench/extract.py's scorer: its arithmetic on a hand-made case, and a run over a slice of the corpus so
the benchmark cannot rot. The F1 level itself is the benchmark's business, not a test's."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import yaml

BENCH = Path(__file__).resolve().parents[2] / "bench" / "extract.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_extract", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_extract"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_scores_on_a_hand_made_case(bench: ModuleType) -> None:
    gold = [
        {
            "anchor": "建设平台",
            "lead": ["区科委"],
            "co": ["区财政局", "区经委"],
            "deadlines": ["2025-06-30"],
            "quantities": [{"value": 2, "unit": "座"}],
        },
        {"anchor": "加强执法", "lead": ["区市场监管局"]},
    ]
    predicted = [
        bench.Predicted(
            source="1.建设 平台。",
            lead=["科委"],
            co=["区财政局", "区教育局"],
            deadlines=["2025-06-30", "2025-12-31"],
            quantities=[(2, "座")],
        ),
        bench.Predicted(source="与任何任务无关", lead=["区发改委"]),
    ]
    s = bench.score(gold, predicted)
    assert (s["lead"].tp, s["lead"].fp, s["lead"].fn) == (1, 1, 1)  # 科委 = 区科委; 发改委 strays; 执法 missed
    assert (s["co"].tp, s["co"].fp, s["co"].fn) == (1, 1, 1)
    assert (s["deadlines"].tp, s["deadlines"].fp, s["deadlines"].fn) == (1, 1, 0)
    assert (s["quantities"].tp, s["quantities"].fp, s["quantities"].fn) == (1, 0, 0)
    assert (s["lead"].precision, s["lead"].recall, s["lead"].f1) == (0.5, 0.5, 0.5)
    assert s["deadlines"].f1 == pytest.approx(2 / 3)
    assert s["quantities"].f1 == 1.0
    assert bench.norm_dept("各街办（新区）") == "各街办" == bench.norm_dept("区各街办")


def test_a_slice_of_the_corpus(bench: ModuleType) -> None:
    docs = bench.load_corpus()
    assert len(docs) >= 15
    assert {d["split"] for d in docs} == {"tuning", "held-out"}
    assert {d["id"]: d["split"] for d in docs}["county-dazhu-2016"] == "tuning"  # held out until its errors were read
    with pytest.raises(ValueError, match="part"):
        bench.split_of({"id": "x", "part": "testing"})
    sample = [d for d in docs if d["id"] in ("dist-lishan-2023", "county-dazhu-2016")]
    for reader in (bench.ours, bench.baseline):
        parts, per_doc = bench.run(sample, reader)
        for field in bench.FIELDS:
            labels = sum(sum(bench.values(t, field).values()) for d in sample for t in d["tasks"])
            s = parts["all"][field]
            assert s.tp + s.fn == labels  # every label counted once, found or missed
            assert 0.0 <= s.f1 <= 1.0
        assert set(per_doc) == {"dist-lishan-2023", "county-dazhu-2016"}
    assert isinstance(bench.values(docs[0]["tasks"][0], "lead"), Counter)


def test_an_empty_part_is_not_scored(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A corpus with no held-out document says so; it does not score nothing as 1.00 and call the goal met."""
    (tmp_path / "a.txt").write_text("某区2025年工作方案\n一、主要任务\n1.建设平台。（区科委负责）\n", encoding="utf-8")
    manifest = {"documents": [{"id": "a", "file": "a.txt", "part": "tuning", "level": "district", "issuer": "某区",
                               "tasks": [{"anchor": "建设平台", "lead": ["区科委"]}]}]}  # fmt: skip
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    bench.main(["--corpus", str(tmp_path)])
    out = capsys.readouterr().out
    assert "held-out  no documents" in out
    assert "NOT met (no held-out documents: not measured)" in out
    assert "tuning    lead           1.00" in out
