-- Progressive delivery read models (projections/delivery): scheduled changes, progressive
-- rollouts, auto-ops rules with their firings, and webhook triggers. Every table is derived from
-- the event store and rebuilt by replay. The experiment role's scheduler finds due work here
-- (pending changes by due time, active rollouts by next step time, armed rules), then loads the
-- aggregate itself from the event store before acting, so a lagging read model can delay work but
-- never make it happen twice or wrongly.

CREATE TABLE rm_delivery_schedules (
  project        text        NOT NULL,
  id             text        NOT NULL,
  flag           text        NOT NULL,
  environment    text        NOT NULL,
  kind           text        NOT NULL,
  at             timestamptz NOT NULL,
  status         text        NOT NULL,
  failure_reason text        NOT NULL DEFAULT '',
  resolved_at    timestamptz,
  state          jsonb       NOT NULL, -- the folded domain.ScheduledChange
  version        bigint      NOT NULL,
  created_at     timestamptz NOT NULL,
  updated_at     timestamptz NOT NULL,
  PRIMARY KEY (project, id)
);
CREATE INDEX rm_delivery_schedules_flag ON rm_delivery_schedules (project, flag, environment, at);
CREATE INDEX rm_delivery_schedules_due ON rm_delivery_schedules (at) WHERE status = 'pending';

CREATE TABLE rm_delivery_rollouts (
  project     text        NOT NULL,
  id          text        NOT NULL,
  flag        text        NOT NULL,
  environment text        NOT NULL,
  status      text        NOT NULL,
  percent     double precision NOT NULL,
  -- When the next step is due; NULL unless the rollout is scheduled or running with a step left.
  next_at     timestamptz,
  state       jsonb       NOT NULL, -- the folded domain.Rollout
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (project, id)
);
CREATE INDEX rm_delivery_rollouts_flag ON rm_delivery_rollouts (project, flag, environment);
CREATE INDEX rm_delivery_rollouts_due ON rm_delivery_rollouts (next_at) WHERE next_at IS NOT NULL;

CREATE TABLE rm_delivery_autoops_rules (
  project     text        NOT NULL,
  id          text        NOT NULL,
  flag        text        NOT NULL,
  environment text        NOT NULL,
  enabled     boolean     NOT NULL,
  triggered   boolean     NOT NULL,
  deleted     boolean     NOT NULL,
  -- When the rule was last armed (created, updated or enabled): it measures users first exposed
  -- since then.
  armed_at    timestamptz NOT NULL,
  state       jsonb       NOT NULL, -- the folded domain.AutoOpsRule
  version     bigint      NOT NULL,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL,
  PRIMARY KEY (project, id)
);
CREATE INDEX rm_delivery_autoops_rules_flag ON rm_delivery_autoops_rules (project, flag, environment);
CREATE INDEX rm_delivery_autoops_rules_armed ON rm_delivery_autoops_rules (project, id)
  WHERE enabled AND NOT triggered AND NOT deleted;

-- One row per firing (AutoOpsRuleTriggered) with its evidence.
CREATE TABLE rm_delivery_autoops_firings (
  project     text        NOT NULL,
  rule        text        NOT NULL,
  version     bigint      NOT NULL, -- of the rule stream's Triggered event
  action      text        NOT NULL,
  fired_at    timestamptz NOT NULL,
  actor       text        NOT NULL,
  evidence    jsonb       NOT NULL, -- domain.AutoOpsEvidence
  PRIMARY KEY (project, rule, version)
);

-- Triggers without their secret: the webhook verifies a secret against the trigger's stream in the
-- event store (so a rotation or a disable takes effect the moment it returns); this table maps the
-- id in the webhook URL to its project and lists triggers.
CREATE TABLE rm_delivery_triggers (
  id            text PRIMARY KEY,
  project       text        NOT NULL,
  name          text        NOT NULL,
  flag          text        NOT NULL,
  environment   text        NOT NULL,
  action        text        NOT NULL,
  enabled       boolean     NOT NULL,
  deleted       boolean     NOT NULL,
  fired         bigint      NOT NULL,
  last_fired_at timestamptz,
  version       bigint      NOT NULL,
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL
);
CREATE INDEX rm_delivery_triggers_flag ON rm_delivery_triggers (project, flag, environment);
