//! End-to-end tests of the library API (`/v1/me/library/{kind}`): a real
//! server on loopback, real HTTP, real SQLite — and real PostgreSQL when
//! `CADENZA_TEST_DATABASE_URL` is set. Every body runs on each database.

mod support;

use cadenza_config::ladder::Rung;
use cadenza_control::types::{
    ImportArtist, ImportRequest, Paging, PlaylistResponse, SavedAlbum, SavedArtist, SavedPlaylist,
    SavedTrack, Tier,
};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, TestDb, expect_error};

/// A server with rate limits off, and the fixture catalog plus tracks
/// `x00`..`x59` and artists `ar3`..`ar5`.
async fn start(db: &TestDb) -> Server {
    let mut config = support::config(&db.url);
    config.rate_limits.enabled = false;
    let s = Server::start_with(config).await;
    let mut c: ImportRequest = support::catalog();
    for i in 0..60 {
        c.tracks.push(support::track(&format!("x{i:02}"), "al1", 10 + i, &["ar1"], &[Rung::K96]));
    }
    for i in 3..=5 {
        c.artists.push(ImportArtist { id: format!("ar{i}"), name: format!("Artist {i}"), popularity: None });
    }
    assert_eq!(s.import(&c).await.status(), 200, "{db:?}");
    s
}

struct Client<'a> {
    s: &'a Server,
    id: String,
    token: String,
}

