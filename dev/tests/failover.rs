//! Failover, end to end: the dev stack's two edges are POPs of one CDN,
//! probed by the control plane. Kill the edge a track's URLs lead with:
//! a player holding the old URL list succeeds on its second URL, and
//! within 10 s new answers no longer name the dead POP.

use std::time::{Duration, Instant};

use cadenza_config::service::{DemoConfig, DevConfig};
use cadenza_control::types::{CdnList, StreamResponse};
use cadenza_dev::stack::StackFile;

fn client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn stream(stack: &StackFile, track: &str) -> StreamResponse {
    let resp = client()
        .post(format!("{}/v1/playback/stream", stack.control.url))
        .bearer_auth(&stack.demo.user_token)
        .json(&serde_json::json!({ "track_id": track, "debug": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn registry(stack: &StackFile) -> CdnList {
    let resp = client()
        .get(format!("{}/v1/admin/cdns", stack.control.url))
        .bearer_auth(&stack.control.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The first 64 KiB of `url`, or the error a player would see.
async fn first_range(url: &str) -> Result<bytes::Bytes, String> {
    let resp = client().get(url).header("range", "bytes=0-65535").send().await.map_err(|e| e.to_string())?;
    if resp.status() != 206 {
        return Err(format!("status {}", resp.status()));
    }
    resp.bytes().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_dead_edge_leaves_new_answers_and_old_lists_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevConfig {
        data_dir: dir.path().to_owned(),
        base_port: 0,
        demo: DemoConfig { tracks: 1, first_seconds: 20, step_seconds: 3 },
        ..DevConfig::default()
    };
    assert_eq!(config.edges, 2, "the dev stack runs two POPs by default");
    let mut dev = cadenza_dev::start(config).await.unwrap();
    let stack = dev.stack().clone();
    assert_eq!(stack.edges.len(), 2);
    let track = stack.demo.track_ids[0].clone();

    // Both POPs up (the first probes run at start, then every 2 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = registry(&stack).await;
        let states: Vec<_> = list.cdns[0].pops.iter().map(|p| p.state.clone()).collect();
        if states == ["up", "up"] {
            break;
        }
        assert!(Instant::now() < deadline, "POPs never came up: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = stream(&stack, &track).await;
    assert_eq!(old.urls.len(), 2);
    assert_ne!(old.urls[0].pop, old.urls[1].pop);
    let origin = client()
        .get(format!("{}/audio/{}.ogg", stack.origin.url, old.file.file_id))
        .header("range", "bytes=0-65535")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(origin.starts_with(b"OggS"));
    for u in &old.urls {
        assert_eq!(first_range(&u.url).await.unwrap(), origin, "{} serves the file", u.pop);
    }

    // Kill the POP the URLs lead with.
    let dead = old.urls[0].pop.clone();
    assert!(dev.stop_edge(&dead).await.unwrap());
    let killed = Instant::now();

    // A player holding the old list: the first URL fails, the second works.
    let err = first_range(&old.urls[0].url).await.expect_err("the dead POP answers nothing");
    assert!(!err.is_empty());
    assert_eq!(first_range(&old.urls[1].url).await.unwrap(), origin, "the second URL serves the same bytes");

    // New answers stop naming the dead POP within 10 s.
    let avoided_after = loop {
        let now = stream(&stack, &track).await;
        if now.urls.iter().all(|u| u.pop != dead) {
            let decision = now.decision.expect("debug decision");
            let c = decision.candidates.iter().find(|c| c.pop == dead).unwrap();
            assert_eq!((c.state.as_str(), c.skipped.as_deref()), ("down", Some("down")));
            assert_eq!(first_range(&now.urls[0].url).await.unwrap(), origin);
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "{dead} still named 10 s after it died");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("failover: {dead} left new answers {avoided_after:?} after it died");
    let list = registry(&stack).await;
    let p = list.cdns[0].pops.iter().find(|p| p.name == dead).unwrap();
    assert_eq!(p.state, "down");
    dev.shutdown().await.unwrap();
}
