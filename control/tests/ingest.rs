//! End-to-end tests of the ingest job queue: registration, leased claims,
//! heartbeats, completion into the catalog, failures and retries, lease
//! expiry and takeover, concurrent claims. Real server on loopback, real
//! HTTP, real SQLite — and real PostgreSQL when `CADENZA_TEST_DATABASE_URL`
//! is set. Every body runs on each database.
//!
//! Time: the lease-expiry test waits out the shortest lease a worker may
//! ask for (10 s, both databases at once). Backoffs and exhausted leases
//! are instead moved into the past with SQL on the test's own database, as
//! a clock would, so no test depends on how fast the machine is.

mod support;

use std::collections::HashSet;

use cadenza_config::ingest::{ClaimRequest, IngestJob, JobState, JobStatus, LeaseRequest};
use cadenza_config::ladder::{LADDER, Rung};
use cadenza_config::units::HumanDuration;
use cadenza_control::types::{IngestJobList, StreamResponse, Tier, TrackResponse};
use support::ingest::*;
use support::{ADMIN_TOKEN, Server, TestDb, WORKER_TOKEN, expect_error};

#[tokio::test]
async fn happy_path_registers_the_album() {
    for db in support::databases().await {
        happy_path_on(&db).await;
    }
}

async fn happy_path_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200, "{db:?}");

    // Nothing queued yet.
    assert!(claim(&s, "w1", 60).await.is_none(), "{db:?}: 204 on an empty queue");

    let job = register(&s, &album_request("al1", &["t1", "t2"])).await;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.attempts, job.max_attempts), (0, 5));
    assert_eq!(job.album_id.as_deref(), Some("al1"));
    let tracks: Vec<(&str, &str)> =
        job.tracks.iter().map(|t| (t.track_id.as_str(), t.master.as_str())).collect();
    assert_eq!(tracks, vec![("t1", "masters/al1/t1.flac"), ("t2", "masters/al1/t2.flac")]);
    assert_eq!(status(&s, &job.id).await, job);
    let listed: IngestJobList = s.get("/v1/admin/ingest", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(listed.jobs, vec![job.clone()]);

    // A track with an unfinished job cannot be queued again.
    let resp = s.post("/v1/admin/ingest", Some(ADMIN_TOKEN), &single_request("t2", "al1")).await;
    let msg = expect_error(resp, 409, "ingest_in_progress").await;
    assert!(msg.contains("t2") && msg.contains(&job.id), "{msg}");

    // Claim: attempt 1, a lease, the masters.
    let before = cadenza_config::unix_now();
    let leased = claim(&s, "worker-1.example", 60).await.expect("a job");
    let after = cadenza_config::unix_now();
    assert_eq!(leased.id, job.id);
    assert_eq!(leased.attempt, 1);
    assert_eq!(leased.album_id.as_deref(), Some("al1"));
    assert_eq!(leased.tracks, job.tracks);
    assert!((before + 59..=after + 60).contains(&leased.lease_expires_at), "{}", leased.lease_expires_at);
    let running = status(&s, &job.id).await;
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.worker.as_deref(), Some("worker-1.example"));
    assert_eq!(running.lease_expires_at, Some(leased.lease_expires_at));
    // Only the lease's hash is stored.
    assert_eq!(
        support::sql_i64(&db.url, "SELECT COUNT(*) FROM ingest_jobs WHERE length(lease_sha256) = 64").await,
        Some(1)
    );
    assert!(claim(&s, "w2", 60).await.is_none(), "{db:?}: a leased job is not handed out twice");

    // Heartbeat: a longer lease.
    let beat = heartbeat(&s, &leased, 600).await;
    assert_eq!(beat.status(), 200, "{db:?}");
    let beat: JobStatus = beat.json().await.unwrap();
    assert!(beat.lease_expires_at.unwrap() >= before + 599, "{beat:?}");

    // Complete with album manifests: the tracks land in the catalog.
    let manifests = vec![album_manifest("t1", "al1", 2), album_manifest("t2", "al1", 2)];
    let resp = complete(&s, &leased, manifests.clone()).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    let done: JobStatus = resp.json().await.unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!((done.attempts, done.lease_expires_at), (1, None));
    assert_eq!(status(&s, &job.id).await, done);

    let user = s.user(Tier::Premium).await;
    let t1: TrackResponse = s.get("/v1/tracks/t1", Some(&user.token)).await.json().await.unwrap();
    assert_eq!(t1.title, "Song t1");
    assert_eq!(t1.album.id, "al1");
    assert_eq!(t1.qualities, vec![24, 96, 160, 320]);
    assert_eq!(t1.duration_ms, 30_000);
    // The track view keeps the master's loudness.
    assert_eq!(t1.loudness.unwrap().gain_db, 5.5);
    let artists: Vec<&str> = t1.artists.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(artists, vec!["ar2", "ar1"]);
    // A stream's gains are the chosen rendition's own.
    for (quality, rung) in [(320, Rung::K320), (96, Rung::K96)] {
        let resp = s
            .post(
                "/v1/playback/stream",
                Some(&user.token),
                &serde_json::json!({"track_id": "t2", "quality": quality}),
            )
            .await;
        let r: StreamResponse = resp.json().await.unwrap();
        let rendition = manifests[1].rendition(rung).unwrap();
        assert_eq!(r.quality_kbps, quality);
        assert_eq!(r.file.file_id, rendition.file_id);
        assert_eq!(r.file.gain_db, support::rendition_gain(rung));
        assert_eq!(r.file.album_gain_db, Some(rendition.album_loudness.unwrap().gain_db));
    }
    assert_eq!(
        support::sql_i64(
            &db.url,
            "SELECT COUNT(*) FROM tracks WHERE id = 't1' AND audio_features LIKE '%\"tempo_bpm\":120.0%'"
        )
        .await,
        Some(1),
        "{db:?}: the manifest's features"
    );

    // The same result again, with the same lease: not done twice.
    let msg = expect_error(complete(&s, &leased, manifests).await, 409, "lease_lost").await;
    assert!(msg.contains("done"), "{msg}");
    expect_error(heartbeat(&s, &leased, 60).await, 409, "lease_lost").await;
    assert!(claim(&s, "w1", 60).await.is_none());

    // A finished job frees its tracks for a new ingest (a re-master).
    let again = register(&s, &single_request("t2", "al1")).await;
    assert_eq!(again.state, JobState::Queued);
    let listed: IngestJobList = s.get("/v1/admin/ingest", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    let ids: Vec<&str> = listed.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, vec![again.id.as_str(), job.id.as_str()], "newest first");
    let done_only: IngestJobList =
        s.get("/v1/admin/ingest?state=done&limit=5", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(done_only.jobs, vec![done]);
    let page: IngestJobList =
        s.get("/v1/admin/ingest?limit=1&offset=1", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].id, job.id);

    let text = s.get("/metrics", None).await.text().await.unwrap();
    for needle in [
        r#"cadenza_control_ingest_events_total{event="registered"} 2"#,
        r#"cadenza_control_ingest_events_total{event="claimed"} 1"#,
        r#"cadenza_control_ingest_events_total{event="completed"} 1"#,
        r#"cadenza_control_ingest_jobs{state="done"} 1"#,
        r#"cadenza_control_ingest_jobs{state="queued"} 1"#,
        r#"cadenza_control_ingest_jobs{state="running"} 0"#,
    ] {
        assert!(text.contains(needle), "{db:?}: missing {needle}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_late_result_refused() {
    // Both databases at once: each waits out a real 10 s lease.
    let mut set = tokio::task::JoinSet::new();
    for db in support::databases().await {
        set.spawn(async move { takeover_on(&db).await });
    }
    while let Some(r) = set.join_next().await {
        r.expect("test body");
    }
}

async fn takeover_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200);
    let job = register(&s, &single_request("t1", "al1")).await;
    let first = claim(&s, "slow-worker", *cadenza_config::ingest::LEASE_SECONDS.start()).await.expect("job");

    // The first worker stops heartbeating; once its lease runs out the
    // next claim hands the job to another worker with a fresh lease.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let second = loop {
        if let Some(j) = claim(&s, "fast-worker", 600).await {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "{db:?}: the lease never ran out");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(second.id, job.id);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.lease, first.lease);
    assert_eq!(status(&s, &job.id).await.worker.as_deref(), Some("fast-worker"));

    // The first worker's late calls change nothing.
    let late = vec![support::manifest("t1", &[Rung::K96])];
    let msg = expect_error(complete(&s, &first, late).await, 409, "lease_lost").await;
    assert!(msg.contains("claimed again"), "{msg}");
    expect_error(heartbeat(&s, &first, 60).await, 409, "lease_lost").await;
    expect_error(fail(&s, &first, "late", false).await, 409, "lease_lost").await;
    let user = s.user(Tier::Premium).await;
    expect_error(s.get("/v1/tracks/t1", Some(&user.token)).await, 404, "track_not_found").await;
    let still = status(&s, &job.id).await;
    assert_eq!((still.state, still.attempts, still.last_error), (JobState::Running, 2, None));

    // The second worker's result is registered.
    let resp = complete(&s, &second, vec![support::manifest("t1", &LADDER)]).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    let t1: TrackResponse = s.get("/v1/tracks/t1", Some(&user.token)).await.json().await.unwrap();
    assert_eq!(t1.qualities, vec![24, 96, 160, 320]);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn retryable_failures_back_off_then_fail() {
    for db in support::databases().await {
        retries_on(&db).await;
    }
}

