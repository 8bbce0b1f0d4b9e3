//! The disk tier with real files: slices come back after a restart, a
//! damaged file is never served, temp files are swept, purges and warm jobs
//! reach the disk, the budget holds, and a full filesystem degrades the
//! tier without failing a listener.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cadenza_config::ids::FileId;
use cadenza_config::service::{DiskConfig, EdgeConfig};
use cadenza_config::units::{ByteSize, HumanDuration};
use support::*;

const SLICE: u64 = 64 * 1024;

fn disk_config(store: &str, dir: &Path) -> EdgeConfig {
    let mut config = edge_config(store, ByteSize(SLICE), Duration::from_secs(5));
    config.disk = DiskConfig {
        path: dir.display().to_string(),
        max_size: ByteSize::mib(64),
        reprobe_min: HumanDuration::millis(50),
        reprobe_max: HumanDuration::millis(200),
        ..DiskConfig::default()
    };
    config
}

/// An admin API call with the admin token: GET, or POST of `body`.
async fn admin(edge: &TestEdge, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let url = format!("http://{}{path}", edge.admin);
    let req = match body {
        Some(body) => client().post(url).json(&body),
        None => client().get(url),
    };
    req.bearer_auth(ADMIN_TOKEN).send().await.unwrap().json().await.unwrap()
}

async fn stats(edge: &TestEdge) -> serde_json::Value {
    admin(edge, "/admin/stats", None).await
}

/// Wait (bounded) until the start-up walk is done and every write has
/// landed (no fill running and `want` slices on disk).
async fn wait_disk(edge: &TestEdge, want: u64) -> serde_json::Value {
    edge.settle().await;
    for _ in 0..500 {
        let s = stats(edge).await;
        if s["disk"]["index_ready"] == true && s["disk"]["entries"].as_u64() == Some(want) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("disk tier never held {want} slices: {}", stats(edge).await);
}

/// Slice files (not temp files) under the disk tier's directory.
fn slice_files(dir: &Path) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| !name(p).starts_with('.') && name(p) != "FORMAT").collect()
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| name(p).starts_with(".tmp.")).collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

async fn get(edge: &TestEdge, file: &FileId, range: Option<&str>) -> (u16, String, bytes::Bytes) {
    let mut req = client().get(edge.good_url(file));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let x_cache = resp.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, x_cache, resp.bytes().await.unwrap())
}

async fn origin_gets(edge: &TestEdge) -> u64 {
    edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\"", "result=\"ok\""]).await
}

/// A real tmpfs of its own for a test (needs root), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this machine will not let us mount one.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    /// `mount -o remount,<options>`: `ro`, `rw`, `size=64m`.
    fn remount(&self, options: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn slices_come_back_from_disk_after_a_restart_even_with_the_object_gone_upstream() {
    let store = store_with_object(5 * SLICE as usize + 1000).await;
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    let (status, x_cache, body) = get(&edge, &store.file, None).await;
    assert_eq!((status, x_cache.as_str()), (200, "MISS"));
    assert_eq!(body, store.bytes);
    let s = wait_disk(&edge, 6).await;
    // Headers: 72 bytes and a 4-byte CRC per 16 KiB block.
    assert_eq!(
        s["disk"]["bytes"],
        5 * (72 + 16) + (72 + 4) + store.bytes.len() as u64,
        "headers plus payload"
    );
    assert_eq!(slice_files(cache.path()).len(), 6);
    edge.stop().await;
    // Upstream loses the object: what is on disk is served all the same,
    // its length included.
    let object = store.dir.path().join(cadenza_config::layout::audio_key(&store.file));
    std::fs::remove_file(&object).unwrap();

    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    let s = wait_disk(&edge, 6).await;
    assert_eq!(s["disk"]["indexed_at_start"], 6);
    let (status, x_cache, body) = get(&edge, &store.file, None).await;
    assert_eq!((status, x_cache.as_str()), (200, "HIT-DISK"));
    assert_eq!(body, store.bytes);
    // A range in the middle, now from memory (a disk hit is promoted).
    let (status, x_cache, body) = get(&edge, &store.file, Some("bytes=70000-140000")).await;
    assert_eq!((status, x_cache.as_str()), (206, "HIT-MEM"));
    assert_eq!(body, store.bytes.slice(70000..140001));
    assert_eq!(origin_gets(&edge).await, 0, "nothing fetched upstream after the restart");
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"head\""]).await, 0);
    assert_eq!(edge.counter("cadenza_edge_slice_lookups_total", &["result=\"disk\""]).await, 6);
    let s = stats(&edge).await;
    assert!(s["hit_ratio"]["1m"]["disk_hits"].as_u64() == Some(6), "{s}");
    edge.stop().await;
}

