//! `cadenza-hitratio`: replay a Zipf trace through the edge's real memory
//! tier ([`cadenza_edge::tier::MemoryTier`]) and compare its hit ratio with
//! Bélády's optimum (MIN) for the same trace and cache size, and with plain
//! LRU for reference. Prints a markdown table.
//!
//! The replay drives the tier the way the edge does: `get` on every slice
//! lookup, and on a miss an `insert` of the filled slice, one request at a
//! time. It never calls `run_pending_tasks` while replaying, because the
//! edge calls it only when `/metrics` is scraped: whatever bookkeeping a
//! policy defers is settled as it would be in production, by the policy
//! itself. (The tier's W-TinyLFU defers nothing; moka, with `--moka`, drains
//! its logs inside `get`/`insert` every 64 operations or 300 ms.)
//!
//! Bélády's MIN is computed with bypass (a miss need not be kept), the true
//! offline optimum for a cache that may decline, as the tier may; slices
//! are all one size, so the optimum by count is the optimum by bytes.
//!
//! Usage: `loadtest/hit-ratio.sh` (release build, defaults), or
//! `cadenza-hitratio --help`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cadenza_config::ids::FileId;
use cadenza_edge::tier::{MemoryTier, SliceKey};
use clap::Parser;

mod policies;
mod trace;

#[derive(Debug, Parser)]
#[command(
    name = "cadenza-hitratio",
    about = "Memory-tier hit ratio against Bélády's optimum on a Zipf trace"
)]
struct Args {
    /// Requests in each trace.
    #[arg(long, default_value_t = 10_000_000)]
    requests: usize,
    /// Distinct slices in each trace.
    #[arg(long, default_value_t = 1_000_000)]
    distinct: usize,
    /// Zipf exponents, one trace each.
    #[arg(long, value_delimiter = ',', default_value = "0.8,1.0")]
    alphas: Vec<f64>,
    /// Cache sizes as fractions of the distinct slices.
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.01,0.1")]
    sizes: Vec<f64>,
    /// Seed of the trace generator (the same seed gives the same trace).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Popularity shifts: the trace is cut into this many parts, each with a
    /// new random popularity order (1: one static popularity).
    #[arg(long, default_value_t = 1)]
    phases: usize,
    /// Bytes per slice (the edge's `cache.slice`); every slice weighs this.
    #[arg(long, default_value_t = 256 * 1024)]
    slice_bytes: usize,
    /// Slices per object, for building keys the way the edge does
    /// (file id, slice index).
    #[arg(long, default_value_t = 16)]
    slices_per_object: usize,
    /// Also replay through moka's default cache (TinyLFU, weighted by bytes:
    /// the tier's first implementation), for comparison.
    #[arg(long)]
    moka: bool,
    /// Also measure get/insert throughput (1 and 2 threads) on the first
    /// alpha at the middle size.
    #[arg(long)]
    throughput: bool,
    /// Instead of the memory-tier table: a disk tier of this fraction of
    /// the distinct slices behind the memory tier at each of `--sizes`, fed
    /// as the edge feeds it (a memory miss looks on disk; a disk miss is
    /// fetched and written to disk; a disk hit goes to memory), with the
    /// edge's W-TinyLFU and with LRU as the disk policy.
    #[arg(long)]
    disk: Option<f64>,
}

/// What the replay needs from a cache: the edge's two calls.
trait Cache: Sync {
    fn get(&self, key: &SliceKey) -> bool;
    fn insert(&self, key: SliceKey, bytes: Bytes);
}

impl Cache for MemoryTier {
    fn get(&self, key: &SliceKey) -> bool {
        MemoryTier::get(self, key).is_some()
    }
    fn insert(&self, key: SliceKey, bytes: Bytes) {
        MemoryTier::insert(self, key, bytes);
    }
}

