//! Prometheus metrics, on a registry per server instance (tests run several
//! servers in one process, so the global default registry is never used).
//!
//! Labels are low-cardinality: `route` is the matched route template
//! (`/v1/tracks/{id}`), never the raw path.

use cadenza_config::ingest::JobState;
use cadenza_config::ladder::Rung;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// `cadenza_control_http_requests_total{route,status}`
    http_requests: IntCounterVec,
    /// `cadenza_control_http_request_duration_seconds{route}`
    http_duration: HistogramVec,
    /// `cadenza_control_stream_urls_total{quality_kbps}`: stream answers
    /// issued, by chosen quality.
    stream_answers: IntCounterVec,
    /// `cadenza_control_ingest_events_total{event}`: what happened to
    /// ingest jobs ([`IngestEvent`]).
    ingest_events: IntCounterVec,
    /// `cadenza_control_ingest_jobs{state}`: jobs in each state, read from
    /// the database when `/metrics` is scraped.
    ingest_jobs: IntGaugeVec,
    /// `cadenza_control_warm_jobs{state}`: warm jobs in each state, read
    /// from the database when `/metrics` is scraped.
    warm_jobs: IntGaugeVec,
    /// `cadenza_control_warm_pop_parts_total{result}`: POPs' parts of warm
    /// jobs run by this replica, by how each ended (`done`, `failed`) or
    /// was put back (`retried`).
    warm_parts: IntCounterVec,
    /// `cadenza_control_rate_limited_total{category}`: requests answered
    /// 429 by the per-user limits.
    rate_limited: IntCounterVec,
    /// `cadenza_control_stream_first_pop_total{cdn,pop}`: stream answers
    /// by the POP of their first URL.
    first_pop: IntCounterVec,
    /// `cadenza_control_pop_up{cdn,pop}`: the active probe's verdict, 1 up
    /// (or not yet probed), 0 down.
    pop_up: IntGaugeVec,
    /// `cadenza_control_playback_events_total{outcome}`: events of
    /// `POST /v1/events`, by `accepted`, `duplicate`, `rejected`.
    playback_events: IntCounterVec,
    /// `cadenza_control_streams_total`: plays that became streams.
    streams: IntCounterVec,
    /// `cadenza_control_signing_current_key{kid}`: 1 for the key new URLs
    /// are signed with.
    signing_key: IntGaugeVec,
    /// `cadenza_control_signing_reloads_total{result}`: key ring reloads,
    /// `ok` or `error` (the ring in use stayed).
    signing_reloads: IntCounterVec,
}

/// Something that happened to an ingest job, a label of
/// `cadenza_control_ingest_events_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IngestEvent {
    /// `POST /v1/admin/ingest` queued a job.
    Registered,
    /// A worker was handed a job (a new lease).
    Claimed,
    /// A worker's manifests were registered.
    Completed,
    /// A retryable failure queued the job again.
    Retried,
    /// The job failed for good: a bad master, or out of attempts (by
    /// failures or by leases running out).
    Failed,
}

impl IngestEvent {
    const ALL: [IngestEvent; 5] = [
        IngestEvent::Registered,
        IngestEvent::Claimed,
        IngestEvent::Completed,
        IngestEvent::Retried,
        IngestEvent::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            IngestEvent::Registered => "registered",
            IngestEvent::Claimed => "claimed",
            IngestEvent::Completed => "completed",
            IngestEvent::Retried => "retried",
            IngestEvent::Failed => "failed",
        }
    }
}

const WARM_STATES: [&str; 5] = ["scheduled", "running", "done", "failed", "cancelled"];

