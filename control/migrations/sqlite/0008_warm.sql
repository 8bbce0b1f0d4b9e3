-- Warm jobs (`POST /v1/admin/warm`): what to fetch onto which POPs, and
-- the run's progress, so any replica can report or resume a job. A job is
-- `scheduled` until `start_at`, then `running` under the lease of one
-- replica (`lease_owner`, `claims` names the generation: every claim adds
-- one, and every write of the holder checks it), then `done`, `failed` or
-- `cancelled`. Times are unix milliseconds.
CREATE TABLE warm_jobs (
    id           TEXT     PRIMARY KEY,
    state        TEXT     NOT NULL CHECK (state IN ('scheduled', 'running', 'done', 'failed', 'cancelled')),
    -- The request as JSON, after validation.
    request      TEXT     NOT NULL,
    -- The run (files, POPs, per-POP and per-file state) as JSON; NULL
    -- until a replica plans it.
    progress     TEXT,
    error        TEXT,
    start_at     BIGINT   NOT NULL,
    deadline_at  BIGINT,
    lease_owner  TEXT,
    lease_until  BIGINT   NOT NULL DEFAULT 0,
    claims       BIGINT   NOT NULL DEFAULT 0,
    created_at   BIGINT   NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    updated_at   BIGINT   NOT NULL
);
CREATE INDEX warm_jobs_due ON warm_jobs (state, start_at);
CREATE INDEX warm_jobs_created ON warm_jobs (created_at);
