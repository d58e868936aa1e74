-- A task on a model with no known price is billed "unknown", not 0: the usage log keeps
-- NULL like ai_tasks.cost_usd does (PROTOCOL.md: never a silent 0).
ALTER TABLE ai_usage_logs ALTER COLUMN cost_usd DROP NOT NULL;
