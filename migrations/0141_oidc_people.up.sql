-- Single sign-on (OIDC): a person signed in by an identity provider is found by (issuer,
-- subject), the provider's stable id, never by email alone (emails are reused and renamed).
-- Such a person has no password: password_hash is '' and can never match (bcrypt refuses it).
ALTER TABLE console_users ADD COLUMN oidc_issuer text;
ALTER TABLE console_users ADD COLUMN oidc_subject text;
CREATE UNIQUE INDEX console_users_oidc ON console_users (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;
-- Roles a group mapping gave (VEXIL_OIDC_GROUP_ROLES) are marked, so the next sign-in can take
-- them back when the person left the group, without touching roles an admin gave by hand.
ALTER TABLE console_members ADD COLUMN from_oidc boolean NOT NULL DEFAULT false;
