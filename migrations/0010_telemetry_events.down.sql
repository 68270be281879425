-- One table per statement: TimescaleDB cannot drop a hypertable along with other objects.
DROP TABLE IF EXISTS experiment_user_goals;
DROP TABLE IF EXISTS experiment_exposures;
DROP TABLE IF EXISTS telemetry_batches;
DROP TABLE IF EXISTS goal_attributions;
DROP TABLE IF EXISTS goal_events;
DROP TABLE IF EXISTS evaluation_events;
