//! Catalog queries: the import upsert (also run by an ingest job's
//! completion), the track view, and what playback needs to pick a file.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cadenza_config::ids::{FileId, TrackId};
use cadenza_config::ladder::Rung;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::search::{self as search_index, Kind};
use super::{Backend, Db, get_bool, get_unsigned, now_ms};
use crate::api::paging::Page;
use crate::catalog::{AlbumRow, ArtistRow, Batch, ExternalRef, FileRow, RefTable, TrackRow};
use crate::error::{ApiError, ErrorKind};
use crate::search;
use crate::types::{
    AlbumSimplified, AlbumSummary, AlbumType, ArtistResponse, ArtistSummary, ImportResponse, PlaylistHit,
    PlaylistHitOwner, StreamFile, TrackLoudness, TrackResponse,
};
use crate::validate::echo;

/// Upsert `batch` in one transaction: artists, then albums, then tracks
/// with their credits and files. Re-importing the same batch changes
/// nothing (not even `updated_at`); counters such as `stream_count` are
/// never touched.
pub(crate) async fn import(db: &Db, batch: &Batch) -> Result<ImportResponse, ApiError> {
    let mut tx = db.begin_write().await?;
    let counts = import_in(&mut tx, db.backend(), batch, now_ms()).await?;
    tx.commit().await?;
    Ok(counts)
}

/// Rows per multi-row `INSERT`: 17 columns × 500 stays far below both
/// databases' bound-parameter limits (SQLite 32766, PostgreSQL 65535).
const ROWS_PER_INSERT: usize = 500;

/// [`import`] inside the caller's transaction (an ingest job's completion
/// registers its tracks and finishes the job in one). The caller commits;
/// on error it must drop the transaction.
///
/// Rows new to the catalog are written with multi-row `INSERT`s (a bulk
/// import of a fresh catalog is a few statements per 500 rows); rows that
/// exist are upserted one by one, keeping what the batch does not carry.
/// Every row's `search_text` is written with it.
pub(crate) async fn import_in(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    batch: &Batch,
    now: i64,
) -> Result<ImportResponse, ApiError> {
    let mut renamed = Vec::new();
    for chunk in batch.artists.chunks(ROWS_PER_INSERT) {
        let ids: Vec<&str> = chunk.iter().map(|a| a.id.as_str()).collect();
        let mut existing = lock_existing(tx, backend, "artists", "name", &ids).await?;
        let fresh: Vec<&ArtistRow> = chunk.iter().filter(|a| !existing.contains_key(&a.id)).collect();
        let inserted = insert_artists(tx, backend, &fresh, now).await.map_err(constraint_error)?;
        let raced = raced(&fresh, |a| a.id.as_str(), &inserted);
        existing.extend(lock_existing(tx, backend, "artists", "name", &raced).await?);
        for a in chunk.iter().filter(|a| existing.contains_key(&a.id)) {
            upsert_artist(tx, a, now).await.map_err(constraint_error)?;
            search_index::index(tx, backend, Kind::Artist, &a.id, &search::index_text(&a.name, &[])).await?;
            if existing.get(&a.id).is_some_and(|old| *old != a.name) {
                renamed.push(a.id.clone());
            }
        }
    }
    // Everything the batch names but does not carry must already exist.
    check_refs(tx, &batch.external_refs()).await?;
    let mut names = ArtistNames::new(batch);
    for chunk in batch.albums.chunks(ROWS_PER_INSERT) {
        let ids: Vec<&str> = chunk.iter().map(|a| a.id.as_str()).collect();
        let mut existing = lock_existing(tx, backend, "albums", "title", &ids).await?;
        names.load(tx, chunk.iter().flat_map(|a| &a.artist_ids)).await?;
        let fresh: Vec<&AlbumRow> = chunk.iter().filter(|a| !existing.contains_key(&a.id)).collect();
        let inserted = insert_albums(tx, backend, &fresh, &names, now).await.map_err(constraint_error)?;
        let raced = raced(&fresh, |a| a.id.as_str(), &inserted);
        existing.extend(lock_existing(tx, backend, "albums", "title", &raced).await?);
        for a in chunk.iter().filter(|a| existing.contains_key(&a.id)) {
            upsert_album(tx, backend, a, now).await.map_err(constraint_error)?;
            let text = search::index_text(&a.title, &names.of(&a.artist_ids));
            search_index::index(tx, backend, Kind::Album, &a.id, &text).await?;
        }
    }
    for chunk in batch.tracks.chunks(ROWS_PER_INSERT) {
        let ids: Vec<&str> = chunk.iter().map(|t| t.id.as_str()).collect();
        let mut existing = lock_existing(tx, backend, "tracks", "title", &ids).await?;
        names.load(tx, chunk.iter().flat_map(|t| &t.meta.artist_ids)).await?;
        let fresh: Vec<&TrackRow> = chunk.iter().filter(|t| !existing.contains_key(t.id.as_str())).collect();
        let inserted = insert_tracks(tx, backend, &fresh, &names, now).await.map_err(constraint_error)?;
        let raced = raced(&fresh, |t| t.id.as_str(), &inserted);
        existing.extend(lock_existing(tx, backend, "tracks", "title", &raced).await?);
        let stored: Vec<&str> =
            chunk.iter().map(|t| t.id.as_str()).filter(|id| existing.contains_key(*id)).collect();
        let current = stored_tracks(tx, &stored).await?;
        for t in chunk.iter().filter(|t| existing.contains_key(t.id.as_str())) {
            let text = search::index_text(&t.meta.title, &names.of(&t.meta.artist_ids));
            if current.get(t.id.as_str()).is_some_and(|c| c.is(t, &text)) {
                continue; // a re-import that changes nothing writes nothing
            }
            upsert_track(tx, backend, t, now).await.map_err(constraint_error)?;
            search_index::index(tx, backend, Kind::Track, t.id.as_str(), &text).await?;
        }
    }
    for artist in &renamed {
        reindex_credits(tx, backend, artist).await?;
    }
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(ImportResponse {
        artists: count(batch.artists.len()),
        albums: count(batch.albums.len()),
        tracks: count(batch.tracks.len()),
    })
}

