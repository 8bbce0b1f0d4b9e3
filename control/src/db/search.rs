//! The search index: each searchable row's `search_text`
//! ([`crate::search::index_text`]), kept in step by the writes that change
//! a name, and the candidate queries of each backend (see
//! [`crate::search`] for how candidates are ranked).
//!
//! - PostgreSQL indexes the column itself (pg_trgm GIN and a `simple`
//!   full-text GIN, migration 0003).
//! - SQLite keeps an FTS5 trigram table per kind (`tracks_fts`, …) whose
//!   rowid is [`rowid`]`(id)`, written here in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;

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

    /// The popular tiers' conditions, smallest first. PostgreSQL's partial
    /// full-text indexes (`*_search_top`: `popularity >= 40`, about 1.5 %
    /// of the benchmark's tracks; `*_search_hot`: `>= 20`, about 16 %;
    /// migration 0004) cover them; the planner uses a partial index only
    /// for a condition written with the same literal. A word in a tenth of
    /// all titles finds its 200 in the first; two common words together
    /// (`burn & me:*`, 2.6k matches of 1M) in the second (16 ms, against
    /// 26–36 ms from the whole index); rarer queries fall through to the
    /// whole index, where their postings are short.
    fn tiers(self) -> &'static [&'static str] {
        match self {
            Kind::Track | Kind::Album | Kind::Artist => &["t.popularity >= 40", "t.popularity >= 20"],
            Kind::Playlist => &[],
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

/// Most whole words a last-word prefix is written as (see [`Lexicon`]);
/// a prefix that completes to more keeps its `:*`.
const MAX_COMPLETIONS: i64 = 64;

/// What one search learns from the spelling dictionary (`search_words`,
/// PostgreSQL only), once, for all the types it searches.
///
/// - **Completions.** The last word's prefix, written as the whole words
///   it completes to (`brigh` → `brighter | brightside`) when there are at
///   most [`MAX_COMPLETIONS`]: GIN matches a prefix by reading every
///   completion's postings into a bitmap, while whole words let it skip
///   through the long lists (`the`, `in`) by the rarest word of the query
///   (`grunind & in & the:*`: 24 ms as a prefix on 1M tracks). Same
///   matches: the dictionary holds every indexed word.
/// - **Unknown words**, of 3+ characters, that no indexed text holds (the
///   last: that no word starts with): only a query with one is
///   spelling-corrected, and on PostgreSQL only these words are. "halo"
///   does not bring "hallo" when the catalog has a "Halo": a listener who
///   typed a word the catalog knows meant it. SQLite, which has no
///   dictionary table, asks its FTS5 tables whether each word is there.
pub(crate) struct Lexicon {
    tsquery: String,
    completions: Option<Vec<String>>,
    /// Set when loaded on PostgreSQL; on SQLite, found when first needed.
    unknown: tokio::sync::OnceCell<Vec<String>>,
    corrected: tokio::sync::OnceCell<Option<String>>,
}

/// Words of at least this many characters may be spelling-corrected.
fn correctable(w: &str) -> bool {
    w.chars().count() >= 3
}

impl Lexicon {
    /// One query on PostgreSQL; none on SQLite.
    pub(crate) async fn load(db: &Db, query: &Query) -> Result<Self, sqlx::Error> {
        let mut lexicon = Self {
            tsquery: query.tsquery(),
            completions: None,
            unknown: tokio::sync::OnceCell::new(),
            corrected: tokio::sync::OnceCell::new(),
        };
        if db.backend() != Backend::Postgres {
            return Ok(lexicon);
        }
        let Some((last, others)) = query.words.split_last() else { return Ok(lexicon) };
        // Words starting with `last`: from `last` up to `last` with its
        // final character raised by one, in code-point (byte) order.
        let upper = last.chars().last().and_then(|c| char::from_u32(u32::from(c) + 1)).map(|c| {
            let mut u: String = last.chars().take(last.chars().count() - 1).collect();
            u.push(c);
            u
        });
        let rows = sqlx::query(
            "SELECT 'c' AS kind, word FROM (
                 SELECT word FROM search_words WHERE word ~>=~ $1 AND word ~<~ $2 LIMIT $3
             ) completions
             UNION ALL
             SELECT 'k' AS kind, word FROM search_words WHERE word = ANY (string_to_array($4, ' '))",
        )
        .bind(last)
        .bind(upper.as_deref().unwrap_or(last.as_str()))
        .bind(MAX_COMPLETIONS + 1)
        .bind(others.join(" "))
        .fetch_all(db.pool())
        .await?;
        let mut completions = Vec::new();
        let mut known = std::collections::HashSet::new();
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let word: String = r.try_get("word")?;
            if kind == "c" {
                completions.push(word);
            } else {
                known.insert(word);
            }
        }
        completions.sort_unstable();
        let mut unknown: Vec<String> =
            others.iter().filter(|w| correctable(w) && !known.contains(*w)).cloned().collect();
        if correctable(last) && completions.is_empty() {
            unknown.push(last.clone());
        }
        lexicon.unknown = tokio::sync::OnceCell::new_with(Some(unknown));
        if upper.is_some() && (completions.len() as i64) <= MAX_COMPLETIONS {
            lexicon.tsquery = query.tsquery_with(Some(&completions), |_| None);
            lexicon.completions = Some(completions);
        }
        Ok(lexicon)
    }

    /// The query's unknown words (PostgreSQL: from [`Self::load`]; SQLite:
    /// asked of the FTS5 tables the first time a type needs them).
    async fn unknown(&self, db: &Db, query: &Query) -> Result<&[String], sqlx::Error> {
        Ok(self.unknown.get_or_try_init(|| unknown_in_fts5(db, query)).await?.as_slice())
    }

    /// The tsquery again with each unknown word OR-ed with its closest
    /// dictionary words (see [`corrected_tsquery`]), found once per
    /// search; `None` when no unknown word has a close neighbour.
    async fn corrected(&self, db: &Db, query: &Query) -> Result<Option<&str>, sqlx::Error> {
        let corrected = self
            .corrected
            .get_or_try_init(async || {
                let unknown = self.unknown(db, query).await?;
                corrected_tsquery(db, query, unknown, self.completions.as_deref()).await
            })
            .await?;
        Ok(corrected.as_deref())
    }
}

