//! `POST /v1/admin/warm` against the control plane alone, on SQLite and
//! PostgreSQL: every refusal names its field or reason; a job scheduled
//! ahead of a release waits, is listed, and cancels; a job whose POP
//! cannot be reached (a closed port: connection refused) is retried
//! `warm.max_attempts` times and then fails, saying why. The happy path,
//! with real edges and a shield, is `dev/tests/drop.rs`.

mod support;

use std::time::{Duration, Instant};

use cadenza_control::types::{WarmJob, WarmJobList};
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Server, TestDb, expect_error};

async fn warm(s: &Server, body: Value) -> reqwest::Response {
    s.http.post(s.url("/v1/admin/warm")).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap()
}

async fn job(s: &Server, id: &str) -> WarmJob {
    let resp = s.get(&format!("/v1/admin/warm/{id}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A CDN of one POP with an admin API at `admin`.
async fn put_lab_cdn(s: &Server, admin: &str) {
    let resp = s
        .http
        .put(s.url("/v1/admin/cdns/lab"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "kind": "cadenza",
            "pops": [{ "name": "p1", "url": "http://127.0.0.1:9", "admin_url": admin, "region": "eu",
                       "admin_token": "lab-admin-token-0123456789", "probe": false }]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn warm_requests_are_checked_scheduled_and_cancelled() {
    for db in support::databases().await {
        requests_on(&db).await;
    }
}

async fn requests_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let now = i64::try_from(cadenza_config::unix_now()).unwrap();

    // Refusals that name the field.
    let cases: [(Value, u16, &str, &str); 9] = [
        (json!({}), 400, "invalid_request", "album_id, track_ids, playlist_id"),
        (json!({"album_id": "al1", "track_ids": ["t1"]}), 400, "invalid_request", "exactly one"),
        (json!({"album_id": "al1", "rungs": [128]}), 400, "invalid_request", "rungs[0]"),
        (json!({"album_id": "nope"}), 404, "album_not_found", "album_id"),
        (json!({"track_ids": ["t1", "nope"]}), 404, "track_not_found", "track_ids[1]"),
        (json!({"album_id": "al1", "before_release": "2h"}), 400, "invalid_request", "before_release"),
        (json!({"album_id": "al1", "deadline_at": now - 10}), 400, "invalid_request", "deadline_at"),
        (json!({"album_id": "al1", "pops": ["pop-a"]}), 400, "invalid_request", "pops[0]"),
        // The support config's POPs have no admin token: nothing to run on.
        (json!({"album_id": "al1"}), 422, "no_warmable_pops", "admin_token"),
    ];
    for (body, status, code, names) in cases {
        let message = expect_error(warm(&s, body.clone()).await, status, code).await;
        assert!(message.contains(names), "{db:?} {body}: {message}");
    }
    let unknown = s.get("/v1/admin/warm/nope", Some(ADMIN_TOKEN)).await;
    expect_error(unknown, 404, "warm_job_not_found").await;
    expect_error(s.get("/v1/admin/warm", None).await, 401, "unauthorized").await;

    put_lab_cdn(&s, &format!("http://127.0.0.1:{}", closed_port().await)).await;
    // t2 has no 24 kbps rendition.
    let message =
        expect_error(warm(&s, json!({"track_ids": ["t2"], "rungs": [24]})).await, 422, "nothing_to_warm")
            .await;
    assert!(message.contains("rungs"), "{message}");
    // One byte a second cannot move an album in a minute.
    let body = json!({"album_id": "al1", "origin_bytes_per_second": 1, "deadline_at": now + 60});
    let message = expect_error(warm(&s, body).await, 422, "deadline_unreachable").await;
    assert!(message.contains("deadline_at"), "{message}");

    // Ahead of al2's release (tomorrow): scheduled 2 h before it, due by it,
    // not planned yet (the audio may still be on its way).
    let resp = warm(&s, json!({"album_id": "al2", "before_release": "2h", "rungs": [96, 320]})).await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let scheduled: WarmJob = resp.json().await.unwrap();
    assert_eq!(location, scheduled.href);
    assert_eq!(scheduled.state, "scheduled");
    let release = now + 86_400;
    assert!((scheduled.start_at - (release - 7200)).abs() <= 5, "{scheduled:?}");
    assert!((scheduled.deadline_at.unwrap() - release).abs() <= 5, "{scheduled:?}");
    assert_eq!((scheduled.files_total, scheduled.pops.len()), (0, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(job(&s, &scheduled.id).await.state, "scheduled", "not started before its time");
    let list: WarmJobList = s.get("/v1/admin/warm", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert!(
        list.jobs.iter().any(|j| j.id == scheduled.id && j.request.before_release.as_deref() == Some("2h"))
    );
    // A playlist's tracks, each once, in playlist order; POPs by region.
    let listener = s.user(cadenza_control::types::Tier::Premium).await;
    let p: Value = s
        .http
        .post(s.url("/v1/playlists"))
        .bearer_auth(&listener.token)
        .json(&json!({"name": "Drop day"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = p["id"].as_str().unwrap();
    let added = s
        .http
        .post(s.url(&format!("/v1/playlists/{pid}/items")))
        .bearer_auth(&listener.token)
        .json(&json!({"track_ids": ["t2", "t1", "t2"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let later = now + 3600;
    let body = json!({"playlist_id": pid, "rungs": [160], "regions": ["eu"], "start_at": later});
    let resp = warm(&s, body).await;
    assert_eq!(resp.status(), 202);
    let by_playlist: WarmJob = resp.json().await.unwrap();
    let nowhere = json!({"playlist_id": pid, "regions": ["nowhere"]});
    expect_error(warm(&s, nowhere).await, 422, "no_warmable_pops").await;
    // Planned now (due now), then cancelled (or it has already failed
    // against the closed port: its retries take at least 0.75 s).
    let resp = warm(&s, json!({"playlist_id": pid, "rungs": [160], "regions": ["eu"]})).await;
    assert_eq!(resp.status(), 202);
    let planned: WarmJob = resp.json().await.unwrap();
    let files: Vec<(&str, u32)> = planned.files.iter().map(|f| (f.track_id.as_str(), f.kbps)).collect();
    assert_eq!(files, [("t2", 160), ("t1", 160)], "playlist order, each track once");
    assert_eq!(planned.pops.iter().map(|p| p.pop.as_str()).collect::<Vec<_>>(), ["p1"]);
    // Listed tracks: their order, each once, lowest bitrate first.
    let resp =
        warm(&s, json!({"track_ids": ["t2", "t1", "t2"], "rungs": [96, 160], "pops": ["lab/p1"]})).await;
    assert_eq!(resp.status(), 202);
    let listed: WarmJob = resp.json().await.unwrap();
    let files: Vec<(&str, u32)> = listed.files.iter().map(|f| (f.track_id.as_str(), f.kbps)).collect();
    assert_eq!(files, [("t2", 96), ("t2", 160), ("t1", 96), ("t1", 160)]);
    for (id, may_have_ended) in [(&planned.id, true), (&listed.id, true), (&by_playlist.id, false)] {
        let resp = s
            .http
            .delete(s.url(&format!("/v1/admin/warm/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(status == 202 || (may_have_ended && status == 409), "{status}");
    }

    let cancel = s.http.delete(s.url(&scheduled.href)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(cancel.status(), 202);
    assert_eq!(cancel.json::<WarmJob>().await.unwrap().state, "cancelled");
    let again = s.http.delete(s.url(&scheduled.href)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    expect_error(again, 409, "warm_job_ended").await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_pop_is_retried_then_the_job_fails_saying_why() {
    for db in support::databases().await {
        unreachable_on(&db).await;
    }
}

async fn unreachable_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    put_lab_cdn(&s, &format!("http://127.0.0.1:{}", closed_port().await)).await;
    let resp = warm(
        &s,
        json!({"album_id": "al1", "rungs": [96], "pops": ["lab/p1"], "origin_bytes_per_second": 1_000_000}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let created: WarmJob = resp.json().await.unwrap();
    // Planned at once: t1 and t2 at 96 kbps, on the one POP, which gets the
    // whole origin budget.
    assert_eq!(created.files_total, 2, "{created:?}");
    let files: Vec<(&str, u32)> = created.files.iter().map(|f| (f.track_id.as_str(), f.kbps)).collect();
    assert_eq!(files, [("t1", 96), ("t2", 96)]);
    assert_eq!(created.pops.len(), 1);
    assert_eq!(created.pops[0].max_bytes_per_second, Some(1_000_000));
    assert_eq!(created.bytes_total, created.files.iter().map(|f| f.size).sum::<u64>());

    let deadline = Instant::now() + Duration::from_secs(20);
    let ended = loop {
        let j = job(&s, &created.id).await;
        if !matches!(j.state.as_str(), "scheduled" | "running") {
            break j;
        }
        assert!(Instant::now() < deadline, "{db:?}: still {} after 20 s: {j:?}", j.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended.state, "failed", "{ended:?}");
    assert_eq!(ended.error.as_deref(), Some("failed on lab/p1"));
    let pop = &ended.pops[0];
    assert_eq!((pop.state.as_str(), pop.attempts), ("failed", 5), "warm.max_attempts submissions: {pop:?}");
    assert!(pop.errors.last().unwrap().contains("connection refused"), "{:?}", pop.errors);
    assert!(ended.finished_at.is_some() && ended.started_at.is_some());
    // Four retries, then the part failed; the job is counted as failed.
    let metrics = s.get("/metrics", None).await.text().await.unwrap();
    for line in [
        "cadenza_control_warm_pop_parts_total{result=\"retried\"} 4",
        "cadenza_control_warm_pop_parts_total{result=\"failed\"} 1",
        "cadenza_control_warm_pop_parts_total{result=\"done\"} 0",
        "cadenza_control_warm_jobs{state=\"failed\"} 1",
        "cadenza_control_warm_jobs{state=\"running\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{db:?}: no {line:?} in /metrics");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_whose_replica_stops_is_resumed_by_another_from_its_progress() {
    for db in support::databases().await {
        resumed_on(&db).await;
    }
}

async fn resumed_on(db: &TestDb) {
    use cadenza_config::units::HumanDuration;
    // Replica A retries a refused POP slowly, for long; B gives up sooner.
    let mut config = support::config(&db.url);
    config.warm.max_attempts = 100;
    config.warm.retry_backoff = HumanDuration::millis(300);
    config.warm.lease = HumanDuration::secs(5);
    let a = Server::start_with(config.clone()).await;
    assert_eq!(a.import(&support::catalog()).await.status(), 200);
    put_lab_cdn(&a, &format!("http://127.0.0.1:{}", closed_port().await)).await;
    let created: WarmJob =
        warm(&a, json!({"album_id": "al1", "pops": ["lab/p1"]})).await.json().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let j = job(&a, &created.id).await;
        if j.state == "running" && j.pops[0].attempts >= 2 {
            break j;
        }
        assert!(Instant::now() < deadline, "{db:?}: A never got going: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    a.stop().await.unwrap();

    config.warm.max_attempts = seen.pops[0].attempts + 2;
    let b = Server::start_with(config).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let j = job(&b, &created.id).await;
        if !matches!(j.state.as_str(), "scheduled" | "running") {
            break j;
        }
        assert!(Instant::now() < deadline, "{db:?}: B never finished the job: {j:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The same run, carried on: its start, its attempts so far, then B's.
    assert_eq!(ended.state, "failed", "{ended:?}");
    assert_eq!(ended.started_at, seen.started_at);
    let pop = &ended.pops[0];
    assert!(
        pop.attempts > seen.pops[0].attempts && pop.attempts <= seen.pops[0].attempts + 2,
        "{pop:?} after {seen:?}"
    );
    assert!(pop.errors.last().unwrap().contains("connection refused"), "{:?}", pop.errors);
    b.stop().await.unwrap();
}
