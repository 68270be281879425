-- Telemetry rollups. Queries (console stats, Grafana, experiment analysis) read these names, the
-- same on both databases:
--
--   evaluations_per_minute   bucket, project, environment, flag, variation, evaluations, users, last_evaluated_at
--   evaluations_per_hour     bucket, project, environment, flag, variation, evaluations, last_evaluated_at
--   evaluations_per_day      (as per hour)
--   goals_per_hour           bucket, project, environment, goal, conversions, users, value_sum, value_sum_squares
--   goals_per_day            (as per hour, without users)
--   goal_variations_per_hour bucket, project, environment, goal, subject_kind, subject, variation,
--                            conversions, users, value_sum, value_sum_squares
--   goal_variations_per_day  (as per hour, without users)
--   telemetry_ingest_per_minute bucket, project, environment, batches, evaluations, goals, lag_seconds_avg, lag_seconds_max
--
-- Buckets are UTC-aligned. Distinct users are counted where the bucket is computed from raw
-- events (users cannot be added up from smaller buckets): evaluations per minute, goals per hour.
--
-- TimescaleDB: continuous aggregates with real-time aggregation (materialized_only = false), the
-- hour and day levels built on the level below (hierarchical), refreshed by policies. Each
-- policy's start_offset stays inside the retention of what it reads, so a refresh never recomputes
-- a bucket whose source rows were already dropped:
--   raw events (90 days, >= 7 days enforced by config) <- per minute / goals per hour: start 3 days
--   evaluations_per_minute (kept 7 days)                <- per hour: start 3 days
--   *_per_hour (kept 400 days)                          <- per day: start 7 days
-- Events older than VEXIL_EVENTS_MAX_AGE (at most 60 hours) are refused at the edge, so every
-- accepted event lands inside the refresh windows.
--
-- Plain PostgreSQL: materialized views of the same names and columns, computed from the raw tables
-- (day from hour), which the projector role refreshes CONCURRENTLY every
-- VEXIL_TELEMETRY_REFRESH_INTERVAL, in dependency order. They are not real-time, and each refresh
-- recomputes all retained rows: plain PostgreSQL suits modest volumes (see the README).
DO $$
BEGIN
  IF vexil_has_timescale() THEN
    CREATE MATERIALIZED VIEW evaluations_per_minute
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 minute', occurred_at) AS bucket, project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, count(DISTINCT user_key) AS users,
             max(occurred_at) AS last_evaluated_at
      FROM evaluation_events
      GROUP BY 1, 2, 3, 4, 5
    WITH NO DATA;

    CREATE MATERIALIZED VIEW evaluations_per_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket, project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, max(last_evaluated_at) AS last_evaluated_at
      FROM evaluations_per_minute
      GROUP BY 1, 2, 3, 4, 5
    WITH NO DATA;

    CREATE MATERIALIZED VIEW evaluations_per_day
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, max(last_evaluated_at) AS last_evaluated_at
      FROM evaluations_per_hour
      GROUP BY 1, 2, 3, 4, 5
    WITH NO DATA;

    CREATE MATERIALIZED VIEW goals_per_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 hour', occurred_at) AS bucket, project, environment, goal,
             count(*) AS conversions, count(DISTINCT user_key) AS users,
             coalesce(sum(value), 0) AS value_sum, coalesce(sum(value * value), 0) AS value_sum_squares
      FROM goal_events
      GROUP BY 1, 2, 3, 4
    WITH NO DATA;

    CREATE MATERIALIZED VIEW goals_per_day
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, project, environment, goal,
             sum(conversions)::bigint AS conversions, sum(value_sum) AS value_sum,
             sum(value_sum_squares) AS value_sum_squares
      FROM goals_per_hour
      GROUP BY 1, 2, 3, 4
    WITH NO DATA;

    CREATE MATERIALIZED VIEW goal_variations_per_hour
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 hour', occurred_at) AS bucket, project, environment, goal,
             subject_kind, subject, variation,
             count(*) AS conversions, count(DISTINCT user_key) AS users,
             coalesce(sum(value), 0) AS value_sum, coalesce(sum(value * value), 0) AS value_sum_squares
      FROM goal_attributions
      GROUP BY 1, 2, 3, 4, 5, 6, 7
    WITH NO DATA;

    CREATE MATERIALIZED VIEW goal_variations_per_day
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, project, environment, goal,
             subject_kind, subject, variation,
             sum(conversions)::bigint AS conversions, sum(value_sum) AS value_sum,
             sum(value_sum_squares) AS value_sum_squares
      FROM goal_variations_per_hour
      GROUP BY 1, 2, 3, 4, 5, 6, 7
    WITH NO DATA;

    CREATE MATERIALIZED VIEW telemetry_ingest_per_minute
    WITH (timescaledb.continuous, timescaledb.materialized_only = false, timescaledb.create_group_indexes = false) AS
      SELECT time_bucket(INTERVAL '1 minute', received_at) AS bucket, project, environment,
             count(*) AS batches, sum(evaluations)::bigint AS evaluations, sum(goals)::bigint AS goals,
             avg(extract(epoch FROM stored_at - received_at))::double precision AS lag_seconds_avg,
             max(extract(epoch FROM stored_at - received_at))::double precision AS lag_seconds_max
      FROM telemetry_batches
      GROUP BY 1, 2, 3
    WITH NO DATA;

    PERFORM add_continuous_aggregate_policy('evaluations_per_minute', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');
    PERFORM add_continuous_aggregate_policy('evaluations_per_hour', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes');
    PERFORM add_continuous_aggregate_policy('evaluations_per_day', start_offset => INTERVAL '7 days',
      end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    PERFORM add_continuous_aggregate_policy('goals_per_hour', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes');
    PERFORM add_continuous_aggregate_policy('goals_per_day', start_offset => INTERVAL '7 days',
      end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    PERFORM add_continuous_aggregate_policy('goal_variations_per_hour', start_offset => INTERVAL '3 days',
      end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes');
    PERFORM add_continuous_aggregate_policy('goal_variations_per_day', start_offset => INTERVAL '7 days',
      end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour');
    PERFORM add_continuous_aggregate_policy('telemetry_ingest_per_minute', start_offset => INTERVAL '1 day',
      end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute');

    PERFORM add_retention_policy('evaluations_per_minute', INTERVAL '7 days');
    PERFORM add_retention_policy('evaluations_per_hour', INTERVAL '400 days');
    PERFORM add_retention_policy('goals_per_hour', INTERVAL '400 days');
    PERFORM add_retention_policy('goal_variations_per_hour', INTERVAL '400 days');
    PERFORM add_retention_policy('telemetry_ingest_per_minute', INTERVAL '30 days');
  ELSE
    CREATE MATERIALIZED VIEW evaluations_per_minute AS
      SELECT date_bin(INTERVAL '1 minute', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, count(DISTINCT user_key) AS users,
             max(occurred_at) AS last_evaluated_at
      FROM evaluation_events
      WHERE occurred_at >= now() - INTERVAL '7 days' -- the minute level keeps 7 days, as on TimescaleDB
      GROUP BY 1, 2, 3, 4, 5;

    CREATE MATERIALIZED VIEW evaluations_per_hour AS
      SELECT date_bin(INTERVAL '1 hour', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, max(occurred_at) AS last_evaluated_at
      FROM evaluation_events
      GROUP BY 1, 2, 3, 4, 5;

    CREATE MATERIALIZED VIEW evaluations_per_day AS
      SELECT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment, flag, variation,
             sum(evaluations)::bigint AS evaluations, max(last_evaluated_at) AS last_evaluated_at
      FROM evaluations_per_hour
      GROUP BY 1, 2, 3, 4, 5;

    CREATE MATERIALIZED VIEW goals_per_hour AS
      SELECT date_bin(INTERVAL '1 hour', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment, goal,
             count(*) AS conversions, count(DISTINCT user_key) AS users,
             coalesce(sum(value), 0) AS value_sum, coalesce(sum(value * value), 0) AS value_sum_squares
      FROM goal_events
      GROUP BY 1, 2, 3, 4;

    CREATE MATERIALIZED VIEW goals_per_day AS
      SELECT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment, goal,
             sum(conversions)::bigint AS conversions, sum(value_sum) AS value_sum,
             sum(value_sum_squares) AS value_sum_squares
      FROM goals_per_hour
      GROUP BY 1, 2, 3, 4;

    CREATE MATERIALIZED VIEW goal_variations_per_hour AS
      SELECT date_bin(INTERVAL '1 hour', occurred_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment, goal, subject_kind, subject, variation,
             count(*) AS conversions, count(DISTINCT user_key) AS users,
             coalesce(sum(value), 0) AS value_sum, coalesce(sum(value * value), 0) AS value_sum_squares
      FROM goal_attributions
      GROUP BY 1, 2, 3, 4, 5, 6, 7;

    CREATE MATERIALIZED VIEW goal_variations_per_day AS
      SELECT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment, goal, subject_kind, subject, variation,
             sum(conversions)::bigint AS conversions, sum(value_sum) AS value_sum,
             sum(value_sum_squares) AS value_sum_squares
      FROM goal_variations_per_hour
      GROUP BY 1, 2, 3, 4, 5, 6, 7;

    CREATE MATERIALIZED VIEW telemetry_ingest_per_minute AS
      SELECT date_bin(INTERVAL '1 minute', received_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
             project, environment,
             count(*) AS batches, sum(evaluations)::bigint AS evaluations, sum(goals)::bigint AS goals,
             avg(extract(epoch FROM stored_at - received_at))::double precision AS lag_seconds_avg,
             max(extract(epoch FROM stored_at - received_at))::double precision AS lag_seconds_max
      FROM telemetry_batches
      WHERE received_at >= now() - INTERVAL '30 days'
      GROUP BY 1, 2, 3;
  END IF;
END $$;

-- Query indexes (on TimescaleDB they go to the materialization hypertables). On plain PostgreSQL
-- they are unique, as REFRESH MATERIALIZED VIEW CONCURRENTLY requires: the group key with the
-- bucket before the last grouping column, so a time range of one flag or goal is one index range.
DO $$
DECLARE
  u text := CASE WHEN vexil_has_timescale() THEN '' ELSE 'UNIQUE' END;
BEGIN
  EXECUTE format('CREATE %s INDEX evaluations_per_minute_flag ON evaluations_per_minute (project, environment, flag, bucket, variation)', u);
  EXECUTE format('CREATE %s INDEX evaluations_per_hour_flag ON evaluations_per_hour (project, environment, flag, bucket, variation)', u);
  EXECUTE format('CREATE %s INDEX evaluations_per_day_flag ON evaluations_per_day (project, environment, flag, bucket, variation)', u);
  EXECUTE format('CREATE %s INDEX goals_per_hour_goal ON goals_per_hour (project, environment, goal, bucket)', u);
  EXECUTE format('CREATE %s INDEX goals_per_day_goal ON goals_per_day (project, environment, goal, bucket)', u);
  EXECUTE format('CREATE %s INDEX goal_variations_per_hour_goal ON goal_variations_per_hour (project, environment, goal, subject_kind, subject, bucket, variation)', u);
  EXECUTE format('CREATE %s INDEX goal_variations_per_day_goal ON goal_variations_per_day (project, environment, goal, subject_kind, subject, bucket, variation)', u);
  EXECUTE format('CREATE %s INDEX telemetry_ingest_per_minute_bucket ON telemetry_ingest_per_minute (bucket, project, environment)', u);
END $$;
