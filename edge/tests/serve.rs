//! The edge over real HTTP: ranges, conditionals, tokens, cache behaviour,
//! and upstream faults.

mod support;

use std::time::Duration;

use cadenza_config::units::ByteSize;
use support::*;

const SLICE: u64 = 64 * 1024;

async fn edge_over_file_store(len: usize) -> (TestStore, TestEdge) {
    let store = store_with_object(len).await;
    let edge = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    (store, edge)
}

#[tokio::test]
async fn full_get_returns_the_object_with_audio_headers() {
    let (store, edge) = edge_over_file_store(300_000).await;
    // The first request fills the slices; the second, over the other
    // protocol, is served from memory.
    for ((version, client), x_cache) in clients().into_iter().zip(["MISS", "HIT-MEM"]) {
        let resp = client.get(edge.good_url(&store.file)).send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (200, version));
        let h = resp.headers().clone();
        assert_eq!(h["content-type"], "audio/ogg");
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["etag"], format!("\"{}\"", store.file).as_str());
        assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(h["content-length"], "300000");
        assert_eq!(h["x-cache"], x_cache, "{version:?}");
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(h["access-control-expose-headers"].to_str().unwrap().contains("Content-Range"));
        assert_eq!(resp.bytes().await.unwrap(), store.bytes);
    }
    edge.stop().await;
}

#[tokio::test]
async fn the_three_range_forms_and_their_content_range() {
    let (store, edge) = edge_over_file_store(300_000).await;
    let len = store.bytes.len() as u64;
    for (version, client) in clients() {
        for (header, start, end) in [
            ("bytes=0-99", 0u64, 100u64),
            ("bytes=65530-65545", 65_530, 65_546), // crosses a slice boundary
            ("bytes=299990-", 299_990, 300_000),
            ("bytes=-10", 299_990, 300_000),
            ("bytes=100-999999", 100, 300_000), // end clamps
            ("bytes=0-0", 0, 1),
        ] {
            let resp = client.get(edge.good_url(&store.file)).header("range", header).send().await.unwrap();
            assert_eq!((resp.status().as_u16(), resp.version()), (206, version), "{header}");
            assert_eq!(
                resp.headers()["content-range"],
                format!("bytes {start}-{}/{len}", end - 1).as_str(),
                "{header}"
            );
            assert_eq!(resp.headers()["content-length"], (end - start).to_string().as_str());
            assert_eq!(
                resp.bytes().await.unwrap(),
                store.bytes.slice(start as usize..end as usize),
                "{header}"
            );
        }
    }
    edge.stop().await;
}

#[tokio::test]
async fn unsatisfiable_and_malformed_ranges_get_416_with_the_length() {
    let (store, edge) = edge_over_file_store(1000).await;
    for (version, client) in clients() {
        for header in ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=abc", "bytes=5-1", "bytes=+1-2"] {
            let resp = client.get(edge.good_url(&store.file)).header("range", header).send().await.unwrap();
            assert_eq!((resp.status().as_u16(), resp.version()), (416, version), "{header}");
            assert_eq!(resp.headers()["content-range"], "bytes */1000", "{header}");
            assert_eq!(resp.headers()["x-cadenza-reason"], "range_not_satisfiable");
        }
        // Another unit is ignored: the whole object.
        let resp = client.get(edge.good_url(&store.file)).header("range", "items=0-1").send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    edge.stop().await;
}

