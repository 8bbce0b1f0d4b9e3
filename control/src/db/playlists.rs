//! Playlist queries: playlists, their ordered items and collaborators.
//!
//! Invariants every committed write keeps (and the tests check):
//! - `playlist_items.position` of a playlist is exactly `0..item_count`
//!   (the `(playlist_id, position)` index is not unique, so a range is
//!   shifted by one `UPDATE` with arithmetic without colliding halfway;
//!   deletes are followed by a `ROW_NUMBER()` renumbering);
//! - every write bumps `playlists.version`, which the snapshot id encodes;
//! - a write is one transaction that first takes the playlist: on
//!   PostgreSQL `SELECT … FOR UPDATE` locks its row, on SQLite the write
//!   transaction is `BEGIN IMMEDIATE`, so concurrent writes to a playlist
//!   run one after the other, each seeing the last one's items — none is
//!   lost, and a stale `If-Match` is seen as stale.
//!
//! Reads of a playlist and its items run in one read transaction
//! (REPEATABLE READ on PostgreSQL; one WAL snapshot on SQLite), so the
//! snapshot id, the total and the items of an answer agree.
//!
//! No function here takes a second pooled connection while it holds a
//! transaction: under load that would let the pool starve itself.

use std::collections::{HashMap, HashSet};

use cadenza_config::ids::{UserId, random_id};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use super::catalog::placeholders;
use super::search::{self, Kind};
use super::{Backend, Db, get_bool, get_unsigned, now_ms};
use crate::error::{ApiError, ErrorKind};
use crate::types::{PlaylistOwner, SimplePlaylist};
use crate::validate::echo;

/// Most items a playlist holds (Spotify's limit).
pub(crate) const MAX_ITEMS: i64 = 10_000;

/// Length of a new playlist id (62^22 ≈ 2^131: unguessable, so a private
/// playlist's id does not leak by enumeration).
const ID_LEN: usize = 22;

/// The columns of [`PlaylistRow`], for `FROM playlists p JOIN users u`.
const COLUMNS: &str = "p.id, p.owner_id, u.display_name AS owner_name, p.name, p.description, \
     p.is_public, p.is_collaborative, p.version, p.item_count, p.follower_count";

/// SQL condition: playlist `p` is visible to the user bound as `$1`.
pub(crate) const VISIBLE_TO_1: &str = "(p.is_public OR p.owner_id = $1 OR (p.is_collaborative AND EXISTS \
     (SELECT 1 FROM playlist_collaborators c WHERE c.playlist_id = p.id AND c.user_id = $1)))";

/// The snapshot id of version `version` of playlist `id`: the lower-case
/// hex of `"{id}:{version}"`. Opaque to clients; it changes with every
/// write (the version is bumped) and is stable in between.
pub(crate) fn snapshot_id(id: &str, version: i64) -> String {
    hex::encode(format!("{id}:{version}"))
}

/// A playlist as stored, with its owner's display name.
#[derive(Clone, Debug)]
pub(crate) struct PlaylistRow {
    pub(crate) id: String,
    pub(crate) owner_id: String,
    pub(crate) owner_name: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) public: bool,
    pub(crate) collaborative: bool,
    pub(crate) version: i64,
    pub(crate) item_count: i64,
    pub(crate) followers: u64,
}

impl PlaylistRow {
    fn from_row(row: &AnyRow) -> Result<Self, ApiError> {
        Ok(Self {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            owner_name: row.try_get("owner_name")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            public: get_bool(row, "is_public")?,
            collaborative: get_bool(row, "is_collaborative")?,
            version: row.try_get("version")?,
            item_count: get_unsigned::<i64>(row, "item_count")?,
            followers: get_unsigned(row, "follower_count")?,
        })
    }

    pub(crate) fn snapshot_id(&self) -> String {
        snapshot_id(&self.id, self.version)
    }

    pub(crate) fn owner(&self) -> Result<PlaylistOwner, ApiError> {
        Ok(PlaylistOwner {
            id: self.owner_id.parse().map_err(|e| ApiError::internal("playlists.owner_id", &e))?,
            display_name: self.owner_name.clone(),
        })
    }

