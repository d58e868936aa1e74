"""Execution engine: prompts, variables, providers, streaming and finalization."""
