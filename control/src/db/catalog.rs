//! Catalog queries: the import upsert (also run by an ingest job's
//! completion), the track view, and what playback needs to pick a file.

use std::collections::HashMap;
use std::str::FromStr;

use cadenza_config::ids::{FileId, TrackId};
use cadenza_config::ladder::Rung;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Db, get_bool, get_unsigned, now_ms};
use crate::catalog::{AlbumRow, ArtistRow, Batch, ExternalRef, RefTable, TrackRow};
use crate::error::{ApiError, ErrorKind};
use crate::types::{
    AlbumSummary, AlbumType, ArtistSummary, ImportResponse, StreamFile, TrackLoudness, TrackResponse,
};
use crate::validate::echo;

/// Upsert `batch` in one transaction: artists, then albums, then tracks
/// with their credits and files. Re-importing the same batch changes
/// nothing (not even `updated_at`); counters such as `stream_count` are
/// never touched.
pub(crate) async fn import(db: &Db, batch: &Batch) -> Result<ImportResponse, ApiError> {
    let mut tx = db.begin_write().await?;
    let counts = import_in(&mut tx, batch, now_ms()).await?;
    tx.commit().await?;
    Ok(counts)
}

/// [`import`] inside the caller's transaction (an ingest job's completion
/// registers its tracks and finishes the job in one). The caller commits;
/// on error it must drop the transaction.
pub(crate) async fn import_in(
    tx: &mut Transaction<'static, Any>,
    batch: &Batch,
    now: i64,
) -> Result<ImportResponse, ApiError> {
    for a in &batch.artists {
        upsert_artist(tx, a, now).await.map_err(constraint_error)?;
    }
    // Everything the batch names but does not carry must already exist.
    check_refs(tx, &batch.external_refs()).await?;
    for a in &batch.albums {
        upsert_album(tx, a, now).await.map_err(constraint_error)?;
    }
    for t in &batch.tracks {
        upsert_track(tx, t, now).await.map_err(constraint_error)?;
    }
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(ImportResponse {
        artists: count(batch.artists.len()),
        albums: count(batch.albums.len()),
        tracks: count(batch.tracks.len()),
    })
}