/// SQLite has no dictionary table: a word is known when some FTS5 table
/// holds it as a word (the last: as a word start). One indexed lookup per
/// word and table, until the word is found.
async fn unknown_in_fts5(db: &Db, query: &Query) -> Result<Vec<String>, sqlx::Error> {
    let mut unknown = Vec::new();
    let last = query.words.len().saturating_sub(1);
    for (i, w) in query.words.iter().enumerate().filter(|(_, w)| correctable(w)) {
        let phrase = if i == last { format!("\" {w}\"") } else { format!("\" {w} \"") };
        let mut known = false;
        for kind in [Kind::Track, Kind::Album, Kind::Artist, Kind::Playlist] {
            let fts = kind.fts();
            let sql = format!("SELECT 1 AS found FROM {fts} WHERE {fts} MATCH $1 LIMIT 1");
            known = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&phrase)
                .fetch_optional(db.pool())
                .await?
                .is_some();
            if known {
                break;
            }
        }
        if !known {
            unknown.push(w.clone());
        }
    }
    Ok(unknown)
}

/// The query's tsquery with each of `unknown` OR-ed with its closest words
/// in `search_words` (pg_trgm neighbours within one edit, two for words of
/// 8+ letters): `(beatels | beatles | beatle) & …`. `None` when no word
/// has a close neighbour, so there is nothing new to search for.
async fn corrected_tsquery(
    db: &Db,
    query: &Query,
    unknown: &[String],
    completions: Option<&[String]>,
) -> Result<Option<String>, sqlx::Error> {
    if unknown.is_empty() {
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
    .bind(unknown.join(" "))
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
    Ok(Some(query.tsquery_with(completions, |w| alternatives.get(w).map(Vec::as_slice))))
}

/// A search candidate: what ranking needs besides the secondary texts.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The indexed text ([`crate::search::index_text`]: the name and the
    /// secondary texts, normalised).
    pub(crate) text: String,
    pub(crate) popularity: u32,
}

/// How often ANALYZE's statistics are re-read.
const STATS_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// A query term in fewer than this share of the rows is rare ...
const RARE: f64 = 0.005;
/// ... and one in more than this is common.
const COMMON: f64 = 0.02;

/// How common the words of each kind's index are (PostgreSQL): the most
/// common elements ANALYZE keeps for `search_tsv` (up to 1,000 with their
/// share of the rows; a word not among them is rarer than all of them),
/// re-read every [`STATS_TTL`].
#[derive(Debug, Default)]
pub(crate) struct WordStats {
    by_table: std::sync::Mutex<HashMap<&'static str, (std::time::Instant, Arc<Shares>)>>,
}

