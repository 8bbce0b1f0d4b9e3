//! Durability of playback events, proven on a real process: concurrent
//! senders post event batches to `cadenza control` on SQLite, the process
//! is SIGKILLed at a random moment with batches in flight, restarted on
//! the same database file, and every batch it acknowledged must be there
//! (sent again, each of its events is a duplicate) with its streams
//! counted. Batches in flight at the kill are all-or-nothing. Several
//! rounds; at the end everything is sent again, and the streams per track
//! per day are exactly those of the reference model over all events.
//!
//! `CADENZA_CRASH_SEED` replays a run (the seed is printed).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cadenza_control::types::{EventBatchResponse, RoyaltiesResponse};
use serde_json::{Value, json};
use support::{Proc as Control, free_port};

const ADMIN: &str = "durability-admin-token-0123456789";
const DAY_MS: i64 = 86_400_000;
const ROUNDS: usize = 4;
const SENDERS: usize = 6;
const PLAYS: usize = 2000;
const EVENTS_PER_BATCH: usize = 25;
/// Tracks and their lengths: thresholds 30 s, 30 s, 10 s, 15 s.
const TRACKS: [(&str, i64); 4] = [("d1", 200_000), ("d2", 61_000), ("d3", 20_000), ("d4", 30_000)];

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Debug)]
struct Event {
    id: String,
    play: String,
    track: usize,
    kind: &'static str,
    position: i64,
    at: i64,
}

impl Event {
    fn json(&self) -> Value {
        json!({"event_id": self.id, "play_id": self.play, "track_id": TRACKS[self.track].0, "type": self.kind,
               "position_ms": self.position, "occurred_at_ms": self.at})
    }
}

fn utc_day(ms: i64) -> String {
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Streams per (track, day) of a set of events: a play streams once its
/// listened position (seeks aside) reaches min(30 s, half the track), on
/// the day of its earliest event at or past that.
fn model<'a>(events: impl Iterator<Item = &'a Event>) -> BTreeMap<(String, String), u64> {
    let mut streamed: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
    for e in events {
        let threshold = 30_000.min((TRACKS[e.track].1 + 1) / 2);
        if e.kind != "seek" && e.position >= threshold {
            let entry = streamed.entry(e.play.as_str()).or_insert((e.track, e.at));
            entry.1 = entry.1.min(e.at);
        }
    }
    let mut out = BTreeMap::new();
    for (track, at) in streamed.values() {
        *out.entry((TRACKS[*track].0.to_owned(), utc_day(*at))).or_insert(0) += 1;
    }
    out
}

/// Plays of a few events each (some straddling a midnight, some never
/// reaching the threshold), shuffled and cut into batches.
fn batches(rng: &mut Rng, now: i64) -> Vec<Vec<Event>> {
    let kinds = ["start", "progress", "pause", "seek", "skip", "complete"];
    let mut events = Vec::new();
    for p in 0..PLAYS {
        let track = rng.below(TRACKS.len() as u64) as usize;
        let midnight = (now.div_euclid(DAY_MS) - 1 - rng.below(5) as i64) * DAY_MS;
        let base = midnight - 90_000 + rng.below(120_000) as i64;
        for j in 0..1 + rng.below(5) {
            events.push(Event {
                id: format!("e{p}-{j}"),
                play: format!("p{p}"),
                track,
                kind: kinds[rng.below(kinds.len() as u64) as usize],
                position: rng.below(TRACKS[track].1 as u64 + 1) as i64,
                at: base + rng.below(180_000) as i64,
            });
        }
    }
    for i in (1..events.len()).rev() {
        events.swap(i, rng.below(i as u64 + 1) as usize);
    }
    events.chunks(EVENTS_PER_BATCH).map(<[Event]>::to_vec).collect()
}

/// This test's own link to the binary: a build running alongside (a
/// shared target directory) may replace `target/…/cadenza` between a kill
/// and the restart, and the restart must run the same program.
fn binary(dir: &Path) -> std::path::PathBuf {
    let mine = dir.join("cadenza");
    if !mine.exists() && std::fs::hard_link(env!("CARGO_BIN_EXE_cadenza"), &mine).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_cadenza"), &mine).unwrap();
    }
    mine
}

fn spawn(dir: &Path, port: u16) -> Control {
    let mut args = vec!["control".to_owned()];
    for kv in [
        format!("listen=127.0.0.1:{port}"),
        format!("admin_token={ADMIN}"),
        format!("database.url=sqlite://{}", dir.join("control.db").display()),
        format!("signing.keys_file={}", dir.join("keys.toml").display()),
        "rate_limits.enabled=false".to_owned(),
        "database.max_connections=8".to_owned(),
    ] {
        args.extend(["--set".to_owned(), kv]);
    }
    // Every run's stderr, appended: checked for panics at the end.
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("control.stderr")).unwrap();
    let child = Command::new(binary(dir))
        .args(&args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the binary runs");
    Control(child)
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cadenza control never became ready");
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    batch: &[Event],
) -> Option<EventBatchResponse> {
    let body = json!({"events": batch.iter().map(Event::json).collect::<Vec<_>>()});
    let resp = client.post(format!("{base}/v1/events")).bearer_auth(token).json(&body).send().await.ok()?;
    if resp.status() != 200 {
        // A process being killed answers nothing; any answer must be a 200.
        panic!("POST /v1/events: {}", resp.status());
    }
    resp.json().await.ok()
}

