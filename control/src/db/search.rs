//! The search index: each searchable row's `search_text`
//! ([`crate::search::index_text`]), kept in step by the writes that change
//! a name, and the candidate queries of each backend (see
//! [`crate::search`] for how candidates are ranked).
//!
//! - PostgreSQL indexes the column itself (a `simple` full-text GIN and
//!   partial ones over the popular rows, migrations 0003-0004).
//! - SQLite keeps an FTS5 table of word tokens per kind (`tracks_fts`, …,
//!   migration 0005), written here in the same transaction, whose rowid
//!   orders the rows most popular first ([`fts_rowid`]): the candidates
//!   of a common word are its first matches, not a sort of all of them.
//! - Both keep the spelling dictionary `search_words` (every indexed
//!   word), for completions of the last word and typo corrections.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::{Any, Row, Transaction};

use super::catalog::{multi_insert, values_list};
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

    /// The column whose value orders candidates (most first).
    fn order_column(self) -> &'static str {
        match self {
            Kind::Playlist => "follower_count",
            _ => "popularity",
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

/// Low bits of an FTS5 rowid: the row's sequence number.
const SEQ_BITS: u32 = 40;
const SEQ_MASK: i64 = (1 << SEQ_BITS) - 1;

/// SQLite: the FTS5 rowid of a row whose popularity (followers for a
/// playlist) is `order` and whose sequence number is `seq`: the band
/// `100 - min(order, 100)` above the sequence number, so rowid order is
/// most popular first. A row keeps its sequence number for life
/// (`search_seq` hands them out); its rowid moves with its popularity.
fn fts_rowid(order: i64, seq: i64) -> i64 {
    ((100 - order.clamp(0, 100)) << SEQ_BITS) | (seq & SEQ_MASK)
}

/// The rowids of `rowid`'s band: `[first, last]`.
fn band_of(rowid: i64) -> (i64, i64) {
    let first = rowid & !SEQ_MASK;
    (first, first | SEQ_MASK)
}

/// SQLite: `n` new sequence numbers for `kind`'s rows (inside the
/// caller's write transaction, which SQLite serialises).
async fn new_seqs(tx: &mut Transaction<'static, Any>, kind: Kind, n: usize) -> Result<i64, sqlx::Error> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let row = sqlx::query("UPDATE search_seq SET next = next + $1 WHERE kind = $2 RETURNING next")
        .bind(n)
        .bind(kind.table())
        .fetch_one(&mut **tx)
        .await?;
    let next: i64 = row.try_get("next")?;
    Ok(next - n)
}

/// Set `kind` `id`'s search text to `text` (from
/// [`crate::search::index_text`]); a no-op when it is already that (on
/// SQLite: and its FTS5 row is where its popularity puts it).
pub(crate) async fn index(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kind: Kind,
    id: &str,
    text: &str,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        return place(tx, kind, id, Some(text)).await;
    }
    let sql = format!("UPDATE {} SET search_text = $1 WHERE id = $2 AND search_text <> $1", kind.table());
    let changed = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(text).bind(id).execute(&mut **tx).await?;
    if changed.rows_affected() > 0 {
        add_words(tx, &[text]).await?;
    }
    Ok(())
}

/// Move the FTS5 rows of `kind` `ids` to where their popularity now puts
/// them (SQLite; PostgreSQL's indexes follow the column by themselves).
pub(crate) async fn reposition(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kind: Kind,
    ids: &[&str],
) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        for id in ids {
            place(tx, kind, id, None).await?;
        }
    }
    Ok(())
}

