//! The CDN registry and the selection pipeline, over real HTTP: stickiness,
//! cost weighting, regions, players' reports, active probes of real (tiny)
//! servers, the admin API across two replicas of one database, nginx
//! `secure_link` URLs, and prefetch. Every body runs on SQLite and, when
//! `CADENZA_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cadenza_config::service::{CdnConfig, CdnKind, ControlConfig, PopConfig};
use cadenza_config::units::{HumanDuration, Secret};
use cadenza_control::types::{CdnList, CdnView, PrefetchResponse, StreamResponse, Tier};
use serde_json::json;
use support::{ADMIN_TOKEN, Server, TestDb, expect_error};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn pop(name: &str, region: &str) -> PopConfig {
    PopConfig {
        region: region.into(),
        probe: false,
        ..PopConfig::new(name, format!("https://{name}.cdn.test"))
    }
}

fn cdn(name: &str, cost: f64, pops: Vec<PopConfig>) -> CdnConfig {
    CdnConfig {
        name: name.into(),
        kind: CdnKind::Cadenza,
        secret: Secret::default(),
        cost_per_gb: cost,
        weight: 100,
        pops,
    }
}

/// The test config with these CDNs instead of `[[edges]]`, no rate limits
/// (these tests ask hundreds of times) and fast health settings.
fn config(db: &TestDb, cdns: Vec<CdnConfig>) -> ControlConfig {
    let mut c = support::config(&db.url);
    c.edges.clear();
    c.cdns = cdns;
    c.rate_limits.enabled = false;
    c.health.interval = HumanDuration::millis(200);
    c.health.timeout = HumanDuration::millis(150);
    c.health.fall = 2;
    c.health.rise = 1;
    c.health.min_reports = 10;
    c
}

async fn stream(s: &Server, token: &str, body: serde_json::Value) -> StreamResponse {
    let resp = s.post("/v1/playback/stream", Some(token), &body).await;
    assert_eq!(resp.status(), 200, "{body}");
    resp.json().await.expect("stream json")
}

#[tokio::test]
async fn selection_is_sticky_cost_weighted_and_explained() {
    for db in support::databases().await {
        sticky_on(&db).await;
    }
}

