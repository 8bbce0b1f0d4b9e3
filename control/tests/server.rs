//! End-to-end tests of the server around the API: health, readiness,
//! metrics, JSON errors for unknown routes, migrations across restarts,
//! and the listener's header-read timeout.

mod support;

use std::time::Duration;

use cadenza_config::units::HumanDuration;
use cadenza_control::types::{Tier, TrackResponse};
use support::{Server, TestDb, expect_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn health_readiness_and_metrics() {
    for db in support::databases().await {
        health_readiness_and_metrics_on(&db).await;
    }
}

async fn health_readiness_and_metrics_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    for path in ["/healthz", "/readyz"] {
        let resp = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{db:?} {path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["status"].is_string());
    }

    // Unknown routes and methods answer JSON too.
    let resp = s.http.get(s.url("/v1/nothing/here")).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;
    let resp = s.http.delete(s.url("/v1/playback/stream")).send().await.unwrap();
    expect_error(resp, 405, "method_not_allowed").await;

    let resp = s.http.get(s.url("/v1/tracks/t1")).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for needle in [
        r#"cadenza_control_http_requests_total{route="/healthz",status="200"} 1"#,
        r#"cadenza_control_http_requests_total{route="/readyz",status="200"} 1"#,
        r#"cadenza_control_http_requests_total{route="/v1/tracks/{id}",status="401"} 1"#,
        r#"cadenza_control_http_requests_total{route="unmatched",status="404"} 1"#,
        r#"cadenza_control_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"} 1"#,
        r#"cadenza_control_stream_urls_total{quality_kbps="320"} 0"#,
    ] {
        assert!(text.contains(needle), "{db:?}: missing {needle} in\n{text}");
    }
    // Raw paths never become labels.
    assert!(!text.contains("/v1/nothing/here"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn migrations_are_idempotent_across_restarts() {
    for db in support::databases().await {
        migrations_on(&db).await;
    }
}

async fn migrations_on(db: &TestDb) {
    let config = support::config(&db.url);
    // Migrate alone first (as `cadenza control migrate` does), twice.
    cadenza_control::migrate(&config).await.expect("migrate");
    cadenza_control::migrate(&config).await.expect("migrate again");

    let s = Server::start_with(config.clone()).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let user = s.user(Tier::Free).await;
    s.stop().await.expect("clean stop");

    // Restart on the same database: migrations are a no-op, data remains,
    // and the token still works.
    cadenza_control::migrate(&config).await.expect("migrate after use");
    let s = Server::start_with(config).await;
    let resp = s.http.get(s.url("/v1/tracks/t2")).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{db:?}");
    let t: TrackResponse = resp.json().await.unwrap();
    assert_eq!(t.qualities, vec![96, 160]);
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM _sqlx_migrations").await, Some(8));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn bad_database_urls_are_clear_errors() {
    let mut config = support::config("mysql://localhost/x");
    let err = cadenza_control::ControlServer::bind(config.clone()).await.unwrap_err();
    assert!(err.to_string().contains("database.url"), "{err}");
    config.database.url = "sqlite:///proc/definitely/not/writable.db".into();
    let err = cadenza_control::migrate(&config).await.unwrap_err();
    assert!(err.to_string().contains("/proc/definitely"), "{err}");
}

/// Read from `stream` until the server closes it; `true` if it did within
/// the bound.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before closing is fine; keep reading.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn header_read_timeout_closes_slow_connections() {
    let db = support::sqlite();
    let mut config = support::config(&db.url);
    config.http.header_read_timeout = HumanDuration::secs(1);
    let s = Server::start_with(config).await;
    let addr = s.base.trim_start_matches("http://").to_owned();

    // Says nothing at all.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    // Starts a request head and stalls.
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Starts the HTTP/2 preface and stalls.
    let mut h2 = TcpStream::connect(&addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(closed_by_server(&mut silent).await, "silent connection kept");
    assert!(closed_by_server(&mut partial).await, "partial head kept");
    assert!(closed_by_server(&mut h2).await, "partial preface kept");

    // A well-behaved client is unaffected.
    let mut ok = TcpStream::connect(&addr).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), ok.read_to_end(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let db = support::sqlite();
    let s = Server::start(&db.url).await;
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let resp = client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_keep_alive_connections() {
    let db = support::sqlite();
    let s = Server::start(&db.url).await;
    // Hold an idle keep-alive connection open across the shutdown.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    s.stop().await.expect("graceful stop");
    assert!(closed_by_server(&mut conn).await);
}

/// A database left at migration 0002 with data in it (a deployment of the
/// previous version) upgrades in place: tracks keep their loudness, files
/// and credits (SQLite rebuilds the table), foreign keys still cascade,
/// tokens still work and get ids, and every row is searchable after the
/// start-up backfill.
#[tokio::test]
async fn upgrade_from_0002_keeps_data_and_backfills_search() {
    for db in support::databases().await {
        upgrade_on(&db).await;
    }
}

async fn upgrade_on(db: &TestDb) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let backend = if db.kind == "sqlite" { "sqlite" } else { "postgres" };
    // The first two migrations alone, from a copy of their files.
    let old = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    for name in ["0001_initial.sql", "0002_ingest.sql"] {
        std::fs::copy(src.join(name), old.path().join(name)).unwrap();
    }
    let url = if db.kind == "sqlite" {
        let path = db.url.trim_start_matches("sqlite://");
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        format!("{}?mode=rwc", db.url)
    } else {
        db.url.clone()
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.path()).await.unwrap().run(&mut conn).await.unwrap();
    let token = "legacy-token-0123456789";
    let token_sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    for sql in [
        "INSERT INTO artists (id, name, created_at, updated_at) VALUES ('ar1', 'Sigur Rós', 1, 1)".to_owned(),
        "INSERT INTO albums (id, title, album_type, created_at, updated_at) VALUES ('al1', 'Takk', 'album', 1, 1)".to_owned(),
        "INSERT INTO tracks (id, album_id, title, track_number, duration_ms, loudness_integrated_lufs,
             loudness_true_peak_dbtp, loudness_gain_db, created_at, updated_at)
         VALUES ('t1', 'al1', 'Hoppípolla', 1, 268000, -12.5, -0.5, -1.5, 1, 1)"
            .to_owned(),
        "INSERT INTO album_artists (album_id, artist_id, position) VALUES ('al1', 'ar1', 0)".to_owned(),
        "INSERT INTO track_artists (track_id, artist_id, position) VALUES ('t1', 'ar1', 0)".to_owned(),
        format!(
            "INSERT INTO track_files (track_id, bitrate_kbps, file_id, size, duration_ms, sample_rate, channels,
                 achieved_kbps, gain_db, mime)
             VALUES ('t1', 160, '{}', 5000000, 268000, 44100, 2, 160.2, -1.0, 'audio/ogg')",
            "a".repeat(32)
        ),
        "INSERT INTO users (id, display_name, tier, country, created_at) VALUES ('u1', 'Old', 'premium', 'IS', 1)"
            .to_owned(),
        format!("INSERT INTO api_tokens (token_sha256, user_id, created_at) VALUES ('{token_sha}', 'u1', 1)"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let s = Server::start(&db.url).await;
    let t: TrackResponse = s.get("/v1/tracks/t1", Some(token)).await.json().await.unwrap();
    assert_eq!(t.qualities, vec![160], "{db:?}");
    assert_eq!(t.loudness.map(|l| l.gain_db), Some(-1.5));
    assert_eq!(t.artists[0].name, "Sigur Rós");
    let found: serde_json::Value =
        s.get("/v1/search?q=hoppipolla&type=track,artist,album", Some(token)).await.json().await.unwrap();
    assert_eq!(found["tracks"]["items"][0]["id"], "t1", "{db:?}: {found}");
    let found: serde_json::Value =
        s.get("/v1/search?q=sigur%20ros&type=album", Some(token)).await.json().await.unwrap();
    assert_eq!(found["albums"]["items"][0]["id"], "al1", "{db:?}: {found}");
    assert_eq!(
        support::sql_i64(&db.url, "SELECT COUNT(*) FROM api_tokens WHERE id LIKE 'tok_%'").await,
        Some(1)
    );
    s.stop().await.unwrap();
    // Foreign keys still cascade from the rebuilt table.
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    if db.kind == "sqlite" {
        sqlx::raw_sql("PRAGMA foreign_keys = ON").execute(&mut conn).await.unwrap();
    }
    sqlx::raw_sql("DELETE FROM tracks WHERE id = 't1'").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM track_files").await, Some(0), "{db:?}");
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM track_artists").await, Some(0), "{db:?}");
}
