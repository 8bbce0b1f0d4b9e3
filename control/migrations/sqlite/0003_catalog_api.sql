-- no-transaction
-- cadenza control plane: the catalog, search, playlist and library APIs (SQLite).
--
-- Kept in step with ../postgres/0003_catalog_api.sql: same tables, columns,
-- constraints and indexes; only the types differ (see 0001), and each
-- backend indexes `search_text` its own way (here FTS5 tables with the
-- trigram tokenizer, there pg_trgm and full-text GIN indexes).
--
-- Runs outside sqlx's transaction (first line) because SQLite cannot drop
-- NOT NULL: `tracks` is rebuilt (the 12-step procedure of the SQLite docs),
-- which needs foreign keys off, and PRAGMA foreign_keys is a no-op inside a
-- transaction. The whole change is still one transaction.

PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

-- Tracks may exist before their audio: a label's metadata (bulk import,
-- admin API) arrives before the masters are transcoded. Loudness is NULL
-- until files are registered; playback answers 409 no_audio meanwhile.
-- `search_text` is the normalised text search matches (title and credited
-- artists), written by the repository layer; '' = not indexed yet.
CREATE TABLE tracks_v3 (
    id                        TEXT     NOT NULL PRIMARY KEY,
    album_id                  TEXT     NOT NULL REFERENCES albums (id) ON DELETE CASCADE,
    title                     TEXT     NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    track_number              INTEGER  NOT NULL CHECK (track_number >= 1),
    disc_number               INTEGER  NOT NULL DEFAULT 1 CHECK (disc_number >= 1),
    duration_ms               BIGINT   NOT NULL CHECK (duration_ms >= 0),
    explicit                  INTEGER  NOT NULL DEFAULT 0 CHECK (explicit IN (0, 1)),
    isrc                      TEXT     CHECK (isrc IS NULL OR length(isrc) = 12),
    popularity                INTEGER  NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 100),
    stream_count              BIGINT   NOT NULL DEFAULT 0 CHECK (stream_count >= 0),
    audio_features            TEXT,
    loudness_integrated_lufs  REAL,
    loudness_true_peak_dbtp   REAL,
    loudness_gain_db          REAL,
    search_text               TEXT     NOT NULL DEFAULT '',
    created_at                BIGINT   NOT NULL,
    updated_at                BIGINT   NOT NULL
);
INSERT INTO tracks_v3 (id, album_id, title, track_number, disc_number, duration_ms, explicit, isrc,
                       popularity, stream_count, audio_features, loudness_integrated_lufs,
                       loudness_true_peak_dbtp, loudness_gain_db, created_at, updated_at)
    SELECT id, album_id, title, track_number, disc_number, duration_ms, explicit, isrc,
           popularity, stream_count, audio_features, loudness_integrated_lufs,
           loudness_true_peak_dbtp, loudness_gain_db, created_at, updated_at
    FROM tracks;
DROP TABLE tracks;
ALTER TABLE tracks_v3 RENAME TO tracks;
CREATE INDEX tracks_album ON tracks (album_id, disc_number, track_number);
CREATE INDEX tracks_isrc ON tracks (isrc) WHERE isrc IS NOT NULL;
CREATE INDEX tracks_stream_count ON tracks (stream_count DESC);
-- An artist's top tracks: its credits joined to tracks by popularity.
CREATE INDEX tracks_popularity ON tracks (popularity DESC, id);
CREATE INDEX tracks_unindexed ON tracks (id) WHERE search_text = '';

ALTER TABLE artists ADD COLUMN popularity INTEGER NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 100);
ALTER TABLE artists ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX artists_unindexed ON artists (id) WHERE search_text = '';
ALTER TABLE albums ADD COLUMN popularity INTEGER NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 100);
ALTER TABLE albums ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX albums_unindexed ON albums (id) WHERE search_text = '';
CREATE INDEX album_artists_by_artist ON album_artists (artist_id, album_id);

