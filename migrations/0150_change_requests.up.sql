-- Change requests (issue 18): the read model of the changerequest/<project>/<id> streams, for
-- the lists of open requests, the flag page's pending requests and the scheduler's due ones.
CREATE TABLE IF NOT EXISTS rm_change_requests (
    project     text        NOT NULL,
    id          text        NOT NULL,
    environment text        NOT NULL,
    flag        text        NOT NULL DEFAULT '',
    segment     text        NOT NULL DEFAULT '',
    status      text        NOT NULL,
    author      text        NOT NULL,
    apply_at    timestamptz,
    state       jsonb       NOT NULL,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (project, id)
);
CREATE INDEX IF NOT EXISTS rm_change_requests_pending ON rm_change_requests (project, flag)
    WHERE status IN ('open', 'approved');
CREATE INDEX IF NOT EXISTS rm_change_requests_due ON rm_change_requests (apply_at)
    WHERE status = 'approved' AND apply_at IS NOT NULL;
