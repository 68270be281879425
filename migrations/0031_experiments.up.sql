-- Experiments read models (goals, experiments) and the analysis results the experiment role
-- computes on a schedule. Results are append-only points in time, so a report shows how the
-- result evolved: a hypertable on TimescaleDB, a table on plain PostgreSQL.
CREATE TABLE rm_goals (
  project     text        NOT NULL,
  key         text        NOT NULL,
  name        text        NOT NULL,
  kind        text        NOT NULL,
  direction   text        NOT NULL,
  archived    boolean     NOT NULL DEFAULT false,
  state       jsonb       NOT NULL,
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (project, key)
);

CREATE TABLE rm_experiments (
  project     text        NOT NULL,
  key         text        NOT NULL,
  name        text        NOT NULL,
  flag        text        NOT NULL,
  environment text        NOT NULL,
  status      text        NOT NULL,
  archived    boolean     NOT NULL DEFAULT false,
  state       jsonb       NOT NULL,
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (project, key)
);
CREATE INDEX rm_experiments_status ON rm_experiments (status) WHERE NOT archived;

-- One row per analysis run: sample, exclusions, sample-ratio check and the verdict.
CREATE TABLE experiment_analyses (
  computed_at    timestamptz NOT NULL,
  project        text        NOT NULL,
  experiment     text        NOT NULL,
  users          bigint      NOT NULL,
  excluded_users bigint      NOT NULL,
  srm            jsonb       NOT NULL,
  verdict        text        NOT NULL,
  duration_ms    double precision NOT NULL,
  PRIMARY KEY (project, experiment, computed_at)
);

-- One row per analysis, goal and variation.
CREATE TABLE experiment_results (
  computed_at            timestamptz      NOT NULL,
  project                text             NOT NULL,
  experiment             text             NOT NULL,
  goal                   text             NOT NULL,
  goal_kind              text             NOT NULL,
  variation              text             NOT NULL,
  control                boolean          NOT NULL,
  users                  bigint           NOT NULL,
  estimate               double precision NOT NULL, -- conversion rate, events per user, or mean value
  ci_low                 double precision NOT NULL,
  ci_high                double precision NOT NULL,
  chance_to_beat_control double precision NOT NULL,
  probability_to_be_best double precision NOT NULL,
  expected_loss          double precision NOT NULL,
  uplift                 double precision NOT NULL,
  figures                jsonb            NOT NULL, -- the whole per-variation analysis
  PRIMARY KEY (project, experiment, goal, variation, computed_at)
);

DO $$
BEGIN
  IF vexil_has_timescale() THEN
    PERFORM create_hypertable('experiment_analyses', by_range('computed_at', INTERVAL '7 days'));
    PERFORM create_hypertable('experiment_results', by_range('computed_at', INTERVAL '7 days'));
  END IF;
END $$;