/// moka as the tier first configured it.
fn moka_cache(capacity: u64) -> moka::sync::Cache<SliceKey, Bytes> {
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .weigher(|_k: &SliceKey, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .build()
}

impl Cache for moka::sync::Cache<SliceKey, Bytes> {
    fn get(&self, key: &SliceKey) -> bool {
        moka::sync::Cache::get(self, key).is_some()
    }
    fn insert(&self, key: SliceKey, bytes: Bytes) {
        moka::sync::Cache::insert(self, key, bytes);
    }
}

/// Replay `trace` (every `step`-th request from `start`): get, and insert on
/// a miss. Returns (hits, misses).
fn replay(
    cache: &impl Cache,
    trace: &[u32],
    keys: &[SliceKey],
    slice: &Bytes,
    start: usize,
    step: usize,
) -> (u64, u64) {
    let (mut hits, mut misses) = (0, 0);
    for &id in trace.iter().skip(start).step_by(step) {
        let key = &keys[id as usize];
        if cache.get(key) {
            hits += 1;
        } else {
            misses += 1;
            cache.insert(*key, slice.clone());
        }
    }
    (hits, misses)
}

/// Keys as the edge builds them: object `id / per_object`, slice
/// `id % per_object`, the object's id a content hash.
fn slice_keys(distinct: usize, per_object: usize) -> Vec<SliceKey> {
    let per_object = per_object.max(1);
    let mut keys = Vec::with_capacity(distinct);
    let mut file = FileId::of_content(&0u64.to_le_bytes());
    for id in 0..distinct {
        let (object, index) = (id / per_object, id % per_object);
        if index == 0 {
            file = FileId::of_content(&(object as u64).to_le_bytes());
        }
        keys.push(SliceKey { file, index: index as u64 });
    }
    keys
}

fn ratio(hits: u64, requests: usize) -> f64 {
    hits as f64 / requests as f64
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

fn of_optimum(hits: u64, optimum: u64) -> String {
    if optimum == 0 { "—".to_owned() } else { format!("{:.1} %", hits as f64 / optimum as f64 * 100.0) }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{b} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

fn throughput(
    name: &str,
    make: &dyn Fn() -> Box<dyn Cache>,
    trace: &[u32],
    keys: &[SliceKey],
    slice: &Bytes,
    out: &mut String,
) {
    for threads in [1usize, 2] {
        let cache = make();
        let cache = &*cache;
        let started = Instant::now();
        let totals: Vec<(u64, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| s.spawn(move || replay(&Wrapper(cache), trace, keys, slice, t, threads)))
                .collect();
            handles.into_iter().map(|h| h.join().expect("replay thread panicked")).collect()
        });
        let elapsed = started.elapsed();
        let (hits, misses) = totals.iter().fold((0, 0), |(h, m), &(a, b)| (h + a, m + b));
        let requests = hits + misses;
        let ops = requests + misses;
        let secs = elapsed.as_secs_f64();
        let _ = writeln!(
            out,
            "| {name} | {threads} | {:.2} M/s | {:.2} M/s | {} | {} |",
            requests as f64 / secs / 1e6,
            ops as f64 / secs / 1e6,
            pct(ratio(hits, requests as usize)),
            secs_str(elapsed),
        );
    }
}

fn secs_str(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Lets a `&dyn Cache` be passed where `impl Cache` is wanted.
struct Wrapper<'a>(&'a dyn Cache);

impl Cache for Wrapper<'_> {
    fn get(&self, key: &SliceKey) -> bool {
        self.0.get(key)
    }
    fn insert(&self, key: SliceKey, bytes: Bytes) {
        self.0.insert(key, bytes);
    }
}

