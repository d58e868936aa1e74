-- A model's reasoning, kept apart from its answer: the reasoning text of a task, and the
-- part of its output tokens spent on reasoning (billed as output by every provider, so
-- already inside output_tokens and cost_usd; reported apart). Existing rows stay valid:
-- the text is nullable and the counts default to 0.
ALTER TABLE ai_tasks
    ADD COLUMN reasoning_text text,
    ADD COLUMN reasoning_tokens integer NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0);
ALTER TABLE ai_runs
    ADD COLUMN reasoning_tokens bigint NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0);
ALTER TABLE ai_usage_logs
    ADD COLUMN reasoning_tokens integer NOT NULL DEFAULT 0 CHECK (reasoning_tokens >= 0);
