"""Variable values by priority layer, and the type rules of variable definitions.

Pure functions, no I/O. Priority, highest first (docs/prompts.md): computed >
the request's `variables` > project scope > org scope > user scope > the definition's
default. Values are inserted literally by `engine.prompts.template`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COMPUTED = ("current_date", "current_time", "current_datetime")
TIMEZONE_VARIABLE = "user_timezone"
# Lowest priority last; `computed` is applied on top of all of them.
LAYERS = ("request", "project", "org", "user", "default")


@dataclass(frozen=True)
class ResolvedValues:
    """The value of each variable and the layer it came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def resolve(
    definitions: list[dict[str, Any]],
    request: Mapping[str, Any],
    scoped: Mapping[str, Mapping[str, Any]],
    now: datetime | None = None,
) -> ResolvedValues:
    """Merge the layers; `scoped` maps "project" / "org" / "user" to that scope's values."""
    layers: dict[str, Mapping[str, Any]] = {
        "request": request,
        "project": scoped.get("project", {}),
        "org": scoped.get("org", {}),
        "user": scoped.get("user", {}),
        "default": {d["name"]: d["default"] for d in definitions if d.get("default") is not None},
    }
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in reversed(LAYERS):
        for name, value in layers[layer].items():
            values[name] = value
            sources[name] = layer
    zone = timezone_of(values.get(TIMEZONE_VARIABLE))
    for name, value in computed_values(now or datetime.now(UTC), zone).items():
        values[name] = value
        sources[name] = "computed"
    return ResolvedValues(values, sources)


def timezone_of(name: Any) -> tzinfo:
    """The named IANA zone, or UTC when unset or unknown."""
    if isinstance(name, str) and name.strip():
        try:
            return ZoneInfo(name.strip())
        except (ZoneInfoNotFoundError, ValueError):
            return UTC
    return UTC


def computed_values(now: datetime, zone: tzinfo) -> dict[str, str]:
    """`current_date`, `current_time`, `current_datetime` in `zone`."""
    local = now.astimezone(zone)
    return {
        "current_date": local.date().isoformat(),
        "current_time": local.strftime("%H:%M"),
        "current_datetime": local.isoformat(timespec="seconds"),
    }


def type_error(definition: Mapping[str, Any], value: Any) -> str | None:
    """Why `value` breaks `definition`'s type rule, or None when it fits.

    Scoped values are stored as text, so a number or boolean may also arrive as its text.
    """
    kind = definition.get("type", "string")
    if kind == "number":
        if isinstance(value, bool) or not _is_number(value):
            return "must be a number"
    elif kind == "boolean":
        if not isinstance(value, bool) and value not in ("true", "false"):
            return "must be a boolean"
    elif kind == "enum":
        options = definition.get("options") or []
        if _as_text(value) not in options:
            return "must be one of: " + ", ".join(options)
    elif not isinstance(value, str | int | float):
        return "must be a string"
    return None


def check(
    definitions: list[dict[str, Any]], values: Mapping[str, Any], sources: Mapping[str, str]
) -> list[dict[str, str]]:
    """Field errors `{field, message}` for every defined variable whose value breaks a rule."""
    errors = []
    for definition in definitions:
        name = definition["name"]
        if name not in values or sources.get(name) == "computed":
            continue
        problem = type_error(definition, values[name])
        if problem:
            errors.append(
                {
                    "field": f"variables.{name}",
                    "message": f"{name} {problem} (from {sources.get(name, 'request')})",
                }
            )
    return errors


def required_missing(definitions: list[dict[str, Any]], values: Mapping[str, Any]) -> list[str]:
    """Required variables with no value from any layer."""
    return [d["name"] for d in definitions if d.get("required") and d["name"] not in values]


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
