ALTER TABLE rm_api_tokens DROP COLUMN environments;
