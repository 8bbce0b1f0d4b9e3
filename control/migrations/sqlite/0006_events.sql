-- cadenza control plane: playback events, plays and daily stream counts (SQLite).
--
-- Kept in step with ../postgres/0006_events.sql: same tables, columns,
-- constraints and indexes; only the types differ (see 0001), and here the
-- tables keyed by text are WITHOUT ROWID (one b-tree each instead of a
-- table and its primary-key index). docs/events.md has the rules.
--
-- No foreign keys: this is an accounting ledger (royalties are paid from
-- it), so it outlives catalog and user edits, and a key check per event
-- would cost the ingest path a lookup (on PostgreSQL a row lock on hot
-- tracks) per row.

-- 0001's tables were never written by any code; these replace them.
DROP TABLE listening_history;
DROP TABLE playback_events;

-- Every event a client reported, once: (user_id, event_id) is the
-- idempotency key, scoped per user so one user cannot shadow another's
-- events. Append-only.
CREATE TABLE play_events (
    user_id      TEXT    NOT NULL,
    event_id     TEXT    NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
    play_id      TEXT    NOT NULL CHECK (length(play_id) BETWEEN 1 AND 64),
    track_id     TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('start', 'progress', 'pause', 'seek', 'skip', 'complete')),
    position_ms  BIGINT  NOT NULL CHECK (position_ms >= 0),
    -- The client's clock, unix ms.
    occurred_at  BIGINT  NOT NULL,
    device       TEXT    CHECK (device IS NULL OR length(device) BETWEEN 1 AND 64),
    received_at  BIGINT  NOT NULL,
    PRIMARY KEY (user_id, event_id)
) WITHOUT ROWID;

-- One playback of one track by one user (the listening history), folded
-- from its events: a pure function of the set of its events, whatever
-- their order. `streamed_at` is the earliest client time among its events
-- at or past `threshold_ms` (seeks excluded); `stream_day` is the UTC day
-- of it, the day `stream_counts` credits this play with (NULL: not a
-- stream).
CREATE TABLE plays (
    user_id          TEXT     NOT NULL,
    play_id          TEXT     NOT NULL CHECK (length(play_id) BETWEEN 1 AND 64),
    track_id         TEXT     NOT NULL,
    -- min(30 s, half the track) when the play was first seen.
    threshold_ms     BIGINT   NOT NULL CHECK (threshold_ms >= 0),
    max_position_ms  BIGINT   NOT NULL DEFAULT 0 CHECK (max_position_ms >= 0),
    -- Earliest and latest client time of its events, unix ms.
    started_at       BIGINT   NOT NULL,
    last_at          BIGINT   NOT NULL,
    streamed_at      BIGINT,
    stream_day       TEXT     CHECK (stream_day IS NULL OR length(stream_day) = 10),
    -- Events folded in; 0 only inside the transaction that creates it.
    events           INTEGER  NOT NULL DEFAULT 0 CHECK (events >= 0),
    created_at       BIGINT   NOT NULL,
    updated_at       BIGINT   NOT NULL,
    PRIMARY KEY (user_id, play_id),
    CHECK ((streamed_at IS NULL) = (stream_day IS NULL))
) WITHOUT ROWID;
CREATE INDEX plays_history ON plays (user_id, started_at DESC);

-- Streams per track per UTC day (royalties, popularity). A row may fall
-- back to 0 when a late event moves a play's stream to an earlier day.
CREATE TABLE stream_counts (
    track_id  TEXT    NOT NULL,
    day       TEXT    NOT NULL CHECK (length(day) = 10),
    streams   BIGINT  NOT NULL CHECK (streams >= 0),
    PRIMARY KEY (track_id, day)
) WITHOUT ROWID;
CREATE INDEX stream_counts_day ON stream_counts (day, track_id);
