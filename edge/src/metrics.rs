//! The edge's Prometheus metrics, one registry per edge instance (several
//! edges can share a process, as in `cadenza dev`).

use prometheus::{Encoder as _, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// By method and status code.
    pub(crate) requests: IntCounterVec,
    /// By reason code (`token_expired`, …).
    pub(crate) token_rejections: IntCounterVec,
    /// Slice lookups by result (`hit`, `miss`, `coalesced`), resolved once so
    /// the hit path does no label lookup.
    pub(crate) slice_hits: IntCounter,
    pub(crate) slice_misses: IntCounter,
    pub(crate) slice_coalesced: IntCounter,
    /// Upstream requests by kind (`head`, `range`) and result.
    pub(crate) origin_requests: IntCounterVec,
    pub(crate) origin_bytes: IntCounter,
    pub(crate) response_bytes: IntCounter,
    pub(crate) memory_bytes: IntGauge,
    pub(crate) memory_entries: IntGauge,
}

impl Metrics {
    pub(crate) fn new(edge: &str) -> Self {
        let registry = Registry::new_custom(None, Some([("edge".to_owned(), edge.to_owned())].into()))
            .expect("valid registry labels");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("metric registered once");
            g
        };
        let slices = counter_vec(
            "cadenza_edge_slice_lookups_total",
            "Slice lookups by result (hit, miss, coalesced).",
            &["result"],
        );
        let m = Self {
            requests: counter_vec(
                "cadenza_edge_requests_total",
                "Audio requests answered, by method and status.",
                &["method", "status"],
            ),
            token_rejections: counter_vec(
                "cadenza_edge_token_rejections_total",
                "Requests refused for their URL token, by reason.",
                &["reason"],
            ),
            slice_hits: slices.with_label_values(&["hit"]),
            slice_misses: slices.with_label_values(&["miss"]),
            slice_coalesced: slices.with_label_values(&["coalesced"]),
            origin_requests: counter_vec(
                "cadenza_edge_origin_requests_total",
                "Upstream requests by kind and result.",
                &["kind", "result"],
            ),
            origin_bytes: counter("cadenza_edge_origin_bytes_total", "Bytes fetched from upstream."),
            response_bytes: counter(
                "cadenza_edge_response_body_bytes_total",
                "Audio bytes queued to clients.",
            ),
            memory_bytes: gauge("cadenza_edge_cache_memory_bytes", "Bytes held by the memory tier."),
            memory_entries: gauge("cadenza_edge_cache_memory_entries", "Slices held by the memory tier."),
            registry,
        };
        for reason in cadenza_config::token::TokenError::REASONS {
            m.token_rejections.with_label_values(&[reason]);
        }
        m
    }

    /// Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding to a Vec cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
