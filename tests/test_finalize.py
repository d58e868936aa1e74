"""The one finalize: what Postgres stores and what subscribers receive come from the same
`TaskEnd`, whoever ends the task; history folding; whose fault an error code is."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from engine.errors import ServiceUnavailable, StreamTimeout, fault_of
from engine.protocol.responses import TaskDone
from engine.stream.history import fold
from engine.tasks.finalize import TaskEnd, error_payload, task_event
from engine.usage import Usage


def _end(**over: object) -> TaskEnd:
    fields: dict[str, object] = {
        "task_id": str(uuid4()),
        "run_id": uuid4(),
        "status": "failed",
        "finish_reason": "error",
        "text": "partial answ",
        "last_seq": 3,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "usage": Usage(12, 4),
        "cost": Decimal("0.000120"),
        "latency_ms": 850,
        "ttft_ms": 120,
        "error": error_payload(StreamTimeout("no next token from the provider in time")),
        "events": [task_event("error", "boom", "error", code="timeout")],
    }
    fields.update(over)
    return TaskEnd(**fields)  # type: ignore[arg-type]


def test_outcome_and_task_done_say_the_same() -> None:
    end = _end()
    outcome, done = end.outcome(), end.payload()
    TaskDone.model_validate(done)  # the payload keeps to the protocol's model
    assert (outcome.status, outcome.text, outcome.last_seq) == ("failed", "partial answ", 3)
    assert done["status"] == outcome.status and done["text"] == outcome.text
    assert done["last_seq"] == outcome.last_seq == 3
    assert done["usage"] == {
        "input_tokens": 12,
        "output_tokens": 4,
        "total_tokens": 16,
        "reasoning_tokens": 0,
    }
    assert (outcome.input_tokens, outcome.output_tokens) == (12, 4)
    assert done["cost_usd"] == "0.00012" and outcome.cost_usd == Decimal("0.000120")
    assert (
        done["error"]
        == outcome.error
        == {
            "code": "timeout",
            "message": "no next token from the provider in time",
            "retryable": True,
        }
    )
    assert done["validation"] == {"status": "skipped", "errors": []}
    assert outcome.validation_status == "skipped"


def test_an_unpriced_task_has_no_cost_rather_than_zero() -> None:
    done = _end(cost=None).payload()
    assert done["cost_usd"] is None


def test_fold_keeps_each_seq_once_in_order_and_sees_the_end() -> None:
    records = [
        ("c", {"task_id": "t", "seq": 1, "text": "Hel"}),
        ("c", {"task_id": "t", "seq": 2, "text": "lo"}),
        ("c", {"task_id": "t", "seq": 2, "text": "lo"}),  # a re-delivered record
        ("c", {"task_id": "t", "seq": 3, "text": "!"}),
    ]
    partial = fold(records)
    assert (partial.text, partial.last_seq, partial.ended) == ("Hello!", 3, False)
    assert fold([*records, ("d", {"status": "completed"})]).ended is True
    assert fold([]).text == "" and fold([]).last_seq == 0


def test_whose_fault_each_code_is() -> None:
    assert fault_of("provider_unavailable") == "provider"
    assert fault_of("timeout") == "provider"
    assert fault_of(ServiceUnavailable.code) == "service"
    assert fault_of("internal") == "internal"
    assert fault_of("invalid_request") == "client"
    assert fault_of("rate_limited") == "client"
