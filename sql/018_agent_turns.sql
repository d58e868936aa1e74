-- An agent's execution is a whole conversation turn: the task of the execute and every tool
-- continuation after it (docs/tools.md). A continuation takes its asking task's agent and
-- names the turn's first task; the execution is counted once, when its last step ends.

-- The first task of the tool conversation a continuation belongs to (NULL on that first task).
ALTER TABLE ai_tasks ADD COLUMN first_task_id uuid REFERENCES ai_tasks (task_id) ON DELETE SET NULL;
CREATE INDEX ai_tasks_first_task_idx ON ai_tasks (first_task_id) WHERE first_task_id IS NOT NULL;

-- Continuations recorded before: their turn's first task and agent. No status changes, so
-- nothing is counted again (those executions keep the counts they had).
WITH RECURSIVE turn AS (
    SELECT task_id, task_id AS first_id, agent_id FROM ai_tasks
    WHERE parent_task_id IS NULL AND next_task_id IS NOT NULL
    UNION ALL
    SELECT c.task_id, turn.first_id, turn.agent_id
    FROM ai_tasks c JOIN turn ON c.parent_task_id = turn.task_id
)
UPDATE ai_tasks t SET first_task_id = turn.first_id, agent_id = COALESCE(t.agent_id, turn.agent_id)
FROM turn WHERE t.task_id = turn.task_id AND turn.task_id <> turn.first_id;

CREATE FUNCTION ai_tasks_join_turn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT COALESCE(p.first_task_id, p.task_id), COALESCE(NEW.agent_id, p.agent_id)
    INTO NEW.first_task_id, NEW.agent_id
    FROM ai_tasks p WHERE p.task_id = NEW.parent_task_id;
    RETURN NEW;
END
$$;
CREATE TRIGGER ai_tasks_continuation BEFORE INSERT ON ai_tasks
    FOR EACH ROW WHEN (NEW.parent_task_id IS NOT NULL)
    EXECUTE FUNCTION ai_tasks_join_turn();

-- Counted when the turn's last step ends: a task that ends naming a continuation
-- (next_task_id, written by the same finalize statement) leaves the count to it. The time
-- runs from the first step's start to the last step's end; `x = x + n` under the row lock
-- stays exact however many executions end at once, on however many nodes.
CREATE OR REPLACE FUNCTION agents_count_execution() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    began timestamptz := COALESCE(NEW.started_at, NEW.created_at);
BEGIN
    -- A step that asked for tools but ended without naming its continuation (a node that
    -- stopped before its finalize; the sweeper ended it) still leaves the count to it.
    IF EXISTS (SELECT 1 FROM ai_tasks c WHERE c.parent_task_id = NEW.task_id) THEN
        RETURN NULL;
    END IF;
    IF NEW.first_task_id IS NOT NULL THEN
        SELECT COALESCE(f.started_at, f.created_at) INTO began
        FROM ai_tasks f WHERE f.task_id = NEW.first_task_id;
    END IF;
    UPDATE agents SET
        execution_count = execution_count + 1,
        total_execution_ms = total_execution_ms + GREATEST(0, (extract(epoch FROM
            NEW.completed_at - COALESCE(began, NEW.created_at)) * 1000)::bigint),
        last_executed_at = GREATEST(last_executed_at, NEW.completed_at)
    WHERE id = NEW.agent_id;
    RETURN NULL;
END
$$;
DROP TRIGGER ai_tasks_agent_finalized ON ai_tasks;
CREATE TRIGGER ai_tasks_agent_finalized AFTER UPDATE OF status ON ai_tasks
    FOR EACH ROW
    WHEN (NEW.agent_id IS NOT NULL AND OLD.status IN ('queued', 'running')
          AND NEW.status NOT IN ('queued', 'running') AND NEW.next_task_id IS NULL)
    EXECUTE FUNCTION agents_count_execution();