/// What a stored track holds that a metadata-only import can change.
struct StoredTrack {
    album_id: String,
    title: String,
    track_number: i64,
    disc_number: i64,
    duration_ms: i64,
    explicit: bool,
    isrc: Option<String>,
    popularity: i64,
    search_text: String,
    artist_ids: Vec<String>,
}

impl StoredTrack {
    /// Whether importing `t` (indexed as `text`) would change nothing: the
    /// same metadata, popularity (or none given), credits and search text,
    /// and no audio (a manifest always rewrites the files).
    fn is(&self, t: &TrackRow, text: &str) -> bool {
        t.audio.is_none()
            && self.album_id == t.meta.album_id
            && self.title == t.meta.title
            && self.track_number == t.meta.track_number
            && self.disc_number == t.meta.disc_number
            && self.duration_ms == t.duration_ms
            && self.explicit == t.meta.explicit
            && self.isrc == t.meta.isrc
            && t.popularity.is_none_or(|p| p == self.popularity)
            && self.artist_ids == t.meta.artist_ids
            && self.search_text == text
    }
}

/// The stored state of tracks `ids` (one query), by id.
async fn stored_tracks(
    tx: &mut Transaction<'static, Any>,
    ids: &[&str],
) -> Result<HashMap<String, StoredTrack>, sqlx::Error> {
    let mut found: HashMap<String, StoredTrack> = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(found);
    }
    let sql = format!(
        "SELECT t.id, t.album_id, t.title, t.track_number, t.disc_number, t.duration_ms, t.explicit,
                t.isrc, t.popularity, t.search_text, ta.artist_id
         FROM tracks t LEFT JOIN track_artists ta ON ta.track_id = t.id
         WHERE t.id IN ({})
         ORDER BY t.id, ta.position",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    for row in q.fetch_all(&mut **tx).await? {
        let id: String = row.try_get("id")?;
        let artist: Option<String> = row.try_get("artist_id")?;
        if let Some(track) = found.get_mut(&id) {
            track.artist_ids.extend(artist);
            continue;
        }
        let track = StoredTrack {
            album_id: row.try_get("album_id")?,
            title: row.try_get("title")?,
            track_number: row.try_get("track_number")?,
            disc_number: row.try_get("disc_number")?,
            duration_ms: row.try_get("duration_ms")?,
            explicit: get_bool(&row, "explicit")?,
            isrc: row.try_get("isrc")?,
            popularity: row.try_get("popularity")?,
            search_text: row.try_get("search_text")?,
            artist_ids: artist.into_iter().collect(),
        };
        found.insert(id, track);
    }
    Ok(found)
}

/// Ids of `fresh` rows another transaction inserted first (the insert
/// skipped them): they are updated like existing rows.
fn raced<'a, T>(fresh: &[&'a T], id: impl Fn(&'a T) -> &'a str, inserted: &HashSet<String>) -> Vec<&'a str> {
    fresh.iter().map(|r| id(r)).filter(|i| !inserted.contains(*i)).collect()
}

/// Run a multi-row `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id`;
/// the ids it inserted.
async fn insert_returning(
    tx: &mut Transaction<'static, Any>,
    q: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
) -> Result<HashSet<String>, sqlx::Error> {
    let rows = q.fetch_all(&mut **tx).await?;
    rows.iter().map(|r| r.try_get::<String, _>("id")).collect()
}

/// Names of the artists a batch credits: the batch's own, then the
/// catalog's, loaded as chunks need them.
struct ArtistNames(HashMap<String, String>);

impl ArtistNames {
    fn new(batch: &Batch) -> Self {
        Self(batch.artists.iter().map(|a| (a.id.clone(), a.name.clone())).collect())
    }

    async fn load<'a>(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        ids: impl Iterator<Item = &'a String>,
    ) -> Result<(), sqlx::Error> {
        let mut missing: Vec<&str> = ids.filter(|id| !self.0.contains_key(*id)).map(String::as_str).collect();
        missing.sort_unstable();
        missing.dedup();
        for chunk in missing.chunks(ROWS_PER_INSERT) {
            let found = existing_names(tx, "artists", "name", chunk).await?;
            self.0.extend(found);
        }
        Ok(())
    }

    fn of(&self, ids: &[String]) -> Vec<&str> {
        ids.iter().filter_map(|id| self.0.get(id).map(String::as_str)).collect()
    }
}

/// `id → name column` of the rows of `table` among `ids`.
async fn existing_names(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    column: &str,
    ids: &[&str],
) -> Result<HashMap<String, String>, sqlx::Error> {
    select_names(tx, table, column, ids, "").await
}

/// [`existing_names`], locking the rows until the transaction ends on
/// PostgreSQL (in id order, so concurrent imports cannot deadlock). An
/// update that changes nothing takes no row lock, so without this two
/// imports of the same track would interleave their credit rewrites
/// (delete, insert) and collide; SQLite's `BEGIN IMMEDIATE` already
/// serialises writers.
async fn lock_existing(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    table: &str,
    column: &str,
    ids: &[&str],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let lock = if backend == Backend::Postgres { " ORDER BY id FOR UPDATE" } else { "" };
    select_names(tx, table, column, ids, lock).await
}

