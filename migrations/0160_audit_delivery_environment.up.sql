-- Issue 20: the outcome events of schedules, rollouts, auto-ops rules and webhook triggers
-- (ScheduleApplied, RolloutStepApplied, RolloutPaused, AutoOpsRuleTriggered, TriggerFired, ...)
-- now carry their environment, and the audit projection files the older ones under their
-- aggregate's environment (projections/audit environmentOf). This files the rows projected
-- before the same way, so `GET .../audit?environment=` lists them and a replay --verify of an
-- existing log finds the live table equal to the rebuilt one. Every event of such a stream is
-- about the one environment its creation event names.
UPDATE rm_audit_log a
SET environment = c.environment
FROM (SELECT stream_id, data->>'environment' AS environment
      FROM rm_audit_log
      WHERE entity_kind IN ('schedule', 'rollout', 'autoops', 'trigger') AND version = 1) c
WHERE a.stream_id = c.stream_id
  AND a.entity_kind IN ('schedule', 'rollout', 'autoops', 'trigger')
  AND a.environment = ''
  AND coalesce(c.environment, '') <> '';
