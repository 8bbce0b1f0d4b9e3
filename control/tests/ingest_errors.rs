//! Bad input for every ingest route, as a table: each case's status, code
//! and the field its message names — and that none of them changed
//! anything. Real server on loopback, real SQLite — and real PostgreSQL
//! when `CADENZA_TEST_DATABASE_URL` is set.

mod support;

use cadenza_config::ingest::{CompleteRequest, JobState};
use serde_json::{Value, json};
use support::ingest::*;
use support::{ADMIN_TOKEN, Server, TestDb, WORKER_TOKEN, expect_error};

/// One request of the table.
enum Req {
    Get(String),
    Post(String, Value),
    /// Path, body, content type.
    Raw(String, &'static str, &'static str),
}

struct Case {
    req: Req,
    status: u16,
    code: &'static str,
    /// The message must contain this (the field it names).
    names: &'static str,
}

fn case(req: Req, status: u16, code: &'static str, names: &'static str) -> Case {
    Case { req, status, code, names }
}

/// `base` with `change` applied.
fn with(base: &Value, change: impl FnOnce(&mut Value)) -> Value {
    let mut v = base.clone();
    change(&mut v);
    v
}

#[tokio::test]
async fn bad_input_on_every_route() {
    for db in support::databases().await {
        bad_input_on(&db).await;
    }
}

