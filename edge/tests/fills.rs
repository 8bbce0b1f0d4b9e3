//! Fills over real HTTP: single flight, read while write, and what a
//! faulty origin may and may not do to a client.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cadenza_config::ids::FileId;
use cadenza_config::units::ByteSize;
use support::*;

const SLICE: u64 = 64 * 1024;

/// Read from `resp` until at least `n` body bytes have arrived.
async fn read_at_least(resp: &mut reqwest::Response, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match resp.chunk().await.unwrap() {
            Some(c) => got.extend_from_slice(&c),
            None => break,
        }
    }
    got
}

async fn read_while_write(client: reqwest::Client) {
    let bytes = noise(3 * SLICE as usize);
    let file = FileId::of_content(&bytes);
    // The origin sends 1000 bytes of the slice, then holds the rest.
    let origin = faulty_origin(file, bytes.clone(), Fault::GateAfter(1000)).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(10))).await;
    let url = edge.good_url(&file);
    let range = format!("bytes=0-{}", SLICE - 1);

    let mut first = client.get(&url).header("range", &range).send().await.unwrap();
    assert_eq!(first.status(), 206);
    assert_eq!(first.headers()["x-cache"], "MISS");
    let mut waiters = Vec::new();
    for _ in 0..5 {
        let resp = client.get(&url).header("range", &range).send().await.unwrap();
        assert_eq!(resp.headers()["x-cache"], "COALESCED");
        waiters.push(resp);
    }
    // Everyone has the first bytes while the origin is still holding the
    // rest of the slice: nobody waited for the slice to complete.
    let within = Duration::from_secs(5);
    let head = tokio::time::timeout(within, read_at_least(&mut first, 1000)).await.expect("first bytes");
    assert_eq!(head[..], bytes[..head.len()]);
    for w in &mut waiters {
        let head = tokio::time::timeout(within, read_at_least(w, 1000)).await.expect("waiter's first bytes");
        assert_eq!(head[..], bytes[..head.len()]);
    }
    assert_eq!(origin.gets.load(Ordering::SeqCst), 1, "one origin request for the slice so far");

    origin.open_gate();
    let rest = first.bytes().await.unwrap();
    assert_eq!(1000 + rest.len() as u64, SLICE);
    assert_eq!(rest[..], bytes[1000..SLICE as usize]);
    for w in waiters {
        assert_eq!(w.bytes().await.unwrap()[..], bytes[1000..SLICE as usize]);
    }
    assert_eq!(origin.gets.load(Ordering::SeqCst), 1);
    assert_eq!(origin.heads.load(Ordering::SeqCst), 1);
    // And the slice is now in memory.
    edge.settle().await;
    let resp = client.get(&url).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(resp.headers()["x-cache"], "HIT-MEM");
    assert_eq!(resp.bytes().await.unwrap(), bytes.slice(10..20));
    edge.stop().await;
}

#[tokio::test]
async fn waiters_stream_bytes_as_they_arrive_http1() {
    read_while_write(client()).await;
}

#[tokio::test]
async fn waiters_stream_bytes_as_they_arrive_http2() {
    read_while_write(h2_client()).await;
}

#[tokio::test]
async fn a_small_range_is_answered_before_its_slice_completes() {
    let bytes = noise(2 * SLICE as usize);
    let file = FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes.clone(), Fault::GateAfter(4096)).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(10))).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        client().get(edge.good_url(&file)).header("range", "bytes=100-199").send(),
    )
    .await
    .expect("answered while the origin holds the rest")
    .unwrap();
    assert_eq!(resp.status(), 206);
    let body = tokio::time::timeout(Duration::from_secs(5), resp.bytes()).await.expect("complete").unwrap();
    assert_eq!(body, bytes.slice(100..200));
    origin.open_gate();
    edge.stop().await;
}

