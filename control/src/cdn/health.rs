//! What the control plane knows about one POP's health: the active probe's
//! verdict (up after `rise` successes in a row, down after `fall` failures),
//! the load its `/metrics` reports, and players' reports over a sliding
//! window (availability and time to first byte).
//!
//! Every POP has one [`PopHealth`], shared by the probe loop (writer), the
//! report route (writer) and every stream decision (reader). Reads take a
//! short lock per POP; a decision looks at a handful of POPs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

/// The active probe's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeState {
    /// Not probed yet, or not probed at all (`probe = false`): trusted.
    Unknown,
    Up,
    Down,
}

impl ProbeState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProbeState::Unknown => "unknown",
            ProbeState::Up => "up",
            ProbeState::Down => "down",
        }
    }

    /// Whether new decisions may use the POP.
    pub(crate) fn usable(self) -> bool {
        self != ProbeState::Down
    }
}

/// Buckets of the report window.
const BUCKETS: usize = 12;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which slot of time this bucket counts (`now / width`); a bucket of
    /// another slot is stale and reads as empty.
    slot: u64,
    ok: u32,
    errors: u32,
    ttfb_sum_ms: u64,
    ttfb_n: u32,
}

#[derive(Debug)]
struct Active {
    state: ProbeState,
    /// Successes (positive) or failures (negative) in a row.
    streak: i32,
    last_probe_ms: Option<i64>,
    last_rtt_ms: Option<f64>,
    last_error: Option<String>,
    /// When `state` last changed.
    since_ms: Option<i64>,
}

/// One POP's health, as the control plane sees it.
#[derive(Debug)]
pub(crate) struct PopHealth {
    active: Mutex<Active>,
    /// Mirror of `active.state` for lock-free reads on the hot path.
    state: AtomicU8,
    /// `cadenza_edge_requests_in_flight` from the POP's `/metrics`;
    /// `u64::MAX` when unknown.
    in_flight: AtomicU64,
    reports: Mutex<[Bucket; BUCKETS]>,
}

/// A copy of a POP's health for one decision or the admin view.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HealthView {
    pub(crate) state: ProbeState,
    pub(crate) since_ms: Option<i64>,
    pub(crate) last_probe_ms: Option<i64>,
    pub(crate) last_rtt_ms: Option<f64>,
    pub(crate) last_error: Option<String>,
    pub(crate) in_flight: Option<u64>,
    pub(crate) passive: Passive,
}

/// Players' reports in the window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Passive {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    /// Mean time to first byte of the successful reports that gave one.
    pub(crate) ttfb_ms: Option<f64>,
}

impl Passive {
    /// Share of reports without error; `None` below `min_reports`.
    pub(crate) fn availability(&self, min_reports: u32) -> Option<f64> {
        let n = self.ok + self.errors;
        (n > 0 && n >= u64::from(min_reports)).then(|| self.ok as f64 / n as f64)
    }
}

fn encode(s: ProbeState) -> u8 {
    match s {
        ProbeState::Unknown => 0,
        ProbeState::Up => 1,
        ProbeState::Down => 2,
    }
}

fn decode(b: u8) -> ProbeState {
    match b {
        1 => ProbeState::Up,
        2 => ProbeState::Down,
        _ => ProbeState::Unknown,
    }
}

impl Default for PopHealth {
    fn default() -> Self {
        Self {
            active: Mutex::new(Active {
                state: ProbeState::Unknown,
                streak: 0,
                last_probe_ms: None,
                last_rtt_ms: None,
                last_error: None,
                since_ms: None,
            }),
            state: AtomicU8::new(encode(ProbeState::Unknown)),
            in_flight: AtomicU64::new(u64::MAX),
            reports: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }
}

/// A probe's outcome.
#[derive(Clone, Debug)]
pub(crate) enum Probe {
    Ok { rtt: Duration },
    Failed { reason: String },
}

impl PopHealth {
    pub(crate) fn state(&self) -> ProbeState {
        decode(self.state.load(Ordering::Relaxed))
    }

    /// Record a probe; returns the new state if it changed.
    pub(crate) fn record_probe(&self, probe: Probe, now_ms: i64, rise: u32, fall: u32) -> Option<ProbeState> {
        let mut a = self.active.lock().expect("health lock");
        a.last_probe_ms = Some(now_ms);
        let next = match probe {
            Probe::Ok { rtt } => {
                a.last_rtt_ms = Some(rtt.as_secs_f64() * 1e3);
                a.last_error = None;
                a.streak = a.streak.max(0).saturating_add(1);
                match a.state {
                    ProbeState::Down if a.streak >= rise as i32 => ProbeState::Up,
                    ProbeState::Unknown => ProbeState::Up,
                    s => s,
                }
            }
            Probe::Failed { reason } => {
                a.last_error = Some(reason);
                a.streak = a.streak.min(0).saturating_sub(1);
                if -a.streak >= fall as i32 { ProbeState::Down } else { a.state }
            }
        };
        if next == a.state {
            return None;
        }
        a.state = next;
        a.since_ms = Some(now_ms);
        self.state.store(encode(next), Ordering::Relaxed);
        Some(next)
    }