    /// The list form of the playlist.
    pub(crate) fn simple(&self) -> Result<SimplePlaylist, ApiError> {
        Ok(SimplePlaylist {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            public: self.public,
            collaborative: self.collaborative,
            owner: self.owner()?,
            snapshot_id: self.snapshot_id(),
            followers: self.followers,
            items_total: u64::try_from(self.item_count).unwrap_or(0),
        })
    }
}

/// What a user may do with a playlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Everything.
    Owner,
    /// Add, remove and reorder items of a collaborative playlist.
    Collaborator,
    /// Read a public playlist.
    Viewer,
}

/// What a write needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Change details, delete, manage collaborators.
    Owner,
    /// Change the items.
    Editor,
}

/// One item as stored.
#[derive(Clone, Debug)]
pub(crate) struct ItemRow {
    pub(crate) position: u32,
    pub(crate) track_id: String,
    pub(crate) added_by: Option<String>,
    /// Unix milliseconds.
    pub(crate) added_at: i64,
}

/// The 404 of a playlist that does not exist or that the user may not see
/// (the same answer, so private ids do not leak).
pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorKind::PlaylistNotFound, format!("id: no playlist {}", echo(id)))
}

/// A transaction for consistent reads: REPEATABLE READ on PostgreSQL (one
/// snapshot for every statement); on SQLite a deferred transaction reads
/// one WAL snapshot from its first statement on.
pub(crate) async fn begin_read(db: &Db) -> Result<Transaction<'static, Any>, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// The playlist `id` and what `user` may do with it; `None` when it does
/// not exist or the user may not see it. `lock` takes the row for the rest
/// of the transaction on PostgreSQL (`FOR UPDATE`).
async fn load(
    conn: &mut AnyConnection,
    backend: Backend,
    id: &str,
    user: &UserId,
    lock: bool,
) -> Result<Option<(PlaylistRow, Access)>, ApiError> {
    let lock = if lock && backend == Backend::Postgres { " FOR UPDATE OF p" } else { "" };
    let sql =
        format!("SELECT {COLUMNS} FROM playlists p JOIN users u ON u.id = p.owner_id WHERE p.id = $1{lock}");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let row = PlaylistRow::from_row(&row)?;
    let access = if row.owner_id == user.as_str() {
        Some(Access::Owner)
    } else if row.collaborative && is_collaborator(conn, id, user.as_str()).await? {
        Some(Access::Collaborator)
    } else if row.public {
        Some(Access::Viewer)
    } else {
        None
    };
    Ok(access.map(|a| (row, a)))
}

