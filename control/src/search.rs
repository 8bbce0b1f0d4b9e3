//! Search: text normalisation and the ranking rule, shared by both
//! databases.
//!
//! Search runs in two steps. The database finds **candidates** with its own
//! index over each entity's `search_text` — whole words and a prefix of the
//! last, the most popular first, and a typo step when that finds almost
//! nothing (see `db::search::candidates`) — at most [`CANDIDATES`] per type
//! and step. Then [`score`] ranks them here, the same way on
//! both, by text relevance and popularity:
//!
//! - the query and every name are [`normalize`]d (lower case, accents
//!   folded, punctuation as spaces): "Mr. Brightside" is `mr brightside`;
//! - each query word scores against the best word of the entity's name: 1
//!   equal, 0.9 a prefix of it (`brigh` → `brightside`), 0.8 one edit away
//!   (a typo: insert, delete, substitute or swap two letters: `beatels` →
//!   `beatles`), 0.7 two edits away for words of 8+ letters, 0.7 a prefix
//!   within one edit; words of the secondary text (a track's or album's
//!   artists, a playlist's owner) count at 0.7 of that;
//! - text relevance is the mean over the query's words, plus 0.2 when the
//!   whole name equals the query and 0.1 when it starts with it;
//! - a candidate whose relevance is below [`MIN_RELEVANCE`] is dropped;
//! - the score is relevance + 0.25 × popularity / 100: popularity orders
//!   near-equal matches (a famous song whose name starts with the query
//!   can pass an obscure exact one) but cannot lift a typo match (0.8) over
//!   an exact name (1.2); ties go to the more popular, then the smaller id.

/// Candidates each database returns per type before ranking.
pub(crate) const CANDIDATES: i64 = 200;
/// Longest query, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 200;
/// Most words of a query that take part.
pub(crate) const MAX_QUERY_WORDS: usize = 10;
/// Relevance below which a candidate is not a result.
pub(crate) const MIN_RELEVANCE: f64 = 0.5;
/// Weight of popularity (0-100) in the score.
const POPULARITY_WEIGHT: f64 = 0.25;
/// Weight of a match in the secondary text.
const SECONDARY_WEIGHT: f64 = 0.7;

/// Lower case, accents folded (NFKD without combining marks), every run of
/// non-alphanumeric characters one space, trimmed.
pub(crate) fn normalize(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    if text.is_ascii() {
        // NFKD leaves ASCII as it is, and it has no combining marks: the
        // common case, without the decomposition's cost.
        return fold(text.chars().map(|c| c.to_ascii_lowercase()), text.len());
    }
    fold(text.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase), text.len())
}

/// Every run of non-alphanumeric characters of `chars` one space, trimmed.
fn fold(chars: impl Iterator<Item = char>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    let mut space = true;
    for c in chars {
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The indexed text of an entity: its normalised name and secondary text,
/// with a space before and after, so a trigram starting with a space marks
/// the start of a word (`" mr"` matches `mr brightside` but not `humrum`).
pub(crate) fn index_text(name: &str, secondary: &[&str]) -> String {
    let mut out = String::from(" ");
    for part in std::iter::once(name).chain(secondary.iter().copied()) {
        let n = normalize(part);
        if !n.is_empty() {
            out.push_str(&n);
            out.push(' ');
        }
    }
    out
}

/// A parsed query: its normalised words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) normalized: String,
    pub(crate) words: Vec<String>,
}

impl Query {
    /// `None` when nothing searchable is left after normalising.
    pub(crate) fn parse(q: &str) -> Option<Self> {
        let normalized = normalize(q);
        let words: Vec<String> = normalized
            .split(' ')
            .filter(|w| !w.is_empty())
            .take(MAX_QUERY_WORDS)
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            return None;
        }
        Some(Self { normalized: words.join(" "), words })
    }

    /// The FTS5 query for SQLite's word tables, with the same matches as
    /// [`Self::tsquery_with`]: each word a token (`"mr"`), the last a token
    /// prefix (`"brigh"*`) or the whole words it completes to, each OR-ed
    /// with its `alternatives`, the words AND-ed:
    /// `("beatels" OR "beatles") AND "abbey"*`. Normalised words hold only
    /// letters, marks and digits: no quote to escape, and the unicode61
    /// tokenizer (categories `L* N* Co M*`) keeps each one token.
    pub(crate) fn fts5_with<'a>(
        &self,
        completions: Option<&[String]>,
        alternatives: impl Fn(&str) -> Option<&'a [String]>,
    ) -> String {
        let last = self.words.len().saturating_sub(1);
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut terms: Vec<String> = match completions {
                    Some(words) if i == last && !words.is_empty() => {
                        words.iter().map(|c| format!("\"{c}\"")).collect()
                    }
                    _ if i == last => vec![format!("\"{w}\"*")],
                    _ => vec![format!("\"{w}\"")],
                };
                terms.extend(alternatives(w).unwrap_or_default().iter().map(|a| format!("\"{a}\"")));
                if terms.len() == 1 { terms.remove(0) } else { format!("({})", terms.join(" OR ")) }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// The `to_tsquery('simple', …)` text for PostgreSQL: the words AND-ed,
    /// the last as a prefix (`mr & brigh:*`): a listener types left to
    /// right, so only the last word may be unfinished — and a whole word is
    /// one posting list where a short prefix (`the:*`, `of:*`) is hundreds.
    pub(crate) fn tsquery(&self) -> String {
        self.tsquery_with(None, |_| None)
    }

    /// [`Self::tsquery`] with the last word's prefix written as the whole
    /// words it stands for, `completions` (`mr & (brightside | brighter)`),
    /// when given, and each word OR-ed with `alternatives(word)` (whole
    /// words): `(beatels | beatles) & abbey:*`.
    pub(crate) fn tsquery_with<'a>(
        &self,
        completions: Option<&[String]>,
        alternatives: impl Fn(&str) -> Option<&'a [String]>,
    ) -> String {
        let last = self.words.len().saturating_sub(1);
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut terms: Vec<String> = match completions {
                    Some(words) if i == last && !words.is_empty() => words.to_vec(),
                    _ if i == last => vec![format!("{w}:*")],
                    _ => vec![w.clone()],
                };
                terms.extend(alternatives(w).unwrap_or_default().iter().cloned());
                if terms.len() == 1 { terms.remove(0) } else { format!("({})", terms.join(" | ")) }
            })
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

