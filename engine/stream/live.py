"""Live delivery's pub/sub flavour: plain PUBLISH on one Redis, sharded pub/sub on a Redis
Cluster (SPUBLISH/SSUBSCRIBE), so that a task's records travel only to the shard that owns
the task's slot instead of to every node of the cluster.

Deployment-wide channels (cancels, revocations, run changes) stay on plain PUBLISH, which a
cluster forwards to every node."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster


def sharded(redis: Any) -> bool:
    """True for a Redis Cluster client or one of its pipelines."""
    return isinstance(redis, RedisCluster | ClusterPipeline)


def publish_live(target: Any, channel: str, record: str | bytes) -> Any:
    """Queue (on a pipeline) or send a record on a task's live channel."""
    if sharded(target):
        return target.spublish(channel, record)
    return target.publish(channel, record)