    pub(crate) fn set_in_flight(&self, n: Option<u64>) {
        self.in_flight.store(n.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self) -> Option<u64> {
        let n = self.in_flight.load(Ordering::Relaxed);
        (n != u64::MAX).then_some(n)
    }

    /// Record one player's report.
    pub(crate) fn record_report(&self, now_ms: i64, window: Duration, ok: bool, ttfb_ms: Option<u32>) {
        let width = bucket_width_ms(window);
        let slot = now_ms.max(0) as u64 / width;
        let mut buckets = self.reports.lock().expect("reports lock");
        let b = &mut buckets[(slot % BUCKETS as u64) as usize];
        if b.slot != slot {
            *b = Bucket { slot, ..Bucket::default() };
        }
        if ok {
            b.ok = b.ok.saturating_add(1);
            if let Some(t) = ttfb_ms {
                b.ttfb_sum_ms = b.ttfb_sum_ms.saturating_add(u64::from(t));
                b.ttfb_n = b.ttfb_n.saturating_add(1);
            }
        } else {
            b.errors = b.errors.saturating_add(1);
        }
    }

    /// The reports of the last `window`.
    pub(crate) fn passive(&self, now_ms: i64, window: Duration) -> Passive {
        let width = bucket_width_ms(window);
        let now_slot = now_ms.max(0) as u64 / width;
        let buckets = self.reports.lock().expect("reports lock");
        let (mut p, mut sum, mut n) = (Passive::default(), 0u64, 0u64);
        for b in buckets.iter().filter(|b| b.slot + (BUCKETS as u64) > now_slot && b.slot <= now_slot) {
            p.ok += u64::from(b.ok);
            p.errors += u64::from(b.errors);
            sum += b.ttfb_sum_ms;
            n += u64::from(b.ttfb_n);
        }
        p.ttfb_ms = (n > 0).then(|| sum as f64 / n as f64);
        p
    }

    pub(crate) fn view(&self, now_ms: i64, window: Duration) -> HealthView {
        let a = self.active.lock().expect("health lock");
        HealthView {
            state: a.state,
            since_ms: a.since_ms,
            last_probe_ms: a.last_probe_ms,
            last_rtt_ms: a.last_rtt_ms,
            last_error: a.last_error.clone(),
            in_flight: self.in_flight(),
            passive: self.passive(now_ms, window),
        }
    }
}

fn bucket_width_ms(window: Duration) -> u64 {
    (window.as_millis() as u64 / BUCKETS as u64).max(1)
}

/// Read `name`'s value (summed over its series) from Prometheus text.
pub(crate) fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else { continue };
        // The name must end here: `name 3` or `name{…} 3`.
        let rest = match rest.as_bytes().first() {
            Some(b' ') => rest,
            Some(b'{') => rest.split_once('}').map(|(_, v)| v)?,
            _ => continue,
        };
        let v: f64 = rest.split_whitespace().next()?.parse().ok()?;
        total = Some(total.unwrap_or(0.0) + v);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_and_rise_count_streaks() {
        let h = PopHealth::default();
        let ok = || Probe::Ok { rtt: Duration::from_millis(3) };
        let fail = || Probe::Failed { reason: "connect".into() };
        assert_eq!(h.state(), ProbeState::Unknown);
        assert_eq!(h.record_probe(ok(), 1, 2, 3), Some(ProbeState::Up));
        assert_eq!(h.record_probe(fail(), 2, 2, 3), None);
        assert_eq!(h.record_probe(fail(), 3, 2, 3), None);
        assert_eq!(h.record_probe(ok(), 4, 2, 3), None, "a success resets the failure streak");
        assert_eq!(h.record_probe(fail(), 5, 2, 3), None);
        assert_eq!(h.record_probe(fail(), 6, 2, 3), None);
        assert_eq!(h.record_probe(fail(), 7, 2, 3), Some(ProbeState::Down));
        assert!(!h.state().usable());
        assert_eq!(h.record_probe(ok(), 8, 2, 3), None, "one success is not enough to rise");
        assert_eq!(h.record_probe(ok(), 9, 2, 3), Some(ProbeState::Up));
        let v = h.view(10, Duration::from_secs(60));
        assert_eq!(v.since_ms, Some(9));
        assert_eq!(v.last_rtt_ms, Some(3.0));
    }

    #[test]
    fn reports_slide_out_of_the_window() {
        let h = PopHealth::default();
        let w = Duration::from_secs(60);
        for i in 0..30 {
            h.record_report(1_000 + i, w, i % 3 != 0, Some(40));
        }
        let p = h.passive(2_000, w);
        assert_eq!((p.ok, p.errors), (20, 10));
        assert_eq!(p.ttfb_ms, Some(40.0));
        assert_eq!(p.availability(20), Some(20.0 / 30.0));
        assert_eq!(p.availability(31), None, "too few reports to judge");
        assert_eq!(h.passive(1_000 + 61_000, w), Passive::default(), "a minute later nothing is left");
    }

    #[test]
    fn prometheus_values() {
        let text = "# HELP x y\ncadenza_edge_requests_in_flight 7\ncadenza_edge_requests_in_flight_other 3\n\
                    m{a=\"1\"} 2\nm{a=\"2\"} 3.5\n";
        assert_eq!(metric_value(text, "cadenza_edge_requests_in_flight"), Some(7.0));
        assert_eq!(metric_value(text, "m"), Some(5.5));
        assert_eq!(metric_value(text, "absent"), None);
    }
}
