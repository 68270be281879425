-- Secrets of this installation that every process must share, generated once by the first
-- process that needs one (services/postgres.InstallationSecret) and never shown to clients:
-- 'cursor' signs the list cursors of the management API (HMAC-SHA256), so a cursor from any
-- replica is accepted by every other, across restarts.
CREATE TABLE installation_secrets (
    name       text PRIMARY KEY,
    secret     bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