async fn retries_on(db: &TestDb) {
    let mut config = support::config(&db.url);
    config.ingest.max_attempts = 3;
    config.ingest.retry_backoff = HumanDuration::secs(3600);
    config.ingest.max_retry_backoff = HumanDuration::secs(3 * 3600);
    let s = Server::start_with(config).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200);
    let job = register(&s, &single_request("t1", "al1")).await;
    assert_eq!(job.max_attempts, 3);

    // Attempt 1 fails retryably: queued again, not before an hour from now.
    let a1 = claim(&s, "w1", 3600).await.expect("job");
    let before = cadenza_config::unix_now();
    let resp = fail(&s, &a1, "store unreachable: connection refused", true).await;
    let after = cadenza_config::unix_now();
    assert_eq!(resp.status(), 200, "{db:?}");
    let queued: JobStatus = resp.json().await.unwrap();
    assert_eq!((queued.state, queued.attempts), (JobState::Queued, 1));
    assert_eq!(queued.last_error.as_deref(), Some("store unreachable: connection refused"));
    assert_eq!(queued.lease_expires_at, None);
    let not_before = queued.not_before.expect("not_before");
    assert!((before + 3600..=after + 3601).contains(&not_before), "{not_before}");
    assert!(claim(&s, "w2", 60).await.is_none(), "{db:?}: claimable before its backoff");
    // Its lease ended with the failure.
    expect_error(heartbeat(&s, &a1, 60).await, 409, "lease_lost").await;

    // The backoff passes; attempt 2 fails too: the delay doubles.
    support::sql_exec(&db.url, "UPDATE ingest_jobs SET not_before = 1").await;
    let a2 = claim(&s, "w2", 3600).await.expect("claimable after its backoff");
    assert_eq!(a2.attempt, 2);
    let before = cadenza_config::unix_now();
    let queued: JobStatus = fail(&s, &a2, "disk full", true).await.json().await.unwrap();
    let after = cadenza_config::unix_now();
    let not_before = queued.not_before.expect("not_before");
    assert!((before + 7200..=after + 7201).contains(&not_before), "{not_before}");

    // Attempt 3 is the last: a retryable failure now fails the job.
    support::sql_exec(&db.url, "UPDATE ingest_jobs SET not_before = 1").await;
    let a3 = claim(&s, "w3", 3600).await.expect("job");
    assert_eq!(a3.attempt, 3);
    let long = format!("timeout {}", "é".repeat(3000));
    let failed: JobStatus = fail(&s, &a3, &long, true).await.json().await.unwrap();
    assert_eq!((failed.state, failed.attempts), (JobState::Failed, 3));
    assert_eq!((failed.not_before, failed.lease_expires_at), (None, None));
    let kept = failed.last_error.unwrap();
    assert_eq!(kept.chars().count(), 2000);
    assert!(long.starts_with(&kept));
    support::sql_exec(&db.url, "UPDATE ingest_jobs SET not_before = 1").await;
    assert!(claim(&s, "w4", 60).await.is_none(), "{db:?}: a failed job is never handed out");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_master_fails_at_once() {
    for db in support::databases().await {
        bad_master_on(&db).await;
    }
}

