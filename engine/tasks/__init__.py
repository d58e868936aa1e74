"""A task's life: execute, run, retries, finalize."""