/// Word → its share of the rows.
type Shares = HashMap<String, f64>;

impl WordStats {
    async fn of(&self, db: &Db, kind: Kind) -> Result<Arc<Shares>, sqlx::Error> {
        let table = kind.table();
        {
            let cached = self.by_table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, words)) = cached.get(table)
                && at.elapsed() < STATS_TTL
            {
                return Ok(Arc::clone(words));
            }
        }
        let rows = sqlx::query(
            "SELECT u.word, u.freq::float8 AS freq
             FROM pg_stats s,
                  unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS u(word, freq)
             WHERE s.schemaname = current_schema() AND s.tablename = $1 AND s.attname = 'search_tsv'
               AND u.word IS NOT NULL",
        )
        .bind(table)
        .fetch_all(db.pool())
        .await?;
        let mut words = HashMap::with_capacity(rows.len());
        for r in &rows {
            words.insert(r.try_get::<String, _>("word")?, r.try_get::<f64, _>("freq")?);
        }
        let words = Arc::new(words);
        self.by_table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(table, (std::time::Instant::now(), Arc::clone(&words)));
        Ok(words)
    }
}

/// The rare part of a query that also has a common word, as a tsquery:
/// `fliocrar & me:*` is asked of the index as `fliocrar` (a few rows) and
/// the rows are then checked against the whole query, instead of reading
/// the postings of every word starting with "me" (a tenth of all titles)
/// into a bitmap. `None` when no word is rare or none is common: then the
/// index is asked for the whole query.
fn anchor(query: &Query, completions: Option<&[String]>, stats: &HashMap<String, f64>) -> Option<String> {
    let (last, others) = query.words.split_last()?;
    let share = |w: &str| stats.get(w).copied().unwrap_or(0.0);
    let mut terms: Vec<(f64, String)> = others.iter().map(|w| (share(w), w.clone())).collect();
    let last_term = match completions {
        Some(words) if !words.is_empty() => {
            let term = if words.len() == 1 { words[0].clone() } else { format!("({})", words.join(" | ")) };
            (words.iter().map(|w| share(w)).sum::<f64>(), term)
        }
        _ => {
            let share: f64 = stats.iter().filter(|(w, _)| w.starts_with(last.as_str())).map(|(_, f)| f).sum();
            (share, format!("{last}:*"))
        }
    };
    terms.push(last_term);
    if !terms.iter().any(|(f, _)| *f > COMMON) {
        return None;
    }
    let rare: Vec<String> = terms.into_iter().filter(|(f, _)| *f < RARE).map(|(_, t)| t).collect();
    (!rare.is_empty()).then(|| rare.join(" & "))
}

