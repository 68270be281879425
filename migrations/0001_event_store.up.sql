-- TimescaleDB when the server can load it; plain PostgreSQL otherwise. Later migrations test
-- vexil_has_timescale() to choose hypertables and continuous aggregates or their fallbacks.
--
-- Installed is not enough: TimescaleDB must be in shared_preload_libraries, and CREATE EXTENSION
-- on a server that has the files but does not preload them answers FATAL and closes the session
-- (the migration dies with "bad connection"). So the extension is created only when it is already
-- there, when the server preloads it, or on a single-process WASM build (PGlite, tests), which has
-- no postmaster and loads libraries on demand. Otherwise the database is migrated in plain mode;
-- Vexil warns at start-up and `vexil migrate timescale` converts it once the server preloads the
-- library (services/adapters/postgres/storage.go asks the same question).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
     AND (EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
          OR current_setting('shared_preload_libraries') ~ '(^|,)\s*"?([$]libdir/)?timescaledb"?\s*(,|$)'
          OR version() ILIKE '%emscripten%') THEN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
  END IF;
END $$;

CREATE OR REPLACE FUNCTION vexil_has_timescale() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') $$;

-- The event store of record. Append-only: one row per event, (stream_id, version) unique so a
-- stale expected version fails the insert (optimistic concurrency), position gives a global order.
CREATE TABLE events (
  position     bigserial   PRIMARY KEY,
  stream_id    text        NOT NULL,
  version      bigint      NOT NULL CHECK (version > 0),
  event_type   text        NOT NULL,
  data         jsonb       NOT NULL,
  metadata     jsonb       NOT NULL DEFAULT '{}',
  occurred_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT events_stream_version UNIQUE (stream_id, version)
);
CREATE INDEX events_occurred_at ON events (occurred_at);
-- Idempotent commands: a command id is recorded once per stream in the append's transaction, so
-- a retried or concurrently repeated command (two scheduler instances) appends nothing twice.
CREATE TABLE stream_commands (
  stream_id   text        NOT NULL,
  command_id  text        NOT NULL,
  version     bigint      NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream_id, command_id)
);
