ALTER TABLE console_members DROP COLUMN IF EXISTS from_oidc;
DROP INDEX IF EXISTS console_users_oidc;
ALTER TABLE console_users DROP COLUMN IF EXISTS oidc_subject;
ALTER TABLE console_users DROP COLUMN IF EXISTS oidc_issuer;
