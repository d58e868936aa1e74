-- Builtin prompts shipped with the server: runnable by every user with
-- `execute { builtin: "<name>" }`, changed by no API route.

INSERT INTO prompt_builtins (id, name, description, messages, settings, variables) VALUES
('5b0f3f6e-1f43-4c59-9a3e-000000000001', 'summarize',
 'Summarize a text in a given number of sentences.',
 '[{"role": "system", "content": "You summarize texts faithfully and briefly."},
   {"role": "user", "content": "Summarize the following text in {{sentences}} sentences:\n\n{{text}}"}]',
 '{"temperature": 0.2}',
 '[{"name": "text", "type": "string", "required": true},
   {"name": "sentences", "type": "number", "default": 3}]'),
('5b0f3f6e-1f43-4c59-9a3e-000000000002', 'translate',
 'Translate a text into a target language.',
 '[{"role": "system", "content": "You are a precise translator. Answer with the translation only."},
   {"role": "user", "content": "Translate into {{language}}:\n\n{{text}}"}]',
 '{"temperature": 0}',
 '[{"name": "text", "type": "string", "required": true},
   {"name": "language", "type": "string", "required": true}]'),
('5b0f3f6e-1f43-4c59-9a3e-000000000003', 'code-review',
 'Review a piece of code; answers JSON with a list of findings.',
 '[{"role": "system", "content": "You review {{language}} code. Answer only with JSON: {\"findings\": [{\"line\": number, \"severity\": \"low|medium|high\", \"comment\": string}]}."},
   {"role": "user", "content": "{{code}}"}]',
 '{"temperature": 0}',
 '[{"name": "code", "type": "string", "required": true},
   {"name": "language", "type": "string", "default": "Python"}]')
ON CONFLICT (name) DO UPDATE SET
    description = EXCLUDED.description, messages = EXCLUDED.messages,
    settings = EXCLUDED.settings, variables = EXCLUDED.variables, updated_at = now();
