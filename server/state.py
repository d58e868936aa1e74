"""Typed keys of the aiohttp application state."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
import socketio
from aiohttp import web

from engine.cluster.node import ClusterNode
from engine.metrics import Metrics
from engine.settings import Settings
from engine.stream.relay import Relay
from engine.tasks.service import Engine

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
ENGINE = web.AppKey("engine", Engine)
RELAY = web.AppKey("relay", Relay)
METRICS = web.AppKey("metrics", Metrics)
NODE = web.AppKey("node", ClusterNode)
SIO = web.AppKey("sio", socketio.AsyncServer)
