"""How quickly hostile plan files are refused, next to loading the shipped plan in the same run.

    .venv/bin/python bench/plan_limits.py

Each case runs in a child process with a 400 MB address-space limit and a 60 s timeout, and prints the
seconds spent in ``load_plan_file``, the peak of Python allocations (tracemalloc) and the child's peak RSS
(which includes importing coordbot):
  * baseline: the shipped Songjiang plan (about 40 KB), accepted;
  * alias bomb: 41 KB, each of 12 levels repeating the previous one 9 times (about 10**12 nodes expanded);
  * under the cap: the minimal plan with about 93,000 nodes added through aliases (just under the cap);
  * 50 MB: a file of comments, far past the 5 MB cap.
Target: every refusal within 2 s and 200 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import json, resource, sys, time, tracemalloc
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, 400 * 2**20))
    sys.path.insert(0, sys.argv[2])
    from coordbot.plan.loader import PlanFileError, load_plan_file
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        load_plan_file(Path(sys.argv[1]))
        verdict = "accepted"
    except PlanFileError as exc:
        verdict = exc.problems[0].message[:70]
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "verdict": verdict}))
    """
)


def bomb(levels: int, width: int) -> list[str]:
    lines = ["x0: &x0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * width)}]")
    return lines


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="plan-limits-"))
    cases: dict[str, Path] = {"baseline (shipped plan)": ROOT / "config" / "plans" / "songjiang-ip-2024-2026.yaml"}

    p = work / "bomb.yaml"
    head = "plan:\n  code: bomb\n  title: t\n  start: 2024-01-01\n  end: 2024-12-31\n"
    p.write_text(head + "\n".join(bomb(12, 9)) + "\n# " + "x" * 40_000 + "\n", encoding="utf-8")
    cases["alias bomb, 41 KB"] = p

    minimal = (ROOT / "tests" / "data" / "plans" / "minimal.yaml").read_text(encoding="utf-8")
    anchors = "anchors:\n" + "\n".join("  " + line for line in bomb(3, 9)) + "\n"
    p = work / "under-cap.yaml"
    p.write_text(
        anchors
        + minimal.replace("    aliases: [区知识产权局, 市场监管局]", "    aliases: [" + ", ".join(["*x3"] * 60) + "]"),
        encoding="utf-8",
    )
    cases["93,000 alias nodes (under the cap)"] = p

    p = work / "big.yaml"
    with p.open("w", encoding="utf-8") as f:
        f.write("plan:\n  code: big\n")
        for _ in range(50 * 1024):
            f.write("# " + "x" * 1021 + "\n")
    cases["50 MB file"] = p

    print(f"{'case':<36} {'seconds':>8} {'traced MB':>10} {'RSS MB':>8}  verdict")
    for name, path in cases.items():
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path), str(ROOT)], capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            print(f"{name:<36} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout)
        print(f"{name:<36} {r['seconds']:>8.3f} {r['traced_peak_mb']:>10.1f} {r['rss_mb']:>8.0f}  {r['verdict']}")


if __name__ == "__main__":
    main()
