-- Outgoing webhooks (services/roles/webhooks). Subscriptions are configuration rows, not event
-- streams: like console people (0080) they say where to send news of the history, they are not
-- part of it, and `vexil replay --verify` / `vexil audit verify` never look at them. What they
-- deliver comes from the event log: the projector's webhook outbox projection inserts one
-- delivery per (subscription, event) in the transaction that advances its checkpoint, so each
-- event is queued exactly once per subscription; a worker delivers at least once.
CREATE TABLE webhook_subscriptions (
    id          text PRIMARY KEY,
    project     text NOT NULL,
    url         text NOT NULL,
    -- The signing secret (HMAC-SHA256). Stored as is: Vexil must sign with it on every delivery.
    secret      text NOT NULL,
    kinds       text[] NOT NULL,
    -- json: Vexil's envelope; slack: {"text": ...} for a Slack (or compatible) incoming webhook.
    format      text NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack')),
    description text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL
);
CREATE INDEX webhook_subscriptions_project ON webhook_subscriptions (project);

-- The outbox: one row per delivery (an event for a subscription, or a test). Delivered at least
-- once by workers that claim due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE webhook_deliveries (
    id              text PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    project         text NOT NULL,
    kind            text NOT NULL,
    -- The event's position in the log; NULL for a test delivery. Unique per subscription: the
    -- exactly-once insertion the outbox projection relies on under redelivery.
    event_position  bigint,
    payload         jsonb NOT NULL,
    -- pending (waiting or retrying), delivered, failed (gave up after the retry window).
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    response_code   integer,
    latency_ms      integer,
    last_error      text NOT NULL DEFAULT '',
    CONSTRAINT webhook_deliveries_once UNIQUE (subscription_id, event_position)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (subscription_id, created_at DESC);

-- Every attempt, for the delivery log (status, latency, response code, attempt number).
CREATE TABLE webhook_attempts (
    delivery_id   text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now(),
    response_code integer,
    latency_ms    integer NOT NULL,
    error         text NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);
