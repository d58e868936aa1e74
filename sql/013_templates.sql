-- Public templates: a prompt version published to every user's gallery, forked into one's own
-- or a team's library with its provenance kept.

CREATE TABLE prompt_templates (
    prompt_id    uuid PRIMARY KEY REFERENCES prompts (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    category     text NOT NULL DEFAULT 'general',
    is_public    boolean NOT NULL DEFAULT true,
    is_default   boolean NOT NULL DEFAULT false,
    fork_count   integer NOT NULL DEFAULT 0 CHECK (fork_count >= 0),
    published_by uuid REFERENCES users (id) ON DELETE SET NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (prompt_id, version) REFERENCES prompt_versions (prompt_id, version),
    -- Only a public template can be a category's default.
    CHECK (is_public OR NOT is_default)
);
-- One default per category.
CREATE UNIQUE INDEX prompt_templates_one_default ON prompt_templates (category)
    WHERE is_default;
CREATE INDEX prompt_templates_gallery ON prompt_templates (published_at DESC, prompt_id DESC)
    WHERE is_public;

-- Provenance of a fork: the template's prompt and the version it was copied from. The copy
-- is the fork's own version 1; later versions of the template never change it.
ALTER TABLE prompts
    ADD COLUMN forked_from_prompt uuid REFERENCES prompts (id) ON DELETE SET NULL,
    ADD COLUMN forked_from_version integer;
CREATE INDEX prompts_forked_from_idx ON prompts (forked_from_prompt)
    WHERE forked_from_prompt IS NOT NULL;
