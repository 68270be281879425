-- The web console's sign-in limit, shared by every replica: one token bucket per key ("email:…",
-- "ip:…", "setup:…"). An attempt takes a token; tokens come back at a fixed rate up to the burst.
-- Updated in one upsert per attempt, so concurrent attempts on several replicas are counted once
-- each (the row lock serializes them). Rows idle for a day are pruned by the limiter itself.
CREATE TABLE console_login_limits (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    allowed    boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_login_limits_updated ON console_login_limits (updated_at);
