//! Playback events end to end: `POST /v1/events`, the stream rule, the
//! day rule, idempotency, every per-event rejection and every error, the
//! listening history, royalties and popularity. Real server on loopback,
//! real HTTP, real SQLite — and real PostgreSQL when
//! `CADENZA_TEST_DATABASE_URL` is set. Every body runs on each database.
//! (`events_prop.rs` holds the property test of exact counting.)

mod support;

use std::collections::BTreeMap;

use cadenza_control::types::{
    CreateUserResponse, EventBatchResponse, HistoryItem, Paging, PopularityResponse, RejectCode, Tier,
    TrackResponse,
};
use serde_json::{Value, json};
use support::events::{DAY_MS, catalog_with_lengths, ev, now_ms, post, recent_royalties, send, utc_day};
use support::{ADMIN_TOKEN, Server, TestDb, expect_error};

async fn setup(db: &TestDb) -> (Server, CreateUserResponse) {
    let mut config = support::config(&db.url);
    config.rate_limits.enabled = false;
    let s = Server::start_with(config).await;
    assert_eq!(s.import(&catalog_with_lengths()).await.status(), 200);
    let user = s.user(Tier::Premium).await;
    (s, user)
}

fn streams_of(counts: &BTreeMap<(String, String), u64>, track: &str) -> u64 {
    counts.iter().filter(|((t, _), _)| t == track).map(|(_, n)| n).sum()
}

