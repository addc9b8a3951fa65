"""Read a plan file: YAML with line numbers, validated by :mod:`coordbot.plan.schema`.

Every error names the file, the line and what was expected, and all errors are reported at once. The YAML
loader and the line helpers are public because a meeting's decisions file (:mod:`coordbot.plan.meetings`)
is read the same way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from coordbot.plan.policy import ReminderPolicy
from coordbot.plan.schema import PlanFile

YamlPath = tuple[str | int, ...]  # keys and list indexes from the document root, e.g. ("groups", 0, "code")


class PlanYamlLoader(yaml.SafeLoader):
    """YAML 1.2-like scalars: dates stay text (so pydantic names a bad one with its line) and only
    true/false are booleans (YAML 1.1 turns ``on``/``no`` into booleans, a classic surprise)."""


_REPLACED = (
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
)
PlanYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PlanYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# Integers and floats without YAML 1.1's base-60 forms, so a time like 09:30 or 18:00 stays text.
PlanYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
PlanYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


@dataclass(frozen=True, slots=True)
class Problem:
    line: int | None
    path: str
    message: str


class PlanFileError(ValueError):
    """The plan file cannot be used; nothing was changed."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__(self.render())

    def render(self, verdict: str = "nothing was imported") -> str:
        lines = [f"{self.file}: {len(self.problems)} problem(s), {verdict}"]
        for p in self.problems:
            where = f"{self.file}:{p.line}" if p.line else self.file
            field = f" [{p.path}]" if p.path else ""
            lines.append(f"  {where}{field}: {p.message}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class LoadedPlan:
    file: str
    sha256: str
    data: PlanFile


def line_index(node: yaml.Node, path: YamlPath, out: dict[YamlPath, int], dupes: list[Problem]) -> None:
    """Record the 1-based line of every key and item under ``node`` in ``out``; a repeated key goes to ``dupes``
    (PyYAML would silently keep the last one)."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dupes.append(Problem(key_node.start_mark.line + 1, dotted((*path, key)), f"key '{key}' appears twice"))
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            line_index(value_node, (*path, key), out, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            line_index(item, (*path, i), out, dupes)


def dotted(path: YamlPath) -> str:
    """``("groups", 0, "code")`` as ``groups[0].code``, the way problems name a field."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_for(lines: dict[YamlPath, int], path: YamlPath) -> int | None:
    """The line of the deepest prefix of ``path`` that exists in the file (a missing field points at its parent)."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _describe(err: ErrorDetails) -> str:
    """One pydantic error in the words of someone editing the file."""
    kind, msg = err["type"], err["msg"]
    value = err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see docs/plan-format.md)"
    if kind.startswith("date_"):
        return f"expected a real date as YYYY-MM-DD, got {value!r} ({msg.lower()})"
    if kind == "literal_error":
        return f"{msg} (got {value!r})"
    if kind == "string_pattern_mismatch":
        return f"expected a code of letters, digits, '.', '_' or '-', got {value!r}"
    text = msg.removeprefix("Value error, ")
    if value is not None and not isinstance(value, dict | list):
        text += f" (got {value!r})"
    return text


def validation_problems(exc: ValidationError, lines: dict[YamlPath, int]) -> list[Problem]:
    """Each pydantic error of ``exc`` as a problem with its line and dotted field."""
    problems: list[Problem] = []
    for err in exc.errors():
        # Validators wrapped in functions add "function-..." steps to the location; the file has no such key.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        problems.append(Problem(line_for(lines, loc), dotted(loc), _describe(err)))
    return problems


def _policy_problems(data: PlanFile, lines: dict[YamlPath, int]) -> list[Problem]:
    """Reminder policies are checked now, not when the scheduler first reads them at 09:30 on a Monday."""
    problems: list[Problem] = []
    try:
        base = ReminderPolicy.from_mapping(data.plan.reminders, where="plan reminders")
    except ValueError as exc:
        path: YamlPath = ("plan", "reminders")
        return [Problem(line_for(lines, path), dotted(path), str(exc))]
    for gi, g in enumerate(data.groups):
        for ti, t in enumerate(g.tasks):
            if t.reminders:
                try:
                    ReminderPolicy.from_mapping(t.reminders, base=base, where=f"task {t.code} reminders")
                except ValueError as exc:
                    path = ("groups", gi, "tasks", ti, "reminders")
                    problems.append(Problem(line_for(lines, path), dotted(path), str(exc)))
    return problems


def parse_plan_text(text: str, file: str = "<plan>") -> LoadedPlan:
    """Parse and validate plan YAML; raise :class:`PlanFileError` listing every problem."""
    try:
        node = yaml.compose(text, Loader=PlanYamlLoader)
        raw = yaml.load(text, Loader=PlanYamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlanFileError(file, [Problem(line, "", f"not valid YAML: {problem}")]) from exc
    if node is None or not isinstance(raw, dict):
        raise PlanFileError(file, [Problem(1, "", "expected a mapping with keys plan, departments, groups")])

    lines: dict[YamlPath, int] = {}
    problems: list[Problem] = []
    line_index(node, (), lines, problems)
    if problems:
        raise PlanFileError(file, problems)

    try:
        data = PlanFile.model_validate(raw)
    except ValidationError as exc:
        raise PlanFileError(file, validation_problems(exc, lines)) from exc

    for ref in data.check_references():
        problems.append(Problem(line_for(lines, ref.path), dotted(ref.path), ref.message))
    problems.extend(_policy_problems(data, lines))
    if problems:
        raise PlanFileError(file, problems)
    return LoadedPlan(file=file, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), data=data)


def load_plan_file(path: Path) -> LoadedPlan:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanFileError(str(path), [Problem(None, "", "file not found")]) from None
    except UnicodeDecodeError as exc:
        raise PlanFileError(str(path), [Problem(None, "", f"expected UTF-8 text: {exc.reason}")]) from exc
    return parse_plan_text(text, str(path))
