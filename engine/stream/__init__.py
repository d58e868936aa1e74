"""Chunks on their way: Redis keys and records, coalescing, publishing, the relay to subscribers."""
