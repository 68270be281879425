-- TimescaleDB refuses to drop a hypertable together with other tables: one statement each.
DROP TABLE IF EXISTS experiment_results;
DROP TABLE IF EXISTS experiment_analyses;
DROP TABLE IF EXISTS rm_experiments;
DROP TABLE IF EXISTS rm_goals;