async fn select_names(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    column: &str,
    ids: &[&str],
    suffix: &str,
) -> Result<HashMap<String, String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT id, {column} AS name FROM {table} WHERE id IN ({}){suffix}",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("name")?))).collect()
}

/// Every reference must name a row of the catalog: 400 naming the field
/// of the first that does not.
pub(crate) async fn check_refs(
    tx: &mut Transaction<'static, Any>,
    refs: &[ExternalRef],
) -> Result<(), ApiError> {
    for table in [RefTable::Artist, RefTable::Album] {
        let of_table: Vec<&ExternalRef> = refs.iter().filter(|r| r.table == table).collect();
        let name = match table {
            RefTable::Artist => "artists",
            RefTable::Album => "albums",
        };
        for chunk in of_table.chunks(ROWS_PER_INSERT) {
            let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
            let found = existing_names(tx, name, "id", &ids).await?;
            if let Some(r) = chunk.iter().find(|r| !found.contains_key(&r.id)) {
                let what = match r.table {
                    RefTable::Artist => "artist",
                    RefTable::Album => "album",
                };
                return Err(ApiError::invalid(format!(
                    "{}: unknown {what} {}, not in this batch nor the catalog",
                    r.path,
                    echo(&r.id)
                )));
            }
        }
    }
    Ok(())
}

/// Whether statements that bind an `Option<f64>` may be cached. They may
/// not: sqlx 0.9's `Any` driver sends a NULL `f64` to PostgreSQL as a
/// FLOAT4 (`AnyArguments::convert_into` maps `Null(Double)` to
/// `Option<f32>`), so a statement first prepared with a NULL loudness or
/// album gain declares that parameter FLOAT4, and a later execution on the
/// same connection with a value (FLOAT8) fails with "incorrect binary data
/// format". Unprepared, each execution declares its own types. Only
/// catalog writes bind these, so the lost statement cache costs little.
const UNTYPED_NULL_F64: bool = false;

/// Appended to a fresh-rows insert: a row another transaction inserted
/// meanwhile is skipped (and then updated), not an error.
const RETURNING: &str = " ON CONFLICT (id) DO NOTHING RETURNING id";

/// A multi-row `INSERT INTO {head} VALUES (…), (…)` of `rows` rows of
/// `columns` values each (see [`values_list`]).
pub(crate) fn multi_insert(backend: Backend, head: &str, rows: usize, columns: usize) -> String {
    format!("INSERT INTO {head} {}", values_list(backend, rows, columns))
}

/// `VALUES ($1, $2), ($3, $4)`: `rows` rows of `columns` placeholders, the
/// only parameters of their statement, bound in order. SQLite gets
/// anonymous `?`s: it looks a numbered or named parameter up in a list,
/// at parse and again at each bind (sqlx asks every parameter's name), so
/// a statement of n `$N`s costs O(n²) — 70 % of a bulk import's CPU with
/// 8,500 parameters per insert — where `?`s cost O(n).
pub(crate) fn values_list(backend: Backend, rows: usize, columns: usize) -> String {
    let anonymous = vec!["?"; columns].join(", ");
    let mut sql = String::from("VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        match backend {
            Backend::Sqlite => sql.push_str(&anonymous),
            Backend::Postgres => sql.push_str(&placeholders(r * columns + 1, columns)),
        }
        sql.push(')');
    }
    sql
}

/// Index the rows this transaction inserted (`ids[i]` has `texts[i]` and
/// popularity `orders[i]`; those not in `inserted` were another
/// transaction's): see [`search_index::index_new`].
async fn index_inserted(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kind: Kind,
    ids: &[&str],
    texts: &[String],
    orders: &[i64],
    inserted: &HashSet<String>,
) -> Result<(), sqlx::Error> {
    let mine: Vec<(&str, &str, i64)> = ids
        .iter()
        .zip(texts)
        .zip(orders)
        .filter(|((id, _), _)| inserted.contains(**id))
        .map(|((id, t), order)| (*id, t.as_str(), *order))
        .collect();
    search_index::index_new(tx, backend, kind, &mine).await
}

async fn insert_artists(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    rows: &[&ArtistRow],
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let texts: Vec<String> = rows.iter().map(|a| search::index_text(&a.name, &[])).collect();
    let sql = multi_insert(
        backend,
        "artists (id, name, popularity, search_text, created_at, updated_at)",
        rows.len(),
        6,
    ) + RETURNING;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (a, text) in rows.iter().zip(&texts) {
        q = q.bind(&a.id).bind(&a.name).bind(a.popularity.unwrap_or(0)).bind(text).bind(now).bind(now);
    }
    let inserted = insert_returning(tx, q).await?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let orders: Vec<i64> = rows.iter().map(|r| r.popularity.unwrap_or(0)).collect();
    index_inserted(tx, backend, Kind::Artist, &ids, &texts, &orders, &inserted).await?;
    Ok(inserted)
}

