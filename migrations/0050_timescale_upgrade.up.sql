-- The upgrade path from plain PostgreSQL to TimescaleDB, for a database migrated while the server
-- could not load TimescaleDB (not installed, or installed but not preloaded: see 0001).
--
-- 1. vexil_has_timescale() now answers whether Vexil's storage IS on TimescaleDB (the telemetry
--    tables are hypertables), not merely whether the extension exists: a plain-mode database in
--    which someone creates the extension keeps its plain tables and materialized views, and the
--    projector must keep refreshing those until they are converted.
-- 2. vexil_timescale_upgrade() converts a plain-mode database into exactly what a fresh TimescaleDB
--    migration builds (0010, 0011, 0031): hypertables (existing rows moved into chunks),
--    compression and retention policies, continuous aggregates with their refresh and retention
--    policies and indexes, replacing the plain relations of the same names, so queries read the
--    same names afterwards. `vexil migrate timescale` creates the extension, calls it in one
--    transaction, then refreshes the aggregates. Every step checks what is already there, so it is
--    safe to re-run; it returns the steps it took (none when the database is already converted).
--    A later migration that changes a TimescaleDB object of 0010/0011/0031 changes it here too
--    (TestTimescaleUpgradeMatchesFreshMigration compares the two).

CREATE OR REPLACE FUNCTION vexil_has_timescale() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    RETURN false;
  END IF;
  IF to_regclass('evaluation_events') IS NULL THEN
    RETURN true; -- a fresh migration before 0010 creates the telemetry tables
  END IF;
  -- The conversion is one transaction, so one table stands for all of it.
  RETURN EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                 WHERE h.hypertable_name = 'evaluation_events'
                   AND h.hypertable_schema = (SELECT c.relnamespace::regnamespace::text FROM pg_class c
                                              WHERE c.oid = to_regclass('evaluation_events')));
END $$;

