-- People of the web console (services/app/identity). These are operational records, not domain
-- history: what a person changes in flags, segments and environments is an ordinary event whose
-- metadata names the person (actor "user:<id>"), so the audit log and time travel see it. The
-- password hash is bcrypt (golang.org/x/crypto/bcrypt); the table never holds a password.
CREATE TABLE console_users (
    id            text PRIMARY KEY,
    email         text NOT NULL,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    -- An instance admin manages every project, its members and API tokens.
    instance_admin boolean NOT NULL DEFAULT false,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL
);
-- Emails are compared case-insensitively: Alice@Example.com and alice@example.com are one person.
CREATE UNIQUE INDEX console_users_email ON console_users (lower(email));

-- Roles per project: viewer (read), editor (write), admin (admin), the API token scopes.
CREATE TABLE console_members (
    user_id    text NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    project    text NOT NULL,
    role       text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    PRIMARY KEY (user_id, project)
);
CREATE INDEX console_members_project ON console_members (project);

-- Server-side sessions: the cookie holds a random secret; only its SHA-256 is stored, so a read
-- of this table cannot sign anyone in. A session ends at the first of: sign-out or revocation
-- (revoked_at), idle expiry (last_seen_at + idle), absolute expiry (expires_at).
CREATE TABLE console_sessions (
    id_hash      text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