async fn bad_master_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200);
    let job = register(&s, &single_request("t1", "al1")).await;
    let leased = claim(&s, "w1", 60).await.expect("job");
    let resp = fail(&s, &leased, "masters/al1/t1.flac: not a FLAC stream", false).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    let failed: JobStatus = resp.json().await.unwrap();
    assert_eq!((failed.state, failed.attempts), (JobState::Failed, 1));
    assert_eq!(failed.last_error.as_deref(), Some("masters/al1/t1.flac: not a FLAC stream"));
    assert_eq!(status(&s, &job.id).await, failed);
    assert!(claim(&s, "w1", 60).await.is_none());
    expect_error(fail(&s, &leased, "again", false).await, 409, "lease_lost").await;
    // The track may be ingested again from a fixed master.
    let again = register(&s, &single_request("t1", "al1")).await;
    assert_ne!(again.id, job.id);
    let failed_only: IngestJobList =
        s.get("/v1/admin/ingest?state=failed", Some(ADMIN_TOKEN)).await.json().await.unwrap();
    assert_eq!(failed_only.jobs, vec![failed]);
    let text = s.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains(r#"cadenza_control_ingest_events_total{event="failed"} 1"#), "{text}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn leases_running_out_use_up_attempts() {
    for db in support::databases().await {
        exhausted_on(&db).await;
    }
}

