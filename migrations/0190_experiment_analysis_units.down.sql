DROP INDEX IF EXISTS evaluation_events_experiment_user;
DROP TABLE IF EXISTS experiment_touched_users;
DROP TABLE IF EXISTS experiment_analysis_builds;
DROP TABLE IF EXISTS experiment_analysis_sums;
DROP TABLE IF EXISTS experiment_analysis_unit_goals;
DROP TABLE IF EXISTS experiment_analysis_units;