CREATE OR REPLACE FUNCTION vexil_timescale_upgrade() RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
  h record;
  v record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    RAISE EXCEPTION 'vexil_timescale_upgrade: the timescaledb extension is not created in this database'
      USING HINT = 'Run vexil migrate timescale: it checks that the server preloads TimescaleDB and creates the extension.';
  END IF;
  -- The projector's telemetry maintenance lock (services/roles/ingest): no maintenance pass refreshes
  -- a plain view while it is being replaced, and two upgrades at once wait for each other (the
  -- second finds nothing left to do).
  PERFORM pg_advisory_xact_lock(hashtext('vexil-telemetry-maintenance'));

  -- Hypertables, as 0010 and 0031 create them. Plain mode gave the event tables BRIN time
  -- indexes; create_hypertable makes the B-tree time index a fresh TimescaleDB migration has.
  FOR h IN SELECT * FROM (VALUES
      ('evaluation_events', 'occurred_at', INTERVAL '1 day', 'evaluation_events_time'),
      ('goal_events', 'occurred_at', INTERVAL '1 day', 'goal_events_time'),
      ('goal_attributions', 'occurred_at', INTERVAL '1 day', 'goal_attributions_time'),
      ('telemetry_batches', 'received_at', INTERVAL '1 day', 'telemetry_batches_time'),
      ('experiment_analyses', 'computed_at', INTERVAL '7 days', NULL),
      ('experiment_results', 'computed_at', INTERVAL '7 days', NULL)) AS t(tbl, col, chunk, brin)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = h.tbl) THEN
      IF h.brin IS NOT NULL THEN
        EXECUTE format('DROP INDEX IF EXISTS %I', h.brin);
      END IF;
      PERFORM create_hypertable(h.tbl::regclass, by_range(h.col::name, h.chunk), migrate_data => true);
      RETURN NEXT format('%s: hypertable on %s (existing rows moved into chunks)', h.tbl, h.col);
    END IF;
  END LOOP;

  -- Compression and retention of the raw events, as 0010 (the projector role re-applies the
  -- configured intervals at start).
  FOR h IN SELECT * FROM (VALUES
      ('evaluation_events', 'project, environment, flag', INTERVAL '90 days'),
      ('goal_events', 'project, environment, goal', INTERVAL '90 days'),
      ('goal_attributions', 'project, environment, subject_kind, subject', INTERVAL '90 days')) AS t(tbl, segmentby, keep)
  LOOP
    IF NOT (SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = h.tbl) THEN
      EXECUTE format('ALTER TABLE %I SET (timescaledb.compress, timescaledb.compress_segmentby = %L, '
                     'timescaledb.compress_orderby = %L)', h.tbl, h.segmentby, 'occurred_at DESC, event_id');
      RETURN NEXT format('%s: compression (segment by %s)', h.tbl, h.segmentby);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs WHERE hypertable_name = h.tbl AND proc_name = 'policy_compression') THEN
      PERFORM add_compression_policy(h.tbl::regclass, INTERVAL '7 days');
      RETURN NEXT format('%s: compression policy after 7 days', h.tbl);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs WHERE hypertable_name = h.tbl AND proc_name = 'policy_retention') THEN
      PERFORM add_retention_policy(h.tbl::regclass, h.keep);
      RETURN NEXT format('%s: retention policy %s', h.tbl, h.keep);
    END IF;
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs WHERE hypertable_name = 'telemetry_batches' AND proc_name = 'policy_retention') THEN
    PERFORM add_retention_policy('telemetry_batches', INTERVAL '30 days');
    RETURN NEXT 'telemetry_batches: retention policy 30 days';
  END IF;

  -- The plain rollups (materialized views, or tables), children before parents. No CASCADE: a
  -- view someone built on them stops the upgrade (and rolls it back) instead of vanishing.
  FOR v IN SELECT n.name, c.relkind
      FROM unnest(ARRAY['telemetry_ingest_per_minute', 'goal_variations_per_day', 'goal_variations_per_hour',
                        'goals_per_day', 'goals_per_hour', 'evaluations_per_day', 'evaluations_per_hour',
                        'evaluations_per_minute']) WITH ORDINALITY AS n(name, ord)
      JOIN pg_class c ON c.oid = to_regclass(n.name)
      WHERE NOT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates a WHERE a.view_name = n.name)
      ORDER BY n.ord
  LOOP
    EXECUTE format('DROP %s %I', CASE v.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, v.name);
    RETURN NEXT format('%s: plain %s dropped', v.name, CASE v.relkind WHEN 'm' THEN 'materialized view' WHEN 'v' THEN 'view' ELSE 'table' END);
  END LOOP;

  -- The continuous aggregates of 0011, parents before children, each with its policies and index.
  IF to_regclass('evaluations_per_minute') IS NULL THEN
    CREATE MATERIALIZED VIEW evaluations_per_minute
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 minute', occurred_at) AS bucket, project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, count(DISTINCT user_key) AS users,
             max(occurred_at) AS last_evaluated_at
      FROM evaluation_events
      GROUP BY 1, 2, 3, 4, 5
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('evaluations_per_minute', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
    PERFORM add_retention_policy('evaluations_per_minute', INTERVAL '7 days');
    CREATE INDEX evaluations_per_minute_flag ON evaluations_per_minute (project, environment, flag, bucket, variation);
    RETURN NEXT 'evaluations_per_minute: continuous aggregate';
  END IF;

  IF to_regclass('evaluations_per_hour') IS NULL THEN
    CREATE MATERIALIZED VIEW evaluations_per_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket, project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, max(last_evaluated_at) AS last_evaluated_at
      FROM evaluations_per_minute
      GROUP BY 1, 2, 3, 4, 5
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('evaluations_per_hour', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes');
    PERFORM add_retention_policy('evaluations_per_hour', INTERVAL '400 days');
    CREATE INDEX evaluations_per_hour_flag ON evaluations_per_hour (project, environment, flag, bucket, variation);
    RETURN NEXT 'evaluations_per_hour: continuous aggregate';
  END IF;

  IF to_regclass('evaluations_per_day') IS NULL THEN
    CREATE MATERIALIZED VIEW evaluations_per_day
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, max(last_evaluated_at) AS last_evaluated_at
      FROM evaluations_per_hour
      GROUP BY 1, 2, 3, 4, 5
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('evaluations_per_day', start_offset => INTERVAL '7 days',
      end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    CREATE INDEX evaluations_per_day_flag ON evaluations_per_day (project, environment, flag, bucket, variation);
    RETURN NEXT 'evaluations_per_day: continuous aggregate';
  END IF;

  IF to_regclass('goals_per_hour') IS NULL THEN
    CREATE MATERIALIZED VIEW goals_per_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 hour', occurred_at) AS bucket, project, environment, goal,
             count(*) AS conversions, count(DISTINCT user_key) AS users,
             coalesce(sum(value), 0) AS value_sum, coalesce(sum(value * value), 0) AS value_sum_squares
      FROM goal_events
      GROUP BY 1, 2, 3, 4
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('goals_per_hour', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes');
    PERFORM add_retention_policy('goals_per_hour', INTERVAL '400 days');
    CREATE INDEX goals_per_hour_goal ON goals_per_hour (project, environment, goal, bucket);
    RETURN NEXT 'goals_per_hour: continuous aggregate';
  END IF;

  IF to_regclass('goals_per_day') IS NULL THEN
    CREATE MATERIALIZED VIEW goals_per_day
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, project, environment, goal,
             sum(conversions)::bigint AS conversions, sum(value_sum) AS value_sum,
             sum(value_sum_squares) AS value_sum_squares
      FROM goals_per_hour
      GROUP BY 1, 2, 3, 4
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('goals_per_day', start_offset => INTERVAL '7 days',
      end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    CREATE INDEX goals_per_day_goal ON goals_per_day (project, environment, goal, bucket);
    RETURN NEXT 'goals_per_day: continuous aggregate';
  END IF;

  IF to_regclass('goal_variations_per_hour') IS NULL THEN
    CREATE MATERIALIZED VIEW goal_variations_per_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 hour', occurred_at) AS bucket, project, environment, goal,
             subject_kind, subject, variation,
             count(*) AS conversions, count(DISTINCT user_key) AS users,
             coalesce(sum(value), 0) AS value_sum, coalesce(sum(value * value), 0) AS value_sum_squares
      FROM goal_attributions
      GROUP BY 1, 2, 3, 4, 5, 6, 7
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('goal_variations_per_hour', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes');
    PERFORM add_retention_policy('goal_variations_per_hour', INTERVAL '400 days');
    CREATE INDEX goal_variations_per_hour_goal ON goal_variations_per_hour (project, environment, goal, subject_kind, subject, bucket, variation);
    RETURN NEXT 'goal_variations_per_hour: continuous aggregate';
  END IF;

  IF to_regclass('goal_variations_per_day') IS NULL THEN
    CREATE MATERIALIZED VIEW goal_variations_per_day
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, project, environment, goal,
             subject_kind, subject, variation,
             sum(conversions)::bigint AS conversions, sum(value_sum) AS value_sum,
             sum(value_sum_squares) AS value_sum_squares
      FROM goal_variations_per_hour
      GROUP BY 1, 2, 3, 4, 5, 6, 7
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('goal_variations_per_day', start_offset => INTERVAL '7 days',
      end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    CREATE INDEX goal_variations_per_day_goal ON goal_variations_per_day (project, environment, goal, subject_kind, subject, bucket, variation);
    RETURN NEXT 'goal_variations_per_day: continuous aggregate';
  END IF;

  IF to_regclass('telemetry_ingest_per_minute') IS NULL THEN
    CREATE MATERIALIZED VIEW telemetry_ingest_per_minute
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 minute', received_at) AS bucket, project, environment,
             count(*) AS batches, sum(evaluations)::bigint AS evaluations, sum(goals)::bigint AS goals,
             avg(extract(epoch FROM stored_at - received_at))::double precision AS lag_seconds_avg,
             max(extract(epoch FROM stored_at - received_at))::double precision AS lag_seconds_max
      FROM telemetry_batches
      GROUP BY 1, 2, 3
    WITH NO DATA;
    PERFORM add_continuous_aggregate_policy('telemetry_ingest_per_minute', start_offset => INTERVAL '1 day',
      end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
    PERFORM add_retention_policy('telemetry_ingest_per_minute', INTERVAL '30 days');
    CREATE INDEX telemetry_ingest_per_minute_bucket ON telemetry_ingest_per_minute (bucket, project, environment);
    RETURN NEXT 'telemetry_ingest_per_minute: continuous aggregate';
  END IF;
END $fn$;
