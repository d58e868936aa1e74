"""Tool steps (docs/tools.md): a task whose answer asks for tools records its continuation,
the next model call of the same conversation; the continuation waits for every call's
result, then calls the model with them. A client's result is recorded at most once.

The continuation is an ordinary task (its own row, lease, runner, stream and `task_done`),
created before the asking task's `task_done` names it, so that its subscribers can follow
at once; it is handed over to run right after that `task_done`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from db import tasks as task_rows
from db import tool_steps
from db.users import User
from engine.errors import InvalidRequest, NotFound, PromptrelayError, ToolResultTimeout
from engine.protocol.tools import ToolResultRequest
from engine.providers.toolcalls import assistant_message, tool_message
from engine.status import ENDED
from engine.tasks.finalize import task_event
from engine.tasks.plan import RunnerDeps, TaskPlan

log = logging.getLogger(__name__)

_POLL_FIRST_S = 0.05
_POLL_MAX_S = 0.25


@dataclass(frozen=True)
class StepEnd:
    """What a task whose answer asked for tools ends with."""

    run_messages: list[dict[str, Any]]
    continuation: TaskPlan | None  # to hand over once the asking task's task_done is out
    error: InvalidRequest | None = None  # max_steps reached


async def end_step(
    deps: RunnerDeps,
    plan: TaskPlan,
    text: str,
    calls: list[dict[str, Any]],
    thinking: list[dict[str, Any]] | None = None,
) -> StepEnd:
    """The asking task's run messages and its continuation (recorded, not yet running), or
    the max_steps error when this step was the last allowed; no continuation when the client
    continues the conversation itself (`tool_steps: "client"`). The provider's `thinking`
    blocks stay with the asking turn, so the continuation sends them back."""
    asked = assistant_message(text, calls, thinking)
    run_messages = [*plan.new_messages, asked]
    if plan.request.settings.get("tool_steps") == "client":
        return StepEnd(run_messages, None)  # the client's next execute carries the results
    max_steps = int(plan.request.settings.get("max_steps") or deps.max_tool_steps)
    if plan.step >= max_steps:
        error = InvalidRequest(
            f"max_steps ({max_steps}) reached: the model asked for tools again at step {plan.step}"
        )
        return StepEnd(run_messages, None, error)
    if deps.continue_task is None:
        return StepEnd(run_messages, None)
    next_id = uuid.uuid4()
    messages = [*plan.request.messages, asked]
    request = {
        "model": f"{plan.provider_name}/{plan.request.model}",
        "messages": messages,
        "settings": plan.request.settings,
    }
    wait = task_event("tool_wait", f"waits for {len(calls)} tool result(s)", calls=len(calls))
    row = task_rows.NewTask(
        task_id=next_id,
        user_id=plan.user_id,
        provider=plan.provider_name,
        model=plan.request.model,
        request=request,
        run_id=plan.run_id,
        priority=plan.priority,
        parent_task_id=plan.task_id,
        step=plan.step + 1,
        events=[wait],
    )
    try:
        await task_rows.create_task(deps.pool, row)
    except asyncpg.ForeignKeyViolationError:  # the run was deleted meanwhile
        return StepEnd(run_messages, None)
    continuation = dataclasses.replace(
        plan,
        task_id=next_id,
        request=dataclasses.replace(plan.request, messages=messages),
        new_messages=[],
        reservation=None,  # one conversation takes one quota unit and slot: max_steps bounds it
        parent_task_id=plan.task_id,
        step=plan.step + 1,
    )
    return StepEnd(run_messages, continuation)


async def hand_over(deps: RunnerDeps, continuation: TaskPlan | None) -> None:
    """Have the continuation run (its dispatch ends it `failed` when it cannot)."""
    if continuation is None or deps.continue_task is None:
        return
    try:
        await deps.continue_task(continuation)
    except PromptrelayError:  # the dispatch recorded the failure on the task
        log.warning("continuation %s was not handed over", continuation.task_id)


async def await_results(deps: RunnerDeps, plan: TaskPlan) -> TaskPlan:
    """Wait until every call of the parent's step has its result; the plan then sends them.
    Raises ToolResultTimeout after TOOL_RESULT_TIMEOUT_S."""
    assert plan.parent_task_id is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.tool_result_timeout_s
    delay = _POLL_FIRST_S
    while True:
        calls, results = await tool_steps.tool_state(deps.pool, plan.parent_task_id)
        if calls and all(c["id"] in results for c in calls):
            break
        if loop.time() >= deadline:
            missing = [c["id"] for c in calls if c["id"] not in results]
            raise ToolResultTimeout(
                f"no result for {len(missing)} tool call(s) within "
                f"{deps.tool_result_timeout_s:g} s",
                details={"missing": missing},
            )
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 2, _POLL_MAX_S)
    answers = [tool_message(c, results[c["id"]]) for c in calls]
    request = dataclasses.replace(plan.request, messages=[*plan.request.messages, *answers])
    return dataclasses.replace(plan, request=request, new_messages=answers)


async def add_result(pool: asyncpg.Pool, user: User, req: ToolResultRequest) -> dict[str, Any]:
    """Record the caller's result for one call; the answer says which calls still wait.

    Another user's task is `not_found`; a call the task did not ask for, one answered
    already, or a step whose continuation has ended is `invalid_request` (field `call_id`)."""
    row = await task_rows.get_task(pool, req.task_id, user.id)
    if row is None:
        raise NotFound("task not found")
    calls: list[dict[str, Any]] = row["tool_calls"] or []
    if req.call_id not in {c["id"] for c in calls}:
        raise _bad_call("the task asked for no call with this id")
    next_id = row["next_task_id"]
    if next_id is not None:
        follow = await task_rows.get_task(pool, next_id, user.id)
        if follow is not None and follow["status"] in ENDED:
            raise _bad_call(f"the step has ended (the continuation is {follow['status']})")
    results = await tool_steps.add_tool_result(pool, req.task_id, user.id, req.call_id, req.output)
    if results is None:
        raise _bad_call("this call has a result already")
    return {
        "task_id": str(req.task_id),
        "call_id": req.call_id,
        "next_task_id": str(next_id) if next_id else None,
        "pending": [c["id"] for c in calls if c["id"] not in results],
    }


def _bad_call(message: str) -> InvalidRequest:
    return InvalidRequest(message, details={"errors": [{"field": "call_id", "message": message}]})