#[tokio::test]
async fn a_damaged_slice_file_is_deleted_counted_and_refetched_never_served() {
    let store = store_with_object(4 * SLICE as usize).await;
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    assert_eq!(get(&edge, &store.file, None).await.2, store.bytes);
    wait_disk(&edge, 4).await;
    edge.stop().await;

    // Damage three of the four files, three ways.
    let mut paths = slice_files(cache.path());
    paths.sort();
    let by_index = |i: u64| -> PathBuf {
        paths.iter().find(|p| name(p).starts_with(&format!("{}.{i}.", store.file))).unwrap().clone()
    };
    let flip = by_index(0);
    let mut bytes = std::fs::read(&flip).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // one bit of payload
    std::fs::write(&flip, bytes).unwrap();
    let short = by_index(1);
    let bytes = std::fs::read(&short).unwrap();
    std::fs::write(&short, &bytes[..bytes.len() - 10]).unwrap(); // truncated
    let swapped = by_index(2);
    std::fs::copy(by_index(3), &swapped).unwrap(); // another slice's file

    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    wait_disk(&edge, 4).await;
    for _ in 0..2 {
        let (status, _, body) = get(&edge, &store.file, None).await;
        assert_eq!(status, 200);
        assert_eq!(body, store.bytes, "the whole object, byte for byte");
    }
    assert_eq!(edge.counter("cadenza_edge_disk_reads_total", &["result=\"corrupt\""]).await, 3);
    assert_eq!(edge.counter("cadenza_edge_disk_reads_total", &["result=\"hit\""]).await, 1);
    assert_eq!(origin_gets(&edge).await, 3, "each bad slice fetched once");
    // The refetched slices were written again, and verify now.
    wait_disk(&edge, 4).await;
    edge.stop().await;
    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    wait_disk(&edge, 4).await;
    assert_eq!(get(&edge, &store.file, None).await.2, store.bytes);
    assert_eq!(edge.counter("cadenza_edge_disk_reads_total", &["result=\"corrupt\""]).await, 0);
    assert_eq!(origin_gets(&edge).await, 0);
    edge.stop().await;
}

#[tokio::test]
async fn leftover_temp_files_are_swept_and_a_slice_size_change_empties_the_tier() {
    let store = store_with_object(3 * SLICE as usize).await;
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    get(&edge, &store.file, None).await;
    wait_disk(&edge, 3).await;
    edge.stop().await;
    // What a write cut short by a crash leaves.
    let shard = cache.path().join(&store.file.as_str()[..2]);
    std::fs::write(shard.join(format!(".tmp.{}.0.abcdefgh", store.file)), b"half a slice").unwrap();
    std::fs::write(cache.path().join("7f").join(".tmp.x"), b"").unwrap();
    assert_eq!(temp_files(cache.path()).len(), 2);
    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    wait_disk(&edge, 3).await;
    assert!(temp_files(cache.path()).is_empty());
    edge.stop().await;

    // Another slice size cuts objects differently: nothing old is used.
    let mut config = disk_config(&store.url, cache.path());
    config.cache.slice = ByteSize(2 * SLICE);
    let edge = start_edge(config).await;
    wait_disk(&edge, 0).await;
    assert!(slice_files(cache.path()).is_empty());
    assert_eq!(get(&edge, &store.file, None).await.2, store.bytes);
    assert_eq!(origin_gets(&edge).await, 2);
    edge.stop().await;
}

