"""The engine's entry points: execute, cancel, and the read views of tasks and runs."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from db import runs as run_rows
from db import tasks as task_rows
from db.users import User
from engine.accounts.byok import ProviderKeys
from engine.accounts.quotas import Claim, Held
from engine.agents.runs import resolve_execute, tools_of, turn_messages
from engine.errors import InvalidRequest, NotFound
from engine.protocol.formats import format_validations
from engine.protocol.requests import ExecuteRequest
from engine.protocol.tools import ToolResultRequest, tool_settings
from engine.providers.base import Provider, ProviderRequest
from engine.providers.registry import ProviderRegistry
from engine.settings import Settings
from engine.status import ENDED, TaskStatus
from engine.tasks.context import fit_messages, input_budget, known_window
from engine.tasks.conversations import Conversations, new_run_summary, run_cost
from engine.tasks.dispatch import Dispatcher
from engine.tasks.finalize import done_from_row
from engine.tasks.limits import check_output_limit, check_request_limits
from engine.tasks.plan import RunnerDeps, TaskPlan
from engine.tasks.retries import resolve_fallbacks
from engine.tasks.runs_feed import announce, title_from
from engine.tasks.supervisor import TaskSupervisor
from engine.tasks.toolsteps import add_result
from engine.tasks.turns import start_turn


@dataclass(frozen=True)
class ExecuteResult:
    task_id: UUID
    run_id: UUID | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": str(self.task_id),
            "run_id": str(self.run_id) if self.run_id else None,
            "status": self.status,
        }


class Engine:
    """Executes requests on this node and answers questions about tasks and runs."""

    def __init__(
        self,
        settings: Settings,
        deps: RunnerDeps,
        registry: ProviderRegistry,
        supervisor: TaskSupervisor,
        provider_keys: ProviderKeys,
        dispatcher: Dispatcher,
    ) -> None:
        self.settings = settings
        self.deps = deps
        self.pool = deps.pool
        self.redis = deps.redis
        self.keys = deps.keys
        self.quotas = deps.quotas
        self.registry = registry
        self.supervisor = supervisor
        self.provider_keys = provider_keys
        self.dispatcher = dispatcher
        self.conversations = Conversations(self.pool, self.redis, self.keys, self.dispatcher)

    async def execute(self, user: User, req: ExecuteRequest) -> ExecuteResult:
        """Check and record the task, start it, and return its ids (idempotent by request_id)."""
        check_request_limits(req, self.settings)
        if req.request_id is not None:
            earlier = await self._earlier(user, req.request_id)
            if earlier is not None:
                return earlier
        prompt = await resolve_execute(self.pool, user.id, req)
        history: list[dict[str, str]] = []
        run_turns = None
        if req.run_id is not None:
            run = await run_rows.get_run(self.pool, req.run_id, user.id)
            if run is None:
                raise NotFound("run not found")
            history, run_turns = run["messages"], run["task_count"]
        model_ref = req.model or prompt.model or self.settings.resolved_default_model()
        provider, model = self.registry.resolve(model_ref)
        history, new_messages = turn_messages(prompt, history, [m.neutral() for m in req.messages])
        settings = req.settings.merged_over(prompt.settings)
        settings.update(
            tool_settings(
                tools_of(req, prompt),
                req.tool_choice,
                req.max_steps,
                self.settings.max_tool_steps,
                req.tool_steps,
            )
        )
        sent, trim_events = self._fit(provider.name, model, history, new_messages, settings)
        if len(sent) > self.settings.max_messages:
            raise InvalidRequest(
                f"at most {self.settings.max_messages} messages per call",
                details={"errors": [{"field": "messages", "message": "too many messages"}]},
            )
        check_output_limit(settings, user.tier, self.settings)
        fallbacks = resolve_fallbacks(self.registry, settings)
        _check_settings(((provider, model), *((f.provider, f.model) for f in fallbacks)), settings)
        tracked = req.track_in_runs
        run_id = (req.run_id or uuid.uuid4()) if tracked else None
        task_id = uuid.uuid4()
        claim = None
        if req.request_id is not None:
            claim = Claim(
                self.keys.idempotency(user.id, req.request_id),
                json.dumps({"task_id": str(task_id), "run_id": str(run_id) if run_id else None}),
                self.settings.idempotency_ttl_s,
            )
        row = task_rows.NewTask(
            task_id=task_id,
            user_id=user.id,
            provider=provider.name,
            model=model,
            request={"model": model_ref, "messages": sent, "settings": settings},
            run_id=run_id,
            create_run=tracked and req.run_id is None,
            run_name=title_from(new_messages, prompt.name or ""),
            prompt_id=prompt.prompt_id,
            prompt_version=prompt.version,
            builtin=prompt.builtin,
            agent_id=prompt.agent_id,
            request_id=req.request_id,
            variable_values=prompt.variables,
            broker_values=req.broker_values,
            events=prompt.events() + trim_events,
            priority=priority_for(user, req),
            run_turns=run_turns if tracked else None,
        )
        reservation = None
        try:
            # The quota, the running slot and the request_id's claim: one script.
            reserved = await self.quotas.reserve_claiming(user.id, user.tier, str(task_id), claim)
            if isinstance(reserved, Held):  # an earlier request with this request_id
                return await self._held(user, reserved.value)
            reservation = reserved
            run_created = await start_turn(self.pool, row)
        except asyncpg.ForeignKeyViolationError:  # the run was deleted meanwhile
            await self._undo_claim(user, req, reservation)
            raise NotFound("run not found") from None
        except BaseException:
            if reservation is not None:  # else nothing was reserved, nor claimed
                await self._undo_claim(user, req, reservation)
            raise
        plan = TaskPlan(
            task_id=task_id,
            run_id=run_id,
            user_id=user.id,
            provider=provider,
            provider_name=provider.name,
            request=ProviderRequest(model=model, messages=sent, settings=settings),
            new_messages=new_messages,
            reservation=reservation,
            validations=prompt.validations + format_validations(settings),
            fallbacks=fallbacks,
            keys=self.provider_keys.source_for(user),
            priority=row.priority,
        )
        await self.dispatcher.dispatch(plan)
        if run_created is not None and run_id is not None:
            view = new_run_summary(run_id, row.run_name, run_created)
            await announce(self.redis, self.keys, user.id, run_id, "created", view)
        return ExecuteResult(task_id, run_id, TaskStatus.RUNNING)

    async def _undo_claim(self, user: User, req: ExecuteRequest, reservation: Any) -> None:
        await self.quotas.settle(reservation, give_back=True)
        if req.request_id is not None:
            await self.redis.delete(self.keys.idempotency(user.id, req.request_id))

    def _fit(
        self,
        provider: str,
        model: str,
        history: list[dict[str, str]],
        new: list[dict[str, str]],
        settings: dict[str, Any],
    ) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
        """The messages to send (the history trimmed to the context) and the task events
        that record what was left out."""
        budget = input_budget(
            known_window(provider, model),
            self.settings.max_context_tokens,
            settings.get("max_tokens"),
        )
        if not history:
            return new, []
        fitted = fit_messages(history, new, budget, self.settings.max_messages)
        if not fitted.trimmed:
            return fitted.messages, []
        event = {
            "kind": "context_trimmed",
            "message": f"{fitted.dropped_messages} earlier message(s) left out to fit",
            "metadata": {
                "dropped_messages": fitted.dropped_messages,
                "dropped_tokens_estimate": fitted.dropped_tokens,
                "kept_messages": len(fitted.messages),
                "budget_tokens": fitted.budget_tokens,
                "over_budget": fitted.over_budget,
            },
        }
        return fitted.messages, [event]

    async def _earlier(self, user: User, request_id: str) -> ExecuteResult | None:
        raw = await self.redis.get(self.keys.idempotency(user.id, request_id))
        if raw is not None:
            return await self._held(user, raw)
        row = await task_rows.find_by_request_id(self.pool, user.id, request_id)
        if row is not None:
            return ExecuteResult(row["task_id"], row["run_id"], row["status"])
        return None

    async def _held(self, user: User, raw: str | bytes) -> ExecuteResult:
        """The task an idempotency key holds (its row may not be written yet: running)."""
        ids = json.loads(raw)
        task_id = UUID(ids["task_id"])
        row = await task_rows.get_task(self.pool, task_id, user.id)
        status = row["status"] if row is not None else TaskStatus.RUNNING
        run_id = UUID(ids["run_id"]) if ids["run_id"] else None
        return ExecuteResult(task_id, run_id, status)

    async def tool_result(self, user: User, req: ToolResultRequest) -> dict[str, Any]:
        """Record the caller's result for one tool call (docs/tools.md)."""
        return await add_result(self.pool, user, req)

    async def cancel(self, user: User, task_id: UUID) -> str:
        """Cancel the caller's task; returns its status afterwards (final if it had ended)."""
        row = await task_rows.get_task(self.pool, task_id, user.id)
        if row is None:
            raise NotFound("task not found")
        if row["status"] in ENDED:
            return str(row["status"])
        if await self.dispatcher.cancel(str(task_id)):
            row = await task_rows.get_task(self.pool, task_id, user.id)
            assert row is not None
        return str(row["status"])

    async def task_status(self, user: User, task_id: UUID) -> str:
        """The status of the caller's task; NotFound for anyone else's."""
        row = await task_rows.get_task(self.pool, task_id, user.id)
        if row is None:
            raise NotFound("task not found")
        return str(row["status"])

    async def final_payload(self, task_id: str) -> dict[str, Any] | None:
        """`task_done` rebuilt from the database, for a task whose history has expired."""
        row = await task_rows.get_task_unscoped(self.pool, UUID(task_id))
        if row is None or row["status"] not in ENDED:
            return None
        return done_from_row(row)

    async def task_view(self, user: User, task_id: UUID) -> dict[str, Any]:
        row = await task_rows.get_task(self.pool, task_id, user.id)
        if row is None:
            raise NotFound("task not found")
        return task_view(row)

    async def task_events(self, user: User, task_id: UUID) -> list[dict[str, Any]]:
        """The task's execution log, oldest first."""
        await self.task_status(user, task_id)
        rows = await task_rows.list_events(self.pool, task_id, user.id)
        return [
            {
                "at": r["at"].isoformat(),
                "level": r["level"],
                "kind": r["kind"],
                "message": r["message"],
                "data": r["metadata"],
            }
            for r in rows
        ]

    async def run_view(self, user: User, run_id: UUID) -> dict[str, Any]:
        run = await run_rows.get_run(self.pool, run_id, user.id)
        if run is None:
            raise NotFound("run not found")
        tasks = await task_rows.list_run_tasks(self.pool, run_id)
        return {
            "id": str(run["id"]),
            "title": run["name"],
            "name": run["name"],
            "messages": run["messages"],
            "variable_values": run["variable_values"],
            "broker_values": run["broker_values"],
            "tasks": [task_view(t) for t in tasks],
            "usage": {
                "input_tokens": run["input_tokens"],
                "output_tokens": run["output_tokens"],
                "total_tokens": run["total_tokens"],
                "reasoning_tokens": run["reasoning_tokens"],
            },
            "cost_usd": run_cost(run),
            "unpriced_tasks": run["unpriced_tasks"],
            "task_count": run["task_count"],
            "created_at": run["created_at"].isoformat(),
            "updated_at": run["updated_at"].isoformat(),
        }


