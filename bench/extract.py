"""How well `coordbot plan extract` reads real plans, next to a naive baseline measured in the same run.

    .venv/bin/python bench/extract.py [--docs]

The corpus is tests/data/plans_corpus/ (real public plan documents, labelled by hand; its README gives the
labelling rules and the split). Per field — lead departments, co-departments, deadlines, quantities —
precision, recall and F1 over the labelled tasks, for the tuning part and the held-out part:
  * ours: coordbot.plan.extract on the document's text;
  * baseline: split the text into numbered items and sentences, and in each sentence with a 牵头/负责
    marker take the department names written before the marker (the first is the lead, the others
    co-departments); dates "YYYY年M月" and "number + unit" anywhere in an item are its deadlines and
    quantities.
Goal: each field ≥ 0.90 F1 on the held-out part. Prints `met` / `NOT met` and exits 0.
"""

from __future__ import annotations

import argparse
import calendar
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordbot.plan.extract import extract_text, split_departments  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "plans_corpus"
FIELDS = ("lead", "co", "deadlines", "quantities")
GOAL = 0.90


@dataclass
class Predicted:
    source: str
    lead: list[str] = field(default_factory=list)
    co: list[str] = field(default_factory=list)
    deadlines: list[str] = field(default_factory=list)
    quantities: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Score) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


PARTS = ("tuning", "held-out")


def split_of(doc: dict) -> str:
    """The document's part, as its manifest entry says (`part:`; the README tells the split's history)."""
    part = doc.get("part")
    if part not in PARTS:
        raise ValueError(f"manifest: document {doc.get('id')!r} needs `part:` one of {', '.join(PARTS)}, got {part!r}")
    return str(part)


def norm_dept(name: str) -> str:
    n = re.sub(r"\s+", "", name)
    n = re.sub(r"[（(][^）)]*[）)]", "", n)
    n = re.sub(r"等$", "", n)
    if len(n) > 2 and n[0] in "省市区县":
        n = n[1:]
    return n


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def values(task: dict | Predicted, name: str) -> Counter:
    raw = task.get(name, []) if isinstance(task, dict) else getattr(task, name)
    if name in ("lead", "co"):
        return Counter(norm_dept(str(x)) for x in raw or [])
    if name == "deadlines":
        return Counter(str(x) for x in raw or [])
    out: Counter = Counter()
    for q in raw or []:
        value, unit = (q["value"], q["unit"]) if isinstance(q, dict) else q
        out[(round(float(value), 4), str(unit))] += 1
    return out


def score(gold: list[dict], predicted: list[Predicted]) -> dict[str, Score]:
    """Micro counts per field. A predicted task belongs to the labelled task whose anchor its source
    contains; one that matches none contributes only false positives."""
    by_gold: dict[int, list[Predicted]] = {i: [] for i in range(len(gold))}
    stray: list[Predicted] = []
    for p in predicted:
        src = _squash(p.source)
        hits = [i for i, g in enumerate(gold) if _squash(g["anchor"]) in src]
        if hits:
            by_gold[hits[0]].append(p)
        else:
            stray.append(p)
    scores = {f: Score() for f in FIELDS}
    for i, g in enumerate(gold):
        for f in FIELDS:
            want = values(g, f)
            got: Counter = Counter()
            for p in by_gold[i]:
                got |= values(p, f)
            tp = sum((want & got).values())
            scores[f].add(Score(tp, sum(got.values()) - tp, sum(want.values()) - tp))
    for p in stray:
        for f in FIELDS:
            scores[f].fp += sum(values(p, f).values())
    return scores


# ---- the two readers -------------------------------------------------------------------------------


def ours(text: str) -> list[Predicted]:
    out = []
    for t in extract_text(text).tasks():
        out.append(
            Predicted(
                source=t.source,
                lead=[str(f.value) for f in t.leads if not f.proposed],
                co=[str(f.value) for f in t.co if not f.proposed],
                deadlines=[d.value.isoformat() if isinstance(d.value, date) else str(d.value) for d in t.deadlines],
                quantities=[(x.value, x.unit) for x in t.targets if x.value is not None and not x.implied],
            )
        )
    return out


ITEM = re.compile(
    r"^\s*([一二三四五六七八九十]+、|[（(][一二三四五六七八九十\d]+[)）]|\d+[.、．﹒]|[一二三四五六七八九十]+是)"
)
MARKER = re.compile(r"牵头|负责|牽頭|負責")
B_DATE = re.compile(r"(\d{4})年(\d{1,2})月")
B_QTY = re.compile(r"(\d+(?:\.\d+)?)\s*(%|项|个|家|件|户|人|所|座|次|条|万人|亿元|万元|亿斤)")


