//! The admin API over real HTTP: authentication, purge (also of a fill in
//! flight), stats, and bad input.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cadenza_config::ids::FileId;
use cadenza_config::units::ByteSize;
use serde_json::{Value, json};
use support::*;

const SLICE: u64 = 64 * 1024;

fn admin(edge: &TestEdge, path: &str) -> String {
    format!("http://{}{path}", edge.admin)
}

async fn stats(edge: &TestEdge) -> Value {
    let resp = client().get(admin(edge, "/admin/stats")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn purge(edge: &TestEdge, body: Value) -> (u16, Value) {
    let resp =
        client().post(admin(edge, "/admin/purge")).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_admin_api_wants_the_admin_token_and_probes_do_not() {
    let store = store_with_object(1000).await;
    let edge = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    let c = client();
    assert_eq!(c.get(admin(&edge, "/healthz")).send().await.unwrap().status(), 200);
    let resp = c.get(admin(&edge, "/admin/stats")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_token_missing");
    let resp = c.get(admin(&edge, "/admin/stats")).bearer_auth("not-the-admin-token!").send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_token_bad");
    // Purge is refused before its body is even read.
    let resp = c
        .post(admin(&edge, "/admin/purge"))
        .json(&json!({"file_ids": [store.file.as_str()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // The admin API is not on the public listener.
    let resp =
        c.get(format!("http://{}/admin/stats", edge.addr)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    edge.stop().await;
}

#[tokio::test]
async fn purge_drops_the_slices_and_the_next_request_refetches() {
    let store = store_with_object(3 * SLICE as usize + 10).await;
    let edge = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    let get = || async {
        let resp = client().get(edge.good_url(&store.file)).send().await.unwrap();
        let x_cache = resp.headers()["x-cache"].to_str().unwrap().to_owned();
        (x_cache, resp.bytes().await.unwrap())
    };
    assert_eq!(get().await, ("MISS".to_owned(), store.bytes.clone()));
    assert_eq!(get().await.0, "HIT-MEM");
    edge.settle().await;
    assert_eq!(stats(&edge).await["memory"]["entries"], 4);

    let (status, body) = purge(&edge, json!({"file_ids": [store.file.as_str()]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["purged"][0]["file_id"], store.file.as_str());
    assert_eq!(body["purged"][0]["slices"], 4);
    assert_eq!(body["purged"][0]["bytes"], store.bytes.len());
    let s = stats(&edge).await;
    assert_eq!((s["memory"]["entries"].as_u64(), s["memory"]["bytes"].as_u64()), (Some(0), Some(0)));

    // Upstream is asked again: the length (HEAD) and every slice.
    let before = edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await;
    assert_eq!(get().await, ("MISS".to_owned(), store.bytes.clone()));
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, before + 4);
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"head\""]).await, 2);

    // Purging what is not cached is not an error: nothing to drop.
    let other = FileId::of_content(b"never requested");
    // A file named twice is purged and reported once.
    let (status, body) = purge(&edge, json!({"file_ids": [other.as_str(), other.as_str()]})).await;
    assert_eq!((status, body["purged"][0]["slices"].as_u64()), (200, Some(0)));
    assert_eq!(body["purged"].as_array().unwrap().len(), 1);
    edge.stop().await;
}

#[tokio::test]
async fn a_fill_running_during_a_purge_serves_its_reader_but_caches_nothing() {
    let bytes = noise(SLICE as usize);
    let file = FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes.clone(), Fault::GateAfter(1000)).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(10))).await;

    let mut reading = client().get(edge.good_url(&file)).send().await.unwrap();
    assert_eq!(reading.headers()["x-cache"], "MISS");
    let first = reading.chunk().await.unwrap().unwrap();
    let (status, body) = purge(&edge, json!({"file_ids": [file.as_str()]})).await;
    assert_eq!(status, 200);
    assert_eq!(body["purged"][0]["fills_detached"], 1, "{body}");
    origin.open_gate();
    let mut got = first.to_vec();
    while let Some(chunk) = reading.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, bytes, "the reader of the detached fill still gets every byte");
    edge.settle().await;
    assert_eq!(stats(&edge).await["memory"]["entries"], 0, "the purged fill put nothing in the tier");

    let resp = client().get(edge.good_url(&file)).send().await.unwrap();
    assert_eq!(resp.headers()["x-cache"], "MISS");
    assert_eq!(resp.bytes().await.unwrap(), bytes);
    assert_eq!(origin.gets.load(Ordering::SeqCst), 2);
    edge.stop().await;
}

#[tokio::test]
async fn stats_report_the_tier_and_hit_ratios() {
    let store = store_with_object(1000).await;
    let edge = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    for _ in 0..4 {
        let resp = client().get(edge.good_url(&store.file)).send().await.unwrap();
        assert_eq!(resp.bytes().await.unwrap(), store.bytes);
    }
    edge.settle().await;
    let s = stats(&edge).await;
    assert_eq!(s["memory"]["entries"], 1);
    assert_eq!(s["memory"]["bytes"], 1000);
    assert_eq!(s["memory"]["capacity_bytes"], 64 << 20);
    assert_eq!(s["degraded"], false);
    for window in ["1m", "5m", "1h"] {
        let w = &s["hit_ratio"][window];
        assert_eq!(
            (w["lookups"].as_u64(), w["hits"].as_u64(), w["misses"].as_u64()),
            (Some(4), Some(3), Some(1)),
            "{window}: {w}"
        );
        assert_eq!(w["ratio"], 0.75, "{window}");
        assert_eq!(w["served_bytes"], 4000);
        assert_eq!(w["origin_bytes"], 1000);
    }
    assert_eq!(s["totals"]["served_bytes"], 4000);
    edge.stop().await;
}

#[tokio::test]
async fn bad_admin_requests_get_a_reason() {
    let store = store_with_object(1000).await;
    let edge = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    let c = client();
    let post = |body: &'static str| {
        c.post(admin(&edge, "/admin/purge"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, code, says) in [
        ("{", "bad_json", "purge body"),
        (r#"{"file_ids": "abc"}"#, "bad_json", "invalid type"),
        (r#"{"file_ids": [], "extra": 1}"#, "bad_json", "unknown field `extra`"),
        (r#"{"file_ids": []}"#, "bad_file_ids", "give 1 to 10000"),
        (
            r#"{"file_ids": ["0123456789abcdef0123456789abcdef", "../etc/passwd"]}"#,
            "bad_file_ids",
            "file_ids[1]",
        ),
    ] {
        let resp = post(body).await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let huge = format!(r#"{{"file_ids": ["{}"]}}"#, "a".repeat(2 << 20));
    let resp = c.post(admin(&edge, "/admin/purge")).bearer_auth(ADMIN_TOKEN).body(huge).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let resp = c.get(admin(&edge, "/admin/purge")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = c.get(admin(&edge, "/admin/nope")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    edge.stop().await;
}

async fn warm(edge: &TestEdge, body: Value) -> (u16, Value) {
    let resp =
        client().post(admin(edge, "/admin/warm")).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn job(edge: &TestEdge, id: &str) -> Value {
    let resp = client()
        .get(admin(edge, &format!("/admin/warm/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Poll (bounded) until the job is no longer running.
async fn finished(edge: &TestEdge, id: &str) -> Value {
    for _ in 0..1000 {
        let j = job(edge, id).await;
        if j["state"] != "running" {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("warm job {id} still running after 10 s");
}

#[tokio::test]
async fn warm_fetches_whole_files_and_ranges_into_the_cache_ahead_of_listeners() {
    let a = store_with_object(3 * SLICE as usize + 100).await;
    let store = cadenza_origin::open_store(&a.url).unwrap();
    let b_bytes = noise(4 * SLICE as usize);
    let b = FileId::of_content(&b_bytes);
    cadenza_origin::put_audio(store.as_ref(), &b, b_bytes.clone()).await.unwrap();
    let missing = FileId::of_content(b"not in the store");
    let edge = start_edge(edge_config(&a.url, ByteSize(SLICE), Duration::from_secs(5))).await;

    let (status, started) = warm(
        &edge,
        json!({
            "file_ids": [a.file.as_str(), missing.as_str()],
            "files": [{"file_id": b.as_str(), "ranges": ["0-99", "200000-200010"]}],
        }),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let done = finished(&edge, &id).await;
    assert_eq!(done["state"], "failed", "one file is missing: {done}");
    let files = done["files"].as_array().unwrap();
    assert_eq!(files[0]["state"], "done");
    assert_eq!(files[0]["slices_total"], 4);
    assert_eq!(files[0]["bytes_done"], a.bytes.len());
    assert_eq!(files[1]["state"], "failed");
    assert_eq!(files[1]["error"], "not found upstream");
    assert_eq!(files[2]["state"], "done");
    assert_eq!(files[2]["slices_total"], 2, "only the slices the ranges touch (0 and 3)");
    assert_eq!(done["bytes_done"], a.bytes.len() as u64 + 2 * SLICE);
    assert_eq!(done["eta_seconds"], Value::Null);
    // Warming is not demand: no lookups were counted.
    assert_eq!(edge.counter("cadenza_edge_slice_lookups_total", &[]).await, 0);
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, 6);

    // Listeners now hit memory for what was warmed, and miss the rest.
    let get = |file: FileId, range: &'static str| {
        let url = edge.good_url(&file);
        async move {
            let resp = client().get(url).header("range", range).send().await.unwrap();
            resp.headers()["x-cache"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(get(a.file, "bytes=0-").await, "HIT-MEM");
    assert_eq!(get(b, "bytes=100-199").await, "HIT-MEM");
    assert_eq!(get(b, "bytes=70000-70099").await, "MISS", "slice 1 of b was not asked for");

    // Warming again finds everything cached and fetches nothing.
    let (_, again) = warm(&edge, json!({"file_ids": [a.file.as_str()]})).await;
    let again = finished(&edge, again["id"].as_str().unwrap()).await;
    assert_eq!((again["state"].as_str(), again["slices_already_cached"].as_u64()), (Some("done"), Some(4)));
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, 7);

    // Both jobs are listed.
    let resp = client().get(admin(&edge, "/admin/warm")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    let list: Value = resp.json().await.unwrap();
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2);
    edge.stop().await;
}

#[tokio::test]
async fn a_rate_cap_paces_the_slices() {
    let store = store_with_object(4 * SLICE as usize).await;
    let edge = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    // 256 KiB/s: the fourth 64 KiB slice may not start before 0.75 s.
    let (_, started) =
        warm(&edge, json!({"file_ids": [store.file.as_str()], "max_bytes_per_second": 4 * SLICE})).await;
    let done = finished(&edge, started["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "done");
    assert!(done["elapsed_seconds"].as_f64().unwrap() >= 0.74, "{done}");
    edge.stop().await;
}

#[tokio::test]
async fn warming_waits_while_listeners_hold_the_upstream_slots_and_can_be_cancelled() {
    let bytes = noise(8 * SLICE as usize);
    let file = FileId::of_content(&bytes);
    // Every GET sends 10 bytes, then waits for the gate.
    let origin = faulty_origin(file, bytes.clone(), Fault::GateAfter(10)).await;
    let mut config = edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(20));
    config.origin.max_concurrent = 4;
    let edge = start_edge(config).await;

    // Listeners hold all four upstream slots (slices 1, 3, 5, 7; the job
    // would start with slice 0).
    let mut listeners = Vec::new();
    for index in [1u64, 3, 5, 7] {
        let range = format!("bytes={}-{}", index * SLICE, index * SLICE + 9);
        let resp = client().get(edge.good_url(&file)).header("range", range).send().await.unwrap();
        assert_eq!(resp.status(), 206);
        listeners.push(resp);
    }
    let (_, started) = warm(&edge, json!({"file_ids": [file.as_str()], "concurrency": 1})).await;
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The job knows the length but has started no fill of its own.
    let j = job(&edge, &id).await;
    assert_eq!((j["state"].as_str(), j["slices_done"].as_u64()), (Some("running"), Some(0)), "{j}");
    assert_eq!(j["bytes_total"], bytes.len());
    let m = edge.metrics().await;
    assert!(m.lines().any(|l| l.starts_with("cadenza_edge_fills_in_flight") && l.ends_with(" 4")), "{m}");
    assert_eq!(origin.gets.load(Ordering::SeqCst), 4);

    // Cancel, then let the origin go: the job stops without warming everything.
    let resp = client()
        .delete(admin(&edge, &format!("/admin/warm/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    origin.open_gate();
    drop(listeners);
    let done = finished(&edge, &id).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert!(done["slices_done"].as_u64().unwrap() < 8, "{done}");
    edge.stop().await;
}

#[tokio::test]
async fn bad_warm_requests_get_a_reason() {
    let store = store_with_object(1000).await;
    let edge = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    let id = store.file.as_str();
    for (body, code, says) in [
        (json!({}), "bad_files", "give 1 to 10000"),
        (json!({"file_ids": ["xyz"]}), "bad_files", "file_ids[0]"),
        (json!({"files": [{"file_id": id, "ranges": ["9-1"]}]}), "bad_files", "files[0].ranges[0]"),
        (json!({"files": [{"file_id": id, "ranges": ["-5"]}]}), "bad_files", "first-last"),
        (json!({"files": [{"file_id": id, "range": "0-1"}]}), "bad_json", "unknown field `range`"),
        (
            json!({"file_ids": [id], "concurrency": 0}),
            "bad_concurrency",
            "between 1 and warm.max_concurrent (4)",
        ),
        (json!({"file_ids": [id], "concurrency": 99}), "bad_concurrency", "not 99"),
        (json!({"file_ids": [id], "max_bytes_per_second": 0}), "bad_rate", "positive"),
        (json!({"file_ids": [id], "max_bytes_per_second": -1}), "bad_json", "invalid value"),
    ] {
        let (status, v) = warm(&edge, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let resp =
        client().get(admin(&edge, "/admin/warm/nosuchjob")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "warm_job_not_found");
    edge.stop().await;
}

/// `GET /admin/keys` and `POST /admin/keys/reload`: the ring follows its
/// key file; a key added is accepted at once, a key removed is refused at
/// once, and a broken file changes nothing.
#[tokio::test]
async fn the_signing_key_ring_reloads_from_its_file_and_a_broken_file_keeps_it() {
    use cadenza_config::service::{KeyFile, KeySpec, SigningConfig};
    use cadenza_config::token::{SigningKey, sign_query};

    let store = store_with_object(1000).await;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.toml");
    let write = |keys: &[&SigningKey]| {
        let file = KeyFile { keys: keys.iter().map(|k| KeySpec::from_key(k)).collect() };
        std::fs::write(&keys_file, file.to_toml()).unwrap();
    };
    let (k1, k2) = (key(), SigningKey::generate("k2".parse().unwrap()));
    write(&[&k1]);
    let mut config = edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5));
    config.signing = SigningConfig { keys: vec![], keys_file: Some(keys_file.clone()), ..config.signing };
    let edge = start_edge(config).await;
    let c = client();
    let path = cadenza_config::layout::edge_path(&store.file);
    let url = |k: &SigningKey| {
        let q = sign_query(k, &path, &"u1".parse().unwrap(), cadenza_config::unix_now() + 600);
        format!("http://{}{path}?{q}", edge.addr)
    };
    let (url1, url2) = (url(&k1), url(&k2));
    let fetch = |u: String| {
        let c = c.clone();
        async move {
            let resp = c.get(u).header("range", "bytes=0-9").send().await.unwrap();
            let reason = resp.headers().get("x-cadenza-reason").map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), reason)
        }
    };
    let reload = || c.post(admin(&edge, "/admin/keys/reload")).bearer_auth(ADMIN_TOKEN).send();

    let resp = c.get(admin(&edge, "/admin/keys")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"keys": ["test1"], "current": "test1"}));
    assert_eq!(fetch(url1.clone()).await, (206, None));
    assert_eq!(fetch(url2.clone()).await, (403, Some("token_unknown_key".into())));

    // The admin token guards both routes; each has one method.
    assert_eq!(c.post(admin(&edge, "/admin/keys/reload")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(admin(&edge, "/admin/keys")).send().await.unwrap().status(), 401);
    let resp = c.get(admin(&edge, "/admin/keys/reload")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.headers()["allow"].to_str().unwrap()), (405, "POST"));

    // k2 added: both verify.
    write(&[&k1, &k2]);
    let resp = reload().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"keys": ["test1", "k2"], "current": "k2"}));
    assert_eq!(fetch(url1.clone()).await, (206, None));
    assert_eq!(fetch(url2.clone()).await, (206, None));
    let m = edge.metrics().await;
    assert!(sample(&m, "cadenza_edge_signing_key{", r#"kid="k2""#, 1), "{m}");
    assert!(sample(&m, "cadenza_edge_signing_reloads_total{", r#"result="ok""#, 1), "{m}");

    // A broken file: 500 naming the file, never the secret; nothing changes.
    std::fs::write(&keys_file, format!("[[keys]]\nid = \"k3\"\nsecret = \"{}\n", k2.secret_base64()))
        .unwrap();
    let resp = reload().await.unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "signing_reload_failed");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&keys_file.display().to_string()), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(!body.contains(&k2.secret_base64()), "the answer quotes a secret: {body}");
    assert_eq!(fetch(url1.clone()).await, (206, None));
    assert_eq!(fetch(url2.clone()).await, (206, None));
    let m = edge.metrics().await;
    assert!(sample(&m, "cadenza_edge_signing_reloads_total{", r#"result="error""#, 1), "{m}");
    assert!(sample(&m, "cadenza_edge_signing_key{", r#"kid="test1""#, 1), "{m}");

    // The old key retired: its URLs are refused, the new key's still work.
    write(&[&k2]);
    let resp = reload().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"keys": ["k2"], "current": "k2"}));
    assert_eq!(fetch(url1).await, (403, Some("token_unknown_key".into())));
    assert_eq!(fetch(url2).await, (206, None));
    let m = edge.metrics().await;
    assert!(!m.contains(r#"kid="test1""#), "{m}");
    edge.stop().await;
}

/// Does the Prometheus text `m` have a sample of `name` (with its `{`)
/// carrying `label` with value `value`?
fn sample(m: &str, name: &str, label: &str, value: u64) -> bool {
    m.lines().any(|l| l.starts_with(name) && l.contains(label) && l.ends_with(&format!("}} {value}")))
}
