//! The edge's Prometheus metrics, one registry per edge instance (several
//! edges can share a process, as in `cadenza dev`).

use prometheus::{
    Encoder as _, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// By method, status code and cache result of the first slice.
    pub(crate) requests: IntCounterVec,
    /// By reason code (`token_expired`, …).
    pub(crate) token_rejections: IntCounterVec,
    /// By reason code (`path_dot_segment`, …).
    pub(crate) path_rejections: IntCounterVec,
    /// Slice lookups by result (`hit`, `miss`, `coalesced`), resolved once so
    /// the hit path does no label lookup.
    pub(crate) slice_hits: IntCounter,
    pub(crate) slice_misses: IntCounter,
    pub(crate) slice_coalesced: IntCounter,
    /// Upstream requests by kind (`head`, `range`) and result.
    pub(crate) origin_requests: IntCounterVec,
    /// Upstream request duration (body included) by kind.
    pub(crate) origin_duration: HistogramVec,
    /// Time from sending a slice request to its first body byte.
    pub(crate) origin_first_byte: Histogram,
    pub(crate) origin_bytes: IntCounter,
    pub(crate) response_bytes: IntCounter,
    pub(crate) fills_in_flight: IntGauge,
    /// Public-listener requests whose response is not fully sent yet.
    pub(crate) requests_in_flight: IntGauge,
    /// 404s answered from the negative cache.
    pub(crate) negative_hits: IntCounter,
    pub(crate) memory_bytes: IntGauge,
    pub(crate) memory_entries: IntGauge,
    pub(crate) memory_evictions: IntCounter,
    /// Slices read from the disk tier (memory missed, disk verified).
    pub(crate) slice_disk_hits: IntCounter,
    pub(crate) disk_reads: IntCounterVec,
    pub(crate) disk_writes: IntCounterVec,
    pub(crate) disk_blocking_reads: IntCounter,
    pub(crate) disk_evictions: IntCounter,
    pub(crate) disk_bytes: IntGauge,
    pub(crate) disk_entries: IntGauge,
    pub(crate) disk_capacity: IntGauge,
    pub(crate) disk_degraded: IntGauge,
    pub(crate) disk_degradations: IntCounter,
    pub(crate) disk_index_ready: IntGauge,
    pub(crate) disk_rebuild_seconds: Gauge,
    /// 1 for each key id in the ring, as of the last (re)load.
    signing_keys: IntGaugeVec,
    /// Key ring reloads by result (`ok`, `error`).
    pub(crate) signing_reloads: IntCounterVec,
}

