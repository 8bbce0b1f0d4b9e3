//! End-to-end tests of the playlists API: a real server on loopback, real
//! HTTP, real SQLite — and real PostgreSQL when `CADENZA_TEST_DATABASE_URL`
//! is set. Every body runs on each database.
//!
//! After every batch of writes the tests check the storage invariant
//! directly in the database: each playlist's positions are exactly
//! `0..item_count`.

mod support;

use cadenza_config::ladder::Rung;
use cadenza_control::types::{
    ImportRequest, Paging, PlaylistItem, PlaylistResponse, SimplePlaylist, SnapshotResponse, Tier,
};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, TestDb, expect_error};

/// A server with rate limits off: these tests make hundreds of writes.
async fn start(db: &TestDb) -> Server {
    let mut config = support::config(&db.url);
    config.rate_limits.enabled = false;
    let s = Server::start_with(config).await;
    assert_eq!(s.import(&catalog()).await.status(), 200, "{db:?}");
    s
}

/// The fixture catalog plus tracks `x00`..`x29` (96 kbps only).
fn catalog() -> ImportRequest {
    let mut c = support::catalog();
    for i in 0..30 {
        c.tracks.push(support::track(&format!("x{i:02}"), "al1", 10 + i, &["ar1"], &[Rung::K96]));
    }
    c
}

fn x(i: usize) -> String {
    format!("x{i:02}")
}

/// A user of the test server.
struct Client<'a> {
    s: &'a Server,
    id: String,
    token: String,
}

