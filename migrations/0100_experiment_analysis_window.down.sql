DROP INDEX IF EXISTS evaluation_events_experiment;
