//! Playback-event queries: a batch recorded in one transaction, the
//! listening history, royalties and the popularity recompute.
//!
//! # One batch, one transaction, a fixed number of statements
//!
//! [`record`] runs, whatever the batch's size:
//!
//! 1. `INSERT INTO plays … ON CONFLICT DO UPDATE SET events = plays.events
//!    RETURNING …`: creates the plays the batch starts (empty) and, for
//!    every play of the batch, returns its current state *and locks its
//!    row* until commit (PostgreSQL: the upsert's row lock, taken on the
//!    latest committed version; SQLite: the one write transaction). A play
//!    whose stored track differs from an event's is a `play_conflict`.
//! 2. `INSERT INTO play_events … ON CONFLICT DO NOTHING RETURNING
//!    event_id`: the events that are new. A concurrent transaction
//!    inserting the same event makes this one wait for its outcome, so an
//!    event is new to exactly one transaction.
//! 3. The new events are folded into the locked states
//!    ([`crate::events::Play::fold`]) and written back with one multi-row
//!    upsert.
//! 4. Each play whose stream day changed moves one stream between days in
//!    `stream_counts` (one multi-row upsert for the gains; a move's loss,
//!    rare, is an `UPDATE`).
//!
//! On SQLite, batches also take turns on a per-database mutex before they
//! ask for the write lock: SQLite's busy handler polls with sleeps of up
//! to 100 ms, which left the unluckiest batch waiting near a second under
//! load (p99 950 ms at 16 senders; 96 ms with the queue, same throughput).
//!
//! Because every read-modify-write of a play happens under its row lock,
//! in the transaction that inserted the events it folds, a play is counted
//! exactly once however its events are duplicated, reordered, retried or
//! raced. Locks are taken in one order everywhere — plays by id, then
//! events by id, then stream counts by (track, day) — so concurrent
//! batches cannot deadlock.
//!
//! # Durability
//!
//! The transaction commits before the handler answers. On PostgreSQL it
//! runs with `synchronous_commit = on` whatever the server's default, so
//! an acknowledged batch is in the WAL on disk. On SQLite the pool runs
//! `synchronous = NORMAL` (a commit survives the process, not the
//! machine); an event batch switches its connection to `FULL` for its
//! commit, so the WAL is fsynced before the answer, and back afterwards.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{AnyConnection, Connection as _, Executor as _, Row};

use super::catalog::values_list;
use super::search::{self as search_index, Kind};
use super::{Backend, Db, get_unsigned};
use crate::error::ApiError;
use crate::events::{Day, Heard, Play, count_change, popularity};
use crate::types::{DailyStreams, HistoryItem, PlayEvent};

/// An event that passed every check that needs no transaction.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    /// Its index in the batch.
    pub(crate) index: usize,
    pub(crate) event: &'a PlayEvent,
    /// The stream threshold of its track (used if it starts the play).
    pub(crate) threshold_ms: i64,
}

/// What [`record`] did.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) accepted: u64,
    /// Checked events that were stored already.
    pub(crate) duplicates: u64,
    /// Batch indexes of checked events whose play belongs to another track.
    pub(crate) conflicts: Vec<usize>,
    /// Batch indexes of events rejected before the transaction that are
    /// stored all the same (sent before, when they were acceptable): they
    /// are duplicates, not rejections.
    pub(crate) stored: HashSet<usize>,
    /// Plays that became streams (net of none moved).
    pub(crate) new_streams: u64,
}

/// Parameter `i`: `$i` (PostgreSQL) or `?` (SQLite, where sqlx binds
/// `?`s by their own count, so a statement never mixes the two forms).
fn param(backend: Backend, i: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${i}"),
    }
}

