"""Agents: templates with a system prompt and required variables, instances of them with
their own values and model, run as an `execute` with `agent_id` (docs/prompts.md "Agents")."""