async fn history(s: &Server, token: &str, query: &str) -> Paging<HistoryItem> {
    let resp = s.get(&format!("/v1/me/history{query}"), Some(token)).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_play_streams_once_past_the_threshold() {
    for db in support::databases().await {
        streams_on(&db).await;
    }
}

async fn streams_on(db: &TestDb) {
    let (s, user) = setup(db).await;
    let token = user.token.as_str();
    let at = now_ms() - 3_600_000;
    let today = utc_day(at);

    // long (200 s): the threshold is 30 s.
    let r = send(
        &s,
        token,
        &[ev("a1", "pa", "long", "start", 0, at), ev("a2", "pa", "long", "progress", 29_999, at + 30_000)],
    )
    .await;
    assert_eq!((r.accepted, r.duplicates, r.rejected.len()), (2, 0, 0), "{db:?}");
    assert_eq!(streams_of(&recent_royalties(&s).await, "long"), 0, "{db:?}: under 30 s");
    let r = send(&s, token, &[ev("a3", "pa", "long", "progress", 30_000, at + 31_000)]).await;
    assert_eq!(r.accepted, 1);
    let counts = recent_royalties(&s).await;
    assert_eq!(counts.get(&("long".to_owned(), today.clone())), Some(&1), "{db:?}: {counts:?}");
    // More of the same play, and the whole thing again: still one stream.
    send(&s, token, &[ev("a4", "pa", "long", "complete", 200_000, at + 200_000)]).await;
    let again = send(
        &s,
        token,
        &[ev("a1", "pa", "long", "start", 0, at), ev("a3", "pa", "long", "progress", 30_000, at + 31_000)],
    )
    .await;
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    assert_eq!(streams_of(&recent_royalties(&s).await, "long"), 1, "{db:?}");

    // short (20 s): half the track, 10 s.
    send(&s, token, &[ev("b1", "pb", "short", "progress", 10_000, at)]).await;
    // unknown duration: 30 s.
    send(&s, token, &[ev("c1", "pc", "unknown", "progress", 29_000, at)]).await;
    let counts = recent_royalties(&s).await;
    assert_eq!((streams_of(&counts, "short"), streams_of(&counts, "unknown")), (1, 0), "{db:?}");
    send(&s, token, &[ev("c2", "pc", "unknown", "pause", 31_000, at + 2_000)]).await;
    assert_eq!(streams_of(&recent_royalties(&s).await, "unknown"), 1, "{db:?}");

    // A seek past the threshold is not listening; playback after it is.
    send(
        &s,
        token,
        &[ev("d1", "pd", "long", "start", 0, at), ev("d2", "pd", "long", "seek", 150_000, at + 1_000)],
    )
    .await;
    assert_eq!(streams_of(&recent_royalties(&s).await, "long"), 1, "{db:?}: a seek alone");
    send(&s, token, &[ev("d3", "pd", "long", "skip", 151_000, at + 2_000)]).await;
    assert_eq!(streams_of(&recent_royalties(&s).await, "long"), 2, "{db:?}");

    // Two plays of one track are two streams; another user's ids are theirs.
    let other = s.user(Tier::Free).await;
    let r = send(&s, &other.token, &[ev("a1", "pa", "long", "progress", 40_000, at)]).await;
    assert_eq!((r.accepted, r.duplicates), (1, 0), "{db:?}: ids are per user");
    assert_eq!(streams_of(&recent_royalties(&s).await, "long"), 3, "{db:?}");

    // The history: each play once, newest first, folded from its events.
    let h = history(&s, token, "").await;
    assert_eq!(h.total, 4, "{db:?}");
    let pa = h.items.iter().find(|p| p.play_id == "pa").unwrap();
    assert_eq!(
        (
            pa.track_id.as_str(),
            pa.started_at_ms,
            pa.last_at_ms,
            pa.position_ms,
            pa.streamed,
            pa.streamed_at_ms,
            pa.events
        ),
        ("long", at, at + 200_000, 200_000, true, Some(at + 31_000), 4)
    );
    let pd = h.items.iter().find(|p| p.play_id == "pd").unwrap();
    assert_eq!(
        (pd.position_ms, pd.streamed_at_ms),
        (151_000, Some(at + 2_000)),
        "the seek is not a position"
    );
    let pc = h.items.iter().find(|p| p.play_id == "pc").unwrap();
    assert!(pc.streamed);
    assert!(h.items.windows(2).all(|w| w[0].started_at_ms >= w[1].started_at_ms), "newest first");
    let window = history(&s, token, &format!("?from_ms={}&to_ms={}&limit=1", at, at + 1)).await;
    assert_eq!((window.total, window.items.len()), (4, 1));
    assert!(window.next.is_some());
    assert_eq!(history(&s, token, &format!("?from_ms={}", at + 1)).await.total, 0);
    assert_eq!(history(&s, &other.token, "").await.total, 1, "{db:?}: each user sees their own");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_stream_counts_on_the_day_of_its_earliest_qualifying_event() {
    for db in support::databases().await {
        days_on(&db).await;
    }
}

async fn days_on(db: &TestDb) {
    let (s, user) = setup(db).await;
    let token = user.token.as_str();
    // Midnight UTC two days ago: the play crosses it.
    let midnight = (now_ms() / DAY_MS - 1) * DAY_MS;
    let (before, after) = (utc_day(midnight - 1), utc_day(midnight));
    assert_ne!(before, after);

    // The first qualifying event to arrive is after midnight …
    send(&s, token, &[ev("e2", "p", "long", "progress", 40_000, midnight + 10_000)]).await;
    let counts = recent_royalties(&s).await;
    assert_eq!(counts.get(&("long".to_owned(), after.clone())), Some(&1), "{db:?}");
    // … then an earlier one arrives (offline, out of order): the stream
    // moves to the day before, and the day after is left with none.
    send(&s, token, &[ev("e1", "p", "long", "progress", 30_000, midnight - 5_000)]).await;
    let counts = recent_royalties(&s).await;
    assert_eq!(counts.get(&("long".to_owned(), before.clone())), Some(&1), "{db:?}: {counts:?}");
    assert_eq!(counts.get(&("long".to_owned(), after.clone())), None, "{db:?}: {counts:?}");
    // A later or non-qualifying one changes nothing.
    send(
        &s,
        token,
        &[
            ev("e0", "p", "long", "start", 0, midnight - 40_000),
            ev("e3", "p", "long", "complete", 200_000, midnight + 200_000),
        ],
    )
    .await;
    assert_eq!(recent_royalties(&s).await, counts, "{db:?}");

    // The same events in the other order end the same.
    let user2 = s.user(Tier::Free).await;
    send(&s, &user2.token, &[ev("e1", "p", "long", "progress", 30_000, midnight - 5_000)]).await;
    send(&s, &user2.token, &[ev("e2", "p", "long", "progress", 40_000, midnight + 10_000)]).await;
    let counts = recent_royalties(&s).await;
    assert_eq!(counts.get(&("long".to_owned(), before.clone())), Some(&2), "{db:?}: {counts:?}");
    assert_eq!(counts.get(&("long".to_owned(), after)), None);

    // The report's range: only the days asked.
    let only = support::events::royalties(&s, &before, &before).await;
    assert_eq!(only.len(), 1);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn events_are_rejected_one_by_one_and_the_rest_commit() {
    for db in support::databases().await {
        rejections_on(&db).await;
    }
}

async fn rejections_on(db: &TestDb) {
    let (s, user) = setup(db).await;
    let token = user.token.as_str();
    let now = now_ms();
    send(&s, token, &[ev("x0", "px", "long", "start", 0, now)]).await;
    let batch = [
        ev("ok1", "p1", "short", "progress", 12_000, now),
        ev("nt", "p2", "ghost", "start", 0, now),
        ev("late", "p3", "long", "progress", 40_000, now - 31 * DAY_MS),
        ev("future", "p4", "long", "progress", 40_000, now + DAY_MS + 60_000),
        ev("past-end", "p5", "short", "progress", 25_001, now),
        ev("conflict", "px", "short", "progress", 15_000, now),
        ev("ok2", "p6", "long", "progress", 31_000, now - 29 * DAY_MS),
        ev("ok1", "p1", "short", "progress", 19_000, now),
    ];
    let r = send(&s, token, &batch).await;
    assert_eq!((r.accepted, r.duplicates), (2, 1), "{db:?}: {r:?}");
    let got: Vec<(u32, &str, RejectCode)> =
        r.rejected.iter().map(|x| (x.index, x.event_id.as_str(), x.code)).collect();
    assert_eq!(
        got,
        vec![
            (1, "nt", RejectCode::TrackNotFound),
            (2, "late", RejectCode::TooLate),
            (3, "future", RejectCode::InTheFuture),
            (4, "past-end", RejectCode::PositionOutOfRange),
            (5, "conflict", RejectCode::PlayConflict),
        ],
        "{db:?}"
    );
    for (x, field) in
        r.rejected.iter().zip(["track_id", "occurred_at_ms", "occurred_at_ms", "position_ms", "play_id"])
    {
        assert!(x.message.starts_with(&format!("events[{}].{field}: ", x.index)), "{}", x.message);
    }
    let counts = recent_royalties(&s).await;
    assert_eq!((streams_of(&counts, "short"), streams_of(&counts, "long")), (1, 1), "{db:?}: {counts:?}");
    let metrics = s.get("/metrics", None).await.text().await.unwrap();
    for line in [
        r#"cadenza_control_playback_events_total{outcome="accepted"} 3"#,
        r#"cadenza_control_playback_events_total{outcome="duplicate"} 1"#,
        r#"cadenza_control_playback_events_total{outcome="rejected"} 5"#,
        "cadenza_control_streams_total 2",
    ] {
        assert!(metrics.contains(line), "{db:?}: no {line:?} in /metrics");
    }
    // The repeated `ok1` was the batch's second copy: the first stands
    // (19 s was never folded in).
    let h = history(&s, token, "").await;
    assert_eq!(h.items.iter().find(|p| p.play_id == "p1").unwrap().position_ms, 12_000);

    // Rejected events are not stored: sent again, they are rejected again.
    let r = send(&s, token, &batch[1..3]).await;
    assert_eq!((r.accepted, r.duplicates, r.rejected.len()), (0, 0, 2));
    // A stored event that would be refused now is a duplicate, not a
    // rejection (the answer to a replay is always "you sent it before").
    let mut stale = batch[6].clone();
    stale["occurred_at_ms"] = json!(now - 40 * DAY_MS);
    let r = send(&s, token, &[stale]).await;
    assert_eq!((r.accepted, r.duplicates, r.rejected.len()), (0, 1, 0), "{db:?}: {r:?}");
    let r = send(&s, token, &[ev("x0", "px", "short", "start", 0, now)]).await;
    assert_eq!(
        (r.accepted, r.duplicates, r.rejected.len()),
        (0, 1, 0),
        "{db:?}: a stored event under a conflicting play"
    );

    // Within a batch, a new play takes the track of its first event.
    let r = send(
        &s,
        token,
        &[ev("n1", "pn", "t1", "start", 0, now), ev("n2", "pn", "t2", "progress", 20_000, now)],
    )
    .await;
    assert_eq!((r.accepted, r.rejected.len()), (1, 1));
    assert_eq!((r.rejected[0].index, r.rejected[0].code), (1, RejectCode::PlayConflict));
    // An event id reused under another play id is a duplicate, and leaves
    // no empty play behind.
    let r = send(&s, token, &[ev("n1", "pz", "t1", "progress", 20_000, now)]).await;
    assert_eq!((r.accepted, r.duplicates), (0, 1));
    assert!(history(&s, token, "").await.items.iter().all(|p| p.play_id != "pz" && p.events > 0));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn the_same_batch_sent_concurrently_is_counted_once() {
    for db in support::databases().await {
        concurrent_on(&db).await;
    }
}

async fn concurrent_on(db: &TestDb) {
    let (s, user) = setup(db).await;
    let at = now_ms() - 60_000;
    let batch: Vec<Value> = (0..40)
        .flat_map(|p| {
            let play = format!("c{p}");
            let (track, threshold) =
                [("t1", 15_000), ("t2", 15_000), ("long", 30_000), ("short", 10_000)][p % 4];
            vec![
                ev(&format!("{play}-a"), &play, track, "start", 0, at),
                ev(&format!("{play}-b"), &play, track, "progress", threshold, at + 30_000),
            ]
        })
        .collect();
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, token, batch) = (s.clone(), user.token.clone(), batch.clone());
        tasks.push(tokio::spawn(async move { send(&s, &token, &batch).await }));
    }
    let mut answers: Vec<EventBatchResponse> = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(answers.iter().map(|r| r.accepted).sum::<u64>(), 80, "{db:?}: each event accepted once");
    assert_eq!(answers.iter().map(|r| r.duplicates).sum::<u64>(), 7 * 80);
    let counts = recent_royalties(&s).await;
    assert_eq!(counts.values().sum::<u64>(), 40, "{db:?}: {counts:?}");
    assert_eq!(streams_of(&counts, "long"), 10);
    let s = std::sync::Arc::into_inner(s).unwrap();
    s.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_batches_are_400_and_store_nothing() {
    for db in support::databases().await {
        errors_on(&db).await;
    }
}

async fn errors_on(db: &TestDb) {
    let (s, user) = setup(db).await;
    let token = user.token.as_str();
    let now = now_ms();
    let good = ev("g1", "pg", "long", "progress", 40_000, now);
    let with = |field: &str, value: Value| {
        let mut e = good.clone();
        e[field] = value;
        e
    };
    let mut no_track = good.clone();
    no_track.as_object_mut().unwrap().remove("track_id");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"events": []}), "events: must hold 1 to 500 events, got 0"),
        (json!({"events": vec![good.clone(); 501]}), "events: must hold 1 to 500 events, got 501"),
        (json!({"events": [good.clone(), with("event_id", json!("x".repeat(65)))]}), "events[1].event_id"),
        (json!({"events": [with("event_id", json!(""))]}), "events[0].event_id"),
        (json!({"events": [with("play_id", json!("a b"))]}), "events[0].play_id"),
        (json!({"events": [with("track_id", json!("../t1"))]}), "events[0].track_id"),
        (json!({"events": [with("type", json!("rewind"))]}), "events[0].type: unknown variant"),
        (json!({"events": [with("position_ms", json!(-1))]}), "events[0].position_ms"),
        (
            json!({"events": [with("position_ms", json!(86_400_001))]}),
            "events[0].position_ms: must be at most",
        ),
        (json!({"events": [with("occurred_at_ms", json!("today"))]}), "events[0].occurred_at_ms"),
        (json!({"events": [with("device", json!(""))]}), "events[0].device"),
        (json!({"events": [with("device", json!("a\u{7}b"))]}), "events[0].device"),
        (json!({"events": [with("device", json!("d".repeat(65)))]}), "events[0].device"),
        (json!({"events": [with("colour", json!(1))]}), "unknown field `colour`"),
        (json!({"events": [no_track]}), "missing field `track_id`"),
        (json!({"event": [good.clone()]}), "unknown field `event`"),
        (json!("events"), "body: invalid type"),
    ];
    for (body, needle) in cases {
        let resp = s.http.post(s.url("/v1/events")).bearer_auth(token).json(&body).send().await.unwrap();
        let msg = expect_error(resp, 400, "invalid_request").await;
        assert!(msg.contains(needle), "{db:?}: {needle:?} not in {msg:?}");
    }
    // Unicode devices are fine; the limit is characters.
    let r = send(&s, token, &[with("device", json!("é".repeat(64)))]).await;
    assert_eq!(r.accepted, 1);
    // Nothing of the refused batches was stored.
    assert_eq!(history(&s, token, "").await.total, 1, "{db:?}");

    let resp = s
        .http
        .post(s.url("/v1/events"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{\"events\": [")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_request").await;
    let resp = s.http.post(s.url("/v1/events")).bearer_auth(token).body("{}").send().await.unwrap();
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.contains("content-type"), "{msg}");
    let big = json!({"events": vec![with("device", json!("d".repeat(64))); 500], "pad": "x".repeat(600_000)});
    let resp = s.http.post(s.url("/v1/events")).bearer_auth(token).json(&big).send().await.unwrap();
    expect_error(resp, 413, "payload_too_large").await;
    // 500 events of the largest kind fit.
    let full: Vec<Value> = (0..500)
        .map(|i| {
            let mut e = with("device", json!("d".repeat(64)));
            e["event_id"] = json!(format!("{i:0>64}"));
            e["play_id"] = json!("p".repeat(64));
            e
        })
        .collect();
    let r = send(&s, token, &full).await;
    assert_eq!((r.accepted, r.rejected.len()), (500, 0), "{db:?}");

    // Credentials.
    expect_error(post(&s, "not-a-token", std::slice::from_ref(&good)).await, 401, "unauthorized").await;
    let resp =
        s.http.post(s.url("/v1/events")).json(&json!({"events": [good.clone()]})).send().await.unwrap();
    expect_error(resp, 401, "unauthorized").await;
    expect_error(s.get("/v1/me/history", None).await, 401, "unauthorized").await;
    for (query, needle) in [
        ("?limit=0", "limit"),
        ("?offset=100001", "offset"),
        ("?from_ms=5&to_ms=4", "from_ms"),
        ("?from_ms=-1", "from_ms"),
        ("?since=1", "since"),
    ] {
        let msg =
            expect_error(s.get(&format!("/v1/me/history{query}"), Some(token)).await, 400, "invalid_request")
                .await;
        assert!(msg.contains(needle), "{query}: {msg}");
    }

    // Royalties: admin only, dates checked.
    let path = "/v1/admin/royalties?from=2026-01-01&to=2026-01-31";
    expect_error(s.get(path, Some(token)).await, 403, "forbidden").await;
    expect_error(s.get(path, None).await, 401, "unauthorized").await;
    for (query, needle) in [
        ("from=2026-02-30&to=2026-03-01", "from: must be a calendar date"),
        ("from=2026-01-01&to=20260201", "to: must be a calendar date"),
        ("from=2026-03-01&to=2026-02-01", "from: must not be after to"),
        ("from=2025-01-01&to=2026-01-02", "to: the range must be at most 366 days, got 367"),
        ("from=2026-01-01", "missing field `to`"),
        ("from=2026-01-01&to=2026-01-02&limit=1001", "limit"),
        ("from=2026-01-01&to=2026-01-02&offset=10000001", "offset"),
        ("from=2026-01-01&to=2026-01-02&day=1", "unknown field `day`"),
    ] {
        let resp = s.get(&format!("/v1/admin/royalties?{query}"), Some(ADMIN_TOKEN)).await;
        let msg = expect_error(resp, 400, "invalid_request").await;
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    let resp = s.get("/v1/admin/royalties?from=2024-01-01&to=2024-12-31", Some(ADMIN_TOKEN)).await;
    assert_eq!(resp.status(), 200, "366 days of a leap year");

    // Popularity: admin only, days checked.
    for days in ["0", "366", "x"] {
        let resp = s
            .http
            .post(s.url(&format!("/v1/admin/popularity/recompute?days={days}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let msg = expect_error(resp, 400, "invalid_request").await;
        assert!(msg.contains("days"), "{msg}");
    }
    let resp = s.http.post(s.url("/v1/admin/popularity/recompute")).bearer_auth(token).send().await.unwrap();
    expect_error(resp, 403, "forbidden").await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn batches_are_rate_limited_as_events() {
    let db = support::sqlite();
    let mut config = support::config(&db.url);
    config.rate_limits.events = cadenza_config::service::RateLimit::new(1, 2);
    let s = Server::start_with(config).await;
    assert_eq!(s.import(&catalog_with_lengths()).await.status(), 200);
    let user = s.user(Tier::Free).await;
    let e = [ev("r1", "pr", "t1", "start", 0, now_ms())];
    for _ in 0..2 {
        assert_eq!(post(&s, &user.token, &e).await.status(), 200);
    }
    let resp = post(&s, &user.token, &e).await;
    assert!(resp.headers().contains_key("retry-after"));
    let msg = expect_error(resp, 429, "rate_limited").await;
    assert!(msg.contains("events"), "{msg}");
    // Other categories are untouched.
    assert_eq!(s.get("/v1/me/history", Some(&user.token)).await.status(), 200);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn popularity_follows_streams_and_moves_search_order() {
    for db in support::databases().await {
        popularity_on(&db).await;
    }
}

async fn popularity_on(db: &TestDb) {
    let (s, user) = setup(db).await;
    let at = now_ms() - 60_000;
    let recompute = |days: &'static str| {
        let s = &s;
        async move {
            let resp = s
                .http
                .post(s.url(&format!("/v1/admin/popularity/recompute{days}")))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<PopularityResponse>().await.unwrap()
        }
    };
    let popularity = |id: &'static str| {
        let (s, token) = (&s, user.token.clone());
        async move {
            let resp = s.get(&format!("/v1/tracks/{id}"), Some(&token)).await;
            resp.json::<TrackResponse>().await.unwrap().popularity
        }
    };
    let top_tracks = || {
        let (s, token) = (&s, user.token.clone());
        async move {
            let resp = s.get("/v1/artists/ar1/top-tracks", Some(&token)).await;
            let body: Value = resp.json().await.unwrap();
            body["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let search = || {
        let (s, token) = (&s, user.token.clone());
        async move {
            let resp = s.get("/v1/search?q=song&type=track&limit=50", Some(&token)).await;
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            body["tracks"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    // t2: 9 streams, short: 3, long: 1 (one user, several plays each).
    let mut events = Vec::new();
    for (track, plays, pos) in [("t2", 9, 16_000), ("short", 3, 11_000), ("long", 1, 31_000)] {
        for p in 0..plays {
            events.push(ev(&format!("{track}-{p}"), &format!("{track}-p{p}"), track, "progress", pos, at));
        }
    }
    send(&s, &user.token, &events).await;
    let r = recompute("").await;
    assert_eq!((r.days, r.max_streams), (28, 9), "{db:?}");
    assert_eq!(r.since, utc_day(now_ms() - 27 * DAY_MS));
    // t1 was imported at 0 and stays 0: three tracks changed.
    assert_eq!(r.tracks_updated, 3, "{db:?}: {r:?}");
    assert_eq!(popularity("t2").await, 100);
    assert_eq!(popularity("short").await, 60, "ln 4 / ln 10");
    assert_eq!(popularity("long").await, 30, "ln 2 / ln 10");
    assert_eq!(popularity("t1").await, 0);
    assert_eq!(top_tracks().await[..3], ["t2", "short", "long"], "{db:?}");
    let order = search().await;
    let pos =
        |id: &str| order.iter().position(|t| t == id).unwrap_or_else(|| panic!("{id} not in {order:?}"));
    assert!(pos("t2") < pos("t1"), "{db:?}: {order:?}");
    if db.kind == "sqlite" {
        // The FTS5 row moved to the top popularity band, in step.
        let band = support::sql_i64(&db.url, "SELECT search_rowid >> 40 FROM tracks WHERE id = 't2'").await;
        assert_eq!(band, Some(0));
        let rows =
            "SELECT COUNT(*) FROM tracks_fts WHERE rowid = (SELECT search_rowid FROM tracks WHERE id = 't2')";
        assert_eq!(support::sql_i64(&db.url, rows).await, Some(1));
    }
    // Nothing changed since: nothing is written.
    assert_eq!(recompute("?days=28").await.tracks_updated, 0);
    // t1 overtakes t2: the index follows.
    let more: Vec<Value> =
        (0..20).map(|p| ev(&format!("t1-{p}"), &format!("t1-p{p}"), "t1", "complete", 30_000, at)).collect();
    send(&s, &user.token, &more).await;
    let r = recompute("?days=1").await;
    assert_eq!(r.max_streams, 20);
    assert_eq!(popularity("t1").await, 100);
    let order = search().await;
    let pos = |id: &str| order.iter().position(|t| t == id).unwrap();
    assert!(pos("t1") < pos("t2"), "{db:?}: {order:?}");
    s.stop().await.unwrap();
}
