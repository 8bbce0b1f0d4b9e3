//! Hit ratios over recent windows for `/admin/stats`: the counters are
//! sampled every [`SAMPLE_EVERY`] into a ring that covers the longest
//! window, and a window's ratio is the difference between now and the
//! sample at its start. Prometheus gives the same from `/metrics` with
//! `rate()`; this is for an operator with only `curl`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// How often the counters are sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The windows reported, with their names.
pub(crate) const WINDOWS: [(&str, Duration); 3] =
    [("1m", Duration::from_secs(60)), ("5m", Duration::from_secs(300)), ("1h", Duration::from_secs(3600))];

/// Counter values at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    pub(crate) hits: u64,
    /// Lookups the memory tier missed and the disk tier answered.
    pub(crate) disk_hits: u64,
    pub(crate) misses: u64,
    pub(crate) coalesced: u64,
    pub(crate) served_bytes: u64,
    pub(crate) origin_bytes: u64,
}

impl Sample {
    pub(crate) fn read(m: &Metrics) -> Self {
        Self {
            hits: m.slice_hits.get(),
            disk_hits: m.slice_disk_hits.get(),
            misses: m.slice_misses.get(),
            coalesced: m.slice_coalesced.get(),
            served_bytes: m.response_bytes.get(),
            origin_bytes: m.origin_bytes.get(),
        }
    }

    pub(crate) fn lookups(&self) -> u64 {
        self.hits + self.disk_hits + self.misses + self.coalesced
    }

    fn since(self, earlier: Sample) -> Sample {
        Sample {
            hits: self.hits.saturating_sub(earlier.hits),
            disk_hits: self.disk_hits.saturating_sub(earlier.disk_hits),
            misses: self.misses.saturating_sub(earlier.misses),
            coalesced: self.coalesced.saturating_sub(earlier.coalesced),
            served_bytes: self.served_bytes.saturating_sub(earlier.served_bytes),
            origin_bytes: self.origin_bytes.saturating_sub(earlier.origin_bytes),
        }
    }
}

/// What happened in one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Window {
    /// How much time the window really covers (less than asked for while
    /// the edge is younger than the window).
    pub(crate) covered: Duration,
    pub(crate) delta: Sample,
}

impl Window {
    /// Slice lookups answered from either tier, of all lookups; `None`
    /// without lookups.
    pub(crate) fn hit_ratio(&self) -> Option<f64> {
        let d = self.delta;
        (d.lookups() > 0).then(|| (d.hits + d.disk_hits) as f64 / d.lookups() as f64)
    }

    /// Slice lookups answered from memory, of all lookups.
    pub(crate) fn memory_hit_ratio(&self) -> Option<f64> {
        let d = self.delta;
        (d.lookups() > 0).then(|| d.hits as f64 / d.lookups() as f64)
    }
}

#[derive(Debug)]
pub(crate) struct Windows {
    started: Instant,
    samples: Mutex<VecDeque<(Instant, Sample)>>,
}

impl Windows {
    pub(crate) fn new(now: Instant, first: Sample) -> Self {
        Self { started: now, samples: Mutex::new(VecDeque::from([(now, first)])) }
    }

    pub(crate) fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Keep `sample`, and only as many older ones as the longest window needs.
    pub(crate) fn record(&self, now: Instant, sample: Sample) {
        let longest = WINDOWS.iter().map(|w| w.1).max().unwrap_or_default();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back((now, sample));
        // Drop a sample once the next one is old enough to start the
        // longest window by itself.
        while samples.len() > 1 && now.saturating_duration_since(samples[1].0) >= longest {
            samples.pop_front();
        }
    }

    /// The last `span` up to `now`, whose counters are `current`: measured
    /// from the newest sample at least `span` old, or the oldest one.
    pub(crate) fn over(&self, now: Instant, span: Duration, current: Sample) -> Window {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let start = samples
            .iter()
            .rev()
            .find(|(at, _)| now.saturating_duration_since(*at) >= span)
            .or(samples.front())
            .copied()
            .unwrap_or((now, current));
        Window { covered: now.saturating_duration_since(start.0), delta: current.since(start.1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(hits: u64, misses: u64) -> Sample {
        Sample { hits, misses, ..Sample::default() }
    }

    #[test]
    fn windows_measure_from_the_sample_at_their_start() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let w = Windows::new(t0, s(0, 0));
        for i in 1..=100u64 {
            // 9 hits and 1 miss every 10 s.
            w.record(at(i * 10), s(9 * i, i));
        }
        let now = at(1000);
        let current = s(900, 100);
        let minute = w.over(now, Duration::from_secs(60), current);
        assert_eq!(minute.covered, Duration::from_secs(60));
        assert_eq!(minute.delta, s(54, 6));
        assert_eq!(minute.hit_ratio(), Some(0.9));
        // Younger than an hour: the hour covers all there is.
        let hour = w.over(now, Duration::from_secs(3600), current);
        assert_eq!(hour.covered, Duration::from_secs(1000));
        assert_eq!(hour.delta, s(900, 100));
        assert_eq!(w.over(now, Duration::from_secs(60), s(900, 100)).hit_ratio(), Some(0.9));
        assert_eq!(Window { covered: Duration::ZERO, delta: Sample::default() }.hit_ratio(), None);
    }

    #[test]
    fn old_samples_are_dropped_but_the_longest_window_still_has_its_start() {
        let t0 = Instant::now();
        let w = Windows::new(t0, s(0, 0));
        for i in 1..=1000u64 {
            w.record(t0 + Duration::from_secs(i * 10), s(i, 0));
        }
        let len = w.samples.lock().unwrap().len();
        assert!((360..=362).contains(&len), "{len} samples kept for a 1 h window at 10 s");
        let now = t0 + Duration::from_secs(10_000);
        let hour = w.over(now, Duration::from_secs(3600), s(1000, 0));
        assert_eq!(hour.covered, Duration::from_secs(3600));
        assert_eq!(hour.delta.hits, 360);
    }
}
