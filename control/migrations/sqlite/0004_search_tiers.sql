-- cadenza control plane: search's popular tier (SQLite).
--
-- Nothing changes here. PostgreSQL's 0004 drops its unused trigram indexes
-- and adds partial full-text indexes over the popular rows; an FTS5 table
-- has no partial form, and SQLite's candidates come from the FTS5 tables
-- as before. This file keeps the two sets at the same versions.
SELECT 1;
