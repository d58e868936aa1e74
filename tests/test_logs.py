"""Structured logs: one JSON object per line, task and run ids on every line of a task."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from engine.tasks.tasklog import bind_task
from server.process.logs import JsonFormatter, configure_logging
from tests.conftest import Server, assert_intact


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every line logged during the test, as the server writes them (JSON)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def parsed(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_task_end_line_carries_ids_and_figures(
    server: Server, json_lines: io.StringIO
) -> None:
    client = await server.client(await server.new_key())
    ack = await client.call(
        "execute",
        {
            "messages": [{"role": "user", "content": "hi"}],
            "model": "simulated/x",
            "settings": {"max_tokens": 7, "tokens_per_second": 0},
        },
    )
    await client.wait_done(ack["task_id"])
    assert_intact(client, ack["task_id"])
    ended = [line for line in parsed(json_lines) if line.get("event") == "task_ended"]
    assert len(ended) == 1
    line = ended[0]
    assert line["task_id"] == ack["task_id"] and line["run_id"] == ack["run_id"]
    assert line["level"] == "INFO" and line["msg"] == "task ended"
    assert line["status"] == "completed" and line["output_tokens"] == 7
    assert line["provider"] == "simulated" and line["last_seq"] >= 1


async def test_ids_stay_with_their_own_task(json_lines: io.StringIO) -> None:
    log = logging.getLogger("promptrelay.test")

    async def task(n: int) -> None:
        bind_task(f"task-{n}", f"run-{n}")
        await asyncio.sleep(0)
        log.warning("working", extra={"n": n})

    await asyncio.gather(*(task(n) for n in range(3)))
    log.warning("outside")
    lines = parsed(json_lines)
    for line in lines[:3]:
        assert line["task_id"] == f"task-{line['n']}" and line["run_id"] == f"run-{line['n']}"
    assert lines[3]["msg"] == "outside" and "task_id" not in lines[3]


def test_exceptions_are_one_json_line() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    try:
        raise ValueError("bad")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    data = json.loads(text)
    assert data["msg"] == "boom now" and "ValueError: bad" in data["exc"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "fmt", "readable"),
    [
        (_Tty(), "auto", True),
        (io.StringIO(), "auto", False),
        (_Tty(), "json", False),
        (io.StringIO(), "text", True),
    ],
)
def test_text_on_a_terminal_json_otherwise(stream: io.StringIO, fmt: str, readable: bool) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def log_in_a_task() -> None:
        bind_task("t-1", None)
        logging.getLogger("promptrelay.test").warning("hello", extra={"code": "x"})
        logging.getLogger("promptrelay.test").info("not shown")

    try:
        configure_logging("warning", fmt, stream)
        assert root.level == logging.WARNING
        contextvars.copy_context().run(log_in_a_task)  # the ids do not leak into other tests
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "not shown" not in text
    if readable:
        assert "WARNING" in text and "hello  code=x task_id=t-1" in text
    else:
        data = json.loads(text)
        assert data["msg"] == "hello" and data["code"] == "x" and data["task_id"] == "t-1"
