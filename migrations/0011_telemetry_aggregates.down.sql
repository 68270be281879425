-- Children before parents (hierarchical continuous aggregates).
DROP MATERIALIZED VIEW IF EXISTS telemetry_ingest_per_minute;
DROP MATERIALIZED VIEW IF EXISTS goal_variations_per_day;
DROP MATERIALIZED VIEW IF EXISTS goal_variations_per_hour;
DROP MATERIALIZED VIEW IF EXISTS goals_per_day;
DROP MATERIALIZED VIEW IF EXISTS goals_per_hour;
DROP MATERIALIZED VIEW IF EXISTS evaluations_per_day;
DROP MATERIALIZED VIEW IF EXISTS evaluations_per_hour;
DROP MATERIALIZED VIEW IF EXISTS evaluations_per_minute;
