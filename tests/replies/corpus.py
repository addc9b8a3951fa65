"""Loads tests/data/replies.yaml (and the held-out replies_blind.yaml) into parser arguments and expected fields,
and scores parser answers per field (shared by tests and bench)."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from coordbot.replies import DepartmentRef, TargetRef

CORPUS_PATH = Path(__file__).resolve().parents[1] / "data" / "replies.yaml"
BLIND_PATH = CORPUS_PATH.with_name("replies_blind.yaml")
FIELDS = ("status", "pct", "qty", "date", "help", "code", "corr", "amb", "lang")


@dataclass(frozen=True)
class Case:
    id: str
    ctx: str
    text: str
    today: date
    targets: tuple[TargetRef, ...]
    expected: dict[str, Any] = field(default_factory=dict)
    xfail: str | None = None  # a known limitation, documented in the corpus; the test is a strict xfail


def _target(d: dict[str, Any]) -> TargetRef:
    return TargetRef(
        metric=d["metric"],
        name=d["name"],
        unit=d["unit"],
        aliases=tuple(d.get("aliases", ())),
        period=d.get("period", "annual"),
    )


def _qty(items: list[list[Any]] | None) -> list[tuple[str | None, Decimal, str]]:
    out = []
    for metric, value, mode in items or ():
        out.append((metric, Decimal(str(value)), {"inc": "increment", "total": "total"}[mode]))
    return sorted(out, key=lambda t: (t[0] or "", t[1], t[2]))


def load_corpus(path: Path = CORPUS_PATH) -> tuple[list[Case], tuple[DepartmentRef, ...], tuple[str, ...]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    departments = tuple(DepartmentRef(d["code"], d["name"], tuple(d.get("aliases", ()))) for d in raw["departments"])
    task_codes = tuple(raw["task_codes"])
    contexts = {name: tuple(_target(t) for t in (ts or ())) for name, ts in raw["contexts"].items()}
    default_today = raw["today"]
    cases: list[Case] = []
    seen: set[str] = set()
    for c in raw["cases"]:
        text = c["text"]
        digest = hashlib.sha1(f"{c['ctx']}|{text}".encode()).hexdigest()[:8]
        cid = f"{c['ctx']}-{digest}"
        if cid in seen:
            raise ValueError(f"duplicate corpus case: {text!r}")
        seen.add(cid)
        expected = {
            "status": c.get("status"),
            "pct": c.get("pct"),
            "qty": _qty(c.get("qty")),
            "date": c.get("date"),
            "help": sorted(c.get("help") or ()),
            "code": c.get("code"),
            "corr": bool(c.get("corr", False)),
            "amb": bool(c.get("amb", False)),
            "lang": c.get("lang", "zh"),
        }
        cases.append(
            Case(cid, c["ctx"], text, c.get("today", default_today), contexts[c["ctx"]], expected, c.get("xfail"))
        )
    return cases, departments, task_codes


def actual_fields(parsed: Any) -> dict[str, Any]:
    """The parser's answer in the corpus' vocabulary."""
    return {
        "status": parsed.status.value if parsed.status else None,
        "pct": parsed.percent,
        "qty": sorted(((q.metric, q.value, q.mode) for q in parsed.quantities), key=lambda t: (t[0] or "", t[1], t[2])),
        "date": parsed.expected_date,
        "help": sorted(parsed.help_departments),
        "code": parsed.task_code,
        "corr": parsed.is_correction,
        "amb": bool(parsed.ambiguities),
        "lang": parsed.language,
    }


# --------------------------------------------------------------------------- field-level scoring (bench and tests)
SCALAR_FIELDS = {"status": "status", "percent": "pct", "expected_date": "date", "task_code": "code"}
ITEM_FIELDS = {"quantities": "qty", "help_departments": "help"}
FLAG_FIELDS = {"is_correction": "corr", "asks (ambiguous)": "amb"}  # informational: no target set in the issue


def _item_key(item: Any) -> str:
    # Decimal("12000.0") == Decimal("12000") but their str() differ: compare normalised values
    if isinstance(item, tuple):
        return repr(tuple(format(x.normalize(), "f") if hasattr(x, "normalize") else x for x in item))
    return repr(item)


def _pr(tp: int, pred: int, gold: int) -> tuple[float, float]:
    return (tp / pred if pred else 1.0), (tp / gold if gold else 1.0)


def score(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[str, float, float, int, int]]:
    rows = []
    for name, key in SCALAR_FIELDS.items():
        tp = sum(1 for e, a in pairs if a[key] is not None and a[key] == e[key])
        pred = sum(1 for _, a in pairs if a[key] is not None)
        gold = sum(1 for e, _ in pairs if e[key] is not None)
        rows.append((name, *_pr(tp, pred, gold), pred, gold))
    for name, key in ITEM_FIELDS.items():
        tp = pred = gold = 0
        for e, a in pairs:
            ce, ca = Counter(map(_item_key, e[key])), Counter(map(_item_key, a[key]))
            tp += sum((ce & ca).values())
            pred += sum(ca.values())
            gold += sum(ce.values())
        rows.append((name, *_pr(tp, pred, gold), pred, gold))
    for name, key in FLAG_FIELDS.items():
        tp = sum(1 for e, a in pairs if a[key] and e[key])
        pred = sum(1 for _, a in pairs if a[key])
        gold = sum(1 for e, _ in pairs if e[key])
        rows.append((name, *_pr(tp, pred, gold), pred, gold))
    return rows


# --------------------------------------------------------------------------- the real-text corpus (issue 12)
OFFICIAL_PATH = CORPUS_PATH.with_name("replies_official.yaml")
OFFICIAL_FIELDS = ("status", "pct", "qty")


@dataclass(frozen=True)
class OfficialCase:
    text: str
    source: str
    half: str  # "tune" | "locked": fixed once by the corpus (SHA-1 of the sentence), before any tuning
    expected: dict[str, Any]
    note: str | None = None


def load_official(path: Path = OFFICIAL_PATH) -> list[OfficialCase]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for c in raw["cases"]:
        digest = hashlib.sha1(c["text"].encode()).hexdigest()
        half = "tune" if int(digest[:8], 16) % 2 == 0 else "locked"
        if c["half"] != half:
            raise ValueError(f"the split of {c['text']!r} was changed; it is fixed by the sentence's hash")
        expected = {
            "status": c.get("status"),
            "pct": Decimal(c["pct"]) if c.get("pct") is not None else None,
            "qty": sorted((Decimal(v), u, {"inc": "increment", "total": "total"}[m]) for v, u, m in c.get("qty") or ()),
        }
        out.append(OfficialCase(c["text"], c["source"], half, expected, c.get("note")))
    return out


# The units the corpus labels (its header: issue 12's list). A quantity in another unit (11885户, 467万套, 527份) is
# outside what was labelled, neither right nor wrong, so it is left out of the comparison — as the naive baseline's
# regex, which only knows these units, already is.
OFFICIAL_UNITS = frozenset(
    ("亿元", "万元", "元", "亿美元", "万美元", "美元", "个", "项", "件", "家", "次", "场", "人次", "平方米", "公顷")
)


def official_actual(parsed: Any) -> dict[str, Any]:
    """The parser's answer in the official corpus' vocabulary: quantities as written (value, unit, mode), those in
    a labelled unit (``OFFICIAL_UNITS``)."""
    qty = []
    for q in parsed.quantities:
        value = getattr(q, "written_value", None)
        unit = getattr(q, "written_unit", None)
        unit = unit if unit is not None else q.unit
        if unit not in OFFICIAL_UNITS:
            continue
        qty.append((value if value is not None else q.value, unit, q.mode))
    pct = parsed.percent
    return {
        "status": parsed.status.value if parsed.status else None,
        "pct": Decimal(str(pct)) if pct is not None else None,
        "qty": sorted(qty),
    }


def score_official(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[str, float, float, int, int]]:
    """Precision/recall of status, percent (scalars) and quantities (multiset of (value, unit, mode))."""
    rows = []
    for name, key in (("status", "status"), ("percent", "pct")):
        tp = sum(1 for e, a in pairs if a[key] is not None and a[key] == e[key])
        pred = sum(1 for _, a in pairs if a[key] is not None)
        gold = sum(1 for e, _ in pairs if e[key] is not None)
        rows.append((name, *_pr(tp, pred, gold), pred, gold))
    tp = pred = gold = 0
    for e, a in pairs:
        ce, ca = Counter(map(_item_key, e["qty"])), Counter(map(_item_key, a["qty"]))
        tp += sum((ce & ca).values())
        pred += sum(ca.values())
        gold += sum(ce.values())
    rows.append(("quantities", *_pr(tp, pred, gold), pred, gold))
    return rows
