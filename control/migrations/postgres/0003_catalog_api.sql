-- cadenza control plane: the catalog, search, playlist and library APIs (PostgreSQL).
--
-- Kept in step with ../sqlite/0003_catalog_api.sql: same tables, columns,
-- constraints and indexes; only the types differ (see 0001), and each
-- backend indexes `search_text` its own way (here pg_trgm and full-text
-- GIN indexes, there FTS5 tables with the trigram tokenizer).

-- pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may
-- create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Tracks may exist before their audio (see the SQLite file).
ALTER TABLE tracks ALTER COLUMN loudness_integrated_lufs DROP NOT NULL;
ALTER TABLE tracks ALTER COLUMN loudness_true_peak_dbtp DROP NOT NULL;
ALTER TABLE tracks ALTER COLUMN loudness_gain_db DROP NOT NULL;
ALTER TABLE tracks ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX tracks_popularity ON tracks (popularity DESC, id);
CREATE INDEX tracks_unindexed ON tracks (id) WHERE search_text = '';

ALTER TABLE artists ADD COLUMN popularity INTEGER NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 100);
ALTER TABLE artists ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX artists_unindexed ON artists (id) WHERE search_text = '';
ALTER TABLE albums ADD COLUMN popularity INTEGER NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 100);
ALTER TABLE albums ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
CREATE INDEX albums_unindexed ON albums (id) WHERE search_text = '';
CREATE INDEX album_artists_by_artist ON album_artists (artist_id, album_id);

DROP TABLE playlist_tracks;
DROP TABLE playlists;
CREATE TABLE playlists (
    id                TEXT     NOT NULL PRIMARY KEY,
    owner_id          TEXT     NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              TEXT     NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description       TEXT     CHECK (description IS NULL OR length(description) <= 1000),
    is_public         BOOLEAN  NOT NULL DEFAULT TRUE,
    is_collaborative  BOOLEAN  NOT NULL DEFAULT FALSE,
    version           BIGINT   NOT NULL DEFAULT 1 CHECK (version >= 1),
    item_count        INTEGER  NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    follower_count    BIGINT   NOT NULL DEFAULT 0 CHECK (follower_count >= 0),
    search_text       TEXT     NOT NULL DEFAULT '',
    created_at        BIGINT   NOT NULL,
    updated_at        BIGINT   NOT NULL
);
CREATE INDEX playlists_owner ON playlists (owner_id, created_at);

CREATE TABLE playlist_items (
    id           BIGSERIAL  PRIMARY KEY,
    playlist_id  TEXT       NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    position     INTEGER    NOT NULL CHECK (position >= 0),
    track_id     TEXT       NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    added_by     TEXT       REFERENCES users (id) ON DELETE SET NULL,
    added_at     BIGINT     NOT NULL
);
CREATE INDEX playlist_items_order ON playlist_items (playlist_id, position);
CREATE INDEX playlist_items_track ON playlist_items (track_id);

CREATE TABLE playlist_collaborators (
    playlist_id  TEXT    NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at     BIGINT  NOT NULL,
    PRIMARY KEY (playlist_id, user_id)
);
CREATE INDEX playlist_collaborators_user ON playlist_collaborators (user_id);

-- Search: a prefix-capable full-text index (the first candidates) and
-- trigram similarity (typos), both over `search_text`. The tsvector is a
-- stored generated column (PostgreSQL only; SQLite's FTS5 tables hold
-- their own copy) so an index recheck does not recompute it per row.
ALTER TABLE tracks ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
ALTER TABLE albums ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
ALTER TABLE artists ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
ALTER TABLE playlists ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
CREATE INDEX tracks_search_trgm ON tracks USING gin (search_text gin_trgm_ops);
CREATE INDEX tracks_search_fts ON tracks USING gin (search_tsv);
CREATE INDEX albums_search_trgm ON albums USING gin (search_text gin_trgm_ops);
CREATE INDEX albums_search_fts ON albums USING gin (search_tsv);
CREATE INDEX artists_search_trgm ON artists USING gin (search_text gin_trgm_ops);
CREATE INDEX artists_search_fts ON artists USING gin (search_tsv);
CREATE INDEX playlists_search_trgm ON playlists USING gin (search_text gin_trgm_ops);
CREATE INDEX playlists_search_fts ON playlists USING gin (search_tsv);
-- Every word any search_text holds (PostgreSQL only): a query word with
-- no prefix match is looked up here by trigram similarity (a small table,
-- so this is fast) and the candidates are searched again with the close
-- words: spelling correction. Words are added as texts are written and
-- never removed (a stale word only finds nothing).
CREATE TABLE search_words (
    word  TEXT  NOT NULL PRIMARY KEY CHECK (length(word) BETWEEN 1 AND 500)
);
CREATE INDEX search_words_trgm ON search_words USING gin (word gin_trgm_ops);

-- Candidates of a common word are the most popular matches: the planner
-- walks these instead of sorting every match.
CREATE INDEX albums_popularity ON albums (popularity DESC, id);
CREATE INDEX artists_popularity ON artists (popularity DESC, id);
CREATE INDEX playlists_followers ON playlists (follower_count DESC, id);

ALTER TABLE api_tokens ADD COLUMN id TEXT;
ALTER TABLE api_tokens ADD COLUMN label TEXT CHECK (label IS NULL OR length(label) <= 200);
UPDATE api_tokens SET id = 'tok_' || substr(token_sha256, 1, 16) WHERE id IS NULL;
CREATE UNIQUE INDEX api_tokens_id ON api_tokens (id);
