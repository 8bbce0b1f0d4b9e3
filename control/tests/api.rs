//! End-to-end tests of the catalog and user API: a real server on
//! loopback, real HTTP, real SQLite — and real PostgreSQL when
//! `CADENZA_TEST_DATABASE_URL` is set. Every body runs on each database.

mod support;

use cadenza_config::ladder::Rung;
use cadenza_control::types::{CreateUserResponse, ImportResponse, Tier, TrackResponse};
use serde_json::json;
use support::{ADMIN_TOKEN, Server, TestDb, expect_error};

async fn get_track(s: &Server, token: &str, id: &str) -> reqwest::Response {
    s.http.get(s.url(&format!("/v1/tracks/{id}"))).bearer_auth(token).send().await.expect("track request")
}

#[tokio::test]
async fn import_is_idempotent() {
    for db in support::databases().await {
        import_is_idempotent_on(&db).await;
    }
}

async fn import_is_idempotent_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    let batch = support::catalog();
    let resp = s.import(&batch).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    let counts: ImportResponse = resp.json().await.unwrap();
    assert_eq!(counts, ImportResponse { artists: 2, albums: 2, tracks: 3 });
    let user = s.user(Tier::Premium).await;
    let first = get_track(&s, &user.token, "t1").await;
    let etag = first.headers()["etag"].clone();
    let first: TrackResponse = first.json().await.unwrap();
    let updated = support::sql_i64(&db.url, "SELECT updated_at FROM tracks WHERE id = 't1'").await;

    // The same batch again: same answer, nothing changes, not even updated_at.
    let resp = s.import(&batch).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    assert_eq!(resp.json::<ImportResponse>().await.unwrap(), counts);
    let again = get_track(&s, &user.token, "t1").await;
    assert_eq!(again.headers()["etag"], etag, "{db:?}");
    assert_eq!(again.json::<TrackResponse>().await.unwrap(), first);
    assert_eq!(support::sql_i64(&db.url, "SELECT updated_at FROM tracks WHERE id = 't1'").await, updated);
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM track_files").await, Some(4 + 2 + 4));
    // Counters survive a re-import.
    support::sql_exec(&db.url, "UPDATE tracks SET stream_count = 7 WHERE id = 't1'").await;

    // A changed batch: new title, a smaller ladder, features omitted (the
    // manifest's are stored instead).
    let mut changed = batch.clone();
    changed.tracks[0].title = "Song t1 (remaster)".into();
    changed.tracks[0].manifest.as_mut().unwrap().renditions.retain(|r| r.bitrate_kbps != Rung::K320);
    changed.tracks[0].audio_features = None;
    assert_eq!(s.import(&changed).await.status(), 200);
    let t1: TrackResponse = get_track(&s, &user.token, "t1").await.json().await.unwrap();
    assert_eq!(t1.title, "Song t1 (remaster)");
    assert_eq!(t1.qualities, vec![24, 96, 160]);
    assert_eq!(support::sql_i64(&db.url, "SELECT stream_count FROM tracks WHERE id = 't1'").await, Some(7));
    assert_eq!(
        support::sql_i64(
            &db.url,
            "SELECT COUNT(*) FROM tracks WHERE id = 't1' AND audio_features LIKE '%\"tempo\":120.5%'"
        )
        .await,
        Some(0),
        "{db:?}: the import's own features replaced"
    );
    assert_eq!(
        support::sql_i64(
            &db.url,
            "SELECT COUNT(*) FROM tracks WHERE id = 't1' AND audio_features LIKE '%\"tempo_bpm\":120.0%'"
        )
        .await,
        Some(1),
        "{db:?}: the manifest's features stored"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn import_is_validated_and_atomic() {
    for db in support::databases().await {
        import_is_validated_and_atomic_on(&db).await;
    }
}

async fn import_is_validated_and_atomic_on(db: &TestDb) {
    let s = Server::start(&db.url).await;

    // A track naming an album that exists nowhere: refused, and the artist
    // in the same batch is not written either.
    let mut batch = support::catalog();
    batch.albums.truncate(1);
    batch.tracks[2].album_id = "al-missing".into();
    let msg = expect_error(s.import(&batch).await, 400, "invalid_request").await;
    assert!(msg.contains("tracks[2].album_id") && msg.contains("al-missing"), "{msg}");
    assert_eq!(
        support::sql_i64(&db.url, "SELECT COUNT(*) FROM artists").await,
        Some(0),
        "{db:?}: nothing written"
    );

    // Manifest for another track.
    let mut batch = support::catalog();
    batch.tracks[1].manifest = Some(support::manifest("t9", &[Rung::K96]));
    let msg = expect_error(s.import(&batch).await, 400, "invalid_request").await;
    assert!(msg.contains("tracks[1].manifest.track_id"), "{msg}");

    // Type errors name the path, from serde.
    let mut raw = serde_json::to_value(support::catalog()).unwrap();
    raw["tracks"][0]["manifest"]["renditions"][1]["bitrate_kbps"] = json!(128);
    let resp =
        s.http.post(s.url("/v1/admin/import")).bearer_auth(ADMIN_TOKEN).json(&raw).send().await.unwrap();
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.starts_with("tracks[0].manifest.renditions[1].bitrate_kbps:"), "{msg}");

    // A typo'd embargo is an error, not a silently public album.
    let mut raw = serde_json::to_value(support::catalog()).unwrap();
    raw["albums"][1]["relase_at"] = json!(1);
    let resp =
        s.http.post(s.url("/v1/admin/import")).bearer_auth(ADMIN_TOKEN).json(&raw).send().await.unwrap();
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.contains("relase_at"), "{msg}");

    // Artists may come from the catalog instead of the batch.
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let mut later = support::catalog();
    later.artists.clear();
    later.albums.clear();
    later.tracks = vec![support::track("t4", "al1", 3, &["ar2"], &[Rung::K160])];
    let resp = s.import(&later).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    assert_eq!(resp.json::<ImportResponse>().await.unwrap().tracks, 1);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn users_and_auth() {
    for db in support::databases().await {
        users_and_auth_on(&db).await;
    }
}

