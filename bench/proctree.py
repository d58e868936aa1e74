"""CPU seconds of a spawned server and every process under it, split by role."""

from __future__ import annotations

import psutil

# Processes under the server that are its embedded stores, not its own code.
_STORES = ("postgres", "redis")


def tree_cpu(pid: int) -> dict[str, float]:
    """{"server": its Python processes (workers included), "stores": embedded Postgres and
    Redis}, in CPU seconds so far; processes that are gone count nothing."""
    out = {"server": 0.0, "stores": 0.0}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in procs:
        try:
            name = proc.name().lower()
            times = proc.cpu_times()
        except psutil.Error:
            continue
        role = "stores" if any(s in name for s in _STORES) else "server"
        out[role] += times.user + times.system
    return out
