//! JSON Lines bulk import and single-entity admin writes, on SQLite and
//! PostgreSQL.

mod support;

use cadenza_control::types::{BulkImportResponse, SearchResponse, Tier, TrackResponse};
use support::{ADMIN_TOKEN, Server, TestDb, expect_error};

/// `artists` artists, `albums` albums (round-robin over artists) and
/// `tracks` tracks (round-robin over albums), one entity per line.
fn catalog_jsonl(artists: usize, albums: usize, tracks: usize) -> String {
    let mut out = String::new();
    for i in 0..artists {
        out.push_str(&format!("{{\"artist\":{{\"id\":\"ar{i}\",\"name\":\"Artist {i}\"}}}}\n"));
    }
    for i in 0..albums {
        out.push_str(&format!(
            "{{\"album\":{{\"id\":\"al{i}\",\"title\":\"Album {i}\",\"album_type\":\"album\",\"artist_ids\":[\"ar{}\"]}}}}\n",
            i % artists
        ));
    }
    for i in 0..tracks {
        out.push_str(&format!(
            "{{\"track\":{{\"id\":\"t{i}\",\"album_id\":\"al{}\",\"title\":\"Track number {i}\",\"track_number\":{},\"artist_ids\":[\"ar{}\"],\"duration_ms\":180000,\"popularity\":{}}}}}\n",
            i % albums,
            i / albums + 1,
            (i % albums) % artists,
            i % 101
        ));
    }
    out
}