async fn users_and_auth_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let admin_post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut req = s.http.post(s.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    let resp = admin_post(
        "/v1/admin/users",
        Some(ADMIN_TOKEN),
        json!({"display_name": "Ana", "tier": "premium", "country": "se", "id": "user-ana"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201, "{db:?}");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let ana: CreateUserResponse = resp.json().await.unwrap();
    assert_eq!(ana.id.as_str(), "user-ana");
    assert!(ana.token.len() >= 43);
    // Only the hash is stored.
    assert_eq!(
        support::sql_i64(&db.url, "SELECT COUNT(*) FROM api_tokens WHERE length(token_sha256) = 64").await,
        Some(1)
    );
    assert_eq!(get_track(&s, &ana.token, "t1").await.status(), 200);
    assert!(
        support::sql_i64(&db.url, "SELECT last_used FROM api_tokens").await.is_some(),
        "{db:?}: last_used recorded"
    );

    // Same id again.
    let resp = admin_post(
        "/v1/admin/users",
        Some(ADMIN_TOKEN),
        json!({"display_name": "Ana 2", "tier": "free", "country": "SE", "id": "user-ana"}),
    )
    .await
    .unwrap();
    expect_error(resp, 409, "already_exists").await;

    // Every field is validated, by name.
    for (body, field) in [
        (json!({"display_name": "", "tier": "free", "country": "SE"}), "display_name"),
        (json!({"display_name": "B", "tier": "gold", "country": "SE"}), "tier"),
        (json!({"display_name": "B", "tier": "free", "country": "XX"}), "country"),
        (json!({"display_name": "B", "tier": "free", "country": "SE", "id": "a/b"}), "id"),
        (json!({"display_name": "B", "tier": "free"}), "country"),
    ] {
        let resp = admin_post("/v1/admin/users", Some(ADMIN_TOKEN), body.clone()).await.unwrap();
        let msg = expect_error(resp, 400, "invalid_request").await;
        assert!(msg.contains(field), "{body}: {msg}");
    }

    // Admin auth: none → 401, a user's token or a wrong one → 403.
    let body = json!({"display_name": "B", "tier": "free", "country": "SE"});
    let resp = admin_post("/v1/admin/users", None, body.clone()).await.unwrap();
    assert!(resp.headers().contains_key("www-authenticate"));
    expect_error(resp, 401, "unauthorized").await;
    for token in [ana.token.as_str(), "test-admin-token-012345678X"] {
        let resp = admin_post("/v1/admin/users", Some(token), body.clone()).await.unwrap();
        expect_error(resp, 403, "forbidden").await;
        let resp = admin_post("/v1/admin/import", Some(token), json!({})).await.unwrap();
        expect_error(resp, 403, "forbidden").await;
    }

    // User auth: none, unknown, malformed → 401 with a challenge.
    let resp = s.http.get(s.url("/v1/tracks/t1")).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="cadenza""#);
    expect_error(resp, 401, "unauthorized").await;
    let resp = get_track(&s, "not-a-real-token", "t1").await;
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    expect_error(resp, 401, "unauthorized").await;
    let resp = s
        .http
        .get(s.url("/v1/tracks/t1"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "unauthorized").await;
    // The admin token is not a user token.
    expect_error(get_track(&s, ADMIN_TOKEN, "t1").await, 401, "unauthorized").await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn track_view_etag_and_errors() {
    for db in support::databases().await {
        track_view_etag_and_errors_on(&db).await;
    }
}

async fn track_view_etag_and_errors_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let user = s.user(Tier::Free).await;

    let resp = get_track(&s, &user.token, "t1").await;
    assert_eq!(resp.status(), 200, "{db:?}");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34, "{etag}");
    let t: TrackResponse = resp.json().await.unwrap();
    assert_eq!(t.id.as_str(), "t1");
    assert_eq!(t.title, "Song t1");
    assert_eq!(t.duration_ms, 30_000);
    assert_eq!((t.track_number, t.disc_number), (1, 1));
    assert!(t.explicit);
    assert_eq!(t.isrc.as_deref(), Some("SEXYZ2400001"));
    assert_eq!(t.popularity, 0);
    assert_eq!(t.album.id, "al1");
    assert_eq!(t.album.title, "First Light");
    assert_eq!(t.album.album_type.as_str(), "album");
    assert_eq!(t.album.release_date.as_deref(), Some("2024-02-29"));
    assert_eq!(t.album.release_at, None);
    let artists: Vec<(&str, &str)> = t.artists.iter().map(|a| (a.id.as_str(), a.name.as_str())).collect();
    assert_eq!(artists, vec![("ar2", "Björk Byte"), ("ar1", "Ada Lovelace Trio")]);
    assert_eq!(t.qualities, vec![24, 96, 160, 320]);
    assert_eq!(t.loudness.unwrap().integrated_lufs, -19.5);
    assert_eq!(t.loudness.unwrap().true_peak_dbtp, -2.25);
    assert_eq!(t.loudness.unwrap().gain_db, 5.5);

    // Conditional GET.
    for inm in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
        let resp = s
            .http
            .get(s.url("/v1/tracks/t1"))
            .bearer_auth(&user.token)
            .header("if-none-match", &inm)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "{inm}");
        assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let resp = s
        .http
        .get(s.url("/v1/tracks/t1"))
        .bearer_auth(&user.token)
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The embargoed track's metadata is visible, with its release time.
    let t3: TrackResponse = get_track(&s, &user.token, "t3").await.json().await.unwrap();
    assert!(t3.album.release_at.is_some());

    let msg = expect_error(get_track(&s, &user.token, "nope").await, 404, "track_not_found").await;
    assert!(msg.contains("nope"), "{msg}");
    let msg = expect_error(get_track(&s, &user.token, "a.b").await, 400, "invalid_request").await;
    assert!(msg.starts_with("id:"), "{msg}");
    let msg = expect_error(get_track(&s, &user.token, "a%2Fb").await, 400, "invalid_request").await;
    assert!(msg.contains("a/b"), "{msg}");
    s.stop().await.unwrap();
}