/// SQLite: give `kind` `id` the search text `text` (`None`: keep it) and
/// put its FTS5 row at the rowid its popularity and sequence number make.
async fn place(
    tx: &mut Transaction<'static, Any>,
    kind: Kind,
    id: &str,
    text: Option<&str>,
) -> Result<(), sqlx::Error> {
    let (table, fts, order) = (kind.table(), kind.fts(), kind.order_column());
    let sql = format!("SELECT search_text, search_rowid, {order} AS ord FROM {table} WHERE id = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut **tx).await? else {
        return Ok(());
    };
    let old_text: String = row.try_get("search_text")?;
    let old_rowid: Option<i64> = row.try_get("search_rowid")?;
    let ord: i64 = row.try_get("ord")?;
    let text = text.unwrap_or(&old_text);
    if text.is_empty() {
        return Ok(()); // not indexed yet: the backfill's
    }
    let seq = match old_rowid {
        Some(rowid) => rowid & SEQ_MASK,
        None => new_seqs(tx, kind, 1).await?,
    };
    let rowid = fts_rowid(ord, seq);
    let text_changed = text != old_text;
    if text_changed {
        add_words(tx, &[text]).await?;
    }
    if !text_changed && old_rowid == Some(rowid) {
        return Ok(());
    }
    if let Some(old) = old_rowid {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {fts} WHERE rowid = $1")))
            .bind(old)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {fts} (rowid, search_text, id) VALUES ($1, $2, $3)"
    )))
    .bind(rowid)
    .bind(text)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET search_text = $1, search_rowid = $2 WHERE id = $3"
    )))
    .bind(text)
    .bind(rowid)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Rows per multi-row statement of [`index_new`] (3 values each).
const NEW_ROWS_PER_STATEMENT: usize = 500;