/// `$from, $from+1, …` (PostgreSQL) or `?, ?, …` (SQLite; see
/// [`values_list`]): `n` parameters after the statement's first `from - 1`.
fn list(backend: Backend, from: usize, n: usize) -> String {
    match backend {
        Backend::Sqlite => vec!["?"; n].join(", "),
        Backend::Postgres => (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
    }
}

/// Durations of the tracks `ids` that exist.
pub(crate) async fn durations(db: &Db, ids: &[&str]) -> Result<HashMap<String, i64>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql =
        format!("SELECT id, duration_ms FROM tracks WHERE id IN ({})", list(db.backend(), 1, ids.len()));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(db.pool()).await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("duration_ms")?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

/// Record `user`'s checked events in one transaction (see the module
/// docs); `rejected` are the `(index, event_id)` of the batch's events
/// refused before it, to tell which of them were stored before.
pub(crate) async fn record(
    db: &Db,
    user: &str,
    checked: &[Checked<'_>],
    rejected: &[(usize, &str)],
    now: i64,
) -> Result<Recorded, ApiError> {
    if checked.is_empty() && rejected.is_empty() {
        return Ok(Recorded::default());
    }
    let backend = db.backend();
    // SQLite has one writer at a time, and a connection waiting for the
    // write lock polls with sleeps of up to 100 ms (its busy handler): with
    // many batches waiting, an unlucky one loses every round and waits
    // near a second. Waiting here instead is first come, first served.
    let _turn = match backend {
        Backend::Sqlite => Some(db.event_writer().lock().await),
        Backend::Postgres => None,
    };
    let mut conn = db.pool().acquire().await?;
    if backend == Backend::Sqlite {
        conn.execute("PRAGMA synchronous = FULL").await?;
    }
    let outcome = record_in(&mut conn, backend, user, checked, rejected, now).await;
    if backend == Backend::Sqlite
        && let Err(e) = conn.execute("PRAGMA synchronous = NORMAL").await
    {
        // The batch's outcome stands (it may be committed); the connection
        // merely syncs more than it must.
        tracing::warn!(error = %e, "cannot restore synchronous = NORMAL");
    }
    outcome
}

async fn record_in(
    conn: &mut AnyConnection,
    backend: Backend,
    user: &str,
    checked: &[Checked<'_>],
    rejected: &[(usize, &str)],
    now: i64,
) -> Result<Recorded, ApiError> {
    let begin = match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        // One round trip: the simple-query protocol takes both.
        Backend::Postgres => "BEGIN; SET LOCAL synchronous_commit = on",
    };
    let mut tx = conn.begin_with(begin).await?;
    let mut out = Recorded::default();

    // 1. Every play of the batch, created if new, locked, as stored. The
    //    batch's first event of a new play names its track.
    let mut first: BTreeMap<&str, &Checked<'_>> = BTreeMap::new();
    for c in checked {
        first.entry(c.event.play_id.as_str()).or_insert(c);
    }
    let mut plays: HashMap<String, (String, Play)> = HashMap::with_capacity(first.len());
    if !first.is_empty() {
        let sql = format!(
            "INSERT INTO plays (user_id, play_id, track_id, threshold_ms, max_position_ms, started_at,
                                last_at, events, created_at, updated_at) {}
             ON CONFLICT (user_id, play_id) DO UPDATE SET events = plays.events
             RETURNING play_id, track_id, threshold_ms, max_position_ms, started_at, last_at,
                       streamed_at, events",
            values_list(backend, first.len(), 10)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (play, c) in &first {
            q = q
                .bind(user)
                .bind(*play)
                .bind(c.event.track_id.as_str())
                .bind(c.threshold_ms)
                .bind(0_i64)
                .bind(0_i64)
                .bind(0_i64)
                .bind(0_i64)
                .bind(now)
                .bind(now);
        }
        for row in q.fetch_all(&mut *tx).await? {
            let play = Play {
                threshold_ms: row.try_get("threshold_ms")?,
                max_position_ms: row.try_get("max_position_ms")?,
                started_at: row.try_get("started_at")?,
                last_at: row.try_get("last_at")?,
                streamed_at: row.try_get("streamed_at")?,
                events: row.try_get("events")?,
            };
            plays.insert(row.try_get("play_id")?, (row.try_get("track_id")?, play));
        }
    }
    let mut fresh: Vec<&Checked<'_>> = Vec::with_capacity(checked.len());
    for c in checked {
        match plays.get(c.event.play_id.as_str()) {
            Some((track, _)) if track == c.event.track_id.as_str() => fresh.push(c),
            Some(_) => out.conflicts.push(c.index),
            None => return Err(ApiError::internal("events", &"a play of the batch was not returned")),
        }
    }

    // Refused events that are stored all the same are duplicates.
    let mut refused: Vec<(usize, &str)> = rejected.to_vec();
    refused.extend(
        out.conflicts
            .iter()
            .filter_map(|i| checked.iter().find(|c| c.index == *i))
            .map(|c| (c.index, c.event.event_id.as_str())),
    );
    if !refused.is_empty() {
        let sql = format!(
            "SELECT event_id FROM play_events WHERE user_id = {} AND event_id IN ({})",
            param(backend, 1),
            list(backend, 2, refused.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user);
        for (_, id) in &refused {
            q = q.bind(*id);
        }
        let stored: HashSet<String> =
            q.fetch_all(&mut *tx).await?.iter().map(|r| r.try_get("event_id")).collect::<Result<_, _>>()?;
        out.stored = refused.iter().filter(|(_, id)| stored.contains(*id)).map(|(i, _)| *i).collect();
        out.conflicts.retain(|i| !out.stored.contains(i));
    }

    // 2. The events, in id order; those that come back are new.
    fresh.sort_by(|a, b| a.event.event_id.cmp(&b.event.event_id));
    let mut new: HashSet<String> = HashSet::new();
    if !fresh.is_empty() {
        let sql = format!(
            "INSERT INTO play_events (user_id, event_id, play_id, track_id, kind, position_ms,
                                      occurred_at, device, received_at) {}
             ON CONFLICT (user_id, event_id) DO NOTHING RETURNING event_id",
            values_list(backend, fresh.len(), 9)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in &fresh {
            let e = c.event;
            q = q
                .bind(user)
                .bind(e.event_id.as_str())
                .bind(e.play_id.as_str())
                .bind(e.track_id.as_str())
                .bind(e.kind.as_str())
                .bind(position(e))
                .bind(e.occurred_at_ms)
                .bind(e.device.as_deref())
                .bind(now);
        }
        new = q.fetch_all(&mut *tx).await?.iter().map(|r| r.try_get("event_id")).collect::<Result<_, _>>()?;
    }
    out.accepted = new.len() as u64;
    out.duplicates = (fresh.len() - new.len()) as u64;

    // 3. Fold the new events into their plays.
    let mut changed: BTreeMap<&str, Play> = BTreeMap::new();
    for c in fresh.iter().filter(|c| new.contains(&c.event.event_id)) {
        let e = c.event;
        let before = match changed.get(e.play_id.as_str()) {
            Some(p) => *p,
            None => plays[e.play_id.as_str()].1,
        };
        let heard = Heard { kind: e.kind, position_ms: position(e), at: e.occurred_at_ms };
        changed.insert(e.play_id.as_str(), before.fold(heard));
    }
    if !changed.is_empty() {
        let sql = format!(
            "INSERT INTO plays (user_id, play_id, track_id, threshold_ms, max_position_ms, started_at,
                                last_at, streamed_at, stream_day, events, created_at, updated_at) {}
             ON CONFLICT (user_id, play_id) DO UPDATE SET
                 max_position_ms = excluded.max_position_ms, started_at = excluded.started_at,
                 last_at = excluded.last_at, streamed_at = excluded.streamed_at,
                 stream_day = excluded.stream_day, events = excluded.events,
                 updated_at = excluded.updated_at",
            values_list(backend, changed.len(), 12)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (play, p) in &changed {
            let track = plays[*play].0.as_str();
            q = q
                .bind(user)
                .bind(*play)
                .bind(track)
                .bind(p.threshold_ms)
                .bind(p.max_position_ms)
                .bind(p.started_at)
                .bind(p.last_at)
                .bind(p.streamed_at)
                .bind(p.stream_day().map(|d| d.to_string()))
                .bind(p.events)
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *tx).await?;
    }
    // A play this batch created but whose events were all stored already
    // (under another play id): nothing to keep.
    let empty: Vec<&str> = plays
        .iter()
        .filter(|(id, (_, p))| p.events == 0 && !changed.contains_key(id.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    if !empty.is_empty() {
        let sql = format!(
            "DELETE FROM plays WHERE user_id = {} AND events = 0 AND play_id IN ({})",
            param(backend, 1),
            list(backend, 2, empty.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user);
        for id in &empty {
            q = q.bind(*id);
        }
        q.execute(&mut *tx).await?;
    }

    // 4. Streams gained, lost or moved, per (track, day).
    let mut deltas: BTreeMap<(&str, Day), i64> = BTreeMap::new();
    for (play, after) in &changed {
        let (track, before) = &plays[*play];
        let (lose, gain) = count_change(before.stream_day(), after.stream_day());
        if let Some(d) = lose {
            *deltas.entry((track.as_str(), d)).or_default() -= 1;
        }
        if let Some(d) = gain {
            *deltas.entry((track.as_str(), d)).or_default() += 1;
        }
        if before.streamed_at.is_none() && after.streamed_at.is_some() {
            out.new_streams += 1;
        }
    }
    apply_deltas(&mut tx, backend, &deltas).await?;
    tx.commit().await?;
    Ok(out)
}

/// `position_ms` as stored (the body's bound keeps it far below `i64::MAX`).
fn position(e: &PlayEvent) -> i64 {
    i64::try_from(e.position_ms).unwrap_or(i64::MAX)
}

/// Add `deltas` to `stream_counts` in key order: runs of gains as one
/// upsert each, each loss as an `UPDATE` (a loss is of a day already
/// counted, so its row exists; an upsert would offer the row a negative
/// count, which the CHECK refuses before the conflict is seen).
async fn apply_deltas(
    conn: &mut AnyConnection,
    backend: Backend,
    deltas: &BTreeMap<(&str, Day), i64>,
) -> Result<(), sqlx::Error> {
    let mut gains: Vec<(&str, String, i64)> = Vec::new();
    for ((track, day), delta) in deltas {
        if *delta > 0 {
            gains.push((track, day.to_string(), *delta));
        } else if *delta < 0 {
            add_gains(conn, backend, &std::mem::take(&mut gains)).await?;
            sqlx::query("UPDATE stream_counts SET streams = streams + $1 WHERE track_id = $2 AND day = $3")
                .bind(*delta)
                .bind(*track)
                .bind(day.to_string())
                .execute(&mut *conn)
                .await?;
        }
    }
    add_gains(conn, backend, &gains).await
}

async fn add_gains(
    conn: &mut AnyConnection,
    backend: Backend,
    gains: &[(&str, String, i64)],
) -> Result<(), sqlx::Error> {
    if gains.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO stream_counts (track_id, day, streams) {}
         ON CONFLICT (track_id, day) DO UPDATE SET streams = stream_counts.streams + excluded.streams",
        values_list(backend, gains.len(), 3)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (track, day, n) in gains {
        q = q.bind(*track).bind(day.as_str()).bind(*n);
    }
    q.execute(conn).await?;
    Ok(())
}

/// One window of `user`'s plays started in `[from, to)` (unix ms), newest
/// first, and how many there are.
pub(crate) async fn history(
    db: &Db,
    user: &str,
    (from, to): (i64, i64),
    (limit, offset): (i64, i64),
) -> Result<(u64, Vec<HistoryItem>), ApiError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM plays WHERE user_id = $1 AND started_at >= $2 AND started_at < $3 AND events > 0",
    )
    .bind(user)
    .bind(from)
    .bind(to)
    .fetch_one(db.pool())
    .await?;
    let total: u64 = get_unsigned(&row, "n")?;
    let rows = sqlx::query(
        "SELECT play_id, track_id, started_at, last_at, max_position_ms, streamed_at, events FROM plays
         WHERE user_id = $1 AND started_at >= $2 AND started_at < $3 AND events > 0
         ORDER BY started_at DESC, play_id DESC LIMIT $4 OFFSET $5",
    )
    .bind(user)
    .bind(from)
    .bind(to)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            let streamed_at: Option<i64> = r.try_get("streamed_at")?;
            Ok(HistoryItem {
                play_id: r.try_get("play_id")?,
                track_id: r.try_get("track_id")?,
                started_at_ms: r.try_get("started_at")?,
                last_at_ms: r.try_get("last_at")?,
                position_ms: get_unsigned(r, "max_position_ms")?,
                streamed: streamed_at.is_some(),
                streamed_at_ms: streamed_at,
                events: get_unsigned(r, "events")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((total, items))
}

/// Royalties over the days `from..=to`: the total streams, the tracks
/// streamed, and one window of the (day, track) counts, by day then track.
pub(crate) async fn royalties(
    db: &Db,
    (from, to): (Day, Day),
    (limit, offset): (i64, i64),
) -> Result<(u64, u64, u64, Vec<DailyStreams>), ApiError> {
    let (from, to) = (from.to_string(), to.to_string());
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(streams), 0) AS BIGINT) AS total, COUNT(DISTINCT track_id) AS tracks
         FROM stream_counts WHERE day >= $1 AND day <= $2 AND streams > 0",
    )
    .bind(&from)
    .bind(&to)
    .fetch_one(db.pool())
    .await?;
    let rows_total: u64 = get_unsigned(&row, "n")?;
    let streams: u64 = get_unsigned(&row, "total")?;
    let tracks: u64 = get_unsigned(&row, "tracks")?;
    let rows = sqlx::query(
        "SELECT day, track_id, streams FROM stream_counts WHERE day >= $1 AND day <= $2 AND streams > 0
         ORDER BY day, track_id LIMIT $3 OFFSET $4",
    )
    .bind(&from)
    .bind(&to)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(DailyStreams {
                day: r.try_get("day")?,
                track_id: r.try_get("track_id")?,
                streams: get_unsigned(r, "streams")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((rows_total, streams, tracks, items))
}

/// Tracks per popularity transaction.
const POPULARITY_CHUNK: usize = 500;

/// What [`recompute_popularity`] did.
#[derive(Debug)]
pub(crate) struct Recomputed {
    pub(crate) max_streams: u64,
    pub(crate) tracks_updated: u64,
}

/// Set every track's popularity from its streams since `since` (relative
/// to the most streamed, [`popularity`]) and its `stream_count` to its
/// streams of all time. Tracks are written in chunks, each in one
/// transaction with its search rows (SQLite's FTS5 rowids encode
/// popularity: [`search_index::reposition`] moves them, as an import's
/// change would). Rows already right are not written.
pub(crate) async fn recompute_popularity(db: &Db, since: Day) -> Result<Recomputed, ApiError> {
    let sums = |sql: &'static str, bind: Option<String>| async move {
        let mut q = sqlx::query(sql);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        let rows = q.fetch_all(db.pool()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("track_id")?, get_unsigned::<u64>(r, "n")?)))
            .collect::<Result<HashMap<String, u64>, sqlx::Error>>()
    };
    let window = sums(
        "SELECT track_id, CAST(SUM(streams) AS BIGINT) AS n FROM stream_counts WHERE day >= $1 GROUP BY track_id",
        Some(since.to_string()),
    )
    .await?;
    let all_time =
        sums("SELECT track_id, CAST(SUM(streams) AS BIGINT) AS n FROM stream_counts GROUP BY track_id", None)
            .await?;
    let max = window.values().copied().max().unwrap_or(0);
    // What every track should hold; tracks not listed should hold 0 and 0.
    let want = |id: &str| -> (i64, i64) {
        let p = popularity(window.get(id).copied().unwrap_or(0), max);
        let n = all_time.get(id).copied().unwrap_or(0);
        (i64::from(p), i64::try_from(n).unwrap_or(i64::MAX))
    };
    // Candidates: tracks with streams, and tracks holding a non-zero value.
    let mut ids: Vec<String> = all_time.keys().cloned().collect();
    let held = sqlx::query("SELECT id FROM tracks WHERE popularity <> 0 OR stream_count <> 0")
        .fetch_all(db.pool())
        .await?;
    for r in &held {
        ids.push(r.try_get("id")?);
    }
    ids.sort_unstable();
    ids.dedup();
    let mut updated = 0_u64;
    for chunk in ids.chunks(POPULARITY_CHUNK) {
        let mut tx = db.begin_write().await?;
        let sql = format!(
            "SELECT id, popularity, stream_count FROM tracks WHERE id IN ({})",
            list(db.backend(), 1, chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.as_str());
        }
        let current = q.fetch_all(&mut *tx).await?;
        let mut moved: Vec<String> = Vec::new();
        for r in &current {
            let id: String = r.try_get("id")?;
            let (popularity, count): (i64, i64) = (r.try_get("popularity")?, r.try_get("stream_count")?);
            let (p, n) = want(&id);
            if (popularity, count) == (p, n) {
                continue;
            }
            sqlx::query("UPDATE tracks SET popularity = $1, stream_count = $2 WHERE id = $3")
                .bind(p)
                .bind(n)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            updated += 1;
            if popularity != p {
                moved.push(id);
            }
        }
        let refs: Vec<&str> = moved.iter().map(String::as_str).collect();
        search_index::reposition(&mut tx, db.backend(), Kind::Track, &refs).await?;
        tx.commit().await?;
    }
    Ok(Recomputed { max_streams: max, tracks_updated: updated })
}
