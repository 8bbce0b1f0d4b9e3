//! Crash safety of the edge's disk tier, proven on a real process: drive
//! concurrent cold and warm traffic, SIGKILL the edge at a random moment,
//! restart it on the same cache directory, and check every object end to
//! end against the origin's SHA-256. Several rounds; a tight disk budget
//! and a one-slice memory tier keep slices being written, evicted and read
//! back from disk right up to each kill.
//!
//! `CADENZA_CRASH_SEED` replays a run (the seed is printed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cadenza_config::ids::FileId;
use sha2::{Digest as _, Sha256};

const ADMIN_TOKEN: &str = "crash-test-admin-token-0123";
const SLICE: usize = 1024 * 1024;
const ROUNDS: usize = 10;

mod support;

use support::{Proc as Edge, free_port};

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

struct Setup {
    dir: tempfile::TempDir,
    key: cadenza_config::token::SigningKey,
    objects: Vec<(FileId, bytes::Bytes, String)>,
}

impl Setup {
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn url(&self, port: u16, file: &FileId) -> String {
        let path = cadenza_config::layout::edge_path(file);
        let uid = "crash1".parse().unwrap();
        let query =
            cadenza_config::token::sign_query(&self.key, &path, &uid, cadenza_config::unix_now() + 3600);
        format!("http://127.0.0.1:{port}{path}?{query}")
    }
}

fn setup(rng: &mut Rng) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut objects = Vec::new();
    for _ in 0..24 {
        let len = SLICE / 2 + rng.below(6 * SLICE as u64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let file = FileId::of_content(&bytes);
        let object = d.join("store").join(cadenza_config::layout::audio_key(&file));
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::write(&object, &bytes).unwrap();
        let sha = hex::encode(Sha256::digest(&bytes));
        objects.push((file, bytes::Bytes::from(bytes), sha));
    }
    let key = cadenza_config::token::SigningKey::new("k1".parse().unwrap(), vec![5; 32]).unwrap();
    let keys =
        cadenza_config::service::KeyFile { keys: vec![cadenza_config::service::KeySpec::from_key(&key)] };
    std::fs::write(d.join("keys.toml"), keys.to_toml()).unwrap();
    Setup { dir, key, objects }
}

/// Start `cadenza edge` on the cache directory; (process, public port,
/// admin port).
fn spawn(s: &Setup) -> (Edge, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let d = s.dir.path();
    let mut args = vec!["edge".to_owned()];
    for kv in [
        format!("listen=127.0.0.1:{port}"),
        format!("admin.listen=127.0.0.1:{admin}"),
        format!("admin.token={ADMIN_TOKEN}"),
        format!("origin.url=file://{}", d.join("store").display()),
        format!("signing.keys_file={}", d.join("keys.toml").display()),
        format!("cache.slice={SLICE}B"),
        format!("cache.memory={SLICE}B"),
        format!("disk.path={}", s.cache().display()),
        // About a third of the objects' slices: constant eviction.
        "disk.max_size=24MiB".to_owned(),
    ] {
        args.extend(["--set".to_owned(), kv]);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_cadenza"))
        .args(&args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("the binary runs");
    (Edge(child), port, admin)
}

async fn stats(client: &reqwest::Client, admin: u16) -> Option<serde_json::Value> {
    let resp = client
        .get(format!("http://127.0.0.1:{admin}/admin/stats"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

/// Wait (bounded) until the edge answers and its disk index is rebuilt.
async fn wait_ready(client: &reqwest::Client, admin: u16) -> serde_json::Value {
    for _ in 0..400 {
        if let Some(s) = stats(client, admin).await
            && s["disk"]["index_ready"] == true
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the edge never came up with its disk index rebuilt");
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(temp_files(&path));
        } else if entry.file_name().to_string_lossy().starts_with(".tmp.") {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn sigkill_at_random_moments_never_leaves_a_wrong_byte_or_a_temp_file() {
    cadenza_origin::install_crypto_provider();
    let seed = std::env::var("CADENZA_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("CADENZA_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let s = Arc::new(setup(&mut rng));
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap();
    let mut disk_hits = 0u64;
    let mut served_during_traffic = 0u64;
    let mut cut_short = 0usize;

    for round in 0..ROUNDS {
        let (mut edge, port, admin) = spawn(&s);
        let ready = wait_ready(&client, admin).await;
        // Recovery is complete: nothing half-written is left.
        let leftover = temp_files(&s.cache());
        assert!(leftover.is_empty(), "round {round}: temp files after recovery: {leftover:?}");

        // After each restart, every object end to end against the origin.
        if round > 0 {
            assert!(ready["disk"]["indexed_at_start"].as_u64().unwrap() > 0, "round {round}: {ready}");
            for (file, _, sha) in &s.objects {
                let resp = client.get(s.url(port, file)).send().await.unwrap();
                assert_eq!(resp.status(), 200, "round {round}");
                let body = resp.bytes().await.unwrap();
                assert_eq!(&hex::encode(Sha256::digest(&body)), sha, "round {round}: object {file}");
            }
            let after = stats(&client, admin).await.unwrap();
            disk_hits += after["hit_ratio"]["1m"]["disk_hits"].as_u64().unwrap_or(0);
        }

        // Concurrent traffic: whole objects and random ranges, cold and warm;
        // every response that completes is checked byte for byte.
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for w in 0..12u64 {
            let (s, client, stop, served) = (s.clone(), client.clone(), stop.clone(), served.clone());
            let mut rng = Rng(seed ^ (round as u64 + 1) << 32 ^ (w + 1));
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let (file, bytes, _) = &s.objects[rng.below(s.objects.len() as u64) as usize];
                    let len = bytes.len() as u64;
                    let (start, end) = match rng.below(3) {
                        0 => (0, len - 1),
                        _ => {
                            let a = rng.below(len);
                            (a, (a + rng.below(3 * SLICE as u64)).min(len - 1))
                        }
                    };
                    let Ok(resp) = client
                        .get(s.url(port, file))
                        .header("range", format!("bytes={start}-{end}"))
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let status = resp.status().as_u16();
                    let Ok(body) = resp.bytes().await else { continue };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    assert!(status == 206 || status == 200, "status {status}");
                    assert_eq!(
                        &body[..],
                        &bytes[start as usize..=end as usize],
                        "bytes {start}-{end} of {file}"
                    );
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(150 + rng.below(900))).await;
        // SIGKILL: no chance to finish a write or clean up.
        edge.0.kill().unwrap();
        edge.0.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.unwrap();
        }
        // Writes the kill cut short (the next start must sweep them).
        cut_short += temp_files(&s.cache()).len();
        let n = served.load(Ordering::Relaxed);
        assert!(n > 0, "round {round}: no request completed before the kill");
        served_during_traffic += n;
    }

    // One last start: recovered, complete, and clean.
    let (_edge, port, admin) = spawn(&s);
    wait_ready(&client, admin).await;
    assert!(temp_files(&s.cache()).is_empty());
    for (file, _, sha) in &s.objects {
        let body = client.get(s.url(port, file)).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(&hex::encode(Sha256::digest(&body)), sha, "final check: object {file}");
    }
    assert!(disk_hits > 0, "the checks after restarts read from disk");
    eprintln!(
        "{ROUNDS} SIGKILLs, {served_during_traffic} responses checked during traffic, {cut_short} writes cut short and swept, {disk_hits} slices read back from disk after restarts: no mismatch"
    );
}
