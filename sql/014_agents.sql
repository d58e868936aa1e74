-- Agents (seed 001's agent templates and user agents): a template holds a system prompt with
-- {{variables}}, the variables it requires, a default model and settings; an agent is a
-- user's or an org's instance of it with its own name, values and model override.

CREATE TABLE agent_templates (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,  -- the author
    org_id       uuid REFERENCES organizations (id) ON DELETE CASCADE,   -- NULL: the author's
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    system_prompt text NOT NULL,
    variables    jsonb NOT NULL DEFAULT '[]'::jsonb,
    model        text,
    settings     jsonb NOT NULL DEFAULT '{}'::jsonb,
    tools        jsonb NOT NULL DEFAULT '[]'::jsonb,  -- passed on to runs without their own
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id                  uuid PRIMARY KEY,
    template_id         uuid NOT NULL REFERENCES agent_templates (id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,  -- creator
    org_id              uuid REFERENCES organizations (id) ON DELETE CASCADE,
    name                text NOT NULL,
    variables           jsonb NOT NULL DEFAULT '{}'::jsonb,
    model               text,
    -- Written only by the trigger below, in the transaction that finalizes an execution.
    execution_count     bigint NOT NULL DEFAULT 0 CHECK (execution_count >= 0),
    total_execution_ms  bigint NOT NULL DEFAULT 0 CHECK (total_execution_ms >= 0),
    last_executed_at    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_user_idx ON agents (user_id, created_at DESC, id DESC);
CREATE INDEX agents_org_idx ON agents (org_id, created_at DESC, id DESC) WHERE org_id IS NOT NULL;

-- An agent's execution is its task: status, times, tokens, result and error live there.
ALTER TABLE ai_tasks ADD COLUMN agent_id uuid REFERENCES agents (id) ON DELETE SET NULL;
CREATE INDEX ai_tasks_agent_idx ON ai_tasks (agent_id, created_at DESC, task_id DESC)
    WHERE agent_id IS NOT NULL;

-- When an agent's task ends (once: finalize only moves a queued or running task), count it
-- on the agent in the same transaction. `x = x + n` under the row lock is exact however many
-- executions end at once.
CREATE FUNCTION agents_count_execution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agents SET
        execution_count = execution_count + 1,
        total_execution_ms = total_execution_ms + GREATEST(0, (extract(epoch FROM
            NEW.completed_at - COALESCE(NEW.started_at, NEW.created_at)) * 1000)::bigint),
        last_executed_at = GREATEST(last_executed_at, NEW.completed_at)
    WHERE id = NEW.agent_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER ai_tasks_agent_finalized AFTER UPDATE OF status ON ai_tasks
    FOR EACH ROW
    WHEN (NEW.agent_id IS NOT NULL AND OLD.status IN ('queued', 'running')
          AND NEW.status NOT IN ('queued', 'running'))
    EXECUTE FUNCTION agents_count_execution();
