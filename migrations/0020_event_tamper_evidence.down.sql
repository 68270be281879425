DROP TRIGGER IF EXISTS events_no_truncate ON events;
DROP TRIGGER IF EXISTS events_append_only ON events;
DROP TRIGGER IF EXISTS events_chain ON events;
DROP FUNCTION IF EXISTS vexil_events_append_only();
DROP FUNCTION IF EXISTS vexil_events_chain();
DROP FUNCTION IF EXISTS vexil_event_content(text, bigint, text, jsonb, jsonb, timestamptz);
ALTER TABLE events DROP COLUMN IF EXISTS hash;
