-- cadenza control plane: manifest v2 gains and the ingest job queue (SQLite).
--
-- Kept in step with ../postgres/0002_ingest.sql: same tables, columns,
-- constraints and indexes; only the types differ (see 0001).

-- The rendition's album gain (manifest v2 `album_loudness.gain_db`), when
-- the track was ingested together with its album. `gain_db` now holds the
-- rendition's own gain rather than the master's.
ALTER TABLE track_files ADD COLUMN album_gain_db REAL;

-- One job: a track, or an album's tracks ingested together.
CREATE TABLE ingest_jobs (
    id                TEXT     NOT NULL PRIMARY KEY,
    -- Set when the tracks are an album ingested together (album gain).
    album_id          TEXT,
    state             TEXT     NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    -- Claims so far; every claim adds one, so (id, attempts) names a claim.
    attempts          INTEGER  NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      INTEGER  NOT NULL CHECK (max_attempts >= 1),
    -- The worker holding (or that last held) the lease.
    worker            TEXT,
    -- Lower-case hex SHA-256 of the current lease token; never the token.
    lease_sha256      TEXT     CHECK (lease_sha256 IS NULL OR length(lease_sha256) = 64),
    -- Set while running.
    lease_expires_at  BIGINT,
    -- A queued job is not handed out before this instant (retry backoff).
    not_before        BIGINT   NOT NULL DEFAULT 0,
    last_error        TEXT,
    created_at        BIGINT   NOT NULL,
    updated_at        BIGINT   NOT NULL,
    CHECK (state <> 'running' OR (lease_sha256 IS NOT NULL AND lease_expires_at IS NOT NULL))
);
-- Claims look for the oldest ready job; listings go newest first.
CREATE INDEX ingest_jobs_state ON ingest_jobs (state, created_at, id);
CREATE INDEX ingest_jobs_created ON ingest_jobs (created_at DESC, id DESC);

-- The tracks of a job, in order, with the catalog metadata each is
-- registered with when the job completes.
CREATE TABLE ingest_job_tracks (
    job_id    TEXT     NOT NULL REFERENCES ingest_jobs (id) ON DELETE CASCADE,
    position  INTEGER  NOT NULL CHECK (position >= 0),
    track_id  TEXT     NOT NULL,
    -- Store key of the master, under masters/.
    master    TEXT     NOT NULL CHECK (length(master) BETWEEN 9 AND 512),
    -- JSON object: album_id, title, track_number, disc_number, explicit,
    -- isrc, artist_ids (validated when the job was registered).
    metadata  TEXT     NOT NULL,
    -- 1 while the job is queued or running, so a track has at most one
    -- unfinished job (the unique index below), whatever the isolation level.
    active    INTEGER  NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    PRIMARY KEY (job_id, position),
    UNIQUE (job_id, track_id)
);
CREATE UNIQUE INDEX ingest_job_tracks_active ON ingest_job_tracks (track_id) WHERE active = 1;
CREATE INDEX ingest_job_tracks_track ON ingest_job_tracks (track_id);
