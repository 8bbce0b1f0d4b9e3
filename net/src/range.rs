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
//! - More than one range: this version serves the whole object (200), which
//!   RFC 9110 permits; multipart/byteranges comes with the edge's part 1.

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
    /// 416 with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// Apply the policy above to a `Range` header value.
pub fn select(header: &[u8], len: u64) -> Selection {
    match parse(header) {
        Parsed::Ignore => Selection::Full,
        Parsed::Malformed => Selection::Unsatisfiable,
        Parsed::Bytes(specs) => {
            let mut satisfiable = specs.iter().filter_map(|s| s.resolve(len));
            match (satisfiable.next(), specs.len()) {
                (None, _) => Selection::Unsatisfiable,
                (Some(r), 1) => Selection::Partial(r),
                // Several ranges: the whole object, for now.
                (Some(_), _) => Selection::Full,
            }
        }
    }
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
        assert_eq!(select(b"bytes=0-9", 100), Selection::Partial(0..10));
        assert_eq!(select(b"bytes=100-", 100), Selection::Unsatisfiable);
        assert_eq!(select(b"bytes=x", 100), Selection::Unsatisfiable);
        assert_eq!(select(b"items=1-2", 100), Selection::Full);
        assert_eq!(select(b"bytes=0-1,5-6", 100), Selection::Full);
        assert_eq!(select(b"bytes=200-300,400-", 100), Selection::Unsatisfiable);
    }

    #[test]
    fn fuzz_logic_holds_on_samples() {
        for h in ["bytes=0-", "bytes=-1", "bytes=5-1000000", "bytes=0-0,-0", "x", ""] {
            for len in [0, 1, 7, 1 << 20] {
                fuzz_logic(h.as_bytes(), len);
            }
        }
    }
}
