-- Experiment analysis units (issue 21, task D): the per-unit read model the analysis aggregates,
-- so that an analysis of a million units is an aggregate over narrow rows instead of two hash
-- aggregations of text user keys over the raw telemetry.
--
-- The experiment role maintains these tables from the raw hypertables with the experiment's
-- current settings (services/roles/analysis/units.go): fully when the settings, the window or a
-- goal's definition change (the build's fingerprint), and otherwise only for the users that the
-- telemetry projector logged as touched (experiment_touched_users) since the last build.

-- One row per user exposed to the experiment's flag with its key inside the analysis window:
-- first exposure and variation, and whether the user saw several variations (excluded).
CREATE TABLE experiment_analysis_units (
  project    text        NOT NULL,
  experiment text        NOT NULL,
  user_key   text        NOT NULL,
  variation  text        NOT NULL,
  first_at   timestamptz NOT NULL,
  multiple   boolean     NOT NULL,
  PRIMARY KEY (project, experiment, user_key)
);

-- One row per unit seen in a single variation and goal it has events for, relative to its first
-- exposure: n_post events after it (within the goal's conversion window and the analysis window),
-- y the goal's metric over them (converted 0/1, events, or capped value) and x the same metric in
-- the CUPED lookback before it. The variation is repeated so that the analysis needs no join.
CREATE TABLE experiment_analysis_unit_goals (
  project    text             NOT NULL,
  experiment text             NOT NULL,
  user_key   text             NOT NULL,
  goal       text             NOT NULL,
  variation  text             NOT NULL,
  n_post     bigint           NOT NULL,
  y          double precision NOT NULL,
  x          double precision NOT NULL,
  PRIMARY KEY (project, experiment, user_key, goal)
);

-- The sums the models need per variation (goal '': the units), over the rows above, kept with
-- them (a build subtracts the old rows of the users it recomputes and adds their new ones), so
-- that an analysis reads a handful of rows. units counts the unit rows (goal '': the units seen
-- in one variation; multiple_units those seen in several); converters the rows with n_post > 0;
-- events Σ n_post; sum_y Σy, sum_y2 Σy², sum_x Σx, sum_x2 Σx², sum_xy Σxy.
CREATE TABLE experiment_analysis_sums (
  project        text             NOT NULL,
  experiment     text             NOT NULL,
  variation      text             NOT NULL,
  goal           text             NOT NULL,
  units          bigint           NOT NULL,
  multiple_units bigint           NOT NULL,
  converters     bigint           NOT NULL,
  events         bigint           NOT NULL,
  sum_y          double precision NOT NULL,
  sum_y2         double precision NOT NULL,
  sum_x          double precision NOT NULL,
  sum_x2         double precision NOT NULL,
  sum_xy         double precision NOT NULL,
  PRIMARY KEY (project, experiment, variation, goal)
);

-- What the units of an experiment were built with: the settings' fingerprint and the snapshot of
-- the touched-users log they include (pg_visible_in_snapshot: transactions committed later are
-- the next build's).
CREATE TABLE experiment_analysis_builds (
  project     text        NOT NULL,
  experiment  text        NOT NULL,
  fingerprint text        NOT NULL,
  snapshot    pg_snapshot NOT NULL,
  built_at    timestamptz NOT NULL,
  PRIMARY KEY (project, experiment)
);

-- The users whose telemetry a projector transaction stored (experiment: the key an evaluation
-- named, '' for goal events), written in the same transaction as the events, so a build that
-- reads the log by snapshot misses nothing. Pruned after a day by the experiment role.
CREATE TABLE experiment_touched_users (
  project     text        NOT NULL,
  environment text        NOT NULL,
  experiment  text        NOT NULL,
  user_key    text        NOT NULL,
  xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
  logged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiment_touched_users_xid ON experiment_touched_users (project, environment, xid);

-- Incremental builds read the exposures of the touched users only.
CREATE INDEX IF NOT EXISTS evaluation_events_experiment_user
  ON evaluation_events (project, environment, experiment, user_key)
  WHERE experiment IS NOT NULL AND user_key IS NOT NULL;
