//! Library queries: what each user saved (`user_library`), by kind.
//!
//! `user_library.item_id` has no foreign key (it points into the table its
//! `item_type` names), so lists join the saved ids to that table: an entry
//! whose album or track is gone, or a playlist the user may no longer see,
//! is not listed nor counted. Saving checks the same things up front.
//!
//! `saved_at` orders a library newest first. Within one user it is kept
//! strictly increasing (a save gets at least the last one's + 1 ms, and the
//! ids of one request count as saved one after the other, left to right),
//! so the order is the order of saving even within a millisecond.
//!
//! A playlist's `follower_count` is the number of libraries holding it,
//! recounted in the transaction that saves or removes it.

use std::collections::{HashMap, HashSet};

use cadenza_config::ids::UserId;
use sqlx::{Any, Row, Transaction};

use super::catalog::placeholders;
use super::playlists::{VISIBLE_TO_1, begin_read};
use super::search::{self, Kind};
use super::{Backend, Db, get_unsigned, now_ms};
use crate::error::ApiError;
use crate::types::{AlbumType, ArtistSummary, LibraryAlbum, LibraryArtist};
use crate::validate::echo;

/// What a library holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LibraryKind {
    Track,
    Album,
    Artist,
    Playlist,
}

impl LibraryKind {
    /// From the route's `{kind}`: `tracks`, `albums`, `artists`, `playlists`.
    pub(crate) fn from_path(s: &str) -> Option<Self> {
        Some(match s {
            "tracks" => Self::Track,
            "albums" => Self::Album,
            "artists" => Self::Artist,
            "playlists" => Self::Playlist,
            _ => return None,
        })
    }

    /// `user_library.item_type`, and the word for one in messages.
    pub(crate) fn item_type(self) -> &'static str {
        match self {
            Self::Track => "track",
            Self::Album => "album",
            Self::Artist => "artist",
            Self::Playlist => "playlist",
        }
    }

    /// The join that keeps only entries whose item exists (and, for
    /// playlists, is visible to the user bound as `$1`).
    fn join(self) -> String {
        match self {
            Self::Track => "JOIN tracks t ON t.id = l.item_id".to_owned(),
            Self::Album => "JOIN albums t ON t.id = l.item_id".to_owned(),
            Self::Artist => "JOIN artists t ON t.id = l.item_id".to_owned(),
            Self::Playlist => format!("JOIN playlists p ON p.id = l.item_id AND {VISIBLE_TO_1}"),
        }
    }
}

/// `ids` without repeats, first occurrence kept.
fn unique(ids: &[String]) -> Vec<&str> {
    let mut seen = HashSet::new();
    ids.iter().map(String::as_str).filter(|id| seen.insert(*id)).collect()
}