impl<'a> Client<'a> {
    async fn new(s: &'a Server) -> Self {
        let u = s.user(Tier::Free).await;
        Self { s, id: u.id.as_str().to_owned(), token: u.token }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.s.http.request(method.clone(), self.s.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.send(Method::GET, path, None, None).await
    }

    /// Create a playlist from `body`; its answer.
    async fn create(&self, body: Value) -> PlaylistResponse {
        let resp = self.send(Method::POST, "/v1/playlists", Some(body), None).await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    async fn playlist(&self, id: &str) -> PlaylistResponse {
        let resp = self.get(&format!("/v1/playlists/{id}")).await;
        assert_eq!(resp.status(), 200, "GET playlist {id}");
        resp.json().await.unwrap()
    }

    /// Add tracks (append, or at `position`); the new snapshot.
    async fn add(&self, id: &str, tracks: &[String], position: Option<u32>) -> String {
        let mut body = json!({ "track_ids": tracks });
        if let Some(p) = position {
            body["position"] = json!(p);
        }
        let resp = self.send(Method::POST, &format!("/v1/playlists/{id}/items"), Some(body), None).await;
        assert_eq!(resp.status(), 201, "add to {id}");
        resp.json::<SnapshotResponse>().await.unwrap().snapshot_id
    }

    /// The track ids of the playlist in order, read page by page; checks
    /// each item's `position` and the totals on the way.
    async fn order(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut path = format!("/v1/playlists/{id}/items?limit=50");
        loop {
            let resp = self.get(&path).await;
            assert_eq!(resp.status(), 200);
            let page: Paging<PlaylistItem> = resp.json().await.unwrap();
            for item in &page.items {
                assert_eq!(item.position as usize, out.len(), "positions count up from 0");
                out.push(item.track.id.as_str().to_owned());
            }
            match page.next {
                Some(next) => path = next,
                None => {
                    assert_eq!(page.total as usize, out.len());
                    return out;
                }
            }
        }
    }
}

/// Every playlist's positions are exactly `0..item_count`.
async fn assert_contiguous(db: &TestDb) {
    let checks: [(&str, &'static str); 3] = [
        (
            "an item at or past its playlist's item_count",
            "SELECT COUNT(*) FROM playlist_items i JOIN playlists p ON p.id = i.playlist_id
             WHERE i.position >= p.item_count",
        ),
        (
            "two items at one position",
            "SELECT COUNT(*) FROM (SELECT playlist_id, position FROM playlist_items
             GROUP BY playlist_id, position HAVING COUNT(*) > 1) d",
        ),
        (
            "item_count differs from the items",
            "SELECT COUNT(*) FROM playlists p
             WHERE p.item_count <> (SELECT COUNT(*) FROM playlist_items i WHERE i.playlist_id = p.id)",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(support::sql_i64(&db.url, sql).await, Some(0), "{db:?}: {what}");
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[tokio::test]
async fn create_view_update_delete() {
    for db in support::databases().await {
        create_view_update_delete_on(&db).await;
    }
}

async fn create_view_update_delete_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let bo = Client::new(&s).await;

    let p = ana.create(json!({"name": "  Road Trip  ", "description": "for the car"})).await;
    assert_eq!(p.name, "Road Trip", "{db:?}: trimmed");
    assert_eq!(p.description.as_deref(), Some("for the car"));
    assert!(p.public && !p.collaborative, "defaults");
    assert_eq!(p.owner.id.as_str(), ana.id);
    assert_eq!(p.owner.display_name, "Free listener");
    assert_eq!((p.followers, p.items.total, p.items.items.len()), (0, 0, 0));
    assert_eq!(p.items.href, format!("/v1/playlists/{}/items?offset=0&limit=20", p.id));
    assert_eq!(ana.playlist(&p.id).await, p, "{db:?}: GET answers what POST did");
    // Public: anyone sees it.
    assert_eq!(bo.playlist(&p.id).await, p);
    // Indexed for search under its name and owner.
    let sql = leak(format!(
        "SELECT COUNT(*) FROM playlists WHERE id = '{}' AND search_text = ' road trip free listener '",
        p.id
    ));
    assert_eq!(support::sql_i64(&db.url, sql).await, Some(1), "{db:?}: search_text");

    // Change details: owner only; the snapshot changes.
    let path = format!("/v1/playlists/{}", p.id);
    let resp =
        ana.send(Method::PUT, &path, Some(json!({"name": "Night Drive", "description": ""})), None).await;
    assert_eq!(resp.status(), 200);
    let changed: PlaylistResponse = resp.json().await.unwrap();
    assert_eq!(changed.name, "Night Drive");
    assert_eq!(changed.description, None, "{db:?}: \"\" removes the description");
    assert_ne!(changed.snapshot_id, p.snapshot_id);
    assert_eq!(ana.playlist(&p.id).await, changed);
    let sql = leak(format!(
        "SELECT COUNT(*) FROM playlists WHERE id = '{}' AND search_text = ' night drive free listener '",
        p.id
    ));
    assert_eq!(support::sql_i64(&db.url, sql).await, Some(1), "{db:?}: re-indexed");
    if db.kind == "sqlite" {
        let sql = leak(format!(
            "SELECT COUNT(*) FROM playlists_fts WHERE id = '{}' AND search_text LIKE '%night drive%'",
            p.id
        ));
        assert_eq!(support::sql_i64(&db.url, sql).await, Some(1), "FTS row replaced");
        assert_eq!(support::sql_i64(&db.url, "SELECT COUNT(*) FROM playlists_fts").await, Some(1));
    }
    let msg = expect_error(
        bo.send(Method::PUT, &path, Some(json!({"name": "Mine"})), None).await,
        403,
        "forbidden",
    )
    .await;
    assert!(msg.contains("owner"), "{msg}");
    expect_error(bo.send(Method::DELETE, &path, None, None).await, 403, "forbidden").await;

    // Private: a stranger cannot tell it from a missing playlist.
    let resp = ana.send(Method::PUT, &path, Some(json!({"public": false})), None).await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.json::<PlaylistResponse>().await.unwrap().public);
    for (method, sub, body) in [
        (Method::GET, "", None),
        (Method::GET, "/items", None),
        (Method::PUT, "", Some(json!({"name": "x"}))),
        (Method::DELETE, "", None),
        (Method::POST, "/items", Some(json!({"track_ids": ["t1"]}))),
        (Method::DELETE, "/items", Some(json!({"tracks": [{"track_id": "t1"}]}))),
        (Method::PUT, "/items", Some(json!({"range_start": 0, "insert_before": 1}))),
        (Method::PUT, &format!("/collaborators/{}", bo.id), None),
    ] {
        let resp = bo.send(method.clone(), &format!("{path}{sub}"), body, None).await;
        let msg = expect_error(resp, 404, "playlist_not_found").await;
        assert!(msg.contains(&p.id), "{method} {sub}: {msg}");
    }
    let missing = ana.get("/v1/playlists/no-such-playlist").await;
    expect_error(missing, 404, "playlist_not_found").await;

    // A collaborative playlist may not be public, whichever way it is asked.
    let msg = expect_error(
        ana.send(Method::POST, "/v1/playlists", Some(json!({"name": "x", "collaborative": true})), None)
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(msg.starts_with("collaborative:"), "{msg}");
    let resp = ana.send(Method::PUT, &path, Some(json!({"collaborative": true, "public": true})), None).await;
    assert!(expect_error(resp, 400, "invalid_request").await.starts_with("public:"));
    let resp = ana.send(Method::PUT, &path, Some(json!({"collaborative": true})), None).await;
    assert_eq!(resp.status(), 200);
    let resp: PlaylistResponse = resp.json().await.unwrap();
    assert!(resp.collaborative && !resp.public);
    let resp = ana.send(Method::PUT, &path, Some(json!({"public": true})), None).await;
    assert!(expect_error(resp, 400, "invalid_request").await.starts_with("public:"));

    // Lists: mine (all), theirs (public only), newest first.
    let second = ana.create(json!({"name": "Second", "public": false})).await;
    let third = ana.create(json!({"name": "Third"})).await;
    let mine: Paging<SimplePlaylist> = ana.get("/v1/me/playlists").await.json().await.unwrap();
    let ids: Vec<&str> = mine.items.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(mine.total, 3);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    let mut want = vec![p.id.as_str(), second.id.as_str(), third.id.as_str()];
    want.sort_unstable();
    assert_eq!(sorted, want, "{db:?}");
    assert!(mine.items.iter().all(|i| i.items_total == 0 && i.owner.id.as_str() == ana.id));
    let theirs: Paging<SimplePlaylist> =
        bo.get(&format!("/v1/users/{}/playlists", ana.id)).await.json().await.unwrap();
    assert_eq!(theirs.total, 1, "{db:?}: only the public one");
    assert_eq!(theirs.items[0].id, third.id);
    let none: Paging<SimplePlaylist> = bo.get("/v1/me/playlists").await.json().await.unwrap();
    assert_eq!((none.total, none.items.len()), (0, 0));
    expect_error(bo.get("/v1/users/nobody/playlists").await, 404, "user_not_found").await;

    // Delete: owner only; gone, unindexed, unsaved from libraries.
    let third_path = format!("/v1/playlists/{}", third.id);
    ana.add(&third.id, &["t1".into(), "t2".into()], None).await;
    assert_eq!(
        bo.send(Method::PUT, &format!("/v1/me/library/playlists?ids={}", third.id), None, None)
            .await
            .status(),
        204
    );
    assert_eq!(ana.send(Method::DELETE, &third_path, None, None).await.status(), 204);
    expect_error(ana.get(&third_path).await, 404, "playlist_not_found").await;
    expect_error(ana.send(Method::DELETE, &third_path, None, None).await, 404, "playlist_not_found").await;
    let sql = leak(format!("SELECT COUNT(*) FROM playlist_items WHERE playlist_id = '{}'", third.id));
    assert_eq!(support::sql_i64(&db.url, sql).await, Some(0));
    let sql = leak(format!("SELECT COUNT(*) FROM user_library WHERE item_id = '{}'", third.id));
    assert_eq!(support::sql_i64(&db.url, sql).await, Some(0), "{db:?}: unsaved");
    if db.kind == "sqlite" {
        let sql = leak(format!("SELECT COUNT(*) FROM playlists_fts WHERE id = '{}'", third.id));
        assert_eq!(support::sql_i64(&db.url, sql).await, Some(0), "unindexed");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn collaborators_edit_items_only() {
    for db in support::databases().await {
        collaborators_edit_items_only_on(&db).await;
    }
}

async fn collaborators_edit_items_only_on(db: &TestDb) {
    let s = start(db).await;
    let owner = Client::new(&s).await;
    let collab = Client::new(&s).await;
    let stranger = Client::new(&s).await;
    let p = owner.create(json!({"name": "Band", "public": false, "collaborative": true})).await;
    let path = format!("/v1/playlists/{}", p.id);
    let collab_path = format!("{path}/collaborators/{}", collab.id);

    // Only the owner manages collaborators; the user must exist.
    expect_error(collab.send(Method::PUT, &collab_path, None, None).await, 404, "playlist_not_found").await;
    let resp = owner.send(Method::PUT, &format!("{path}/collaborators/nobody"), None, None).await;
    assert!(expect_error(resp, 404, "user_not_found").await.contains("nobody"));
    let resp = owner.send(Method::PUT, &format!("{path}/collaborators/{}", owner.id), None, None).await;
    assert!(expect_error(resp, 400, "invalid_request").await.starts_with("user_id:"));
    assert_eq!(owner.send(Method::PUT, &collab_path, None, None).await.status(), 204);
    assert_eq!(owner.send(Method::PUT, &collab_path, None, None).await.status(), 204, "idempotent");

    // The collaborator sees it, lists it, and edits its items…
    assert_eq!(collab.playlist(&p.id).await.id, p.id);
    let theirs: Paging<SimplePlaylist> = collab.get("/v1/me/playlists").await.json().await.unwrap();
    assert_eq!(theirs.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [p.id.as_str()], "{db:?}");
    collab.add(&p.id, &["t1".into(), "t2".into(), "t3".into()], None).await;
    let resp = collab
        .send(
            Method::PUT,
            &format!("{path}/items"),
            Some(json!({"range_start": 2, "insert_before": 0})),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = collab
        .send(Method::DELETE, &format!("{path}/items"), Some(json!({"tracks": [{"track_id": "t1"}]})), None)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(owner.order(&p.id).await, ["t3", "t2"]);
    let view = owner.playlist(&p.id).await;
    assert!(
        view.items.items.iter().all(|i| i.added_by.as_ref().map(|u| u.as_str()) == Some(collab.id.as_str()))
    );
    // …but not its details, its collaborators, or its existence.
    expect_error(
        collab.send(Method::PUT, &path, Some(json!({"name": "Ours"})), None).await,
        403,
        "forbidden",
    )
    .await;
    expect_error(collab.send(Method::DELETE, &path, None, None).await, 403, "forbidden").await;
    let other = format!("{path}/collaborators/{}", stranger.id);
    expect_error(collab.send(Method::PUT, &other, None, None).await, 403, "forbidden").await;
    // The stranger sees nothing.
    expect_error(stranger.get(&path).await, 404, "playlist_not_found").await;

    // Not collaborative any more: the collaborator loses access.
    assert_eq!(
        owner.send(Method::PUT, &path, Some(json!({"collaborative": false})), None).await.status(),
        200
    );
    expect_error(collab.get(&path).await, 404, "playlist_not_found").await;
    let theirs: Paging<SimplePlaylist> = collab.get("/v1/me/playlists").await.json().await.unwrap();
    assert_eq!(theirs.total, 0);
    // Public again: visible to all, editable by the owner only.
    assert_eq!(owner.send(Method::PUT, &path, Some(json!({"public": true})), None).await.status(), 200);
    let body = json!({"track_ids": ["t1"]});
    for who in [&collab, &stranger] {
        let resp = who.send(Method::POST, &format!("{path}/items"), Some(body.clone()), None).await;
        expect_error(resp, 403, "forbidden").await;
    }
    // Collaborative (and private) again, then the collaborator is removed.
    let resp =
        owner.send(Method::PUT, &path, Some(json!({"public": false, "collaborative": true})), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        collab.send(Method::POST, &format!("{path}/items"), Some(body.clone()), None).await.status(),
        201
    );
    assert_eq!(owner.send(Method::DELETE, &collab_path, None, None).await.status(), 204);
    assert_eq!(owner.send(Method::DELETE, &collab_path, None, None).await.status(), 204, "idempotent");
    let resp = collab.send(Method::POST, &format!("{path}/items"), Some(body), None).await;
    expect_error(resp, 404, "playlist_not_found").await;
    assert_eq!(owner.order(&p.id).await, ["t3", "t2", "t1"]);
    assert_contiguous(db).await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn add_and_remove_items() {
    for db in support::databases().await {
        add_and_remove_items_on(&db).await;
    }
}

async fn add_and_remove_items_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let p = ana.create(json!({"name": "Mix"})).await;
    let items = format!("/v1/playlists/{}/items", p.id);

    ana.add(&p.id, &[x(0), x(1), x(2)], None).await;
    ana.add(&p.id, &[x(3), x(4)], Some(0)).await; // at the start
    ana.add(&p.id, &[x(5)], Some(2)).await; // in the middle
    ana.add(&p.id, &[x(6)], Some(6)).await; // at the end (= length)
    ana.add(&p.id, &[x(1), x(1)], Some(1)).await; // repeats
    let want = [x(3), x(1), x(1), x(4), x(5), x(0), x(1), x(2), x(6)];
    assert_eq!(ana.order(&p.id).await, want, "{db:?}");
    assert_contiguous(db).await;
    let first = ana.playlist(&p.id).await.items.items.remove(0);
    assert_eq!(first.added_by.unwrap().as_str(), ana.id);
    assert_eq!(first.track.title, "Song x03");
    assert_eq!(first.track.qualities, [96]);

    // Past the end; unknown tracks: 400, nothing changes.
    let resp = ana.send(Method::POST, &items, Some(json!({"track_ids": ["t1"], "position": 10})), None).await;
    assert!(expect_error(resp, 400, "invalid_request").await.starts_with("position:"));
    let resp = ana.send(Method::POST, &items, Some(json!({"track_ids": ["t1", "t2", "nope"]})), None).await;
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.starts_with("track_ids[2]:") && msg.contains("nope"), "{msg}");

    // Remove by positions: exactly those.
    let resp = ana
        .send(
            Method::DELETE,
            &items,
            Some(json!({"tracks": [{"track_id": "x01", "positions": [2, 6]}]})),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(ana.order(&p.id).await, [x(3), x(1), x(4), x(5), x(0), x(2), x(6)]);
    assert_contiguous(db).await;
    // A position that does not hold the track, or is past the end: 400, nothing removed.
    for (body, field) in [
        (
            json!({"tracks": [{"track_id": "x03", "positions": [0]}, {"track_id": "x04", "positions": [1]}]}),
            "tracks[1].positions[0]:",
        ),
        (json!({"tracks": [{"track_id": "x06", "positions": [6, 7]}]}), "tracks[0].positions[1]:"),
    ] {
        let msg =
            expect_error(ana.send(Method::DELETE, &items, Some(body), None).await, 400, "invalid_request")
                .await;
        assert!(msg.starts_with(field), "{msg}");
    }
    assert_eq!(ana.order(&p.id).await, [x(3), x(1), x(4), x(5), x(0), x(2), x(6)]);
    // Every occurrence, and by position, in one request; an absent track is fine.
    ana.add(&p.id, &[x(5)], None).await;
    let body =
        json!({"tracks": [{"track_id": "x05"}, {"track_id": "x03", "positions": [0]}, {"track_id": "t3"}]});
    assert_eq!(ana.send(Method::DELETE, &items, Some(body), None).await.status(), 200);
    assert_eq!(ana.order(&p.id).await, [x(1), x(4), x(0), x(2), x(6)]);
    assert_contiguous(db).await;

    // Everything.
    let all: Vec<Value> = [1, 4, 0, 2, 6].iter().map(|i| json!({"track_id": x(*i)})).collect();
    assert_eq!(ana.send(Method::DELETE, &items, Some(json!({"tracks": all})), None).await.status(), 200);
    assert!(ana.order(&p.id).await.is_empty());
    ana.add(&p.id, &[x(9)], Some(0)).await;
    assert_eq!(ana.order(&p.id).await, [x(9)]);
    assert_contiguous(db).await;
    s.stop().await.unwrap();
}

/// Spotify's reorder on a list, the obvious way: the range
/// `[start, start + length)` goes before the item that was at `before`.
fn model(v: &[String], start: usize, before: usize, length: usize) -> Vec<String> {
    let moved: Vec<String> = v[start..start + length].to_vec();
    let mut out = Vec::new();
    for (i, item) in v.iter().enumerate() {
        if i == before {
            out.extend(moved.iter().cloned());
        }
        if !(start..start + length).contains(&i) {
            out.push(item.clone());
        }
    }
    if before == v.len() {
        out.extend(moved);
    }
    out
}

#[tokio::test]
async fn reorder_follows_spotify() {
    for db in support::databases().await {
        reorder_follows_spotify_on(&db).await;
    }
}

async fn reorder_follows_spotify_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let p = ana.create(json!({"name": "Order"})).await;
    let items = format!("/v1/playlists/{}/items", p.id);
    const N: usize = 6;
    let tracks: Vec<String> = (0..N).map(x).collect();
    ana.add(&p.id, &tracks, None).await;

    // Spotify's documented examples on 10 items: first to last, last to first.
    let mut current = tracks.clone();
    assert_eq!(model(&current, 0, 6, 1), [x(1), x(2), x(3), x(4), x(5), x(0)]);
    assert_eq!(model(&current, 5, 0, 1), [x(5), x(0), x(1), x(2), x(3), x(4)]);

    // Every valid (start, before, length), applied one after the other to
    // the server and the model; each answer compared.
    let mut cases = 0;
    for start in 0..N {
        for length in 1..=N - start {
            for before in 0..=N {
                let mut body = json!({"range_start": start, "insert_before": before});
                if length != 1 || (start + before) % 2 == 0 {
                    body["range_length"] = json!(length);
                }
                let resp = ana.send(Method::PUT, &items, Some(body), None).await;
                assert_eq!(resp.status(), 200, "{db:?}: {start} {before} {length}");
                current = model(&current, start, before, length);
                assert_eq!(
                    ana.order(&p.id).await,
                    current,
                    "{db:?}: start {start} before {before} length {length}"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 21 * 7);
    assert_contiguous(db).await;

    // Out of bounds: 400 naming the field; nothing changes.
    for (body, field) in [
        (json!({"range_start": 6, "insert_before": 0}), "range_start:"),
        (json!({"range_start": 4, "insert_before": 0, "range_length": 3}), "range_length:"),
        (json!({"range_start": 0, "insert_before": 7}), "insert_before:"),
        (json!({"range_start": 0, "insert_before": 2, "range_length": 0}), "range_length:"),
        (json!({"range_start": -1, "insert_before": 2}), "range_start:"),
        (json!({"insert_before": 2}), "range_start"),
    ] {
        let msg = expect_error(
            ana.send(Method::PUT, &items, Some(body.clone()), None).await,
            400,
            "invalid_request",
        )
        .await;
        assert!(msg.contains(field), "{body}: {msg}");
    }
    assert_eq!(ana.order(&p.id).await, current);
    // An empty playlist has nothing to move.
    let empty = ana.create(json!({"name": "Empty"})).await;
    let resp = ana
        .send(
            Method::PUT,
            &format!("/v1/playlists/{}/items", empty.id),
            Some(json!({"range_start": 0, "insert_before": 0})),
            None,
        )
        .await;
    assert!(expect_error(resp, 400, "invalid_request").await.starts_with("range_start:"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn snapshots_and_if_match() {
    for db in support::databases().await {
        snapshots_and_if_match_on(&db).await;
    }
}

async fn snapshots_and_if_match_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let p = ana.create(json!({"name": "Versions"})).await;
    let path = format!("/v1/playlists/{}", p.id);
    let items = format!("{path}/items");
    let mut seen = vec![p.snapshot_id.clone()];

    // Stable between changes.
    assert_eq!(ana.playlist(&p.id).await.snapshot_id, p.snapshot_id);
    // Every change gives a new one, which GET then shows.
    let s1 = ana.add(&p.id, &[x(0), x(1), x(2)], None).await;
    seen.push(s1.clone());
    let resp =
        ana.send(Method::PUT, &items, Some(json!({"range_start": 0, "insert_before": 3})), Some(&s1)).await;
    assert_eq!(resp.status(), 200, "{db:?}: current If-Match");
    let s2 = resp.json::<SnapshotResponse>().await.unwrap().snapshot_id;
    seen.push(s2.clone());
    let body = json!({"tracks": [{"track_id": "x01", "positions": [0]}], "snapshot_id": s2});
    let resp = ana.send(Method::DELETE, &items, Some(body), None).await;
    assert_eq!(resp.status(), 200, "{db:?}: current body snapshot");
    let s3 = resp.json::<SnapshotResponse>().await.unwrap().snapshot_id;
    seen.push(s3.clone());
    let quoted = format!("\"{s3}\"");
    let resp = ana.send(Method::PUT, &path, Some(json!({"name": "V2"})), Some(&quoted)).await;
    assert_eq!(resp.status(), 200, "{db:?}: a quoted entity tag");
    let s4 = resp.json::<PlaylistResponse>().await.unwrap().snapshot_id;
    seen.push(s4.clone());
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{db:?}: all distinct: {seen:?}");
    assert_eq!(ana.playlist(&p.id).await.snapshot_id, s4);

    // A stale snapshot: 412, and nothing changes — byte for byte.
    let before = ana.get(&path).await.text().await.unwrap();
    let stale = s3.as_str();
    for (method, p, body, header) in [
        (Method::POST, items.as_str(), json!({"track_ids": ["t1"]}), Some(stale)),
        (Method::POST, items.as_str(), json!({"track_ids": ["t1"], "snapshot_id": stale}), None),
        (Method::POST, items.as_str(), json!({"track_ids": ["t1"], "snapshot_id": stale}), Some(s4.as_str())),
        (Method::DELETE, items.as_str(), json!({"tracks": [{"track_id": "x00"}]}), Some(stale)),
        (
            Method::DELETE,
            items.as_str(),
            json!({"tracks": [{"track_id": "x00"}], "snapshot_id": "bogus"}),
            None,
        ),
        (Method::PUT, items.as_str(), json!({"range_start": 0, "insert_before": 2}), Some(stale)),
        (
            Method::PUT,
            items.as_str(),
            json!({"range_start": 0, "insert_before": 2, "snapshot_id": stale}),
            None,
        ),
        (Method::PUT, path.as_str(), json!({"name": "V3"}), Some(stale)),
    ] {
        let resp = ana.send(method.clone(), p, Some(body), header).await;
        let msg = expect_error(resp, 412, "snapshot_mismatch").await;
        assert!(msg.starts_with("snapshot_id:"), "{method} {p}: {msg}");
    }
    expect_error(ana.send(Method::DELETE, &path, None, Some(stale)).await, 412, "snapshot_mismatch").await;
    assert_eq!(ana.get(&path).await.text().await.unwrap(), before, "{db:?}: nothing changed");
    // `*` and a list holding the current one match.
    let list = format!("\"{s4}\", *");
    let resp = ana.send(Method::POST, &items, Some(json!({"track_ids": ["t1"]})), Some(&list)).await;
    assert_eq!(resp.status(), 201);
    let s5 = resp.json::<SnapshotResponse>().await.unwrap().snapshot_id;
    assert_eq!(ana.send(Method::DELETE, &path, None, Some(&s5)).await.status(), 204);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_adds_lose_nothing() {
    for db in support::databases().await {
        concurrent_adds_lose_nothing_on(&db).await;
    }
}

async fn concurrent_adds_lose_nothing_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let p = ana.create(json!({"name": "Crowd"})).await;
    let items = format!("/v1/playlists/{}/items", p.id);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let req = s.http.post(s.url(&items)).bearer_auth(&ana.token).json(&json!({"track_ids": [x(i)]}));
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 201, "{db:?}");
    }
    let mut order = ana.order(&p.id).await; // checks positions 0..19
    assert_eq!(order.len(), 20, "{db:?}: {order:?}");
    order.sort();
    assert_eq!(order, (0..20).map(x).collect::<Vec<_>>());
    let v = ana.playlist(&p.id).await;
    assert_eq!(v.items.total, 20);
    assert_eq!(v.snapshot_id, hex_snapshot(&p.id, 21), "{db:?}: 20 writes, 20 versions");

    // Concurrent inserts at the front and reorders, mixed: still contiguous, still 20 + 10.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let body = if i % 2 == 0 {
                json!({"track_ids": [x(20 + i)], "position": 0})
            } else {
                json!({"range_start": 0, "insert_before": 20, "range_length": 3})
            };
            let req = if i % 2 == 0 { s.http.post(s.url(&items)) } else { s.http.put(s.url(&items)) };
            let req = req.bearer_auth(&ana.token).json(&body);
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), 200 | 201), "{db:?}");
    }
    assert_eq!(ana.order(&p.id).await.len(), 25);
    assert_contiguous(db).await;
    s.stop().await.unwrap();
}

/// The documented snapshot id: hex of `"{id}:{version}"`.
fn hex_snapshot(id: &str, version: u64) -> String {
    format!("{id}:{version}").bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn paging_etags_and_the_size_limit() {
    for db in support::databases().await {
        paging_etags_and_the_size_limit_on(&db).await;
    }
}

async fn paging_etags_and_the_size_limit_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let p = ana.create(json!({"name": "Long"})).await;
    let tracks: Vec<String> = (0..25).map(x).collect();
    ana.add(&p.id, &tracks, None).await;

    let v = ana.playlist(&p.id).await;
    assert_eq!((v.items.total, v.items.items.len(), v.items.limit, v.items.offset), (25, 20, 20, 0));
    let base = format!("/v1/playlists/{}/items", p.id);
    assert_eq!(v.items.next.as_deref(), Some(format!("{base}?offset=20&limit=20").as_str()));
    assert_eq!(v.items.previous, None);
    let v = ana
        .get(&format!("/v1/playlists/{}?limit=10&offset=10", p.id))
        .await
        .json::<PlaylistResponse>()
        .await
        .unwrap();
    let positions: Vec<u32> = v.items.items.iter().map(|i| i.position).collect();
    assert_eq!(positions, (10..20).collect::<Vec<_>>());
    assert_eq!(v.items.href, format!("{base}?offset=10&limit=10"));
    assert_eq!(v.items.previous.as_deref(), Some(format!("{base}?offset=0&limit=10").as_str()));
    let page: Paging<PlaylistItem> =
        ana.get(&format!("{base}?offset=20&limit=10")).await.json().await.unwrap();
    assert_eq!((page.items.len(), page.next), (5, None));
    let page: Paging<PlaylistItem> = ana.get(&format!("{base}?offset=30")).await.json().await.unwrap();
    assert_eq!((page.items.len(), page.total), (0, 25));

    // ETag / 304 on GET playlist; a change gives a new tag.
    let path = format!("/v1/playlists/{}", p.id);
    let first = ana.get(&path).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again =
        s.http.get(s.url(&path)).bearer_auth(&ana.token).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "{db:?}");
    ana.add(&p.id, &[x(0)], None).await;
    let changed =
        s.http.get(s.url(&path)).bearer_auth(&ana.token).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);

    // At most 10,000 items: fill to 9,999 directly, then one fits and no more.
    let fill = leak(format!(
        "INSERT INTO playlist_items (playlist_id, position, track_id, added_by, added_at)
         WITH RECURSIVE n(i) AS (SELECT 26 UNION ALL SELECT i + 1 FROM n WHERE i < 9998)
         SELECT '{}', i, 't1', NULL, 0 FROM n",
        p.id
    ));
    support::sql_exec(&db.url, fill).await;
    support::sql_exec(&db.url, leak(format!("UPDATE playlists SET item_count = 9999 WHERE id = '{}'", p.id)))
        .await;
    assert_contiguous(db).await;
    let items = format!("/v1/playlists/{}/items", p.id);
    let resp = ana.send(Method::POST, &items, Some(json!({"track_ids": ["t2", "t2"]})), None).await;
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.starts_with("track_ids:") && msg.contains("10000"), "{msg}");
    ana.add(&p.id, &["t2".into()], Some(5000)).await;
    let resp = ana.send(Method::POST, &items, Some(json!({"track_ids": ["t2"]})), None).await;
    expect_error(resp, 400, "invalid_request").await;
    let page: Paging<PlaylistItem> =
        ana.get(&format!("{items}?offset=5000&limit=1")).await.json().await.unwrap();
    assert_eq!((page.total, page.items[0].track.id.as_str()), (10_000, "t2"));
    // Removing every t1 renumbers thousands of items.
    let resp = ana.send(Method::DELETE, &items, Some(json!({"tracks": [{"track_id": "t1"}]})), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(ana.order(&p.id).await.len(), 27);
    assert_contiguous(db).await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_names_the_field() {
    for db in support::databases().await {
        bad_input_names_the_field_on(&db).await;
    }
}

async fn bad_input_names_the_field_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let p = ana.create(json!({"name": "Target"})).await;
    ana.add(&p.id, &[x(0), x(1)], None).await;
    let one = format!("/v1/playlists/{}", p.id);
    let items = format!("{one}/items");
    let long = "a".repeat(201);
    let many: Vec<String> = (0..101).map(|_| "t1".to_owned()).collect();
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::POST, "/v1/playlists".to_owned(), Some(json!({})), "name"),
        (Method::POST, "/v1/playlists".to_owned(), Some(json!({"name": "   "})), "name:"),
        (Method::POST, "/v1/playlists".to_owned(), Some(json!({"name": long})), "name:"),
        (Method::POST, "/v1/playlists".to_owned(), Some(json!({"name": "a\u{7}b"})), "name:"),
        (Method::POST, "/v1/playlists".to_owned(), Some(json!({"name": 5})), "name:"),
        (Method::POST, "/v1/playlists".to_owned(), Some(json!({"name": "a", "public": "yes"})), "public:"),
        (
            Method::POST,
            "/v1/playlists".to_owned(),
            Some(json!({"name": "a", "description": "d".repeat(1001)})),
            "description:",
        ),
        (Method::POST, "/v1/playlists".to_owned(), Some(json!({"name": "a", "colour": "red"})), "colour"),
        (Method::PUT, one.clone(), Some(json!({})), "body:"),
        (Method::PUT, one.clone(), Some(json!({"name": ""})), "name:"),
        (Method::PUT, one.clone(), Some(json!({"collaborative": 1})), "collaborative:"),
        (Method::PUT, one.clone(), Some(json!({"owner": "me"})), "owner"),
        (Method::GET, "/v1/playlists/a%20b".to_owned(), None, "id:"),
        (Method::GET, format!("{one}?limit=0"), None, "limit:"),
        (Method::GET, format!("{one}?limit=51"), None, "limit:"),
        (Method::GET, format!("{one}?offset=-1"), None, "offset"),
        (Method::GET, format!("{one}?limit=ten"), None, "limit"),
        (Method::GET, format!("{one}?sort=name"), None, "sort"),
        (Method::GET, format!("{items}?offset=100001"), None, "offset:"),
        (Method::GET, "/v1/me/playlists?limit=99".to_owned(), None, "limit:"),
        (Method::GET, "/v1/me/playlists?page=2".to_owned(), None, "page"),
        (Method::GET, "/v1/users/a.b/playlists".to_owned(), None, "user_id:"),
        (Method::POST, items.clone(), Some(json!({"track_ids": []})), "track_ids:"),
        (Method::POST, items.clone(), Some(json!({"track_ids": many})), "track_ids:"),
        (Method::POST, items.clone(), Some(json!({"track_ids": ["t1", "a/b"]})), "track_ids[1]:"),
        (Method::POST, items.clone(), Some(json!({"track_ids": "t1"})), "track_ids:"),
        (Method::POST, items.clone(), Some(json!({"track_ids": ["t1"], "position": -1})), "position:"),
        (Method::POST, items.clone(), Some(json!({"track_ids": ["t1"], "position": 3})), "position:"),
        (Method::POST, items.clone(), Some(json!({"track_ids": ["t1"], "uris": []})), "uris"),
        (Method::POST, items.clone(), Some(json!({"track_ids": ["t1"], "snapshot_id": 7})), "snapshot_id:"),
        (Method::DELETE, items.clone(), Some(json!({"tracks": []})), "tracks:"),
        (Method::DELETE, items.clone(), Some(json!({"tracks": [{"id": "t1"}]})), "tracks[0]"),
        (
            Method::DELETE,
            items.clone(),
            Some(json!({"tracks": [{"track_id": "t1", "positions": []}]})),
            "tracks[0].positions:",
        ),
        (
            Method::DELETE,
            items.clone(),
            Some(json!({"tracks": [{"track_id": "t1", "positions": [-2]}]})),
            "tracks[0].positions[0]:",
        ),
        (
            Method::DELETE,
            items.clone(),
            Some(json!({"tracks": [{"track_id": "x00", "positions": [0, 1]}]})),
            "tracks[0].positions[1]:",
        ),
        (Method::DELETE, items.clone(), None, "content-type"),
        (Method::PUT, items.clone(), Some(json!({"range_start": 0})), "insert_before"),
        (
            Method::PUT,
            items.clone(),
            Some(json!({"range_start": 0, "insert_before": 1, "range_length": "2"})),
            "range_length:",
        ),
        (
            Method::PUT,
            items.clone(),
            Some(json!({"range_start": 0, "insert_before": 1, "extra": 1})),
            "extra",
        ),
        (Method::PUT, format!("{one}/collaborators/a%2Fb"), None, "user_id:"),
    ];
    let before = ana.get(&one).await.text().await.unwrap();
    for (method, path, body, field) in cases {
        let resp = ana.send(method.clone(), &path, body.clone(), None).await;
        let msg = expect_error(resp, 400, "invalid_request").await;
        assert!(msg.contains(field), "{db:?}: {method} {path} {body:?}: {msg:?} should name {field}");
    }
    // Malformed JSON and a body over the limit.
    let resp = s
        .http
        .post(s.url(&items))
        .bearer_auth(&ana.token)
        .header("content-type", "application/json")
        .body("{\"track_ids\": [")
        .send()
        .await
        .unwrap();
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.contains("EOF while parsing"), "{msg}");
    let huge = json!({"track_ids": vec!["t1"; 20_000]});
    let resp = ana.send(Method::POST, &items, Some(huge), None).await;
    expect_error(resp, 413, "payload_too_large").await;
    // No token.
    let resp = s.http.get(s.url(&one)).send().await.unwrap();
    expect_error(resp, 401, "unauthorized").await;
    assert_eq!(ana.get(&one).await.text().await.unwrap(), before, "{db:?}: nothing changed");
    s.stop().await.unwrap();
}
