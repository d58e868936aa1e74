"""Tool calls the fakes stream, chosen by the model name's options (all three fakes):

    tools=N      with `tools` in the request and no tool result as its last turn: ask for N
                 calls at once (the named tool of tool_choice, else the tools in turn), each
                 call's arguments ``{"city": "city<i>", "days": <i+1>}`` in three pieces
    bad_args=1   the arguments are not valid JSON

After tool results (the last turn answers calls) the fakes answer with text as usual.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class FakeCall:
    call_id: str
    name: str
    fragments: list[str]

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


def planned_calls(count: int, names: list[str], bad_args: bool = False) -> list[FakeCall]:
    """The calls to stream: `count` of them over `names` in turn (none without names)."""
    calls = []
    for i in range(count if names else 0):
        text = json.dumps({"city": f"city{i}", "days": i + 1})
        if bad_args:
            text = '{"city": "city' + str(i) + '", '
        third = len(text) // 3
        fragments = [text[:third], text[third : 2 * third], text[2 * third :]]
        calls.append(FakeCall(f"call_fake_{i}", names[i % len(names)], fragments))
    return calls
