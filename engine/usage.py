"""Tokens of one model call: the one `Usage` type, from a provider's stream to the
`usage` of `task_done` and the task views (the protocol schema and the TypeScript types
are generated from it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field


class Usage(BaseModel):
    """Tokens of one model call as the provider counted them: `input_tokens` (every input
    token, those served from a prompt cache included), `output_tokens` (the answer's, the
    reasoning's included), `reasoning_tokens` (the part of `output_tokens` the model spent
    on reasoning: every provider bills it as output) and `total_tokens`, the sum of input
    and output."""

    # A payload's `total_tokens` is computed, so reading one back ignores it.
    model_config = ConfigDict(extra="ignore")

    input_tokens: int
    output_tokens: int
    # The part of the input served from the provider's prompt cache: priced apart, not sent.
    cached_input_tokens: int = Field(0, exclude=True)
    reasoning_tokens: int = Field(
        0, description="the part of output_tokens spent on reasoning (docs/protocol.md)"
    )

    def __init__(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        **_: Any,
    ) -> None:
        super().__init__(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            reasoning_tokens=reasoning_tokens,
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
