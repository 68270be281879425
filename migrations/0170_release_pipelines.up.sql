-- Release pipelines (templates of stages) and releases (a flag put through a pipeline): read
-- models of the delivery projection. The scheduler finds active releases here, then acts on the
-- release aggregate loaded from the event store.
CREATE TABLE rm_delivery_pipelines (
    project    text        NOT NULL,
    key        text        NOT NULL,
    name       text        NOT NULL,
    state      jsonb       NOT NULL,
    version    bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project, key)
);

CREATE TABLE rm_delivery_releases (
    project     text        NOT NULL,
    id          text        NOT NULL,
    pipeline    text        NOT NULL,
    flag        text        NOT NULL,
    status      text        NOT NULL,
    stage       int         NOT NULL,
    environment text        NOT NULL, -- of the current stage ('' once completed)
    state       jsonb       NOT NULL,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (project, id)
);
CREATE INDEX rm_delivery_releases_active ON rm_delivery_releases (status) WHERE status IN ('running', 'paused');
CREATE INDEX rm_delivery_releases_flag ON rm_delivery_releases (project, flag);