#[tokio::test]
async fn conditionals_if_none_match_and_if_range() {
    let (store, edge) = edge_over_file_store(5000).await;
    let etag = format!("\"{}\"", store.file);
    for (version, client) in clients() {
        let resp =
            client.get(edge.good_url(&store.file)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (304, version));
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert!(resp.bytes().await.unwrap().is_empty());

        let resp = client
            .get(edge.good_url(&store.file))
            .header("range", "bytes=0-9")
            .header("if-range", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "matching If-Range keeps the range");
        let resp = client
            .get(edge.good_url(&store.file))
            .header("range", "bytes=0-9")
            .header("if-range", "\"someotherversion\"")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "stale If-Range sends the whole object");
        assert_eq!(resp.bytes().await.unwrap().len(), 5000);
        let resp = client
            .get(edge.good_url(&store.file))
            .header("range", "bytes=0-9")
            .header("if-range", format!("W/{etag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "If-Range uses strong comparison");
    }
    edge.stop().await;
}

#[tokio::test]
async fn head_and_options() {
    let (store, edge) = edge_over_file_store(5000).await;
    for (version, client) in clients() {
        let resp =
            client.head(edge.good_url(&store.file)).header("range", "bytes=10-19").send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (206, version));
        assert_eq!(resp.headers()["content-length"], "10");
        assert_eq!(resp.headers()["content-range"], "bytes 10-19/5000");
        let resp = client.request(reqwest::Method::OPTIONS, edge.good_url(&store.file)).send().await.unwrap();
        assert_eq!(resp.status(), 204);
        assert!(resp.headers()["access-control-allow-headers"].to_str().unwrap().contains("Range"));
        let resp = client.post(edge.good_url(&store.file)).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET, HEAD, OPTIONS");
    }
    edge.stop().await;
}

#[tokio::test]
async fn token_failures_are_403_with_a_reason_and_counted() {
    let (store, edge) = edge_over_file_store(5000).await;
    let good = edge.good_url(&store.file);
    let (base, sig) = good.rsplit_once("sig=").unwrap();
    let mut flipped = sig.as_bytes().to_vec();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{base}sig={}", String::from_utf8(flipped).unwrap());
    let expired = edge.url(&store.file, "listener1", cadenza_config::unix_now() - 3600);
    let unsigned = good.split_once('?').unwrap().0.to_owned();
    let extra = format!("{good}&debug=1");
    let cases = [
        (tampered, "token_bad_signature"),
        (expired, "token_expired"),
        (unsigned, "token_missing"),
        (extra, "token_malformed"),
    ];
    for (version, client) in clients() {
        for (url, reason) in &cases {
            let resp = client.get(url).send().await.unwrap();
            assert_eq!((resp.status().as_u16(), resp.version()), (403, version), "{reason}");
            assert_eq!(resp.headers()["x-cadenza-reason"], *reason);
            assert_eq!(resp.headers()["cache-control"], "no-store");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], *reason);
            assert_eq!(body["error"]["status"], 403);
        }
    }
    assert_eq!(edge.counter("cadenza_edge_token_rejections_total", &["token_expired"]).await, 2);
    assert_eq!(edge.counter("cadenza_edge_token_rejections_total", &[]).await, 8);
    // None of them reached the origin.
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &[]).await, 0);
    edge.stop().await;
}

#[tokio::test]
async fn a_token_for_one_file_does_not_open_another() {
    let (store, edge) = edge_over_file_store(5000).await;
    let other = cadenza_config::ids::FileId::of_content(b"another file");
    let good = edge.good_url(&store.file);
    let moved = good.replace(store.file.as_str(), other.as_str());
    for (version, client) in clients() {
        let resp = client.get(&moved).send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (403, version));
        assert_eq!(resp.headers()["x-cadenza-reason"], "token_bad_signature");
    }
    edge.stop().await;
}

#[tokio::test]
async fn missing_objects_are_404_and_remembered_for_a_while() {
    let store = store_with_object(5000).await;
    let mut config = edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5));
    config.cache.not_found_ttl = cadenza_config::units::HumanDuration(Duration::from_millis(300));
    let edge = start_edge(config).await;
    let missing = cadenza_config::ids::FileId::of_content(b"never stored");
    for _ in 0..3 {
        let resp = client().get(edge.good_url(&missing)).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["x-cadenza-reason"], "not_found");
    }
    // One upstream lookup; the other two were answered from memory.
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["result=\"not_found\""]).await, 1);
    assert_eq!(edge.counter("cadenza_edge_not_found_cached_total", &[]).await, 2);
    // Once the TTL has passed, upstream is asked again (the object may
    // have been published since).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = client().get(edge.good_url(&missing)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["result=\"not_found\""]).await, 2);
    edge.stop().await;
}