/// The [`CANDIDATES`] most popular rows of `kind` matching `tsquery`
/// (PostgreSQL), tier by tier: the first popular tier (see
/// [`Kind::tiers`]) that holds a full set of matches answers alone — they
/// are then exactly the rows the whole index would give — else the whole
/// index does.
async fn most_popular(
    db: &Db,
    kind: Kind,
    query: &Query,
    select: &str,
    tsquery: &str,
    anchor: Option<&str>,
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let (table, filter) = (kind.table(), kind.filter());
    if let Some(anchor) = anchor {
        // `ts_match_vq` is `@@` as a function: the planner does not take it
        // to the index, so the index is asked for the rare part only.
        let sql = format!(
            "SELECT {select} FROM {table} t
             WHERE t.search_tsv @@ to_tsquery('simple', $1)
               AND ts_match_vq(t.search_tsv, to_tsquery('simple', $3)) {filter}
             ORDER BY (t.popularity + 0) DESC, t.id
             LIMIT $2"
        );
        return sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(anchor)
            .bind(CANDIDATES)
            .bind(tsquery)
            .fetch_all(db.pool())
            .await;
    }
    for tier in kind.tiers() {
        let sql = format!(
            "SELECT {select} FROM {table} t
             WHERE t.search_tsv @@ to_tsquery('simple', $1) AND {tier} {filter}
             ORDER BY (t.popularity + 0) DESC, t.id
             LIMIT $2"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tsquery).bind(CANDIDATES).fetch_all(db.pool()).await?;
        if rows.len() as i64 >= CANDIDATES {
            return Ok(rows);
        }
    }
    let popularity = kind.popularity(query);
    let sql = format!(
        "SELECT {select} FROM {table} t
         WHERE t.search_tsv @@ to_tsquery('simple', $1) {filter}
         ORDER BY {popularity} DESC, t.id
         LIMIT $2"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tsquery).bind(CANDIDATES).fetch_all(db.pool()).await
}

/// Entities of `kind` that may match `query` (at most
/// [`CANDIDATES`] per step), by the backend's own index.
///
/// - PostgreSQL: the query's words, the last as a prefix (`mr & brigh:*`,
///   written as its completions, see [`Lexicon`]; the full-text GIN
///   index), the most popular matches first, by [`most_popular`]: the
///   rare words alone when the query mixes rare and common ones
///   ([`anchor`]), else the popular tiers ([`Kind::tiers`]) then the whole
///   index; when that finds fewer than [`TYPO_FALLBACK`] and a word is
///   unknown, the same again with each unknown word OR-ed with its closest
///   words from the spelling dictionary (pg_trgm on `search_words`),
///   which is where typos are caught.
/// - SQLite: the FTS5 trigram table, the same whole words and last-word
///   prefix as phrases, the most popular first; when that finds fewer
///   than [`TYPO_FALLBACK`] and a word is unknown, each word matching by
///   any of its trigrams, best bm25 first (typos, including one inside
///   the unfinished word).
pub(crate) async fn candidates(
    db: &Db,
    kind: Kind,
    query: &Query,
    lexicon: &Lexicon,
) -> Result<Vec<Hit>, sqlx::Error> {
    let table = kind.table();
    let (filter, popularity) = (kind.filter(), kind.popularity(query));
    let select = format!(
        "t.id, {} AS name, t.search_text AS text, {} AS rank_popularity",
        kind.name(),
        kind.popularity_0_100()
    );
    let rows = match db.backend() {
        Backend::Postgres => {
            // The words, the last as a prefix: the most popular matches.
            let anchor = match kind {
                Kind::Playlist => None,
                _ => anchor(query, lexicon.completions.as_deref(), &*db.word_stats().of(db, kind).await?),
            };
            let mut rows =
                most_popular(db, kind, query, &select, &lexicon.tsquery, anchor.as_deref()).await?;
            if (rows.len() as i64) < TYPO_FALLBACK
                && let Some(corrected) = lexicon.corrected(db, query).await?
            {
                // Few prefix matches: maybe a typo. Again, with each
                // unknown word also standing for its closest dictionary
                // words.
                rows.extend(most_popular(db, kind, query, &select, corrected, None).await?);
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
                && !lexicon.unknown(db, query).await?.is_empty()
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
            hits.push(Hit { id, name: r.try_get("name")?, text: r.try_get("text")?, popularity });
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
    fn a_rare_word_beside_a_common_one_anchors_the_index() {
        let stats: HashMap<String, f64> =
            [("the", 0.6), ("me", 0.1), ("meadow", 0.001), ("heart", 0.09), ("burn", 0.03), ("in", 0.1)]
                .into_iter()
                .map(|(w, f)| (w.to_owned(), f))
                .collect();
        let q = |s: &str| Query::parse(s).unwrap();
        // The prefix "me" covers 10.1 % of the rows: only the rare word.
        assert_eq!(anchor(&q("fliocrar me"), None, &stats).as_deref(), Some("fliocrar"));
        // Completions count as the sum of their shares.
        let the = ["the".to_owned(), "theo".to_owned()];
        assert_eq!(anchor(&q("grunind in the"), Some(&the), &stats).as_deref(), Some("grunind"));
        // Two rare words: both.
        assert_eq!(anchor(&q("zorbo the quux"), None, &stats).as_deref(), Some("zorbo & quux:*"));
        // Nothing rare, or nothing common: the whole query.
        assert_eq!(anchor(&q("burn me"), None, &stats), None);
        assert_eq!(anchor(&q("heart"), None, &stats), None);
        assert_eq!(anchor(&q("zorbo quux"), None, &stats), None);
        // A rare completion list of a common-word query.
        let mead = ["meadow".to_owned()];
        assert_eq!(anchor(&q("heart mead"), Some(&mead), &stats).as_deref(), Some("meadow"));
    }

    #[test]
    fn rowids_are_stable_and_distinct() {
        assert_eq!(rowid("t1"), rowid("t1"));
        assert_ne!(rowid("t1"), rowid("t2"));
        // SHA-256("abc") starts ba7816bf8f01cfea.
        assert_eq!(rowid("abc"), i64::from_be_bytes([0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]));
    }
}
