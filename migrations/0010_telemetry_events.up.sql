-- Telemetry: the raw evaluation and goal events SDKs post (POST /sdk/v1/events), the per-user
-- experiment unit tables derived from them, and a log of stored batches.
--
-- Every event is stamped once at the edge with event_id (UUIDv7 unless the SDK sent one) and
-- occurred_at; the telemetry projector writes each stream message with
-- INSERT ... SELECT FROM unnest(...) ON CONFLICT (event_id, occurred_at) DO NOTHING, so a message
-- delivered twice stores nothing twice. On TimescaleDB the event tables are hypertables with
-- compression and retention policies (the projector role re-applies the configured intervals at
-- start: VEXIL_TELEMETRY_CHUNK_INTERVAL, _COMPRESS_AFTER, _RETENTION); on plain PostgreSQL they
-- are ordinary tables with BRIN time indexes, and the projector role deletes expired rows.

CREATE TABLE evaluation_events (
  occurred_at  timestamptz NOT NULL,
  event_id     uuid        NOT NULL,
  project      text        NOT NULL,
  environment  text        NOT NULL,
  flag         text        NOT NULL,
  variation    text        NOT NULL DEFAULT '', -- '' when no variation was served (an error)
  reason       text        NOT NULL DEFAULT '',
  user_key     text,                            -- NULL for server-side evaluation counters
  experiment   text,                            -- set by SDKs when the flag runs an experiment
  attributes   jsonb,                           -- the attributes the SDK selected, if any
  -- How many evaluations the row stands for: 1 for an SDK event, the count of a window for the
  -- api role's server-side evaluation counters.
  evaluations  integer     NOT NULL DEFAULT 1 CHECK (evaluations > 0),
  received_at  timestamptz NOT NULL
);

CREATE TABLE goal_events (
  occurred_at  timestamptz NOT NULL,
  event_id     uuid        NOT NULL,
  project      text        NOT NULL,
  environment  text        NOT NULL,
  goal         text        NOT NULL,
  user_key     text        NOT NULL,
  value        double precision,
  received_at  timestamptz NOT NULL
);

-- One row per goal event and exposure (flag or experiment) of its user that came first: the
-- goal is attributed to the variation the user was first exposed to. Written by the projector
-- when the goal arrives, and back-filled when an exposure arrives after goals it precedes.
CREATE TABLE goal_attributions (
  occurred_at  timestamptz NOT NULL, -- the goal event's
  event_id     uuid        NOT NULL, -- the goal event's
  project      text        NOT NULL,
  environment  text        NOT NULL,
  goal         text        NOT NULL,
  subject_kind text        NOT NULL CHECK (subject_kind IN ('flag', 'experiment')),
  subject      text        NOT NULL,
  variation    text        NOT NULL,
  user_key     text        NOT NULL,
  value        double precision
);

-- One row per stream message stored: the ingest log behind the ingest-rate and lag panels.
-- received_at is stamped at the edge, stored_at by the transaction that stored the batch.
CREATE TABLE telemetry_batches (
  received_at  timestamptz NOT NULL,
  batch_id     uuid        NOT NULL,
  project      text        NOT NULL,
  environment  text        NOT NULL,
  evaluations  integer     NOT NULL,
  goals        integer     NOT NULL,
  stored_at    timestamptz NOT NULL DEFAULT now()
);

-- Unique indexes include the time column (a TimescaleDB rule); they are the conflict targets
-- that make redelivery harmless.
CREATE UNIQUE INDEX evaluation_events_event ON evaluation_events (event_id, occurred_at);
CREATE UNIQUE INDEX goal_events_event ON goal_events (event_id, occurred_at);
-- Attribution joins goals to the exposures of their user (and back).
CREATE INDEX goal_events_user ON goal_events (project, environment, user_key, occurred_at);
CREATE UNIQUE INDEX goal_attributions_event ON goal_attributions (event_id, subject_kind, subject, occurred_at);
CREATE UNIQUE INDEX telemetry_batches_batch ON telemetry_batches (batch_id, received_at);

