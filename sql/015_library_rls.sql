-- Row-level security for the team library, agents and templates (Supabase deployments, as in
-- sql/005_tenancy.sql; a no-op where `auth.uid()` does not exist). The same rule as the
-- server's: `prompt_role` (sql/012_team_prompts.sql) — members read, admins write.
DO $$
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL THEN
        RETURN;
    END IF;

    CREATE POLICY prompts_team_read ON prompts FOR SELECT
        USING (prompt_role(user_id, org_id, project_id, auth.uid()) IS NOT NULL);
    CREATE POLICY prompts_team_write ON prompts FOR UPDATE
        USING (prompt_role(user_id, org_id, project_id, auth.uid()) = 'admin');
    CREATE POLICY prompt_versions_team_read ON prompt_versions FOR SELECT USING (EXISTS (
        SELECT 1 FROM prompts p WHERE p.id = prompt_id
          AND prompt_role(p.user_id, p.org_id, p.project_id, auth.uid()) IS NOT NULL));

    -- Public templates are readable by everyone; their rows are written by the server only.
    ALTER TABLE prompt_templates ENABLE ROW LEVEL SECURITY;
    CREATE POLICY prompt_templates_public ON prompt_templates FOR SELECT USING (is_public);

    ALTER TABLE agent_templates ENABLE ROW LEVEL SECURITY;
    CREATE POLICY agent_templates_read ON agent_templates FOR SELECT
        USING (prompt_role(user_id, org_id, NULL, auth.uid()) IS NOT NULL);
    CREATE POLICY agent_templates_write ON agent_templates
        USING (prompt_role(user_id, org_id, NULL, auth.uid()) = 'admin');
    ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
    CREATE POLICY agents_read ON agents FOR SELECT
        USING (prompt_role(user_id, org_id, NULL, auth.uid()) IS NOT NULL);
    CREATE POLICY agents_write ON agents
        USING (prompt_role(user_id, org_id, NULL, auth.uid()) = 'admin');
END
$$;
