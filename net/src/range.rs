//! `Range: bytes=…` per RFC 9110 §14.1–14.2, parsed strictly.
//!
//! The policy the edge and the origin both apply (documented in
//! `docs/edge.md`):
//! - A header whose unit is not `bytes` is ignored (200 with the whole
//!   object), as RFC 9110 §14.2 requires for unknown units.
//! - A `bytes=` header that does not parse — signs, spaces inside numbers,
//!   empty specs, `b < a`, numbers past 2^63, more than [`MAX_HEADER_LEN`]
//!   bytes — is answered 416 with `Content-Range: bytes */<len>`, the way
//!   nginx does, so a broken client hears about it instead of silently
//!   downloading whole files.
//! - A syntactically valid set where no range overlaps the object is 416.
//! - Several ranges: the satisfiable ones are sorted and overlapping or
//!   adjacent ones coalesced (RFC 9110 §14.2 allows both). One range left is
//!   a plain 206; several are a `multipart/byteranges` 206 — unless more
//!   than the caller's cap remain, in which case the whole object is sent
//!   (200), as nginx's `max_ranges` does. The cap counts ranges after
//!   coalescing, so `bytes=0-1,1-2,2-3,…` is one range, not a refusal.

use std::ops::Range;

/// Longest `Range` header we parse.
pub const MAX_HEADER_LEN: usize = 1024;
/// Longest number we parse (2^63 has 19 digits).
const MAX_DIGITS: usize = 18;

/// One byte-range-spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `a-b`, inclusive.
    Closed(u64, u64),
    /// `a-`
    From(u64),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// What a `Range` header asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a `bytes` range: serve the whole object.
    Ignore,
    /// One or more specs, in request order.
    Bytes(Vec<Spec>),
    /// A `bytes=` header we cannot parse: 416.
    Malformed,
}

/// Parse a `Range` header value.
pub fn parse(header: &[u8]) -> Parsed {
    if header.len() > MAX_HEADER_LEN {
        return Parsed::Malformed;
    }
    let Ok(text) = std::str::from_utf8(header) else {
        return Parsed::Malformed;
    };
    let Some((unit, set)) = text.split_once('=') else {
        return Parsed::Malformed;
    };
    // The unit is a case-insensitive token (RFC 9110 §14.1).
    if !unit.eq_ignore_ascii_case("bytes") {
        return if unit.bytes().all(|c| c.is_ascii_alphanumeric()) && !unit.is_empty() {
            Parsed::Ignore
        } else {
            Parsed::Malformed
        };
    }
    let mut specs = Vec::new();
    // A range-set is a comma list; optional whitespace around commas (OWS)
    // is allowed, nothing else.
    for part in set.split(',') {
        let part = part.trim_matches(|c| c == ' ' || c == '\t');
        match parse_spec(part) {
            Some(spec) => specs.push(spec),
            None => return Parsed::Malformed,
        }
    }
    Parsed::Bytes(specs)
}

fn parse_spec(s: &str) -> Option<Spec> {
    let (first, last) = s.split_once('-')?;
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Spec::Suffix(number(last)?)),
        (false, true) => Some(Spec::From(number(first)?)),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            (a <= b).then_some(Spec::Closed(a, b))
        }
    }
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Spec {
    /// The byte range this spec selects in an object of `len` bytes, or
    /// `None` if it selects nothing (unsatisfiable).
    pub fn resolve(self, len: u64) -> Option<Range<u64>> {
        match self {
            Spec::Closed(a, b) if a < len => Some(a..b.saturating_add(1).min(len)),
            Spec::From(a) if a < len => Some(a..len),
            Spec::Suffix(n) if n > 0 && len > 0 => Some(len.saturating_sub(n)..len),
            _ => None,
        }
    }
}

/// What to send for a `Range` header against an object of `len` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The whole object, 200.
    Full,
    /// One range, 206.
    Partial(Range<u64>),
    /// Two or more disjoint, non-adjacent ranges in ascending order:
    /// 206 `multipart/byteranges`.
    Multi(Vec<Range<u64>>),
    /// 416 with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// Apply the policy above to a `Range` header value; at most `max_parts`
/// ranges (after coalescing) are answered as ranges, more get the whole
/// object. A `max_parts` of 1 turns multipart answers off.
pub fn select(header: &[u8], len: u64, max_parts: usize) -> Selection {
    match parse(header) {
        Parsed::Ignore => Selection::Full,
        Parsed::Malformed => Selection::Unsatisfiable,
        Parsed::Bytes(specs) => {
            let ranges = coalesce(specs.iter().filter_map(|s| s.resolve(len)).collect());
            match ranges.len() {
                0 => Selection::Unsatisfiable,
                1 => Selection::Partial(ranges[0].clone()),
                n if n > max_parts => Selection::Full,
                _ => Selection::Multi(ranges),
            }
        }
    }
}

