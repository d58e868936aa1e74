"""One settings object, read once at start (environment or .env) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Where the embedded Postgres and Redis keep their data by default."""
    return Path(platformdirs.user_data_dir("promptrelay"))


# The default payload limit's room for everything of a request but its base64 images.
TEXT_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_IMAGES_TOTAL_BYTES = 20 * 1024 * 1024


def base64_size(decoded: int) -> int:
    """Characters of `decoded` bytes in base64 (with padding)."""
    return 4 * -(-decoded // 3)


def payload_room(images_total_bytes: int) -> int:
    """The default MAX_PAYLOAD_BYTES: the images' base64 and TEXT_PAYLOAD_BYTES besides."""
    return TEXT_PAYLOAD_BYTES + base64_size(images_total_bytes)


class Settings(BaseSettings):
    """Every knob of the server. Environment variables use the field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    promptrelay_data_dir: Path = Field(default_factory=default_data_dir)
    redis_prefix: str = "ps:"
    # REDIS_URL names any node of a Redis Cluster; the client finds the others
    # (docs/deploy.md, "Redis Cluster").
    redis_cluster: bool = False

    host: str = "127.0.0.1"
    port: int = 8080
    # Origins whose pages may call the HTTP API and open sockets: `*` or a comma-separated
    # list. Calls carry a bearer token the page attaches, never a cookie (docs/clients.md).
    cors_allowed_origins: str = "*"
    log_level: str = "INFO"

    # Socket.IO heartbeats (also how long an idle long-poll request is held)
    ping_interval_s: float = Field(25.0, gt=0)
    ping_timeout_s: float = Field(20.0, gt=0)

    # Streaming
    coalesce_ms: float = Field(20.0, ge=0, le=1000)
    history_ttl_s: int = Field(3600, ge=1)
    history_maxlen: int = Field(100_000, ge=100)
    first_token_timeout_s: float = Field(60.0, gt=0)
    idle_timeout_s: float = Field(30.0, gt=0)
    # Tool calling (docs/tools.md): how long a continuation waits for the results of its
    # step's calls, and the model calls one conversation may make (a request's max_steps
    # default; requests may ask for up to MAX_TOOL_STEPS_LIMIT)
    tool_result_timeout_s: float = Field(300.0, gt=0)
    max_tool_steps: int = Field(8, ge=1, le=64)
    # An SSE stream with nothing to send gets a `: keep-alive` comment this often, so proxies
    # and load balancers do not close it as idle.
    sse_keepalive_s: float = Field(15.0, gt=0)

    # Input limits. The payload limit applies first, to the whole event or body; unset, it
    # is MAX_IMAGES_TOTAL_BYTES in base64 plus TEXT_PAYLOAD_BYTES (29010604 with the default
    # image limits), so that a request within the image limits is never refused for its
    # size before they can name the image (docs/tenancy.md "Limits").
    max_payload_bytes: int = Field(payload_room(DEFAULT_IMAGES_TOTAL_BYTES), ge=1024)
    max_messages: int = Field(500, ge=1)
    idempotency_ttl_s: int = Field(24 * 3600, ge=1)

    # Providers
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    default_model: str | None = None
    provider_timeout_s: float = Field(600.0, gt=0)

    # Database pool
    db_pool_min: int = Field(2, ge=1)
    db_pool_max: int = Field(20, ge=1)
    db_acquire_timeout_s: float = Field(10.0, gt=0)

    # Observability and benchmarking: log line format; "auto" is text on a terminal,
    # JSON lines otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    # Redis connections of one node; a command waits up to the timeout for a free one.
    redis_pool_max: int = Field(200, ge=4)
    redis_pool_timeout_s: float = Field(20.0, gt=0)
    # `serve` runs on uvloop where it is installed; false for the standard asyncio loop.
    uvloop: bool = True
    # Socket.IO packets encoded and decoded with orjson (false: the standard json module).
    fast_json: bool = True
    # Allocations between collections of Python's youngest GC generation (0: default, 700).
    gc_threshold: int = Field(50_000, ge=0)
    # Tenancy, auth and quotas
    jwt_secret: SecretStr | None = None
    jwt_audience: str | None = None  # Supabase issues "authenticated"
    jwt_issuer: str | None = None
    jwt_leeway_s: float = Field(0.0, ge=0, le=300)
    # tasks per quota day / UTC month by tier; -1 = unlimited
    quota_free_daily: int = Field(10, ge=-1)
    quota_free_monthly: int = Field(-1, ge=-1)
    quota_premium_daily: int = Field(100, ge=-1)
    quota_premium_monthly: int = Field(-1, ge=-1)
    quota_byok_daily: int = Field(-1, ge=-1)
    quota_byok_monthly: int = Field(-1, ge=-1)
    quota_utc_offset_min: int = Field(0, ge=-14 * 60, le=14 * 60)  # the quota day's time zone
    max_concurrent_tasks: int = Field(20, ge=1)
    max_events_per_second: float = Field(100.0, gt=0)
    max_connections_per_user: int = Field(50, ge=1)
    # Subscriptions of one node to one task (sockets and SSE streams): each chunk is sent to
    # every one, so this bounds the delivery work one task's owner can put on a node.
    max_watchers_per_task: int = Field(16, ge=1)
    max_variables: int = Field(200, ge=1)
    max_message_chars: int = Field(200_000, ge=1)
    # Images in one request (docs/protocol.md "Images"): how many, and bytes once decoded of
    # one and of all (base64 images also count toward MAX_PAYLOAD_BYTES, whose default
    # makes room for them)
    max_images: int = Field(8, ge=0)
    max_image_bytes: int = Field(5 * 1024 * 1024, ge=1)
    max_images_total_bytes: int = Field(DEFAULT_IMAGES_TOTAL_BYTES, ge=1)
    auth_recheck_s: float = Field(5.0, gt=0)  # backstop for revocations and deleted users
    # Abuse resistance: output validations run in worker processes with a deadline, and a
    # user has at most VALIDATION_PER_USER of them in the pool at once.
    validation_workers: int = Field(2, ge=1, le=64)
    validation_timeout_s: float = Field(2.0, gt=0, le=60)
    validation_per_user: int = Field(1, ge=1)
    # Engine.IO sessions that have not completed a Socket.IO CONNECT: per client address,
    # in total on this node, and how long one may stay so.
    max_pending_handshakes_per_address: int = Field(64, ge=1)
    max_pending_handshakes: int = Field(2000, ge=1)
    handshake_deadline_s: float = Field(10.0, gt=0, le=300)
    # Output bounds: the largest `max_tokens` (also a simulated task's tokens) server-wide
    # and per tier (-1: the server-wide one), and the characters one task may stream (its
    # history in Redis is bounded by it); past them a task ends with finish_reason `length`.
    max_output_tokens: int = Field(32_768, ge=1)
    max_output_tokens_free: int = Field(8_192, ge=-1)
    max_output_tokens_premium: int = Field(-1, ge=-1)
    max_output_tokens_byok: int = Field(-1, ge=-1)
    max_output_chars: int = Field(1_000_000, ge=1000)
    # HTTP requests per minute per user (authenticated routes) and per client address (the
    # rest, and failed authentications), counted over every node in Redis; 0 = unlimited.
    max_http_requests_per_minute: int = Field(600, ge=0)
    max_http_requests_per_minute_per_address: int = Field(300, ge=0)
    max_keys_per_user: int = Field(50, ge=1)  # live API keys
    max_orgs_per_user: int = Field(20, ge=1)  # organizations a user created
    # The embedded Redis's memory limit (policy volatile-ttl: see docs/tenancy.md)
    redis_maxmemory_mb: int = Field(512, ge=16)

    # Providers beyond OpenAI, retries and fallbacks, bring-your-own keys
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    gemini_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("gemini_api_key", "google_api_key")
    )
    google_genai_base_url: str | None = None
    provider_retries: int = Field(2, ge=0, le=10)  # per model, before the first token only
    provider_backoff_s: float = Field(0.5, ge=0, le=60)
    provider_backoff_max_s: float = Field(8.0, ge=0, le=600)
    provider_keys_secret: SecretStr | None = None  # Fernet keys, comma-separated, newest first

    # Scale-out and crash safety: role of this node, job hand-off, leases, SIGTERM.
    role: Literal["serve", "gateway", "worker"] = "serve"  # set by the CLI command
    node_id: str | None = None  # consumer name in the job stream; default host-pid-random
    lease_ttl_s: float = Field(15.0, ge=1)  # a task whose worker is silent this long fails
    worker_concurrency: int = Field(256, ge=1)  # tasks one worker runs at once
    # Partitions of the job queue, each under its own Redis hash tag (docs/deploy.md); the
    # same on every node of a deployment.
    job_partitions: int = Field(16, ge=1, le=1024)
    # Worker processes `serve` starts on this machine (server/process/local_workers.py); 0: serve
    # runs tasks in its own process; -1: one per core.
    local_workers: int = Field(0, ge=-1, le=256)
    shutdown_grace_s: float = Field(25.0, ge=0)  # SIGTERM: running tasks get this long
    cancel_wait_s: float = Field(10.0, gt=0)  # how long a cancel waits for a remote runner
    pubsub_probe_s: float = Field(5.0, gt=0)  # a silent pub/sub connection is renewed after

    # Conversations and history (docs/conversations.md)
    # Input tokens a call may send (besides the model's known window); a longer history is
    # trimmed to the system messages and the newest messages that fit. None: the window only.
    max_context_tokens: int | None = Field(None, ge=1)
    # A waiting lower-priority job starts after at most this many higher-priority starts on
    # a worker (the anti-starvation bound of the priority queue).
    priority_starvation_bound: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _payload_room_for_images(self) -> Settings:
        """Unset MAX_PAYLOAD_BYTES: room for the images the image limits allow, and text."""
        if "max_payload_bytes" not in self.model_fields_set:
            self.max_payload_bytes = payload_room(self.max_images_total_bytes)
        return self

    def resolved_default_model(self) -> str:
        """The model of an execute that names none: OpenAI when a key is set, else the simulator."""
        if self.default_model:
            return self.default_model
        if self.openai_api_key is not None:
            return "openai/gpt-4o-mini"
        return "simulated/default"
