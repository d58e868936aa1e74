"""`{{name}}` templates. Values go in literally: one pass, no recursion, no code."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")


def placeholders(texts: Iterable[str]) -> list[str]:
    """Variable names used in `texts`, in order of first use, without repeats."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            seen.setdefault(match.group(1), None)
    return list(seen)


def missing(texts: Iterable[str], values: Mapping[str, object]) -> list[str]:
    """Names used in `texts` that have no value."""
    return [name for name in placeholders(texts) if name not in values]


def render(text: str, values: Mapping[str, object]) -> str:
    """Replace each placeholder with its value in a single pass.

    A value that itself contains `{{x}}` stays that text: re.sub never rescans output.
    Placeholders without a value are left as they are (callers check `missing` first).
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        return format_value(values[name])

    return PLACEHOLDER.sub(substitute, text)


def format_value(value: object) -> str:
    """How a variable value reads inside a prompt."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