/// Sort `ranges` and merge those that overlap or touch.
pub fn coalesce(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Fuzz entry point: parsing and resolving never panic, and every resolved
/// range is non-empty and inside the object.
pub fn fuzz_logic(header: &[u8], len: u64) {
    if let Parsed::Bytes(specs) = parse(header) {
        for s in specs {
            if let Some(r) = s.resolve(len) {
                assert!(r.start < r.end && r.end <= len, "{s:?} resolved to {r:?} for len {len}");
            }
        }
    }
    if let Selection::Multi(ranges) = select(header, len, usize::MAX) {
        assert!(ranges.len() >= 2);
        for pair in ranges.windows(2) {
            assert!(pair[0].end < pair[1].start, "ranges not disjoint and apart: {ranges:?}");
        }
        assert!(ranges.iter().all(|r| r.start < r.end && r.end <= len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &str) -> Spec {
        match parse(h.as_bytes()) {
            Parsed::Bytes(v) if v.len() == 1 => v[0],
            other => panic!("{h:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(one("bytes=0-99"), Spec::Closed(0, 99));
        assert_eq!(one("bytes=100-"), Spec::From(100));
        assert_eq!(one("bytes=-500"), Spec::Suffix(500));
        assert_eq!(one("BYTES=5-5"), Spec::Closed(5, 5));
    }

    #[test]
    fn resolution_against_length() {
        let len = 1000;
        assert_eq!(Spec::Closed(0, 99).resolve(len), Some(0..100));
        assert_eq!(Spec::Closed(990, 5000).resolve(len), Some(990..1000), "end clamps to the object");
        assert_eq!(Spec::Closed(1000, 1001).resolve(len), None, "start past the end is unsatisfiable");
        assert_eq!(Spec::From(999).resolve(len), Some(999..1000));
        assert_eq!(Spec::From(1000).resolve(len), None);
        assert_eq!(Spec::Suffix(10).resolve(len), Some(990..1000));
        assert_eq!(
            Spec::Suffix(5000).resolve(len),
            Some(0..1000),
            "suffix longer than the object is all of it"
        );
        assert_eq!(Spec::Suffix(0).resolve(len), None, "-0 selects nothing");
        assert_eq!(Spec::From(0).resolve(0), None, "nothing is satisfiable in an empty object");
        assert_eq!(Spec::Closed(u64::MAX - 1, u64::MAX).resolve(u64::MAX), Some(u64::MAX - 1..u64::MAX));
    }

    #[test]
    fn multiple_ranges_are_listed_in_order() {
        assert_eq!(
            parse(b"bytes=0-0, -1,5-"),
            Parsed::Bytes(vec![Spec::Closed(0, 0), Spec::Suffix(1), Spec::From(5)])
        );
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(parse(b"items=0-5"), Parsed::Ignore);
    }

    #[test]
    fn malformed_is_rejected() {
        for bad in [
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=-1-2",
            "bytes= 1 - 2",
            "bytes=1 -2",
            "bytes=5-4",
            "bytes=0x10-",
            "bytes=1-2,",
            "bytes=,1-2",
            "bytes=99999999999999999999-",
            "bytes",
            "=0-1",
            "by tes=0-1",
            "bytes=١-٢",
        ] {
            assert_eq!(parse(bad.as_bytes()), Parsed::Malformed, "{bad:?}");
        }
        assert_eq!(parse(format!("bytes=0-1{}", ",0-1".repeat(300)).as_bytes()), Parsed::Malformed);
        assert_eq!(parse(b"bytes=\xff-1"), Parsed::Malformed);
    }

    #[test]
    fn selection_policy() {
        assert_eq!(select(b"bytes=0-9", 100, 16), Selection::Partial(0..10));
        assert_eq!(select(b"bytes=100-", 100, 16), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=x", 100, 16), Selection::Unsatisfiable);
        assert_eq!(select(b"items=1-2", 100, 16), Selection::Full);
        assert_eq!(select(b"bytes=0-1,5-6", 100, 16), Selection::Multi(vec![0..2, 5..7]));
        assert_eq!(select(b"bytes=0-1,5-6", 100, 1), Selection::Full, "multipart turned off");
        assert_eq!(select(b"bytes=200-300,400-", 100, 16), Selection::Unsatisfiable);
        assert_eq!(
            select(b"bytes=200-300,90-", 100, 16),
            Selection::Partial(90..100),
            "unsatisfiable parts drop"
        );
    }

    #[test]
    fn coalescing_merges_overlaps_and_neighbours() {
        assert_eq!(select(b"bytes=0-9,10-19", 100, 16), Selection::Partial(0..20), "adjacent");
        assert_eq!(
            select(b"bytes=5-20,0-9", 100, 16),
            Selection::Partial(0..21),
            "overlapping, out of order"
        );
        assert_eq!(select(b"bytes=50-59,-10,0-0", 100, 16), Selection::Multi(vec![0..1, 50..60, 90..100]));
        assert_eq!(select(b"bytes=0-0,0-0,0-0", 100, 16), Selection::Partial(0..1), "duplicates");
        assert_eq!(select(b"bytes=0-5,2-3", 100, 16), Selection::Partial(0..6), "contained");
        // The cap counts what is left after coalescing.
        let many: Vec<String> = (0..40).map(|i| format!("{i}-{i}")).collect();
        let header = format!("bytes={}", many.join(","));
        assert_eq!(select(header.as_bytes(), 100, 16), Selection::Partial(0..40));
        let apart: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 3, i * 3)).collect();
        let header = format!("bytes={}", apart.join(","));
        assert_eq!(select(header.as_bytes(), 100, 16), Selection::Full, "17 parts > cap 16");
        assert!(matches!(select(header.as_bytes(), 100, 17), Selection::Multi(v) if v.len() == 17));
    }

    #[test]
    fn fuzz_logic_holds_on_samples() {
        for h in ["bytes=0-", "bytes=-1", "bytes=5-1000000", "bytes=0-0,-0", "bytes=0-3,2-9,-4,8-", "x", ""] {
            for len in [0, 1, 7, 1 << 20] {
                fuzz_logic(h.as_bytes(), len);
            }
        }
    }
}