async fn sticky_on(db: &TestDb) {
    let cheap = cdn("cheap", 0.01, vec![pop("c1", ""), pop("c2", "")]);
    let dear = cdn("dear", 0.03, vec![pop("d1", ""), pop("d2", "")]);
    let s = Server::start_with(config(db, vec![cheap, dear])).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let u = s.user(Tier::Premium).await;

    // Sticky: the same track from the same region, the same order.
    let first = stream(&s, &u.token, json!({"track_id": "t1", "region": "r1"})).await;
    assert_eq!(first.urls.len(), 3, "selection.urls");
    for _ in 0..10 {
        let again = stream(&s, &u.token, json!({"track_id": "t1", "region": "r1"})).await;
        let pops = |r: &StreamResponse| r.urls.iter().map(|u| u.pop.clone()).collect::<Vec<_>>();
        assert_eq!(pops(&again), pops(&first));
        assert_ne!(again.decision_id, first.decision_id, "each decision has its own id");
    }
    // Different POPs, and the second URL on the other CDN.
    assert_ne!(first.urls[0].pop, first.urls[1].pop);
    assert_ne!(first.urls[0].cdn, first.urls[1].cdn);

    // Cost weighting: POPs without a region serve every region, and the
    // region is part of the stickiness key, so 400 regions are 400 draws.
    // Equal weights at a third of the price: three in four lead on `cheap`.
    let mut leads: HashMap<String, u32> = HashMap::new();
    for r in 0..400 {
        let a = stream(&s, &u.token, json!({"track_id": "t1", "region": format!("r{r}")})).await;
        *leads.entry(a.urls[0].cdn.clone()).or_default() += 1;
    }
    let share = f64::from(leads["cheap"]) / 400.0;
    assert!((0.68..0.82).contains(&share), "{db:?}: cheap CDN led {share} of answers");
    let mut per_pop: HashMap<String, u32> = HashMap::new();
    for r in 0..200 {
        let a = stream(&s, &u.token, json!({"track_id": "t2", "region": format!("r{r}")})).await;
        *per_pop.entry(a.urls[0].pop.clone()).or_default() += 1;
    }
    assert_eq!(per_pop.len(), 4, "every POP leads some: {per_pop:?}");

    // The reasons, under the debug flag.
    let d = stream(&s, &u.token, json!({"track_id": "t1", "region": "r1", "debug": true})).await;
    let view = d.decision.expect("debug decision");
    assert_eq!(view.id, d.decision_id);
    assert_eq!(view.region, "r1");
    assert_eq!(view.candidates.len(), 4);
    let leader = view.candidates.iter().find(|c| c.rank == Some(0)).expect("a leader");
    assert_eq!(leader.pop, d.urls[0].pop);
    let best = view.candidates.iter().map(|c| c.score).fold(f64::MIN, f64::max);
    assert_eq!(leader.score, best, "the highest rendezvous score leads");
    let cheap_weight = view.candidates.iter().find(|c| c.pop == "c1").unwrap().weight;
    let dear_weight = view.candidates.iter().find(|c| c.pop == "d1").unwrap().weight;
    assert!((cheap_weight / dear_weight - 3.0).abs() < 1e-9, "{cheap_weight} vs {dear_weight}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn regions_come_from_the_body_the_header_or_the_default() {
    for db in support::databases().await {
        regions_on(&db).await;
    }
}

async fn regions_on(db: &TestDb) {
    let eu = cdn("eu", 1.0, vec![pop("fra", "eu"), pop("ams", "eu")]);
    let us = cdn("us", 1.0, vec![pop("iad", "us"), pop("sjc", "us")]);
    let mut c = config(db, vec![eu, us]);
    c.selection.default_region = "us".into();
    let s = Server::start_with(c).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let u = s.user(Tier::Free).await;
    let cdns = |r: &StreamResponse| r.urls.iter().map(|u| u.cdn.as_str()).collect::<Vec<_>>().join(",");

    let body_eu = stream(&s, &u.token, json!({"track_id": "t1", "region": "eu", "debug": true})).await;
    assert_eq!(cdns(&body_eu), "eu,eu,us", "in region first, then another region as the last resort");
    let skipped: Vec<_> =
        body_eu.decision.unwrap().candidates.into_iter().filter_map(|c| c.skipped).collect();
    assert_eq!(skipped, vec!["other_region", "other_region"]);

    let header_eu: StreamResponse = s
        .http
        .post(s.url("/v1/playback/stream"))
        .bearer_auth(&u.token)
        .header("x-client-region", "eu")
        .json(&json!({"track_id": "t1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cdns(&header_eu), "eu,eu,us");
    let default_us = stream(&s, &u.token, json!({"track_id": "t1"})).await;
    assert_eq!(cdns(&default_us), "us,us,eu");
    // A region nobody serves: every POP is in play.
    let elsewhere = stream(&s, &u.token, json!({"track_id": "t1", "region": "ap", "debug": true})).await;
    assert!(elsewhere.decision.unwrap().candidates.iter().all(|c| c.skipped.is_none()));
    // A malformed region in the body is the client's error; in the header it is ignored.
    let resp =
        s.post("/v1/playback/stream", Some(&u.token), &json!({"track_id": "t1", "region": "e u"})).await;
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.contains("region"), "{msg}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn players_reports_demote_a_failing_pop() {
    for db in support::databases().await {
        reports_on(&db).await;
    }
}

async fn reports_on(db: &TestDb) {
    let a = cdn("a", 1.0, vec![pop("a1", ""), pop("a2", ""), pop("a3", "")]);
    let s = Server::start_with(config(db, vec![a])).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let u = s.user(Tier::Premium).await;
    let before = stream(&s, &u.token, json!({"track_id": "t1"})).await;
    let bad = before.urls[0].pop.clone();
    let good = before.urls[1].pop.clone();

    // Errors from the leading POP: 10 failures of 12 reports.
    let mut reports: Vec<_> = (0..10).map(|_| json!({"cdn": "a", "pop": bad, "error": "http_5xx"})).collect();
    reports.push(json!({"cdn": "a", "pop": bad, "ttfb_ms": 30}));
    reports.push(json!({"cdn": "a", "pop": bad, "ttfb_ms": 30, "decision_id": before.decision_id}));
    reports.push(json!({"cdn": "a", "pop": "nowhere", "error": "connect"}));
    let resp = s.post("/v1/playback/report", Some(&u.token), &json!({ "reports": reports })).await;
    assert_eq!(resp.status(), 202);
    let counted: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(counted, json!({"accepted": 12, "unknown": 1}));

    let after = stream(&s, &u.token, json!({"track_id": "t1", "debug": true})).await;
    assert_ne!(after.urls[0].pop, bad, "an unavailable POP no longer leads");
    assert_eq!(after.urls.last().unwrap().pop, bad, "but stays as the last resort");
    let c = after.decision.unwrap().candidates.into_iter().find(|c| c.pop == bad).unwrap();
    assert_eq!(c.skipped.as_deref(), Some("availability"));
    assert!((c.availability.unwrap() - 2.0 / 12.0).abs() < 1e-9);

    // Slow first bytes: the good POP reports 400 ms, another 20 ms.
    let third = after.urls.iter().map(|u| u.pop.clone()).find(|p| *p != bad && *p != good).unwrap();
    let mut reports: Vec<_> = (0..10).map(|_| json!({"cdn": "a", "pop": good, "ttfb_ms": 400})).collect();
    reports.extend((0..10).map(|_| json!({"cdn": "a", "pop": third, "ttfb_ms": 20})));
    let resp = s.post("/v1/playback/report", Some(&u.token), &json!({ "reports": reports })).await;
    assert_eq!(resp.status(), 202);
    let slow = stream(&s, &u.token, json!({"track_id": "t1", "debug": true})).await;
    let order: Vec<_> = slow.urls.iter().map(|u| u.pop.clone()).collect();
    assert_eq!(order, vec![third, good.clone(), bad], "latency, then availability");
    let c = slow.decision.unwrap().candidates.into_iter().find(|c| c.pop == good).unwrap();
    assert_eq!(c.skipped.as_deref(), Some("latency"));

    // Bad reports.
    let resp = s.post("/v1/playback/report", Some(&u.token), &json!({"reports": []})).await;
    expect_error(resp, 400, "invalid_request").await;
    let resp = s
        .post(
            "/v1/playback/report",
            Some(&u.token),
            &json!({"reports": [{"cdn": "a", "pop": "a1", "error": "gone"}]}),
        )
        .await;
    expect_error(resp, 400, "invalid_request").await;
    s.stop().await.unwrap();
}

/// A probe target: answers every request `200 ok` and closes the
/// connection, until aborted (then its port refuses connections).
async fn probe_target() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { continue };
            conns.spawn(async move {
                let mut buf = [0u8; 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
                    .await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn a_pop_whose_probe_fails_leaves_new_decisions() {
    for db in support::databases().await {
        probes_on(&db).await;
    }
}

async fn probes_on(db: &TestDb) {
    let mut targets = Vec::new();
    let mut pops = Vec::new();
    for name in ["p1", "p2", "p3"] {
        let (url, task) = probe_target().await;
        let mut p = pop(name, "");
        p.admin_url = Some(url);
        p.probe = true;
        pops.push(p);
        targets.push((name.to_owned(), task));
    }
    let s = Server::start_with(config(db, vec![cdn("edge", 1.0, pops)])).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let u = s.user(Tier::Premium).await;

    // Wait (bounded) for the first probes: every POP up.
    let states = |list: CdnList| list.cdns[0].pops.iter().map(|p| p.state.clone()).collect::<Vec<_>>();
    let registry =
        || async { s.get("/v1/admin/cdns", Some(ADMIN_TOKEN)).await.json::<CdnList>().await.unwrap() };
    let deadline = Instant::now() + Duration::from_secs(10);
    while states(registry().await) != ["up", "up", "up"] {
        assert!(Instant::now() < deadline, "POPs never came up: {:?}", states(registry().await));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = stream(&s, &u.token, json!({"track_id": "t1"})).await;
    let dead = before.urls[0].pop.clone();

    // Kill the leading POP's server; new answers must stop naming it.
    let (_, task) = targets.iter().find(|(n, _)| *n == dead).unwrap();
    task.abort();
    let killed = Instant::now();
    loop {
        let now = stream(&s, &u.token, json!({"track_id": "t1"})).await;
        if now.urls.iter().all(|u| u.pop != dead) {
            assert_eq!(now.urls.len(), 2, "the two live POPs");
            assert_eq!(now.urls[0].pop, before.urls[1].pop, "the old second choice leads");
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "{dead} still named 10 s after it died");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = registry().await;
    let p = view.cdns[0].pops.iter().find(|p| p.name == dead).unwrap();
    assert_eq!(p.state, "down");
    assert_eq!(p.last_error.as_deref(), Some("connect"));
    let text = s.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains(&format!("cadenza_control_pop_up{{cdn=\"edge\",pop=\"{dead}\"}} 0")), "{text}");
    s.stop().await.unwrap();
    for (_, t) in targets {
        t.abort();
    }
}

#[tokio::test]
async fn the_registry_admin_api_across_two_replicas() {
    for db in support::databases().await {
        admin_on(&db).await;
    }
}

async fn admin_on(db: &TestDb) {
    let base = cdn("base", 1.0, vec![pop("b1", "")]);
    let a = Server::start_with(config(db, vec![base.clone()])).await;
    let b = Server::start_with(config(db, vec![base])).await;
    assert_eq!(a.import(&support::catalog()).await.status(), 200);
    let u = a.user(Tier::Premium).await;
    let secret = "nginx-secret-0123456789";
    let spec = json!({"kind": "nginx_secure_link", "secret": secret, "cost_per_gb": 0.5,
        "pops": [{"name": "ngx1", "url": "http://127.0.0.1:9", "region": "eu", "probe": false}]});
    let put = |s: &Server, name: &str, body: serde_json::Value| {
        let req = s.http.put(s.url(&format!("/v1/admin/cdns/{name}"))).bearer_auth(ADMIN_TOKEN).json(&body);
        async move { req.send().await.unwrap() }
    };

    let created = put(&a, "ngx", spec.clone()).await;
    assert_eq!(created.status(), 201);
    let text = created.text().await.unwrap();
    assert!(!text.contains(secret), "the secret is never shown: {text}");
    let view: CdnView = serde_json::from_str(&text).unwrap();
    assert!(view.has_secret);
    assert_eq!((view.source.as_str(), view.pops[0].probe_url.as_deref()), ("api", None));
    assert_eq!(put(&a, "ngx", spec.clone()).await.status(), 200);

    // This replica signs for it at once: an nginx secure_link URL.
    let r = stream(&a, &u.token, json!({"track_id": "t1"})).await;
    let ngx = r.urls.iter().find(|u| u.cdn == "ngx").expect("an nginx URL");
    let (path, query) = ngx.url.strip_prefix("http://127.0.0.1:9").unwrap().split_once('?').unwrap();
    let want = cadenza_config::secure_link::sign_query(secret, path, &u.id, r.expires_at);
    assert_eq!(query, want);
    // The other replica follows within a health interval or two.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = stream(&b, &u.token, json!({"track_id": "t1"})).await;
        if r.urls.iter().any(|u| u.cdn == "ngx") {
            break;
        }
        assert!(Instant::now() < deadline, "replica b never saw the new CDN");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Config CDNs are read-only; bad specs name the field.
    let msg = expect_error(put(&a, "base", spec.clone()).await, 409, "managed_by_config").await;
    assert!(msg.contains("base"), "{msg}");
    let mut bad = spec.clone();
    bad["pops"][0]["url"] = json!("http://x.test/");
    let msg = expect_error(put(&a, "ngx", bad).await, 400, "invalid_request").await;
    assert!(msg.contains("pops[0].url"), "{msg}");
    let mut bad = spec.clone();
    bad["secret"] = json!("short");
    let msg = expect_error(put(&a, "ngx", bad).await, 400, "invalid_request").await;
    assert!(msg.contains("secret") && !msg.contains("short"), "{msg}");
    expect_error(put(&a, "bad%20name", spec.clone()).await, 400, "invalid_request").await;
    expect_error(put(&a, "ngx", json!({"kind": "akamai", "pops": []})).await, 400, "invalid_request").await;

    // Delete: gone here at once, and from the other replica soon.
    let del = |s: &Server, name: &str| {
        let req = s.http.delete(s.url(&format!("/v1/admin/cdns/{name}"))).bearer_auth(ADMIN_TOKEN);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(del(&a, "ngx").await.status(), 204);
    expect_error(del(&a, "ngx").await, 404, "cdn_not_found").await;
    expect_error(del(&a, "base").await, 409, "managed_by_config").await;
    let r = stream(&a, &u.token, json!({"track_id": "t1"})).await;
    assert!(r.urls.iter().all(|u| u.cdn != "ngx"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream(&b, &u.token, json!({"track_id": "t1"})).await.urls.iter().any(|u| u.cdn == "ngx") {
        assert!(Instant::now() < deadline, "replica b kept the deleted CDN");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list: CdnList = a.get("/v1/admin/cdns", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(list.cdns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["base"]);
    expect_error(a.get("/v1/admin/cdns", Some(&u.token)).await, 403, "forbidden").await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn prefetch_answers_each_track_of_a_queue() {
    for db in support::databases().await {
        prefetch_on(&db).await;
    }
}

async fn prefetch_on(db: &TestDb) {
    let s = Server::start_with(config(db, vec![cdn("a", 1.0, vec![pop("a1", ""), pop("a2", "")])])).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let u = s.user(Tier::Free).await;
    let resp = s
        .post(
            "/v1/playback/prefetch",
            Some(&u.token),
            &json!({"track_ids": ["t1", "t3", "ghost", "t2"], "connection": "cellular"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let r: PrefetchResponse = resp.json().await.unwrap();
    let ids: Vec<_> = r.items.iter().map(|i| i.track_id.as_str()).collect();
    assert_eq!(ids, ["t1", "t3", "ghost", "t2"]);
    let t1 = r.items[0].stream.as_ref().expect("t1 streams");
    assert_eq!((t1.quality_kbps, t1.urls.len()), (96, 2));
    let single = stream(&s, &u.token, json!({"track_id": "t1", "connection": "cellular"})).await;
    assert_eq!(
        single.urls.iter().map(|u| &u.pop).collect::<Vec<_>>(),
        t1.urls.iter().map(|u| &u.pop).collect::<Vec<_>>()
    );
    let e = r.items[1].error.as_ref().expect("t3 is embargoed");
    assert_eq!((e.status, e.code.as_str()), (403, "not_released"));
    let e = r.items[2].error.as_ref().expect("no such track");
    assert_eq!((e.status, e.code.as_str()), (404, "track_not_found"));
    assert!(r.items[3].stream.is_some());

    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let resp = s.post("/v1/playback/prefetch", Some(&u.token), &json!({ "track_ids": many })).await;
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.contains("track_ids"), "{msg}");
    let resp = s
        .post("/v1/playback/prefetch", Some(&u.token), &json!({"track_ids": ["t1"], "preferred_quality": 5}))
        .await;
    expect_error(resp, 400, "invalid_quality").await;
    s.stop().await.unwrap();
}
