-- Read models. Every table here is derived from the event store and can be rebuilt by replay.

-- catalog: what the console lists and filters.
CREATE TABLE rm_projects (
  key         text PRIMARY KEY,
  name        text        NOT NULL,
  description text        NOT NULL DEFAULT '',
  state       jsonb       NOT NULL, -- the folded project, SDK server keys redacted
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);

CREATE TABLE rm_environments (
  project     text        NOT NULL,
  key         text        NOT NULL,
  name        text        NOT NULL,
  color       text        NOT NULL DEFAULT '',
  ordinal     int         NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (project, key)
);

CREATE TABLE rm_flags (
  project     text        NOT NULL,
  key         text        NOT NULL,
  name        text        NOT NULL,
  description text        NOT NULL DEFAULT '',
  tags        text[]      NOT NULL DEFAULT '{}',
  type        text        NOT NULL,
  client_side boolean     NOT NULL,
  archived    boolean     NOT NULL DEFAULT false,
  state       jsonb       NOT NULL, -- the folded flag
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (project, key)
);
CREATE INDEX rm_flags_tags ON rm_flags USING gin (tags);

CREATE TABLE rm_segments (
  project     text        NOT NULL,
  key         text        NOT NULL,
  name        text        NOT NULL,
  description text        NOT NULL DEFAULT '',
  tags        text[]      NOT NULL DEFAULT '{}',
  archived    boolean     NOT NULL DEFAULT false,
  state       jsonb       NOT NULL,
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (project, key)
);
CREATE INDEX rm_segments_tags ON rm_segments USING gin (tags);

-- access: SDK keys and API tokens, updated inline in the append transaction so a key or token
-- works (or stops working) the moment the write that made it returns.
CREATE TABLE rm_sdk_keys (
  key         text PRIMARY KEY,
  project     text        NOT NULL,
  environment text        NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('client', 'server')),
  created_at  timestamptz NOT NULL
);
CREATE INDEX rm_sdk_keys_environment ON rm_sdk_keys (project, environment);

CREATE TABLE rm_api_tokens (
  id          text PRIMARY KEY,
  name        text        NOT NULL,
  hash        text        NOT NULL UNIQUE,
  scope       text        NOT NULL,
  project     text        NOT NULL DEFAULT '',
  revoked     boolean     NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);

-- rulesets: the compiled per-environment configuration SDKs download. An environment's version
-- is the global position of the last event that changed it, so it is the same after a replay.
CREATE TABLE rm_rulesets (
  project     text        NOT NULL,
  environment text        NOT NULL,
  version     bigint      NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (project, environment)
);

CREATE TABLE rm_ruleset_flags (
  project     text   NOT NULL,
  environment text   NOT NULL,
  flag        text   NOT NULL,
  config      jsonb  NOT NULL, -- domain.FlagConfig
  PRIMARY KEY (project, environment, flag)
);

CREATE TABLE rm_ruleset_segments (
  project     text   NOT NULL,
  segment     text   NOT NULL,
  definition  jsonb  NOT NULL, -- domain.Segment
  PRIMARY KEY (project, segment)
);

-- The whole folded flag per project, so a new environment's ruleset can be built without
-- reading another projection's tables.
CREATE TABLE rm_ruleset_flag_states (
  project     text   NOT NULL,
  flag        text   NOT NULL,
  state       jsonb  NOT NULL,
  PRIMARY KEY (project, flag)
);

-- audit: one row per event with the state of the entity before and after it.
CREATE TABLE rm_audit_log (
  position     bigint PRIMARY KEY,
  stream_id    text        NOT NULL,
  version      bigint      NOT NULL,
  project      text        NOT NULL DEFAULT '',
  entity_kind  text        NOT NULL,
  entity_key   text        NOT NULL,
  environment  text        NOT NULL DEFAULT '',
  event_type   text        NOT NULL,
  actor        text        NOT NULL,
  reason       text        NOT NULL DEFAULT '',
  request_id   text        NOT NULL DEFAULT '',
  occurred_at  timestamptz NOT NULL,
  data         jsonb       NOT NULL,
  before       jsonb,
  after        jsonb
);
CREATE INDEX rm_audit_log_project ON rm_audit_log (project, position DESC);
CREATE INDEX rm_audit_log_entity ON rm_audit_log (entity_kind, project, entity_key, position DESC);