fn main() {
    let args = Args::parse();
    assert!(args.distinct > 0 && args.requests > 0, "--distinct and --requests must be positive");
    let keys = slice_keys(args.distinct, args.slices_per_object);
    // Every slice shares one static buffer: cloning a static `Bytes` touches
    // no reference count, so threads do not contend on one shared counter
    // (each real slice has its own buffer and counter).
    let slice = Bytes::from_static(Box::leak(vec![0u8; args.slice_bytes].into_boxed_slice()));
    let slice_bytes = args.slice_bytes as u64;

    if let Some(disk) = args.disk {
        disk_table(&args, disk, &keys, &slice);
        return;
    }
    println!(
        "Zipf trace: {} requests over {} distinct slices of {}, seed {}{}; \
         the tier sees get per request and insert per miss, as the edge does.\n",
        args.requests,
        args.distinct,
        human_bytes(slice_bytes),
        args.seed,
        if args.phases > 1 {
            format!(", popularity reshuffled {} times", args.phases - 1)
        } else {
            String::new()
        },
    );
    let mut header = String::from(
        "| α | cache (% of slices) | slices | bytes | tier hit | Bélády hit | tier / Bélády | LRU hit | LRU / Bélády |",
    );
    let mut rule = String::from("|---|---|---|---|---|---|---|---|---|");
    if args.moka {
        header.push_str(" moka hit | moka / Bélády |");
        rule.push_str("---|---|");
    }
    println!("{header}\n{rule}");

    let mut bench = String::new();
    for (a, &alpha) in args.alphas.iter().enumerate() {
        let started = Instant::now();
        let trace = trace::zipf_trace(args.distinct, args.requests, alpha, args.seed, args.phases);
        let next = policies::next_uses(&trace, args.distinct);
        eprintln!("α={alpha}: trace and next uses in {}", secs_str(started.elapsed()));
        for &size in &args.sizes {
            let capacity = ((size * args.distinct as f64).round() as usize).max(1);
            let capacity_bytes = capacity as u64 * slice_bytes;

            let t = Instant::now();
            let optimum = policies::belady_hits(&trace, &next, args.distinct, capacity);
            let t_belady = t.elapsed();
            let t = Instant::now();
            let lru = policies::lru_hits(&trace, args.distinct, capacity);
            let t_lru = t.elapsed();
            let t = Instant::now();
            let tier = MemoryTier::new(capacity_bytes);
            let (tier_hits, _) = replay(&tier, &trace, &keys, &slice, 0, 1);
            let t_tier = t.elapsed();
            tier.run_pending_tasks();
            assert!(
                tier.weighted_size() <= capacity_bytes + slice_bytes,
                "tier holds {} bytes, over its {capacity_bytes}-byte budget",
                tier.weighted_size()
            );
            eprintln!(
                "α={alpha} size={size}: Bélády {}, LRU {}, tier {} ({} slices held)",
                secs_str(t_belady),
                secs_str(t_lru),
                secs_str(t_tier),
                tier.entry_count()
            );

            let mut row = format!(
                "| {} | {} | {capacity} | {} | {} | {} | {} | {} | {} |",
                if alpha.fract() == 0.0 { format!("{alpha:.1}") } else { alpha.to_string() },
                format_args!("{:.1} %", size * 100.0),
                human_bytes(capacity_bytes),
                pct(ratio(tier_hits, args.requests)),
                pct(ratio(optimum, args.requests)),
                of_optimum(tier_hits, optimum),
                pct(ratio(lru, args.requests)),
                of_optimum(lru, optimum),
            );
            if args.moka {
                let t = Instant::now();
                let moka = moka_cache(capacity_bytes);
                let (moka_hits, _) = replay(&moka, &trace, &keys, &slice, 0, 1);
                eprintln!("α={alpha} size={size}: moka {}", secs_str(t.elapsed()));
                let _ = write!(
                    row,
                    " {} | {} |",
                    pct(ratio(moka_hits, args.requests)),
                    of_optimum(moka_hits, optimum)
                );
            }
            println!("{row}");
        }

        if args.throughput && a == 0 {
            let size = args.sizes.get(args.sizes.len() / 2).copied().unwrap_or(0.01);
            let capacity_bytes = ((size * args.distinct as f64).round() as u64).max(1) * slice_bytes;
            let _ = writeln!(
                bench,
                "\nThroughput, α = {alpha}, cache {:.1} % ({}): each request is a get, \
                 and a miss is followed by an insert; ops = gets + inserts.\n",
                size * 100.0,
                human_bytes(capacity_bytes)
            );
            bench.push_str(
                "| cache | threads | requests/s | ops/s | hit | wall |\n|---|---|---|---|---|---|\n",
            );
            throughput(
                "tier",
                &|| Box::new(MemoryTier::new(capacity_bytes)),
                &trace,
                &keys,
                &slice,
                &mut bench,
            );
            if args.moka {
                throughput(
                    "moka",
                    &|| Box::new(moka_cache(capacity_bytes)),
                    &trace,
                    &keys,
                    &slice,
                    &mut bench,
                );
            }
        }
    }
    print!("{bench}");
}