#[tokio::test]
async fn many_concurrent_misses_make_one_origin_request_per_slice() {
    let bytes = noise(2 * SLICE as usize);
    let file = FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes.clone(), Fault::GateAfter(100)).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(10))).await;
    let url = edge.good_url(&file);
    let client = h2_client();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client.get(url).send().await.unwrap();
            let cache = resp.headers()["x-cache"].to_str().unwrap().to_owned();
            (cache, resp.bytes().await.unwrap())
        }));
    }
    // Let them all arrive while the first slice is held, then release.
    tokio::time::sleep(Duration::from_millis(300)).await;
    origin.open_gate();
    let mut misses = 0;
    for t in tasks {
        let (cache, body) = t.await.unwrap();
        assert_eq!(body, bytes);
        misses += usize::from(cache == "MISS");
    }
    assert_eq!(misses, 1, "exactly one request started the fill");
    assert_eq!(origin.gets.load(Ordering::SeqCst), 2, "one GET per slice");
    assert_eq!(origin.heads.load(Ordering::SeqCst), 1);
    edge.stop().await;
}

/// Whole-slice ranges from an origin that promises a slice and sends 1000
/// bytes: the client sees the headers (the first bytes were good), then an
/// aborted body — never a padded or quietly short one — and nothing is
/// cached.
async fn truncated_body_is_aborted(client: reqwest::Client) {
    let bytes = noise(3 * SLICE as usize);
    let file = FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes.clone(), Fault::TruncateAfter(1000)).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(5))).await;
    for attempt in 1..=2u64 {
        let resp = client.get(edge.good_url(&file)).header("range", "bytes=0-65535").send().await.unwrap();
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.headers()["content-length"], "65536");
        let err = resp.bytes().await.expect_err("the body must fail, not end short");
        assert!(err.is_body() || err.is_decode() || err.is_request(), "{err:?}");
        // Not cached: each attempt went upstream again.
        assert_eq!(origin.gets.load(Ordering::SeqCst), attempt);
    }
    // Bytes the fill did receive correctly can still serve a range that
    // needs only them.
    let resp = client.get(edge.good_url(&file)).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), bytes.slice(0..100));
    // (An HTTP origin's short body surfaces as a client error, `error`; a
    // store that ends cleanly short is `truncated`. Either way: never `ok`.)
    assert_eq!(
        edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\"", "result=\"ok\""]).await,
        0
    );
    assert_eq!(edge.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, 3);
    assert_eq!(edge.counter("cadenza_edge_cache_memory_entries", &[]).await, 0);
    edge.stop().await;
}

#[tokio::test]
async fn a_truncating_origin_aborts_the_response_http1() {
    truncated_body_is_aborted(client()).await;
}

#[tokio::test]
async fn a_truncating_origin_aborts_the_response_http2() {
    truncated_body_is_aborted(h2_client()).await;
}

#[tokio::test]
async fn cached_slices_are_served_while_the_origin_is_down() {
    let bytes = noise(4 * SLICE as usize);
    let file = FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes.clone(), Fault::None).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(2))).await;
    let resp = client().get(edge.good_url(&file)).header("range", "bytes=0-999").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), bytes.slice(0..1000));
    edge.settle().await; // the rest of the slice has arrived and is cached
    drop(origin); // the origin goes away: connections are refused

    let resp = client().get(edge.good_url(&file)).header("range", "bytes=1000-1999").send().await.unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["x-cache"], "HIT-MEM");
    assert_eq!(resp.bytes().await.unwrap(), bytes.slice(1000..2000));
    let resp = client().get(edge.good_url(&file)).header("range", "bytes=-10").send().await.unwrap();
    assert_eq!(resp.status(), 502, "an uncached slice cannot be served");
    assert_eq!(resp.headers()["x-cadenza-reason"], "upstream_error");
    edge.stop().await;
}

#[tokio::test]
async fn a_fill_outlives_the_client_that_started_it() {
    let bytes = noise(SLICE as usize);
    let file = FileId::of_content(&bytes);
    let origin = faulty_origin(file, bytes.clone(), Fault::GateAfter(500)).await;
    let edge = start_edge(edge_config(&origin.url(), ByteSize(SLICE), Duration::from_secs(10))).await;
    let url = edge.good_url(&file);
    let mut first = client().get(&url).send().await.unwrap();
    let _ = read_at_least(&mut first, 500).await;
    drop(first); // the requester that started the fill hangs up
    let second = client().get(&url).send().await.unwrap();
    assert_eq!(second.headers()["x-cache"], "COALESCED");
    origin.open_gate();
    assert_eq!(second.bytes().await.unwrap(), bytes);
    assert_eq!(origin.gets.load(Ordering::SeqCst), 1, "the fill was not restarted");
    edge.stop().await;
}
