"""Reply-parser benchmark: field-level precision/recall on the labelled corpus, and throughput.

Run: .venv/bin/python bench/replies.py [--seconds 2] [--corpus PATH ...] [--failures]

Each corpus file is scored separately: tests/data/replies.yaml (written with the parser, target ≥ 0.95) and the
held-out tests/data/replies_blind.yaml (written by someone who never saw the parser; its floor is the one
tests/replies/test_parser.py enforces). Only the main corpus' result sets the exit code; the blind figures are
reported so that over-fitting to the main corpus shows. ``--failures`` lists the differing fields per case.

Precision = correct non-empty answers / non-empty answers; recall = correct non-empty answers / non-empty
labels. Quantities and help departments are scored per item (multiset match). Every corpus case counts,
including those the corpus marks as known limitations (xfail). The real-text corpus
tests/data/replies_official.yaml (issue 12: sentences quoted from public government progress pages) is scored on
its tuning and its locked half, next to a naive keyword/regex baseline run on the same sentences (``naive``);
issue 12's target is on the locked half (reported, not part of the exit code). Quantities are compared in the units
the corpus labels (its header's list, ``OFFICIAL_UNITS``); one in another unit (11885户) was not labelled either way.
Throughput is compared with a same-run
baseline that only does a few ``str.find`` calls per reply (the cheapest thing that could be called parsing).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordbot.replies import parse_reply  # noqa: E402
from tests.replies.corpus import (  # noqa: E402
    BLIND_PATH,
    CORPUS_PATH,
    FIELDS,
    FLAG_FIELDS,
    OFFICIAL_PATH,
    actual_fields,
    load_corpus,
    load_official,
    official_actual,
    score,
    score_official,
)

TARGET = 0.95
BLIND_FLOOR = 0.85  # the floor tests/replies/test_parser.py holds the held-out corpus to
_BASELINE_WORDS = ("完成", "受阻", "滞后", "推进", "%", "done", "blocked", "需", "预计")


OFFICIAL_TARGET = 0.90  # issue 12: each of status, percent, quantities on the locked half
OFFICIAL_MARGIN = 0.15  # … and this far above the naive baseline of the same run
OFFICIAL_TODAY = date(2025, 6, 11)

# ---- the naive baseline for the real-text corpus: a keyword list and two regexes, nothing else
_NAIVE_STATUS = (  # first hit in this order wins
    ("blocked", ("受阻", "停工", "暂时难以解决", "不能解决")),
    ("not_started", ("未开工", "未启动", "尚未开工")),
    ("at_risk", ("滞后", "缓慢", "欠进度", "未达到序时", "落后")),
    ("done", ("已完成", "完成", "办结", "完工", "竣工")),
    ("on_track", ("推进", "顺利", "序时", "进展")),
)
_NAIVE_PCT = re.compile(r"(\d+(?:\.\d+)?)%")
_NAIVE_QTY = re.compile(r"(\d+(?:\.\d+)?)(万)?(亿元|万元|亿美元|万美元|美元|元|人次|平方米|公顷|个|项|件|家|次|场)")


def naive(text: str) -> dict[str, Any]:
    """Status by a keyword list, percent = the first ``number%``, quantities = every number + unit
    (a 万 before a count word applied; total when the sentence says 累计/截至/已/共 or names months, else increment)."""
    status = next((s for s, words in _NAIVE_STATUS if any(w in text for w in words)), None)
    m = _NAIVE_PCT.search(text)
    mode = "total" if re.search(r"累计|截至|截止|已|共|月|上半年|前三季度", text) else "increment"
    qty = []
    for q in _NAIVE_QTY.finditer(text):
        value = Decimal(q.group(1))
        if q.group(2) and q.group(3) not in ("元", "美元"):
            value *= 10_000
        unit = q.group(3) if not q.group(2) or q.group(3) not in ("元", "美元") else q.group(2) + q.group(3)
        qty.append((value, unit, mode))
    return {"status": status, "pct": Decimal(m.group(1)) if m else None, "qty": sorted(qty)}


def evaluate_official(path: Path, failures: bool = False) -> bool:
    """Both halves of the real-text corpus, parser against the naive baseline; → the locked half meets issue 12."""
    cases = load_official(path)
    print(f"== {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"real-text corpus: {len(cases)} sentences from {len({c.source for c in cases})} public pages")
    ok = True
    for half in ("tune", "locked"):
        subset = [c for c in cases if c.half == half]
        ours, base, wrong = [], [], []
        for c in subset:
            got = official_actual(parse_reply(c.text, today=OFFICIAL_TODAY))
            ours.append((c.expected, got))
            base.append((c.expected, naive(c.text)))
            diffs = {f: (c.expected[f], got[f]) for f in c.expected if got[f] != c.expected[f]}
            if diffs:
                wrong.append(f"  {c.text!r}\n      field → (expected, got) {diffs}")
        print(f"\n{half} half: {len(subset)} sentences" + ("  (never tuned on)" if half == "locked" else ""))
        print(f"{'field':<12}{'parser P':>9}{'R':>7}{'naive P':>9}{'R':>7}{'labels':>8}")
        for (name, p, r, _, gold), (_, bp, br, _, _) in zip(score_official(ours), score_official(base), strict=True):
            flag = ""
            if half == "locked":
                good = min(p, r) >= OFFICIAL_TARGET and p - bp >= OFFICIAL_MARGIN and r - br >= OFFICIAL_MARGIN
                flag = "" if good else "  BELOW TARGET"
                ok &= good
            print(f"{name:<12}{p:>9.3f}{r:>7.3f}{bp:>9.3f}{br:>7.3f}{gold:>8}{flag}")
        if failures and half == "tune" and wrong:
            print(f"\ntune-half sentences with a wrong field ({len(wrong)}):")
            print("\n".join(wrong))
    print(f"\nlocked half target: parser P and R ≥ {OFFICIAL_TARGET}, ≥ {OFFICIAL_MARGIN} above the naive baseline\n")
    return ok


def _rate(fn: Callable[[], None], n_per_call: int, seconds: float) -> float:
    calls = 0
    t0 = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return calls * n_per_call / elapsed


def evaluate(
    path: Path, failures: bool = False, target: float = TARGET
) -> tuple[bool, list[Any], tuple[Any, ...], tuple[str, ...]]:
    """Print the field table for one corpus file; → (meets the main target, cases, departments, task codes)."""
    cases, departments, task_codes = load_corpus(path)
    pairs = []
    exact = 0
    wrong: list[str] = []
    for c in cases:
        parsed = parse_reply(c.text, today=c.today, targets=c.targets, departments=departments, task_codes=task_codes)
        got = actual_fields(parsed)
        pairs.append((c.expected, got))
        diffs = {f: (c.expected[f], got[f]) for f in FIELDS if got[f] != c.expected[f]}
        exact += not diffs
        if diffs:
            wrong.append(f"  {c.id} {c.text!r}\n      field → (expected, got) {diffs}")
    langs = Counter(c.expected["lang"] for c in cases)
    try:
        shown = path.relative_to(ROOT)
    except ValueError:
        shown = path
    print(f"== {shown}")
    print(
        f"corpus: {len(cases)} replies ({', '.join(f'{k} {v}' for k, v in sorted(langs.items()))}); "
        f"{sum(1 for c in cases if c.xfail)} marked as known limitations"
    )
    print(f"replies with every field right: {exact}/{len(cases)} ({exact / len(cases):.1%})\n")
    print(f"{'field':<18}{'precision':>10}{'recall':>9}{'answers':>9}{'labels':>8}   target ≥ {target}")
    ok = True
    for name, p, r, pred, gold in score(pairs):
        if name in FLAG_FIELDS:
            flag = "  (informational)"
        else:
            flag = "" if p >= target and r >= target else "  BELOW TARGET"
            ok &= not flag
        print(f"{name:<18}{p:>10.3f}{r:>9.3f}{pred:>9}{gold:>8}{flag}")
    if failures and wrong:
        print(f"\ncases with a wrong field ({len(wrong)}):")
        print("\n".join(wrong))
    print()
    return ok, cases, departments, task_codes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time budget per throughput measurement")
    ap.add_argument(
        "--corpus", type=Path, action="append", help="corpus file(s) to score (default: the main and the blind corpus)"
    )
    ap.add_argument("--failures", action="store_true", help="list the cases with a wrong field")
    args = ap.parse_args()

    paths = args.corpus or [CORPUS_PATH, BLIND_PATH]
    results = [
        (path, *evaluate(path, args.failures, BLIND_FLOOR if path == BLIND_PATH else TARGET))
        for path in paths
        if path.exists()
    ]
    # the exit code follows the main corpus (the one with the ≥ 0.95 target) when it was scored
    main_results = [r for r in results if r[0] == CORPUS_PATH] or results[:1]
    ok = all(r[1] for r in main_results)
    if args.corpus is None and OFFICIAL_PATH.exists():
        official_ok = evaluate_official(OFFICIAL_PATH, args.failures)
        print(f"real-text locked half {'meets' if official_ok else 'does NOT meet'} issue 12's target\n")
    _, _, cases, departments, task_codes = main_results[0]

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
    print(f"throughput on {len(cases)} replies of {main_results[0][0].name}:")
    print(f"parser:   {parser_rate:>12,.0f} replies/s  ({1e6 / parser_rate:,.0f} µs/reply)")
    print(f"baseline: {baseline_rate:>12,.0f} replies/s  (lower() + {len(_BASELINE_WORDS)} str.find per reply)")
    print(f"ratio:    parser is {baseline_rate / parser_rate:,.0f}× slower than the str.find pass")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