const JOB_STATES: [JobState; 4] = [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed];

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "cadenza_control_http_requests_total",
                "HTTP requests answered, by route template and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "cadenza_control_http_request_duration_seconds",
                "Time from request head to response head, by route template",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["route"],
        )
        .expect("valid metric");
        let stream_answers = IntCounterVec::new(
            Opts::new("cadenza_control_stream_urls_total", "Stream answers issued, by chosen quality"),
            &["quality_kbps"],
        )
        .expect("valid metric");
        let ingest_events = IntCounterVec::new(
            Opts::new("cadenza_control_ingest_events_total", "Ingest job events, by kind"),
            &["event"],
        )
        .expect("valid metric");
        let ingest_jobs = IntGaugeVec::new(
            Opts::new("cadenza_control_ingest_jobs", "Ingest jobs in each state, as of the last scrape"),
            &["state"],
        )
        .expect("valid metric");
        let warm_jobs = IntGaugeVec::new(
            Opts::new("cadenza_control_warm_jobs", "Warm jobs in each state, as of the last scrape"),
            &["state"],
        )
        .expect("valid metric");
        let warm_parts = IntCounterVec::new(
            Opts::new(
                "cadenza_control_warm_pop_parts_total",
                "POPs' parts of warm jobs run here, by outcome (done, failed, retried)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "cadenza_control_rate_limited_total",
                "Requests refused by a per-user rate limit, by category",
            ),
            &["category"],
        )
        .expect("valid metric");
        let first_pop = IntCounterVec::new(
            Opts::new(
                "cadenza_control_stream_first_pop_total",
                "Stream answers, by the POP of the first URL",
            ),
            &["cdn", "pop"],
        )
        .expect("valid metric");
        let pop_up = IntGaugeVec::new(
            Opts::new("cadenza_control_pop_up", "Active probe verdict per POP: 1 up or unknown, 0 down"),
            &["cdn", "pop"],
        )
        .expect("valid metric");
        let signing_key = IntGaugeVec::new(
            Opts::new(
                "cadenza_control_signing_current_key",
                "1 for the id of the key new stream URLs are signed with",
            ),
            &["kid"],
        )
        .expect("valid metric");
        let signing_reloads = IntCounterVec::new(
            Opts::new(
                "cadenza_control_signing_reloads_total",
                "Signing key ring reloads (SIGHUP, POST /v1/admin/signing/reload) by result; on error the ring in use stays",
            ),
            &["result"],
        )
        .expect("valid metric");
        registry.register(Box::new(pop_up.clone())).expect("unique metric");
        registry.register(Box::new(signing_key.clone())).expect("unique metric");
        let playback_events = IntCounterVec::new(
            Opts::new("cadenza_control_playback_events_total", "Playback events received, by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        let streams = IntCounterVec::new(
            Opts::new("cadenza_control_streams_total", "Plays that became streams"),
            &[] as &[&str],
        )
        .expect("valid metric");
        for c in [
            &http_requests,
            &stream_answers,
            &ingest_events,
            &rate_limited,
            &first_pop,
            &playback_events,
            &streams,
            &signing_reloads,
            &warm_parts,
        ] {
            registry.register(Box::new(c.clone())).expect("unique metric");
        }
        registry.register(Box::new(http_duration.clone())).expect("unique metric");
        registry.register(Box::new(ingest_jobs.clone())).expect("unique metric");
        registry.register(Box::new(warm_jobs.clone())).expect("unique metric");
        for st in WARM_STATES {
            warm_jobs.with_label_values(&[st]);
        }
        for r in ["done", "failed", "retried"] {
            warm_parts.with_label_values(&[r]);
        }
        for rung in cadenza_config::ladder::LADDER {
            stream_answers.with_label_values(&[rung.kbps_str()]);
        }
        for e in IngestEvent::ALL {
            ingest_events.with_label_values(&[e.as_str()]);
        }
        for s in JOB_STATES {
            ingest_jobs.with_label_values(&[s.as_str()]);
        }
        for c in crate::api::ratelimit::Category::ALL {
            rate_limited.with_label_values(&[c.as_str()]);
        }
        for o in ["accepted", "duplicate", "rejected"] {
            playback_events.with_label_values(&[o]);
        }
        streams.with_label_values(&[] as &[&str]);
        for r in ["ok", "error"] {
            signing_reloads.with_label_values(&[r]);
        }
        Self {
            registry,
            http_requests,
            http_duration,
            stream_answers,
            ingest_events,
            ingest_jobs,
            warm_jobs,
            warm_parts,
            rate_limited,
            first_pop,
            pop_up,
            playback_events,
            streams,
            signing_key,
            signing_reloads,
        }
    }

    /// One `POST /v1/events` batch's outcome, and the streams it made.
    pub(crate) fn playback_events(&self, accepted: u64, duplicates: u64, rejected: u64, streams: u64) {
        for (outcome, n) in [("accepted", accepted), ("duplicate", duplicates), ("rejected", rejected)] {
            self.playback_events.with_label_values(&[outcome]).inc_by(n);
        }
        self.streams.with_label_values(&[] as &[&str]).inc_by(streams);
    }

    /// `kid` now signs: the current-key gauge shows it, and no other.
    pub(crate) fn signing_current_key(&self, kid: &str) {
        self.signing_key.reset();
        self.signing_key.with_label_values(&[kid]).set(1);
    }

    pub(crate) fn signing_reload(&self, ok: bool) {
        self.signing_reloads.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    }

    pub(crate) fn ingest(&self, event: IngestEvent, n: u64) {
        self.ingest_events.with_label_values(&[event.as_str()]).inc_by(n);
    }

    /// Set the jobs-by-state gauge; states not in `counts` are zero.
    pub(crate) fn set_ingest_jobs(&self, counts: &[(JobState, i64)]) {
        for s in JOB_STATES {
            let n = counts.iter().find(|(state, _)| *state == s).map_or(0, |(_, n)| *n);
            self.ingest_jobs.with_label_values(&[s.as_str()]).set(n);
        }
    }

    /// Set the warm-jobs-by-state gauge; states not in `counts` are zero.
    pub(crate) fn set_warm_jobs(&self, counts: &[(String, i64)]) {
        for st in WARM_STATES {
            let n = counts.iter().find(|(state, _)| state == st).map_or(0, |(_, n)| *n);
            self.warm_jobs.with_label_values(&[st]).set(n);
        }
    }

    /// A POP's part of a warm job ended (`done`, `failed`) or is retried.
    pub(crate) fn warm_part(&self, result: &str) {
        self.warm_parts.with_label_values(&[result]).inc();
    }

    pub(crate) fn observe_request(&self, route: &str, status: &str, seconds: f64) {
        self.http_requests.with_label_values(&[route, status]).inc();
        self.http_duration.with_label_values(&[route]).observe(seconds);
    }

    pub(crate) fn rate_limited(&self, category: &str) {
        self.rate_limited.with_label_values(&[category]).inc();
    }

    pub(crate) fn stream_answer(&self, rung: Rung, first: Option<(&str, &str)>) {
        self.stream_answers.with_label_values(&[rung.kbps_str()]).inc();
        if let Some((cdn, pop)) = first {
            self.first_pop.with_label_values(&[cdn, pop]).inc();
        }
    }

    pub(crate) fn pop_state(&self, cdn: &str, pop: &str, state: crate::cdn::health::ProbeState) {
        let up = i64::from(state.usable());
        self.pop_up.with_label_values(&[cdn, pop]).set(up);
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_independent() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.observe_request("/v1/tracks/{id}", "200", 0.01);
        assert!(
            a.render()
                .contains(r#"cadenza_control_http_requests_total{route="/v1/tracks/{id}",status="200"} 1"#)
        );
        assert!(!b.render().contains("/v1/tracks/{id}"));
        assert!(b.render().contains(r#"cadenza_control_stream_urls_total{quality_kbps="320"} 0"#));
        a.ingest(IngestEvent::Claimed, 2);
        a.set_ingest_jobs(&[(JobState::Running, 3)]);
        let text = a.render();
        assert!(text.contains(r#"cadenza_control_ingest_events_total{event="claimed"} 2"#), "{text}");
        assert!(text.contains(r#"cadenza_control_ingest_events_total{event="failed"} 0"#), "{text}");
        assert!(text.contains(r#"cadenza_control_ingest_jobs{state="running"} 3"#), "{text}");
        assert!(text.contains(r#"cadenza_control_ingest_jobs{state="queued"} 0"#), "{text}");
    }
}
