-- Experiment analysis reads units from the raw evaluation events of the experiment's flag inside
-- its window [started_at, stopped_at] (issue 21): this partial index serves that scan, without
-- touching the evaluations of flags that run no experiment.
CREATE INDEX IF NOT EXISTS evaluation_events_experiment
  ON evaluation_events (project, environment, experiment, flag, occurred_at)
  WHERE experiment IS NOT NULL AND user_key IS NOT NULL;
