//! `cadenza-collapse`: request collapsing, measured from outside.
//!
//! Starts a slow origin of its own (see `origin.rs`), starts `cadenza edge`
//! over it, and for each scenario fires N concurrent GETs for one uncached
//! object through the edge — all connections opened first, all requests
//! released at once — then reports:
//!
//! - origin GETs per byte range (one range per slice: it must be 1) and HEADs;
//! - statuses, `X-Cache` values, and whether every body was byte-exact;
//! - per request, (instant the client got its first body byte − instant the
//!   origin sent that byte), min/p50/p99/max in ms: how long waiters wait
//!   behind the one fill; the same for the last byte.
//! - a baseline: the same crowd again once the object is cached, to show how
//!   long answering N requests at once takes on this machine at all.
//!
//! Exit status: 0 when every body is right and every slice cost the origin
//! one request; 1 otherwise (the first-byte spread is reported, not judged).
//! Wrapper: `loadtest/collapse.sh`.

mod client;
mod edge;
mod origin;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use cadenza_config::ids::FileId;
use cadenza_config::layout::audio_key;
use cadenza_config::units::{ByteSize, HumanDuration};
use clap::{Parser, ValueEnum};
use http::{Method, StatusCode};

use crate::client::{Ask, Outcome};
use crate::edge::{Edge, EdgeSpec};
use crate::origin::{Event, Origin, Pace};

