DROP VIEW IF EXISTS audit_events;
