-- Edge tokens (scope 'edge') may be narrowed to some environments of their project; empty: all.
ALTER TABLE rm_api_tokens ADD COLUMN environments text[] NOT NULL DEFAULT '{}';
