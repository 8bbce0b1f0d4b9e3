//! The rules of playback events, pure (no I/O): when a play counts as a
//! stream, which UTC day it counts on, which events are accepted, and how
//! streams become popularity. `crate::db::events` applies them inside one
//! transaction per batch; `docs/events.md` states them for clients.
//!
//! # A play's state is a function of the set of its events
//!
//! [`Play::fold`] is commutative, associative and idempotent over events
//! (maxima and minima only, plus a count that the database's duplicate
//! check keeps to distinct events), so a play ends in the same state
//! whatever order, batching or repetition its events arrive in:
//!
//! - listened position: the largest `position_ms` of its events other
//!   than seeks (a seek's position is where playback jumped to, not what
//!   was heard);
//! - it is a **stream** once that reaches [`threshold_ms`] =
//!   min(30 s, half the track) — at most once per play;
//! - `streamed_at`: the earliest client time among its events at or past
//!   the threshold (seeks aside), and the stream counts on that time's UTC
//!   day. An event that arrives late with an earlier qualifying time moves
//!   the stream to its day (one day loses it, the other gains it, in the
//!   same transaction), so the final counts do not depend on arrival order.

use std::fmt;

use crate::types::{EventKind, RejectCode};

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;
/// A play is a stream once its listened position reaches this, or half
/// the track if that is shorter.
pub(crate) const STREAM_MS: i64 = 30_000;
/// Most events in one batch.
pub(crate) const MAX_BATCH: usize = 500;
/// Longest event or play id.
pub(crate) const MAX_ID_LEN: usize = 64;
/// Longest device name, in characters.
pub(crate) const MAX_DEVICE_CHARS: usize = 64;
/// Largest `position_ms` a body may carry (24 h).
pub(crate) const MAX_POSITION_MS: u64 = 86_400_000;
/// Oldest event accepted: offline plays are reported up to 30 days late.
pub(crate) const MAX_LATENESS_MS: i64 = 30 * DAY_MS;
/// Furthest ahead of the server's clock an event may be (client clocks
/// are wrong; a day covers every time zone mistake).
pub(crate) const MAX_EARLINESS_MS: i64 = DAY_MS;
/// How far past the end of a track a position may be (decoders round).
pub(crate) const POSITION_SLACK_MS: i64 = 5_000;

/// The listened position at which a play of a track of `duration_ms`
/// becomes a stream: min(30 s, half the track, rounded up). A duration of
/// 0 means unknown (metadata imported before its audio): 30 s.
pub(crate) fn threshold_ms(duration_ms: i64) -> i64 {
    if duration_ms <= 0 { STREAM_MS } else { STREAM_MS.min((duration_ms + 1) / 2) }
}

/// Does an event of this kind report a listened position?
pub(crate) fn is_listened(kind: EventKind) -> bool {
    kind != EventKind::Seek
}

/// Is an event that happened at `occurred_at` (client clock, unix ms)
/// acceptable at server time `now`?
pub(crate) fn check_time(occurred_at: i64, now: i64) -> Result<(), RejectCode> {
    if occurred_at < now.saturating_sub(MAX_LATENESS_MS) {
        Err(RejectCode::TooLate)
    } else if occurred_at > now.saturating_add(MAX_EARLINESS_MS) {
        Err(RejectCode::InTheFuture)
    } else {
        Ok(())
    }
}

/// Is `position_ms` inside a track of `duration_ms` (0: unknown, anything
/// goes)?
pub(crate) fn check_position(position_ms: i64, duration_ms: i64) -> Result<(), RejectCode> {
    if duration_ms > 0 && position_ms > duration_ms.saturating_add(POSITION_SLACK_MS) {
        Err(RejectCode::PositionOutOfRange)
    } else {
        Ok(())
    }
}

/// What [`Play::fold`] needs of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Heard {
    pub(crate) kind: EventKind,
    pub(crate) position_ms: i64,
    pub(crate) at: i64,
}

/// A play folded from its events (the `plays` row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Play {
    pub(crate) threshold_ms: i64,
    pub(crate) max_position_ms: i64,
    /// Earliest and latest client time; meaningless while `events` is 0.
    pub(crate) started_at: i64,
    pub(crate) last_at: i64,
    pub(crate) streamed_at: Option<i64>,
    pub(crate) events: i64,
}

impl Play {
    /// A play with no events yet.
    #[cfg(test)]
    pub(crate) fn empty(threshold_ms: i64) -> Self {
        Self { threshold_ms, max_position_ms: 0, started_at: 0, last_at: 0, streamed_at: None, events: 0 }
    }