async fn insert_albums(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    rows: &[&AlbumRow],
    names: &ArtistNames,
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let texts: Vec<String> =
        rows.iter().map(|a| search::index_text(&a.title, &names.of(&a.artist_ids))).collect();
    let sql = multi_insert(
        backend,
        "albums (id, title, album_type, release_date, release_at, popularity, search_text, created_at, updated_at)",
        rows.len(),
        9,
    ) + RETURNING;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (a, text) in rows.iter().zip(&texts) {
        q = q
            .bind(&a.id)
            .bind(&a.title)
            .bind(a.album_type.as_str())
            .bind(a.release_date.as_deref())
            .bind(a.release_at_ms)
            .bind(a.popularity.unwrap_or(0))
            .bind(text)
            .bind(now)
            .bind(now);
    }
    let inserted = insert_returning(tx, q).await?;
    let credits: Vec<(&str, &str, i64)> = rows
        .iter()
        .filter(|a| inserted.contains(&a.id))
        .flat_map(|a| (0_i64..).zip(&a.artist_ids).map(|(p, ar)| (a.id.as_str(), ar.as_str(), p)))
        .collect();
    insert_credits(tx, backend, "album_artists (album_id, artist_id, position)", &credits).await?;
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let orders: Vec<i64> = rows.iter().map(|r| r.popularity.unwrap_or(0)).collect();
    index_inserted(tx, backend, Kind::Album, &ids, &texts, &orders, &inserted).await?;
    Ok(inserted)
}

async fn insert_credits(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    head: &str,
    credits: &[(&str, &str, i64)],
) -> Result<(), sqlx::Error> {
    for chunk in credits.chunks(ROWS_PER_INSERT * 4) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(multi_insert(backend, head, chunk.len(), 3)));
        for (owner, artist, position) in chunk {
            q = q.bind(*owner).bind(*artist).bind(*position);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_tracks(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    rows: &[&TrackRow],
    names: &ArtistNames,
    now: i64,
) -> Result<HashSet<String>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let texts: Vec<String> =
        rows.iter().map(|t| search::index_text(&t.meta.title, &names.of(&t.meta.artist_ids))).collect();
    let sql = multi_insert(
        backend,
        "tracks (id, album_id, title, track_number, disc_number, duration_ms, explicit, isrc,
                 popularity, audio_features, loudness_integrated_lufs, loudness_true_peak_dbtp,
                 loudness_gain_db, search_text, created_at, updated_at)",
        rows.len(),
        16,
    ) + RETURNING;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(UNTYPED_NULL_F64);
    for (t, text) in rows.iter().zip(&texts) {
        let audio = t.audio.as_ref();
        q = q
            .bind(t.id.as_str())
            .bind(&t.meta.album_id)
            .bind(&t.meta.title)
            .bind(t.meta.track_number)
            .bind(t.meta.disc_number)
            .bind(t.duration_ms)
            .bind(t.meta.explicit)
            .bind(t.meta.isrc.as_deref())
            .bind(t.popularity.unwrap_or(0))
            .bind(audio.map(|a| a.audio_features.as_str()))
            .bind(audio.map(|a| a.loudness.integrated_lufs))
            .bind(audio.map(|a| a.loudness.true_peak_dbtp))
            .bind(audio.map(|a| a.loudness.gain_db))
            .bind(text)
            .bind(now)
            .bind(now);
    }
    let inserted = insert_returning(tx, q).await?;
    let mine = |t: &&&TrackRow| inserted.contains(t.id.as_str());
    let credits: Vec<(&str, &str, i64)> = rows
        .iter()
        .filter(mine)
        .flat_map(|t| (0_i64..).zip(&t.meta.artist_ids).map(|(p, ar)| (t.id.as_str(), ar.as_str(), p)))
        .collect();
    insert_credits(tx, backend, "track_artists (track_id, artist_id, position)", &credits).await?;
    for t in rows.iter().filter(mine) {
        if let Some(audio) = &t.audio {
            insert_files(tx, backend, t.id.as_str(), &audio.files).await?;
        }
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let orders: Vec<i64> = rows.iter().map(|r| r.popularity.unwrap_or(0)).collect();
    index_inserted(tx, backend, Kind::Track, &ids, &texts, &orders, &inserted).await?;
    Ok(inserted)
}

/// Rewrite the search text of the albums and tracks crediting `artist`
/// after its name changed.
async fn reindex_credits(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    artist: &str,
) -> Result<(), sqlx::Error> {
    for (kind, table, link, owner, title) in [
        (Kind::Album, "albums", "album_artists", "album_id", "title"),
        (Kind::Track, "tracks", "track_artists", "track_id", "title"),
    ] {
        let sql = format!(
            "SELECT e.id, e.{title} AS title FROM {table} e
             WHERE e.id IN (SELECT {owner} FROM {link} WHERE artist_id = $1)"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(artist).fetch_all(&mut **tx).await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let title: String = row.try_get("title")?;
            let sql = format!(
                "SELECT ar.name FROM {link} l JOIN artists ar ON ar.id = l.artist_id
                 WHERE l.{owner} = $1 ORDER BY l.position"
            );
            let credited: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&id)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| r.try_get("name"))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&str> = credited.iter().map(String::as_str).collect();
            search_index::index(tx, backend, kind, &id, &search::index_text(&title, &refs)).await?;
        }
    }
    Ok(())
}

async fn upsert_artist(
    tx: &mut Transaction<'static, Any>,
    a: &ArtistRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE artists SET name = $2, popularity = COALESCE($3, popularity), updated_at = $4
         WHERE id = $1 AND (name <> $2 OR popularity <> COALESCE($3, popularity))",
    )
    .bind(&a.id)
    .bind(&a.name)
    .bind(a.popularity)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_album(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    a: &AlbumRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE albums SET title = $2, album_type = $3, release_date = $4, release_at = $5,
             popularity = COALESCE($6, popularity), updated_at = $7
         WHERE id = $1
           AND (title <> $2 OR album_type <> $3
                OR release_date IS DISTINCT FROM $4 OR release_at IS DISTINCT FROM $5
                OR popularity <> COALESCE($6, popularity))",
    )
    .bind(&a.id)
    .bind(&a.title)
    .bind(a.album_type.as_str())
    .bind(a.release_date.as_deref())
    .bind(a.release_at_ms)
    .bind(a.popularity)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM album_artists WHERE album_id = $1").bind(&a.id).execute(&mut **tx).await?;
    let credits: Vec<(&str, &str, i64)> =
        (0_i64..).zip(&a.artist_ids).map(|(p, ar)| (a.id.as_str(), ar.as_str(), p)).collect();
    insert_credits(tx, backend, "album_artists (album_id, artist_id, position)", &credits).await
}

