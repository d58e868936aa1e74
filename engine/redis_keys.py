"""Every Redis key and channel of one deployment, under a common prefix: the one place that
names them (tests use it too).

On a Redis Cluster (REDIS_CLUSTER=1) a key's slot comes from the part of its name in braces
(its hash tag), and a transaction or a Lua script may only touch keys of one slot. So:
- a task's records and live channel carry the task id as their tag: `{<task id>}`;
- the hand-off between nodes (the job streams, the leases, and each task's job
  description, claim and cancel flag) shares the tag `{<prefix>jobs}`: the claim, lease
  renewal and sweep scripts touch leases and claims together (docs/deploy.md);
- a user's quota counters, running slots, connections and request ids carry the user id:
  `{u:<user id>}`.
Single-node Redis ignores the braces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID


@dataclass(frozen=True)
class RedisKeys:
    """Names of the deployment's Redis keys and channels."""

    prefix: str = "ps:"

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

    def jobs(self) -> str:
        """The job stream that workers read."""
        return f"{self.prefix}{{{self.prefix}jobs}}"

    def priority_jobs(self, priority: str) -> str:
        """The job stream of one priority: `jobs` (normal), `jobs:high` or `jobs:low`."""
        return self.jobs() if priority == "normal" else f"{self.jobs()}:{priority}"

    def leases(self) -> str:
        """Sorted set of running tasks by lease deadline."""
        return f"{self.jobs()}:leases"

    def job(self, task_id: UUID | str) -> str:
        """A task's job description, for whoever ends it."""
        return f"{self.jobs()}:job:{task_id}"

    def claim(self, task_id: UUID | str) -> str:
        """Who runs the task (set once)."""
        return f"{self.jobs()}:claim:{task_id}"

    def cancel_flag(self, task_id: UUID | str) -> str:
        """Set when a cancel was asked for a task running elsewhere."""
        return f"{self.jobs()}:cancel:{task_id}"

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