async fn exhausted_on(db: &TestDb) {
    let mut config = support::config(&db.url);
    config.ingest.max_attempts = 2;
    let s = Server::start_with(config).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200);
    let job = register(&s, &single_request("t1", "al1")).await;
    let first = claim(&s, "w1", 3600).await.expect("job");
    let _ = fail(&s, &first, "store unreachable", true).await;
    support::sql_exec(&db.url, "UPDATE ingest_jobs SET not_before = 1").await;
    let second = claim(&s, "w2", 3600).await.expect("job");
    assert_eq!(second.attempt, 2);

    // The last lease runs out (moved into the past, as the clock would):
    // the next claim fails the job instead of handing it out.
    support::sql_exec(&db.url, "UPDATE ingest_jobs SET lease_expires_at = 1").await;
    assert!(claim(&s, "w3", 60).await.is_none(), "{db:?}");
    let failed = status(&s, &job.id).await;
    assert_eq!((failed.state, failed.attempts), (JobState::Failed, 2));
    let error = failed.last_error.unwrap();
    assert!(error.contains("lease expired on attempt 2 of 2"), "{error}");
    assert!(error.contains("store unreachable"), "the earlier error is kept: {error}");
    expect_error(complete(&s, &second, vec![support::manifest("t1", &LADDER)]).await, 409, "lease_lost")
        .await;
    let text = s.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains(r#"cadenza_control_ingest_events_total{event="failed"} 1"#), "{text}");
    assert!(text.contains(r#"cadenza_control_ingest_events_total{event="retried"} 1"#), "{text}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_claims_hand_out_each_job_once() {
    for db in support::databases().await {
        concurrent_on(&db).await;
    }
}

async fn concurrent_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200);
    let mut registered = HashSet::new();
    for i in 0..5 {
        registered.insert(register(&s, &single_request(&format!("t{i}"), "al1")).await.id);
    }
    let mut claims = tokio::task::JoinSet::new();
    for w in 0..20 {
        let (http, url) = (s.http.clone(), s.url("/v1/ingest/claim"));
        claims.spawn(async move {
            let body = ClaimRequest { worker: format!("w{w}"), lease_seconds: 600 };
            let resp = http.post(url).bearer_auth(WORKER_TOKEN).json(&body).send().await.expect("claim");
            match resp.status().as_u16() {
                200 => Some(resp.json::<IngestJob>().await.expect("job json")),
                204 => None,
                other => panic!("claim answered {other}: {}", resp.text().await.unwrap_or_default()),
            }
        });
    }
    let mut handed_out = Vec::new();
    while let Some(r) = claims.join_next().await {
        if let Some(job) = r.expect("claim task") {
            assert_eq!(job.attempt, 1, "{db:?}");
            handed_out.push(job.id);
        }
    }
    handed_out.sort();
    let mut want: Vec<String> = registered.into_iter().collect();
    want.sort();
    assert_eq!(handed_out, want, "{db:?}: each job exactly once");
    assert_eq!(
        support::sql_i64(
            &db.url,
            "SELECT COUNT(*) FROM ingest_jobs WHERE state = 'running' AND attempts = 1"
        )
        .await,
        Some(5)
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn worker_and_admin_tokens() {
    for db in support::databases().await {
        auth_on(&db).await;
    }
}

async fn auth_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200);
    let job = register(&s, &single_request("t1", "al1")).await;
    let claim_body = ClaimRequest { worker: "w1".into(), lease_seconds: 60 };
    let lease = LeaseRequest { lease: "x".repeat(43), lease_seconds: 60 };
    let job_path = |op: &str| format!("/v1/ingest/jobs/{}/{op}", job.id);
    let worker_routes: Vec<(String, serde_json::Value)> = vec![
        ("/v1/ingest/claim".into(), serde_json::to_value(&claim_body).unwrap()),
        (job_path("heartbeat"), serde_json::to_value(&lease).unwrap()),
        (job_path("complete"), serde_json::json!({"lease": "x", "manifests": []})),
        (job_path("fail"), serde_json::json!({"lease": "x", "error": "e", "retryable": true})),
    ];
    for (path, body) in &worker_routes {
        let resp = s.post(path, None, body).await;
        assert!(resp.headers().contains_key("www-authenticate"), "{path}");
        expect_error(resp, 401, "unauthorized").await;
        let msg =
            expect_error(s.post(path, Some("not-the-worker-token-00"), body).await, 403, "forbidden").await;
        assert!(!msg.contains(WORKER_TOKEN), "{msg}");
    }
    // The worker token and the admin token both work on worker routes.
    for token in [WORKER_TOKEN, ADMIN_TOKEN] {
        let resp = s.post("/v1/ingest/claim", Some(token), &claim_body).await;
        assert!(matches!(resp.status().as_u16(), 200 | 204), "{db:?}: {}", resp.status());
    }
    let user = s.user(Tier::Premium).await;
    expect_error(s.post("/v1/ingest/claim", Some(&user.token), &claim_body).await, 403, "forbidden").await;

    // The worker token opens no admin route.
    let admin_posts: [(&str, serde_json::Value); 3] = [
        ("/v1/admin/ingest", serde_json::to_value(single_request("t2", "al1")).unwrap()),
        ("/v1/admin/import", serde_json::json!({})),
        ("/v1/admin/users", serde_json::json!({"display_name": "x", "tier": "free", "country": "SE"})),
    ];
    for (path, body) in &admin_posts {
        expect_error(s.post(path, Some(WORKER_TOKEN), body).await, 403, "forbidden").await;
        expect_error(s.post(path, None, body).await, 401, "unauthorized").await;
    }
    for path in ["/v1/admin/ingest".to_owned(), format!("/v1/admin/ingest/{}", job.id)] {
        expect_error(s.get(&path, Some(WORKER_TOKEN)).await, 403, "forbidden").await;
        expect_error(s.get(&path, None).await, 401, "unauthorized").await;
    }
    s.stop().await.unwrap();

    // Without a worker token configured, only the admin token works there.
    let mut config = support::config(&db.url);
    config.ingest.worker_token = Default::default();
    let s = Server::start_with(config).await;
    expect_error(s.post("/v1/ingest/claim", Some(WORKER_TOKEN), &claim_body).await, 403, "forbidden").await;
    let resp = s.post("/v1/ingest/claim", Some(ADMIN_TOKEN), &claim_body).await;
    assert!(matches!(resp.status().as_u16(), 200 | 204), "{db:?}: {}", resp.status());
    s.stop().await.unwrap();
}