/// Update an existing track. Without audio, its loudness, features and
/// files stay as they are.
async fn upsert_track(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    t: &TrackRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    let audio = t.audio.as_ref();
    // Audio columns change only with audio. Without it no float is bound,
    // so both forms can be prepared once per connection (see
    // UNTYPED_NULL_F64): metadata-only re-imports are the common case.
    let (set_audio, audio_changed) = if audio.is_some() {
        (
            ", audio_features = $11, loudness_integrated_lufs = $12,
             loudness_true_peak_dbtp = $13, loudness_gain_db = $14",
            " OR audio_features IS DISTINCT FROM $11 OR loudness_integrated_lufs IS DISTINCT FROM $12
              OR loudness_true_peak_dbtp IS DISTINCT FROM $13 OR loudness_gain_db IS DISTINCT FROM $14",
        )
    } else {
        ("", "")
    };
    let sql = format!(
        "UPDATE tracks SET
             album_id = $2, title = $3, track_number = $4, disc_number = $5, duration_ms = $6,
             explicit = $7, isrc = $8, popularity = COALESCE($9, popularity), updated_at = $10{set_audio}
         WHERE id = $1
           AND (album_id <> $2 OR title <> $3 OR track_number <> $4 OR disc_number <> $5
                OR duration_ms <> $6 OR explicit <> $7 OR isrc IS DISTINCT FROM $8
                OR popularity <> COALESCE($9, popularity){audio_changed})"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(t.id.as_str())
        .bind(&t.meta.album_id)
        .bind(&t.meta.title)
        .bind(t.meta.track_number)
        .bind(t.meta.disc_number)
        .bind(t.duration_ms)
        .bind(t.meta.explicit)
        .bind(t.meta.isrc.as_deref())
        .bind(t.popularity)
        .bind(now);
    if let Some(audio) = audio {
        q = q
            .bind(audio.audio_features.as_str())
            .bind(audio.loudness.integrated_lufs)
            .bind(audio.loudness.true_peak_dbtp)
            .bind(audio.loudness.gain_db);
    }
    q.execute(&mut **tx).await?;

    sqlx::query("DELETE FROM track_artists WHERE track_id = $1")
        .bind(t.id.as_str())
        .execute(&mut **tx)
        .await?;
    let credits: Vec<(&str, &str, i64)> =
        (0_i64..).zip(&t.meta.artist_ids).map(|(p, ar)| (t.id.as_str(), ar.as_str(), p)).collect();
    insert_credits(tx, backend, "track_artists (track_id, artist_id, position)", &credits).await?;

    if let Some(audio) = audio {
        // The manifest is the whole ladder: renditions it no longer lists go.
        sqlx::query("DELETE FROM track_files WHERE track_id = $1")
            .bind(t.id.as_str())
            .execute(&mut **tx)
            .await?;
        insert_files(tx, backend, t.id.as_str(), &audio.files).await?;
    }
    Ok(())
}

async fn insert_files(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    track: &str,
    files: &[FileRow],
) -> Result<(), sqlx::Error> {
    if files.is_empty() {
        return Ok(());
    }
    let sql = multi_insert(
        backend,
        "track_files (track_id, bitrate_kbps, file_id, size, duration_ms, sample_rate, channels,
                      achieved_kbps, gain_db, album_gain_db, mime, seek_json)",
        files.len(),
        12,
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(UNTYPED_NULL_F64);
    for f in files {
        q = q
            .bind(track)
            .bind(f.bitrate_kbps)
            .bind(&f.file_id)
            .bind(f.size)
            .bind(f.duration_ms)
            .bind(f.sample_rate)
            .bind(f.channels)
            .bind(f.achieved_kbps)
            .bind(f.gain_db)
            .bind(f.album_gain_db)
            .bind(&f.mime)
            .bind(&f.seek_json);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// A published rendition of a track, as playback needs it.
#[derive(Debug, Clone)]
pub(crate) struct TrackFile {
    pub(crate) rung: Rung,
    pub(crate) file: StreamFile,
}

/// What `POST /v1/playback/stream` needs about a track.
#[derive(Debug)]
pub(crate) struct Playable {
    /// Embargo end, unix milliseconds.
    pub(crate) release_at_ms: Option<i64>,
    /// Lowest bitrate first.
    pub(crate) files: Vec<TrackFile>,
}

/// The track's embargo and files, or `None` if there is no such track.
/// One round trip: the track's row joined to its files (a track without
/// audio gives one row of NULL file columns).
pub(crate) async fn playable(db: &Db, id: &TrackId) -> Result<Option<Playable>, ApiError> {
    let rows = sqlx::query(
        "SELECT a.release_at AS release_at, f.bitrate_kbps, f.file_id, f.size, f.duration_ms,
                f.sample_rate, f.channels, f.gain_db, f.album_gain_db, f.mime
         FROM tracks t JOIN albums a ON a.id = t.album_id
              LEFT JOIN track_files f ON f.track_id = t.id
         WHERE t.id = $1
         ORDER BY f.bitrate_kbps",
    )
    .bind(id.as_str())
    .persistent(true)
    .fetch_all(db.pool())
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let release_at_ms: Option<i64> = first.try_get("release_at")?;
    let mut files = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<String>, _>("file_id")?.is_some() {
            files.push(file_row(row)?);
        }
    }
    Ok(Some(Playable { release_at_ms, files }))
}

fn file_row(row: &AnyRow) -> Result<TrackFile, ApiError> {
    let kbps: u32 = get_unsigned(row, "bitrate_kbps")?;
    let rung = Rung::from_kbps(kbps)
        .ok_or_else(|| ApiError::internal("track_files", &format!("bitrate {kbps} in db")))?;
    let file_id: String = row.try_get("file_id")?;
    let file_id = FileId::from_str(&file_id).map_err(|e| ApiError::internal("track_files", &e))?;
    Ok(TrackFile {
        rung,
        file: StreamFile {
            file_id,
            size: get_unsigned(row, "size")?,
            duration_ms: get_unsigned(row, "duration_ms")?,
            sample_rate: get_unsigned(row, "sample_rate")?,
            channels: get_unsigned(row, "channels")?,
            gain_db: row.try_get("gain_db")?,
            album_gain_db: row.try_get("album_gain_db")?,
            mime: row.try_get("mime")?,
            seek_table: format!("/v1/files/{file_id}/seek-table"),
        },
    })
}

/// A rendition's seek table by file id: `(points, duration_ms)`, or `None`
/// if no track has that file.
pub(crate) async fn seek_table(db: &Db, file_id: &FileId) -> Result<Option<(Vec<[u64; 2]>, i64)>, ApiError> {
    let row = sqlx::query("SELECT seek_json, duration_ms FROM track_files WHERE file_id = $1 LIMIT 1")
        .bind(file_id.to_string())
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let json: String = row.try_get("seek_json")?;
    let points = serde_json::from_str(&json).map_err(|e| ApiError::internal("seek_json", &e))?;
    Ok(Some((points, row.try_get("duration_ms")?)))
}

/// Most ids one [`tracks_by_ids`] call loads with each query; longer lists
/// are loaded in chunks.
pub(crate) const IDS_PER_QUERY: usize = 500;

/// `$from, $from+1, …` for `n` bound values.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The public views of the tracks `ids`, in the same order, `None` for an
/// id with no track (repeats allowed). One query per chunk of ids, whatever
/// the list's length.
pub(crate) async fn tracks_by_ids(db: &Db, ids: &[String]) -> Result<Vec<Option<TrackResponse>>, ApiError> {
    let mut found: HashMap<String, TrackResponse> = HashMap::with_capacity(ids.len());
    let mut unique: Vec<&str> = ids.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    for chunk in unique.chunks(IDS_PER_QUERY) {
        load_tracks(db, chunk, &mut found).await?;
    }
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

/// Load `ids` into `out` in one round trip: each track with its album,
/// left-joined to its credits and to its files, so a track comes back as
/// (credits × files) rows (at least one), ordered so credits and bitrates
/// arrive in order. A lookup is the control plane's most frequent query:
/// three statements (track, credits, files) cost three round trips and
/// three executions on the database for every cache miss.
async fn load_tracks(
    db: &Db,
    ids: &[&str],
    out: &mut HashMap<String, TrackResponse>,
) -> Result<(), ApiError> {
    let list = placeholders(1, ids.len());
    let sql = format!(
        "SELECT t.id, t.title, t.duration_ms, t.track_number, t.disc_number, t.explicit, t.isrc,
                t.popularity, t.loudness_integrated_lufs, t.loudness_true_peak_dbtp,
                t.loudness_gain_db,
                a.id AS album_id, a.title AS album_title, a.album_type, a.release_date,
                a.release_at,
                ta.position AS credit_position, ar.id AS artist_id, ar.name AS artist_name,
                tf.bitrate_kbps
         FROM tracks t
         JOIN albums a ON a.id = t.album_id
         LEFT JOIN track_artists ta ON ta.track_id = t.id
         LEFT JOIN artists ar ON ar.id = ta.artist_id
         LEFT JOIN track_files tf ON tf.track_id = t.id
         WHERE t.id IN ({list})
         ORDER BY t.id, ta.position, tf.bitrate_kbps"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    // The credit position last pushed for the track being read.
    let mut last_credit: Option<(String, i64)> = None;
    for row in q.fetch_all(db.pool()).await? {
        let id: String = row.try_get("id")?;
        if !out.contains_key(&id) {
            out.insert(id.clone(), track_of_row(&row)?);
        }
        let Some(track) = out.get_mut(&id) else { continue };
        let position: Option<i64> = row.try_get("credit_position")?;
        if let Some(position) = position {
            let key = (id, position);
            if last_credit.as_ref() != Some(&key) {
                track
                    .artists
                    .push(ArtistSummary { id: row.try_get("artist_id")?, name: row.try_get("artist_name")? });
                last_credit = Some(key);
            }
        }
        let kbps: Option<i64> = row.try_get("bitrate_kbps")?;
        if kbps.is_some() {
            let kbps = get_unsigned(&row, "bitrate_kbps")?;
            if !track.qualities.contains(&kbps) {
                track.qualities.push(kbps);
            }
        }
    }
    Ok(())
}

/// A track's view from a [`load_tracks`] row, without credits or files.
fn track_of_row(row: &AnyRow) -> Result<TrackResponse, ApiError> {
    let id: String = row.try_get("id")?;
    let track_id = TrackId::from_str(&id).map_err(|e| ApiError::internal("tracks.id", &e))?;
    let album_type: String = row.try_get("album_type")?;
    let album_type = AlbumType::parse(&album_type)
        .ok_or_else(|| ApiError::internal("albums", &format!("album_type {album_type:?}")))?;
    let release_at_ms: Option<i64> = row.try_get("release_at")?;
    let lufs: Option<f64> = row.try_get("loudness_integrated_lufs")?;
    let peak: Option<f64> = row.try_get("loudness_true_peak_dbtp")?;
    let gain: Option<f64> = row.try_get("loudness_gain_db")?;
    let loudness = match (lufs, peak, gain) {
        (Some(integrated_lufs), Some(true_peak_dbtp), Some(gain_db)) => {
            Some(TrackLoudness { integrated_lufs, true_peak_dbtp, gain_db })
        }
        _ => None,
    };
    Ok(TrackResponse {
        id: track_id,
        title: row.try_get("title")?,
        duration_ms: get_unsigned(row, "duration_ms")?,
        track_number: get_unsigned(row, "track_number")?,
        disc_number: get_unsigned(row, "disc_number")?,
        explicit: get_bool(row, "explicit")?,
        isrc: row.try_get("isrc")?,
        popularity: get_unsigned(row, "popularity")?,
        album: AlbumSummary {
            id: row.try_get("album_id")?,
            title: row.try_get("album_title")?,
            album_type,
            release_date: row.try_get("release_date")?,
            release_at: release_at_ms.map(|ms| ms.div_euclid(1000)),
        },
        artists: Vec::new(),
        qualities: Vec::new(),
        loudness,
    })
}

/// Map a constraint violation the validator should have caught to a 400
/// instead of a 500 (defence in depth: the schema's CHECKs are the last
/// word).
fn constraint_error(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.is_check_violation() || db.is_foreign_key_violation() => {
            tracing::warn!(error = %e, "import refused by a database constraint");
            ApiError::new(ErrorKind::InvalidRequest, "batch violates a catalog constraint")
        }
        _ => e.into(),
    }
}

/// Run `sql` (with `{list}` standing for the placeholders of `ids`) for
/// each chunk of `ids`, returning every row.
async fn rows_in(db: &Db, sql: &str, ids: &[&str]) -> Result<Vec<AnyRow>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let sql = sql.replace("{list}", &placeholders(1, chunk.len()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        out.extend(q.fetch_all(db.pool()).await?);
    }
    Ok(out)
}

/// After a bulk import: bring the planner's statistics and, on
/// PostgreSQL, the GIN indexes up to date. A GIN index takes new rows into
/// a pending list that every search scans linearly until a vacuum merges
/// it: after a 100k-track import, a four-word candidate query took 18 ms
/// before the vacuum and 2 ms after (autovacuum gets there eventually; a
/// bulk load should not wait for it).
pub(crate) async fn after_bulk_import(db: &Db) -> Result<(), sqlx::Error> {
    let sql = match db.backend() {
        Backend::Postgres => {
            "VACUUM (ANALYZE) artists, albums, tracks, album_artists, track_artists, track_files, search_words"
        }
        Backend::Sqlite => "PRAGMA optimize",
    };
    sqlx::raw_sql(sql).execute(db.pool()).await?;
    Ok(())
}

/// Does `table` (artists, albums, tracks) hold a row `id`?
pub(crate) async fn exists(db: &Db, table: &str, id: &str) -> Result<bool, ApiError> {
    let sql = format!("SELECT 1 AS one FROM {table} WHERE id = $1");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(db.pool()).await?.is_some())
}

/// Artists `ids`, in order, `None` for unknown ids.
pub(crate) async fn artists_by_ids(db: &Db, ids: &[String]) -> Result<Vec<Option<ArtistResponse>>, ApiError> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows = rows_in(db, "SELECT id, name, popularity FROM artists WHERE id IN ({list})", &refs).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id")?;
        let a = ArtistResponse {
            id: id.clone(),
            name: r.try_get("name")?,
            popularity: get_unsigned(r, "popularity")?,
        };
        found.insert(id, a);
    }
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

/// Albums `ids` without their tracks, in order, `None` for unknown ids.
pub(crate) async fn albums_by_ids(db: &Db, ids: &[String]) -> Result<Vec<Option<AlbumSimplified>>, ApiError> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows = rows_in(
        db,
        "SELECT a.id, a.title, a.album_type, a.release_date, a.release_at, a.popularity,
                (SELECT COUNT(*) FROM tracks t WHERE t.album_id = a.id) AS total_tracks
         FROM albums a WHERE a.id IN ({list})",
        &refs,
    )
    .await?;
    let mut found: HashMap<String, AlbumSimplified> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id")?;
        let album_type: String = r.try_get("album_type")?;
        let album_type = AlbumType::parse(&album_type)
            .ok_or_else(|| ApiError::internal("albums", &format!("album_type {album_type:?}")))?;
        let release_at_ms: Option<i64> = r.try_get("release_at")?;
        found.insert(
            id.clone(),
            AlbumSimplified {
                id,
                title: r.try_get("title")?,
                album_type,
                release_date: r.try_get("release_date")?,
                release_at: release_at_ms.map(|ms| ms.div_euclid(1000)),
                popularity: get_unsigned(r, "popularity")?,
                artists: Vec::new(),
                total_tracks: get_unsigned(r, "total_tracks")?,
            },
        );
    }
    let credits = rows_in(
        db,
        "SELECT aa.album_id, ar.id, ar.name FROM album_artists aa JOIN artists ar ON ar.id = aa.artist_id
         WHERE aa.album_id IN ({list}) ORDER BY aa.album_id, aa.position",
        &refs,
    )
    .await?;
    for r in &credits {
        let album: String = r.try_get("album_id")?;
        if let Some(a) = found.get_mut(&album) {
            a.artists.push(ArtistSummary { id: r.try_get("id")?, name: r.try_get("name")? });
        }
    }
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

