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

import regex
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
