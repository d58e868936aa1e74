"""A model's reasoning in one provider-neutral shape, and the `reasoning` setting. Pure.

A decoder yields `ReasoningDelta`s for the reasoning text it streams (Anthropic's thinking
blocks, Gemini's thought parts, `delta.reasoning_content` of OpenAI-compatible upstreams),
never as answer text. The setting (`settings.reasoning`, docs/protocol.md "Reasoning") is
`{"effort": "low" | "medium" | "high", "budget_tokens": N}`, either or both; each adapter
maps it onto its wire (`reasoning_effort`, `thinking`, `thinkingConfig`) and refuses what it
cannot take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidRequest

# The thinking budget an effort stands for where the provider takes only a budget.
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}


@dataclass(frozen=True)
class ReasoningDelta:
    """A piece of the model's reasoning text."""

    text: str


def reasoning_setting(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The request's `reasoning` setting, or None when reasoning is not asked for."""
    value = settings.get("reasoning")
    return value if isinstance(value, dict) else None


def budget_of(reasoning: dict[str, Any]) -> int:
    """The thinking budget: `budget_tokens`, else the effort's (EFFORT_BUDGETS), else medium."""
    budget = reasoning.get("budget_tokens")
    if budget is not None:
        return int(budget)
    return EFFORT_BUDGETS[str(reasoning.get("effort") or "medium")]


def refuse(provider: str, setting: str, why: str) -> InvalidRequest:
    """The `invalid_request` of a reasoning setting the provider or model cannot take."""
    return InvalidRequest(
        f"{provider} does not support the setting {setting}: {why}",
        details={"errors": [{"field": f"settings.{setting}", "message": "unsupported"}]},
    )
