-- Tamper evidence for the event store.
--
-- 1. Append-only: no role may UPDATE, DELETE or TRUNCATE events through normal SQL. A trigger
--    refuses it (it binds table owners too); only a superuser who disables triggers can edit
--    rows by hand, and the hash chain below makes any such edit detectable.
-- 2. A hash chain per stream: each event's hash is SHA-256 over the previous event's hash and
--    the event's canonical content (stream, version, type, data and metadata as jsonb text, and
--    the time in microseconds since the epoch). `vexil audit verify` recomputes every link:
--    an edited, removed or reordered event breaks the chain from that point on.

ALTER TABLE events ADD COLUMN hash bytea;

CREATE FUNCTION vexil_event_content(stream_id text, version bigint, event_type text, data jsonb,
                                    metadata jsonb, occurred_at timestamptz) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
  SELECT convert_to(stream_id || E'\n' || version::text || E'\n' || event_type || E'\n' || data::text
         || E'\n' || metadata::text || E'\n' || (extract(epoch FROM occurred_at) * 1000000)::bigint::text, 'UTF8')
$$;

CREATE FUNCTION vexil_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  prev bytea := '\x'::bytea;
BEGIN
  IF NEW.version > 1 THEN
    -- Rows inserted earlier by the same statement are visible here, so one append of several
    -- events chains them in order.
    SELECT e.hash INTO prev FROM events e WHERE e.stream_id = NEW.stream_id AND e.version = NEW.version - 1;
    IF prev IS NULL THEN
      RAISE EXCEPTION 'event % v% has no predecessor to chain to', NEW.stream_id, NEW.version;
    END IF;
  END IF;
  NEW.hash := sha256(prev || vexil_event_content(NEW.stream_id, NEW.version, NEW.event_type, NEW.data,
                                                 NEW.metadata, NEW.occurred_at));
  RETURN NEW;
END $$;

CREATE TRIGGER events_chain BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION vexil_events_chain();

CREATE FUNCTION vexil_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event store is append-only: % on events is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION vexil_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION vexil_events_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC;

-- Chain the events appended before this migration, in version order per stream.
DO $$
DECLARE
  r record;
  prev bytea;
  last_stream text := NULL;
BEGIN
  ALTER TABLE events DISABLE TRIGGER events_append_only;
  FOR r IN SELECT position, stream_id, version, event_type, data, metadata, occurred_at
           FROM events ORDER BY stream_id, version LOOP
    IF last_stream IS DISTINCT FROM r.stream_id THEN
      prev := '\x'::bytea;
      last_stream := r.stream_id;
    END IF;
    prev := sha256(prev || vexil_event_content(r.stream_id, r.version, r.event_type, r.data, r.metadata, r.occurred_at));
    UPDATE events SET hash = prev WHERE position = r.position;
  END LOOP;
  ALTER TABLE events ENABLE TRIGGER events_append_only;
END $$;

ALTER TABLE events ALTER COLUMN hash SET NOT NULL;