/// A candidate to rank.
#[derive(Clone, Debug)]
pub(crate) struct Candidate<'a> {
    /// The entity's name or title.
    pub(crate) name: &'a str,
    /// Artists, owner: matches here count less.
    pub(crate) secondary: &'a [String],
    /// 0-100.
    pub(crate) popularity: u32,
}

/// The candidate's score for `query`, or `None` below [`MIN_RELEVANCE`].
pub(crate) fn score(query: &Query, c: &Candidate<'_>) -> Option<f64> {
    let name = normalize(c.name);
    let name_words: Vec<&str> = name.split(' ').filter(|w| !w.is_empty()).collect();
    let secondary: Vec<String> = c.secondary.iter().map(|s| normalize(s)).collect();
    let secondary_words: Vec<&str> =
        secondary.iter().flat_map(|s| s.split(' ')).filter(|w| !w.is_empty()).collect();
    let mut total = 0.0;
    for q in &query.words {
        let primary = name_words.iter().map(|w| word_match(q, w)).fold(0.0, f64::max);
        let other = secondary_words.iter().map(|w| word_match(q, w) * SECONDARY_WEIGHT).fold(0.0, f64::max);
        total += primary.max(other);
    }
    #[allow(clippy::cast_precision_loss)] // at most MAX_QUERY_WORDS
    let mut relevance = total / query.words.len() as f64;
    if name == query.normalized {
        relevance += 0.2;
    } else if name.starts_with(&query.normalized) {
        relevance += 0.1;
    }
    (relevance >= MIN_RELEVANCE)
        .then(|| relevance + POPULARITY_WEIGHT * f64::from(c.popularity.min(100)) / 100.0)
}

/// Sort scored results best first: score, then popularity, then id.
pub(crate) fn rank<T>(results: &mut [(f64, u32, String, T)]) {
    results.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(&b.2)));
}

/// pg_trgm's `similarity` of two normalised words: the trigrams they share
/// over all their distinct trigrams, each word padded with two spaces in
/// front and one behind. SQLite's spelling correction ranks dictionary
/// words by it, as PostgreSQL's `%` does.
pub(crate) fn trigram_similarity(a: &str, b: &str) -> f64 {
    let (ta, tb) = (trigrams(a), trigrams(b));
    let shared = ta.iter().filter(|t| tb.binary_search(t).is_ok()).count();
    let all = ta.len() + tb.len() - shared;
    if all == 0 { 0.0 } else { shared as f64 / all as f64 }
}

/// The FTS5 query for the dictionary's trigram table, whose rows are
/// ` word `: any trigram of ` w ` (one space of padding each side, as
/// stored), `" be" OR "bea" OR …` — every word sharing one with `w`.
pub(crate) fn fts5_any_trigram(w: &str) -> String {
    let padded: Vec<char> = std::iter::once(' ').chain(w.chars()).chain([' ']).collect();
    let mut grams: Vec<String> = padded.windows(3).map(|g| g.iter().collect()).collect();
    grams.sort_unstable();
    grams.dedup();
    // Normalised words hold no quote: nothing to escape.
    grams.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(" OR ")
}

