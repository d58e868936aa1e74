"""A real Redis Cluster for the tests: three masters with one replica each on loopback
ports, in a temporary directory, started once per session when PROMPTRELAY_TEST_REDIS=cluster
(tests/conftest.py). Needs redis-server 7 (Debian's `redis-server` package; `.ci/run`
installs it): sharded pub/sub came with 7.0."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MASTERS = 3
NODES = MASTERS * 2  # one replica each


def _version(executable: str) -> int:
    out = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", out)
    return int(found.group(1)) if found else 0


def find_executables() -> tuple[str, str] | None:
    """(redis-server, redis-cli) of release 7 or later, or None."""
    for folder in ("/usr/bin", "/usr/local/bin", *os.environ.get("PATH", "").split(":")):
        server, cli = Path(folder) / "redis-server", Path(folder) / "redis-cli"
        if server.exists() and cli.exists() and _version(str(server)) >= 7:
            return str(server), str(cli)
    return None


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports() -> list[int]:
    """NODES ports whose cluster bus port (port + 10000) is free too."""
    while True:
        base = random.randrange(20000, 29000, 10)
        ports = list(range(base, base + NODES))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports


class RedisClusterProcesses:
    """Six redis-server processes joined into one cluster."""

    def __init__(self, root: Path) -> None:
        found = find_executables()
        if found is None:
            raise RuntimeError("redis-server 7 is needed: apt-get install -y redis-server")
        self.server, self.cli = found
        self.root = root
        self.ports = _ports()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        for port in self.ports:
            self._launch(port)
        for port in self.ports:
            self._wait_ping(port)
        hosts = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [self.cli, "--cluster", "create", *hosts, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()

    def _launch(self, port: int) -> None:
        folder = self.root / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                self.server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / "nodes.conf"),
                "--cluster-node-timeout", "2000",
                # a replica syncs at once (not after the default 5 s): one that has never
                # synced refuses to take over from its master
                "--repl-diskless-sync-delay", "0",
                "--appendonly", "no",
                "--save", "",
                "--dir", str(folder),
                "--logfile", str(folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _cli(self, port: int, *args: str) -> str:
        done = subprocess.run(
            [self.cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout

    def _wait_ping(self, port: int) -> None:
        deadline = time.monotonic() + 20
        while self._cli(port, "ping").strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start")
            time.sleep(0.05)

    def wait_ok(self, timeout_s: float = 60) -> None:
        """Until every live node says the cluster is ok and covers all slots, and every
        live replica has synced with its master (a replica that never has cannot take its
        master's place: a test that kills a master needs this)."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [p for p, proc in self.procs.items() if proc.poll() is None]
            if all(self._ready(p) for p in alive):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become ok")
            time.sleep(0.2)

    def _ready(self, port: int) -> bool:
        if "cluster_state:ok" not in self._cli(port, "cluster", "info"):
            return False
        replication = self._cli(port, "info", "replication")
        if "role:slave" in replication:
            return "master_link_status:up" in replication
        # a master: ready once `cluster create` has given it its replica
        return "connected_slaves:0" not in replication or self._alone(port)

    def _alone(self, port: int) -> bool:
        """Whether this master has no replica in the cluster (its replica was killed)."""
        me = self._cli(port, "cluster", "myid").strip()
        nodes = self._cli(port, "cluster", "nodes").splitlines()
        return not any(line.split()[3] == me and "fail" not in line.split()[2] for line in nodes)

    def masters(self) -> list[int]:
        """Ports of the live masters."""
        out = []
        for port, proc in self.procs.items():
            if proc.poll() is None and "role:master" in self._cli(port, "info", "replication"):
                out.append(port)
        return out

    def owner(self, slot: int) -> int:
        """Port of the master that serves a slot."""
        for line in self._cli(self.masters()[0], "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for span in fields[8:]:
                if span.startswith("["):  # a slot being moved: `[slot->-node]`
                    continue
                low, _, high = span.partition("-")
                if int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
        raise RuntimeError(f"no master serves slot {slot}")

    def start_migration(self, slot: int, target: int) -> tuple[int, dict[int, str]]:
        """SETSLOT IMPORTING on the target and MIGRATING on the source; (source, node ids)."""
        source = self.owner(slot)
        ids = {p: self._cli(p, "cluster", "myid").strip() for p in (source, target)}
        self._ok(target, "cluster", "setslot", str(slot), "importing", ids[source])
        self._ok(source, "cluster", "setslot", str(slot), "migrating", ids[target])
        return source, ids

    def move_keys(self, source: int, target: int, *keys: str) -> None:
        self._ok(source, "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *keys)

    def end_migration(self, slot: int, source: int, target: int, ids: dict[int, str]) -> None:
        """Move the slot's remaining keys, then SETSLOT NODE on every master."""
        while keys := self._cli(source, "cluster", "getkeysinslot", str(slot), "100").split():
            self.move_keys(source, target, *keys)
        for port in (target, source, *(p for p in self.masters() if p not in (source, target))):
            self._ok(port, "cluster", "setslot", str(slot), "node", ids[target])

    def migrate_slot(self, slot: int, target: int, pause_s: float = 0.0) -> int:
        """Move a slot to the master on port `target` the way `redis-cli --cluster reshard`
        does (SETSLOT IMPORTING/MIGRATING, MIGRATE ... KEYS, SETSLOT NODE), one key at a
        time with `pause_s` between keys and before the end, so that clients meet ASK and
        TRYAGAIN meanwhile. Returns how many keys moved."""
        source, ids = self.start_migration(slot, target)
        moved = 0
        while keys := self._cli(source, "cluster", "getkeysinslot", str(slot), "1").split():
            self.move_keys(source, target, *keys)
            moved += len(keys)
            time.sleep(pause_s)
        time.sleep(pause_s)  # new keys of the slot are made on the target meanwhile (ASK)
        self.end_migration(slot, source, target, ids)
        return moved

    def errors(self) -> dict[str, int]:
        """Error replies every live node has sent so far, by kind (`ASK`, `TRYAGAIN`...)."""
        total: dict[str, int] = {}
        for port, proc in self.procs.items():
            if proc.poll() is not None:
                continue
            for line in self._cli(port, "info", "errorstats").splitlines():
                found = re.match(r"errorstat_(\w+):count=(\d+)", line)
                if found:
                    total[found[1]] = total.get(found[1], 0) + int(found[2])
        return total

    def _ok(self, port: int, *args: str) -> None:
        out = self._cli(port, *args).strip()
        if out not in ("OK", "NOKEY"):
            raise RuntimeError(f"{' '.join(args)} on {port}: {out}")

    def kill(self, port: int) -> None:
        """`kill -9` one node."""
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again (it rejoins as a replica of its promoted replica)."""
        self._launch(port)
        self._wait_ping(port)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