/// The two-level replay of `--disk`.
fn disk_table(args: &Args, disk: f64, keys: &[SliceKey], slice: &Bytes) {
    use cadenza_edge::disk::DiskSlot;
    use cadenza_edge::tier::Entry as _;
    use cadenza_edge::tier::Tier;
    let slice_bytes = args.slice_bytes as u64;
    let disk_slices = ((disk * args.distinct as f64).round() as usize).max(1);
    // Every slice the same size; the budget holds `disk_slices` of them,
    // headers included, as the edge weighs them.
    let slot = DiskSlot { len: slice_bytes as u32, object_len: 0 };
    let disk_bytes = disk_slices as u64 * slot.weight();
    println!(
        "| α | memory (% of slices) | disk (% of slices) | policy | memory hit | disk hit (of memory misses) | \
         either tier | Bélády at memory + disk | either / Bélády | disk writes per 100 requests |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &alpha in &args.alphas {
        let trace = trace::zipf_trace(args.distinct, args.requests, alpha, args.seed, args.phases);
        let next = policies::next_uses(&trace, args.distinct);
        for &size in &args.sizes {
            let memory_slices = ((size * args.distinct as f64).round() as usize).max(1);
            let optimum = policies::belady_hits(&trace, &next, args.distinct, memory_slices + disk_slices);
            for policy in ["W-TinyLFU", "LRU"] {
                let memory = MemoryTier::new(memory_slices as u64 * slice_bytes);
                let tiny = Tier::<DiskSlot>::new(disk_bytes);
                let mut lru = policies::Lru::new(args.distinct, disk_slices);
                let (mut mem_hits, mut disk_hits, mut writes) = (0u64, 0u64, 0u64);
                for &id in &trace {
                    let key = &keys[id as usize];
                    if memory.get(key).is_some() {
                        mem_hits += 1;
                        continue;
                    }
                    let on_disk = match policy {
                        "LRU" => lru.get(id),
                        _ => tiny.get(key).is_some(),
                    };
                    if on_disk {
                        disk_hits += 1;
                    } else {
                        writes += 1;
                        match policy {
                            "LRU" => lru.insert(id),
                            _ => drop(tiny.insert(*key, slot)),
                        }
                    }
                    drop(memory.insert(*key, slice.clone()));
                }
                let misses = args.requests as u64 - mem_hits;
                println!(
                    "| {alpha} | {:.1} % | {:.1} % | {policy} | {} | {} | {} | {} | {} | {} |",
                    size * 100.0,
                    disk * 100.0,
                    pct(ratio(mem_hits, args.requests)),
                    pct(disk_hits as f64 / misses.max(1) as f64),
                    pct(ratio(mem_hits + disk_hits, args.requests)),
                    pct(ratio(optimum, args.requests)),
                    of_optimum(mem_hits + disk_hits, optimum),
                    format_args!("{:.1}", writes as f64 * 100.0 / args.requests as f64),
                );
            }
        }
    }
}
