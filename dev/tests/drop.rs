//! The album drop on a local region: one shield and three edges (`cadenza
//! dev --edges 3 --shield`), the demo album's every rendition fetched by a
//! herd of concurrent range requests on all three edges at once.
//!
//! 1. Cold (nothing cached): the origin sees at most one GET per slice —
//!    the children's misses collapse on the shield, the shield's on its
//!    fill.
//! 2. Warmed through the control plane (`POST /v1/admin/warm`, shield
//!    first): the warm itself costs the origin one copy of the album; the
//!    drop that follows is ≥ 99 % edge hits and the origin sees nothing.
//! 3. An edge restarted after warming still has the album (disk tier): it
//!    serves every slice without a single upstream fetch.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cadenza_config::service::{DemoConfig, DevConfig, EdgeConfig};
use cadenza_control::types::{StreamResponse, WarmJob};
use cadenza_dev::stack::StackFile;

/// The edges' slice size (the default; the dev stack does not change it).
const SLICE: u64 = 256 * 1024;
/// Concurrent requests per slice per edge in a herd.
const HERD: usize = 3;

fn client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

/// One rendition: its size and a signed URL on each edge.
#[derive(Debug, Clone)]
struct File {
    id: String,
    size: u64,
    urls: Vec<String>,
}

/// Every rendition of the demo album, signed for the demo user on each edge.
async fn album_files(stack: &StackFile) -> Vec<File> {
    let mut files = Vec::new();
    for track in &stack.demo.track_ids {
        for (quality, saver) in [(320, false), (160, false), (96, false), (24, true)] {
            let resp = client()
                .post(format!("{}/v1/playback/stream", stack.control.url))
                .bearer_auth(&stack.demo.user_token)
                .json(&serde_json::json!({ "track_id": track, "quality": quality, "data_saver": saver }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "stream {track} at {quality}");
            let r: StreamResponse = resp.json().await.unwrap();
            assert_eq!(r.urls.len(), 3, "a URL on each of the three edges, none on the shield: {:?}", r.urls);
            assert!(r.urls.iter().all(|u| u.pop != "shield"));
            files.push(File {
                id: r.file.file_id.to_string(),
                size: r.file.size,
                urls: r.urls.into_iter().map(|u| u.url).collect(),
            });
        }
    }
    files.sort_by(|a, b| a.id.cmp(&b.id));
    files.dedup_by(|a, b| a.id == b.id);
    files
}

fn slices(files: &[File]) -> u64 {
    files.iter().map(|f| f.size.div_ceil(SLICE)).sum()
}

/// Every slice of every file from every edge, `HERD` times over, all at
/// once; every answer checked for its length.
async fn herd(files: &[File]) {
    let c = client();
    let mut tasks = Vec::new();
    for f in files {
        for url in &f.urls {
            for i in 0..f.size.div_ceil(SLICE) {
                let (start, end) = (i * SLICE, ((i + 1) * SLICE).min(f.size) - 1);
                for _ in 0..HERD {
                    let (c, url) = (c.clone(), url.clone());
                    tasks.push(tokio::spawn(async move {
                        let resp =
                            c.get(&url).header("range", format!("bytes={start}-{end}")).send().await.unwrap();
                        assert_eq!(resp.status(), 206, "{url} bytes {start}-{end}");
                        let body = resp.bytes().await.unwrap();
                        assert_eq!(body.len() as u64, end - start + 1);
                    }));
                }
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// `name{labels} value` lines of a Prometheus text page, summed by the
/// value of `label` (all series of `name` when `label` is empty).
fn metric(text: &str, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(name)) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let rest = &series[name.len()..];
        if !(rest.is_empty() || rest.starts_with('{')) {
            continue;
        }
        let key = rest
            .split(['{', ',', '}'])
            .find_map(|kv| {
                kv.strip_prefix(&format!("{label}=\"")).map(|v| v.trim_end_matches('"').to_owned())
            })
            .unwrap_or_default();
        *out.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

async fn get_text(url: &str) -> String {
    let resp = client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.text().await.unwrap()
}

/// The origin's GET and HEAD counts.
async fn origin_requests(stack: &StackFile) -> (f64, f64) {
    let m = metric(
        &get_text(&format!("{}/metrics", stack.origin.url)).await,
        "cadenza_origin_requests_total",
        "method",
    );
    (m.get("GET").copied().unwrap_or(0.0), m.get("HEAD").copied().unwrap_or(0.0))
}

/// Slice lookups by result over the three edges (not the shield).
async fn edge_lookups(stack: &StackFile) -> BTreeMap<String, f64> {
    let mut sum = BTreeMap::new();
    for e in &stack.edges {
        let text = get_text(&format!("{}/metrics", e.admin_url)).await;
        for (k, v) in metric(&text, "cadenza_edge_slice_lookups_total", "result") {
            *sum.entry(k).or_insert(0.0) += v;
        }
    }
    sum
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

async fn purge(stack: &StackFile, files: &[File]) {
    let ids: Vec<&str> = files.iter().map(|f| f.id.as_str()).collect();
    for e in stack.shields.iter().chain(&stack.edges) {
        let resp = client()
            .post(format!("{}/admin/purge", e.admin_url))
            .bearer_auth(&e.admin_token)
            .json(&serde_json::json!({ "file_ids": ids }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "purge on {}", e.name);
    }
}

async fn warm_job(stack: &StackFile, id: &str) -> WarmJob {
    let resp = client()
        .get(format!("{}/v1/admin/warm/{id}", stack.control.url))
        .bearer_auth(&stack.control.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn album_drop_on_one_shield_and_three_edges() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevConfig {
        data_dir: dir.path().to_owned(),
        base_port: 0,
        edges: 3,
        shield: true,
        demo: DemoConfig { tracks: 2, first_seconds: 20, step_seconds: 6 },
        ..DevConfig::default()
    };
    let mut dev = cadenza_dev::start(config).await.unwrap();
    let stack = dev.stack().clone();
    assert_eq!((stack.edges.len(), stack.shields.len()), (3, 1));
    let files = album_files(&stack).await;
    assert_eq!(files.len(), 8, "two tracks, four rungs");
    let total_slices = slices(&files);
    assert!(total_slices > files.len() as u64, "some files span several slices: {total_slices}");

    // 1. Cold: the herd's misses collapse to one origin GET per slice.
    let (get0, head0) = origin_requests(&stack).await;
    herd(&files).await;
    let (get1, head1) = origin_requests(&stack).await;
    let cold_gets = get1 - get0;
    eprintln!("cold drop: {cold_gets} origin GETs, {} HEADs for {total_slices} slices", head1 - head0);
    assert!(
        cold_gets >= 1.0 && cold_gets <= total_slices as f64,
        "{cold_gets} origin GETs for {total_slices} slices"
    );
    assert!(head1 - head0 <= files.len() as f64, "at most one length lookup per file");

    // 2. Purge everything, warm through the control plane, drop again.
    purge(&stack, &files).await;
    let resp = client()
        .post(format!("{}/v1/admin/warm", stack.control.url))
        .bearer_auth(&stack.control.admin_token)
        .json(&serde_json::json!({ "album_id": stack.demo.album_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let job: WarmJob = resp.json().await.unwrap();
    assert_eq!(job.files_total, files.len());
    let order: Vec<(&str, &str, Option<&str>)> =
        job.pops.iter().map(|p| (p.pop.as_str(), p.role.as_str(), p.parent.as_deref())).collect();
    assert_eq!(order[0], ("shield", "shield", None), "the shield first: {order:?}");
    assert!(
        order[1..].iter().all(|(_, role, parent)| *role == "edge" && *parent == Some("dev/shield")),
        "{order:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = warm_job(&stack, &job.id).await;
        // No child starts before its shield is done.
        if job.pops[0].state != "done" {
            assert!(job.pops[1..].iter().all(|p| p.state == "pending"), "{:?}", job.pops);
        }
        if !matches!(job.state.as_str(), "scheduled" | "running") {
            break job;
        }
        assert!(Instant::now() < deadline, "warm job still {} after 60 s: {job:?}", job.state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job.state, "done", "{job:?}");
    assert_eq!(job.bytes_done, job.bytes_total);
    assert_eq!(job.bytes_total, 4 * files.iter().map(|f| f.size).sum::<u64>());
    assert!(job.pops.iter().all(|p| p.state == "done" && p.files_done == files.len()), "{:?}", job.pops);
    let (get2, head2) = origin_requests(&stack).await;
    let warm_gets = get2 - get1;
    eprintln!("warming: {warm_gets} origin GETs for {total_slices} slices on one shield and three edges");
    assert!(warm_gets <= total_slices as f64, "one copy of the album from the origin, not {warm_gets} GETs");

    let before = edge_lookups(&stack).await;
    herd(&files).await;
    let after = edge_lookups(&stack).await;
    let (get3, head3) = origin_requests(&stack).await;
    let hits = delta(&after, &before, "hit") + delta(&after, &before, "disk");
    let all = hits + delta(&after, &before, "miss") + delta(&after, &before, "coalesced");
    eprintln!("warm drop: {hits} of {all} slice lookups hit; origin GETs {}", get3 - get2);
    assert!(all >= (total_slices as usize * 3 * HERD) as f64, "every request looked its slice up: {all}");
    assert!(hits / all >= 0.99, "hit ratio {}", hits / all);
    assert_eq!(get3 - get2, 0.0, "the origin saw no GET during the warmed drop");
    assert_eq!(head3, head2, "nor a HEAD");

    // 3. Restart edge-1 on its ports: its disk tier still holds the album.
    let edge = &stack.edges[0];
    let text =
        std::fs::read_to_string(dir.path().join("config").join(format!("{}.toml", edge.name))).unwrap();
    let edge_config: EdgeConfig = toml::from_str(&text).unwrap();
    assert!(dev.stop_edge(&edge.name).await.unwrap());
    let restarted = cadenza_edge::EdgeServer::bind(edge_config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(restarted.serve(async move {
        let _ = stopped.await;
    }));
    let ready = Instant::now() + Duration::from_secs(30);
    loop {
        let text = get_text(&format!("{}/metrics", edge.admin_url)).await;
        if metric(&text, "cadenza_edge_disk_index_ready", "").values().sum::<f64>() >= 1.0 {
            break;
        }
        assert!(Instant::now() < ready, "the restarted edge's disk index never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let one_edge: Vec<File> = files
        .iter()
        .map(|f| File {
            urls: vec![f.urls.iter().find(|u| u.contains(&edge_port(&stack, 0))).unwrap().clone()],
            ..f.clone()
        })
        .collect();
    herd(&one_edge).await;
    let text = get_text(&format!("{}/metrics", edge.admin_url)).await;
    let lookups = metric(&text, "cadenza_edge_slice_lookups_total", "result");
    eprintln!("restarted edge: {lookups:?}");
    assert_eq!(
        lookups.get("miss").copied().unwrap_or(0.0),
        0.0,
        "nothing fetched upstream after the restart"
    );
    assert!(lookups.get("disk").copied().unwrap_or(0.0) >= total_slices as f64, "{lookups:?}");
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    dev.shutdown().await.unwrap();
}

/// `:port` of edge `i`'s audio listener, to pick its URL out of a list.
fn edge_port(stack: &StackFile, i: usize) -> String {
    let url = &stack.edges[i].url;
    format!(":{}/", url.rsplit(':').next().unwrap())
}
