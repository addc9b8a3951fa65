"""Check JSON against the Telegram Bot API spec in ``tests/data/telegram-bot-api/api.min.json``.

Reusable by any test that talks to the fake server::

    spec = load_spec()
    spec.check(message_dict, "Message")              # AssertionError listing every violation
    errors = spec.validate(update_dict, "Update")    # or just the list of violations
    spec.check_response("sendMessage", body)         # a whole {"ok": ..., "result": ...} answer

Type expressions are the spec's own strings: "Integer", "Float", "String", "Boolean", a type name, a
union given as a list (["Message", "Boolean"]) and "Array of X" (nestable). Objects must carry every
required field, each field must have one of its declared types, and unknown fields are violations (a typo
in a fake would otherwise go unnoticed). Abstract types ("MaybeInaccessibleMessage") accept any subtype.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parent.parent / "data" / "telegram-bot-api" / "api.min.json"

_PRIMITIVES = {"Integer", "Float", "String", "Boolean"}
_ARRAY = "Array of "


class BotApiSpec:
    """The parsed spec plus a recursive validator."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.version: str = data["version"]
        self.types: dict[str, Any] = dict(data["types"])
        self.methods: dict[str, Any] = dict(data["methods"])

    # ------------------------------------------------------------------ methods

    def has_method(self, name: str) -> bool:
        return name in self.methods

    def method_params(self, name: str) -> dict[str, dict[str, Any]]:
        """Parameter name -> {"types": [...], "required": bool, ...} for a method."""
        return {f["name"]: f for f in self.methods[name].get("fields", [])}

    def method_returns(self, name: str) -> list[str]:
        return list(self.methods[name]["returns"])

    # ------------------------------------------------------------------ validation

    def validate(self, value: Any, types: str | list[str], path: str = "$") -> list[str]:
        """All violations of ``value`` against a type expression or a union of them (empty = valid)."""
        alternatives = [types] if isinstance(types, str) else list(types)
        best: list[str] | None = None
        for alt in alternatives:
            errors = self._validate_one(value, alt, path)
            if not errors:
                return []
            if best is None or len(errors) < len(best):
                best = errors
        if len(alternatives) > 1:
            return [f"{path}: matches none of {' or '.join(alternatives)}; closest: {best}"]
        return best or []

    def check(self, value: Any, types: str | list[str]) -> None:
        """Assert ``value`` conforms; the message lists every violation."""
        errors = self.validate(value, types)
        assert not errors, f"not a valid {types}:\n  " + "\n  ".join(errors) + f"\nvalue: {json.dumps(value)[:2000]}"

    def validate_response(self, method: str, body: Any) -> list[str]:
        """Violations of a full Bot API answer ``{"ok": true, "result": ...}`` or the error form."""
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            return ["$: answer must be an object with a boolean 'ok'"]
        if body["ok"]:
            extra = set(body) - {"ok", "result", "description"}
            errors = [f"$: unexpected keys {sorted(extra)}"] if extra else []
            if "result" not in body:
                return [*errors, "$: 'result' missing"]
            return errors + self.validate(body["result"], self.method_returns(method), "$.result")
        errors = []
        extra = set(body) - {"ok", "error_code", "description", "parameters"}
        if extra:
            errors.append(f"$: unexpected keys {sorted(extra)}")
        if type(body.get("error_code")) is not int:
            errors.append("$.error_code: must be an Integer")
        if not isinstance(body.get("description"), str) or not body["description"]:
            errors.append("$.description: must be a non-empty String")
        if "parameters" in body:
            errors += self.validate(body["parameters"], "ResponseParameters", "$.parameters")
        return errors

    def check_response(self, method: str, body: Any) -> None:
        errors = self.validate_response(method, body)
        assert not errors, f"bad {method} answer:\n  " + "\n  ".join(errors)

    def _validate_one(self, value: Any, type_expr: str, path: str) -> list[str]:
        if type_expr.startswith(_ARRAY):
            if not isinstance(value, list):
                return [f"{path}: expected {type_expr}, got {type(value).__name__}"]
            inner = type_expr[len(_ARRAY) :]
            errors: list[str] = []
            for i, item in enumerate(value):
                errors += self._validate_one(item, inner, f"{path}[{i}]")
            return errors
        if type_expr in _PRIMITIVES:
            return [] if _is_primitive(value, type_expr) else [f"{path}: expected {type_expr}, got {value!r:.80}"]
        spec_type = self.types.get(type_expr)
        if spec_type is None:
            raise KeyError(f"type {type_expr!r} is not in the Bot API spec")
        if "subtypes" in spec_type:
            errors = self.validate(value, spec_type["subtypes"], path)
            return [e.replace("matches none of", f"{type_expr} matches none of", 1) for e in errors]
        if not isinstance(value, dict):
            return [f"{path}: expected {type_expr} object, got {type(value).__name__}"]
        fields = {f["name"]: f for f in spec_type.get("fields", [])}
        errors = []
        for name, f in fields.items():
            if f["required"] and name not in value:
                errors.append(f"{path}: {type_expr} is missing required field {name!r}")
        for name, item in value.items():
            f = fields.get(name)
            if f is None:
                errors.append(f"{path}: {type_expr} has no field {name!r}")
                continue
            errors += self.validate(item, f["types"], f"{path}.{name}")
        return errors


def _is_primitive(value: Any, type_name: str) -> bool:
    if type_name == "Integer":
        return type(value) is int
    if type_name == "Float":
        return type(value) in (int, float)
    if type_name == "String":
        return isinstance(value, str)
    return type(value) is bool  # Boolean


@functools.cache
def load_spec(path: Path = SPEC_PATH) -> BotApiSpec:
    """The spec shipped with the repository (parsed once per process)."""
    with path.open(encoding="utf-8") as fh:
        return BotApiSpec(json.load(fh))
