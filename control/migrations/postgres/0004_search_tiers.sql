-- cadenza control plane: search's popular tier (PostgreSQL).
--
-- The SQLite set has a 0004 too, so both sets keep the same versions; it
-- changes nothing there (see that file).

-- The trigram indexes over the entities' search text went unused once
-- typos were found through the spelling dictionary (search_words, which
-- keeps its own): on 1M tracks they were 77 MB that every import and
-- every write of a title kept up to date.
DROP INDEX IF EXISTS tracks_search_trgm;
DROP INDEX IF EXISTS albums_search_trgm;
DROP INDEX IF EXISTS artists_search_trgm;
DROP INDEX IF EXISTS playlists_search_trgm;

-- The popular tiers: full-text indexes of the rows at popularity 40 and
-- above (1.5 % of the benchmark's 1M tracks: popularity has a long tail)
-- and at 20 and above (16 %). Search candidates are the most popular
-- matches; when a tier alone holds a full set of them, they are exactly
-- the set the whole index would give, found without reading the tens of
-- thousands of rows a common word matches. The literals are repeated in
-- db/search.rs (Kind::tiers): the planner uses a partial index only for a
-- query whose condition is written the same way.
CREATE INDEX tracks_search_top ON tracks USING gin (search_tsv) WHERE popularity >= 40;
CREATE INDEX tracks_search_hot ON tracks USING gin (search_tsv) WHERE popularity >= 20;
CREATE INDEX albums_search_top ON albums USING gin (search_tsv) WHERE popularity >= 40;
CREATE INDEX albums_search_hot ON albums USING gin (search_tsv) WHERE popularity >= 20;
CREATE INDEX artists_search_top ON artists USING gin (search_tsv) WHERE popularity >= 40;
CREATE INDEX artists_search_hot ON artists USING gin (search_tsv) WHERE popularity >= 20;

-- The dictionary in byte order, for the words that start with a prefix
-- (`word ~>=~ 'brigh' AND word ~<~ 'brigi'`): a search writes its last,
-- unfinished word as the whole words it completes to (db/search.rs,
-- Lexicon), whatever the database's collation.
CREATE INDEX search_words_prefix ON search_words (word text_pattern_ops);
