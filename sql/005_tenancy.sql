-- Row-level security for Supabase deployments (seed 003's policies, widened to every table
-- that holds a user's data). The server enforces the same rules itself in db/ (every query
-- is scoped by the caller) and connects as the tables' owner, which RLS does not restrict;
-- these policies protect clients that read the tables directly with a user's JWT.
-- They are created only where `auth.uid()` exists (Supabase); elsewhere this is a no-op.
DO $$
DECLARE
    owned text;
BEGIN
    IF to_regprocedure('auth.uid()') IS NULL THEN
        RETURN;
    END IF;

    -- Tables with a user_id column: the row's owner may do anything with it.
    FOREACH owned IN ARRAY ARRAY['api_keys', 'user_ai_settings', 'user_variables', 'prompts',
                                 'ai_runs', 'ai_tasks', 'ai_usage_logs']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', owned);
        EXECUTE format('CREATE POLICY %I ON %I USING (user_id = auth.uid())'
                       ' WITH CHECK (user_id = auth.uid())', owned || '_owner', owned);
    END LOOP;

    ALTER TABLE users ENABLE ROW LEVEL SECURITY;
    CREATE POLICY users_self ON users USING (id = auth.uid()) WITH CHECK (id = auth.uid());

    -- Children of owned rows follow their parent.
    ALTER TABLE prompt_versions ENABLE ROW LEVEL SECURITY;
    CREATE POLICY prompt_versions_owner ON prompt_versions USING (EXISTS (
        SELECT 1 FROM prompts p WHERE p.id = prompt_id AND p.user_id = auth.uid()));
    ALTER TABLE prompt_validations ENABLE ROW LEVEL SECURITY;
    CREATE POLICY prompt_validations_owner ON prompt_validations USING (EXISTS (
        SELECT 1 FROM prompts p WHERE p.id = prompt_id AND p.user_id = auth.uid()));
    ALTER TABLE task_events ENABLE ROW LEVEL SECURITY;
    CREATE POLICY task_events_owner ON task_events USING (EXISTS (
        SELECT 1 FROM ai_tasks t WHERE t.task_id = task_events.task_id
                                   AND t.user_id = auth.uid()));

    -- Builtins are readable by everyone and written by no client.
    ALTER TABLE prompt_builtins ENABLE ROW LEVEL SECURITY;
    CREATE POLICY prompt_builtins_read ON prompt_builtins FOR SELECT USING (true);

    -- Organizations and projects: members read, admins write (seed 000's variable scopes).
    ALTER TABLE organization_members ENABLE ROW LEVEL SECURITY;
    CREATE POLICY organization_members_self ON organization_members FOR SELECT
        USING (user_id = auth.uid());
    ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
    CREATE POLICY organizations_member ON organizations FOR SELECT USING (EXISTS (
        SELECT 1 FROM organization_members m WHERE m.org_id = id AND m.user_id = auth.uid()));
    ALTER TABLE org_variables ENABLE ROW LEVEL SECURITY;
    CREATE POLICY org_variables_member ON org_variables FOR SELECT USING (EXISTS (
        SELECT 1 FROM organization_members m
        WHERE m.org_id = org_variables.org_id AND m.user_id = auth.uid()));
    CREATE POLICY org_variables_admin ON org_variables USING (EXISTS (
        SELECT 1 FROM organization_members m WHERE m.org_id = org_variables.org_id
          AND m.user_id = auth.uid() AND m.role = 'admin'));
    ALTER TABLE project_members ENABLE ROW LEVEL SECURITY;
    CREATE POLICY project_members_self ON project_members FOR SELECT
        USING (user_id = auth.uid());
    ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
    CREATE POLICY projects_member ON projects FOR SELECT USING (
        EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = id
                                                  AND m.user_id = auth.uid())
        OR EXISTS (SELECT 1 FROM organization_members m WHERE m.org_id = projects.org_id
                                                          AND m.user_id = auth.uid()));
    ALTER TABLE project_variables ENABLE ROW LEVEL SECURITY;
    CREATE POLICY project_variables_member ON project_variables FOR SELECT USING (EXISTS (
        SELECT 1 FROM project_members m
        WHERE m.project_id = project_variables.project_id AND m.user_id = auth.uid()));
    CREATE POLICY project_variables_admin ON project_variables USING (EXISTS (
        SELECT 1 FROM project_members m WHERE m.project_id = project_variables.project_id
          AND m.user_id = auth.uid() AND m.role = 'admin'));
END
$$;
