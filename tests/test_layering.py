"""The rooms of coordbot import only downwards, in the order docs/DESIGN.md gives, and no module imports
itself back through others. Read from the source (every import, also those inside functions and under
TYPE_CHECKING), so a lazy import cannot hide an upward dependency."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import coordbot

PACKAGE = Path(coordbot.__file__).parent

# Lowest first. A room may import itself and any room before it; ``testing`` (the fake servers) stands
# apart: it may use core only, and nothing of coordbot's own but the demo may use it.
ORDER = ["core", "channels", "plan", "scheduling", "replies", "reports", "web", "runtime", "models", "cli"]
TOP_MODULES = {"cli": "cli", "demo": "cli", "__main__": "cli", "models": "models", "__init__": "core"}
APART = {"testing": {"core", "testing"}}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = ["coordbot", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # the package itself
    name = parts[1]
    return TOP_MODULES.get(name, name) if len(parts) == 2 and name in TOP_MODULES else name


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "coordbot":
                found += [(node.lineno, f"coordbot.{a.name}") for a in node.names]
            elif node.module.startswith("coordbot."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("coordbot")]
    return found


def _graph() -> dict[str, list[tuple[int, str]]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _known_module(target: str, modules: set[str]) -> str:
    """``from coordbot.core import events`` names a module; ``from coordbot.runtime import serve`` a package."""
    return target if target in modules else target.rsplit(".", 1)[0]


def test_every_room_is_in_the_order() -> None:
    rooms = {_room(m) for m in _graph()}
    assert rooms <= set(ORDER) | set(APART), f"rooms not placed in ORDER (add them to docs/DESIGN.md): {rooms}"


def test_no_room_imports_a_higher_one() -> None:
    rank = {room: i for i, room in enumerate(ORDER)}
    upward = []
    for module, imports in _graph().items():
        src = _room(module)
        for line, target in imports:
            dst = _room(target)
            if src in APART:
                ok = dst in APART[src]
            elif dst in APART:
                ok = src == "cli"  # the demo plays against the fake servers
            else:
                ok = rank[dst] <= rank[src]
            if not ok:
                upward.append(f"{module}:{line} ({src}) imports {target} ({dst})")
    assert not upward, "imports against the layering of docs/DESIGN.md:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    modules = set(graph)
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in graph.items():
        for _, target in imports:
            dst = _known_module(target, modules)
            # A package importing its own submodules (a public __init__) is not a cycle.
            if dst != module and not dst.startswith(module + "."):
                edges[module].add(dst)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(modules):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


@pytest.mark.parametrize(
    ("module", "room"),
    [("coordbot.plan.models", "plan"), ("coordbot.cli", "cli"), ("coordbot.demo", "cli"), ("coordbot", "core")],
)
def test_rooms_are_read_from_module_names(module: str, room: str) -> None:
    assert _room(module) == room


def test_an_upward_import_would_be_caught(tmp_path: Path) -> None:
    """The checker itself: a plan module importing the scheduler is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from coordbot.scheduling.engine import ReminderEngine\n", encoding="utf-8")
    [(line, target)] = _imports(bad)
    assert (line, _room(target)) == (2, "scheduling")
    assert ORDER.index(_room(target)) > ORDER.index("plan")