    /// This play with one more (distinct) event.
    #[must_use]
    pub(crate) fn fold(self, e: Heard) -> Self {
        let first = self.events == 0;
        let listened = is_listened(e.kind);
        let qualifies = listened && e.position_ms >= self.threshold_ms;
        Self {
            threshold_ms: self.threshold_ms,
            max_position_ms: if listened {
                self.max_position_ms.max(e.position_ms)
            } else {
                self.max_position_ms
            },
            started_at: if first { e.at } else { self.started_at.min(e.at) },
            last_at: if first { e.at } else { self.last_at.max(e.at) },
            streamed_at: match (self.streamed_at, qualifies) {
                (Some(s), true) => Some(s.min(e.at)),
                (None, true) => Some(e.at),
                (s, false) => s,
            },
            events: self.events + 1,
        }
    }

    /// The UTC day this play counts as a stream on, if it is one.
    pub(crate) fn stream_day(&self) -> Option<Day> {
        self.streamed_at.map(Day::of_ms)
    }
}

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Day(pub(crate) i64);

impl Day {
    /// The day of a unix-millisecond instant.
    pub(crate) fn of_ms(ms: i64) -> Self {
        Day(ms.div_euclid(DAY_MS))
    }

    /// `YYYY-MM-DD` (years 0000-9999), or `None`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = &s[r];
            part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok()).flatten()
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&m) || d < 1 {
            return None;
        }
        let day = Day(days_from_civil(y, m, d));
        // Day 31 of a 30-day month comes back as another date.
        (day.civil() == (y, m, d)).then_some(day)
    }

    /// (year, month, day).
    fn civil(self) -> (i64, i64, i64) {
        civil_from_days(self.0)
    }

    /// The first millisecond of the day.
    #[cfg(test)]
    pub(crate) fn start_ms(self) -> i64 {
        self.0.saturating_mul(DAY_MS)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// How a play's stream moved between two states: the day that loses one
/// stream and the day that gains one (both `None` when nothing changed).
pub(crate) fn count_change(before: Option<Day>, after: Option<Day>) -> (Option<Day>, Option<Day>) {
    if before == after { (None, None) } else { (before, after) }
}

/// Popularity 0-100 of a track streamed `streams` times in the window
/// where the most streamed track was streamed `max` times: logarithmic,
/// so a track with a tenth of the top's streams is not 10 but ~67 when
/// the top has 1,000.
pub(crate) fn popularity(streams: u64, max: u64) -> u32 {
    if streams == 0 || max == 0 {
        return 0;
    }
    let p = 100.0 * ((streams.min(max) as f64) + 1.0).ln() / ((max as f64) + 1.0).ln();
    // Finite and within 0..=100 by construction; the cast saturates anyway.
    p.round().clamp(0.0, 100.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(kind: EventKind, position_ms: i64, at: i64) -> Heard {
        Heard { kind, position_ms, at }
    }

    #[test]
    fn thresholds() {
        assert_eq!(threshold_ms(180_000), 30_000);
        assert_eq!(threshold_ms(60_000), 30_000);
        assert_eq!(threshold_ms(50_000), 25_000);
        assert_eq!(threshold_ms(20_001), 10_001);
        assert_eq!(threshold_ms(1), 1);
        assert_eq!(threshold_ms(0), 30_000, "unknown duration");
    }

    #[test]
    fn times_and_positions() {
        let now = 1_000 * DAY_MS;
        assert_eq!(check_time(now, now), Ok(()));
        assert_eq!(check_time(now - MAX_LATENESS_MS, now), Ok(()));
        assert_eq!(check_time(now - MAX_LATENESS_MS - 1, now), Err(RejectCode::TooLate));
        assert_eq!(check_time(now + DAY_MS, now), Ok(()));
        assert_eq!(check_time(now + DAY_MS + 1, now), Err(RejectCode::InTheFuture));
        assert_eq!(check_time(i64::MIN, now), Err(RejectCode::TooLate));
        assert_eq!(check_time(i64::MAX, now), Err(RejectCode::InTheFuture));
        assert_eq!(check_position(185_000, 180_000), Ok(()));
        assert_eq!(check_position(185_001, 180_000), Err(RejectCode::PositionOutOfRange));
        assert_eq!(check_position(10_000_000, 0), Ok(()), "unknown duration");
    }

    #[test]
    fn a_play_streams_once_at_the_threshold() {
        let p = Play::empty(30_000).fold(heard(EventKind::Start, 0, 1_000));
        assert_eq!(p.streamed_at, None);
        let p = p.fold(heard(EventKind::Progress, 29_999, 31_000));
        assert_eq!(p.streamed_at, None);
        let p = p.fold(heard(EventKind::Progress, 30_000, 32_000));
        assert_eq!(p.streamed_at, Some(32_000));
        let p = p.fold(heard(EventKind::Complete, 180_000, 181_000));
        assert_eq!((p.streamed_at, p.max_position_ms, p.events), (Some(32_000), 180_000, 4));
        assert_eq!((p.started_at, p.last_at), (1_000, 181_000));
    }

    #[test]
    fn seeks_are_not_listening() {
        let p = Play::empty(30_000).fold(heard(EventKind::Start, 0, 0)).fold(heard(
            EventKind::Seek,
            170_000,
            1_000,
        ));
        assert_eq!((p.streamed_at, p.max_position_ms), (None, 0));
        // Playback after the seek is.
        let p = p.fold(heard(EventKind::Pause, 171_000, 2_000));
        assert_eq!((p.streamed_at, p.max_position_ms), (Some(2_000), 171_000));
    }

    #[test]
    fn fold_ignores_order() {
        let events = [
            heard(EventKind::Start, 0, 5_000),
            heard(EventKind::Progress, 40_000, 45_000),
            heard(EventKind::Seek, 100_000, 46_000),
            heard(EventKind::Skip, 35_000, 44_000),
            heard(EventKind::Pause, 10_000, 15_000),
        ];
        let forward = events.iter().fold(Play::empty(30_000), |p, e| p.fold(*e));
        let backward = events.iter().rev().fold(Play::empty(30_000), |p, e| p.fold(*e));
        assert_eq!(forward, backward);
        assert_eq!(forward.streamed_at, Some(44_000), "the earliest qualifying time");
        assert_eq!((forward.started_at, forward.last_at, forward.max_position_ms), (5_000, 46_000, 40_000));
    }

    #[test]
    fn a_late_event_moves_the_stream_to_its_day() {
        let day2 = 2 * DAY_MS;
        let p = Play::empty(30_000).fold(heard(EventKind::Progress, 31_000, day2 + 10));
        assert_eq!(p.stream_day(), Some(Day(2)));
        let q = p.fold(heard(EventKind::Progress, 30_500, day2 - 10));
        assert_eq!(q.stream_day(), Some(Day(1)));
        assert_eq!(count_change(p.stream_day(), q.stream_day()), (Some(Day(2)), Some(Day(1))));
        assert_eq!(count_change(None, q.stream_day()), (None, Some(Day(1))));
        assert_eq!(count_change(q.stream_day(), q.stream_day()), (None, None));
    }

    #[test]
    fn days() {
        assert_eq!(Day::of_ms(0).to_string(), "1970-01-01");
        assert_eq!(Day::of_ms(-1).to_string(), "1969-12-31");
        assert_eq!(Day::of_ms(DAY_MS - 1).to_string(), "1970-01-01");
        assert_eq!(Day::of_ms(1_709_164_800_000).to_string(), "2024-02-29");
        assert_eq!(Day::parse("2024-02-29"), Some(Day(19_782)));
        assert_eq!(Day(19_782).start_ms(), 1_709_164_800_000);
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-4-1",
            "24-04-01x",
            "2024/04/01",
            "+024-04-01",
            "",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        // Every day of four centuries round-trips.
        for n in days_from_civil(1900, 1, 1)..days_from_civil(2300, 1, 1) {
            let s = Day(n).to_string();
            assert_eq!(Day::parse(&s), Some(Day(n)), "{s}");
        }
    }

    #[test]
    fn popularity_is_logarithmic_and_relative() {
        assert_eq!(popularity(0, 1_000), 0);
        assert_eq!(popularity(5, 0), 0);
        assert_eq!(popularity(1_000, 1_000), 100);
        assert_eq!(popularity(1, 1), 100);
        assert_eq!(popularity(100, 1_000), 67);
        assert_eq!(popularity(1, 1_000), 10);
        assert_eq!(popularity(2_000, 1_000), 100);
        let mut last = 0;
        for s in 0..=1_000 {
            let p = popularity(s, 1_000);
            assert!(p >= last && p <= 100);
            last = p;
        }
    }
}
