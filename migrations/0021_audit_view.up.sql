-- audit_events: the audit log for analysts and Grafana annotations. One row per change, newest
-- data first when ordered by time DESC:
--   time         when the change happened
--   project, entity_kind ('project', 'flag', 'segment', 'goal', 'experiment', 'schedule', ...),
--   entity_key, environment ('' when the change is not about one environment)
--   change       the event type (FlagToggled, FlagTargetingUpdated, ...)
--   actor        who: 'token:<id>', 'system:<role or plan>', 'trigger:<id>'
--   reason       the comment given with the change (X-Vexil-Reason)
--   summary      a one-line text for annotations: "<actor> <change> <entity> [in <environment>]: <reason>"
--   data, before, after   the event's payload and the parts of the entity it changed
CREATE VIEW audit_events AS
SELECT occurred_at AS time, project, entity_kind, entity_key, environment, event_type AS change, actor, reason,
       actor || ' ' || event_type || ' ' || entity_kind || ' ' || entity_key
         || CASE WHEN environment <> '' THEN ' in ' || environment ELSE '' END
         || CASE WHEN reason <> '' THEN ': ' || reason ELSE '' END AS summary,
       data, before, after, position, stream_id, version
FROM rm_audit_log;