#[tokio::test]
async fn a_purge_deletes_the_files_and_a_warm_job_fills_the_disk_not_memory() {
    let store = store_with_object(3 * SLICE as usize).await;
    let cache = tempfile::tempdir().unwrap();
    let edge = start_edge(disk_config(&store.url, cache.path())).await;
    let files = serde_json::json!({ "file_ids": [store.file.as_str()] });
    let warm = admin(&edge, "/admin/warm", Some(files.clone())).await;
    let job = warm["id"].as_str().unwrap().to_owned();
    for _ in 0..500 {
        if admin(&edge, &format!("/admin/warm/{job}"), None).await["state"] == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = wait_disk(&edge, 3).await;
    assert_eq!(s["memory"]["entries"], 0, "warming goes to disk only: {s}");
    let (_, x_cache, body) = get(&edge, &store.file, None).await;
    assert_eq!(x_cache, "HIT-DISK");
    assert_eq!(body, store.bytes);
    assert_eq!(origin_gets(&edge).await, 3, "the warm job's fetches only");

    let purged = admin(&edge, "/admin/purge", Some(files)).await;
    assert_eq!(purged["purged"][0]["disk_slices"], 3, "{purged}");
    assert!(slice_files(cache.path()).is_empty());
    let s = stats(&edge).await;
    assert_eq!(s["disk"]["entries"], 0);
    let (_, x_cache, body) = get(&edge, &store.file, None).await;
    assert_eq!(x_cache, "MISS");
    assert_eq!(body, store.bytes);
    assert_eq!(origin_gets(&edge).await, 6);
    edge.stop().await;
}

#[tokio::test]
async fn a_tiny_disk_budget_holds_and_listeners_are_served() {
    let cache = tempfile::tempdir().unwrap();
    let store = store_with_object(SLICE as usize).await;
    let origin = cadenza_origin::open_store(&store.url).unwrap();
    let mut objects = vec![(store.file, store.bytes.clone())];
    for n in 0..9u8 {
        let bytes = noise(2 * SLICE as usize + usize::from(n));
        let file = FileId::of_content(&bytes);
        cadenza_origin::put_audio(origin.as_ref(), &file, bytes.clone()).await.unwrap();
        objects.push((file, bytes));
    }
    let mut config = disk_config(&store.url, cache.path());
    config.disk.max_size = ByteSize(3 * SLICE + 3 * 88);
    config.cache.memory = ByteSize(SLICE);
    let edge = start_edge(config).await;
    for round in 0..2 {
        for (file, bytes) in &objects {
            let (status, _, body) = get(&edge, file, None).await;
            assert_eq!(status, 200, "round {round}");
            assert_eq!(&body, bytes, "round {round}");
        }
    }
    edge.settle().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = stats(&edge).await;
    assert!(s["disk"]["bytes"].as_u64().unwrap() <= 3 * SLICE + 3 * 88, "{s}");
    assert!(s["disk"]["evictions"].as_u64().unwrap() > 0, "{s}");
    let on_disk: u64 = slice_files(cache.path()).iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(on_disk <= 3 * SLICE + 3 * 88, "files on disk: {on_disk} bytes");
    assert_eq!(s["degraded"], false);
    edge.stop().await;
}

/// A real full filesystem: a 1 MiB tmpfs. Needs root (CI runs as root);
/// elsewhere the test says it was skipped.
#[tokio::test]
async fn a_full_filesystem_degrades_the_tier_listeners_keep_being_served_and_it_recovers() {
    let Some(mount) = Tmpfs::mount("1m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };

    // Eight objects of 3 slices: 1.5 MiB, more than the filesystem holds;
    // the budget (64 MiB) is not what stops the writes.
    let store = store_with_object(SLICE as usize).await;
    let origin = cadenza_origin::open_store(&store.url).unwrap();
    let mut objects = Vec::new();
    for n in 0..8u8 {
        let bytes = noise(3 * SLICE as usize - usize::from(n));
        let file = FileId::of_content(&bytes);
        cadenza_origin::put_audio(origin.as_ref(), &file, bytes.clone()).await.unwrap();
        objects.push((file, bytes));
    }
    let mut config = disk_config(&store.url, &mount.dir.path().join("cache"));
    config.cache.memory = ByteSize(SLICE);
    config.disk.reprobe_min = HumanDuration::millis(100);
    config.disk.reprobe_max = HumanDuration::millis(100);
    let edge = start_edge(config).await;
    for (file, bytes) in &objects {
        let (status, _, body) = get(&edge, file, None).await;
        assert_eq!(status, 200);
        assert_eq!(&body, bytes);
    }
    edge.settle().await;
    let mut s = stats(&edge).await;
    for _ in 0..100 {
        if s["degraded"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = stats(&edge).await;
    }
    assert_eq!(s["degraded"], true, "{s}");
    assert!(s["disk"]["degraded_reason"].as_str().unwrap().contains("write"), "{s}");
    assert_eq!(edge.counter("cadenza_edge_disk_degraded", &[]).await, 1);
    assert!(edge.counter("cadenza_edge_disk_writes_total", &["result=\"error\""]).await >= 1);
    // Still serving, everything, byte for byte, while degraded.
    for (file, bytes) in &objects {
        let (status, _, body) = get(&edge, file, Some("bytes=1000-")).await;
        assert_eq!(status, 206);
        assert_eq!(body, bytes.slice(1000..));
    }
    // Space comes back: the probe notices and writes resume.
    mount.remount("size=64m");
    for _ in 0..200 {
        if stats(&edge).await["degraded"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats(&edge).await["degraded"], false);
    let before = edge.counter("cadenza_edge_disk_writes_total", &["result=\"ok\""]).await;
    let extra = noise(SLICE as usize + 7);
    let file = FileId::of_content(&extra);
    cadenza_origin::put_audio(origin.as_ref(), &file, extra.clone()).await.unwrap();
    assert_eq!(get(&edge, &file, None).await.2, extra);
    edge.settle().await;
    for _ in 0..100 {
        if edge.counter("cadenza_edge_disk_writes_total", &["result=\"ok\""]).await >= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(edge.counter("cadenza_edge_disk_writes_total", &["result=\"ok\""]).await >= before + 2);
    edge.stop().await;
}

#[tokio::test]
async fn a_range_reads_only_its_blocks_and_a_damaged_block_is_caught_when_read() {
    let store = store_with_object(2 * SLICE as usize).await;
    let cache = tempfile::tempdir().unwrap();
    let mut config = disk_config(&store.url, cache.path());
    // One slice of memory: the ranges below come from disk.
    config.cache.memory = ByteSize(SLICE);
    let edge = start_edge(config.clone()).await;
    assert_eq!(get(&edge, &store.file, None).await.2, store.bytes);
    wait_disk(&edge, 2).await;
    edge.stop().await;

    // Damage slice 1 in its last 16 KiB block only.
    let path = slice_files(cache.path())
        .into_iter()
        .find(|p| name(p).starts_with(&format!("{}.1.", store.file)))
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();

    let edge = start_edge(config).await;
    wait_disk(&edge, 2).await;
    let s = SLICE as usize;
    // Ranges in slice 1's first blocks: read from disk, good blocks only.
    for range in [s..s + 100, s + 20_000..s + 40_000] {
        let (status, x_cache, body) =
            get(&edge, &store.file, Some(&format!("bytes={}-{}", range.start, range.end - 1))).await;
        assert_eq!((status, x_cache.as_str()), (206, "HIT-DISK"));
        assert_eq!(body, store.bytes.slice(range));
    }
    assert_eq!(edge.counter("cadenza_edge_disk_reads_total", &["result=\"corrupt\""]).await, 0);
    assert_eq!(origin_gets(&edge).await, 0);
    // The damaged block: caught, deleted, refetched; right bytes.
    let range = 2 * s - 200..2 * s - 50;
    let (status, _, body) =
        get(&edge, &store.file, Some(&format!("bytes={}-{}", range.start, range.end - 1))).await;
    assert_eq!(status, 206);
    assert_eq!(body, store.bytes.slice(range));
    assert_eq!(edge.counter("cadenza_edge_disk_reads_total", &["result=\"corrupt\""]).await, 1);
    assert_eq!(origin_gets(&edge).await, 1);
    // A range across both slices: all right.
    let (_, _, body) = get(&edge, &store.file, Some(&format!("bytes={}-{}", s - 10, s + 10))).await;
    assert_eq!(body, store.bytes.slice(s - 10..s + 11));
    edge.stop().await;
}

/// A filesystem remounted read-only under the edge (EROFS on every write):
/// degraded, listeners served, and healthy again once it is writable.
/// Needs root, like the full-filesystem test.
#[tokio::test]
async fn a_read_only_filesystem_degrades_the_tier_and_reads_go_on() {
    let Some(mount) = Tmpfs::mount("16m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };

    let store = store_with_object(2 * SLICE as usize).await;
    let origin = cadenza_origin::open_store(&store.url).unwrap();
    let mut config = disk_config(&store.url, &mount.dir.path().join("cache"));
    config.cache.memory = ByteSize(SLICE);
    config.disk.reprobe_min = HumanDuration::millis(100);
    config.disk.reprobe_max = HumanDuration::millis(100);
    let edge = start_edge(config).await;
    assert_eq!(get(&edge, &store.file, None).await.2, store.bytes);
    wait_disk(&edge, 2).await;

    mount.remount("ro");
    let other = noise(2 * SLICE as usize + 3);
    let file = FileId::of_content(&other);
    cadenza_origin::put_audio(origin.as_ref(), &file, other.clone()).await.unwrap();
    let (status, _, body) = get(&edge, &file, None).await;
    assert_eq!((status, body), (200, other.clone()));
    edge.settle().await;
    let mut s = stats(&edge).await;
    for _ in 0..100 {
        if s["degraded"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        s = stats(&edge).await;
    }
    assert_eq!(s["degraded"], true, "{s}");
    assert!(s["disk"]["degraded_reason"].as_str().unwrap().contains("ead-only"), "{s}");
    // What was on disk before is still read from it.
    let (status, x_cache, body) = get(&edge, &store.file, Some("bytes=10-99")).await;
    assert_eq!((status, x_cache.as_str()), (206, "HIT-DISK"));
    assert_eq!(body, store.bytes.slice(10..100));

    mount.remount("rw");
    for _ in 0..200 {
        if stats(&edge).await["degraded"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats(&edge).await["degraded"], false);
    edge.stop().await;
}