/// The distinct trigrams of `  w ` (sorted).
fn trigrams(w: &str) -> Vec<[char; 3]> {
    let padded: Vec<char> = [' ', ' '].into_iter().chain(w.chars()).chain([' ']).collect();
    let mut grams: Vec<[char; 3]> = padded.windows(3).map(|g| [g[0], g[1], g[2]]).collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// Is `w` one typo from `q` (two for words of 8+ letters)? The spelling
/// correction's test, the same edits [`score`] forgives.
pub(crate) fn is_typo_of(q: &str, w: &str) -> bool {
    let d = edits(q, w);
    d == 1 || (d == 2 && q.chars().count() >= 8)
}

/// How well query word `q` matches word `w` (both normalised).
fn word_match(q: &str, w: &str) -> f64 {
    if q == w {
        return 1.0;
    }
    if w.starts_with(q) {
        return 0.9;
    }
    let qn = q.chars().count();
    if qn < 4 {
        return 0.0;
    }
    let d = edits(q, w);
    if d == 1 {
        return 0.8;
    }
    if d == 2 && qn >= 8 {
        return 0.7;
    }
    // A typo within a prefix: "brihg" → "brightside".
    let prefix: String = w.chars().take(qn).collect();
    if prefix.chars().count() == qn && edits(q, &prefix) == 1 {
        return 0.7;
    }
    0.0
}

/// Optimal string alignment distance (Damerau-Levenshtein without
/// repeated edits of a substring), by characters. Stops early past 2.
fn edits(a: &str, b: &str) -> usize {
    if a.is_ascii() && b.is_ascii() {
        return osa(a.as_bytes(), b.as_bytes());
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    osa(&a, &b)
}

/// [`edits`] over letters (bytes of ASCII, else chars), three rolling
/// rows, on the stack for words of up to 63 letters: ranking calls it for
/// every query word against every word of 200 candidates.
fn osa<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    const STACK: usize = 64;
    if a.len().abs_diff(b.len()) > 2 {
        return 3;
    }
    let width = b.len() + 1;
    let mut heap: Vec<usize> = Vec::new();
    let mut stack = [0usize; 3 * STACK];
    let cells: &mut [usize] = if width <= STACK {
        &mut stack[..3 * width]
    } else {
        heap.resize(3 * width, 0);
        &mut heap
    };
    // Row i lives at (i % 3) * width.
    for (j, cell) in cells.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = ((i % 3) * width, ((i - 1) % 3) * width, ((i + 1) % 3) * width);
        cells[cur] = i;
        let mut row_min = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (cells[prev + j] + 1).min(cells[cur + j - 1] + 1).min(cells[prev + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(cells[prev2 + j - 2] + 1);
            }
            cells[cur + j] = v;
            row_min = row_min.min(v);
        }
        if row_min > 2 {
            return 3;
        }
    }
    cells[(a.len() % 3) * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(name: &'a str, secondary: &'a [String], popularity: u32) -> Candidate<'a> {
        Candidate { name, secondary, popularity }
    }

    #[test]
    fn normalisation_folds_case_accents_and_punctuation() {
        assert_eq!(normalize("Mr. Brightside"), "mr brightside");
        assert_eq!(normalize("  Beyoncé — Halo!! "), "beyonce halo");
        assert_eq!(normalize("Sigur Rós / Hoppípolla"), "sigur ros hoppipolla");
        assert_eq!(normalize("ＡＢＣ"), "abc");
        assert_eq!(normalize("¿?"), "");
        assert_eq!(index_text("Mr. Brightside", &["The Killers"]), " mr brightside the killers ");
    }

    #[test]
    fn queries() {
        assert_eq!(Query::parse("  !! "), None);
        let q = Query::parse("Mr brigh").unwrap();
        assert_eq!(q.words, ["mr", "brigh"]);
        assert_eq!(q.tsquery(), "mr & brigh:*");
        let alts = ["mister".to_owned()];
        assert_eq!(q.tsquery_with(None, |w| (w == "mr").then_some(&alts[..])), "(mr | mister) & brigh:*");
        let completions = ["brighter".to_owned(), "brightside".to_owned()];
        assert_eq!(q.tsquery_with(Some(&completions), |_| None), "mr & (brighter | brightside)");
        assert_eq!(
            q.tsquery_with(Some(&completions), |w| (w == "brigh").then_some(&alts[..])),
            "mr & (brighter | brightside | mister)"
        );
        // No completion at all: the prefix stays (it matches nothing).
        assert_eq!(q.tsquery_with(Some(&[]), |_| None), "mr & brigh:*");
        // SQLite's FTS5 query: the same terms.
        assert_eq!(q.fts5_with(None, |_| None), r#""mr" AND "brigh"*"#);
        assert_eq!(q.fts5_with(Some(&completions), |_| None), r#""mr" AND ("brighter" OR "brightside")"#);
        assert_eq!(
            q.fts5_with(None, |w| (w == "mr").then_some(&alts[..])),
            r#"("mr" OR "mister") AND "brigh"*"#
        );
        assert_eq!(Query::parse("a b").unwrap().fts5_with(None, |_| None), r#""a" AND "b"*"#);
    }

    #[test]
    fn trigram_similarity_is_pg_trgm_s() {
        // SELECT similarity('beatels', 'beatles') → 0.33333334 (4 of 12).
        assert!((trigram_similarity("beatels", "beatles") - 4.0 / 12.0).abs() < 1e-9);
        assert_eq!(trigram_similarity("abc", "abc"), 1.0);
        // SELECT similarity('word', 'drow') → 0 (nothing shared).
        assert_eq!(trigram_similarity("word", "drow"), 0.0);
        // Repeated trigrams count once: 'aaaa' → {"  a", " aa", "aaa", "aa "}.
        assert!((trigram_similarity("aaaa", "aaa") - 1.0).abs() < 1e-9);
        assert_eq!(fts5_any_trigram("abab"), r#"" ab" OR "ab " OR "aba" OR "bab""#);
    }

    #[test]
    fn typos() {
        assert!(is_typo_of("osacr", "oscar"));
        assert!(is_typo_of("beatels", "beatles"));
        assert!(!is_typo_of("oscar", "oscar"));
        assert!(!is_typo_of("tiger", "tigers2"));
        assert!(is_typo_of("mountians", "mountains"));
    }

    #[test]
    fn edit_distance() {
        assert_eq!(edits("beatels", "beatles"), 1); // swap
        assert_eq!(edits("beatls", "beatles"), 1); // delete
        assert_eq!(edits("kitten", "sitting"), 3);
        assert_eq!(edits("abc", "abc"), 0);
        assert_eq!(edits("a", "abcdef"), 3);
        assert_eq!(edits("", "ab"), 2);
        assert_eq!(edits("ca", "abc"), 3); // OSA: no edit of a transposed pair
        // Not ASCII: by characters, not bytes.
        assert_eq!(edits("ångström", "ångstrom"), 1);
        assert_eq!(edits("bjørk", "bjrøk"), 1);
        // Longer than the stack rows: the same answers from the heap.
        let long = "x".repeat(70) + "ab";
        assert_eq!(edits(&long, &("x".repeat(70) + "ba")), 1);
        assert_eq!(edits(&long, &("y".repeat(70) + "ab")), 3);
    }

    #[test]
    fn prefixes_and_typos_match() {
        let none: [String; 0] = [];
        let q = Query::parse("mr brigh").unwrap();
        assert!(score(&q, &cand("Mr. Brightside", &none, 0)).is_some());
        assert!(score(&q, &cand("Mrs. Robinson", &none, 100)).is_none());
        let q = Query::parse("beatels").unwrap();
        let artists = ["The Beatles".to_owned()];
        assert!(score(&q, &cand("The Beatles", &none, 50)).is_some());
        assert!(score(&q, &cand("Yesterday", &artists, 50)).is_some(), "secondary text matches");
        assert!(score(&q, &cand("Beetroot", &none, 100)).is_none());
    }

    #[test]
    fn relevance_beats_popularity_and_popularity_breaks_ties() {
        let none: [String; 0] = [];
        let q = Query::parse("halo").unwrap();
        let exact_obscure = score(&q, &cand("Halo", &none, 0)).unwrap();
        let typo_famous = score(&q, &cand("Hallo", &none, 100)).unwrap();
        assert!(exact_obscure > typo_famous, "{exact_obscure} vs {typo_famous}");
        let prefix_famous = score(&q, &cand("Halogen Lights", &none, 100)).unwrap();
        let prefix_obscure = score(&q, &cand("Halogen Lights", &none, 0)).unwrap();
        assert!(prefix_famous > exact_obscure && exact_obscure > prefix_obscure);
        let a = score(&q, &cand("Halo", &none, 10)).unwrap();
        let b = score(&q, &cand("Halo", &none, 90)).unwrap();
        assert!(b > a);
        let mut ranked =
            vec![(a, 10, "x".to_owned(), ()), (b, 90, "y".to_owned(), ()), (a, 10, "a".to_owned(), ())];
        rank(&mut ranked);
        let order: Vec<&str> = ranked.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(order, ["y", "a", "x"]);
    }
}