-- Playlists are rebuilt (no API wrote them before this version): items get
-- their own id and a non-unique position, so inserting or moving items
-- renumbers a range in one UPDATE; `version` backs the snapshot id.
DROP TABLE playlist_tracks;
DROP TABLE playlists;
CREATE TABLE playlists (
    id                TEXT     NOT NULL PRIMARY KEY,
    owner_id          TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              TEXT     NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description       TEXT     CHECK (description IS NULL OR length(description) <= 1000),
    is_public         INTEGER  NOT NULL DEFAULT 1 CHECK (is_public IN (0, 1)),
    is_collaborative  INTEGER  NOT NULL DEFAULT 0 CHECK (is_collaborative IN (0, 1)),
    -- Bumped by every change; the snapshot id encodes it.
    version           BIGINT   NOT NULL DEFAULT 1 CHECK (version >= 1),
    item_count        INTEGER  NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    follower_count    BIGINT   NOT NULL DEFAULT 0 CHECK (follower_count >= 0),
    search_text       TEXT     NOT NULL DEFAULT '',
    created_at        BIGINT   NOT NULL,
    updated_at        BIGINT   NOT NULL
);
CREATE INDEX playlists_owner ON playlists (owner_id, created_at);

-- Positions are 0..item_count-1 after every committed change.
CREATE TABLE playlist_items (
    id           INTEGER  PRIMARY KEY AUTOINCREMENT,
    playlist_id  TEXT     NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    position     INTEGER  NOT NULL CHECK (position >= 0),
    track_id     TEXT     NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    added_by     TEXT     REFERENCES users (id) ON DELETE SET NULL,
    added_at     BIGINT   NOT NULL
);
CREATE INDEX playlist_items_order ON playlist_items (playlist_id, position);
CREATE INDEX playlist_items_track ON playlist_items (track_id);

-- Users the owner lets edit a collaborative playlist's items.
CREATE TABLE playlist_collaborators (
    playlist_id  TEXT    NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at     BIGINT  NOT NULL,
    PRIMARY KEY (playlist_id, user_id)
);
CREATE INDEX playlist_collaborators_user ON playlist_collaborators (user_id);

-- Search: one FTS5 table per kind over `search_text`, trigram tokenizer
-- (substring and typo-tolerant matching). Rows are written by the
-- repository layer in the same transaction as the entity; the rowid is the
-- first 8 bytes of SHA-256(id) as a signed integer (`db::search::rowid`),
-- stable across VACUUM, unlike an implicit rowid.
CREATE VIRTUAL TABLE tracks_fts USING fts5(search_text, id UNINDEXED, tokenize = 'trigram');
CREATE VIRTUAL TABLE albums_fts USING fts5(search_text, id UNINDEXED, tokenize = 'trigram');
CREATE VIRTUAL TABLE artists_fts USING fts5(search_text, id UNINDEXED, tokenize = 'trigram');
CREATE VIRTUAL TABLE playlists_fts USING fts5(search_text, id UNINDEXED, tokenize = 'trigram');

-- Candidates of a common word are the most popular matches.
CREATE INDEX albums_popularity ON albums (popularity DESC, id);
CREATE INDEX artists_popularity ON artists (popularity DESC, id);
CREATE INDEX playlists_followers ON playlists (follower_count DESC, id);

-- Tokens can be listed and revoked one by one: a short public id and an
-- optional label. Existing tokens get an id from their hash.
ALTER TABLE api_tokens ADD COLUMN id TEXT;
ALTER TABLE api_tokens ADD COLUMN label TEXT CHECK (label IS NULL OR length(label) <= 200);
UPDATE api_tokens SET id = 'tok_' || substr(token_sha256, 1, 16) WHERE id IS NULL;
CREATE UNIQUE INDEX api_tokens_id ON api_tokens (id);

COMMIT;
PRAGMA foreign_keys = ON;
