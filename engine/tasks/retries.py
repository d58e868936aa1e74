"""Getting a task's first token: retries, then fallbacks, all before any client saw text.

Each model in turn (the task's own, then `settings.fallbacks` in order) gets up to
`1 + retries` attempts. An attempt opens the stream and waits for its first delta; a
transient fault (429, 5xx, a connect error, a stream that breaks before its first token)
is retried after a bounded exponential backoff with full jitter that honours the provider's
`retry-after`. A rejection (bad key, bad model) or a first-token timeout ends the task at
once. Once the first token is in hand nothing is retried: the client is about to see it.
Every attempt, retry and fallback is an event of the task.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from db import attempts as attempt_rows
from engine.errors import InvalidRequest, ProviderUnavailable, StreamTimeout
from engine.providers.base import Provider, ProviderRequest, ProviderStream
from engine.providers.toolcalls import Delta
from engine.tasks.plan import Candidate, RetryPolicy, RunnerDeps, TaskPlan
from engine.usage import Usage

if TYPE_CHECKING:
    from engine.providers.registry import ProviderRegistry

MAX_FALLBACKS = 5
EventSink = Callable[..., None]


def resolve_fallbacks(
    registry: ProviderRegistry, settings: dict[str, Any]
) -> tuple[Candidate, ...]:
    """`settings["fallbacks"]` (a list of `provider/model`) as candidates; bad ones refused."""
    refs = settings.get("fallbacks") or []
    if (
        not isinstance(refs, list)
        or len(refs) > MAX_FALLBACKS
        or not all(isinstance(r, str) for r in refs)
    ):
        raise InvalidRequest(
            f"settings.fallbacks must be a list of at most {MAX_FALLBACKS} provider/model names",
            details={"errors": [{"field": "settings.fallbacks", "message": "invalid"}]},
        )
    out = []
    for index, ref in enumerate(refs):
        try:
            provider, model = registry.resolve(ref)
        except InvalidRequest as exc:
            raise InvalidRequest(
                exc.message,
                details={
                    "errors": [
                        {"field": f"settings.fallbacks.{index}", "message": "unknown provider"}
                    ]
                },
            ) from None
        out.append(Candidate(provider, model))
    return tuple(out)


class PrimedStream(ProviderStream):
    """A stream whose first delta was read ahead; it hands that delta over first."""

    def __init__(
        self, inner: ProviderStream, iterator: AsyncIterator[Delta], first: Delta | None
    ) -> None:
        self._inner = inner
        self._iterator = iterator
        self._first = first

    @property
    def finish_reason(self) -> str | None:
        return self._inner.finish_reason

    @finish_reason.setter
    def finish_reason(self, value: str | None) -> None:
        self._inner.finish_reason = value

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    @usage.setter
    def usage(self, value: Usage | None) -> None:
        self._inner.usage = value

    @property
    def refusal(self) -> str | None:
        return self._inner.refusal

    @refusal.setter
    def refusal(self, value: str | None) -> None:
        self._inner.refusal = value

    @property
    def thinking_blocks(self) -> list[dict[str, Any]] | None:
        return self._inner.thinking_blocks

    @thinking_blocks.setter
    def thinking_blocks(self, value: list[dict[str, Any]] | None) -> None:
        self._inner.thinking_blocks = value

    async def deltas(self) -> AsyncIterator[Delta]:
        if self._first is None:
            return
        yield self._first
        async for delta in self._iterator:
            yield delta

    async def aclose(self) -> None:
        await self._inner.aclose()


async def prime(provider: Provider, request: ProviderRequest, timeout_s: float) -> PrimedStream:
    """Open the call and read its first delta; the upstream is closed on any failure."""
    try:
        async with asyncio.timeout(timeout_s):
            stream = await provider.open(request)
            try:
                iterator = aiter(stream.deltas())
                first = await anext(iterator, None)
            except BaseException:
                await stream.aclose()
                raise
    except TimeoutError:
        raise StreamTimeout("no first token from the provider in time") from None
    return PrimedStream(stream, iterator, first)


async def _attempts(
    candidate: Candidate,
    request: ProviderRequest,
    policy: RetryPolicy,
    timeout_s: float,
    event: EventSink,
) -> PrimedStream:
    """Up to `1 + retries` attempts on one model; the last transient fault is raised."""
    retry = 0
    while True:
        event(
            "provider_call",
            provider=candidate.provider.name,
            model=candidate.model,
            attempt=retry + 1,
        )
        try:
            return await prime(candidate.provider, request, timeout_s)
        except ProviderUnavailable as exc:
            wait = policy.wait_s(retry, exc.retry_after_s)  # None once retries are spent
            if wait is None:
                raise
            event(
                "retry",
                exc.message,
                level="warning",
                code=exc.code,
                provider=candidate.provider.name,
                model=candidate.model,
                wait_ms=int(wait * 1000),
            )
            await asyncio.sleep(wait)
            retry += 1


async def open_task_stream(
    deps: RunnerDeps, plan: TaskPlan, event: EventSink
) -> tuple[TaskPlan, ProviderStream]:
    """The first model that yields a first token; the plan names the one that answered."""
    candidates = (Candidate(plan.provider, plan.request.model), *plan.fallbacks)
    last: ProviderUnavailable | None = None
    for index, candidate in enumerate(candidates):
        if index:
            event(
                "fallback",
                last.message if last else "",
                level="warning",
                provider=candidate.provider.name,
                model=candidate.model,
            )
        key = await plan.keys.key_for(candidate.provider) if plan.keys is not None else None
        request = dataclasses.replace(plan.request, model=candidate.model, api_key=key)
        try:
            stream = await _attempts(
                candidate, request, deps.retry, deps.first_token_timeout_s, event
            )
        except ProviderUnavailable as exc:
            last = exc
            continue
        answered = dataclasses.replace(
            plan,
            provider=candidate.provider,
            provider_name=candidate.provider.name,
            request=dataclasses.replace(plan.request, model=candidate.model),
        )
        if index:
            await attempt_rows.set_answering_model(
                deps.pool, plan.task_id, candidate.provider.name, candidate.model
            )
        return answered, stream
    assert last is not None
    raise last