/// Index rows this transaction just inserted with their `search_text`:
/// `(id, text, popularity)` each. SQLite: their FTS5 rows and
/// `search_rowid`s; both: their words in the dictionary.
pub(crate) async fn index_new(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kind: Kind,
    rows: &[(&str, &str, i64)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    if backend == Backend::Sqlite {
        let first = new_seqs(tx, kind, rows.len()).await?;
        for (c, chunk) in rows.chunks(NEW_ROWS_PER_STATEMENT).enumerate() {
            let base = first + i64::try_from(c * NEW_ROWS_PER_STATEMENT).unwrap_or(i64::MAX);
            let rowids: Vec<i64> =
                chunk.iter().zip(base..).map(|((_, _, order), seq)| fts_rowid(*order, seq)).collect();
            let sql =
                multi_insert(backend, &format!("{} (rowid, search_text, id)", kind.fts()), chunk.len(), 3);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((id, text, _), rowid) in chunk.iter().zip(&rowids) {
                q = q.bind(*rowid).bind(*text).bind(*id);
            }
            q.execute(&mut **tx).await?;
            let sql = format!(
                "UPDATE {table} SET search_rowid = v.column2 FROM ({values}) AS v WHERE {table}.id = v.column1",
                table = kind.table(),
                values = values_list(backend, chunk.len(), 2),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((id, _, _), rowid) in chunk.iter().zip(&rowids) {
                q = q.bind(*id).bind(*rowid);
            }
            q.execute(&mut **tx).await?;
        }
    }
    let texts: Vec<&str> = rows.iter().map(|(_, text, _)| *text).collect();
    add_words(tx, &texts).await
}

/// Add the words of `texts` to `search_words`, the spelling dictionary
/// (on SQLite a trigger also indexes each new word's trigrams). Sorted, so
/// concurrent writers take the rows' locks in one order.
pub(crate) async fn add_words(tx: &mut Transaction<'static, Any>, texts: &[&str]) -> Result<(), sqlx::Error> {
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

/// Drop `kind` `id` from the index (before deleting the row).
pub(crate) async fn unindex(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    kind: Kind,
    id: &str,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE rowid = (SELECT search_rowid FROM {} WHERE id = $1)",
            kind.fts(),
            kind.table()
        )))
        .bind(id)
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

/// What one search learns from the spelling dictionary (`search_words`),
/// once, for all the types it searches, and the backend's match text.
///
/// - **Completions.** The last word's prefix, written as the whole words
///   it completes to (`brigh` → `brighter | brightside`) when there are at
///   most [`MAX_COMPLETIONS`]: GIN matches a prefix by reading every
///   completion's postings into a bitmap, and FTS5 (past its 1-3 character
///   prefix indexes) by merging them into one list, while whole words let
///   both skip through long lists (`the`, `in`) by the rarest word of the
///   query (`grunind & in & the:*`: 24 ms as a prefix on 1M tracks on
///   PostgreSQL). Same matches: the dictionary holds every indexed word.
/// - **Unknown words**, of 3+ characters, that no indexed text holds (the
///   last: that no word starts with): only a query with one is
///   spelling-corrected, and only these words are. "halo" does not bring
///   "hallo" when the catalog has a "Halo": a listener who typed a word
///   the catalog knows meant it.
pub(crate) struct Lexicon {
    /// The match text: a tsquery (PostgreSQL) or an FTS5 query (SQLite).
    text: String,
    /// The last word's completions, when the match text uses them.
    completions: Option<Vec<String>>,
    unknown: Vec<String>,
    corrected: tokio::sync::OnceCell<Option<String>>,
}

/// Words of at least this many characters may be spelling-corrected.
fn correctable(w: &str) -> bool {
    w.chars().count() >= 3
}

/// SQLite's FTS5 tables index prefixes of up to this many characters: a
/// last word this short stays a prefix query (one index entry).
const FTS5_PREFIX_INDEXED: usize = 3;

impl Lexicon {
    /// One query.
    pub(crate) async fn load(db: &Db, query: &Query) -> Result<Self, sqlx::Error> {
        let backend = db.backend();
        let mut lexicon = Self {
            text: match backend {
                Backend::Postgres => query.tsquery(),
                Backend::Sqlite => query.fts5_with(None, |_| None),
            },
            completions: None,
            unknown: Vec::new(),
            corrected: tokio::sync::OnceCell::new(),
        };
        let Some((last, others)) = query.words.split_last() else { return Ok(lexicon) };
        // Words starting with `last`: from `last` up to `last` with its
        // final character raised by one, in code-point (byte) order.
        let upper = last.chars().last().and_then(|c| char::from_u32(u32::from(c) + 1)).map(|c| {
            let mut u: String = last.chars().take(last.chars().count() - 1).collect();
            u.push(c);
            u
        });
        let sql = match backend {
            Backend::Postgres => {
                "SELECT 'c' AS kind, word FROM (
                     SELECT word FROM search_words WHERE word ~>=~ $1 AND word ~<~ $2 LIMIT $3
                 ) completions
                 UNION ALL
                 SELECT 'k' AS kind, word FROM search_words WHERE word = ANY (string_to_array($4, ' '))"
            }
            Backend::Sqlite => {
                "SELECT 'c' AS kind, word FROM (
                     SELECT word FROM search_words WHERE word >= $1 AND word < $2 ORDER BY word LIMIT $3
                 ) completions
                 UNION ALL
                 SELECT 'k' AS kind, word FROM search_words
                 WHERE word IN (SELECT value FROM json_each($4))"
            }
        };
        let others_param = match backend {
            Backend::Postgres => others.join(" "),
            Backend::Sqlite => serde_json::to_string(others).unwrap_or_else(|_| "[]".to_owned()),
        };
        let rows = sqlx::query(sql)
            .bind(last)
            .bind(upper.as_deref().unwrap_or(last.as_str()))
            .bind(MAX_COMPLETIONS + 1)
            .bind(others_param)
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
        lexicon.unknown = others.iter().filter(|w| correctable(w) && !known.contains(*w)).cloned().collect();
        if correctable(last) && completions.is_empty() {
            lexicon.unknown.push(last.clone());
        }
        let useful = match backend {
            Backend::Postgres => true,
            Backend::Sqlite => last.chars().count() > FTS5_PREFIX_INDEXED,
        };
        if useful && upper.is_some() && (completions.len() as i64) <= MAX_COMPLETIONS {
            lexicon.completions = Some(completions);
            lexicon.text = lexicon.text_with(query, backend, |_| None);
        }
        Ok(lexicon)
    }

    /// The match text with each word also standing for `alternatives(w)`.
    fn text_with<'a>(
        &self,
        query: &Query,
        backend: Backend,
        alternatives: impl Fn(&str) -> Option<&'a [String]>,
    ) -> String {
        match backend {
            Backend::Postgres => query.tsquery_with(self.completions.as_deref(), alternatives),
            Backend::Sqlite => query.fts5_with(self.completions.as_deref(), alternatives),
        }
    }

    /// The match text again with each unknown word OR-ed with its closest
    /// dictionary words (see [`corrections`]), found once per search;
    /// `None` when no unknown word has a close neighbour.
    async fn corrected(&self, db: &Db, query: &Query) -> Result<Option<&str>, sqlx::Error> {
        let corrected =
            self.corrected
                .get_or_try_init(async || {
                    let alternatives = corrections(db, &self.unknown).await?;
                    Ok::<_, sqlx::Error>((!alternatives.is_empty()).then(|| {
                        self.text_with(query, db.backend(), |w| alternatives.get(w).map(Vec::as_slice))
                    }))
                })
                .await?;
        Ok(corrected.as_deref())
    }
}

