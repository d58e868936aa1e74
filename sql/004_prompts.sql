-- Issue 4, prompt library: ordered validations, paging index, the render cache's lookups,
-- and the code-review builtin's JSON output schema.

ALTER TABLE prompt_validations ADD COLUMN ord integer NOT NULL DEFAULT 0;

CREATE INDEX prompts_user_created_idx ON prompts (user_id, created_at DESC, id DESC);
CREATE INDEX generated_prompts_prompt_idx ON generated_prompts (prompt_id, version);

UPDATE prompt_builtins SET validations = '[{"type": "json_schema", "schema": {
    "type": "object", "required": ["findings"],
    "properties": {"findings": {"type": "array", "items": {
        "type": "object", "required": ["line", "severity", "comment"],
        "properties": {"line": {"type": "integer", "minimum": 0},
                       "severity": {"enum": ["low", "medium", "high"]},
                       "comment": {"type": "string"}}}}}}}]'::jsonb,
    updated_at = now()
WHERE name = 'code-review';