-- Experiment units: the first exposure of a user to a flag, or to an experiment when the
-- evaluation named one (then the experiment is the subject, not the flag). A later exposure to
-- another variation marks the user (multiple_variations), whom the analysis excludes and counts.
-- An exposure that arrives late but happened earlier moves first_exposed_at (and the variation).
CREATE TABLE experiment_exposures (
  project             text        NOT NULL,
  environment         text        NOT NULL,
  user_key            text        NOT NULL,
  subject_kind        text        NOT NULL CHECK (subject_kind IN ('flag', 'experiment')),
  subject             text        NOT NULL,
  variation           text        NOT NULL,
  first_exposed_at    timestamptz NOT NULL,
  multiple_variations boolean     NOT NULL DEFAULT false,
  updated_at          timestamptz NOT NULL DEFAULT now(),
  -- The key serves the analysis (all units of a flag or experiment) and the projector's
  -- one-unit probes; the user index serves goal attribution (the exposures of a user). Either
  -- index answers a probe cheaply, whatever plan stale statistics lead to.
  PRIMARY KEY (project, environment, subject_kind, subject, user_key)
);
CREATE INDEX experiment_exposures_user ON experiment_exposures (project, environment, user_key);
-- The projector role re-attributes goals of recently recorded exposures (see the telemetry
-- maintenance), closing the window where a goal and its user's first exposure are stored by two
-- transactions at once.
CREATE INDEX experiment_exposures_updated ON experiment_exposures (updated_at);

-- Per experiment unit and goal: the goal events after the user's first exposure. Incremented only
-- by attribution rows that were actually inserted, so redelivery never counts a goal twice.
CREATE TABLE experiment_user_goals (
  project           text             NOT NULL,
  environment       text             NOT NULL,
  subject_kind      text             NOT NULL,
  subject           text             NOT NULL,
  user_key          text             NOT NULL,
  goal              text             NOT NULL,
  conversions       bigint           NOT NULL,
  value_sum         double precision NOT NULL,
  value_sum_squares double precision NOT NULL,
  first_at          timestamptz      NOT NULL,
  last_at           timestamptz      NOT NULL,
  PRIMARY KEY (project, environment, subject_kind, subject, user_key, goal)
);

DO $$
BEGIN
  IF vexil_has_timescale() THEN
    PERFORM create_hypertable('evaluation_events', by_range('occurred_at', INTERVAL '1 day'));
    PERFORM create_hypertable('goal_events', by_range('occurred_at', INTERVAL '1 day'));
    PERFORM create_hypertable('goal_attributions', by_range('occurred_at', INTERVAL '1 day'));
    PERFORM create_hypertable('telemetry_batches', by_range('received_at', INTERVAL '1 day'));

    -- Compressed chunks are segmented by what queries filter on; event_id is in the order so the
    -- unique index can still be checked (an insert into a compressed chunk is rare: events older
    -- than VEXIL_EVENTS_MAX_AGE are refused at the edge).
    ALTER TABLE evaluation_events SET (timescaledb.compress,
      timescaledb.compress_segmentby = 'project, environment, flag',
      timescaledb.compress_orderby = 'occurred_at DESC, event_id');
    ALTER TABLE goal_events SET (timescaledb.compress,
      timescaledb.compress_segmentby = 'project, environment, goal',
      timescaledb.compress_orderby = 'occurred_at DESC, event_id');
    ALTER TABLE goal_attributions SET (timescaledb.compress,
      timescaledb.compress_segmentby = 'project, environment, subject_kind, subject',
      timescaledb.compress_orderby = 'occurred_at DESC, event_id');
    PERFORM add_compression_policy('evaluation_events', INTERVAL '7 days');
    PERFORM add_compression_policy('goal_events', INTERVAL '7 days');
    PERFORM add_compression_policy('goal_attributions', INTERVAL '7 days');

    PERFORM add_retention_policy('evaluation_events', INTERVAL '90 days');
    PERFORM add_retention_policy('goal_events', INTERVAL '90 days');
    PERFORM add_retention_policy('goal_attributions', INTERVAL '90 days');
    PERFORM add_retention_policy('telemetry_batches', INTERVAL '30 days');
  ELSE
    -- Time-range scans (aggregate refreshes, retention deletes) on append-mostly tables.
    CREATE INDEX evaluation_events_time ON evaluation_events USING brin (occurred_at);
    CREATE INDEX goal_events_time ON goal_events USING brin (occurred_at);
    CREATE INDEX goal_attributions_time ON goal_attributions USING brin (occurred_at);
    CREATE INDEX telemetry_batches_time ON telemetry_batches USING brin (received_at);
  END IF;
END $$;
