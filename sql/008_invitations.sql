-- Org and project membership by invitation: an admin invites, the invited user accepts.
-- Until then the invitation is only a row here; nobody becomes a member without consent.
CREATE TABLE member_invitations (
    id uuid PRIMARY KEY,
    org_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
    project_id uuid REFERENCES projects (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('admin', 'member')),
    invited_by uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((org_id IS NULL) <> (project_id IS NULL))
);
CREATE UNIQUE INDEX member_invitations_org_idx ON member_invitations (org_id, user_id)
    WHERE org_id IS NOT NULL;
CREATE UNIQUE INDEX member_invitations_project_idx ON member_invitations (project_id, user_id)
    WHERE project_id IS NOT NULL;
CREATE INDEX member_invitations_user_idx ON member_invitations (user_id, created_at);
