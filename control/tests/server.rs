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
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM _sqlx_migrations").await, Some(3));
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
