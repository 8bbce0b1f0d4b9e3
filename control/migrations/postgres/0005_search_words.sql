-- cadenza control plane: search by words, most popular first (PostgreSQL).
--
-- Nothing changes here. SQLite's 0005 rebuilds its FTS5 tables (word
-- tokens, rowids in popularity order) and adds the spelling dictionary
-- PostgreSQL has had since 0003. This file keeps the two sets at the same
-- versions.
SELECT 1;
