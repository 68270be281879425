-- Audit of the console's accounts and memberships: people created, roles given, changed and
-- taken away, passwords changed, sessions revoked, sign-ins refused. People are operational
-- records (migration 0080), not event streams, so their history is this append-only table,
-- written in the same transaction as the change it records. API tokens are event-sourced and
-- audited in rm_audit_log already.
CREATE TABLE console_account_audit (
    id          bigserial PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,            -- "user:<id>", "system:…", "cli", "setup:admin-token", "anonymous"
    action      text NOT NULL,            -- user.created, member.added, member.role_changed, member.removed, …
    project     text NOT NULL DEFAULT '', -- '' for instance-wide changes
    subject     text NOT NULL DEFAULT '', -- the person changed ("user:<id>") or the email tried
    before      text NOT NULL DEFAULT '',
    after       text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    client      text NOT NULL DEFAULT ''  -- the client address of sign-in failures
);
CREATE INDEX console_account_audit_project ON console_account_audit (project, id DESC);
CREATE INDEX console_account_audit_subject ON console_account_audit (subject, id DESC);
