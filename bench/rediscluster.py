"""`--redis cluster`: the spawned server on a local Redis Cluster, and the Redis commands a
run costs (INFO commandstats before and after) in either mode."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.upstream import fakes_root

# Commands the probe itself sends, not the server's work.
_OWN = ("cmdstat_info",)


def cluster_launcher() -> Any | None:
    """tests/redis_cluster.py's RedisClusterProcesses from the source checkout, or None."""
    root = fakes_root()
    if root is None:
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.redis_cluster import RedisClusterProcesses, find_executables

    return RedisClusterProcesses if find_executables() is not None else None


@contextlib.contextmanager
def local_cluster() -> Iterator[Any]:
    """Three masters with one replica each on loopback (as the tests' cluster), removed after."""
    launcher = cluster_launcher()
    if launcher is None:
        raise RuntimeError("--redis cluster needs a source checkout and redis-server 7")
    with tempfile.TemporaryDirectory(prefix="ps-bench-cluster-") as tmp:
        nodes = launcher(Path(tmp))
        nodes.start()
        try:
            yield nodes
        finally:
            nodes.stop()


def command_calls(urls: list[str]) -> dict[str, float]:
    """Commands served so far by these Redis servers (their masters' own count: a replica's
    copies of the writes are not the application's): `redis_calls` in all, and
    `redis:<command>` each; commands run by Lua scripts are counted too, as Redis does."""
    out: dict[str, float] = {"redis_calls": 0.0}
    for url in urls:
        client = redis.Redis.from_url(url)
        try:
            stats: dict[str, Any] = client.info("commandstats")
        finally:
            client.close()
        for name, value in stats.items():
            if name in _OWN:
                continue
            key = "redis:" + name.removeprefix("cmdstat_")
            out[key] = out.get(key, 0.0) + value["calls"]
            out["redis_calls"] += value["calls"]
    return out


def cluster_probe(nodes: Any) -> dict[str, float]:
    """Commands served by the cluster's masters, and CPU seconds of all its processes."""
    masters = [f"redis://127.0.0.1:{port}/0" for port in nodes.masters()]
    cpu = 0.0
    for proc in nodes.procs.values():
        try:
            times = psutil.Process(proc.pid).cpu_times()
        except psutil.Error:
            continue
        cpu += times.user + times.system
    return {**command_calls(masters), "redis_cluster_cpu": cpu}


def embedded_probe(data_dir: str) -> dict[str, float]:
    """Commands served by a spawned server's embedded Redis (under its data directory)."""
    return command_calls([f"unix://{data_dir}/redis/redis.sock"])
