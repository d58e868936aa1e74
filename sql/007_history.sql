-- Conversations and history: the run list, the executions list, prompt statistics and
-- execution priority.

-- The sidebar: the caller's runs, most recently active first, keyset-paged by (updated_at, id).
CREATE INDEX ai_runs_user_active_idx ON ai_runs (user_id, updated_at DESC, id DESC);
DROP INDEX IF EXISTS ai_runs_user_idx;  -- (user_id, created_at): no query uses it any more

-- The executions list: newest first, keyset-paged by (created_at, task_id).
CREATE INDEX ai_tasks_user_created_idx ON ai_tasks (user_id, created_at DESC, task_id DESC);
DROP INDEX IF EXISTS ai_tasks_user_idx;  -- a prefix of the index above
-- A prompt's executions: its list filter and its statistics over a time range.
CREATE INDEX ai_tasks_prompt_idx ON ai_tasks (prompt_id, created_at) WHERE prompt_id IS NOT NULL;

-- Execution priority (low | normal | high), shown on the task.
ALTER TABLE ai_tasks ADD COLUMN priority text NOT NULL DEFAULT 'normal'
    CHECK (priority IN ('low', 'normal', 'high'));

-- Deleting a run deletes its tasks and their events at once; the usage log keeps its rows
-- for billing, without the task they came from.
ALTER TABLE ai_usage_logs ALTER COLUMN task_id DROP NOT NULL;
ALTER TABLE ai_usage_logs DROP CONSTRAINT ai_usage_logs_task_id_fkey;
ALTER TABLE ai_usage_logs ADD CONSTRAINT ai_usage_logs_task_id_fkey
    FOREIGN KEY (task_id) REFERENCES ai_tasks (task_id) ON DELETE SET NULL;
