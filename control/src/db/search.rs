//! The search index: each searchable row's `search_text`
//! ([`crate::search::index_text`]), kept in step by the writes that change
//! a name, and the candidate queries of each backend (see
//! [`crate::search`] for how candidates are ranked).
//!
//! - PostgreSQL indexes the column itself (pg_trgm GIN and a `simple`
//!   full-text GIN, migration 0003).
//! - SQLite keeps an FTS5 trigram table per kind (`tracks_fts`, …) whose
//!   rowid is [`rowid`]`(id)`, written here in the same transaction.

use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};

use super::{Backend, Db};
use crate::search::{CANDIDATES, Query};

/// A searchable kind of entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Track,
    Album,
    Artist,
    Playlist,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Track => "tracks",
            Kind::Album => "albums",
            Kind::Artist => "artists",
            Kind::Playlist => "playlists",
        }
    }

    pub(crate) fn fts(self) -> &'static str {
        match self {
            Kind::Track => "tracks_fts",
            Kind::Album => "albums_fts",
            Kind::Artist => "artists_fts",
            Kind::Playlist => "playlists_fts",
        }
    }

    /// Only public playlists are found.
    fn filter(self) -> &'static str {
        match self {
            Kind::Playlist => "AND t.is_public",
            _ => "",
        }
    }

    /// The column ranking reads as the name.
    fn name(self) -> &'static str {
        match self {
            Kind::Track | Kind::Album => "t.title",
            Kind::Artist | Kind::Playlist => "t.name",
        }
    }

    /// 0-100 for ranking (a playlist's followers, capped).
    fn popularity_0_100(self) -> &'static str {
        match self {
            Kind::Playlist => "CASE WHEN t.follower_count > 100 THEN 100 ELSE t.follower_count END",
            _ => "t.popularity",
        }
    }

    /// The order of candidates: most popular first. For a query of more
    /// than two characters it is written as an expression (`+ 0`) so
    /// PostgreSQL never walks the popularity index filtering every row by
    /// the text: when it misjudges how rare the words are, that reads a
    /// tenth of the table (290 ms on 1M tracks for `follow & br:*`), while
    /// the full-text index then a top-N sort costs what the matches cost.
    /// A one- or two-letter query matches so much that walking the index
    /// finds 200 at once, and the bitmap of its matches is what is slow.
    fn popularity(self, query: &Query) -> &'static str {
        let short = query.normalized.chars().count() <= 2;
        match (self, short) {
            (Kind::Playlist, true) => "t.follower_count",
            (Kind::Playlist, false) => "(t.follower_count + 0)",
            (_, true) => "t.popularity",
            (_, false) => "(t.popularity + 0)",
        }
    }
}

/// The FTS5 rowid of an entity: the first 8 bytes of SHA-256(id), as a
/// signed big-endian integer. Stable, unlike an implicit rowid.
pub(crate) fn rowid(id: &str) -> i64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Set `kind` `id`'s search text to `text` (from
/// [`crate::search::index_text`]); a no-op when it is already that.
pub(crate) async fn index(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kind: Kind,
    id: &str,
    text: &str,
) -> Result<(), sqlx::Error> {
    let sql = format!("UPDATE {} SET search_text = $1 WHERE id = $2 AND search_text <> $1", kind.table());
    let changed = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(text).bind(id).execute(&mut **tx).await?;
    if changed.rows_affected() > 0 {
        add_words(tx, backend, &[text]).await?;
    }
    if backend == Backend::Sqlite && changed.rows_affected() > 0 {
        let fts = kind.fts();
        let rowid = rowid(id);
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {fts} WHERE rowid = $1")))
            .bind(rowid)
            .execute(&mut **tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {fts} (rowid, search_text, id) VALUES ($1, $2, $3)"
        )))
        .bind(rowid)
        .bind(text)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Add the words of `texts` to `search_words`, the spelling dictionary
