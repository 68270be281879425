-- The experiment running on a flag in an environment, as the rulesets projection attaches it to
-- the flag's served configuration.
CREATE TABLE rm_ruleset_experiments (
  project     text  NOT NULL,
  environment text  NOT NULL,
  flag        text  NOT NULL,
  experiment  text  NOT NULL,
  split       jsonb NOT NULL, -- domain.ExperimentSplit
  PRIMARY KEY (project, environment, flag)
);