/// Dictionary words looked at per unknown word on SQLite: the best by
/// FTS5's rank of shared trigrams, then ordered by similarity.
const SQLITE_NEIGHBOURS: i64 = 500;

/// Each of `unknown` → its closest words in `search_words`: trigram
/// neighbours (similarity >= 0.2, the closest [`CORRECTIONS`] × 5 by
/// similarity, then by word) within one edit, two for words of 8+ letters;
/// at most [`CORRECTIONS`] each. Words with none are left out.
///
/// PostgreSQL asks pg_trgm (`%`, threshold 0.2, set per connection).
/// SQLite asks the trigram FTS5 table over the dictionary for the
/// [`SQLITE_NEIGHBOURS`] words sharing the most trigrams and computes
/// pg_trgm's similarity itself ([`crate::search::trigram_similarity`]).
async fn corrections(db: &Db, unknown: &[String]) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
    let mut neighbours: Vec<(String, String)> = Vec::new();
    if unknown.is_empty() {
        return Ok(HashMap::new());
    }
    match db.backend() {
        Backend::Postgres => {
            // Trigram similarity finds the neighbours (a swap in a
            // five-letter word leaves only 0.2 of it), the edit distance
            // keeps the real ones.
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
            for r in &rows {
                neighbours.push((r.try_get("q")?, r.try_get("w")?));
            }
        }
        Backend::Sqlite => {
            for q in unknown {
                let rows = sqlx::query(
                    "SELECT w.word FROM search_words_fts f JOIN search_words w ON w.id = f.rowid
                     WHERE search_words_fts MATCH $1 ORDER BY f.rank LIMIT $2",
                )
                .bind(crate::search::fts5_any_trigram(q))
                .bind(SQLITE_NEIGHBOURS)
                .fetch_all(db.pool())
                .await?;
                let mut scored: Vec<(f64, String)> = Vec::with_capacity(rows.len());
                for r in &rows {
                    let w: String = r.try_get("word")?;
                    let similarity = crate::search::trigram_similarity(q, &w);
                    if w != *q && similarity >= 0.2 {
                        scored.push((similarity, w));
                    }
                }
                scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                let keep = usize::try_from(CORRECTIONS * 5).unwrap_or(usize::MAX);
                neighbours.extend(scored.into_iter().take(keep).map(|(_, w)| (q.clone(), w)));
            }
        }
    }
    let mut alternatives: HashMap<String, Vec<String>> = HashMap::new();
    for (q, w) in neighbours {
        let close = crate::search::is_typo_of(&q, &w);
        let alts = alternatives.entry(q).or_default();
        if close && (alts.len() as i64) < CORRECTIONS {
            alts.push(w);
        }
    }
    alternatives.retain(|_, alts| !alts.is_empty());
    Ok(alternatives)
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

