"""Read a plan file: YAML with line numbers, validated by :mod:`coordbot.plan.schema`.

Every error names the file, the line and what was expected, and all errors are reported at once. The YAML
loader and the line helpers are public because a meeting's decisions file (:mod:`coordbot.plan.meetings`)
is read the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.composer import ComposerError

from coordbot.plan.policy import ReminderPolicy
from coordbot.plan.schema import PlanFile, is_code_path

YamlPath = tuple[str | int, ...]  # keys and list indexes from the document root, e.g. ("groups", 0, "code")

MAX_FILE_BYTES = 5 * 1024 * 1024  # the Songjiang plan is 40 KB; a bigger file is a mistake or an attack
# Nodes that aliases may add to a document once expanded. A few shared lists cost hundreds; a 41 KB
# "billion laughs" file costs 10**9 and used to exhaust memory in the line-numbering pass.
MAX_ALIAS_NODES = 100_000
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class AliasLimitError(ComposerError):
    """The aliases of a document expand beyond :data:`MAX_ALIAS_NODES`, or one contains itself."""


class PlanYamlLoader(yaml.SafeLoader):
    """YAML 1.2-like scalars: dates stay text (so pydantic names a bad one with its line) and only
    true/false are booleans (YAML 1.1 turns ``on``/``no`` into booleans, a classic surprise).

    The composer counts what aliases expand to, and stops at the first alias beyond
    :data:`MAX_ALIAS_NODES`: the composed graph shares aliased nodes, but every later walk (line numbers,
    construction, validation) sees them expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}  # id(node) -> its size with every alias inside expanded
        self._via_aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            size = self._expanded.get(id(node))
            if size is None:  # anchored node still being composed: the alias sits inside what it names
                raise AliasLimitError(
                    None, None, f"alias *{event.anchor} refers to a node that contains it (endless)", event.start_mark
                )
            self._via_aliases += size
            if self._via_aliases > MAX_ALIAS_NODES:
                raise AliasLimitError(
                    None,
                    None,
                    f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes by alias *{event.anchor} here "
                    "(a plan file repeats little: write the repeated part out or use fewer aliases)",
                    event.start_mark,
                )
            return node
        node = super().compose_node(parent, index)
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._expanded[id(item)] for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._expanded[id(k)] + self._expanded[id(v)] for k, v in node.value)
        self._expanded[id(node)] = size
        return node


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


def line_index(
    node: yaml.Node,
    path: YamlPath,
    out: dict[YamlPath, int],
    dupes: list[Problem],
    numbers: dict[YamlPath, str] | None = None,
) -> None:
    """Record the 1-based line of every key and item under ``node`` in ``out``; a repeated key goes to ``dupes``
    (PyYAML would silently keep the last one). ``numbers`` gets the text of every scalar YAML read as a
    number, as written (``5.40``, which the constructed value 5.4 no longer shows)."""
    out[path] = node.start_mark.line + 1
    if numbers is not None and isinstance(node, yaml.ScalarNode) and node.tag in _NUMBER_TAGS:
        numbers[path] = node.value
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                dupes.append(Problem(key_node.start_mark.line + 1, dotted((*path, key)), f"key '{key}' appears twice"))
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            line_index(value_node, (*path, key), out, dupes, numbers)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            line_index(item, (*path, i), out, dupes, numbers)


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
    if kind == "string_too_long":
        limit = (err.get("ctx") or {}).get("max_length")
        return f"too long: {len(str(value))} characters, at most {limit} characters fit (got {value!r})"
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}"
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


def yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    """A YAML syntax error in plain words, with its line; a tab in the indentation gets the hint PyYAML omits."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, AliasLimitError):
        return Problem(line, "", problem)
    if mark is not None:
        row = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        indent = row[: len(row) - len(row.lstrip(" \t"))]
        if "\t" in indent or "'\\t'" in problem:
            column = (row.index("\t") if "\t" in row else mark.column) + 1
            return Problem(
                line,
                "",
                f"a tab at column {column}: YAML indents with spaces only — replace the tab with spaces "
                "(and set the editor to insert spaces)",
            )
    return Problem(line, "", f"not valid YAML: {problem}")


def compose_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node graph (for line numbers) and its value, parsed once, aliases capped."""
    loader = PlanYamlLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _too_big(size: int) -> Problem:
    return Problem(
        None,
        "",
        f"the file is {size / 2**20:.1f} MB; a plan file is at most {MAX_FILE_BYTES // 2**20} MB "
        "(is it the right file?)",
    )


def _number_codes(numbers: dict[YamlPath, str], raw: Any, lines: dict[YamlPath, int]) -> list[Problem]:
    """Codes YAML read as numbers: ``code: 5.40`` would become 5.4 and match (or archive) another task."""
    problems: list[Problem] = []
    for path, written in numbers.items():
        if is_code_path(path):
            value: Any = raw
            for part in path:
                value = value[part]
            problems.append(
                Problem(
                    line_for(lines, path),
                    dotted(path),
                    f'a code is text, but YAML reads {written} unquoted as the number {value!r}: quote it: "{written}"',
                )
            )
    return problems