async fn post_jsonl(s: &Server, body: String) -> reqwest::Response {
    s.http
        .post(s.url("/v1/admin/import/jsonl"))
        // Importing again rows that exist updates them one at a time: in a
        // debug build on a busy two-core machine that took 18-23 s for
        // 12,000 tracks on PostgreSQL, near the client's 30 s default.
        .timeout(std::time::Duration::from_secs(180))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn jsonl_imports_in_chunks_and_names_bad_lines() {
    for db in support::databases().await {
        jsonl_on(&db).await;
    }
}

async fn jsonl_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    // 12,600 lines: three transactions of 5,000.
    let body = catalog_jsonl(100, 500, 12_000);
    let resp = post_jsonl(&s, body.clone()).await;
    assert_eq!(resp.status(), 200, "{db:?}: {}", resp.text().await.unwrap());
    let done: BulkImportResponse = resp.json().await.unwrap();
    assert_eq!(
        (done.lines, done.artists, done.albums, done.tracks, done.transactions),
        (12_600, 100, 500, 12_000, 3),
        "{db:?}"
    );
    assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM tracks").await, Some(12_000));
    if db.kind == "postgres" {
        // The import vacuumed and analysed the catalog (GIN pending lists).
        let sql =
            "SELECT COUNT(*) FROM pg_stat_user_tables WHERE relname = 'tracks' AND last_vacuum IS NOT NULL";
        assert_eq!(support::sql_i64(&db.url, sql).await, Some(1));
    }
    let user = s.user(Tier::Free).await;
    let t: TrackResponse = s.get("/v1/tracks/t777", Some(&user.token)).await.json().await.unwrap();
    assert_eq!((t.album.id.as_str(), t.popularity, t.duration_ms), ("al277", 777 % 101, 180_000));
    // Imported rows are searchable.
    let r: SearchResponse =
        s.get("/v1/search?q=track%20number%20777&type=track", Some(&user.token)).await.json().await.unwrap();
    assert_eq!(r.tracks.unwrap().items[0].id.as_str(), "t777", "{db:?}");

    // The same file again changes nothing; CRLF endings and blank lines are fine.
    let crlf = body.replace('\n', "\r\n") + "\r\n\n";
    let resp = post_jsonl(&s, crlf).await;
    assert_eq!(resp.status(), 200, "{db:?}");

    // A bad line: 400 naming it, and what was committed before it.
    let mut bad = catalog_jsonl(2, 2, 6_000);
    bad.push_str("{\"track\":{\"id\":\"tx\",\"album_id\":\"nope\",\"title\":\"X\",\"track_number\":1,\"artist_ids\":[\"ar0\"],\"duration_ms\":1}}\n");
    let msg = expect_error(post_jsonl(&s, bad).await, 400, "invalid_request").await;
    assert!(msg.starts_with("line 6005: track.album_id: unknown album \"nope\""), "{db:?}: {msg}");
    assert!(msg.contains("the 5000 lines up to line 5000 were imported"), "{db:?}: {msg}");
    for (line, field) in [
        ("{\"track\":{\"id\":\"t1\"}}", "line 1: track: missing field"),
        ("{\"song\":{}}", "line 1: body: unknown variant `song`"),
        ("not json", "line 1: body: expected"),
        ("{\"artist\":{\"id\":\"a/b\",\"name\":\"X\"}}", "line 1: artist.id"),
        (
            "{\"album\":{\"id\":\"x\",\"title\":\"\",\"album_type\":\"album\",\"artist_ids\":[\"ar0\"]}}",
            "line 1: album.title",
        ),
        (
            "{\"track\":{\"id\":\"t1\",\"album_id\":\"al0\",\"title\":\"X\",\"track_number\":1,\"artist_ids\":[\"ar0\"]}}",
            "line 1: track.duration_ms: required",
        ),
    ] {
        let msg = expect_error(post_jsonl(&s, format!("{line}\n")).await, 400, "invalid_request").await;
        assert!(msg.starts_with(field), "{line}: {msg}");
        assert!(msg.ends_with("(nothing was imported)"), "{msg}");
    }
    let resp = s
        .http
        .post(s.url("/v1/admin/import/jsonl"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_request").await;
    let resp =
        s.http.post(s.url("/v1/admin/import/jsonl")).bearer_auth(&user.token).body("").send().await.unwrap();
    expect_error(resp, 403, "forbidden").await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn admin_puts_create_then_replace() {
    for db in support::databases().await {
        let s = Server::start(&db.url).await;
        let put = async |path: &str, body: serde_json::Value| {
            s.http.put(s.url(path)).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap()
        };
        let artist = serde_json::json!({"id": "ar9", "name": "Nine"});
        assert_eq!(put("/v1/admin/artists/ar9", artist.clone()).await.status(), 201, "{db:?}");
        assert_eq!(put("/v1/admin/artists/ar9", artist).await.status(), 200);
        let album =
            serde_json::json!({"id": "al9", "title": "Nine", "album_type": "ep", "artist_ids": ["ar9"]});
        assert_eq!(put("/v1/admin/albums/al9", album).await.status(), 201);
        let track = serde_json::json!({"id": "t9", "album_id": "al9", "title": "Nine", "track_number": 1,
            "artist_ids": ["ar9"], "duration_ms": 1000});
        assert_eq!(put("/v1/admin/tracks/t9", track.clone()).await.status(), 201);
        let mut renamed = track.clone();
        renamed["title"] = "Nine (Edit)".into();
        assert_eq!(put("/v1/admin/tracks/t9", renamed).await.status(), 200);
        let user = s.user(Tier::Free).await;
        let t: TrackResponse = s.get("/v1/tracks/t9", Some(&user.token)).await.json().await.unwrap();
        assert_eq!(t.title, "Nine (Edit)");

        let msg = expect_error(put("/v1/admin/tracks/t8", track.clone()).await, 400, "invalid_request").await;
        assert!(msg.starts_with("id: the body's id \"t9\" differs"), "{msg}");
        let mut bad = track.clone();
        bad["album_id"] = "zz".into();
        let msg = expect_error(put("/v1/admin/tracks/t9", bad).await, 400, "invalid_request").await;
        assert!(msg.contains("album_id"), "{msg}");
        let mut bad = track;
        bad["colour"] = "red".into();
        let msg = expect_error(put("/v1/admin/tracks/t9", bad).await, 400, "invalid_request").await;
        assert!(msg.contains("colour"), "{msg}");
        let resp = s
            .http
            .put(s.url("/v1/admin/artists/ar9"))
            .bearer_auth(&user.token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        expect_error(resp, 403, "forbidden").await;
        s.stop().await.unwrap();
    }
}

/// Several imports of the same new rows at once (a retried upload, two
/// admins): all succeed and the catalog holds one copy with whole credits.
#[tokio::test]
async fn concurrent_imports_of_the_same_new_rows() {
    for db in support::databases().await {
        let s = std::sync::Arc::new(Server::start(&db.url).await);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..6 {
            let s = s.clone();
            tasks.spawn(async move {
                let mut batch = support::catalog();
                batch.tracks[1].title = format!("Take {i}");
                let resp = s.import(&batch).await;
                (resp.status().as_u16(), resp.text().await.unwrap())
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (status, body) = done.unwrap();
            assert_eq!(status, 200, "{db:?}: {body}");
        }
        assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM tracks").await, Some(3));
        assert_eq!(
            support::sql_i64(&db.url, "SELECT COUNT(*) FROM track_artists WHERE track_id = 't1'").await,
            Some(2)
        );
        assert_eq!(
            support::sql_i64(&db.url, "SELECT COUNT(*) FROM track_files WHERE track_id = 't1'").await,
            Some(4)
        );
        let s = std::sync::Arc::into_inner(s).expect("tasks done");
        s.stop().await.unwrap();
    }
}