/// Every reference must name a row of the catalog: 400 naming the field
/// of the first that does not.
pub(crate) async fn check_refs(
    tx: &mut Transaction<'static, Any>,
    refs: &[ExternalRef],
) -> Result<(), ApiError> {
    for r in refs {
        let sql = match r.table {
            RefTable::Artist => "SELECT id FROM artists WHERE id = $1",
            RefTable::Album => "SELECT id FROM albums WHERE id = $1",
        };
        let found = sqlx::query(sql).bind(&r.id).fetch_optional(&mut **tx).await?;
        if found.is_none() {
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
    Ok(())
}

async fn upsert_artist(
    tx: &mut Transaction<'static, Any>,
    a: &ArtistRow,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO artists (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at
         WHERE artists.name <> excluded.name",
    )
    .bind(&a.id)
    .bind(&a.name)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_album(tx: &mut Transaction<'static, Any>, a: &AlbumRow, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO albums (id, title, album_type, release_date, release_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (id) DO UPDATE SET
             title = excluded.title, album_type = excluded.album_type,
             release_date = excluded.release_date, release_at = excluded.release_at,
             updated_at = excluded.updated_at
         WHERE albums.title <> excluded.title
            OR albums.album_type <> excluded.album_type
            OR albums.release_date IS DISTINCT FROM excluded.release_date
            OR albums.release_at IS DISTINCT FROM excluded.release_at",
    )
    .bind(&a.id)
    .bind(&a.title)
    .bind(a.album_type.as_str())
    .bind(a.release_date.as_deref())
    .bind(a.release_at_ms)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM album_artists WHERE album_id = $1").bind(&a.id).execute(&mut **tx).await?;
    for (position, artist) in (0_i64..).zip(&a.artist_ids) {
        sqlx::query("INSERT INTO album_artists (album_id, artist_id, position) VALUES ($1, $2, $3)")
            .bind(&a.id)
            .bind(artist)
            .bind(position)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn upsert_track(tx: &mut Transaction<'static, Any>, t: &TrackRow, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tracks (id, album_id, title, track_number, disc_number, duration_ms,
             explicit, isrc, audio_features, loudness_integrated_lufs, loudness_true_peak_dbtp,
             loudness_gain_db, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
         ON CONFLICT (id) DO UPDATE SET
             album_id = excluded.album_id, title = excluded.title,
             track_number = excluded.track_number, disc_number = excluded.disc_number,
             duration_ms = excluded.duration_ms, explicit = excluded.explicit,
             isrc = excluded.isrc,
             audio_features = excluded.audio_features,
             loudness_integrated_lufs = excluded.loudness_integrated_lufs,
             loudness_true_peak_dbtp = excluded.loudness_true_peak_dbtp,
             loudness_gain_db = excluded.loudness_gain_db,
             updated_at = excluded.updated_at
         WHERE tracks.album_id <> excluded.album_id
            OR tracks.title <> excluded.title
            OR tracks.track_number <> excluded.track_number
            OR tracks.disc_number <> excluded.disc_number
            OR tracks.duration_ms <> excluded.duration_ms
            OR tracks.explicit <> excluded.explicit
            OR tracks.isrc IS DISTINCT FROM excluded.isrc
            OR tracks.audio_features IS DISTINCT FROM excluded.audio_features
            OR tracks.loudness_integrated_lufs <> excluded.loudness_integrated_lufs
            OR tracks.loudness_true_peak_dbtp <> excluded.loudness_true_peak_dbtp
            OR tracks.loudness_gain_db <> excluded.loudness_gain_db",
    )
    .bind(t.id.as_str())
    .bind(&t.meta.album_id)
    .bind(&t.meta.title)
    .bind(t.meta.track_number)
    .bind(t.meta.disc_number)
    .bind(t.duration_ms)
    .bind(t.meta.explicit)
    .bind(t.meta.isrc.as_deref())
    .bind(&t.audio_features)
    .bind(t.loudness.integrated_lufs)
    .bind(t.loudness.true_peak_dbtp)
    .bind(t.loudness.gain_db)
    .bind(now)
    .execute(&mut **tx)
    .await?;

    sqlx::query("DELETE FROM track_artists WHERE track_id = $1")
        .bind(t.id.as_str())
        .execute(&mut **tx)
        .await?;
    for (position, artist) in (0_i64..).zip(&t.meta.artist_ids) {
        sqlx::query("INSERT INTO track_artists (track_id, artist_id, position) VALUES ($1, $2, $3)")
            .bind(t.id.as_str())
            .bind(artist)
            .bind(position)
            .execute(&mut **tx)
            .await?;
    }

    // The manifest is the whole ladder: renditions it no longer lists go.
    sqlx::query("DELETE FROM track_files WHERE track_id = $1").bind(t.id.as_str()).execute(&mut **tx).await?;
    for f in &t.files {
        sqlx::query(
            "INSERT INTO track_files (track_id, bitrate_kbps, file_id, size, duration_ms,
                 sample_rate, channels, achieved_kbps, gain_db, album_gain_db, mime)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(t.id.as_str())
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
        .execute(&mut **tx)
        .await?;
    }
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
pub(crate) async fn playable(db: &Db, id: &TrackId) -> Result<Option<Playable>, ApiError> {
    let row = sqlx::query(
        "SELECT a.release_at AS release_at
         FROM tracks t JOIN albums a ON a.id = t.album_id
         WHERE t.id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let release_at_ms: Option<i64> = row.try_get("release_at")?;
    Ok(Some(Playable { release_at_ms, files: files(db, id).await? }))
}

async fn files(db: &Db, id: &TrackId) -> Result<Vec<TrackFile>, ApiError> {
    let rows = sqlx::query(
        "SELECT bitrate_kbps, file_id, size, duration_ms, sample_rate, channels, gain_db,
                album_gain_db, mime
         FROM track_files WHERE track_id = $1 ORDER BY bitrate_kbps",
    )
    .bind(id.as_str())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(file_row).collect()
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
        },
    })
}

/// The public view of a track, or `None` if there is no such track.
pub(crate) async fn track(db: &Db, id: &TrackId) -> Result<Option<TrackResponse>, ApiError> {
    Ok(tracks_by_ids(db, &[id.as_str().to_owned()]).await?.pop().flatten())
}

/// Most ids one [`tracks_by_ids`] call loads with each query; longer lists
/// are loaded in chunks.
const IDS_PER_QUERY: usize = 100;

/// `$from, $from+1, …` for `n` bound values.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The public views of the tracks `ids`, in the same order, `None` for an
/// id with no track (repeats allowed). Three queries per chunk of ids
/// (tracks with albums, credits, files), whatever the list's length.
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
                a.release_at
         FROM tracks t JOIN albums a ON a.id = t.album_id
         WHERE t.id IN ({list})"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    for row in q.fetch_all(db.pool()).await? {
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
        let track = TrackResponse {
            id: track_id,
            title: row.try_get("title")?,
            duration_ms: get_unsigned(&row, "duration_ms")?,
            track_number: get_unsigned(&row, "track_number")?,
            disc_number: get_unsigned(&row, "disc_number")?,
            explicit: get_bool(&row, "explicit")?,
            isrc: row.try_get("isrc")?,
            popularity: get_unsigned(&row, "popularity")?,
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
        };
        out.insert(id, track);
    }

    let sql = format!(
        "SELECT ta.track_id, ar.id, ar.name
         FROM track_artists ta JOIN artists ar ON ar.id = ta.artist_id
         WHERE ta.track_id IN ({list}) ORDER BY ta.track_id, ta.position"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    for row in q.fetch_all(db.pool()).await? {
        let track_id: String = row.try_get("track_id")?;
        if let Some(t) = out.get_mut(&track_id) {
            t.artists.push(ArtistSummary { id: row.try_get("id")?, name: row.try_get("name")? });
        }
    }

    let sql = format!(
        "SELECT track_id, bitrate_kbps FROM track_files
         WHERE track_id IN ({list}) ORDER BY track_id, bitrate_kbps"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    for row in q.fetch_all(db.pool()).await? {
        let track_id: String = row.try_get("track_id")?;
        if let Some(t) = out.get_mut(&track_id) {
            t.qualities.push(get_unsigned(&row, "bitrate_kbps")?);
        }
    }
    Ok(())
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