def _raw_reference_problems(raw: Mapping[str, Any], lines: dict[YamlPath, int]) -> list[Problem]:
    """Unknown departments and repeated codes read straight from the YAML values, when field errors keep
    the validated model (and :meth:`PlanFile.check_references`) from existing: one pass reports them all."""
    problems: list[Problem] = []

    def items(value: Any) -> list[tuple[int, Any]]:
        return list(enumerate(value)) if isinstance(value, list) else []

    def field(value: Any, key: str) -> Any:
        return value.get(key) if isinstance(value, Mapping) else None

    def text(value: Any) -> str | None:
        return str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else None

    def unique(path: YamlPath, code: str | None, seen: set[str], what: str) -> None:
        if code is not None:
            if code in seen:
                problems.append(Problem(line_for(lines, path), dotted(path), f"duplicate {what} code '{code}'"))
            seen.add(code)

    departments: set[str] = set()
    for i, d in items(raw.get("departments")):
        unique(("departments", i, "code"), text(field(d, "code")), departments, "department")

    collectives = {text(field(c, "code")) for _, c in items(raw.get("collectives"))}

    def known(path: YamlPath, value: Any, *, collective: bool = False) -> None:
        code = text(value)
        if code is not None and code not in departments and not (collective and code in collectives):
            message = f"unknown department '{code}' (expected one of the codes under 'departments')"
            problems.append(Problem(line_for(lines, path), dotted(path), message))

    known(("plan", "office"), field(raw.get("plan"), "office"))
    groups: set[str] = set()
    tasks: set[str] = set()
    for gi, g in items(raw.get("groups")):
        unique(("groups", gi, "code"), text(field(g, "code")), groups, "group")
        for ti, t in items(field(g, "tasks")):
            base: YamlPath = ("groups", gi, "tasks", ti)
            unique((*base, "code"), text(field(t, "code")), tasks, "task")
            lead = field(t, "lead")
            if isinstance(lead, list):  # several leads
                for li, one in items(lead):
                    known((*base, "lead", li), one)
            else:
                known((*base, "lead"), lead)
            for ci, c in items(field(t, "co")):
                known((*base, "co", ci), c, collective=True)
    for i, c in items(raw.get("contacts")):
        known(("contacts", i, "department"), field(c, "department"))
    return problems


def parse_plan_text(text: str, file: str = "<plan>") -> LoadedPlan:
    """Parse and validate plan YAML; raise :class:`PlanFileError` listing every problem."""
    if len(text) > MAX_FILE_BYTES or len(encoded := text.encode("utf-8")) > MAX_FILE_BYTES:
        raise PlanFileError(file, [_too_big(len(text.encode("utf-8")))])
    try:
        node, raw = compose_yaml(text)
    except yaml.YAMLError as exc:
        raise PlanFileError(file, [yaml_problem(exc, text)]) from exc
    if node is None or not isinstance(raw, dict):
        raise PlanFileError(file, [Problem(1, "", "expected a mapping with keys plan, departments, groups")])

    lines: dict[YamlPath, int] = {}
    problems: list[Problem] = []
    numbers: dict[YamlPath, str] = {}
    line_index(node, (), lines, problems, numbers)  # repeated keys: reported with everything else below
    problems.extend(_number_codes(numbers, raw, lines))

    try:
        data = PlanFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(validation_problems(exc, lines))
        problems.extend(_raw_reference_problems(raw, lines))
        raise PlanFileError(file, problems) from exc

    for ref in data.check_references():
        problems.append(Problem(line_for(lines, ref.path), dotted(ref.path), ref.message))
    problems.extend(_policy_problems(data, lines))
    if problems:
        raise PlanFileError(file, problems)
    return LoadedPlan(file=file, sha256=hashlib.sha256(encoded).hexdigest(), data=data)


def decode_plan_bytes(data: bytes, file: str) -> str:
    """UTF-8 text (a leading BOM dropped); anything else is refused with the byte and line where it breaks."""
    try:
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        at = exc.start + skip
        line = data.count(b"\n", 0, at) + 1
        guess = ""
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            guess = " (it looks like UTF-16)"
        else:
            try:
                data.decode("gb18030")
                guess = " (it looks like GB18030/GBK, as Windows in China saves by default)"
            except UnicodeDecodeError:
                pass
        message = (
            f"not UTF-8 text: byte {at} (0x{data[at]:02X}) is not valid UTF-8{guess}; "
            "save it as UTF-8 (Save As → encoding UTF-8) and try again"
        )
        raise PlanFileError(file, [Problem(line, "", message)]) from exc


def load_plan_file(path: Path) -> LoadedPlan:
    try:
        with path.open("rb") as f:
            # Read one byte past the cap, never the whole of a huge (or endless) file.
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise PlanFileError(str(path), [Problem(None, "", "file not found")]) from None
    if len(data) > MAX_FILE_BYTES:
        try:
            size = path.stat().st_size
        except OSError:
            size = len(data)
        raise PlanFileError(str(path), [_too_big(max(size, len(data)))])
    return parse_plan_text(decode_plan_bytes(data, str(path)), str(path))