/// A window of an ordered id list and the list's length.
#[derive(Debug)]
pub(crate) struct IdPage {
    pub(crate) total: u64,
    pub(crate) ids: Vec<String>,
}

async fn id_page(
    db: &Db,
    count_sql: &str,
    page_sql: &str,
    key: &str,
    page: Page,
) -> Result<IdPage, ApiError> {
    let total: i64 = sqlx::query(sqlx::AssertSqlSafe(count_sql.to_owned()))
        .bind(key)
        .fetch_one(db.pool())
        .await?
        .try_get("n")?;
    let (limit, offset) = page.sql();
    let ids = sqlx::query(sqlx::AssertSqlSafe(page_sql.to_owned()))
        .bind(key)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    Ok(IdPage { total: u64::try_from(total).unwrap_or(0), ids })
}

/// A page of album `album`'s track ids in disc and track order.
pub(crate) async fn album_track_ids(db: &Db, album: &str, page: Page) -> Result<IdPage, ApiError> {
    id_page(
        db,
        "SELECT COUNT(*) AS n FROM tracks WHERE album_id = $1",
        "SELECT id FROM tracks WHERE album_id = $1
         ORDER BY disc_number, track_number, id LIMIT $2 OFFSET $3",
        album,
        page,
    )
    .await
}