async fn is_collaborator(conn: &mut AnyConnection, id: &str, user: &str) -> Result<bool, sqlx::Error> {
    let found =
        sqlx::query("SELECT 1 AS one FROM playlist_collaborators WHERE playlist_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// Take playlist `id` for a write by `user`: 404 if the user cannot see
/// it, 403 if they may not make this kind of change, 412 if any of
/// `snapshots` (from `If-Match` or the body) is not the current one.
async fn take(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    id: &str,
    user: &UserId,
    need: Need,
    snapshots: &[&str],
) -> Result<PlaylistRow, ApiError> {
    let (row, access) = load(tx, backend, id, user, true).await?.ok_or_else(|| not_found(id))?;
    let allowed = match need {
        Need::Owner => access == Access::Owner,
        Need::Editor => access != Access::Viewer,
    };
    if !allowed {
        let what = match need {
            Need::Owner => {
                "only its owner may change this playlist's details, delete it or manage its collaborators"
            }
            Need::Editor => {
                "only its owner and, on a collaborative playlist, its collaborators may change its items"
            }
        };
        return Err(ApiError::new(ErrorKind::Forbidden, format!("id: {what}")));
    }
    let current = row.snapshot_id();
    if let Some(stale) = snapshots.iter().find(|s| **s != current) {
        return Err(ApiError::new(
            ErrorKind::PreconditionFailed,
            format!("snapshot_id: {} is not the playlist's current snapshot {current:?}", echo(stale)),
        ));
    }
    Ok(row)
}

/// Record a change: bump the version, set the item count; the new
/// snapshot id.
async fn bump(
    tx: &mut Transaction<'static, Any>,
    row: &PlaylistRow,
    item_count: i64,
) -> Result<String, ApiError> {
    sqlx::query("UPDATE playlists SET version = version + 1, item_count = $2, updated_at = $3 WHERE id = $1")
        .bind(&row.id)
        .bind(item_count)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(snapshot_id(&row.id, row.version + 1))
}

/// A new playlist's validated details.
#[derive(Debug)]
pub(crate) struct NewPlaylist {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) public: bool,
    pub(crate) collaborative: bool,
}

/// Create a playlist owned by `owner` and index it for search, in one
/// transaction.
pub(crate) async fn create(db: &Db, owner: &UserId, new: &NewPlaylist) -> Result<PlaylistRow, ApiError> {
    let id = random_id(ID_LEN);
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO playlists (id, owner_id, name, description, is_public, is_collaborative,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(owner.as_str())
    .bind(&new.name)
    .bind(new.description.as_deref())
    .bind(new.public)
    .bind(new.collaborative)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let (row, _) = load(&mut tx, db.backend(), &id, owner, false).await?.ok_or_else(|| not_found(&id))?;
    reindex(&mut tx, db.backend(), &row).await?;
    tx.commit().await?;
    Ok(row)
}

async fn reindex(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    row: &PlaylistRow,
) -> Result<(), sqlx::Error> {
    let text = crate::search::index_text(&row.name, &[&row.owner_name]);
    search::index(tx, backend, Kind::Playlist, &row.id, &text).await
}

/// Playlist `id` as `user` sees it, with the items of the window
/// `(limit, offset)`; `None` when it does not exist or is hidden from them.
pub(crate) async fn view(
    db: &Db,
    id: &str,
    user: &UserId,
    (limit, offset): (i64, i64),
) -> Result<Option<(PlaylistRow, Vec<ItemRow>)>, ApiError> {
    let mut tx = begin_read(db).await?;
    let Some((row, _)) = load(&mut tx, db.backend(), id, user, false).await? else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT position, track_id, added_by, added_at FROM playlist_items
         WHERE playlist_id = $1 ORDER BY position LIMIT $2 OFFSET $3",
    )
    .bind(id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(ItemRow {
                position: get_unsigned(r, "position")?,
                track_id: r.try_get("track_id")?,
                added_by: r.try_get("added_by")?,
                added_at: r.try_get("added_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some((row, items)))
}

/// Validated changes of a playlist's details; `None` leaves a field.
#[derive(Debug, Default)]
pub(crate) struct DetailChanges {
    pub(crate) name: Option<String>,
    /// `Some(None)` removes the description.
    pub(crate) description: Option<Option<String>>,
    pub(crate) public: Option<bool>,
    pub(crate) collaborative: Option<bool>,
}

/// Change the details of playlist `id` (owner only); re-index its name.
pub(crate) async fn update(
    db: &Db,
    id: &str,
    user: &UserId,
    snapshots: &[&str],
    changes: DetailChanges,
) -> Result<PlaylistRow, ApiError> {
    let mut tx = db.begin_write().await?;
    let mut row = take(&mut tx, db.backend(), id, user, Need::Owner, snapshots).await?;
    let public = changes.public.unwrap_or(row.public);
    let collaborative = changes.collaborative.unwrap_or(row.collaborative);
    if public && collaborative {
        let field = if changes.public == Some(true) { "public" } else { "collaborative" };
        return Err(ApiError::invalid(format!(
            "{field}: a collaborative playlist cannot be public (set public to false)"
        )));
    }
    if let Some(name) = changes.name {
        row.name = name;
    }
    if let Some(description) = changes.description {
        row.description = description;
    }
    (row.public, row.collaborative) = (public, collaborative);
    sqlx::query(
        "UPDATE playlists SET name = $2, description = $3, is_public = $4, is_collaborative = $5,
             version = version + 1, updated_at = $6
         WHERE id = $1",
    )
    .bind(&row.id)
    .bind(&row.name)
    .bind(row.description.as_deref())
    .bind(row.public)
    .bind(row.collaborative)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    row.version += 1;
    reindex(&mut tx, db.backend(), &row).await?;
    tx.commit().await?;
    Ok(row)
}

/// Delete playlist `id` (owner only) with its items, collaborators, search
/// entry and every library's save of it.
pub(crate) async fn delete(db: &Db, id: &str, user: &UserId, snapshots: &[&str]) -> Result<(), ApiError> {
    let mut tx = db.begin_write().await?;
    take(&mut tx, db.backend(), id, user, Need::Owner, snapshots).await?;
    search::unindex(&mut tx, db.backend(), Kind::Playlist, id).await?;
    sqlx::query("DELETE FROM user_library WHERE item_type = 'playlist' AND item_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM playlists WHERE id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Insert `track_ids` before index `position` (default: append); the new
/// snapshot id. Every track must exist (400 naming `track_ids[i]`).
pub(crate) async fn add_items(
    db: &Db,
    id: &str,
    user: &UserId,
    snapshots: &[&str],
    track_ids: &[String],
    position: Option<u32>,
) -> Result<String, ApiError> {
    let mut tx = db.begin_write().await?;
    let row = take(&mut tx, db.backend(), id, user, Need::Editor, snapshots).await?;
    let n = row.item_count;
    let k = i64::try_from(track_ids.len()).unwrap_or(i64::MAX);
    let at = match position {
        None => n,
        Some(p) if i64::from(p) <= n => i64::from(p),
        Some(p) => {
            return Err(ApiError::invalid(format!(
                "position: must be at most the playlist's length {n}, got {p}"
            )));
        }
    };
    if n + k > MAX_ITEMS {
        return Err(ApiError::invalid(format!(
            "track_ids: the playlist holds {n} items and may hold at most {MAX_ITEMS}; {k} more is too many"
        )));
    }
    let existing = existing_tracks(&mut tx, track_ids).await?;
    if let Some((i, missing)) = track_ids.iter().enumerate().find(|(_, t)| !existing.contains(*t)) {
        return Err(ApiError::invalid(format!("track_ids[{i}]: no track {}", echo(missing))));
    }
    sqlx::query(
        "UPDATE playlist_items SET position = position + $2 WHERE playlist_id = $1 AND position >= $3",
    )
    .bind(id)
    .bind(k)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let values = (0..track_ids.len())
        .map(|i| format!("($1, ${}, ${}, $2, $3)", 4 + 2 * i, 5 + 2 * i))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO playlist_items (playlist_id, position, track_id, added_by, added_at) VALUES {values}"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(user.as_str()).bind(now_ms());
    for (p, track) in (at..).zip(track_ids) {
        q = q.bind(p).bind(track);
    }
    q.execute(&mut *tx).await?;
    let snapshot = bump(&mut tx, &row, n + k).await?;
    tx.commit().await?;
    Ok(snapshot)
}

/// Which of `ids` name a track.
async fn existing_tracks(
    tx: &mut Transaction<'static, Any>,
    ids: &[String],
) -> Result<HashSet<String>, ApiError> {
    let mut unique: Vec<&str> = ids.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    let sql = format!("SELECT id FROM tracks WHERE id IN ({})", placeholders(1, unique.len()));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in &unique {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    Ok(rows.iter().map(|r| r.try_get::<String, _>("id")).collect::<Result<_, _>>()?)
}

/// One entry of a removal (validated): a track, and the positions to
/// remove or `None` for every occurrence.
#[derive(Debug)]
pub(crate) struct Removal {
    pub(crate) track_id: String,
    pub(crate) positions: Option<Vec<u32>>,
}

/// Remove items, then renumber the rest `0..`; the new snapshot id. A
/// given position must hold the named track (400 naming
/// `tracks[i].positions[j]`).
pub(crate) async fn remove_items(
    db: &Db,
    id: &str,
    user: &UserId,
    snapshots: &[&str],
    removals: &[Removal],
) -> Result<String, ApiError> {
    let mut tx = db.begin_write().await?;
    let row = take(&mut tx, db.backend(), id, user, Need::Editor, snapshots).await?;
    let n = row.item_count;

    let mut every: Vec<&str> = Vec::new();
    let mut at: Vec<(usize, usize, u32, &str)> = Vec::new();
    for (i, r) in removals.iter().enumerate() {
        match &r.positions {
            None => every.push(&r.track_id),
            Some(ps) => {
                for (j, p) in ps.iter().enumerate() {
                    if i64::from(*p) >= n {
                        return Err(ApiError::invalid(format!(
                            "tracks[{i}].positions[{j}]: position {p} is past the playlist's end ({n} items)"
                        )));
                    }
                    at.push((i, j, *p, &r.track_id));
                }
            }
        }
    }
    let mut positions: Vec<u32> = at.iter().map(|a| a.2).collect();
    positions.sort_unstable();
    positions.dedup();
    if !positions.is_empty() {
        let sql = format!(
            "SELECT position, track_id FROM playlist_items WHERE playlist_id = $1 AND position IN ({})",
            placeholders(2, positions.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
        for p in &positions {
            q = q.bind(i64::from(*p));
        }
        let held: HashMap<u32, String> = q
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((get_unsigned(r, "position")?, r.try_get("track_id")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for (i, j, p, track) in &at {
            if held.get(p).map(String::as_str) != Some(*track) {
                return Err(ApiError::invalid(format!(
                    "tracks[{i}].positions[{j}]: position {p} does not hold track {}",
                    echo(track)
                )));
            }
        }
    }

    let mut conditions = Vec::new();
    let mut next = 2;
    if !every.is_empty() {
        conditions.push(format!("track_id IN ({})", placeholders(next, every.len())));
        next += every.len();
    }
    if !positions.is_empty() {
        conditions.push(format!("position IN ({})", placeholders(next, positions.len())));
    }
    let sql = format!("DELETE FROM playlist_items WHERE playlist_id = $1 AND ({})", conditions.join(" OR "));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
    for t in &every {
        q = q.bind(*t);
    }
    for p in &positions {
        q = q.bind(i64::from(*p));
    }
    let removed = i64::try_from(q.execute(&mut *tx).await?.rows_affected()).unwrap_or(i64::MAX);
    if removed > 0 {
        renumber(&mut tx, id).await?;
    }
    let snapshot = bump(&mut tx, &row, n - removed).await?;
    tx.commit().await?;
    Ok(snapshot)
}

/// Close the gaps a delete left: positions become `0..` in their order.
async fn renumber(tx: &mut Transaction<'static, Any>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE playlist_items SET position = r.rn - 1
         FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY position, id) AS rn
               FROM playlist_items WHERE playlist_id = $1) AS r
         WHERE playlist_items.id = r.id AND playlist_items.position <> r.rn - 1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where a reorder moves things: the new positions as one shift of the
/// moved range and one of the items it passes over, or `None` when the
/// order does not change (Spotify's semantics: `[start, start + length)`
/// goes before the item that was at `before`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Move {
    /// Items at positions `lo..hi` change.
    pub(crate) lo: i64,
    pub(crate) hi: i64,
    /// Added to the positions of the moved range.
    pub(crate) range_shift: i64,
    /// Added to the positions of the other items in `lo..hi`.
    pub(crate) other_shift: i64,
}

impl Move {
    /// The move of `length` items from `start` to before `before`; the
    /// caller has checked the bounds.
    pub(crate) fn of(start: i64, before: i64, length: i64) -> Option<Self> {
        let end = start + length;
        if before < start {
            Some(Self { lo: before, hi: end, range_shift: before - start, other_shift: length })
        } else if before > end {
            Some(Self { lo: start, hi: before, range_shift: before - end, other_shift: -length })
        } else {
            None
        }
    }
}

/// Move the items `[start, start + length)` before `before`; the new
/// snapshot id. Bounds: `start < n`, `start + length ≤ n`, `before ≤ n`.
pub(crate) async fn reorder(
    db: &Db,
    id: &str,
    user: &UserId,
    snapshots: &[&str],
    start: u32,
    before: u32,
    length: u32,
) -> Result<String, ApiError> {
    let mut tx = db.begin_write().await?;
    let row = take(&mut tx, db.backend(), id, user, Need::Editor, snapshots).await?;
    let n = row.item_count;
    let (start, before, length) = (i64::from(start), i64::from(before), i64::from(length));
    if start >= n {
        return Err(ApiError::invalid(format!(
            "range_start: must be less than the playlist's length {n}, got {start}"
        )));
    }
    if start + length > n {
        return Err(ApiError::invalid(format!(
            "range_length: range_start + range_length must be at most the playlist's length {n}, got {}",
            start + length
        )));
    }
    if before > n {
        return Err(ApiError::invalid(format!(
            "insert_before: must be at most the playlist's length {n}, got {before}"
        )));
    }
    if let Some(m) = Move::of(start, before, length) {
        sqlx::query(
            "UPDATE playlist_items SET position = CASE
                 WHEN position >= $4 AND position < $5 THEN position + $6
                 ELSE position + $7 END
             WHERE playlist_id = $1 AND position >= $2 AND position < $3",
        )
        .bind(id)
        .bind(m.lo)
        .bind(m.hi)
        .bind(start)
        .bind(start + length)
        .bind(m.range_shift)
        .bind(m.other_shift)
        .execute(&mut *tx)
        .await?;
    }
    let snapshot = bump(&mut tx, &row, n).await?;
    tx.commit().await?;
    Ok(snapshot)
}

/// Add (`add`) or remove `collaborator` on playlist `id` (owner only). The
/// user must exist (404 `user_not_found`). Collaborators can edit only
/// while the playlist is collaborative; the list is kept when it is not.
pub(crate) async fn set_collaborator(
    db: &Db,
    id: &str,
    user: &UserId,
    snapshots: &[&str],
    collaborator: &UserId,
    add: bool,
) -> Result<(), ApiError> {
    let mut tx = db.begin_write().await?;
    let row = take(&mut tx, db.backend(), id, user, Need::Owner, snapshots).await?;
    let exists = sqlx::query("SELECT 1 AS one FROM users WHERE id = $1")
        .bind(collaborator.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::new(
            ErrorKind::UserNotFound,
            format!("user_id: no user {}", echo(collaborator.as_str())),
        ));
    }
    if add {
        if collaborator.as_str() == row.owner_id {
            return Err(ApiError::invalid(
                "user_id: the owner cannot be a collaborator of their own playlist",
            ));
        }
        sqlx::query(
            "INSERT INTO playlist_collaborators (playlist_id, user_id, added_at) VALUES ($1, $2, $3)
             ON CONFLICT (playlist_id, user_id) DO NOTHING",
        )
        .bind(id)
        .bind(collaborator.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query("DELETE FROM playlist_collaborators WHERE playlist_id = $1 AND user_id = $2")
            .bind(id)
            .bind(collaborator.as_str())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Playlists `user` owns or collaborates on (a collaborative one), newest
/// first: the total and one window.
pub(crate) async fn of_member(
    db: &Db,
    user: &UserId,
    (limit, offset): (i64, i64),
) -> Result<(u64, Vec<PlaylistRow>), ApiError> {
    let filter = "p.owner_id = $1 OR (p.is_collaborative AND EXISTS \
         (SELECT 1 FROM playlist_collaborators c WHERE c.playlist_id = p.id AND c.user_id = $1))";
    list(db, filter, user.as_str(), limit, offset).await
}

/// The public playlists `owner` owns, newest first: the total and one
/// window.
pub(crate) async fn public_of(
    db: &Db,
    owner: &UserId,
    (limit, offset): (i64, i64),
) -> Result<(u64, Vec<PlaylistRow>), ApiError> {
    list(db, "p.owner_id = $1 AND p.is_public", owner.as_str(), limit, offset).await
}

async fn list(
    db: &Db,
    filter: &str,
    user: &str,
    limit: i64,
    offset: i64,
) -> Result<(u64, Vec<PlaylistRow>), ApiError> {
    let mut tx = begin_read(db).await?;
    let sql = format!("SELECT COUNT(*) AS n FROM playlists p WHERE {filter}");
    let total = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user).fetch_one(&mut *tx).await?;
    let total = get_unsigned(&total, "n")?;
    let sql = format!(
        "SELECT {COLUMNS} FROM playlists p JOIN users u ON u.id = p.owner_id
         WHERE {filter} ORDER BY p.created_at DESC, p.id LIMIT $2 OFFSET $3"
    );
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user).bind(limit).bind(offset).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let rows = rows.iter().map(PlaylistRow::from_row).collect::<Result<_, _>>()?;
    Ok((total, rows))
}

/// The playlists `ids` that `user` may see, by id (for a library page).
pub(crate) async fn visible_by_ids(
    db: &Db,
    user: &UserId,
    ids: &[String],
) -> Result<HashMap<String, PlaylistRow>, ApiError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM playlists p JOIN users u ON u.id = p.owner_id
         WHERE p.id IN ({}) AND {VISIBLE_TO_1}",
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_str());
    for id in ids {
        q = q.bind(id);
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter().map(|r| PlaylistRow::from_row(r).map(|p| (p.id.clone(), p))).collect()
}

/// Is there a user `id`?
pub(crate) async fn user_exists(db: &Db, id: &UserId) -> Result<bool, ApiError> {
    let found = sqlx::query("SELECT 1 AS one FROM users WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spotify's reorder on a list, the obvious way.
    fn model(v: &[u32], start: usize, before: usize, length: usize) -> Vec<u32> {
        if (start..=start + length).contains(&before) {
            return v.to_vec();
        }
        let moved: Vec<u32> = v[start..start + length].to_vec();
        let mut rest: Vec<u32> = v[..start].iter().chain(&v[start + length..]).copied().collect();
        let at = if before > start { before - length } else { before };
        rest.splice(at..at, moved);
        rest
    }

    /// [`Move`] applied as the UPDATE applies it.
    fn apply(v: &[u32], start: i64, before: i64, length: i64) -> Vec<u32> {
        let Some(m) = Move::of(start, before, length) else { return v.to_vec() };
        let mut placed: Vec<(i64, u32)> = (0_i64..)
            .zip(v)
            .map(|(p, x)| {
                let q = if p >= m.lo && p < m.hi {
                    if p >= start && p < start + length { p + m.range_shift } else { p + m.other_shift }
                } else {
                    p
                };
                (q, *x)
            })
            .collect();
        placed.sort_unstable();
        let positions: Vec<i64> = placed.iter().map(|p| p.0).collect();
        assert_eq!(positions, (0..i64::try_from(v.len()).unwrap()).collect::<Vec<_>>(), "a permutation");
        placed.into_iter().map(|p| p.1).collect()
    }

    #[test]
    fn moves_match_the_model() {
        for n in 1..=7_usize {
            let v: Vec<u32> = (0..u32::try_from(n).unwrap()).collect();
            for start in 0..n {
                for length in 1..=n - start {
                    for before in 0..=n {
                        let (s, b, l) = (start as i64, before as i64, length as i64);
                        assert_eq!(
                            apply(&v, s, b, l),
                            model(&v, start, before, length),
                            "{n} {start} {before} {length}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn snapshot_ids_differ_by_version_and_playlist() {
        assert_eq!(snapshot_id("p1", 1), snapshot_id("p1", 1));
        assert_ne!(snapshot_id("p1", 1), snapshot_id("p1", 2));
        assert_ne!(snapshot_id("p1", 12), snapshot_id("p11", 2));
        assert_eq!(snapshot_id("ab", 3), hex::encode("ab:3"));
    }
}
