-- CDNs added through the admin API (`PUT /v1/admin/cdns/{name}`). Those in
-- the config file are not stored. `spec` is the CDN's JSON, the same shape
-- as a `[[cdns]]` entry, secret included: the control plane must sign with
-- it, so it is stored as the config file would hold it.
CREATE TABLE cdns (
    name        TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    spec        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- Each rendition's seek table (manifest `renditions[].seek`) as JSON
-- `[[ms, offset], …]`, served at `GET /v1/files/{file_id}/seek-table`.
-- Renditions imported before this migration have none until re-imported.
ALTER TABLE track_files ADD COLUMN seek_json TEXT NOT NULL DEFAULT '[]';
