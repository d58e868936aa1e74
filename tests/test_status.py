"""A task's status has one set of names: the enum, the table's check, the protocol schema
and the TypeScript types agree."""

from __future__ import annotations

import re
from pathlib import Path

from engine.protocol import responses
from engine.status import ENDED, LIVE, TaskStatus

ROOT = Path(__file__).resolve().parents[1]


def test_sql_check_lists_exactly_the_enum() -> None:
    schema = (ROOT / "sql" / "001_schema.sql").read_text()
    table = schema[schema.index("CREATE TABLE ai_tasks") :]
    names = re.search(r"CHECK \(status IN \(([^)]*)\)\)", table)
    assert names is not None
    listed = [n.strip().strip("'") for n in names.group(1).split(",")]
    assert listed == [s.value for s in TaskStatus]


def test_live_and_ended_split_the_statuses() -> None:
    assert LIVE | ENDED == set(TaskStatus) and not LIVE & ENDED


def test_protocol_schema_and_typescript_use_the_enum() -> None:
    schema = responses.TaskView.model_json_schema()
    assert schema["$defs"]["TaskStatus"]["enum"] == [s.value for s in TaskStatus]
    types = (ROOT / "clients" / "typescript" / "protocol.d.ts").read_text()
    union = " | ".join(f'"{s.value}"' for s in TaskStatus)
    assert union in types
