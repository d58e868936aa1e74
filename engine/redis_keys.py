"""Every Redis key and channel of one deployment, under a common prefix: the one place that
names them (tests use it too).

On a Redis Cluster (REDIS_CLUSTER=1) a key's slot comes from the part of its name in braces
(its hash tag), and a transaction or a Lua script may only touch keys of one slot. So:
- a task's records and live channel carry the task id as their tag: `{<task id>}`;
- the hand-off between nodes is split into `job_partitions` partitions (JOB_PARTITIONS), each
  under its own tag `{<prefix>jobs:<n>}`: its job streams (one per priority), its lease set,
  and the job description, claim and cancel flag of each task whose id hashes to it; the
  claim, lease renewal and sweep scripts touch a partition's leases and claims together
  (docs/deploy.md). The single queue of earlier versions (tag `{<prefix>jobs}`) is named
  too, for the workers that drain it after an upgrade;
- a user's quota counters, running slots, connections and request ids carry the user id:
  `{u:<user id>}`.
Single-node Redis ignores the braces.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date
from uuid import UUID

DEFAULT_JOB_PARTITIONS = 16
PRIORITIES = ("high", "normal", "low")  # highest first (engine/cluster/priority.py)


@dataclass(frozen=True)
class JobKeys:
    """Names of one partition of the job queue, all under one hash tag: `base` is the
    normal-priority stream, and every other name extends it."""

    base: str

    def stream(self, priority: str) -> str:
        """The job stream of one priority: `base` (normal), `base:high` or `base:low`."""
        return self.base if priority == "normal" else f"{self.base}:{priority}"

    def streams(self) -> list[str]:
        """The streams of every priority, highest first."""
        return [self.stream(p) for p in PRIORITIES]

    def leases(self) -> str:
        """Sorted set of the partition's running tasks by lease deadline."""
        return f"{self.base}:leases"

    def job(self, task_id: UUID | str) -> str:
        """A task's job description, for whoever ends it."""
        return f"{self.base}:job:{task_id}"

    def claim(self, task_id: UUID | str) -> str:
        """Who runs the task (set once)."""
        return f"{self.base}:claim:{task_id}"

    def cancel_flag(self, task_id: UUID | str) -> str:
        """Set when a cancel was asked for a task running elsewhere."""
        return f"{self.base}:cancel:{task_id}"


def partition_of(task_id: UUID | str, partitions: int) -> int:
    """The job-queue partition of a task: a stable hash of its id (the same on every node)."""
    return zlib.crc32(str(task_id).encode()) % partitions


@dataclass(frozen=True)
class RedisKeys:
    """Names of the deployment's Redis keys and channels."""

    prefix: str = "ps:"
    job_partitions: int = DEFAULT_JOB_PARTITIONS  # JOB_PARTITIONS: the same on every node

    @staticmethod
    def _user(user_id: UUID | str) -> str:
        """The hash tag of a user's keys."""
        return f"{{u:{user_id}}}"

    # --- a task's records (engine/stream) -------------------------------------------------
    def history(self, task_id: UUID | str) -> str:
        """Capped stream with every chunk of a task, then its terminal record."""
        return f"{self.prefix}h:{{{task_id}}}"

    def live(self, task_id: UUID | str) -> str:
        """Pub/sub channel with the same records, for live delivery."""
        return f"{self.prefix}l:{{{task_id}}}"

    def probe_channel(self, token: str) -> str:
        """A relay's own channel, to check its pub/sub connection still delivers."""
        return f"{self.prefix}probe:{token}"

    def publisher_marker(self, token: str) -> str:
        """A publisher's own key: gone means Redis lost its data (histories are rewritten)."""
        return f"{self.prefix}publisher:{token}"

    # --- tasks and their hand-off (engine/tasks, engine/cluster) --------------------------
    def cancel_channel(self) -> str:
        """Pub/sub channel of cancels for tasks running on another node."""
        return f"{self.prefix}cancel"

    def idempotency(self, user_id: UUID, request_id: str) -> str:
        """An execute's `request_id`: the task it started (24 h)."""
        return f"{self.prefix}idem:{self._user(user_id)}:{request_id}"

    def parked_finalizes(self) -> str:
        """Hash of finalizes waiting for Postgres to come back."""
        return f"{self.prefix}finalize"

    def job_partition(self, partition: int) -> JobKeys:
        """One partition of the job queue (0 to job_partitions - 1)."""
        return JobKeys(f"{self.prefix}{{{self.prefix}jobs:{partition}}}")

    def job_partition_list(self) -> list[JobKeys]:
        return [self.job_partition(n) for n in range(self.job_partitions)]

    def legacy_jobs(self) -> JobKeys:
        """The single job queue of versions before partitions, drained after an upgrade."""
        return JobKeys(f"{self.prefix}{{{self.prefix}jobs}}")

    def jobs_ready_channel(self) -> str:
        """Pub/sub channel a gateway rings with the partition of each job it queued."""
        return f"{self.prefix}jobs:ready"

    def jobs_of(self, task_id: UUID | str) -> JobKeys:
        """The partition a task is queued, claimed and leased in."""
        return self.job_partition(partition_of(task_id, self.job_partitions))

    def job(self, task_id: UUID | str) -> str:
        """A task's job description, for whoever ends it."""
        return self.jobs_of(task_id).job(task_id)

    def claim(self, task_id: UUID | str) -> str:
        """Who runs the task (set once)."""
        return self.jobs_of(task_id).claim(task_id)

    def cancel_flag(self, task_id: UUID | str) -> str:
        """Set when a cancel was asked for a task running elsewhere."""
        return self.jobs_of(task_id).cancel_flag(task_id)

    # --- accounts (engine/accounts) -------------------------------------------------------
    def quota_day(self, user_id: UUID | str, day: date | str) -> str:
        """The user's tasks of one UTC day (`*` for a SCAN pattern)."""
        return f"{self.prefix}q:{self._user(user_id)}:d:{day}"

    def quota_month(self, user_id: UUID | str, month: str) -> str:
        """The user's tasks of one month (`YYYY-MM`)."""
        return f"{self.prefix}q:{self._user(user_id)}:m:{month}"

    def running_slots(self, user_id: UUID | str) -> str:
        """The user's running tasks, for the concurrency cap."""
        return f"{self.prefix}q:{self._user(user_id)}:run"

    def connections(self, user_id: UUID | str) -> str:
        """Sorted set of the user's open connections over every node."""
        return f"{self.prefix}conn:{self._user(user_id)}"

    def runs_changed_channel(self) -> str:
        """Pub/sub channel of run changes: `{user_id, run_id, change, run}` JSON."""
        return f"{self.prefix}runs_changed"

    def revoked_channel(self) -> str:
        """Pub/sub channel of revoked keys and deleted users: `{user_id?, key_id?}` JSON."""
        return f"{self.prefix}auth:revoked"

    def http_rate(self, subject: str, window: int) -> str:
        """Requests of a user (`u:{id}`) or an address (`a:{ip}`) in one minute's window."""
        return f"{self.prefix}rl:{subject}:{window}"
