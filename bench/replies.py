"""Reply-parser benchmark: field-level precision/recall on the labelled corpus, and throughput.

Run: .venv/bin/python bench/replies.py [--seconds 2]

Precision = correct non-empty answers / non-empty answers; recall = correct non-empty answers / non-empty
labels. Quantities and help departments are scored per item (multiset match). Every corpus case counts,
including those the corpus marks as known limitations (xfail). Throughput is compared with a same-run
baseline that only does a few ``str.find`` calls per reply (the cheapest thing that could be called parsing).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordbot.replies import parse_reply  # noqa: E402
from tests.replies.corpus import actual_fields, load_corpus  # noqa: E402

TARGET = 0.95
SCALAR_FIELDS = {"status": "status", "percent": "pct", "expected_date": "date", "task_code": "code"}
ITEM_FIELDS = {"quantities": "qty", "help_departments": "help"}
FLAG_FIELDS = {"is_correction": "corr", "asks (ambiguous)": "amb"}  # informational: no target set in the issue
_BASELINE_WORDS = ("完成", "受阻", "滞后", "推进", "%", "done", "blocked", "需", "预计")


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


def _rate(fn: Callable[[], None], n_per_call: int, seconds: float) -> float:
    calls = 0
    t0 = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return calls * n_per_call / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per throughput measurement")
    args = ap.parse_args()

    cases, departments, task_codes = load_corpus()
    pairs = []
    exact = 0
    for c in cases:
        parsed = parse_reply(c.text, today=c.today, targets=c.targets, departments=departments, task_codes=task_codes)
        got = actual_fields(parsed)
        pairs.append((c.expected, got))
        exact += all(got[f] == c.expected[f] for f in c.expected)
    langs = Counter(c.expected["lang"] for c in cases)
    print(f"corpus: {len(cases)} replies ({', '.join(f'{k} {v}' for k, v in sorted(langs.items()))}); "
          f"{sum(1 for c in cases if c.xfail)} marked as known limitations")
    print(f"replies with every field right: {exact}/{len(cases)} ({exact / len(cases):.1%})\n")
    print(f"{'field':<18}{'precision':>10}{'recall':>9}{'answers':>9}{'labels':>8}   target ≥ {TARGET}")
    ok = True
    for name, p, r, pred, gold in score(pairs):
        if name in FLAG_FIELDS:
            flag = "  (informational)"
        else:
            flag = "" if p >= TARGET and r >= TARGET else "  BELOW TARGET"
            ok &= not flag
        print(f"{name:<18}{p:>10.3f}{r:>9.3f}{pred:>9}{gold:>8}{flag}")

    texts = [c.text for c in cases]
    argsets = [(c.text, c.today, c.targets) for c in cases]

    def run_parser() -> None:
        for text, today, targets in argsets:
            parse_reply(text, today=today, targets=targets, departments=departments, task_codes=task_codes)

    def run_baseline() -> None:
        for text in texts:
            low = text.lower()
            for w in _BASELINE_WORDS:
                low.find(w)

    parser_rate = _rate(run_parser, len(cases), args.seconds)
    baseline_rate = _rate(run_baseline, len(cases), args.seconds / 2)
    print(f"\nparser:   {parser_rate:>12,.0f} replies/s  ({1e6 / parser_rate:,.0f} µs/reply)")
    print(f"baseline: {baseline_rate:>12,.0f} replies/s  (lower() + {len(_BASELINE_WORDS)} str.find per reply)")
    print(f"ratio:    parser is {baseline_rate / parser_rate:,.0f}× slower than the str.find pass")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