#[derive(Debug, Parser)]
#[command(
    name = "cadenza-collapse",
    about = "N concurrent requests for one uncached object through a cadenza edge"
)]
struct Cli {
    /// The `cadenza` binary to run the edge with.
    #[arg(long)]
    cadenza: PathBuf,
    /// Concurrent requests per scenario (one connection each).
    #[arg(short = 'n', long, default_value_t = 1000)]
    requests: usize,
    /// Scenarios to run, each on a fresh (uncached) object.
    #[arg(long, value_delimiter = ',', default_value = "range,whole")]
    scenarios: Vec<Scenario>,
    /// Size of each test object.
    #[arg(long, default_value = "8MiB")]
    object_size: ByteSize,
    /// First byte of the range scenario's `Range`.
    #[arg(long, default_value = "0")]
    range_start: ByteSize,
    /// Length of the range scenario's `Range`.
    #[arg(long, default_value = "64KiB")]
    range_len: ByteSize,
    /// Origin: delay before each answer's headers.
    #[arg(long, default_value = "50ms")]
    ttfb: HumanDuration,
    /// Origin: body piece size.
    #[arg(long, default_value = "16KiB")]
    chunk: ByteSize,
    /// Origin: delay between body pieces.
    #[arg(long, default_value = "2ms")]
    chunk_interval: HumanDuration,
    /// Edge `cache.slice` (default: the edge's own default).
    #[arg(long)]
    slice: Option<ByteSize>,
    /// Extra edge config `key=value` (repeatable), applied last.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Connections being opened at once while the crowd gathers.
    #[arg(long, default_value_t = 256)]
    parallel_connects: usize,
    /// Deadline of each request.
    #[arg(long, default_value = "120s")]
    timeout: HumanDuration,
    /// Goal for p99 of (client got the first byte − origin sent it), reported only.
    #[arg(long, default_value = "5ms")]
    goal: HumanDuration,
    /// Skip the baseline (the same crowd again once the object is cached).
    #[arg(long)]
    no_baseline: bool,
    /// Keep the work dir (edge log, keys) and print its path.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Every request asks for the same range (`--range-start`, `--range-len`).
    Range,
    /// Every request asks for the whole object.
    Whole,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Range => "range",
            Scenario::Whole => "whole",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("collapse: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(Box::pin(run(cli))) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("collapse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Pseudo-random bytes (SplitMix64): incompressible enough, no dependency.
fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

struct Object {
    id: FileId,
    key: String,
    bytes: Bytes,
}

async fn run(cli: Cli) -> Result<bool> {
    if cli.requests == 0 {
        bail!("-n must be at least 1");
    }
    let size = usize::try_from(cli.object_size.bytes()).context("--object-size")?;
    let (range_start, range_len) = (cli.range_start.bytes(), cli.range_len.bytes());
    if cli.scenarios.contains(&Scenario::Range) && (range_len == 0 || range_start + range_len > size as u64) {
        bail!("--range-start + --range-len must lie inside --object-size");
    }
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let objects: Vec<Object> = (0..cli.scenarios.len() as u64)
        .map(|i| {
            let bytes = random_bytes(size, seed ^ (i + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            let id = FileId::of_content(&bytes);
            Object { id, key: audio_key(&id), bytes }
        })
        .collect();

    let pace = Pace {
        ttfb: cli.ttfb.get(),
        chunk: usize::try_from(cli.chunk.bytes()).context("--chunk")?,
        interval: cli.chunk_interval.get(),
    };
    let origin =
        Origin::start(objects.iter().map(|o| (o.key.clone(), o.bytes.clone())).collect(), pace).await?;

    let dir = tempfile::Builder::new().prefix("cadenza-collapse.").tempdir()?;
    let mut sets = Vec::new();
    if let Some(slice) = cli.slice {
        sets.push(format!("cache.slice={}", slice.bytes()));
    }
    sets.extend(cli.sets.iter().cloned());
    let edge =
        Edge::start(EdgeSpec { cadenza: &cli.cadenza, dir: dir.path(), origin: origin.addr(), sets: &sets })
            .await?;

    println!("# cadenza-collapse");
    println!();
    println!(
        "edge {} (admin {}), origin {}: headers after {}, body in {} pieces every {}; {} concurrent requests per scenario",
        edge.addr,
        edge.admin,
        origin.addr(),
        cli.ttfb,
        cli.chunk,
        cli.chunk_interval,
        cli.requests
    );

    let mut all_ok = true;
    for (scenario, object) in cli.scenarios.iter().zip(&objects) {
        let ok = run_scenario(&cli, *scenario, object, &edge, &origin, range_start, range_len).await;
        match ok {
            Ok(ok) => all_ok &= ok,
            Err(e) => {
                eprintln!("collapse: scenario {}: {e:#}\nedge log:\n{}", scenario.name(), edge.log_tail());
                all_ok = false;
            }
        }
    }
    drop(edge);
    if cli.keep {
        println!("\nwork dir kept: {}", dir.keep().display());
    }
    Ok(all_ok)
}

async fn run_scenario(
    cli: &Cli,
    scenario: Scenario,
    object: &Object,
    edge: &Edge,
    origin: &Origin,
    range_start: u64,
    range_len: u64,
) -> Result<bool> {
    let len = object.bytes.len() as u64;
    let (range, want_status, want) = match scenario {
        Scenario::Range => (
            Some(format!("bytes={}-{}", range_start, range_start + range_len - 1)),
            StatusCode::PARTIAL_CONTENT,
            range_start..range_start + range_len,
        ),
        Scenario::Whole => (None, StatusCode::OK, 0..len),
    };
    let ask = Ask {
        path_and_query: edge.sign(&object.id)?,
        range: range.clone(),
        want_status,
        want_body: object.bytes.slice(want.start as usize..want.end as usize),
    };
    let before = parse_metrics(&edge.metrics().await?);
    let outcomes =
        client::crowd(edge.addr, ask.clone(), cli.requests, cli.parallel_connects, cli.timeout.get()).await?;
    // A fill may still be reading the rest of its slice after the clients
    // are done (the range scenario needs only part of one): let the origin
    // finish before reading the edge's counters, which count on completion.
    origin.settle(&object.key, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = parse_metrics(&edge.metrics().await?);
    let events = origin.events_for(&object.key);
    // The same crowd again, now that the object is cached: how long this
    // machine takes to answer N requests at once with no origin involved.
    let baseline = if cli.no_baseline {
        None
    } else {
        Some(client::crowd(edge.addr, ask, cli.requests, cli.parallel_connects, cli.timeout.get()).await?)
    };

    println!();
    println!(
        "## {}: {} × GET {}{} (object {}, uncached)",
        scenario.name(),
        cli.requests,
        cadenza_config::layout::edge_path(&object.id),
        range.as_deref().map(|r| format!(", Range: {r}")).unwrap_or_default(),
        ByteSize(len)
    );
    println!();
    Ok(report(cli, &outcomes, baseline.as_deref(), &events, want, &before, &after))
}

/// Parse Prometheus text into `name{labels}` → value.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn ms(from: Instant, to: Instant) -> f64 {
    if to >= from { (to - from).as_secs_f64() * 1e3 } else { -((from - to).as_secs_f64() * 1e3) }
}

/// min / p50 / p99 / max of `values` (nearest rank).
fn spread(values: &mut [f64]) -> Option<[f64; 4]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    Some([values[0], at(0.50), at(0.99), values[values.len() - 1]])
}

/// `a ×3, b ×1`
fn tally<K: std::fmt::Display>(counts: &BTreeMap<K, usize>) -> String {
    counts.iter().map(|(k, v)| format!("{k} ×{v}")).collect::<Vec<_>>().join(", ")
}

fn fmt_spread(s: Option<[f64; 4]>) -> String {
    match s {
        Some([min, p50, p99, max]) => format!("min {min:.1}  p50 {p50:.1}  p99 {p99:.1}  max {max:.1}"),
        None => "n/a".to_owned(),
    }
}

fn report(
    cli: &Cli,
    outcomes: &[Outcome],
    baseline: Option<&[Outcome]>,
    events: &[Event],
    want: std::ops::Range<u64>,
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
) -> bool {
    let n = outcomes.len();
    // Clients.
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut caches: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes {
        *statuses.entry(o.status).or_default() += 1;
        *caches
            .entry(if o.x_cache.is_empty() { "(none)".to_owned() } else { o.x_cache.clone() })
            .or_default() += 1;
    }
    let exact = outcomes.iter().filter(|o| o.body_ok && o.error.is_none()).count();
    let errors: Vec<&str> = outcomes.iter().filter_map(|o| o.error.as_deref()).collect();
    let first_sent = outcomes.iter().map(|o| o.sent).min().expect("n > 0");
    let last_sent = outcomes.iter().map(|o| o.sent).max().expect("n > 0");

    // Origin.
    let heads = events.iter().filter(|e| e.method == Method::HEAD).count();
    let gets: Vec<&Event> = events.iter().filter(|e| e.method == Method::GET).collect();
    let mut per_range: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for e in &gets {
        if let Some(r) = &e.served {
            *per_range.entry((r.start, r.end)).or_default() += 1;
        }
    }
    let max_per_range = per_range.values().copied().max().unwrap_or(0);
    let ranges: Vec<(u64, u64)> = per_range.keys().copied().collect();
    let overlapping = ranges.windows(2).any(|w| w[1].0 < w[0].1);
    // When the origin first sent the request's first byte, and its last.
    let origin_first = gets.iter().filter_map(|e| e.sent_at(want.start)).min();
    let origin_last = gets.iter().filter_map(|e| e.sent_at(want.end - 1)).min();
    let origin_first_received = gets.iter().map(|e| e.received).min();

    let mut fb: Vec<f64> = match origin_first {
        Some(t) => outcomes.iter().filter_map(|o| o.first_byte.map(|c| ms(t, c))).collect(),
        None => Vec::new(),
    };
    let mut lb: Vec<f64> = match origin_last {
        Some(t) => outcomes.iter().filter(|o| o.body_ok).map(|o| ms(t, o.done)).collect(),
        None => Vec::new(),
    };
    let fb_spread = spread(&mut fb);
    let lb_spread = spread(&mut lb);
    let waiting_before = origin_first.map(|t| outcomes.iter().filter(|o| o.sent <= t).count());

    println!("- requests: {n} sent within {:.1} ms of each other", ms(first_sent, last_sent));
    println!("- statuses: {}; X-Cache: {}", tally(&statuses), tally(&caches));
    println!("- bodies byte-exact: {exact}/{n}");
    if !errors.is_empty() {
        let mut distinct: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &errors {
            *distinct.entry(e).or_default() += 1;
        }
        for (e, count) in distinct.iter().take(5) {
            println!("  - error ×{count}: {e}");
        }
    }
    println!(
        "- origin: HEAD ×{heads}, GET ×{} over {} distinct ranges, at most {max_per_range} per range{}",
        gets.len(),
        per_range.len(),
        if overlapping { " (ranges overlap: a retry or a re-fill)" } else { "" }
    );
    for ((a, b), count) in per_range.iter().take(8) {
        println!("  - bytes={a}-{} ×{count}", b - 1);
    }
    if per_range.len() > 8 {
        println!("  - … {} more ranges", per_range.len() - 8);
    }
    if let (Some(first_req), Some(t)) = (origin_first_received, origin_first) {
        println!(
            "- origin got its first GET {:.1} ms after the first client request and sent the requests' first byte {:.1} ms after it; {} of {n} requests were already sent by then",
            ms(first_sent, first_req),
            ms(first_sent, t),
            waiting_before.unwrap_or(0)
        );
    }
    println!("- first byte: client got it − origin sent it (ms): {}", fmt_spread(fb_spread));
    println!("- last byte:  client got it − origin sent it (ms): {}", fmt_spread(lb_spread));

    let mut deltas: Vec<(String, f64)> = after
        .iter()
        .filter(|(k, _)| k.contains("origin_requests_total") || k.contains("slice_lookups_total"))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect();
    deltas.sort_by(|a, b| a.0.cmp(&b.0));
    if !deltas.is_empty() {
        println!("- edge metrics during the scenario:");
        for (k, d) in &deltas {
            println!("  - {k} +{d}");
        }
    }

    let mut correct = exact == n && errors.is_empty();
    let mut bl_spread = None;
    if let Some(again) = baseline {
        let release = again.iter().map(|o| o.sent).min().expect("n > 0");
        let mut v: Vec<f64> = again.iter().filter_map(|o| o.first_byte.map(|t| ms(release, t))).collect();
        bl_spread = spread(&mut v);
        let mut caches: BTreeMap<String, usize> = BTreeMap::new();
        for o in again {
            *caches
                .entry(if o.x_cache.is_empty() { "(none)".to_owned() } else { o.x_cache.clone() })
                .or_default() += 1;
        }
        let good = again.iter().filter(|o| o.body_ok && o.error.is_none()).count();
        correct &= good == again.len();
        println!(
            "- baseline, the same {} requests again once cached (X-Cache: {}; {good} byte-exact): first byte − release (ms): {}",
            again.len(),
            tally(&caches),
            fmt_spread(bl_spread)
        );
    }
    let collapsed = max_per_range == 1 && !overlapping && heads <= 1;
    let goal_ms = cli.goal.get().as_secs_f64() * 1e3;
    let fast = fb_spread.is_some_and(|[_, _, p99, _]| p99 <= goal_ms);
    println!();
    println!("- correctness (every status and body right): {}", if correct { "PASS" } else { "FAIL" });
    println!(
        "- collapse (one origin request per slice, at most one HEAD): {}",
        if collapsed { "PASS" } else { "FAIL" }
    );
    println!(
        "- first byte to every waiter within {} of the origin's (p99): {}",
        HumanDuration(Duration::from_secs_f64(goal_ms / 1e3)),
        if fast { "yes" } else { "no (reported, not judged)" }
    );
    let p = |s: Option<[f64; 4]>, i: usize| s.map_or(f64::NAN, |s| s[i]);
    println!(
        "RESULT n={n} exact={exact} origin_head={heads} origin_get={} ranges={} max_per_range={max_per_range} \
         fb_min_ms={:.2} fb_p50_ms={:.2} fb_p99_ms={:.2} fb_max_ms={:.2} lb_p50_ms={:.2} lb_p99_ms={:.2} \
         baseline_p50_ms={:.2} baseline_p99_ms={:.2}",
        gets.len(),
        per_range.len(),
        p(fb_spread, 0),
        p(fb_spread, 1),
        p(fb_spread, 2),
        p(fb_spread, 3),
        p(lb_spread, 1),
        p(lb_spread, 2),
        p(bl_spread, 1),
        p(bl_spread, 2),
    );
    correct && collapsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(spread(&mut v), Some([1.0, 50.0, 99.0, 100.0]));
        assert_eq!(spread(&mut []), None);
    }

    #[test]
    fn random_bytes_differ_by_seed() {
        assert_eq!(random_bytes(1000, 1).len(), 1000);
        assert_ne!(random_bytes(64, 1), random_bytes(64, 2));
    }
}
