-- Tool calling: a task whose answer asks for tools records the calls; the client's results
-- are added one by one; the continuation (the next model call of the same run) is a new task
-- that names the task that asked. Existing rows stay valid: every column is nullable or has
-- a default.
ALTER TABLE ai_tasks
    ADD COLUMN parent_task_id uuid REFERENCES ai_tasks (task_id) ON DELETE SET NULL,
    ADD COLUMN step integer NOT NULL DEFAULT 1 CHECK (step >= 1),
    ADD COLUMN tool_calls jsonb,
    ADD COLUMN tool_results jsonb,
    ADD COLUMN next_task_id uuid;
CREATE INDEX ai_tasks_parent_idx ON ai_tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