def priority_for(user: User, req: ExecuteRequest) -> str:
    """The request's priority, else the tier's default: `free` low, the others normal."""
    if req.priority is not None:
        return req.priority
    return "low" if user.tier == "free" else "normal"


def task_view(row: asyncpg.Record) -> dict[str, Any]:
    """`GET /v1/tasks/{id}` (docs/protocol.md)."""
    done = done_from_row(row)
    return {
        "id": done["task_id"],
        "run_id": done["run_id"],
        "status": row["status"],
        "provider": row["provider"],
        "model": row["model"],
        "request": row["request"],
        "text": row["response_text"],
        "reasoning": done["reasoning"],
        "usage": done["usage"],
        "usage_source": row["usage_source"],
        "cost_usd": done["cost_usd"],
        "ttft_ms": row["ttft_ms"],
        "latency_ms": row["latency_ms"],
        "finish_reason": row["finish_reason"],
        "validation": done["validation"],
        "error": row["error"],
        "last_seq": row["last_seq"],
        "prompt_id": str(row["prompt_id"]) if row["prompt_id"] else None,
        "prompt_version": row["prompt_version"],
        "builtin": row["builtin"],
        "priority": row["priority"],
        "created_at": row["created_at"].isoformat(),
        "ended_at": row["completed_at"].isoformat() if row["completed_at"] else None,
        "parent_task_id": str(row["parent_task_id"]) if row.get("parent_task_id") else None,
        "step": row.get("step") or 1,
        "tool_calls": row.get("tool_calls"),
        "tool_results": row.get("tool_results"),
        "next_task_id": str(row["next_task_id"]) if row.get("next_task_id") else None,
    }


def _check_settings(providers: tuple[tuple[Provider, str], ...], settings: dict[str, Any]) -> None:
    """Each model that may answer takes every setting given (else `invalid_request`)."""
    for provider, model in providers:
        provider.check_settings(settings, model)
