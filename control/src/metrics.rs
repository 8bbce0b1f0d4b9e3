//! Prometheus metrics, on a registry per server instance (tests run several
//! servers in one process, so the global default registry is never used).
//!
//! Labels are low-cardinality: `route` is the matched route template
//! (`/v1/tracks/{id}`), never the raw path.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

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
}

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
        for c in [&http_requests, &stream_answers] {
            registry.register(Box::new(c.clone())).expect("unique metric");
        }
        registry.register(Box::new(http_duration.clone())).expect("unique metric");
        for rung in cadenza_config::ladder::LADDER {
            stream_answers.with_label_values(&[rung.kbps().to_string()]);
        }
        Self { registry, http_requests, http_duration, stream_answers }
    }

    pub(crate) fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        self.http_requests.with_label_values(&[route, status.to_string().as_str()]).inc();
        self.http_duration.with_label_values(&[route]).observe(seconds);
    }

    pub(crate) fn stream_answer(&self, kbps: u32) {
        self.stream_answers.with_label_values(&[kbps.to_string()]).inc();
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
        a.observe_request("/v1/tracks/{id}", 200, 0.01);
        assert!(
            a.render()
                .contains(r#"cadenza_control_http_requests_total{route="/v1/tracks/{id}",status="200"} 1"#)
        );
        assert!(!b.render().contains("/v1/tracks/{id}"));
        assert!(b.render().contains(r#"cadenza_control_stream_urls_total{quality_kbps="320"} 0"#));
    }
}
