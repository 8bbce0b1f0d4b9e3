//! Tiering: child edges fill from a shield edge over HTTP with a tier
//! token, so that a region's POPs cost the origin about one request per
//! slice.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cadenza_config::ids::FileId;
use cadenza_config::units::{ByteSize, Secret};
use support::*;

const SLICE: u64 = 64 * 1024;
const TIER_TOKEN: &str = "tier-token-for-the-test-region";

/// origin → shield → two children, the shield's slices as big as the
/// children's.
async fn region(origin_url: &str) -> (TestEdge, [TestEdge; 2]) {
    let mut shield = edge_config(origin_url, ByteSize(SLICE), Duration::from_secs(10));
    shield.name = "shield".into();
    shield.tier.token = Secret::new(TIER_TOKEN);
    let shield = start_edge(shield).await;
    let child = |name: &str| {
        let mut c = edge_config(&format!("http://{}", shield.addr), ByteSize(SLICE), Duration::from_secs(10));
        c.name = name.into();
        c.origin.token = Secret::new(TIER_TOKEN);
        c
    };
    let a = start_edge(child("child-a")).await;
    let b = start_edge(child("child-b")).await;
    (shield, [a, b])
}

#[tokio::test]
async fn concurrent_cold_requests_over_two_children_cost_the_origin_one_request_per_slice() {
    let bytes = noise(4 * SLICE as usize + 1000); // five slices, the last one short
    let file = FileId::of_content(&bytes);
    // The origin waits before answering, so every request is in flight
    // while the first fills run.
    let origin = faulty_origin(file, bytes.clone(), Fault::SlowFirstByte(Duration::from_millis(150))).await;
    let (shield, children) = region(&origin.url()).await;

    // 1,000 requests at once, alternating between the children: whole
    // objects and ranges in every slice, over HTTP/1.1 and HTTP/2.
    let clients = clients();
    let mut tasks = Vec::new();
    for i in 0..1000usize {
        let url = children[i % 2].good_url(&file);
        let (_, client) = clients[(i / 2) % 2].clone();
        let (start, end) = match i % 3 {
            0 => (0, bytes.len()),
            1 => {
                let s = (i * 4099) % (bytes.len() - 500);
                (s, s + 500)
            }
            _ => (bytes.len() - 10, bytes.len()),
        };
        tasks.push(tokio::spawn(async move {
            let req = client.get(url);
            // Whole objects without a Range header, the rest with one.
            let req =
                if i % 3 == 0 { req } else { req.header("range", format!("bytes={start}-{}", end - 1)) };
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            (start, end, resp.bytes().await.unwrap())
        }));
    }
    for t in tasks {
        let (start, end, body) = t.await.unwrap();
        assert_eq!(body, bytes.slice(start..end), "bytes {start}-{end}");
    }

    for child in &children {
        child.settle().await;
    }
    shield.settle().await;
    assert_eq!(origin.gets.load(Ordering::SeqCst), 5, "one origin GET per slice");
    assert_eq!(origin.heads.load(Ordering::SeqCst), 1, "one origin HEAD for the object");
    // Each child asked the shield at most once per slice; the shield
    // collapsed the two children's requests.
    for child in &children {
        let fills =
            child.counter("cadenza_edge_origin_requests_total", &["kind=\"range\"", "result=\"ok\""]).await;
        assert!((1..=5).contains(&fills), "a child filled {fills} slices from the shield");
    }
    assert_eq!(shield.counter("cadenza_edge_origin_requests_total", &["kind=\"range\""]).await, 5);
    drop(clients);
    // The listeners' pooled connections go first, then the children, whose
    // pooled connections to the shield close with
    // them, so the shield's graceful stop has nothing to wait for.
    for child in children {
        child.stop().await;
    }
    shield.stop().await;
}

#[tokio::test]
async fn the_tier_route_needs_the_tier_token_and_exists_only_on_a_shield() {
    let store = store_with_object(100_000).await;
    let mut config = edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5));
    config.tier.token = Secret::new(TIER_TOKEN);
    let shield = start_edge(config).await;
    let url = format!("http://{}/audio/{}.ogg", shield.addr, store.file);

    for (version, client) in clients() {
        let resp = client.get(&url).header("range", "bytes=0-9").send().await.unwrap();
        assert_eq!((resp.status().as_u16(), resp.version()), (403, version));
        assert_eq!(resp.headers()["x-cadenza-reason"], "tier_token_missing");
        let resp = client.get(&url).bearer_auth("not-the-tier-token-at-all").send().await.unwrap();
        assert_eq!(resp.headers()["x-cadenza-reason"], "tier_token_bad");

        // What a child's object store client asks: HEAD for the length,
        // then exact ranges.
        let resp = client.head(&url).bearer_auth(TIER_TOKEN).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-length"], "100000");
        let resp = client
            .get(&url)
            .bearer_auth(TIER_TOKEN)
            .header("range", "bytes=70000-70099")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.headers()["content-range"], "bytes 70000-70099/100000");
        assert_eq!(resp.bytes().await.unwrap(), store.bytes.slice(70_000..70_100));
        // A signed URL is not a tier token and vice versa: the player path
        // still wants its signature.
        let player = shield.good_url(&store.file);
        let resp =
            client.get(player.split_once('?').unwrap().0).bearer_auth(TIER_TOKEN).send().await.unwrap();
        assert_eq!(resp.headers()["x-cadenza-reason"], "token_missing");
    }
    assert_eq!(shield.counter("cadenza_edge_token_rejections_total", &["tier_token_bad"]).await, 2);
    shield.stop().await;

    // Rotation: the new token and the previous one both work, nothing else.
    let mut config = edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5));
    config.tier.token = Secret::new("the-new-tier-token-rolling-out");
    config.tier.previous_token = Secret::new(TIER_TOKEN);
    let shield = start_edge(config).await;
    let url = format!("http://{}/audio/{}.ogg", shield.addr, store.file);
    for (token, status) in
        [("the-new-tier-token-rolling-out", 206), (TIER_TOKEN, 206), ("the-new-tier-token-rolling-ou", 403)]
    {
        let resp = client().get(&url).bearer_auth(token).header("range", "bytes=0-9").send().await.unwrap();
        assert_eq!(resp.status(), status, "{token}");
    }
    shield.stop().await;

    // An edge without tier.token has no tier route.
    let plain = start_edge(edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5))).await;
    let resp = client()
        .get(format!("http://{}/audio/{}.ogg", plain.addr, store.file))
        .bearer_auth(TIER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    plain.stop().await;
}

#[tokio::test]
async fn a_child_with_the_wrong_tier_token_gets_502_and_fills_nothing() {
    let store = store_with_object(100_000).await;
    let mut config = edge_config(&store.url, ByteSize(SLICE), Duration::from_secs(5));
    config.tier.token = Secret::new(TIER_TOKEN);
    let shield = start_edge(config).await;
    let mut c = edge_config(&format!("http://{}", shield.addr), ByteSize(SLICE), Duration::from_secs(5));
    c.origin.token = Secret::new("a-token-the-shield-does-not-know");
    let child = start_edge(c).await;
    let resp = client().get(child.good_url(&store.file)).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-cadenza-reason"], "upstream_error");
    assert_eq!(
        shield.counter("cadenza_edge_origin_requests_total", &[]).await,
        0,
        "the shield did no upstream work"
    );
    child.stop().await;
    shield.stop().await;
}
