"""Fitting a long conversation into the model's context: keep the system messages and the
newest messages that fit, and say what was left out.

Token counts are estimates (engine.providers.base.estimate_tokens, about four characters a
token, plus a few tokens of framing per message); `SAFETY` leaves room for their error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from engine.providers.parts import content_chars

MESSAGE_OVERHEAD = 4  # role and separators of one chat message
SAFETY = 0.9  # use at most this share of the window, for the estimate's error
DEFAULT_OUTPUT_RESERVE = 1024  # room kept for the answer when the request sets no max_tokens


@dataclass(frozen=True)
class Fitted:
    """The messages to send, and what was left out of the history."""

    messages: list[dict[str, str]]
    dropped_messages: int
    dropped_tokens: int
    budget_tokens: int | None

    over_budget: bool = False  # even the system and new messages alone exceed the budget

    @property
    def trimmed(self) -> bool:
        return self.dropped_messages > 0


def message_tokens(message: dict[str, Any]) -> int:
    """A message's estimated tokens: its text, a fixed cost per image (IMAGE_CHARS), framing."""
    return (content_chars(message.get("content")) + 3) // 4 + MESSAGE_OVERHEAD


def fit_messages(
    history: list[dict[str, str]],
    new: list[dict[str, str]],
    budget: int | None,
    max_messages: int | None = None,
) -> Fitted:
    """The system messages of `history`, its newest other messages that fit in `budget`
    tokens and in `max_messages` messages in all (None: no such limit), then all of `new`,
    in their original order.

    A dropped message takes the ones before it along (no gaps), so the model always sees
    an unbroken, most recent stretch of the conversation; an answer whose question was
    dropped goes too, so a trimmed history never starts with an assistant message. When the
    system messages and `new` alone exceed the budget, all other history is left out and they
    are sent as they are (`over_budget`): the request itself is too long, which no trimming
    of history can fix.
    """
    system = [i for i, m in enumerate(history) if m.get("role") == "system"]
    fixed = sum(message_tokens(history[i]) for i in system) + sum(message_tokens(m) for m in new)
    room = None if budget is None else budget - fixed
    slots = None if max_messages is None else max_messages - len(new)
    keep = set(system)
    for i in range(len(history) - 1, -1, -1):
        if i in keep:
            continue
        cost = message_tokens(history[i])
        if (room is not None and cost > room) or (slots is not None and len(keep) >= slots):
            break
        room = None if room is None else room - cost
        keep.add(i)
    _drop_orphan_answers(history, keep)
    dropped = [i for i in range(len(history)) if i not in keep]
    return Fitted(
        messages=[history[i] for i in sorted(keep)] + list(new),
        dropped_messages=len(dropped),
        dropped_tokens=sum(message_tokens(history[i]) for i in dropped),
        budget_tokens=budget,
        over_budget=budget is not None and fixed > budget,
    )


def _drop_orphan_answers(history: list[dict[str, str]], keep: set[int]) -> None:
    """Leave out the assistant messages that start the kept stretch when what came before
    them was dropped: an answer without its question would open the conversation."""
    kept = sorted(i for i in keep if history[i].get("role") != "system")
    for i in kept:
        gone_before = any(j not in keep for j in range(i))
        if not gone_before or history[i].get("role") != "assistant":
            break
        keep.discard(i)


@lru_cache(maxsize=1024)
def known_window(provider_id: str, model: str) -> int | None:
    """The model's context window in tokens from the genai-prices catalog, or None."""
    try:
        found = calc_price(
            PriceUsage(input_tokens=0, output_tokens=0), model_ref=model, provider_id=provider_id
        )
    except LookupError:
        return None
    window = found.model.context_window
    return int(window) if window else None


def input_budget(
    window: int | None, max_context_tokens: int | None, max_output_tokens: int | None
) -> int | None:
    """Tokens the input may take: the smaller of the model's window and the server's limit,
    with room for the answer and the estimate's error; None when neither limit is known."""
    limits = [n for n in (window, max_context_tokens) if n]
    if not limits:
        return None
    limit = min(limits)
    reserve = max_output_tokens or min(DEFAULT_OUTPUT_RESERVE, limit // 4)
    return max(0, int(limit * SAFETY) - reserve)
