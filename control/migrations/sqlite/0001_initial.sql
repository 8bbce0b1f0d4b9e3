-- cadenza control plane, initial schema (SQLite).
--
-- Kept in step with ../postgres/0001_initial.sql: same tables, columns,
-- constraints and indexes; only the types differ. The repository layer runs
-- on sqlx's Any driver, so every column holds a basic type:
--   ids          TEXT (opaque [A-Za-z0-9_-]{1,64}; file ids 32 hex digits)
--   *_at times   BIGINT unix milliseconds
--   booleans     INTEGER 0/1 here, BOOLEAN on PostgreSQL
--   JSON         TEXT
--   decibels     REAL (DOUBLE PRECISION on PostgreSQL)

CREATE TABLE artists (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX artists_name ON artists (name);

CREATE TABLE albums (
    id            TEXT    NOT NULL PRIMARY KEY,
    title         TEXT    NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    album_type    TEXT    NOT NULL CHECK (album_type IN ('album', 'single', 'ep', 'compilation')),
    -- Calendar date shown to users, YYYY-MM-DD.
    release_date  TEXT    CHECK (release_date IS NULL OR length(release_date) = 10),
    -- Embargo: no stream URL is issued before this instant. NULL = none.
    release_at    BIGINT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX albums_release_date ON albums (release_date DESC);
CREATE INDEX albums_release_at ON albums (release_at) WHERE release_at IS NOT NULL;

CREATE TABLE album_artists (
    album_id   TEXT     NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    artist_id  TEXT     NOT NULL REFERENCES artists (id) ON DELETE RESTRICT,
    position   INTEGER  NOT NULL CHECK (position >= 0),
    PRIMARY KEY (album_id, artist_id),
    UNIQUE (album_id, position)
);
CREATE INDEX album_artists_artist ON album_artists (artist_id);

CREATE TABLE tracks (
    id                        TEXT     NOT NULL PRIMARY KEY,
    album_id                  TEXT     NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    title                     TEXT     NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    track_number              INTEGER  NOT NULL CHECK (track_number >= 1),
    disc_number               INTEGER  NOT NULL DEFAULT 1 CHECK (disc_number >= 1),
    duration_ms               BIGINT   NOT NULL CHECK (duration_ms >= 0),
    explicit                  INTEGER  NOT NULL DEFAULT 0 CHECK (explicit IN (0, 1)),
    -- ISO 3901, 12 characters, no hyphens.
    isrc                      TEXT     CHECK (isrc IS NULL OR length(isrc) = 12),
    -- 0-100, derived from stream_count by a later job.
    popularity                INTEGER  NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 100),
    stream_count              BIGINT   NOT NULL DEFAULT 0 CHECK (stream_count >= 0),
    -- JSON object (tempo, energy, ...) from the transcoder; NULL until known.
    audio_features            TEXT,
    loudness_integrated_lufs  REAL     NOT NULL,
    loudness_true_peak_dbtp   REAL     NOT NULL,
    loudness_gain_db          REAL     NOT NULL,
    created_at                BIGINT   NOT NULL,
    updated_at                BIGINT   NOT NULL
);
CREATE INDEX tracks_album ON tracks (album_id, disc_number, track_number);
CREATE INDEX tracks_isrc ON tracks (isrc) WHERE isrc IS NOT NULL;
CREATE INDEX tracks_stream_count ON tracks (stream_count DESC);

CREATE TABLE track_artists (
    track_id   TEXT     NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    artist_id  TEXT     NOT NULL REFERENCES artists (id) ON DELETE RESTRICT,
    position   INTEGER  NOT NULL CHECK (position >= 0),
    PRIMARY KEY (track_id, artist_id),
    UNIQUE (track_id, position)
);
CREATE INDEX track_artists_artist ON track_artists (artist_id);

-- One row per published rendition (the track's manifest, flattened).
CREATE TABLE track_files (
    track_id       TEXT     NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    bitrate_kbps   INTEGER  NOT NULL CHECK (bitrate_kbps IN (24, 96, 160, 320)),
    file_id        TEXT     NOT NULL CHECK (length(file_id) = 32),
    size           BIGINT   NOT NULL CHECK (size > 0),
    duration_ms    BIGINT   NOT NULL CHECK (duration_ms >= 0),
    sample_rate    INTEGER  NOT NULL CHECK (sample_rate > 0),
    channels       INTEGER  NOT NULL CHECK (channels > 0),
    achieved_kbps  REAL     NOT NULL,
    gain_db        REAL     NOT NULL,
    mime           TEXT     NOT NULL,
    PRIMARY KEY (track_id, bitrate_kbps)
);
CREATE INDEX track_files_file ON track_files (file_id);

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    display_name  TEXT    NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    tier          TEXT    NOT NULL CHECK (tier IN ('free', 'premium')),
    -- ISO 3166-1 alpha-2, upper case.
    country       TEXT    NOT NULL CHECK (length(country) = 2),
    created_at    BIGINT  NOT NULL
);

-- Bearer tokens, stored only as the lower-case hex SHA-256 of the token.
CREATE TABLE api_tokens (
    token_sha256  TEXT    NOT NULL PRIMARY KEY CHECK (length(token_sha256) = 64),
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    BIGINT  NOT NULL,
    last_used     BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE playlists (
    id                TEXT     NOT NULL PRIMARY KEY,
    owner_id          TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              TEXT     NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description       TEXT,
    is_public         INTEGER  NOT NULL DEFAULT 1 CHECK (is_public IN (0, 1)),
    is_collaborative  INTEGER  NOT NULL DEFAULT 0 CHECK (is_collaborative IN (0, 1)),
    follower_count    BIGINT   NOT NULL DEFAULT 0 CHECK (follower_count >= 0),
    created_at        BIGINT   NOT NULL,
    updated_at        BIGINT   NOT NULL
);
CREATE INDEX playlists_owner ON playlists (owner_id);

-- Ordered by position; a track may appear more than once.
CREATE TABLE playlist_tracks (
    playlist_id  TEXT     NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    position     INTEGER  NOT NULL CHECK (position >= 0),
    track_id     TEXT     NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    added_by     TEXT     REFERENCES users (id) ON DELETE SET NULL,
    added_at     BIGINT   NOT NULL,
    PRIMARY KEY (playlist_id, position)
);
CREATE INDEX playlist_tracks_track ON playlist_tracks (track_id);

-- Saved items. item_id points at the table named by item_type, so it has
-- no foreign key; deleting a catalog entry must clean up here.
CREATE TABLE user_library (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    item_type  TEXT    NOT NULL CHECK (item_type IN ('track', 'album', 'artist', 'playlist')),
    item_id    TEXT    NOT NULL,
    saved_at   BIGINT  NOT NULL,
    PRIMARY KEY (user_id, item_type, item_id)
);
CREATE INDEX user_library_recent ON user_library (user_id, item_type, saved_at DESC);

CREATE TABLE listening_history (
    id                  INTEGER  PRIMARY KEY AUTOINCREMENT,
    user_id             TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    track_id            TEXT     NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    played_at           BIGINT   NOT NULL,
    duration_played_ms  BIGINT   NOT NULL DEFAULT 0 CHECK (duration_played_ms >= 0),
    completed           INTEGER  NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    context_type        TEXT     CHECK (context_type IS NULL OR context_type IN ('playlist', 'album', 'artist', 'search', 'library', 'radio')),
    context_id          TEXT
);
CREATE INDEX listening_history_user ON listening_history (user_id, played_at DESC);
CREATE INDEX listening_history_track ON listening_history (track_id, played_at);

-- Raw client events; idempotency_key makes a retried report count once.
CREATE TABLE playback_events (
    id               INTEGER  PRIMARY KEY AUTOINCREMENT,
    idempotency_key  TEXT     NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    user_id          TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    track_id         TEXT     NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    event_type       TEXT     NOT NULL CHECK (event_type IN ('start', 'progress', 'complete', 'skip', 'seek')),
    position_ms      BIGINT   NOT NULL DEFAULT 0 CHECK (position_ms >= 0),
    quality_kbps     INTEGER  CHECK (quality_kbps IS NULL OR quality_kbps IN (24, 96, 160, 320)),
    device_type      TEXT,
    occurred_at      BIGINT   NOT NULL,
    received_at      BIGINT   NOT NULL
);
CREATE INDEX playback_events_track ON playback_events (track_id, occurred_at);
CREATE INDEX playback_events_user ON playback_events (user_id, occurred_at);