/// (PostgreSQL only; SQLite's trigram candidates catch typos by
/// themselves). Sorted, so concurrent writers take the rows' locks in one
/// order.
pub(crate) async fn add_words(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    texts: &[&str],
) -> Result<(), sqlx::Error> {
    if backend != Backend::Postgres {
        return Ok(());
    }
    let mut words: Vec<&str> =
        texts.iter().flat_map(|t| t.split(' ')).filter(|w| !w.is_empty() && w.len() <= 500).collect();
    words.sort_unstable();
    words.dedup();
    for chunk in words.chunks(1000) {
        let values = (1..=chunk.len()).map(|i| format!("(${i})")).collect::<Vec<_>>().join(", ");
        let sql = format!("INSERT INTO search_words (word) VALUES {values} ON CONFLICT DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for w in chunk {
            q = q.bind(*w);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drop `kind` `id` from the index (before or after deleting the row).
pub(crate) async fn unindex(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kind: Kind,
    id: &str,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {} WHERE rowid = $1", kind.fts())))
            .bind(rowid(id))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Fewer prefix matches than this, and PostgreSQL also looks for typos.
const TYPO_FALLBACK: i64 = 3;
/// Close dictionary words tried for each query word.
const CORRECTIONS: i64 = 4;

/// The query's tsquery with each word of 3+ characters OR-ed with its
/// closest words in `search_words` (pg_trgm neighbours within one edit, two
/// for words of 8+ letters):
/// `(beatels | beatles | beatle) & …`. `None` when no word has a close
/// neighbour, so there is nothing new to search for.
async fn corrected_tsquery(db: &Db, query: &Query) -> Result<Option<String>, sqlx::Error> {
    let long: Vec<&str> = query.words.iter().map(String::as_str).filter(|w| w.chars().count() >= 3).collect();
    if long.is_empty() {
        return Ok(None);
    }
    // Trigram similarity finds the neighbours (a swap in a five-letter
    // word leaves only 0.2 of it), the edit distance keeps the real ones.
    let rows = sqlx::query(
        "SELECT q.word AS q, s.word AS w
         FROM unnest(string_to_array($1, ' ')) AS q(word)
         CROSS JOIN LATERAL (
             SELECT word FROM search_words
             WHERE word % q.word AND word <> q.word AND similarity(word, q.word) >= 0.2
             ORDER BY similarity(word, q.word) DESC, word LIMIT $2
         ) s",
    )
    .bind(long.join(" "))
    .bind(CORRECTIONS * 5)
    .fetch_all(db.pool())
    .await?;
    let mut alternatives: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for r in &rows {
        let q: String = r.try_get("q")?;
        let w: String = r.try_get("w")?;
        let close = crate::search::is_typo_of(&q, &w);
        let alts = alternatives.entry(q).or_default();
        if close && (alts.len() as i64) < CORRECTIONS {
            alts.push(w);
        }
    }
    alternatives.retain(|_, alts| !alts.is_empty());
    if alternatives.is_empty() {
        return Ok(None);
    }
    Ok(Some(query.tsquery_with(|w| alternatives.get(w).map(Vec::as_slice))))
}

/// A search candidate: what ranking needs besides the secondary texts.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) popularity: u32,
}

/// Entities of `kind` that may match `query` (at most
/// [`CANDIDATES`] per step), by the backend's own index.
///
/// - PostgreSQL: the query's words, the last as a prefix (`mr & brigh:*`,
///   the full-text GIN index), the most popular matches first; when that finds
///   fewer than [`TYPO_FALLBACK`], the same again with each word OR-ed
///   with its closest words from the spelling dictionary (pg_trgm on
///   `search_words`), which is where typos are caught.
/// - SQLite: the FTS5 trigram table, the same whole words and last-word
///   prefix as phrases, the most popular first; when that finds fewer
///   than [`TYPO_FALLBACK`], each word matching by any of its trigrams,
///   best bm25 first (typos, including one inside the unfinished word).
pub(crate) async fn candidates(db: &Db, kind: Kind, query: &Query) -> Result<Vec<Hit>, sqlx::Error> {
    let table = kind.table();
    let (filter, popularity) = (kind.filter(), kind.popularity(query));
    let select = format!("t.id, {} AS name, {} AS rank_popularity", kind.name(), kind.popularity_0_100());
    let rows = match db.backend() {
        Backend::Postgres => {
            // The words, the last as a prefix: the most popular matches.
            let sql = format!(
                "SELECT {select} FROM {table} t
                 WHERE t.search_tsv @@ to_tsquery('simple', $1) {filter}
                 ORDER BY {popularity} DESC, t.id
                 LIMIT $2"
            );
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(query.tsquery())
                .bind(CANDIDATES)
                .fetch_all(db.pool())
                .await?;
            if (rows.len() as i64) < TYPO_FALLBACK
                && let Some(corrected) = corrected_tsquery(db, query).await?
            {
                // Few prefix matches: maybe a typo. Again, with each word
                // also standing for its closest dictionary words.
                let sql = format!(
                    "SELECT {select} FROM {table} t
                     WHERE t.search_tsv @@ to_tsquery('simple', $1) {filter}
                     ORDER BY {popularity} DESC, t.id
                     LIMIT $2"
                );
                let more = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(corrected)
                    .bind(CANDIDATES)
                    .fetch_all(db.pool())
                    .await?;
                rows.extend(more);
            }
            rows
        }
        Backend::Sqlite => {
            let fts = kind.fts();
            // Whole words, the last as a word start: the most popular.
            let mut rows = Vec::new();
            if let Some(exact) = query.fts5_exact() {
                let sql = format!(
                    "SELECT {select} FROM {fts} f JOIN {table} t ON t.id = f.id
                     WHERE {fts} MATCH $1 {filter}
                     ORDER BY {popularity} DESC, t.id
                     LIMIT $2"
                );
                rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(exact)
                    .bind(CANDIDATES)
                    .fetch_all(db.pool())
                    .await?;
            }
            if (rows.len() as i64) < TYPO_FALLBACK
                && let Some(fuzzy) = query.fts5()
            {
                // Few: maybe a typo. Any trigram of each word, best bm25.
                let sql = format!(
                    "SELECT {select} FROM {fts} f JOIN {table} t ON t.id = f.id
                     WHERE {fts} MATCH $1 {filter}
                     ORDER BY f.rank, {popularity} DESC, t.id
                     LIMIT $2"
                );
                let more = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(fuzzy)
                    .bind(CANDIDATES)
                    .fetch_all(db.pool())
                    .await?;
                rows.extend(more);
            }
            rows
        }
    };
    let mut seen = std::collections::HashSet::new();
    let mut hits = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id")?;
        if seen.insert(id.clone()) {
            let popularity: i64 = r.try_get("rank_popularity")?;
            let popularity = u32::try_from(popularity.clamp(0, 100)).unwrap_or(0);
            hits.push(Hit { id, name: r.try_get("name")?, popularity });
        }
    }
    Ok(hits)
}

/// Rows written per backfill transaction.
const BACKFILL_BATCH: i64 = 500;

/// Index every row whose `search_text` is still `''` (rows from before
/// migration 0003; `index_text` never yields `''`). Run at start-up, after
/// the migrations; a no-op, one indexed query per kind, once done.
pub(crate) async fn backfill(db: &Db) -> Result<u64, sqlx::Error> {
    let mut done = 0;
    for (kind, select, credits) in [
        (Kind::Artist, "SELECT id, name, '' AS extra FROM artists WHERE search_text = '' LIMIT $1", None),
        (
            Kind::Album,
            "SELECT id, title AS name, '' AS extra FROM albums WHERE search_text = '' LIMIT $1",
            Some(
                "SELECT ar.name FROM album_artists l JOIN artists ar ON ar.id = l.artist_id WHERE l.album_id = $1 ORDER BY l.position",
            ),
        ),
        (
            Kind::Track,
            "SELECT id, title AS name, '' AS extra FROM tracks WHERE search_text = '' LIMIT $1",
            Some(
                "SELECT ar.name FROM track_artists l JOIN artists ar ON ar.id = l.artist_id WHERE l.track_id = $1 ORDER BY l.position",
            ),
        ),
        (
            Kind::Playlist,
            "SELECT p.id, p.name, u.display_name AS extra FROM playlists p JOIN users u ON u.id = p.owner_id
             WHERE p.search_text = '' LIMIT $1",
            None,
        ),
    ] {
        loop {
            let mut tx = db.begin_write().await?;
            let rows = sqlx::query(select).bind(BACKFILL_BATCH).fetch_all(&mut *tx).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let id: String = row.try_get("id")?;
                let name: String = row.try_get("name")?;
                let mut secondary: Vec<String> = Vec::new();
                let extra: String = row.try_get("extra")?;
                if !extra.is_empty() {
                    secondary.push(extra);
                }
                if let Some(sql) = credits {
                    for r in sqlx::query(sql).bind(&id).fetch_all(&mut *tx).await? {
                        secondary.push(r.try_get("name")?);
                    }
                }
                let refs: Vec<&str> = secondary.iter().map(String::as_str).collect();
                index(&mut tx, db.backend(), kind, &id, &crate::search::index_text(&name, &refs)).await?;
                done += 1;
            }
            tx.commit().await?;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rowids_are_stable_and_distinct() {
        assert_eq!(rowid("t1"), rowid("t1"));
        assert_ne!(rowid("t1"), rowid("t2"));
        // SHA-256("abc") starts ba7816bf8f01cfea.
        assert_eq!(rowid("abc"), i64::from_be_bytes([0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]));
    }
}
