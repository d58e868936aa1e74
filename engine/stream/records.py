"""The encoding of a task's stream records: chunks, tool-call pieces, reasoning and the
terminal record."""

from __future__ import annotations

import json
from typing import Any

CHUNK = "c"
TOOL_CALL = "t"
REASONING = "r"
DONE = "d"
# The event each record kind is sent as.
EVENTS = {
    CHUNK: "task_chunk",
    TOOL_CALL: "task_tool_call",
    REASONING: "task_reasoning",
    DONE: "task_done",
}
# The kinds numbered in the task's one sequence (everything but the terminal record).
SEQUENCED = frozenset({CHUNK, TOOL_CALL, REASONING})

Record = tuple[str, dict[str, Any]]  # (kind, payload): the payload is what a client receives


def chunk_payload(task_id: str, seq: int, text: str) -> dict[str, Any]:
    """The `task_chunk` event."""
    return {"task_id": task_id, "seq": seq, "text": text}


def reasoning_payload(task_id: str, seq: int, text: str) -> dict[str, Any]:
    """The `task_reasoning` event: a piece of the model's reasoning, numbered in the same
    sequence as the chunks."""
    return {"task_id": task_id, "seq": seq, "text": text}


def tool_call_payload(
    task_id: str, seq: int, index: int, call_id: str, name: str, arguments: str
) -> dict[str, Any]:
    """The `task_tool_call` event: a piece of a tool call's argument text, numbered in the
    same sequence as the chunks."""
    return {
        "task_id": task_id,
        "seq": seq,
        "index": index,
        "call_id": call_id,
        "name": name,
        "arguments_delta": arguments,
    }


def encode_record(kind: str, payload: dict[str, Any]) -> str:
    """The stored and published form of a record: the payload with its kind under "k"."""
    return json.dumps({"k": kind, **payload}, separators=(",", ":"), ensure_ascii=False)


def encode_chunk(task_id: str, seq: int, text: str) -> str:
    return encode_record(CHUNK, chunk_payload(task_id, seq, text))


def encode_done(payload: dict[str, Any]) -> str:
    return encode_record(DONE, payload)


def decode_record(raw: str | bytes) -> Record:
    """(kind, payload) of a stream record; payload is what the client receives."""
    data: dict[str, Any] = json.loads(raw)
    kind = data.pop("k")
    return kind, data
