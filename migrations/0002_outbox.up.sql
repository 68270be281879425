-- The transactional outbox and the projection checkpoints.
--
-- watermill_outbox / watermill_offsets_outbox are exactly the tables watermill-sql v4
-- (DefaultPostgreSQLSchema + DefaultPostgreSQLOffsetsAdapter, topic "outbox") creates when it
-- auto-initializes. They are created here instead, so the event store can publish into the outbox
-- inside its own transaction without DDL. Keep them identical to the adapter's
-- SchemaInitializingQueries when upgrading watermill-sql. Requires PostgreSQL >= 13 (xid8).
--
-- The event store inserts one row per append (payload: {"stream_id", "events"}) in the append's
-- transaction; the relay (consumer group "relay") reads rows in (transaction_id, offset) order,
-- only from transactions older than every running one, publishes them to the domain stream, and
-- records how far it got in watermill_offsets_outbox. Forwarded rows are pruned by the relay.
CREATE TABLE watermill_outbox (
  "offset" BIGSERIAL,
  "uuid" VARCHAR(36) NOT NULL,
  "created_at" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  "payload" JSON DEFAULT NULL,
  "metadata" JSON DEFAULT NULL,
  "transaction_id" xid8 NOT NULL,
  PRIMARY KEY ("transaction_id", "offset")
);

CREATE TABLE watermill_offsets_outbox (
  consumer_group VARCHAR(255) NOT NULL,
  offset_acked BIGINT,
  last_processed_transaction_id xid8 NOT NULL,
  PRIMARY KEY (consumer_group)
);

-- How far each projection has applied each stream. The projector locks the row, applies the
-- events after it and advances it in one transaction, so redelivered notifications and concurrent
-- projector instances apply every event exactly once. Inline projections advance theirs in the
-- append's transaction.
CREATE TABLE projection_checkpoints (
  projection  text        NOT NULL,
  stream_id   text        NOT NULL,
  version     bigint      NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (projection, stream_id)
);
