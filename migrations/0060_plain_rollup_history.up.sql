-- Plain PostgreSQL keeps rollup history beyond raw retention, as TimescaleDB does (hour levels
-- 400 days, day levels forever). 0011 made the hour and day levels materialized views computed
-- from the raw tables, so their history ended with raw retention (90 days by default) and each
-- refresh recomputed every retained row. Here they become tables of the same names and columns,
-- filled from the views once; the projector then refreshes only their recent buckets (the last
-- 3 days for the hour levels, 7 for the day levels: the same windows as TimescaleDB's refresh
-- policies, inside raw retention, which config keeps at 7 days or more), so older buckets stay
-- whatever happens to the raw rows. The minute levels (kept 7 days) stay materialized views.
-- Nothing changes on TimescaleDB, whose continuous aggregates already behave this way.
DO $$
DECLARE
  r record;
BEGIN
  IF vexil_has_timescale() THEN
    RETURN;
  END IF;
  -- Copy every level first (the day views read the hour views), then drop views, day levels first.
  FOR r IN SELECT * FROM unnest(ARRAY['evaluations_per_hour', 'evaluations_per_day', 'goals_per_hour',
      'goals_per_day', 'goal_variations_per_hour', 'goal_variations_per_day']) AS t(name)
  LOOP
    EXECUTE format('CREATE TABLE %I AS SELECT * FROM %I', r.name || '_history', r.name);
  END LOOP;
  FOR r IN SELECT * FROM unnest(ARRAY['goal_variations_per_day', 'goal_variations_per_hour', 'goals_per_day',
      'goals_per_hour', 'evaluations_per_day', 'evaluations_per_hour']) AS t(name)
  LOOP
    EXECUTE format('DROP MATERIALIZED VIEW %I', r.name);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', r.name || '_history', r.name);
  END LOOP;
  CREATE UNIQUE INDEX evaluations_per_hour_flag ON evaluations_per_hour (project, environment, flag, bucket, variation);
  CREATE UNIQUE INDEX evaluations_per_day_flag ON evaluations_per_day (project, environment, flag, bucket, variation);
  CREATE UNIQUE INDEX goals_per_hour_goal ON goals_per_hour (project, environment, goal, bucket);
  CREATE UNIQUE INDEX goals_per_day_goal ON goals_per_day (project, environment, goal, bucket);
  CREATE UNIQUE INDEX goal_variations_per_hour_goal ON goal_variations_per_hour (project, environment, goal, subject_kind, subject, bucket, variation);
  CREATE UNIQUE INDEX goal_variations_per_day_goal ON goal_variations_per_day (project, environment, goal, subject_kind, subject, bucket, variation);
  -- The window refreshed and the retention of the hour levels scan by bucket.
  CREATE INDEX evaluations_per_hour_bucket ON evaluations_per_hour (bucket);
  CREATE INDEX evaluations_per_day_bucket ON evaluations_per_day (bucket);
  CREATE INDEX goals_per_hour_bucket ON goals_per_hour (bucket);
  CREATE INDEX goals_per_day_bucket ON goals_per_day (bucket);
  CREATE INDEX goal_variations_per_hour_bucket ON goal_variations_per_hour (bucket);
  CREATE INDEX goal_variations_per_day_bucket ON goal_variations_per_day (bucket);
END $$;