/// Save `ids` (validated, 1-50) of `kind` to `user`'s library. Every id must
/// name an item (a playlist the user may see): otherwise 400 naming
/// `ids[i]` and nothing is saved. Saving again keeps the first save.
pub(crate) async fn save(db: &Db, user: &UserId, kind: LibraryKind, ids: &[String]) -> Result<(), ApiError> {
    let mut tx = db.begin_write().await?;
    let found = existing(&mut tx, user, kind, ids).await?;
    if let Some((i, id)) = ids.iter().enumerate().find(|(_, id)| !found.contains(*id)) {
        return Err(ApiError::invalid(format!("ids[{i}]: no {} {}", kind.item_type(), echo(id))));
    }
    let last = sqlx::query("SELECT MAX(saved_at) AS last FROM user_library WHERE user_id = $1")
        .bind(user.as_str())
        .fetch_one(&mut *tx)
        .await?;
    let last: Option<i64> = last.try_get("last")?;
    let base = last.map_or(now_ms(), |l| now_ms().max(l + 1));
    let ids = unique(ids);
    let values = (0..ids.len())
        .map(|i| format!("($1, $2, ${}, ${})", 3 + 2 * i, 4 + 2 * i))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO user_library (user_id, item_type, item_id, saved_at) VALUES {values}
         ON CONFLICT (user_id, item_type, item_id) DO NOTHING"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_str()).bind(kind.item_type());
    for (at, id) in (base..).zip(&ids) {
        q = q.bind(*id).bind(at);
    }
    q.execute(&mut *tx).await?;
    if kind == LibraryKind::Playlist {
        recount_followers(&mut tx, db.backend(), &ids).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Remove `ids` of `kind` from `user`'s library; ids not in it are fine.
pub(crate) async fn remove(
    db: &Db,
    user: &UserId,
    kind: LibraryKind,
    ids: &[String],
) -> Result<(), ApiError> {
    let ids = unique(ids);
    let mut tx = db.begin_write().await?;
    let sql = format!(
        "DELETE FROM user_library WHERE user_id = $1 AND item_type = $2 AND item_id IN ({})",
        placeholders(3, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_str()).bind(kind.item_type());
    for id in &ids {
        q = q.bind(*id);
    }
    q.execute(&mut *tx).await?;
    if kind == LibraryKind::Playlist {
        recount_followers(&mut tx, db.backend(), &ids).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Which of `ids` name an item of `kind` that `user` may save.
async fn existing(
    tx: &mut Transaction<'static, Any>,
    user: &UserId,
    kind: LibraryKind,
    ids: &[String],
) -> Result<HashSet<String>, ApiError> {
    let ids = unique(ids);
    let table = match kind {
        LibraryKind::Track => "tracks",
        LibraryKind::Album => "albums",
        LibraryKind::Artist => "artists",
        LibraryKind::Playlist => "playlists",
    };
    // `$1` is the user: only a playlist's visibility reads it.
    let visible = if kind == LibraryKind::Playlist { VISIBLE_TO_1 } else { "$1 <> ''" };
    let sql =
        format!("SELECT p.id FROM {table} p WHERE p.id IN ({}) AND {visible}", placeholders(2, ids.len()));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_str());
    for id in &ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    Ok(rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<_, _>>()?)
}

/// Set the follower counts of playlists `ids` to the libraries holding them
/// (and move their search rows, which follow the count).
async fn recount_followers(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    ids: &[&str],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE playlists SET follower_count =
             (SELECT COUNT(*) FROM user_library l WHERE l.item_type = 'playlist' AND l.item_id = playlists.id)
         WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut **tx).await?;
    search::reposition(tx, backend, Kind::Playlist, ids).await
}

/// One window of `user`'s saved `kind`, newest first: the total, and each
/// entry's id and `saved_at` (unix ms).
pub(crate) async fn list(
    db: &Db,
    user: &UserId,
    kind: LibraryKind,
    (limit, offset): (i64, i64),
) -> Result<(u64, Vec<(String, i64)>), ApiError> {
    let join = kind.join();
    let mut tx = begin_read(db).await?;
    let sql =
        format!("SELECT COUNT(*) AS n FROM user_library l {join} WHERE l.user_id = $1 AND l.item_type = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user.as_str())
        .bind(kind.item_type())
        .fetch_one(&mut *tx)
        .await?;
    let total = get_unsigned(&row, "n")?;
    let sql = format!(
        "SELECT l.item_id, l.saved_at FROM user_library l {join}
         WHERE l.user_id = $1 AND l.item_type = $2
         ORDER BY l.saved_at DESC, l.item_id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(user.as_str())
        .bind(kind.item_type())
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let entries = rows
        .iter()
        .map(|r| Ok((r.try_get("item_id")?, r.try_get("saved_at")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((total, entries))
}

/// Which of `ids` (1-50) `user` saved as `kind`.
pub(crate) async fn contains(
    db: &Db,
    user: &UserId,
    kind: LibraryKind,
    ids: &[String],
) -> Result<HashSet<String>, ApiError> {
    let ids = unique(ids);
    let sql = format!(
        "SELECT item_id FROM user_library WHERE user_id = $1 AND item_type = $2 AND item_id IN ({})",
        placeholders(3, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_str()).bind(kind.item_type());
    for id in &ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(db.pool()).await?;
    Ok(rows.iter().map(|r| r.try_get::<String, _>("item_id")).collect::<Result<_, _>>()?)
}

/// The albums `ids` with their credited artists, by id.
pub(crate) async fn albums_by_ids(
    db: &Db,
    ids: &[String],
) -> Result<HashMap<String, LibraryAlbum>, ApiError> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let list = placeholders(1, ids.len());
    let sql =
        format!("SELECT id, title, album_type, release_date, release_at FROM albums WHERE id IN ({list})");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    for row in q.fetch_all(db.pool()).await? {
        let album_type: String = row.try_get("album_type")?;
        let album_type = AlbumType::parse(&album_type)
            .ok_or_else(|| ApiError::internal("albums", &format!("album_type {album_type:?}")))?;
        let release_at: Option<i64> = row.try_get("release_at")?;
        let album = LibraryAlbum {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            album_type,
            release_date: row.try_get("release_date")?,
            release_at: release_at.map(|ms| ms.div_euclid(1000)),
            artists: Vec::new(),
        };
        out.insert(album.id.clone(), album);
    }
    let sql = format!(
        "SELECT aa.album_id, ar.id, ar.name FROM album_artists aa JOIN artists ar ON ar.id = aa.artist_id
         WHERE aa.album_id IN ({list}) ORDER BY aa.album_id, aa.position"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    for row in q.fetch_all(db.pool()).await? {
        let album: String = row.try_get("album_id")?;
        if let Some(a) = out.get_mut(&album) {
            a.artists.push(ArtistSummary { id: row.try_get("id")?, name: row.try_get("name")? });
        }
    }
    Ok(out)
}

/// The artists `ids`, by id.
pub(crate) async fn artists_by_ids(
    db: &Db,
    ids: &[String],
) -> Result<HashMap<String, LibraryArtist>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql =
        format!("SELECT id, name, popularity FROM artists WHERE id IN ({})", placeholders(1, ids.len()));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    q.fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| {
            let a = LibraryArtist {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                popularity: get_unsigned(r, "popularity")?,
            };
            Ok((a.id.clone(), a))
        })
        .collect()
}
