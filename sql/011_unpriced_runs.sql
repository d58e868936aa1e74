-- A run's cost is the sum over its priced tasks; how many of its ended tasks had no known
-- price is counted beside it, so a run of unpriced tasks shows an unknown cost, not "0".
ALTER TABLE ai_runs ADD COLUMN unpriced_tasks integer NOT NULL DEFAULT 0
    CHECK (unpriced_tasks >= 0);

UPDATE ai_runs r SET unpriced_tasks = s.n
FROM (SELECT run_id, count(*)::int AS n FROM ai_tasks
      WHERE run_id IS NOT NULL AND cost_usd IS NULL
        AND status IN ('completed', 'failed', 'cancelled')
      GROUP BY run_id) s
WHERE r.id = s.run_id;