async fn bad_input_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&catalog_without_tracks()).await.status(), 200);
    // A running job (t1, t2 of al1) and a queued one (t9).
    let running = register(&s, &album_request("al1", &["t1", "t2"])).await;
    let leased = claim(&s, "w1", 600).await.expect("job");
    assert_eq!(leased.id, running.id);
    let queued = register(&s, &single_request("t9", "al1")).await;

    let ingest = serde_json::to_value(album_request("al1", &["t3", "t4"])).unwrap();
    let good_complete = CompleteRequest {
        lease: leased.lease.clone(),
        manifests: vec![album_manifest("t1", "al1", 2), album_manifest("t2", "al1", 2)],
    };
    let complete = serde_json::to_value(&good_complete).unwrap();
    let job = |op: &str| format!("/v1/ingest/jobs/{}/{op}", running.id);
    let other_lease = "A".repeat(43);
    let beat = json!({"lease": leased.lease, "lease_seconds": 60});
    let fail = json!({"lease": leased.lease, "error": "boom", "retryable": true});
    let admin = "/v1/admin/ingest".to_owned();
    let claim_path = "/v1/ingest/claim".to_owned();
    use Req::*;

    let cases = vec![
        // POST /v1/admin/ingest
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"] = json!([]))),
            400,
            "invalid_request",
            "tracks:",
        ),
        case(
            Post(
                admin.clone(),
                with(&ingest, |v| {
                    let t = v["tracks"][0].clone();
                    v["tracks"] = Value::Array(
                        (0..201).map(|i| with(&t, |t| t["id"] = json!(format!("x{i}")))).collect(),
                    );
                }),
            ),
            400,
            "invalid_request",
            "1 to 200 tracks, got 201",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][1]["id"] = json!("t3"))),
            400,
            "invalid_request",
            "tracks[1].id",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["id"] = json!("a/b"))),
            400,
            "invalid_request",
            "tracks[0].id",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["master"] = json!("audio/x.ogg"))),
            400,
            "invalid_request",
            "tracks[0].master",
        ),
        case(
            Post(
                admin.clone(),
                with(&ingest, |v| v["tracks"][1]["master"] = json!("masters/../audio/x.ogg")),
            ),
            400,
            "invalid_request",
            "tracks[1].master",
        ),
        case(
            Post(
                admin.clone(),
                with(&ingest, |v| {
                    v["tracks"][0].as_object_mut().unwrap().remove("master").map(drop).unwrap()
                }),
            ),
            400,
            "invalid_request",
            "master",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["album_id"] = json!("a/b"))),
            400,
            "invalid_request",
            "album_id:",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][1]["album_id"] = json!("al2"))),
            400,
            "invalid_request",
            "tracks[1].album_id",
        ),
        case(
            Post(
                admin.clone(),
                with(&ingest, |v| {
                    v["album_id"] = json!("al9");
                    v["tracks"][0]["album_id"] = json!("al9");
                    v["tracks"][1]["album_id"] = json!("al9");
                }),
            ),
            400,
            "invalid_request",
            "album_id: unknown album \"al9\"",
        ),
        case(
            Post(admin.clone(), serde_json::to_value(single_request("t5", "al9")).unwrap()),
            400,
            "invalid_request",
            "tracks[0].album_id: unknown album",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["artist_ids"][1] = json!("ar9"))),
            400,
            "invalid_request",
            "tracks[0].artist_ids[1]: unknown artist",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["artist_ids"] = json!([]))),
            400,
            "invalid_request",
            "tracks[0].artist_ids",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["track_number"] = json!(0))),
            400,
            "invalid_request",
            "tracks[0].track_number",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["track_number"] = json!("one"))),
            400,
            "invalid_request",
            "tracks[0].track_number",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][1]["title"] = json!(" "))),
            400,
            "invalid_request",
            "tracks[1].title",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["isrc"] = json!("nope"))),
            400,
            "invalid_request",
            "tracks[0].isrc",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][0]["surprise"] = json!(1))),
            400,
            "invalid_request",
            "surprise",
        ),
        case(
            Post(admin.clone(), with(&ingest, |v| v["priority"] = json!(1))),
            400,
            "invalid_request",
            "priority",
        ),
        case(
            Raw(admin.clone(), "{\"tracks\": [", "application/json"),
            400,
            "invalid_request",
            "EOF while parsing",
        ),
        case(Raw(admin.clone(), "tracks=t1", "text/plain"), 400, "invalid_request", "content-type"),
        case(
            Post(admin.clone(), with(&ingest, |v| v["tracks"][1]["id"] = json!("t9"))),
            409,
            "ingest_in_progress",
            "tracks[1].id: track \"t9\"",
        ),
        case(
            Post(admin.clone(), serde_json::to_value(single_request("t1", "al1")).unwrap()),
            409,
            "ingest_in_progress",
            "running",
        ),
        // GET /v1/admin/ingest/{id} and the list
        case(Get(format!("{admin}/nope")), 404, "job_not_found", "nope"),
        case(Get(format!("{admin}/a.b")), 400, "invalid_request", "id:"),
        case(Get(format!("{admin}?state=bogus")), 400, "invalid_request", "state:"),
        case(Get(format!("{admin}?limit=0")), 400, "invalid_request", "limit:"),
        case(Get(format!("{admin}?limit=101")), 400, "invalid_request", "limit:"),
        case(Get(format!("{admin}?limit=ten")), 400, "invalid_request", "limit"),
        case(Get(format!("{admin}?offset=-1")), 400, "invalid_request", "offset"),
        case(Get(format!("{admin}?colour=red")), 400, "invalid_request", "colour"),
        // POST /v1/ingest/claim
        case(
            Post(claim_path.clone(), json!({"worker": "a b", "lease_seconds": 60})),
            400,
            "invalid_request",
            "worker:",
        ),
        case(
            Post(claim_path.clone(), json!({"worker": "", "lease_seconds": 60})),
            400,
            "invalid_request",
            "worker:",
        ),
        case(
            Post(claim_path.clone(), json!({"worker": "w", "lease_seconds": 9})),
            400,
            "invalid_request",
            "lease_seconds:",
        ),
        case(
            Post(claim_path.clone(), json!({"worker": "w", "lease_seconds": 3601})),
            400,
            "invalid_request",
            "lease_seconds:",
        ),
        case(
            Post(claim_path.clone(), json!({"worker": "w", "lease_seconds": -1})),
            400,
            "invalid_request",
            "lease_seconds:",
        ),
        case(
            Post(claim_path.clone(), json!({"worker": "w", "lease_seconds": "60"})),
            400,
            "invalid_request",
            "lease_seconds:",
        ),
        case(Post(claim_path.clone(), json!({"worker": "w"})), 400, "invalid_request", "lease_seconds"),
        case(
            Post(claim_path.clone(), json!({"worker": "w", "lease_seconds": 60, "priority": 1})),
            400,
            "invalid_request",
            "priority",
        ),
        case(Raw(claim_path.clone(), "[]", "application/json"), 400, "invalid_request", "body:"),
        // POST /v1/ingest/jobs/{id}/heartbeat
        case(Post("/v1/ingest/jobs/nope/heartbeat".into(), beat.clone()), 404, "job_not_found", "nope"),
        case(Post("/v1/ingest/jobs/a.b/heartbeat".into(), beat.clone()), 400, "invalid_request", "id:"),
        case(
            Post(job("heartbeat"), with(&beat, |v| v["lease"] = json!(""))),
            400,
            "invalid_request",
            "lease:",
        ),
        case(
            Post(job("heartbeat"), with(&beat, |v| v["lease"] = json!(other_lease))),
            409,
            "lease_lost",
            "lease:",
        ),
        case(
            Post(job("heartbeat"), with(&beat, |v| v["lease_seconds"] = json!(0))),
            400,
            "invalid_request",
            "lease_seconds:",
        ),
        case(Post(job("heartbeat"), json!({"lease_seconds": 60})), 400, "invalid_request", "lease"),
        case(
            Post(format!("/v1/ingest/jobs/{}/heartbeat", queued.id), beat.clone()),
            409,
            "lease_lost",
            "queued",
        ),
        // POST /v1/ingest/jobs/{id}/complete
        case(Post("/v1/ingest/jobs/nope/complete".into(), complete.clone()), 404, "job_not_found", "nope"),
        case(
            Post(job("complete"), with(&complete, |v| v["lease"] = json!(other_lease))),
            409,
            "lease_lost",
            "claimed again",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"] = json!([]))),
            400,
            "invalid_request",
            "manifests:",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"].as_array_mut().unwrap().truncate(1))),
            400,
            "invalid_request",
            "manifests:",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"][1]["track_id"] = json!("t3"))),
            400,
            "invalid_request",
            "manifests[1].track_id",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"][1] = v["manifests"][0].clone())),
            400,
            "invalid_request",
            "manifests[1].track_id",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"][0]["version"] = json!(1))),
            400,
            "invalid_request",
            "manifests[0].version",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"][0]["renditions"] = json!([]))),
            400,
            "invalid_request",
            "manifests[0].renditions",
        ),
        case(
            Post(
                job("complete"),
                with(&complete, |v| {
                    let m = &mut v["manifests"][1];
                    m.as_object_mut().unwrap().remove("album");
                    for r in m["renditions"].as_array_mut().unwrap() {
                        r.as_object_mut().unwrap().remove("album_loudness");
                    }
                }),
            ),
            400,
            "invalid_request",
            "manifests[1].album: missing",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"][0]["album"]["id"] = json!("al2"))),
            400,
            "invalid_request",
            "manifests[0].album.id",
        ),
        case(
            Post(
                job("complete"),
                with(&complete, |v| v["manifests"][0]["renditions"][1]["bitrate_kbps"] = json!(128)),
            ),
            400,
            "invalid_request",
            "manifests[0].renditions[1].bitrate_kbps",
        ),
        case(
            Post(
                job("complete"),
                with(&complete, |v| v["manifests"][0]["loudness"]["gain_db"] = json!(null)),
            ),
            400,
            "invalid_request",
            "manifests[0].loudness.gain_db",
        ),
        case(
            Post(job("complete"), with(&complete, |v| v["manifests"][0]["surprise"] = json!(1))),
            400,
            "invalid_request",
            "surprise",
        ),
        case(
            Post(
                job("complete"),
                with(&complete, |v| v.as_object_mut().unwrap().remove("lease").map(drop).unwrap()),
            ),
            400,
            "invalid_request",
            "lease",
        ),
        // POST /v1/ingest/jobs/{id}/fail
        case(Post("/v1/ingest/jobs/nope/fail".into(), fail.clone()), 404, "job_not_found", "nope"),
        case(
            Post(job("fail"), with(&fail, |v| v["lease"] = json!(other_lease))),
            409,
            "lease_lost",
            "lease:",
        ),
        case(
            Post(job("fail"), with(&fail, |v| v["lease"] = json!("not a lease!"))),
            400,
            "invalid_request",
            "lease:",
        ),
        case(Post(job("fail"), with(&fail, |v| v["error"] = json!("  "))), 400, "invalid_request", "error:"),
        case(
            Post(
                job("fail"),
                with(&fail, |v| v.as_object_mut().unwrap().remove("retryable").map(drop).unwrap()),
            ),
            400,
            "invalid_request",
            "retryable",
        ),
        case(
            Post(job("fail"), with(&fail, |v| v["retryable"] = json!("yes"))),
            400,
            "invalid_request",
            "retryable",
        ),
    ];

    for Case { req, status, code, names } in cases {
        let (what, resp) = match req {
            Get(path) => (format!("GET {path}"), s.get(&path, Some(ADMIN_TOKEN)).await),
            Post(path, body) => {
                let token = if path.starts_with("/v1/admin/") { ADMIN_TOKEN } else { WORKER_TOKEN };
                let shown: String = body.to_string().chars().take(300).collect();
                (format!("POST {path} {shown}"), s.post(&path, Some(token), &body).await)
            }
            Raw(path, body, content_type) => {
                let resp = s
                    .http
                    .post(s.url(&path))
                    .bearer_auth(if path.starts_with("/v1/admin/") { ADMIN_TOKEN } else { WORKER_TOKEN })
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (format!("POST {path} {body}"), resp)
            }
        };
        assert_eq!(
            resp.status().as_u16(),
            status,
            "{db:?}: {what}: {}",
            resp.text().await.unwrap_or_default()
        );
        let msg = expect_error(resp, status, code).await;
        assert!(msg.contains(names), "{db:?}: {what}: message {msg:?} does not name {names:?}");
        // A lease token is never echoed back.
        assert!(!msg.contains(&leased.lease), "{what}: {msg}");
    }

    // Nothing was written: two jobs, the running one untouched, no tracks.
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM ingest_jobs").await, Some(2), "{db:?}");
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM tracks").await, Some(0), "{db:?}");
    let still = status(&s, &running.id).await;
    assert_eq!((still.state, still.attempts, still.last_error), (JobState::Running, 1, None));
    assert_eq!(still.lease_expires_at, Some(leased.lease_expires_at));

    // The bodies the cases broke were good ones.
    assert_eq!(s.post(&admin, Some(ADMIN_TOKEN), &ingest).await.status(), 202, "{db:?}");
    assert_eq!(complete_ok(&s, &job("complete"), &good_complete).await, 200, "{db:?}");
    s.stop().await.unwrap();
}

async fn complete_ok(s: &Server, path: &str, body: &CompleteRequest) -> u16 {
    s.post(path, Some(WORKER_TOKEN), body).await.status().as_u16()
}
