-- cadenza control plane: search by words, most popular first (SQLite).
--
-- The entity FTS5 tables are rebuilt with the unicode61 tokenizer (one
-- token per normalised word, prefix indexes for 1-3 characters) instead of
-- trigrams, and their rowid now puts the most popular rows first:
--
--     rowid = (100 - min(popularity, 100)) << 40 | sequence number
--
-- (`follower_count` for playlists), so `ORDER BY rowid LIMIT n` stops after
-- the first n matches instead of sorting every one. `search_rowid` keeps
-- each row's current FTS5 rowid (the sequence number is its low 40 bits and
-- never changes; `search_seq` hands out new ones), so a popularity change
-- can move the row. Typos are now caught as on PostgreSQL: through the
-- spelling dictionary `search_words`, here with a trigram FTS5 table over
-- it. Kept in step with ../postgres/0005_search_words.sql (a no-op there:
-- PostgreSQL had its dictionary since 0003). docs/catalog-api.md says why.

DROP TABLE tracks_fts;
DROP TABLE albums_fts;
DROP TABLE artists_fts;
DROP TABLE playlists_fts;
CREATE VIRTUAL TABLE tracks_fts USING fts5(search_text, id UNINDEXED,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'", prefix = '1 2 3');
CREATE VIRTUAL TABLE albums_fts USING fts5(search_text, id UNINDEXED,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'", prefix = '1 2 3');
CREATE VIRTUAL TABLE artists_fts USING fts5(search_text, id UNINDEXED,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'", prefix = '1 2 3');
CREATE VIRTUAL TABLE playlists_fts USING fts5(search_text, id UNINDEXED,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* Co M*'", prefix = '1 2 3');

ALTER TABLE tracks ADD COLUMN search_rowid INTEGER;
ALTER TABLE albums ADD COLUMN search_rowid INTEGER;
ALTER TABLE artists ADD COLUMN search_rowid INTEGER;
ALTER TABLE playlists ADD COLUMN search_rowid INTEGER;

CREATE TABLE search_seq (
    kind  TEXT     NOT NULL PRIMARY KEY,
    next  INTEGER  NOT NULL
);

-- Existing rows: their table rowid is their sequence number. Rows whose
-- search_text is still '' are indexed by the start-up backfill.
UPDATE tracks SET search_rowid = ((100 - MIN(MAX(popularity, 0), 100)) << 40) | rowid WHERE search_text <> '';
UPDATE albums SET search_rowid = ((100 - MIN(MAX(popularity, 0), 100)) << 40) | rowid WHERE search_text <> '';
UPDATE artists SET search_rowid = ((100 - MIN(MAX(popularity, 0), 100)) << 40) | rowid WHERE search_text <> '';
UPDATE playlists SET search_rowid = ((100 - MIN(MAX(follower_count, 0), 100)) << 40) | rowid
    WHERE search_text <> '';
INSERT INTO search_seq (kind, next) SELECT 'tracks', COALESCE(MAX(rowid), 0) + 1 FROM tracks;
INSERT INTO search_seq (kind, next) SELECT 'albums', COALESCE(MAX(rowid), 0) + 1 FROM albums;
INSERT INTO search_seq (kind, next) SELECT 'artists', COALESCE(MAX(rowid), 0) + 1 FROM artists;
INSERT INTO search_seq (kind, next) SELECT 'playlists', COALESCE(MAX(rowid), 0) + 1 FROM playlists;
INSERT INTO tracks_fts (rowid, search_text, id) SELECT search_rowid, search_text, id FROM tracks
    WHERE search_rowid IS NOT NULL;
INSERT INTO albums_fts (rowid, search_text, id) SELECT search_rowid, search_text, id FROM albums
    WHERE search_rowid IS NOT NULL;
INSERT INTO artists_fts (rowid, search_text, id) SELECT search_rowid, search_text, id FROM artists
    WHERE search_rowid IS NOT NULL;
INSERT INTO playlists_fts (rowid, search_text, id) SELECT search_rowid, search_text, id FROM playlists
    WHERE search_rowid IS NOT NULL;

-- The spelling dictionary: every word of every search_text (never shrinks,
-- as on PostgreSQL), and a trigram index over ' word ' for typo neighbours.
CREATE TABLE search_words (
    id    INTEGER  PRIMARY KEY,
    word  TEXT     NOT NULL UNIQUE CHECK (length(word) BETWEEN 1 AND 500)
);
CREATE VIRTUAL TABLE search_words_fts USING fts5(word, tokenize = 'trigram');
CREATE TRIGGER search_words_indexed AFTER INSERT ON search_words BEGIN
    INSERT INTO search_words_fts (rowid, word) VALUES (new.id, ' ' || new.word || ' ');
END;
WITH RECURSIVE texts (rest) AS (
    SELECT search_text FROM tracks UNION ALL SELECT search_text FROM albums
    UNION ALL SELECT search_text FROM artists UNION ALL SELECT search_text FROM playlists
), split (word, rest) AS (
    SELECT '', ltrim(rest) || ' ' FROM texts
    UNION ALL
    SELECT substr(rest, 1, instr(rest, ' ') - 1), ltrim(substr(rest, instr(rest, ' ') + 1))
    FROM split WHERE rest <> ''
)
INSERT INTO search_words (word)
SELECT DISTINCT word FROM split WHERE word <> '' AND length(word) <= 500 ORDER BY word;
