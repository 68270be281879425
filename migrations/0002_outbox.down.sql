DROP TABLE IF EXISTS projection_checkpoints;
DROP TABLE IF EXISTS watermill_offsets_outbox;
DROP TABLE IF EXISTS watermill_outbox;