def baseline(text: str) -> list[Predicted]:
    items: list[list[str]] = [[]]
    for line in text.splitlines():
        if not line.strip():
            continue
        if ITEM.match(line):
            items.append([])
        items[-1].append(line.strip())
    out = []
    for lines in items:
        block = "".join(lines)
        if not block:
            continue
        p = Predicted(source=block)
        for sentence in re.split(r"[。;；\n]", "\n".join(lines)):
            m = MARKER.search(sentence)
            if not m:
                continue
            before = sentence[: m.start()]
            before = re.split(r"[（(〔\[【:：]", before)[-1]
            names = [n for n in split_departments(before) if len(n) >= 2]
            if names and not p.lead:
                p.lead, p.co = names[:1], names[1:]
        for m in B_DATE.finditer(block):
            year, month = int(m.group(1)), int(m.group(2))
            if 1 <= month <= 12:
                p.deadlines.append(date(year, month, calendar.monthrange(year, month)[1]).isoformat())
        p.quantities = [(float(m.group(1)), m.group(2)) for m in B_QTY.finditer(block)]
        out.append(p)
    return out


# ---- the run ---------------------------------------------------------------------------------------


def load_corpus(path: Path = CORPUS) -> list[dict]:
    manifest = yaml.safe_load((path / "manifest.yaml").read_text(encoding="utf-8"))
    docs = manifest["documents"]
    for d in docs:
        d["text"] = (path / d["file"]).read_text(encoding="utf-8")
        d["split"] = split_of(d)
    return docs


def run(docs: list[dict], reader) -> tuple[dict[str, dict[str, Score]], dict[str, dict[str, Score]]]:  # type: ignore[no-untyped-def]
    parts: dict[str, dict[str, Score]] = {s: {f: Score() for f in FIELDS} for s in ("tuning", "held-out", "all")}
    per_doc: dict[str, dict[str, Score]] = {}
    for d in docs:
        try:
            predicted = reader(d["text"])
        except ValueError:
            predicted = []
        s = score(d["tasks"], predicted)
        per_doc[d["id"]] = s
        for f in FIELDS:
            parts[d["split"]][f].add(s[f])
            parts["all"][f].add(s[f])
    return parts, per_doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", action="store_true", help="also print each document's F1 per field")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a corpus directory (manifest.yaml and texts)")
    args = parser.parse_args(argv)
    docs = load_corpus(args.corpus)
    count = Counter(d["split"] for d in docs)
    tasks = Counter()
    for d in docs:
        tasks[d["split"]] += len(d["tasks"])
    print(f"corpus: {len(docs)} documents — tuning {count['tuning']} ({tasks['tuning']} tasks), "
          f"held-out {count['held-out']} ({tasks['held-out']} tasks)")  # fmt: skip
    for d in docs:
        print(f"  {d['split']:<8}  {d['level']:<8}  {d['id']:<22} {d['issuer']}  {d.get('document_no', '')}")
    ours_parts, ours_docs = run(docs, ours)
    base_parts, base_docs = run(docs, baseline)
    print()
    header = f"{'part':<9} {'field':<11} {'ours P':>7} {'R':>6} {'F1':>6}   {'baseline P':>10} {'R':>6} {'F1':>6}"
    print(f"{header}   goal F1 ≥ {GOAL:.2f}")
    for part in ("tuning", "held-out", "all"):
        if part != "all" and not count[part]:
            print(f"{part:<9} no documents\n")  # an empty part scores nothing, not 1.00
            continue
        for f in FIELDS:
            o, b = ours_parts[part][f], base_parts[part][f]
            verdict = "met" if o.f1 >= GOAL else "NOT met"
            mine = f"{o.precision:7.2f} {o.recall:6.2f} {o.f1:6.2f}"
            theirs = f"{b.precision:10.2f} {b.recall:6.2f} {b.f1:6.2f}"
            print(f"{part:<9} {f:<11} {mine}   {theirs}   {verdict}  (tp {o.tp} fp {o.fp} fn {o.fn})")
        print()
    if args.docs:
        for d in docs:
            cells = "  ".join(f"{f} {ours_docs[d['id']][f].f1:.2f}/{base_docs[d['id']][f].f1:.2f}" for f in FIELDS)
            print(f"  {d['id']:<22} {cells}   (ours/baseline F1)")
    held = ours_parts["held-out"]
    overall = bool(count["held-out"]) and all(held[f].f1 >= GOAL for f in FIELDS)
    measured = "" if count["held-out"] else " (no held-out documents: not measured)"
    print(f"goal (held-out, every field F1 ≥ {GOAL:.2f}): {'met' if overall else 'NOT met'}{measured}")


if __name__ == "__main__":
    main()