impl<'a> Client<'a> {
    async fn new(s: &'a Server) -> Self {
        let u = s.user(Tier::Premium).await;
        Self { s, id: u.id.as_str().to_owned(), token: u.token }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut req = self.s.http.request(method.clone(), self.s.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    async fn save(&self, kind: &str, ids: &str) -> u16 {
        self.send(Method::PUT, &format!("/v1/me/library/{kind}?ids={ids}"), None).await.status().as_u16()
    }

    async fn unsave(&self, kind: &str, ids: &str) -> u16 {
        self.send(Method::DELETE, &format!("/v1/me/library/{kind}?ids={ids}"), None).await.status().as_u16()
    }

    async fn contains(&self, kind: &str, ids: &str) -> Vec<bool> {
        let resp = self.send(Method::GET, &format!("/v1/me/library/{kind}/contains?ids={ids}"), None).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    async fn list<T: serde::de::DeserializeOwned>(&self, kind: &str, query: &str) -> Paging<T> {
        let resp = self.send(Method::GET, &format!("/v1/me/library/{kind}{query}"), None).await;
        assert_eq!(resp.status(), 200, "list {kind}{query}");
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn tracks_save_list_contains_remove() {
    for db in support::databases().await {
        tracks_on(&db).await;
    }
}

async fn tracks_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    let bo = Client::new(&s).await;

    assert_eq!(ana.save("tracks", "t2,t1").await, 204);
    assert_eq!(ana.save("tracks", "t3").await, 204);
    // Newest first; within one request, later ids are newer.
    let page: Paging<SavedTrack> = ana.list("tracks", "").await;
    let ids: Vec<&str> = page.items.iter().map(|i| i.track.id.as_str()).collect();
    assert_eq!(ids, ["t3", "t1", "t2"], "{db:?}");
    assert_eq!(page.total, 3);
    let t1 = &page.items[1];
    assert_eq!((t1.track.title.as_str(), t1.track.qualities.len()), ("Song t1", 4), "full track objects");
    let now = i64::try_from(cadenza_config::unix_now()).unwrap();
    assert!(page.items.iter().all(|i| (now - 60..=now + 1).contains(&i.added_at)), "unix seconds");

    // Saving again is a no-op: the order (first save) stays.
    assert_eq!(ana.save("tracks", "t2,t2").await, 204);
    let again: Paging<SavedTrack> = ana.list("tracks", "").await;
    assert_eq!(again, page, "{db:?}: idempotent");
    assert_eq!(ana.contains("tracks", "t1,x00,t3,t1").await, [true, false, true, true]);
    assert_eq!(bo.contains("tracks", "t1").await, [false], "per user");

    // Unknown ids: 400 naming the index; nothing saved.
    let resp = ana.send(Method::PUT, "/v1/me/library/tracks?ids=x00,nope,x01", None).await;
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.starts_with("ids[1]:") && msg.contains("nope"), "{msg}");
    assert_eq!(ana.contains("tracks", "x00,x01").await, [false, false], "{db:?}: nothing saved");

    // Remove: absent ids are fine.
    assert_eq!(ana.unsave("tracks", "t1,x05,never").await, 204);
    assert_eq!(ana.contains("tracks", "t1,t2,t3").await, [false, true, true]);
    assert_eq!(ana.unsave("tracks", "t1").await, 204, "idempotent");

    // Paging: 50 more, newest first, links and totals.
    let ids: Vec<String> = (0..50).map(|i| format!("x{i:02}")).collect();
    assert_eq!(ana.save("tracks", &ids.join(",")).await, 204);
    let page: Paging<SavedTrack> = ana.list("tracks", "?limit=20&offset=40").await;
    assert_eq!(page.total, 52);
    assert_eq!(page.href, "/v1/me/library/tracks?offset=40&limit=20");
    assert_eq!(page.next.as_deref(), None);
    assert_eq!(page.previous.as_deref(), Some("/v1/me/library/tracks?offset=20&limit=20"));
    let got: Vec<&str> = page.items.iter().map(|i| i.track.id.as_str()).collect();
    assert_eq!(
        got,
        ["x09", "x08", "x07", "x06", "x05", "x04", "x03", "x02", "x01", "x00", "t3", "t2"],
        "{db:?}"
    );
    let first: Paging<SavedTrack> = ana.list("tracks", "").await;
    assert_eq!(first.items[0].track.id.as_str(), "x49");
    assert_eq!(first.next.as_deref(), Some("/v1/me/library/tracks?offset=20&limit=20"));

    // ETag on the list; a change gives a new one.
    let resp = ana.send(Method::GET, "/v1/me/library/tracks", None).await;
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let resp = s
        .http
        .get(s.url("/v1/me/library/tracks"))
        .bearer_auth(&ana.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(ana.unsave("tracks", "x49").await, 204);
    let resp = ana.send(Method::GET, "/v1/me/library/tracks", None).await;
    assert_ne!(resp.headers()["etag"].to_str().unwrap(), etag);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn albums_and_artists() {
    for db in support::databases().await {
        albums_and_artists_on(&db).await;
    }
}

async fn albums_and_artists_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;

    assert_eq!(ana.save("albums", "al2,al1").await, 204);
    let page: Paging<SavedAlbum> = ana.list("albums", "").await;
    assert_eq!(page.total, 2);
    let al1 = &page.items[0].album;
    assert_eq!(
        (al1.id.as_str(), al1.title.as_str(), al1.release_date.as_deref()),
        ("al1", "First Light", Some("2024-02-29"))
    );
    let artists: Vec<&str> = al1.artists.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(artists, ["ar1", "ar2"], "{db:?}: credited in order");
    let al2 = &page.items[1].album;
    assert_eq!(al2.id, "al2");
    assert!(
        al2.release_at.is_some_and(|t| t > i64::try_from(cadenza_config::unix_now()).unwrap()),
        "unix seconds"
    );
    assert_eq!(ana.contains("albums", "al1,al3,al2").await, [true, false, true]);
    let msg = expect_error(
        ana.send(Method::PUT, "/v1/me/library/albums?ids=al1,t1", None).await,
        400,
        "invalid_request",
    )
    .await;
    assert!(msg.starts_with("ids[1]:") && msg.contains("album"), "{msg}");
    assert_eq!(ana.unsave("albums", "al2").await, 204);
    let page: Paging<SavedAlbum> = ana.list("albums", "").await;
    assert_eq!((page.total, page.items[0].album.id.as_str()), (1, "al1"));

    assert_eq!(ana.save("artists", "ar3,ar4").await, 204);
    assert_eq!(ana.save("artists", "ar1,ar3").await, 204);
    let page: Paging<SavedArtist> = ana.list("artists", "?limit=2").await;
    let got: Vec<(&str, &str)> =
        page.items.iter().map(|i| (i.artist.id.as_str(), i.artist.name.as_str())).collect();
    assert_eq!(got, [("ar1", "Ada Lovelace Trio"), ("ar4", "Artist 4")], "{db:?}");
    assert_eq!((page.total, page.items[0].artist.popularity), (3, 40), "the fixture gives ar1 popularity 40");
    assert_eq!(page.next.as_deref(), Some("/v1/me/library/artists?offset=2&limit=2"));
    assert_eq!(ana.contains("artists", "ar2,ar3").await, [false, true]);
    let resp = ana.send(Method::PUT, "/v1/me/library/artists?ids=ar9", None).await;
    assert!(expect_error(resp, 400, "invalid_request").await.starts_with("ids[0]:"));
    // A saved id whose item is gone is neither listed nor counted.
    support::sql_exec(&db.url, "DELETE FROM artists WHERE id = 'ar4'").await;
    let page: Paging<SavedArtist> = ana.list("artists", "").await;
    assert_eq!((page.total, page.items.len()), (2, 2), "{db:?}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn playlists_and_visibility() {
    for db in support::databases().await {
        playlists_on(&db).await;
    }
}

async fn playlists_on(db: &TestDb) {
    let s = start(db).await;
    let owner = Client::new(&s).await;
    let fan = Client::new(&s).await;
    let create = |body: Value| {
        let owner = &owner;
        async move {
            let resp = owner.send(Method::POST, "/v1/playlists", Some(body)).await;
            assert_eq!(resp.status(), 201);
            resp.json::<PlaylistResponse>().await.unwrap()
        }
    };
    let open = create(json!({"name": "Open"})).await;
    let hidden = create(json!({"name": "Hidden", "public": false})).await;

    // A public playlist can be followed; the follower count follows.
    assert_eq!(fan.save("playlists", &open.id).await, 204);
    assert_eq!(owner.save("playlists", &open.id).await, 204);
    assert_eq!(fan.save("playlists", &open.id).await, 204, "idempotent");
    let view: PlaylistResponse =
        fan.send(Method::GET, &format!("/v1/playlists/{}", open.id), None).await.json().await.unwrap();
    assert_eq!(view.followers, 2, "{db:?}");
    let page: Paging<SavedPlaylist> = fan.list("playlists", "").await;
    assert_eq!(page.total, 1);
    let p = &page.items[0].playlist;
    assert_eq!(
        (p.id.as_str(), p.name.as_str(), p.owner.id.as_str(), p.followers),
        (open.id.as_str(), "Open", owner.id.as_str(), 2)
    );
    assert_eq!(p.snapshot_id, view.snapshot_id);

    // A private one cannot, as if it did not exist; its owner can.
    let resp =
        fan.send(Method::PUT, &format!("/v1/me/library/playlists?ids={},{}", open.id, hidden.id), None).await;
    let msg = expect_error(resp, 400, "invalid_request").await;
    assert!(msg.starts_with("ids[1]:") && msg.contains("no playlist"), "{msg}");
    assert_eq!(owner.save("playlists", &hidden.id).await, 204);
    assert_eq!(owner.contains("playlists", &format!("{},{}", hidden.id, open.id)).await, [true, true]);

    // Made private after it was followed: hidden from the follower's list.
    let resp =
        owner.send(Method::PUT, &format!("/v1/playlists/{}", open.id), Some(json!({"public": false}))).await;
    assert_eq!(resp.status(), 200);
    let page: Paging<SavedPlaylist> = fan.list("playlists", "").await;
    assert_eq!((page.total, page.items.len()), (0, 0), "{db:?}");
    let page: Paging<SavedPlaylist> = owner.list("playlists", "").await;
    assert_eq!(page.total, 2);

    // Unfollowing recounts.
    assert_eq!(owner.unsave("playlists", &open.id).await, 204);
    let view: PlaylistResponse =
        owner.send(Method::GET, &format!("/v1/playlists/{}", open.id), None).await.json().await.unwrap();
    assert_eq!(view.followers, 1, "{db:?}: the fan's save remains");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_names_the_field() {
    for db in support::databases().await {
        bad_input_on(&db).await;
    }
}

async fn bad_input_on(db: &TestDb) {
    let s = start(db).await;
    let ana = Client::new(&s).await;
    assert_eq!(ana.save("tracks", "t1").await, 204);
    let fifty_one: Vec<String> = (0..51).map(|i| format!("x{i:02}")).collect();
    let fifty_one = fifty_one.join(",");
    let cases: Vec<(Method, String, &str)> = vec![
        (Method::PUT, "/v1/me/library/songs?ids=t1".into(), "kind:"),
        (Method::GET, "/v1/me/library/songs".into(), "kind:"),
        (Method::GET, "/v1/me/library/Tracks/contains?ids=t1".into(), "kind:"),
        (Method::PUT, "/v1/me/library/tracks".into(), "ids"),
        (Method::PUT, "/v1/me/library/tracks?ids=".into(), "ids:"),
        (Method::PUT, format!("/v1/me/library/tracks?ids={fifty_one}"), "ids:"),
        (Method::PUT, "/v1/me/library/tracks?ids=t1,,t2".into(), "ids[1]:"),
        (Method::PUT, "/v1/me/library/tracks?ids=t1,a.b".into(), "ids[1]:"),
        (Method::PUT, "/v1/me/library/tracks?ids=t1&extra=1".into(), "extra"),
        (Method::DELETE, "/v1/me/library/albums?ids=".into(), "ids:"),
        (Method::DELETE, "/v1/me/library/albums?ids=a%20b".into(), "ids[0]:"),
        (Method::DELETE, "/v1/me/library/albums?id=al1".into(), "id"),
        (Method::GET, "/v1/me/library/tracks?limit=0".into(), "limit:"),
        (Method::GET, "/v1/me/library/tracks?limit=51".into(), "limit:"),
        (Method::GET, "/v1/me/library/tracks?offset=-3".into(), "offset"),
        (Method::GET, "/v1/me/library/tracks?offset=100001".into(), "offset:"),
        (Method::GET, "/v1/me/library/tracks?ids=t1".into(), "ids"),
        (Method::GET, "/v1/me/library/artists/contains".into(), "ids"),
        (Method::GET, format!("/v1/me/library/artists/contains?ids={fifty_one}"), "ids:"),
        (Method::GET, "/v1/me/library/artists/contains?ids=ar1,%2F".into(), "ids[1]:"),
    ];
    for (method, path, field) in cases {
        let resp = ana.send(method.clone(), &path, None).await;
        let msg = expect_error(resp, 400, "invalid_request").await;
        assert!(msg.contains(field), "{db:?}: {method} {path}: {msg:?} should name {field}");
    }
    expect_error(s.http.get(s.url("/v1/me/library/tracks")).send().await.unwrap(), 401, "unauthorized").await;
    // Nothing changed.
    assert_eq!(ana.contains("tracks", "t1,t2,x00").await, [true, false, false]);
    assert_eq!(ana.list::<SavedTrack>("tracks", "").await.total, 1);
    s.stop().await.unwrap();
}