/// A page of the ids of the albums crediting `artist`, newest first.
pub(crate) async fn artist_album_ids(db: &Db, artist: &str, page: Page) -> Result<IdPage, ApiError> {
    id_page(
        db,
        "SELECT COUNT(*) AS n FROM album_artists WHERE artist_id = $1",
        "SELECT a.id FROM album_artists aa JOIN albums a ON a.id = aa.album_id
         WHERE aa.artist_id = $1
         ORDER BY (a.release_date IS NULL), a.release_date DESC, a.id LIMIT $2 OFFSET $3",
        artist,
        page,
    )
    .await
}

/// Number of top tracks an artist answer lists.
pub(crate) const TOP_TRACKS: i64 = 10;

/// The ids of `artist`'s most popular tracks (credited in any position).
pub(crate) async fn artist_top_track_ids(db: &Db, artist: &str) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query(
        "SELECT t.id FROM track_artists ta JOIN tracks t ON t.id = ta.track_id
         WHERE ta.artist_id = $1
         ORDER BY t.popularity DESC, t.stream_count DESC, t.id LIMIT $2",
    )
    .bind(artist)
    .bind(TOP_TRACKS)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?)
}

/// The stored audio features of a track: `Ok(None)` for no such track,
/// `Ok(Some(None))` for a track not analysed yet.
pub(crate) async fn audio_features(db: &Db, id: &str) -> Result<Option<Option<serde_json::Value>>, ApiError> {
    let row = sqlx::query("SELECT audio_features FROM tracks WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let text: Option<String> = row.try_get("audio_features")?;
    match text {
        None => Ok(Some(None)),
        Some(t) => {
            let v = serde_json::from_str(&t).map_err(|e| ApiError::internal("tracks.audio_features", &e))?;
            Ok(Some(Some(v)))
        }
    }
}

/// Search: the backend's candidates ranked by [`crate::search::score`]
/// and paged — the ids of one page of results and the number of results
/// (at most the candidates').
pub(crate) async fn search_ids(
    db: &Db,
    kind: Kind,
    query: &crate::search::Query,
    lexicon: &search_index::Lexicon,
    page: Page,
) -> Result<IdPage, ApiError> {
    let hits = search_index::candidates(db, kind, query, lexicon).await?;
    let mut scored = Vec::with_capacity(hits.len());
    for hit in hits {
        // The indexed text holds the name and the secondary texts (credited
        // artists, a playlist's owner), normalised: as secondary text it
        // scores the same as the live names would, since a word of the
        // name scores higher as the name than as secondary text.
        let secondary = [hit.text];
        let c =
            crate::search::Candidate { name: &hit.name, secondary: &secondary, popularity: hit.popularity };
        if let Some(score) = crate::search::score(query, &c) {
            scored.push((score, hit.popularity, hit.id, ()));
        }
    }
    crate::search::rank(&mut scored);
    let total = u64::try_from(scored.len()).unwrap_or(0);
    let start = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let ids = scored.into_iter().skip(start).take(page.limit as usize).map(|s| s.2).collect();
    Ok(IdPage { total, ids })
}

/// Public playlists `ids` as search shows them, in order.
pub(crate) async fn playlist_hits(db: &Db, ids: &[String]) -> Result<Vec<PlaylistHit>, ApiError> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rows = rows_in(
        db,
        "SELECT p.id, p.name, p.item_count, p.follower_count, u.id AS owner_id, u.display_name
         FROM playlists p JOIN users u ON u.id = p.owner_id WHERE p.id IN ({list})",
        &refs,
    )
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id")?;
        found.insert(
            id.clone(),
            PlaylistHit {
                id,
                name: r.try_get("name")?,
                owner: PlaylistHitOwner {
                    id: r.try_get("owner_id")?,
                    display_name: r.try_get("display_name")?,
                },
                items_total: get_unsigned(r, "item_count")?,
                followers: get_unsigned(r, "follower_count")?,
            },
        );
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}
