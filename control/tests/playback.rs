//! End-to-end tests of `POST /v1/playback/stream`: the quality rule, the
//! signed URLs as an edge verifies them, every error, and concurrency. Real
//! server on loopback, real HTTP, real SQLite — and real PostgreSQL when
//! `CADENZA_TEST_DATABASE_URL` is set. Every body runs on each database.

mod support;

use cadenza_config::ladder::Rung;
use cadenza_control::types::{CreateUserResponse, StreamRequest, StreamResponse, Tier};
use serde_json::json;
use support::{Server, TTL_SECS, TestDb, expect_error};

async fn stream(s: &Server, token: &str, body: &serde_json::Value) -> reqwest::Response {
    s.http
        .post(s.url("/v1/playback/stream"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("stream request")
}

#[tokio::test]
async fn stream_quality_rules_and_signed_urls() {
    for db in support::databases().await {
        stream_quality_rules_on(&db).await;
    }
}

async fn stream_quality_rules_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let premium = s.user(Tier::Premium).await;
    let free = s.user(Tier::Free).await;
    let cases: [(&CreateUserResponse, serde_json::Value, u32); 10] = [
        (&premium, json!({"track_id": "t1"}), 320),
        (&free, json!({"track_id": "t1"}), 160),
        (&free, json!({"track_id": "t1", "quality": 320}), 160),
        (&premium, json!({"track_id": "t1", "quality": 320, "data_saver": true}), 24),
        (&free, json!({"track_id": "t1", "data_saver": true}), 24),
        (&premium, json!({"track_id": "t1", "quality": 96}), 96),
        (&premium, json!({"track_id": "t1", "connection": "cellular"}), 96),
        (&premium, json!({"track_id": "t1", "connection": "wifi"}), 320),
        // t2 has only 96 and 160: highest published at or below the target,
        (&premium, json!({"track_id": "t2"}), 160),
        // else the lowest published.
        (&premium, json!({"track_id": "t2", "data_saver": true}), 96),
    ];
    let verifier = support::verifier();
    let config = support::config(&db.url);
    for (user, body, want) in cases {
        let before = cadenza_config::unix_now();
        let resp = stream(&s, &user.token, &body).await;
        assert_eq!(resp.status(), 200, "{db:?} {body}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let after = cadenza_config::unix_now();
        let r: StreamResponse = resp.json().await.unwrap();
        assert_eq!(r.quality_kbps, want, "{db:?} {body}");
        let track = body["track_id"].as_str().unwrap();
        assert_eq!(r.track_id.as_str(), track);
        let rung = Rung::from_kbps(want).unwrap();
        assert_eq!(r.file.file_id, support::file_id(track, rung));
        assert_eq!(r.file.size, u64::from(want) * 30 * 125);
        assert_eq!(r.file.duration_ms, 30_000);
        assert_eq!(r.file.sample_rate, rung.output_rate(44_100));
        assert_eq!(r.file.channels, rung.channels());
        // The chosen file's own gain, not the master's 5.5 dB.
        assert_eq!(r.file.gain_db, support::rendition_gain(rung));
        assert_eq!(r.file.album_gain_db, None);
        assert_eq!(r.file.mime, "audio/ogg; codecs=vorbis");
        assert_eq!(r.file.seek_table, format!("/v1/files/{}/seek-table", r.file.file_id));
        assert!(
            (before + TTL_SECS..=after + TTL_SECS).contains(&r.expires_at),
            "expires_at {} not now + ttl",
            r.expires_at
        );

        // One URL per edge (fewer edges than `selection.urls`), each on
        // its own POP of the `[[edges]]` CDN, each verifying as an edge would.
        assert_eq!(r.urls.len(), config.edges.len());
        assert_ne!(r.urls[0].pop, r.urls[1].pop);
        assert!(!r.decision_id.is_empty());
        assert_eq!(r.decision, None, "reasons only with debug");
        for u in &r.urls {
            let edge = config.edges.iter().find(|e| e.name == u.pop).expect("a configured edge");
            assert_eq!(u.cdn, "cadenza");
            let rest = u.url.strip_prefix(&edge.url).expect("edge base");
            let (path, query) = rest.split_once('?').expect("query");
            assert_eq!(path, format!("/a/{}.ogg", r.file.file_id));
            let v = verifier.verify(path, Some(query), cadenza_config::unix_now()).expect("verifies");
            assert_eq!(v.uid, user.id);
            assert_eq!(v.kid.as_str(), "k-old", "signed with the current key");
            assert_eq!(v.exp, r.expires_at);
            // Bound to its path and user.
            let other = format!("/a/{}.ogg", support::file_id("t9", rung));
            assert!(verifier.verify(&other, Some(query), after).is_err());
            let forged = query.replace(&format!("uid={}", user.id), "uid=mallory");
            assert!(verifier.verify(path, Some(&forged), after).is_err());
        }
    }

    // The seek table of a chosen file, immutable by its content id.
    let r = stream(&s, &premium.token, &json!({"track_id": "t1", "quality": 96})).await;
    let r: StreamResponse = r.json().await.unwrap();
    let resp = s.get(&r.file.seek_table, Some(&premium.token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "private, max-age=31536000, immutable");
    let table: cadenza_control::types::SeekTable = resp.json().await.unwrap();
    assert_eq!(table.file_id, r.file.file_id);
    assert_eq!(table.duration_ms, 30_000);
    assert_eq!(table.points.len(), 30);
    assert_eq!(table.points[2], [2_000, 4_000 + 2 * 96 * 100]);
    let unknown = format!("/v1/files/{}/seek-table", support::file_id("t9", Rung::K96));
    support::expect_error(s.get(&unknown, Some(&premium.token)).await, 404, "file_not_found").await;
    support::expect_error(
        s.get("/v1/files/xyz/seek-table", Some(&premium.token)).await,
        400,
        "invalid_request",
    )
    .await;

    // Typed request bodies work too.
    let typed = StreamRequest {
        track_id: "t1".parse().unwrap(),
        preferred_quality: Some(160),
        quality: None,
        connection: None,
        data_saver: None,
        region: None,
        debug: None,
    };
    let resp = stream(&s, &premium.token, &serde_json::to_value(&typed).unwrap()).await;
    assert_eq!(resp.json::<StreamResponse>().await.unwrap().quality_kbps, 160);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn stream_errors() {
    for db in support::databases().await {
        stream_errors_on(&db).await;
    }
}

async fn stream_errors_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let user = s.user(Tier::Premium).await;

    let msg =
        expect_error(stream(&s, &user.token, &json!({"track_id": "t3"})).await, 403, "not_released").await;
    assert!(msg.contains("t3"), "{msg}");
    expect_error(stream(&s, &user.token, &json!({"track_id": "ghost"})).await, 404, "track_not_found").await;
    let msg = expect_error(
        stream(&s, &user.token, &json!({"track_id": "t1", "quality": 128})).await,
        400,
        "invalid_quality",
    )
    .await;
    assert!(msg.contains("quality") && msg.contains("128"), "{msg}");

    // Bad bodies: the JSON error shape, naming the problem.
    for (body, needle) in [
        (json!({"track_id": "t1", "connection": "5g"}), "connection"),
        (json!({"track_id": "t1", "data_saver": "yes"}), "data_saver"),
        (json!({"track_id": "t1", "qualty": 96}), "qualty"),
        (json!({"track_id": "../t1"}), "track_id"),
        (json!({"quality": 96}), "track_id"),
        (json!("t1"), "body: invalid type"),
    ] {
        let msg = expect_error(stream(&s, &user.token, &body).await, 400, "invalid_request").await;
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let resp = s
        .http
        .post(s.url("/v1/playback/stream"))
        .bearer_auth(&user.token)
        .header("content-type", "application/json")
        .body("{\"track_id\": ")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_request").await;
    let resp = s
        .http
        .post(s.url("/v1/playback/stream"))
        .bearer_auth(&user.token)
        .body("{\"track_id\": \"t1\"}")
        .send()
        .await
        .unwrap();
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.contains("content-type"), "{msg}");
    let resp = s
        .http
        .post(s.url("/v1/playback/stream"))
        .bearer_auth(&user.token)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "payload_too_large").await;

    // Auth comes before the body.
    let resp = s.http.post(s.url("/v1/playback/stream")).body("garbage").send().await.unwrap();
    expect_error(resp, 401, "unauthorized").await;

    // A track whose files were withdrawn.
    support::sql_exec(&db.url, "DELETE FROM track_files WHERE track_id = 't2'").await;
    expect_error(stream(&s, &user.token, &json!({"track_id": "t2"})).await, 409, "no_audio").await;
    s.stop().await.unwrap();

    // No edges configured.
    let mut config = support::config(&db.url);
    config.edges.clear();
    let s = Server::start_with(config).await;
    expect_error(stream(&s, &user.token, &json!({"track_id": "t1"})).await, 503, "no_edges").await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_imports_and_streams() {
    for db in support::databases().await {
        concurrent_on(&db).await;
    }
}

/// Writers (imports, token bookkeeping) and readers at once: on SQLite this
/// exercises WAL, `BEGIN IMMEDIATE` and the busy timeout; nothing may fail
/// with "database is locked".
async fn concurrent_on(db: &TestDb) {
    let s = std::sync::Arc::new(Server::start(&db.url).await);
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let mut users = Vec::new();
    for _ in 0..4 {
        users.push(s.user(Tier::Premium).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let s = s.clone();
        tasks.spawn(async move {
            let mut batch = support::catalog();
            batch.tracks[1].title = format!("Song t2 take {i}");
            s.import(&batch).await.status().as_u16()
        });
    }
    for (i, user) in users.iter().enumerate() {
        for _ in 0..5 {
            let s = s.clone();
            let token = user.token.clone();
            let track = if i % 2 == 0 { "t1" } else { "t2" };
            tasks.spawn(
                async move { stream(&s, &token, &json!({"track_id": track})).await.status().as_u16() },
            );
        }
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200, "{db:?}");
    }
    let s = std::sync::Arc::into_inner(s).expect("all tasks done");
    s.stop().await.unwrap();
}

/// The key ring reloads at run time (`POST /v1/admin/signing/reload`):
/// a key appended to the key file signs new URLs at once, and a broken
/// file keeps the ring in use and says why.
#[tokio::test]
async fn a_signing_key_reload_changes_the_key_new_urls_are_signed_with() {
    use cadenza_config::service::{KeyFile, KeySpec, SigningConfig};
    use cadenza_config::token::SigningKey;

    let db = support::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.toml");
    let write = |keys: &[&SigningKey]| {
        let file = KeyFile { keys: keys.iter().map(|k| KeySpec::from_key(k)).collect() };
        std::fs::write(&keys_file, file.to_toml()).unwrap();
    };
    let (k1, k2) = (SigningKey::generate("k1".parse().unwrap()), SigningKey::generate("k2".parse().unwrap()));
    write(&[&k1]);
    let mut config = support::config(&db.url);
    config.signing = SigningConfig { keys_file: Some(keys_file.clone()), ..SigningConfig::default() };
    let s = Server::start_with(config).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let user = s.user(Tier::Premium).await;
    let kid = || async {
        let resp = stream(&s, &user.token, &json!({"track_id": "t1"})).await;
        assert_eq!(resp.status(), 200);
        let r: StreamResponse = resp.json().await.unwrap();
        let query = r.urls[0].url.split_once('?').unwrap().1.to_owned();
        query.split('&').find_map(|p| p.strip_prefix("kid=")).unwrap().to_owned()
    };
    let reload = || s.http.post(s.url("/v1/admin/signing/reload")).bearer_auth(support::ADMIN_TOKEN).send();
    let metrics = || async { s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    assert_eq!(kid().await, "k1");
    assert!(metrics().await.contains(r#"cadenza_control_signing_current_key{kid="k1"} 1"#));

    // k2 appended: the last key signs.
    write(&[&k1, &k2]);
    let resp = reload().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap(),
        json!({"keys": ["k1", "k2"], "current": "k2"})
    );
    assert_eq!(kid().await, "k2");
    let m = metrics().await;
    assert!(m.contains(r#"cadenza_control_signing_current_key{kid="k2"} 1"#), "{m}");
    assert!(!m.contains(r#"cadenza_control_signing_current_key{kid="k1"}"#), "{m}");

    // A short secret: 500 naming the key, the ring in use stays.
    std::fs::write(&keys_file, "[[keys]]\nid = \"k3\"\nsecret = \"c2hvcnQ\"\n").unwrap();
    let resp = reload().await.unwrap();
    let message = expect_error(resp, 500, "signing_reload_failed").await;
    assert!(message.contains("keys[0].secret"), "{message}");
    assert!(message.contains(&keys_file.display().to_string()), "{message}");
    assert_eq!(kid().await, "k2");
    let m = metrics().await;
    assert!(m.contains(r#"cadenza_control_signing_reloads_total{result="error"} 1"#), "{m}");
    assert!(m.contains(r#"cadenza_control_signing_reloads_total{result="ok"} 1"#), "{m}");

    // A user's token is not the admin's.
    let resp = s.http.post(s.url("/v1/admin/signing/reload")).bearer_auth(&user.token).send().await.unwrap();
    expect_error(resp, 403, "forbidden").await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn start_delay_spreads_a_fresh_release_only() {
    for db in support::databases().await {
        start_delay_on(&db).await;
    }
}

/// An album released a second ago gets `start_delay_ms` in
/// `0..=release_jitter` (2 s by default), varying between answers; an album
/// out for an hour (past the 15 min window) and one without a release time
/// get 0.
async fn start_delay_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    let now = i64::try_from(cadenza_config::unix_now()).unwrap();
    let mut catalog = support::catalog();
    catalog.albums[0].release_at = Some(now - 3600);
    catalog.albums[1].release_at = Some(now - 1);
    assert_eq!(s.import(&catalog).await.status(), 200);
    let user = s.user(Tier::Premium).await;
    let mut delays = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let resp = stream(&s, &user.token, &json!({"track_id": "t3"})).await;
        assert_eq!(resp.status(), 200, "{db:?}");
        let r: StreamResponse = resp.json().await.unwrap();
        assert!(r.start_delay_ms <= 2000, "{db:?} {}", r.start_delay_ms);
        delays.insert(r.start_delay_ms);
    }
    assert!(delays.len() > 1, "{db:?}: one delay for every answer: {delays:?}");
    for track in ["t1", "t2"] {
        let resp = stream(&s, &user.token, &json!({"track_id": track})).await;
        assert_eq!(resp.status(), 200, "{db:?}");
        assert_eq!(resp.json::<StreamResponse>().await.unwrap().start_delay_ms, 0, "{db:?} {track}");
    }
    s.stop().await.unwrap();

    // Without a release time there is no window either.
    let s = Server::start(&db.url).await;
    let user = s.user(Tier::Premium).await;
    let mut catalog = support::catalog();
    catalog.albums[1].release_at = None;
    assert_eq!(s.import(&catalog).await.status(), 200);
    let resp = stream(&s, &user.token, &json!({"track_id": "t3"})).await;
    assert_eq!(resp.json::<StreamResponse>().await.unwrap().start_delay_ms, 0, "{db:?}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn past_max_in_flight_stream_requests_are_shed_with_429() {
    // SQLite is enough: the limit is in front of the handler, not the database.
    let db = support::sqlite();
    let mut config = support::config(&db.url);
    config.playback.max_in_flight = 1;
    let s = Server::start_with(config).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let user = s.user(Tier::Premium).await;

    // A request whose body has not all arrived holds the one place: its
    // head is in, the handler waits for the rest.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = br#"{"track_id":"t1"}"#;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/playback/stream HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        user.token,
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..5]).await.unwrap();

    // The next one is shed at once, with a Retry-After of 1 or 2 s. The
    // slow request may take a moment to be dispatched: bounded retries.
    let mut shed = None;
    for _ in 0..50 {
        let resp = stream(&s, &user.token, &json!({"track_id": "t1"})).await;
        if resp.status() == 429 {
            shed = Some(resp);
            break;
        }
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let resp = shed.expect("a request past max_in_flight is shed");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    expect_error(resp, 429, "overloaded").await;

    // The held request completes normally, and frees its place.
    slow.write_all(&body[5..]).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let resp = stream(&s, &user.token, &json!({"track_id": "t1"})).await;
    assert_eq!(resp.status(), 200);
    let metrics = s.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains(r#"cadenza_control_rate_limited_total{category="overloaded"} 1"#), "{metrics}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn no_url_or_file_id_for_an_embargoed_track() {
    for db in support::databases().await {
        embargo_model_on(&db).await;
    }
}

/// docs/security.md, "Embargoed albums on warm edges": before `release_at`
/// neither the stream routes nor the catalog give away a URL or a file id
/// of the album; once the release time is in the past the URL comes at
/// once (this process's import clears its playback cache).
async fn embargo_model_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    let mut catalog = support::catalog();
    assert_eq!(s.import(&catalog).await.status(), 200);
    let user = s.user(Tier::Premium).await;
    // The stream routes.
    expect_error(stream(&s, &user.token, &json!({"track_id": "t3"})).await, 403, "not_released").await;
    let resp = s.post("/v1/playback/prefetch", Some(&user.token), &json!({"track_ids": ["t3"]})).await;
    let text = resp.text().await.unwrap();
    assert!(text.contains("not_released") && !text.contains("/a/") && !text.contains("file_id"), "{text}");
    // The catalog routes name the album and its release time, nothing to fetch.
    for path in [
        "/v1/tracks/t3",
        "/v1/albums/al2",
        "/v1/albums/al2/tracks",
        "/v1/artists/ar1/albums",
        "/v1/tracks?ids=t3",
    ] {
        let resp = s.get(path, Some(&user.token)).await;
        assert_eq!(resp.status(), 200, "{db:?} {path}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("t3") || body.contains("al2"), "{db:?} {path}: {body}");
        for secret in ["file_id", "/a/", "sig=", ".ogg"] {
            assert!(!body.contains(secret), "{db:?} {path} shows {secret}: {body}");
        }
    }
    // Release now: the next request gets URLs.
    catalog.albums[1].release_at = Some(i64::try_from(cadenza_config::unix_now()).unwrap() - 1);
    assert_eq!(s.import(&catalog).await.status(), 200);
    let resp = stream(&s, &user.token, &json!({"track_id": "t3"})).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    assert!(resp.json::<StreamResponse>().await.unwrap().urls.len() >= 2);
    s.stop().await.unwrap();
}
