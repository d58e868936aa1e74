"""`serve` on every core: worker processes started, watched and stopped by the serve process.

With `LOCAL_WORKERS` above 0, `promptrelay serve` runs as a gateway (Socket.IO, HTTP, the
playground) and starts that many `promptrelay worker` subprocesses on the same Postgres and
Redis (the embedded ones included). Tasks reach them through the Redis job stream, as in a
deployment of separate gateways and workers (docs/deploy.md).

- Each worker runs in its own session, so a Ctrl-C in the terminal reaches only the serve
  process, which forwards the stop: the first signal starts the workers' graceful drain
  while the gateway still relays their chunks, a second one cuts their grace short.
- Each worker watches the serve process's pid and stops by itself if serve vanishes
  (even after SIGKILL), so no worker outlives it.
- A worker that exits on its own is restarted (with a growing delay if it keeps failing);
  the tasks it was running are ended by the lease sweeper, as when any worker crashes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from aiohttp import web

from engine.settings import Settings
from server.process.signals import SHUTDOWN_SIGNALS

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
RESTART_DELAY_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a worker that ran this long restarts at once after a crash
KILL_AFTER_EXTRA_S = 15.0  # beyond the shutdown grace, before a worker is killed
READY_TIMEOUT_S = 120.0
PARENT_WATCH = web.AppKey("parent_watch", asyncio.Task[None])


def worker_count(settings: Settings) -> int:
    """How many local workers `serve` starts: LOCAL_WORKERS, or one per core for -1."""
    if settings.local_workers >= 0:
        return settings.local_workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Slot:
    """One local worker: its current process and its restart history."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.started_at = 0.0
        self.restart_delay_s = 0.0
        self.restart_at = 0.0


class LocalWorkers:
    """`count` worker subprocesses of `settings` (whose DATABASE_URL and REDIS_URL are set)."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.slots = [_Slot(i) for i in range(count)]
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def _env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        assert self.settings.database_url and self.settings.redis_url
        env["DATABASE_URL"] = self.settings.database_url
        env["REDIS_URL"] = self.settings.redis_url
        env["LOCAL_WORKERS"] = "0"
        env["PYTHONUNBUFFERED"] = "1"
        base = self.settings.node_id
        env.pop("NODE_ID", None)  # each worker is its own consumer in the job stream
        if base:
            env["NODE_ID"] = f"{base}-w{index}"
        return env

    def _spawn(self, slot: _Slot) -> None:
        slot.port = _free_port()  # a fresh one on each start: a restart never meets a stale bind
        args = ["worker", "--host", "127.0.0.1", "--port", str(slot.port)]
        slot.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args, "--parent-pid", str(os.getpid())],
            env=self._env(slot.index),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # its "listening" line is not serve's; logs go to stderr
            start_new_session=True,  # terminal signals reach serve only, which forwards them
        )
        slot.started_at = time.monotonic()

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self._watcher = threading.Thread(target=self._watch, name="local-workers", daemon=True)
        self._watcher.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [s.proc.pid for s in self.slots if s.proc is not None]

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every worker answers `/readyz`; False if one did not in time."""
        deadline = time.monotonic() + timeout_s
        for slot in self.slots:
            while not self._stopping.is_set():
                if _answers(f"http://127.0.0.1:{slot.port}/readyz"):
                    break
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
        return True

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL_S):
            with self._lock:
                if self._stopping.is_set():
                    return
                for slot in self.slots:
                    self._check(slot)

    def _check(self, slot: _Slot) -> None:
        assert slot.proc is not None
        now = time.monotonic()
        if slot.restart_at:
            if now >= slot.restart_at:
                slot.restart_at = 0.0
                self.restarts += 1
                self._spawn(slot)
            return
        code = slot.proc.poll()
        if code is None:
            return
        if now - slot.started_at >= STABLE_AFTER_S:
            slot.restart_delay_s = 0.0
        else:  # failing again soon after a start: back off
            slot.restart_delay_s = min(RESTART_DELAY_MAX_S, max(1.0, slot.restart_delay_s * 2))
        log.warning(
            "local worker %d (pid %d) exited with %s; restarting in %.0f s "
            "(its tasks are ended by the lease sweeper)",
            slot.index,
            slot.proc.pid,
            code,
            slot.restart_delay_s,
        )
        slot.restart_at = now + slot.restart_delay_s

    def _signal_all(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        """Stop restarting and start every worker's graceful drain (SIGTERM, in order), once:
        a second SIGTERM would cut their grace short (`hurry`)."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        self._signal_all()

    def hurry(self) -> None:
        """A second SIGTERM: the workers end their running tasks at once."""
        self._signal_all()

    def wait(self, timeout_s: float) -> None:
        """Wait for every worker to exit, in order; kill the ones still there at the end."""
        self.terminate()
        deadline = time.monotonic() + timeout_s
        for slot in self.slots:
            if slot.proc is None:
                continue
            try:
                slot.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("local worker %d did not stop in time; killing it", slot.index)
                slot.proc.kill()
                slot.proc.wait()
        if self._watcher is not None:
            self._watcher.join(WATCH_INTERVAL_S * 4)

    def stop_timeout_s(self) -> float:
        return self.settings.shutdown_grace_s + KILL_AFTER_EXTRA_S


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def attach(app: web.Application, workers: LocalWorkers) -> None:
    """Tie `workers` to the gateway `app` of `serve`: it listens once they are ready; on the
    first stop signal they start draining with it, a second one hurries them too, and the
    gateway's shutdown waits for them (so it still relays their last chunks)."""

    async def ready(app: web.Application) -> None:
        signals = app.get(SHUTDOWN_SIGNALS)
        if signals is not None:
            signals.on_hurry(workers.hurry)
        if not await asyncio.to_thread(workers.wait_ready, READY_TIMEOUT_S):
            log.warning("a local worker is not ready yet; its share of tasks waits for it")

    async def drain(app: web.Application) -> None:
        workers.terminate()

    async def stopped(app: web.Application) -> None:
        await asyncio.to_thread(workers.wait, workers.stop_timeout_s())

    app.on_startup.append(ready)
    app.on_shutdown.insert(0, drain)
    app.on_shutdown.append(stopped)


def watch_parent(app: web.Application, parent_pid: int) -> None:
    """A local worker stops by itself (SIGTERM to itself, a graceful drain) once the serve
    process that started it is gone."""

    async def watch() -> None:
        while os.getppid() == parent_pid:
            await asyncio.sleep(WATCH_INTERVAL_S)
        log.warning("the serve process %d is gone; stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    async def start(app: web.Application) -> None:
        app[PARENT_WATCH] = asyncio.create_task(watch(), name="parent-watch")

    async def cancel(app: web.Application) -> None:
        app[PARENT_WATCH].cancel()

    app.on_startup.append(start)
    app.on_cleanup.append(cancel)