/// SQLite: the [`CANDIDATES`] most popular rows of `kind` matching the
/// FTS5 query `text`, ties by id, as PostgreSQL orders them. The FTS5
/// rowid orders rows by popularity band ([`fts_rowid`]), so the first
/// matches in rowid order are the candidates; only the band the last one
/// falls in is read whole, and sorted, since its rows tie on popularity
/// (a playlist's band 0 holds every count from 100 up).
async fn first_in_fts5(
    db: &Db,
    kind: Kind,
    select: &str,
    text: &str,
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let (table, fts, filter, order) = (kind.table(), kind.fts(), kind.filter(), kind.order_column());
    let head = format!(
        "SELECT {select}, f.rowid AS fts_rowid, t.{order} AS ord
         FROM {fts} f JOIN {table} t ON t.id = f.id
         WHERE {fts} MATCH $1 {filter}"
    );
    let sql = format!("{head} ORDER BY f.rowid LIMIT $2");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(text).bind(CANDIDATES).fetch_all(db.pool()).await?;
    if (rows.len() as i64) < CANDIDATES {
        return Ok(rows);
    }
    let (first, end) = band_of(rows[rows.len() - 1].try_get("fts_rowid")?);
    let sql = format!("{head} AND f.rowid BETWEEN $2 AND $3");
    let band =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(text).bind(first).bind(end).fetch_all(db.pool()).await?;
    let mut ties = Vec::with_capacity(band.len());
    for r in band {
        ties.push(((r.try_get::<i64, _>("ord")?, r.try_get::<String, _>("id")?), r));
    }
    ties.sort_by(|((ord_a, id_a), _), ((ord_b, id_b), _)| ord_b.cmp(ord_a).then_with(|| id_a.cmp(id_b)));
    let mut candidates = Vec::with_capacity(rows.len());
    for r in rows {
        if r.try_get::<i64, _>("fts_rowid")? < first {
            candidates.push(r);
        }
    }
    let room = usize::try_from(CANDIDATES).unwrap_or(usize::MAX).saturating_sub(candidates.len());
    candidates.extend(ties.into_iter().take(room).map(|(_, r)| r));
    Ok(candidates)
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
/// - SQLite: the FTS5 word table, the same words, completions and prefix
///   (`"mr" AND ("brighter" OR "brightside")`), the most popular first by
///   rowid order ([`first_in_fts5`]); the same typo step, its neighbours
///   from the dictionary's trigram FTS5 table.
pub(crate) async fn candidates(
    db: &Db,
    kind: Kind,
    query: &Query,
    lexicon: &Lexicon,
) -> Result<Vec<Hit>, sqlx::Error> {
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
            let mut rows = most_popular(db, kind, query, &select, &lexicon.text, anchor.as_deref()).await?;
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
            let mut rows = first_in_fts5(db, kind, &select, &lexicon.text).await?;
            if (rows.len() as i64) < TYPO_FALLBACK
                && let Some(corrected) = lexicon.corrected(db, query).await?
            {
                rows.extend(first_in_fts5(db, kind, &select, corrected).await?);
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
    fn fts5_rowids_order_most_popular_first() {
        // Band by popularity, then sequence number.
        assert!(fts_rowid(100, 7) < fts_rowid(99, 1));
        assert!(fts_rowid(50, 1) < fts_rowid(50, 2));
        assert_eq!(fts_rowid(100, 5), 5);
        // Out-of-range counts clamp: a playlist of 5,000 followers is band 0.
        assert_eq!(fts_rowid(5_000, 3), fts_rowid(100, 3));
        assert_eq!(fts_rowid(-1, 3), fts_rowid(0, 3));
        // The sequence number survives a move between bands.
        assert_eq!(fts_rowid(10, fts_rowid(90, 42)) & SEQ_MASK, 42);
        let (first, last) = band_of(fts_rowid(60, 12345));
        assert_eq!((first, last), (fts_rowid(60, 0), fts_rowid(60, SEQ_MASK)));
        assert!(fts_rowid(61, SEQ_MASK) < first && last < fts_rowid(59, 0));
    }
}
