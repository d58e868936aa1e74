"""Prompts: resolution, the library, templates, variables, output validation."""
