-- promptrelay schema, version 1: every table of DESIGN.md.
-- Table names from seed 000 are kept (prompts, prompt_builtins, ai_runs, ai_tasks,
-- user_variables, org_variables, project_variables); the other seeds fold into them.

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    email       text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- API keys: only the SHA-256 hash of the key is kept (seed 002 ApiKey.keyHash).
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- Seed 003: tiers, quotas, encrypted bring-your-own provider keys.
CREATE TABLE user_ai_settings (
    user_id             uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tier                text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'premium', 'byok')),
    preferred_provider  text,
    provider_keys       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- provider -> {ciphertext, last4}
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE organization_members (
    org_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role     text NOT NULL CHECK (role IN ('admin', 'member')),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX organization_members_user_idx ON organization_members (user_id);

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_org_idx ON projects (org_id);
CREATE TABLE project_members (
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('admin', 'member')),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

-- Scoped variables (seed 000).
CREATE TABLE user_variables (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, name)
);
CREATE TABLE org_variables (
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, name)
);
CREATE TABLE project_variables (
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name)
);

-- Prompts (seed 000) with immutable versions (seed 002).
CREATE TABLE prompts (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               text NOT NULL,
    description        text NOT NULL DEFAULT '',
    tags               text[] NOT NULL DEFAULT '{}',
    status             text NOT NULL DEFAULT 'draft'
                       CHECK (status IN ('draft', 'published', 'archived')),
    latest_version     integer NOT NULL DEFAULT 1 CHECK (latest_version > 0),
    published_version  integer CHECK (published_version > 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prompts_user_idx ON prompts (user_id, updated_at DESC);

CREATE TABLE prompt_versions (
    prompt_id   uuid NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    messages    jsonb NOT NULL,
    model       text,
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    variables   jsonb NOT NULL DEFAULT '[]'::jsonb,
    change_log  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prompt_id, version)
);

-- Seed 002 Validation (json_schema, regex), run on the final output.
CREATE TABLE prompt_validations (
    id          uuid PRIMARY KEY,
    prompt_id   uuid NOT NULL,
    version     integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('json_schema', 'regex')),
    spec        jsonb NOT NULL,
    FOREIGN KEY (prompt_id, version) REFERENCES prompt_versions (prompt_id, version)
        ON DELETE CASCADE
);
CREATE INDEX prompt_validations_version_idx ON prompt_validations (prompt_id, version);

-- System prompts shipped with the server, runnable by every user.
CREATE TABLE prompt_builtins (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    description  text NOT NULL DEFAULT '',
    messages     jsonb NOT NULL,
    model        text,
    settings     jsonb NOT NULL DEFAULT '{}'::jsonb,
    variables    jsonb NOT NULL DEFAULT '[]'::jsonb,
    validations  jsonb NOT NULL DEFAULT '[]'::jsonb,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Seed 001 generated_prompts: cache of rendered prompt versions.
CREATE TABLE generated_prompts (
    cache_key    bytea PRIMARY KEY,
    prompt_id    uuid,
    version      integer,
    rendered     jsonb NOT NULL,
    usage_count  integer NOT NULL DEFAULT 1 CHECK (usage_count > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz
);

-- Conversations.
CREATE TABLE ai_runs (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prompt_id       uuid,
    name            text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    messages        jsonb NOT NULL DEFAULT '[]'::jsonb,
    variable_values jsonb NOT NULL DEFAULT '{}'::jsonb,
    broker_values   jsonb NOT NULL DEFAULT '{}'::jsonb,
    total_tokens    bigint NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    input_tokens    bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    total_cost_usd  numeric(20, 10) NOT NULL DEFAULT 0 CHECK (total_cost_usd >= 0),
    task_count      integer NOT NULL DEFAULT 0 CHECK (task_count >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_runs_user_idx ON ai_runs (user_id, created_at DESC);

-- One row per model call.
CREATE TABLE ai_tasks (
    task_id            uuid PRIMARY KEY,
    run_id             uuid REFERENCES ai_runs (id) ON DELETE SET NULL,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prompt_id          uuid,
    prompt_version     integer CHECK (prompt_version > 0),
    builtin            text,
    request_id         text,
    provider           text NOT NULL,
    model              text NOT NULL,
    status             text NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    request            jsonb NOT NULL,
    response_text      text,
    input_tokens       integer CHECK (input_tokens >= 0),
    output_tokens      integer CHECK (output_tokens >= 0),
    total_tokens       integer CHECK (total_tokens >= 0),
    usage_source       text CHECK (usage_source IN ('provider', 'estimated')),
    cost_usd           numeric(20, 10) CHECK (cost_usd >= 0),
    last_seq           integer NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    ttft_ms            integer CHECK (ttft_ms >= 0),
    latency_ms         integer CHECK (latency_ms >= 0),
    finish_reason      text,
    error              jsonb,
    validation_status  text CHECK (validation_status IN ('passed', 'failed', 'skipped')),
    validation_errors  jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    CHECK (completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at)
);
CREATE INDEX ai_tasks_user_idx ON ai_tasks (user_id, created_at DESC);
CREATE INDEX ai_tasks_run_idx ON ai_tasks (run_id, created_at);
CREATE INDEX ai_tasks_running_idx ON ai_tasks (status) WHERE status IN ('queued', 'running');

-- Seed 002 ExecutionLog.
CREATE TABLE task_events (
    id        bigserial PRIMARY KEY,
    task_id   uuid NOT NULL REFERENCES ai_tasks (task_id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    level     text NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warning', 'error')),
    kind      text NOT NULL,
    message   text NOT NULL DEFAULT '',
    metadata  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX task_events_task_idx ON task_events (task_id, id);

-- Seed 003 ai_usage_logs: exactly one row per finished task.
CREATE TABLE ai_usage_logs (
    id             bigserial PRIMARY KEY,
    task_id        uuid NOT NULL UNIQUE REFERENCES ai_tasks (task_id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tier           text NOT NULL,
    provider       text NOT NULL,
    model          text NOT NULL,
    input_tokens   integer NOT NULL CHECK (input_tokens >= 0),
    output_tokens  integer NOT NULL CHECK (output_tokens >= 0),
    cost_usd       numeric(20, 10) NOT NULL CHECK (cost_usd >= 0),
    status         text NOT NULL,
    day            date NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_usage_logs_user_day_idx ON ai_usage_logs (user_id, day);

-- Price overrides for custom and self-hosted models (per million tokens).
CREATE TABLE model_prices (
    provider         text NOT NULL,
    model            text NOT NULL,
    input_per_mtok   numeric(20, 10) NOT NULL CHECK (input_per_mtok >= 0),
    output_per_mtok  numeric(20, 10) NOT NULL CHECK (output_per_mtok >= 0),
    effective_from   date NOT NULL DEFAULT CURRENT_DATE,
    PRIMARY KEY (provider, model, effective_from)
);