/// Upstream latency buckets, seconds: 1 ms to 10 s.
const ORIGIN_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

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
        let histogram_vec = |name: &str, help: &str, labels: &[&str]| {
            let h =
                HistogramVec::new(HistogramOpts::new(name, help).buckets(ORIGIN_BUCKETS.to_vec()), labels)
                    .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("metric registered once");
            h
        };
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(ORIGIN_BUCKETS.to_vec()))
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("metric registered once");
            h
        };
        let slices = counter_vec(
            "cadenza_edge_slice_lookups_total",
            "Slice lookups by result (hit: memory, disk: verified from the disk tier, also when joining a fill that reads it, miss: fetched upstream, coalesced: joined a running fill from upstream).",
            &["result"],
        );
        let m = Self {
            requests: counter_vec(
                "cadenza_edge_requests_total",
                "Audio requests answered, by method, status and cache result of the first slice.",
                &["method", "status", "cache"],
            ),
            token_rejections: counter_vec(
                "cadenza_edge_token_rejections_total",
                "Requests refused for their URL token, by reason.",
                &["reason"],
            ),
            path_rejections: counter_vec(
                "cadenza_edge_path_rejections_total",
                "Requests refused for their path, by reason.",
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
            origin_duration: histogram_vec(
                "cadenza_edge_origin_duration_seconds",
                "Upstream request duration, body and queueing included, by kind.",
                &["kind"],
            ),
            origin_first_byte: histogram(
                "cadenza_edge_origin_first_byte_seconds",
                "Time from asking upstream for a slice to its first body byte.",
            ),
            origin_bytes: counter("cadenza_edge_origin_bytes_total", "Bytes fetched from upstream."),
            response_bytes: counter(
                "cadenza_edge_response_body_bytes_total",
                "Audio bytes queued to clients.",
            ),
            fills_in_flight: gauge("cadenza_edge_fills_in_flight", "Slice fills running now."),
            requests_in_flight: gauge(
                "cadenza_edge_requests_in_flight",
                "Requests on the public listener whose response is not fully sent.",
            ),
            negative_hits: counter(
                "cadenza_edge_not_found_cached_total",
                "404s answered from the remembered-missing list without asking upstream.",
            ),
            memory_evictions: counter(
                "cadenza_edge_cache_memory_evictions_total",
                "Slices evicted from the memory tier to stay within its budget.",
            ),
            memory_bytes: gauge("cadenza_edge_cache_memory_bytes", "Bytes held by the memory tier."),
            memory_entries: gauge("cadenza_edge_cache_memory_entries", "Slices held by the memory tier."),
            slice_disk_hits: slices.with_label_values(&["disk"]),
            disk_reads: counter_vec(
                "cadenza_edge_disk_reads_total",
                "Disk tier reads by result (hit, missing, corrupt: failed verification and deleted, error).",
                &["result"],
            ),
            disk_blocking_reads: counter(
                "cadenza_edge_disk_blocking_reads_total",
                "Disk tier reads not answered from the page cache, done on the blocking thread pool.",
            ),
            disk_writes: counter_vec(
                "cadenza_edge_disk_writes_total",
                "Slice writes to the disk tier by result (ok, busy: all write slots taken, degraded, purged, error).",
                &["result"],
            ),
            disk_evictions: counter(
                "cadenza_edge_cache_disk_evictions_total",
                "Slices deleted from the disk tier to stay within its budget.",
            ),
            disk_bytes: gauge(
                "cadenza_edge_cache_disk_bytes",
                "Bytes held by the disk tier (headers included).",
            ),
            disk_entries: gauge("cadenza_edge_cache_disk_entries", "Slices held by the disk tier."),
            disk_capacity: gauge("cadenza_edge_cache_disk_capacity_bytes", "The disk tier's budget."),
            disk_degraded: gauge(
                "cadenza_edge_disk_degraded",
                "1 while the disk tier is degraded (a write failed; no writes until a probe succeeds).",
            ),
            disk_degradations: counter(
                "cadenza_edge_disk_degradations_total",
                "Times the disk tier became degraded.",
            ),
            disk_index_ready: gauge(
                "cadenza_edge_disk_index_ready",
                "1 once the start-up walk has indexed every slice file.",
            ),
            disk_rebuild_seconds: {
                let g = Gauge::new(
                    "cadenza_edge_disk_index_rebuild_seconds",
                    "How long the start-up walk of the disk tier took.",
                )
                .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("metric registered once");
                g
            },
            signing_keys: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "cadenza_edge_signing_key",
                        "1 for each key id in the signing key ring (the URLs this edge accepts), as of the last reload.",
                    ),
                    &["kid"],
                )
                .expect("valid metric");
                registry.register(Box::new(g.clone())).expect("metric registered once");
                g
            },
            signing_reloads: counter_vec(
                "cadenza_edge_signing_reloads_total",
                "Signing key ring reloads (SIGHUP, POST /admin/keys/reload) by result; on error the ring in use stays.",
                &["result"],
            ),
            registry,
        };
        for result in ["ok", "error"] {
            m.signing_reloads.with_label_values(&[result]);
        }
        for reason in cadenza_config::token::TokenError::REASONS {
            m.token_rejections.with_label_values(&[reason]);
        }
        for reason in cadenza_config::layout::PathError::ALL {
            m.path_rejections.with_label_values(&[reason.reason()]);
        }
        m
    }

    /// Show `ring`'s key ids in `cadenza_edge_signing_key`, and no others.
    pub(crate) fn set_signing_keys(&self, ring: &cadenza_config::live::RingSummary) {
        self.signing_keys.reset();
        for kid in &ring.keys {
            self.signing_keys.with_label_values(&[kid.as_str()]).set(1);
        }
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