async fn royalties(client: &reqwest::Client, base: &str, now: i64) -> BTreeMap<(String, String), u64> {
    let (from, to) = (utc_day(now - 10 * DAY_MS), utc_day(now));
    let url = format!("{base}/v1/admin/royalties?from={from}&to={to}&limit=1000");
    let r: RoyaltiesResponse = client.get(url).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
    assert!(r.streams.next.is_none(), "one page holds the test's counts");
    r.streams.items.into_iter().map(|i| ((i.track_id, i.day), i.streams)).collect()
}

#[tokio::test]
async fn acknowledged_events_survive_sigkill() {
    cadenza_origin::install_crypto_provider();
    let seed = std::env::var("CADENZA_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("CADENZA_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let key = cadenza_config::token::SigningKey::generate("k1".parse().unwrap());
    let keys =
        cadenza_config::service::KeyFile { keys: vec![cadenza_config::service::KeySpec::from_key(&key)] };
    std::fs::write(dir.path().join("keys.toml"), keys.to_toml()).unwrap();
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let all = Arc::new(batches(&mut rng, now));

    // The catalog and the listener, once.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut control = spawn(dir.path(), port);
    wait_ready(&client, &base).await;
    let tracks: Vec<Value> = TRACKS
        .iter()
        .enumerate()
        .map(|(i, (id, ms))| {
            json!({"id": id, "album_id": "dal", "title": format!("Durable {i}"),
            "track_number": i + 1, "artist_ids": ["dar"], "duration_ms": ms})
        })
        .collect();
    let import = json!({"artists": [{"id": "dar", "name": "Durable"}],
        "albums": [{"id": "dal", "title": "Durable", "album_type": "album", "artist_ids": ["dar"]}],
        "tracks": tracks});
    let resp =
        client.post(format!("{base}/v1/admin/import")).bearer_auth(ADMIN).json(&import).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let user = json!({"display_name": "Durable", "tier": "premium", "country": "SE"});
    let resp =
        client.post(format!("{base}/v1/admin/users")).bearer_auth(ADMIN).json(&user).send().await.unwrap();
    let token = resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();

    let mut acked: BTreeSet<usize> = BTreeSet::new();
    let mut next = 0;
    let per_round = all.len() / ROUNDS + 1;
    for round in 0..ROUNDS {
        if round > 0 {
            control = spawn(dir.path(), port);
            wait_ready(&client, &base).await;
            // Every acknowledged batch is there, whole: sent again, all
            // duplicates. And its streams are counted (a lower bound: a
            // batch in flight at the kill may have committed too).
            for &b in &acked {
                let r = post(&client, &base, &token, &all[b]).await.expect("answer after restart");
                assert_eq!(
                    (r.accepted, r.duplicates),
                    (0, all[b].len() as u64),
                    "round {round}: batch {b} lost"
                );
            }
            let counted: u64 = royalties(&client, &base, now).await.values().sum();
            let floor: u64 = model(acked.iter().flat_map(|b| &all[*b])).values().sum();
            assert!(counted >= floor, "round {round}: {counted} streams counted, {floor} acknowledged");
        }
        // Concurrent senders on this round's batches; SIGKILL after a
        // random number of acknowledgements, with requests in flight.
        let end = (next + per_round).min(all.len());
        let queue: Arc<std::sync::Mutex<Vec<usize>>> =
            Arc::new(std::sync::Mutex::new((next..end).rev().collect()));
        let done = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            let (client, base, token, all, queue, done) =
                (client.clone(), base.clone(), token.clone(), all.clone(), queue.clone(), done.clone());
            senders.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let Some(b) = queue.lock().unwrap().pop() else { break };
                    match post(&client, &base, &token, &all[b]).await {
                        Some(r) => {
                            assert_eq!(r.accepted, all[b].len() as u64, "batch {b}: a fresh batch");
                            mine.push(b);
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        None => break,
                    }
                }
                mine
            }));
        }
        let kill_after = 1 + rng.below((end - next) as u64 * 3 / 4) as usize;
        while done.load(Ordering::SeqCst) < kill_after {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        control.0.kill().unwrap(); // SIGKILL
        control.0.wait().unwrap();
        for s in senders {
            acked.extend(s.await.unwrap());
        }
        eprintln!("round {round}: killed after {} acknowledged batches", done.load(Ordering::SeqCst));
        next = end;
    }

    // The last restart: everything not acknowledged is sent again; a batch
    // the kill caught in flight committed whole or not at all.
    let _control = spawn(dir.path(), port);
    wait_ready(&client, &base).await;
    let mut caught = 0;
    for (b, batch) in all.iter().enumerate() {
        let r = post(&client, &base, &token, batch).await.expect("answer");
        let n = batch.len() as u64;
        if acked.contains(&b) {
            assert_eq!((r.accepted, r.duplicates), (0, n), "batch {b} lost");
        } else {
            assert!(r.accepted == 0 || r.accepted == n, "batch {b} half committed: {r:?}");
            assert_eq!(r.accepted + r.duplicates, n);
            caught += usize::from(r.accepted == 0);
        }
    }
    eprintln!(
        "{} batches acknowledged before the kills, {caught} more committed unacknowledged",
        acked.len()
    );
    let counted = royalties(&client, &base, now).await;
    let expected = model(all.iter().flatten());
    assert_eq!(counted, expected, "streams per track per day");
    assert!(expected.values().sum::<u64>() > 100, "the test counts something: {expected:?}");
    // No task of any run panicked (a background task's panic answers no
    // request, so only its log shows it).
    let stderr = std::fs::read_to_string(dir.path().join("control.stderr")).unwrap();
    assert!(!stderr.contains("panicked"), "cadenza control panicked:\n{stderr}");
}
