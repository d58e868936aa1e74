"""Output validation (seed 002): JSON Schema and regex checks on a task's final text.

Specs were checked when the prompt was saved (engine.prompts.models). Regexes run with a
time bound (the `regex` package's `timeout`); the whole validation of a task runs in a
worker process with a deadline (engine/prompts/checker.py), so neither a hostile JSON
Schema `pattern` nor a huge text can stall the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import regex
from jsonschema import SchemaError
from jsonschema.validators import validator_for
from referencing import Registry

REGEX_TIMEOUT_S = 0.5
MAX_ERRORS = 20
_FENCE = regex.compile(r"```json[ \t]*\r?\n(.*?)```", regex.DOTALL | regex.IGNORECASE)


@dataclass(frozen=True)
class ValidationResult:
    status: str  # passed | failed | skipped
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """`task_done.validation`."""
        return {"status": self.status, "errors": self.errors}


SKIPPED = ValidationResult("skipped")


def extract_json(text: str) -> tuple[bool, Any]:
    """The JSON value of the whole text, or else of its first ```json fenced block."""
    for candidate in (text, *_first_fence(text)):
        try:
            return True, json.loads(candidate)
        except ValueError:
            continue
    return False, None


def _first_fence(text: str) -> list[str]:
    match = _FENCE.search(text, timeout=REGEX_TIMEOUT_S)
    return [match.group(1)] if match else []


def check_json_schema(text: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's errors for the JSON of `text`; one `recursion` error when the check
    recurses past Python's limit (a value nested thousands deep, or a `$ref` loop saved
    before `ref_loop` refused them)."""
    try:
        return _schema_errors(text, schema)
    except RecursionError:
        return [
            {
                "type": "json_schema",
                "path": "",
                "reason": "recursion",
                "message": "the value is nested too deeply, or the schema's `$ref`s loop",
            }
        ]


def _schema_errors(text: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    found, value = extract_json(text)
    if not found:
        return [
            {
                "type": "json_schema",
                "path": "",
                "message": "the output holds no JSON (whole text or a ```json block)",
            }
        ]
    # An empty registry: a `$ref` is resolved inside the schema only, never fetched.
    validator = validator_for(schema)(schema, registry=Registry())
    errors = []
    for err in validator.iter_errors(value):
        errors.append(
            {
                "type": "json_schema",
                "path": "/".join(str(p) for p in err.path),
                "message": err.message[:500],
            }
        )
        if len(errors) >= MAX_ERRORS:
            break
    return errors


def check_regex(text: str, pattern: str) -> list[dict[str, Any]]:
    try:
        matched = regex.search(pattern, text, timeout=REGEX_TIMEOUT_S, concurrent=True) is not None
    except TimeoutError:
        return [
            {
                "type": "regex",
                "pattern": pattern,
                "reason": "timeout",
                "message": f"the pattern took longer than {REGEX_TIMEOUT_S} s",
            }
        ]
    if matched:
        return []
    return [{"type": "regex", "pattern": pattern, "message": "the output does not match"}]


def remote_refs(schema: Any, limit: int = 10) -> list[str]:
    """`$ref` / `$dynamicRef` values that point outside the schema (refused when saved)."""
    found: list[str] = []
    stack = [schema]
    while stack and len(found) < limit:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if (
                    key in ("$ref", "$dynamicRef")
                    and isinstance(value, str)
                    and not value.startswith("#")
                ):
                    found.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


# Keywords that apply a subschema to the same instance: a `$ref` loop through only these
# never reaches a deeper part of the instance, so checking it recurses without end.
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MAPS = ("dependentSchemas",)
Pointer = tuple[str | int, ...]


def _at(schema: Any, pointer: Pointer) -> Any:
    node = schema
    for part in pointer:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int | str) and str(part).isdigit():
            index = int(part)
            node = node[index] if index < len(node) else None
        else:
            return None
    return node


def _target(ref: str) -> Pointer | None:
    """The JSON pointer of a local `$ref` (`#`, `#/a/b`); None for anchors and others."""
    if not ref.startswith("#"):
        return None
    fragment = unquote(ref[1:])
    if not fragment:
        return ()
    if not fragment.startswith("/"):
        return None
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in fragment[1:].split("/"))


def _same_instance(schema: Any, pointer: Pointer) -> list[Pointer]:
    """The subschemas that the one at `pointer` applies to its own instance."""
    node = _at(schema, pointer)
    if not isinstance(node, dict):
        return []
    found: list[Pointer] = []
    for key in ("$ref", "$dynamicRef"):
        target = _target(node[key]) if isinstance(node.get(key), str) else None
        if target is not None:
            found.append(target)
    for key in _IN_PLACE_LISTS:
        if isinstance(node.get(key), list):
            found.extend((*pointer, key, i) for i in range(len(node[key])))
    found.extend((*pointer, key) for key in _IN_PLACE_ONE if key in node)
    for key in _IN_PLACE_MAPS:
        if isinstance(node.get(key), dict):
            found.extend((*pointer, key, name) for name in node[key])
    return found


def ref_loop(schema: Any) -> bool:
    """Whether a `$ref` leads back to a schema it started from without descending into the
    instance (`{"$ref": "#"}`, two `$defs` referring to each other): a check would recurse
    without end. A tree's `items: {"$ref": "#"}` descends, and is fine."""
    done: set[Pointer] = set()
    for start in _subschemas(schema):
        on_path: set[Pointer] = set()
        stack: list[tuple[Pointer, bool]] = [(start, False)]
        while stack:
            pointer, leaving = stack.pop()
            key = tuple(str(p) for p in pointer)
            if leaving:
                on_path.discard(key)
                done.add(key)
                continue
            if key in on_path:
                return True
            if key in done:
                continue
            on_path.add(key)
            stack.append((pointer, True))
            stack.extend((child, False) for child in _same_instance(schema, pointer))
    return False


def _subschemas(schema: Any) -> list[Pointer]:
    found: list[Pointer] = []
    stack: list[tuple[Pointer, Any]] = [((), schema)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict):
            found.append(pointer)
            stack.extend(((*pointer, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*pointer, i), v) for i, v in enumerate(node))
    return found


def validate_text(text: str, specs: Sequence[dict[str, Any]]) -> ValidationResult:
    """Run every spec on `text`; no specs is `skipped`."""
    if not specs:
        return SKIPPED
    errors: list[dict[str, Any]] = []
    for spec in specs:
        if spec["type"] == "json_schema":
            errors.extend(check_json_schema(text, spec["schema"]))
        elif spec["type"] == "regex":
            errors.extend(check_regex(text, spec["pattern"]))
    return ValidationResult("failed" if errors else "passed", errors[:MAX_ERRORS])


def checked_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` if it is a JSON Schema we accept (of any draft, with local `$ref`s only,
    none looping back without descending into the value); else ValueError naming the rule.
    The one check behind output validations, `response_format` and tool parameters."""
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message[:200]}") from None
    if remote_refs(schema):
        raise ValueError(
            "a JSON Schema may only use local `$ref`s (starting with #); nothing is fetched"
        )
    if ref_loop(schema):
        raise ValueError(
            "a JSON Schema's `$ref`s may not loop back to where they started without"
            ' descending into the value (such as `{"$ref": "#"}`)'
        )
    return schema
