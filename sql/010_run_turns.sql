-- A run holds one turn at a time: at most one task of a run is queued or running. The index
-- is the lock, shared by every node: an execute in a run whose turn still runs fails to
-- insert (`run_busy`), and the lock goes with the task's end (finalize, cancel, the sweeper
-- for a node that died), since each of those moves the task out of these statuses.
-- A tool continuation (parent_task_id set) is created while the task that asked for the
-- tools still runs, so it is left out of the index; a new turn also checks that no task of
-- the run is running under the run's row lock (db/tasks.py).
CREATE UNIQUE INDEX ai_tasks_run_turn_idx ON ai_tasks (run_id)
    WHERE run_id IS NOT NULL AND status IN ('queued', 'running') AND parent_task_id IS NULL;
