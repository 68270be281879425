-- Back to 0011's materialized views on plain PostgreSQL: history older than raw retention is lost
-- (the views are recomputed from the raw tables).
DO $$
BEGIN
  IF vexil_has_timescale() THEN
    RETURN;
  END IF;
  DROP TABLE goal_variations_per_day, goal_variations_per_hour, goals_per_day, goals_per_hour,
    evaluations_per_day, evaluations_per_hour;
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
  CREATE UNIQUE INDEX evaluations_per_hour_flag ON evaluations_per_hour (project, environment, flag, bucket, variation);
  CREATE UNIQUE INDEX evaluations_per_day_flag ON evaluations_per_day (project, environment, flag, bucket, variation);
  CREATE UNIQUE INDEX goals_per_hour_goal ON goals_per_hour (project, environment, goal, bucket);
  CREATE UNIQUE INDEX goals_per_day_goal ON goals_per_day (project, environment, goal, bucket);
  CREATE UNIQUE INDEX goal_variations_per_hour_goal ON goal_variations_per_hour (project, environment, goal, subject_kind, subject, bucket, variation);
  CREATE UNIQUE INDEX goal_variations_per_day_goal ON goal_variations_per_day (project, environment, goal, subject_kind, subject, bucket, variation);
END $$;
