"""The embedded Postgres and Redis of `promptrelay serve` across an unclean exit: after
`kill -9`, the next start adopts what the killed run left, and every clean stop stops
them; no process is left behind."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.faults import leftovers, spawn_serve, stop_quietly
from tests.nodes import Node


async def _serve(data_dir: Path, log: Path) -> Node:
    node = spawn_serve(data_dir, log)
    await node.wait_ready()
    return node


@pytest.mark.timeout(300)
async def test_after_kill_9_two_clean_cycles_leave_no_process_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    node = await _serve(data_dir, tmp_path / "killed.log")
    try:
        node.kill()  # SIGKILL: no cleanup of any kind runs
        assert len(leftovers(data_dir)) == 2, "expected Postgres and Redis orphaned by kill -9"
        for cycle in (1, 2):
            log = tmp_path / f"cycle{cycle}.log"
            node = await _serve(data_dir, log)
            node.proc.send_signal(signal.SIGINT)
            assert await node.wait_exit(60) == 0, node.log()
            assert leftovers(data_dir) == [], f"left running after stop {cycle}:\n{node.log()}"
    finally:
        await stop_quietly(node, data_dir)