#[tokio::test]
async fn a_small_range_costs_one_slice_and_a_repeat_is_a_memory_hit() {
    // 1 MiB object, 64 KiB slices: a 100-byte range must fetch one slice.
    let (store, edge) = edge_over_file_store(1 << 20).await;
    let resp =
        client().get(edge.good_url(&store.file)).header("range", "bytes=500000-500099").send().await.unwrap();
    assert_eq!(resp.headers()["x-cache"], "MISS");
    assert_eq!(resp.bytes().await.unwrap(), store.bytes.slice(500_000..500_100));
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, 1);
    assert_eq!(edge.counter("cadenza_edge_origin_bytes_total", &[]).await, SLICE);

    let resp =
        client().get(edge.good_url(&store.file)).header("range", "bytes=500100-500199").send().await.unwrap();
    assert_eq!(resp.headers()["x-cache"], "HIT-MEM");
    assert_eq!(resp.bytes().await.unwrap(), store.bytes.slice(500_100..500_200));
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, 1);
    edge.stop().await;
}

#[tokio::test]
async fn concurrent_cold_misses_make_one_origin_request_per_slice() {
    let (store, edge) = edge_over_file_store(4 * SLICE as usize).await;
    let url = edge.good_url(&store.file);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client().get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), store.bytes);
    }
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, 4);
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"head\""]).await, 1);
    edge.stop().await;
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let (store, edge) = edge_over_file_store(100_000).await;
    cadenza_origin::install_crypto_provider();
    let h2 = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();
    let resp = h2.get(edge.good_url(&store.file)).header("range", "bytes=10-20").send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), store.bytes.slice(10..21));
    edge.stop().await;
}

#[tokio::test]
async fn through_a_cadenza_origin_over_http() {
    let store = store_with_object(200_000).await;
    let oc = cadenza_config::service::OriginConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: store.url.clone(),
        ..Default::default()
    };
    let origin = cadenza_origin::OriginServer::bind(oc).await.unwrap();
    let origin_url = format!("http://{}", origin.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let origin_task = tokio::spawn(origin.serve(async {
        let _ = stopped.await;
    }));

    let edge = start_edge(edge_config(&origin_url, ByteSize(SLICE), Duration::from_secs(5))).await;
    let resp = client().get(edge.good_url(&store.file)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), store.bytes);
    let resp = client().get(edge.good_url(&store.file)).header("range", "bytes=-5").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), store.bytes.slice(199_995..));
    edge.stop().await;
    let _ = stop.send(());
    origin_task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_origin_that_sends_no_byte_before_closing_gives_502() {
    let bytes = noise(200_000);
    let file = cadenza_config::ids::FileId::of_content(&bytes);
    for fault in [Fault::TruncateAfter(0), Fault::Reset, Fault::Status(503)] {
        let origin = faulty_origin(file, bytes.clone(), fault).await;
        let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(5))).await;
        let resp = client().get(edge.good_url(&file)).header("range", "bytes=0-99").send().await.unwrap();
        assert_eq!(resp.status(), 502, "{fault:?}");
        assert_eq!(resp.headers()["x-cadenza-reason"], "upstream_error", "{fault:?}");
        edge.stop().await;
    }
}

#[tokio::test]
async fn a_stalled_origin_gives_504_within_the_deadline() {
    let bytes = noise(200_000);
    let file = cadenza_config::ids::FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes, Fault::Stall).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_millis(300))).await;
    let started = std::time::Instant::now();
    let resp = client().get(edge.good_url(&file)).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.headers()["x-cadenza-reason"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    edge.stop().await;
}

#[tokio::test]
async fn a_slow_first_byte_within_the_deadline_is_served() {
    let bytes = noise(100_000);
    let file = cadenza_config::ids::FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes.clone(), Fault::SlowFirstByte(Duration::from_millis(300))).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(5))).await;
    let resp = client().get(edge.good_url(&file)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), bytes);
    edge.stop().await;
}

#[tokio::test]
async fn admin_listener_health_and_metrics() {
    let (store, edge) = edge_over_file_store(1000).await;
    let c = client();
    assert_eq!(c.get(format!("http://{}/healthz", edge.admin)).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("http://{}/readyz", edge.admin)).send().await.unwrap().status(), 200);
    let _ = c.get(edge.good_url(&store.file)).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(
        edge.counter("cadenza_edge_requests_total", &["method=\"GET\"", "status=\"200\"", "edge=\"edge-1\""])
            .await,
        1
    );
    assert_eq!(edge.counter("cadenza_edge_cache_memory_bytes", &[]).await, 1000);
    edge.stop().await;
}
