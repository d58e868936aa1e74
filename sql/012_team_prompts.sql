-- Team prompt libraries: a prompt is owned by its author (both columns NULL: every prompt
-- written before this migration stays its author's), by an organization, or by a project.
-- `user_id` stays the author. Members run and read a team's prompts; admins write them.

ALTER TABLE prompts
    ADD COLUMN org_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    ADD COLUMN project_id uuid REFERENCES projects (id) ON DELETE CASCADE,
    ADD CONSTRAINT prompts_one_owner CHECK (org_id IS NULL OR project_id IS NULL);

CREATE INDEX prompts_org_idx ON prompts (org_id, created_at DESC, id DESC)
    WHERE org_id IS NOT NULL;
CREATE INDEX prompts_project_idx ON prompts (project_id, created_at DESC, id DESC)
    WHERE project_id IS NOT NULL;

-- The caller's role on a prompt: 'admin' (may write), 'member' (may read and run), or NULL
-- (no access: the prompt answers not_found). The author of a personal prompt is its admin;
-- an org admin is an admin of the org's projects, as everywhere else.
CREATE FUNCTION prompt_role(author uuid, owner_org uuid, owner_project uuid, caller uuid)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN owner_project IS NOT NULL THEN (
            SELECT CASE WHEN om.role = 'admin' THEN 'admin' ELSE pm.role END
            FROM projects pr
            LEFT JOIN project_members pm ON pm.project_id = pr.id AND pm.user_id = caller
            LEFT JOIN organization_members om ON om.org_id = pr.org_id AND om.user_id = caller
            WHERE pr.id = owner_project)
        WHEN owner_org IS NOT NULL THEN (
            SELECT role FROM organization_members WHERE org_id = owner_org AND user_id = caller)
        WHEN author = caller THEN 'admin'
    END
$$;
