"""Plan files with bad values are refused with file, line and field, and change nothing (issue 15, item 3).

Hostile files (an alias bomb, a 50 MB file) are refused quickly and within a bounded amount of memory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from coordbot.plan.loader import (
    MAX_ALIAS_NODES,
    MAX_FILE_BYTES,
    LoadedPlan,
    PlanFileError,
    load_plan_file,
    parse_plan_text,
)
from tests.plan.test_import import _import, _snapshot

REPO = Path(__file__).resolve().parents[2]
LONG_CODE = "x" * 44  # longer than the task table's code column (32)

# name -> (edit of minimal.yaml, field path, what the message must say)
BAD_VALUES: dict[str, tuple[Callable[[str], str], str, str]] = {
    "negative_quota": (
        lambda t: t.replace("value: 10\n", "value: -10\n"),
        "groups[1].tasks[0].targets[0].value",
        r"greater than or equal to 0",
    ),
    "nan_quota": (
        lambda t: t.replace("value: 10\n", "value: .nan\n"),
        "groups[1].tasks[0].targets[0].value",
        r"finite number",
    ),
    "inf_quota": (
        lambda t: t.replace("value: 100\n", "value: .inf\n"),
        "groups[1].tasks[1].targets[0].value",
        r"finite number",
    ),
    "nan_as_text": (
        lambda t: t.replace("value: 100\n", "value: nan\n"),
        "groups[1].tasks[1].targets[0].value",
        r"finite number",
    ),
    "zero_minimum": (
        lambda t: t.replace("value: 10\n", "value: 0\n"),
        "groups[1].tasks[0].targets[0]",
        r"above 0",
    ),
    "unquoted_task_code": (
        lambda t: t.replace('- code: "1.2"', "- code: 1.20"),
        "groups[0].tasks[1].code",
        r'quote it: "1\.20"',
    ),
    "unquoted_group_code": (
        lambda t: t.replace('- code: "2"\n', "- code: 2\n"),
        "groups[1].code",
        r'quote it: "2"',
    ),
    "unquoted_co_code": (
        lambda t: t.replace("co: [finance]", "co: [finance, 7]"),
        "groups[0].tasks[0].co[1]",
        r'quote it: "7"',
    ),
    "long_task_code": (
        lambda t: t.replace('- code: "1.2"', f'- code: "{LONG_CODE}"'),
        "groups[0].tasks[1].code",
        r"at most 32 characters",
    ),
    "long_group_code": (
        lambda t: t.replace('- code: "2"\n', f'- code: "{"g" * 33}"\n'),
        "groups[1].code",
        r"at most 32 characters",
    ),
    "long_plan_code": (
        lambda t: t.replace("code: test-plan", f"code: {'p' * 101}"),
        "plan.code",
        r"at most 100 characters",
    ),
    "tab_indent": (
        lambda t: t.replace("        title: 高价值专利培育", "\ttitle: 高价值专利培育"),
        "",
        r"tab.*spaces",
    ),
}


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_value_is_refused_with_file_line_field_and_database_untouched(
    engine: Engine, minimal_plan: LoadedPlan, minimal_plan_path: Path, case: str
) -> None:
    _import(engine, minimal_plan)
    before = _snapshot(engine)
    edit, field, pattern = BAD_VALUES[case]
    text = minimal_plan_path.read_text(encoding="utf-8")
    bad = edit(text)
    assert bad != text, "the edit must change the file"
    with pytest.raises(PlanFileError) as info:
        _import(engine, parse_plan_text(bad, "bad.yaml"))
    rendered = info.value.render()
    hits = [p for p in info.value.problems if p.path == field]
    assert hits, rendered
    assert all(p.line is not None for p in hits), rendered
    assert any(re.search(pattern, p.message) for p in hits), rendered
    assert f"bad.yaml:{hits[0].line}" in rendered
    assert _snapshot(engine) == before


def test_unquoted_code_points_at_its_own_line(minimal_plan_path: Path) -> None:
    bad = minimal_plan_path.read_text(encoding="utf-8").replace('- code: "1.2"', "- code: 1.20")
    with pytest.raises(PlanFileError) as info:
        parse_plan_text(bad, "bad.yaml")
    (p,) = info.value.problems
    assert p.line == _line_of(bad, "code: 1.20")


def test_shipped_and_test_plans_stay_valid() -> None:
    for path in [
        REPO / "config" / "plans" / "songjiang-ip-2024-2026.yaml",
        *sorted((REPO / "tests/data/plans").glob("*.yaml")),
    ]:
        load_plan_file(path)


def test_every_problem_is_reported_in_one_pass(minimal_plan_path: Path) -> None:
    """A field error no longer hides an unknown department: both come in the same report."""
    text = minimal_plan_path.read_text(encoding="utf-8")
    bad = text.replace("value: 10\n", "value: -10\n").replace("co: [sci]", "co: [nowhere]")
    bad = bad.replace("  - department: finance", "  - department: ghost")
    bad = bad.replace("  office: amr\n", "  office: amr\n  office: amr\n")
    with pytest.raises(PlanFileError) as info:
        parse_plan_text(bad, "bad.yaml")
    paths = {p.path: p for p in info.value.problems}
    assert "groups[1].tasks[0].targets[0].value" in paths
    assert "unknown department 'nowhere'" in paths["groups[1].tasks[1].co[0]"].message
    assert paths["groups[1].tasks[1].co[0]"].line == _line_of(bad, "co: [nowhere]")
    assert "unknown department 'ghost'" in paths["contacts[1].department"].message
    assert "key 'office' appears twice" in paths["plan.office"].message


def test_gb18030_file_is_refused_with_byte_offset(tmp_path: Path, minimal_plan_path: Path) -> None:
    text = minimal_plan_path.read_text(encoding="utf-8")
    path = tmp_path / "gbk.yaml"
    path.write_bytes(text.encode("gb18030"))
    first = text.encode("gb18030").index("测试".encode("gb18030"))
    with pytest.raises(PlanFileError) as info:
        load_plan_file(path)
    (p,) = info.value.problems
    assert p.line == _line_of(text, "测试")
    assert "not UTF-8" in p.message and f"byte {first}" in p.message and "save it as UTF-8" in p.message
    assert "GB18030" in p.message


def test_utf8_bom_is_accepted(tmp_path: Path, minimal_plan_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + minimal_plan_path.read_bytes())
    assert load_plan_file(path).data.plan.code == "test-plan"


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The classic 'billion laughs' in a plan file: each level refers to the previous one ``width`` times."""
    lines = ["plan:", "  code: bomb", '  title: "t"', "  start: 2024-01-01", "  end: 2024-12-31", "x0: &x0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_at_the_first_alias_beyond_the_cap() -> None:
    bomb = alias_bomb()
    with pytest.raises(PlanFileError) as info:
        parse_plan_text(bomb, "bomb.yaml")
    (p,) = info.value.problems
    # x0 is 2 nodes (a list and its item), x(n) is 1 + 9 * x(n-1); line x(n) adds 9 * x(n-1) through aliases.
    sizes = [2]
    for _ in range(9):
        sizes.append(1 + 9 * sizes[-1])
    first_over = next(n for n in range(1, 10) if sum(9 * s for s in sizes[:n]) > MAX_ALIAS_NODES)
    assert first_over == 5
    assert p.line == _line_of(bomb, f"x{first_over}: &x{first_over}")
    assert "alias" in p.message and str(MAX_ALIAS_NODES) in p.message.replace(" ", "").replace(",", "")


def test_a_few_aliases_are_fine(minimal_plan_path: Path) -> None:
    text = minimal_plan_path.read_text(encoding="utf-8")
    text = text.replace("aliases: [区知识产权局, 市场监管局]", "aliases: &amr_aliases [区知识产权局, 市场监管局]")
    text = text.replace(
        "  - code: finance\n    name: 区财政局\n", "  - code: finance\n    name: 区财政局\n    aliases: *amr_aliases\n"
    )
    loaded = parse_plan_text(text, "ok.yaml")
    assert loaded.data.departments[1].aliases == ["区知识产权局", "市场监管局"]


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(PlanFileError, match=r"r\.yaml:7: alias \*loop refers to a node that contains it"):
        parse_plan_text(alias_bomb(0, 1) + "loop: &loop [*loop]\n", "r.yaml")


def test_oversized_text_is_refused_before_parsing() -> None:
    with pytest.raises(PlanFileError, match=r"at most 5 MB"):
        parse_plan_text("#" * (MAX_FILE_BYTES + 1), "big.yaml")


# Runs in a child with a ~400 MB address-space limit and a timeout, so a regression fails instead of eating
# the machine. The 2 s bound is deliberately generous (a refusal takes milliseconds): it guards against a hang,
# it is not a speed target.
PROBE = textwrap.dedent(
    """
    import json, resource, sys, time, tracemalloc
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, 400 * 2**20))
    from coordbot.plan.loader import PlanFileError, load_plan_file
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        load_plan_file(Path(sys.argv[1]))
        refused = ""
    except PlanFileError as exc:
        refused = exc.render()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"seconds": seconds, "refused": refused, "traced_peak_mb": peak / 2**20,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_mb": before / 1024}))
    """
)


def _probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=30, cwd=REPO, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    print(path.name, {k: v for k, v in result.items() if k != "refused"})
    return result


def test_alias_bomb_refused_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(12, 9) + "# " + "x" * 40_000 + "\n", encoding="utf-8")  # about 41 KB
    result = _probe(path)
    assert "alias" in result["refused"]
    assert result["seconds"] < 2.0
    assert result["rss_mb"] - result["rss_before_mb"] < 200
    assert result["traced_peak_mb"] < 200


def test_fifty_megabyte_file_refused_fast_and_small(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w", encoding="utf-8") as f:
        f.write("plan:\n  code: big\n")
        chunk = "# " + "x" * 1021 + "\n"
        for _ in range(50 * 1024):
            f.write(chunk)
    result = _probe(path)
    assert "at most 5 MB" in result["refused"]
    assert result["seconds"] < 2.0
    assert result["rss_mb"] - result["rss_before_mb"] < 200
    assert result["traced_peak_mb"] < 200


def test_coordbot_run_refuses_the_bomb_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(12, 9), encoding="utf-8")
    env = {
        **os.environ,
        "COORDBOT_PLAN_FILE": str(path),
        "COORDBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", "from coordbot.cli import main; main(['run'])"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert out.returncode != 0
    assert "bomb.yaml:" in out.stderr and "alias" in out.stderr, out.stderr
