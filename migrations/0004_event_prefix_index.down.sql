DROP INDEX IF EXISTS events_stream_c;
