-- Loading every stream of a kind in a project (all flags of "demo": stream ids "flag/demo/...")
-- is a range scan in "C" collation; see EventStore.LoadPrefix.
CREATE INDEX events_stream_c ON events ((stream_id COLLATE "C"), version);
