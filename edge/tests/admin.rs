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
    let (status, body) = purge(&edge, json!({"file_ids": [other.as_str()]})).await;
    assert_eq!((status, body["purged"][0]["slices"].as_u64()), (200, Some(0)));
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
