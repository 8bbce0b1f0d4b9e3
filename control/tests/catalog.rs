//! The catalog reads (tracks, albums, artists, audio features), search,
//! the conventions they share (paging, ETag/304, rate limits) and
//! metadata-only tracks, over real HTTP on SQLite and PostgreSQL — the same
//! test bodies on each.

mod support;

use cadenza_config::service::RateLimit;
use cadenza_control::types::{
    AlbumResponse, AlbumType, AlbumsResponse, ArtistResponse, ArtistsResponse, ImportAlbum, ImportArtist,
    ImportRequest, ImportTrack, Paging, SearchResponse, Tier, TrackResponse, TracksResponse,
};
use support::{Server, TestDb, expect_error};

#[tokio::test]
async fn catalog_reads() {
    for db in support::databases().await {
        catalog_reads_on(&db).await;
    }
}

async fn catalog_reads_on(db: &TestDb) {
    let s = Server::start(&db.url).await;
    assert_eq!(s.import(&support::catalog()).await.status(), 200);
    let user = s.user(Tier::Free).await;
    let token = Some(user.token.as_str());

    // Several tracks at once, in the order asked, null for unknown ids.
    let resp = s.get("/v1/tracks?ids=t2,nope,t1,t2", token).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    let body: TracksResponse = resp.json().await.unwrap();
    let ids: Vec<Option<&str>> = body.tracks.iter().map(|t| t.as_ref().map(|t| t.id.as_str())).collect();
    assert_eq!(ids, [Some("t2"), None, Some("t1"), Some("t2")], "{db:?}");
    let t1 = body.tracks[2].as_ref().unwrap();
    let credits: Vec<&str> = t1.artists.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(credits, ["ar2", "ar1"], "credit order kept");
    assert_eq!(t1.qualities, [24, 96, 160, 320]);

    // An album with its tracks, paged.
    let resp = s.get("/v1/albums/al1?limit=1", token).await;
    assert_eq!(resp.status(), 200, "{db:?}");
    let album: AlbumResponse = resp.json().await.unwrap();
    assert_eq!(album.album.title, "First Light");
    assert_eq!(album.album.total_tracks, 2);
    assert_eq!(album.album.popularity, 30);
    assert_eq!(album.album.artists.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["ar1", "ar2"]);
    assert_eq!(album.tracks.total, 2);
    assert_eq!(album.tracks.items.len(), 1);
    assert_eq!(album.tracks.items[0].id.as_str(), "t1");
    let next = album.tracks.next.clone().expect("a next page");
    assert_eq!(next, "/v1/albums/al1?offset=1&limit=1");
    let page: Paging<TrackResponse> =
        s.get(&next.replace("/v1/albums/al1", "/v1/albums/al1/tracks"), token).await.json().await.unwrap();
    assert_eq!(page.items.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t2"]);
    assert_eq!(page.previous.as_deref(), Some("/v1/albums/al1/tracks?offset=0&limit=1"));
    assert_eq!(page.next, None);

    // The embargoed album is listed as upcoming, with its release time.
    let albums: AlbumsResponse = s.get("/v1/albums?ids=al2,al1,zz", token).await.json().await.unwrap();
    assert!(albums.albums[0].as_ref().unwrap().release_at.is_some());
    assert_eq!(albums.albums[0].as_ref().unwrap().album_type, AlbumType::Single);
    assert!(albums.albums[2].is_none());

    // Artists, their albums (newest first, undated last) and top tracks.
    let artist: ArtistResponse = s.get("/v1/artists/ar1", token).await.json().await.unwrap();
    assert_eq!((artist.name.as_str(), artist.popularity), ("Ada Lovelace Trio", 40));
    let artists: ArtistsResponse = s.get("/v1/artists?ids=ar2,ar1", token).await.json().await.unwrap();
    assert_eq!(artists.artists[0].as_ref().unwrap().name, "Björk Byte");
    let albums: Paging<cadenza_control::types::AlbumSimplified> =
        s.get("/v1/artists/ar1/albums", token).await.json().await.unwrap();
    assert_eq!(albums.items.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["al1", "al2"], "{db:?}");
    assert_eq!(albums.total, 2);
    let top: TracksResponse = s.get("/v1/artists/ar2/top-tracks", token).await.json().await.unwrap();
    assert_eq!(top.tracks.iter().flatten().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t1"]);

    // Audio features as imported.
    let features: serde_json::Value = s.get("/v1/audio-features/t1", token).await.json().await.unwrap();
    assert_eq!(features["tempo"], 120.5);

    // Not found, per kind.
    expect_error(s.get("/v1/albums/zz", token).await, 404, "album_not_found").await;
    expect_error(s.get("/v1/artists/zz", token).await, 404, "artist_not_found").await;
    expect_error(s.get("/v1/artists/zz/albums", token).await, 404, "artist_not_found").await;
    expect_error(s.get("/v1/audio-features/zz", token).await, 404, "track_not_found").await;

    // Bad input: every one a 400 naming the parameter.
    for (path, field) in [
        ("/v1/tracks", "ids"),
        ("/v1/tracks?ids=", "ids"),
        ("/v1/tracks?ids=a/b", "ids[0]"),
        ("/v1/tracks?ids=t1,,t2", "ids[1]"),
        ("/v1/albums/al1?limit=0", "limit"),
        ("/v1/albums/al1?limit=51", "limit"),
        ("/v1/albums/al1?limit=x", "limit"),
        ("/v1/albums/al1?offset=-1", "offset"),
        ("/v1/albums/al1?offset=100001", "offset"),
        ("/v1/albums/al1?colour=red", "colour"),
        ("/v1/artists/a%20b", "id"),
        ("/v1/search?type=track", "q"),
        ("/v1/search?q=x", "type"),
        ("/v1/search?q=x&type=song", "type[0]"),
        ("/v1/search?q=x&type=track,track", "type[1]"),
        ("/v1/search?q=x&type=track&offset=1001", "offset"),
    ] {
        let msg = expect_error(s.get(path, token).await, 400, "invalid_request").await;
        assert!(msg.contains(field), "{path}: {msg}");
    }
    let many = (0..51).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
    let msg =
        expect_error(s.get(&format!("/v1/tracks?ids={many}"), token).await, 400, "invalid_request").await;
    assert!(msg.contains("1 to 50 comma-separated ids, got 51"), "{msg}");
    // No token: 401 on every catalog route.
    expect_error(s.get("/v1/albums/al1", None).await, 401, "unauthorized").await;
    s.stop().await.unwrap();
}

#[tokio::test]
async fn every_json_get_has_an_etag_and_revalidates() {
    for db in support::databases().await {
        let s = Server::start(&db.url).await;
        assert_eq!(s.import(&support::catalog()).await.status(), 200);
        let user = s.user(Tier::Premium).await;
        for path in
            ["/v1/tracks/t1", "/v1/albums/al1", "/v1/artists/ar1/albums", "/v1/search?q=song&type=track"]
        {
            let resp = s.get(path, Some(&user.token)).await;
            assert_eq!(resp.status(), 200, "{path}");
            let etag = resp.headers().get("etag").expect("etag").to_str().unwrap().to_owned();
            assert!(etag.starts_with('"') && etag.len() == 34, "{path}: {etag}");
            let again = s
                .http
                .get(s.url(path))
                .bearer_auth(&user.token)
                .header("if-none-match", &etag)
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), 304, "{path}");
            assert_eq!(again.headers().get("etag").unwrap(), etag.as_str());
            assert!(again.bytes().await.unwrap().is_empty());
            let other = s
                .http
                .get(s.url(path))
                .bearer_auth(&user.token)
                .header("if-none-match", "\"x\"")
                .send()
                .await
                .unwrap();
            assert_eq!(other.status(), 200, "{path}");
        }
        // A change of the album changes its tag.
        let before = s.get("/v1/albums/al1", Some(&user.token)).await.headers().get("etag").cloned().unwrap();
        let mut batch = support::catalog();
        batch.albums[0].title = "First Light (Deluxe)".into();
        assert_eq!(s.import(&batch).await.status(), 200);
        let after = s.get("/v1/albums/al1", Some(&user.token)).await.headers().get("etag").cloned().unwrap();
        assert_ne!(before, after, "{db:?}");
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    for db in support::databases().await {
        let mut config = support::config(&db.url);
        config.rate_limits.search = RateLimit::new(1, 3);
        let s = Server::start_with(config).await;
        assert_eq!(s.import(&support::catalog()).await.status(), 200);
        let a = s.user(Tier::Free).await;
        let b = s.user(Tier::Free).await;
        for _ in 0..3 {
            assert_eq!(s.get("/v1/search?q=song&type=track", Some(&a.token)).await.status(), 200);
        }
        let resp = s.get("/v1/search?q=song&type=track", Some(&a.token)).await;
        let retry: u64 =
            resp.headers().get("retry-after").expect("retry-after").to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        expect_error(resp, 429, "rate_limited").await;
        // Another user, and another category, are not affected.
        assert_eq!(s.get("/v1/search?q=song&type=track", Some(&b.token)).await.status(), 200);
        assert_eq!(s.get("/v1/tracks/t1", Some(&a.token)).await.status(), 200);
        let metrics = s.get("/metrics", None).await.text().await.unwrap();
        assert!(metrics.contains(r#"cadenza_control_rate_limited_total{category="search"} 1"#), "{metrics}");
        s.stop().await.unwrap();
    }
}

/// A catalog for search: names chosen so prefixes, typos, accents and
/// popularity each decide something.
fn search_catalog() -> ImportRequest {
    let artist = |id: &str, name: &str, popularity: u32| ImportArtist {
        id: id.into(),
        name: name.into(),
        popularity: Some(popularity),
    };
    let album = |id: &str, title: &str, artist: &str, popularity: u32| ImportAlbum {
        id: id.into(),
        title: title.into(),
        album_type: AlbumType::Album,
        release_date: Some("2004-06-15".into()),
        release_at: None,
        artist_ids: vec![artist.into()],
        popularity: Some(popularity),
    };
    let track = |id: &str, title: &str, album: &str, artist: &str, popularity: u32| ImportTrack {
        id: id.parse().unwrap(),
        album_id: album.into(),
        title: title.into(),
        track_number: 1,
        disc_number: None,
        explicit: None,
        isrc: None,
        artist_ids: vec![artist.into()],
        manifest: None,
        duration_ms: Some(222_000),
        popularity: Some(popularity),
        audio_features: None,
    };
    ImportRequest {
        artists: vec![
            artist("killers", "The Killers", 90),
            artist("beatles", "The Beatles", 95),
            artist("beetroot", "Beetroot Quartet", 5),
            artist("beyonce", "Beyoncé", 92),
            artist("halo-band", "Halo Halo", 3),
        ],
        albums: vec![
            album("hot-fuss", "Hot Fuss", "killers", 80),
            album("abbey", "Abbey Road", "beatles", 90),
            album("roots", "Roots", "beetroot", 1),
            album("4", "I Am... Sasha Fierce", "beyonce", 85),
            album("halo-album", "Halo", "halo-band", 2),
        ],
        tracks: vec![
            track("mr-b", "Mr. Brightside", "hot-fuss", "killers", 88),
            track("mrs-r", "Mrs. Robinson", "roots", "beetroot", 70),
            track("bright", "Bright Lights", "roots", "beetroot", 20),
            track("come", "Come Together", "abbey", "beatles", 85),
            track("something", "Something", "abbey", "beatles", 75),
            track("halo", "Halo", "4", "beyonce", 90),
            track("halo-obscure", "Halo", "halo-album", "halo-band", 1),
            track("hallo", "Hallo Spaceboy", "roots", "beetroot", 60),
        ],
    }
}

#[tokio::test]
async fn search_is_prefix_and_typo_tolerant_and_ranks_the_same_on_both_databases() {
    let mut orders: Vec<(String, Vec<Vec<String>>)> = Vec::new();
    for db in support::databases().await {
        let s = Server::start(&db.url).await;
        let resp = s.import(&search_catalog()).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        let user = s.user(Tier::Free).await;
        let search = async |q: &str, kind: &str| -> SearchResponse {
            let path = format!("/v1/search?q={}&type={kind}", q.replace(' ', "%20"));
            let resp = s.get(&path, Some(&user.token)).await;
            assert_eq!(resp.status(), 200, "{path}");
            resp.json().await.unwrap()
        };
        let track_ids = |r: &SearchResponse| -> Vec<String> {
            r.tracks.as_ref().unwrap().items.iter().map(|t| t.id.as_str().to_owned()).collect()
        };
        let mut seen = Vec::new();

        // A prefix of the last word.
        let r = search("mr brigh", "track").await;
        assert_eq!(track_ids(&r).first().map(String::as_str), Some("mr-b"), "{db:?}");
        assert!(!track_ids(&r).contains(&"mrs-r".to_owned()), "{db:?}: {:?}", track_ids(&r));
        seen.push(track_ids(&r));

        // A typo (two letters swapped), in the artist's name.
        let r = search("beatels", "artist,track").await;
        let artists: Vec<&str> = r.artists.as_ref().unwrap().items.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(artists.first(), Some(&"beatles"), "{db:?}: {artists:?}");
        assert!(!artists.contains(&"beetroot"), "{db:?}: {artists:?}");
        let tracks = track_ids(&r);
        assert!(
            tracks.contains(&"come".to_owned()) && tracks.contains(&"something".to_owned()),
            "{db:?}: {tracks:?}"
        );
        seen.push(tracks);

        // A swap in a short word (the trigram neighbourhood is thin there).
        let r = search("beyocne", "artist").await;
        assert_eq!(
            r.artists.as_ref().unwrap().items.first().map(|a| a.id.as_str()),
            Some("beyonce"),
            "{db:?}"
        );
        let r = search("the kilelrs", "artist").await;
        assert_eq!(
            r.artists.as_ref().unwrap().items.first().map(|a| a.id.as_str()),
            Some("killers"),
            "{db:?}"
        );

        // Accents folded; albums found by their artist too.
        let r = search("beyonce", "artist,album").await;
        assert_eq!(r.artists.as_ref().unwrap().items[0].id, "beyonce", "{db:?}");
        assert_eq!(r.albums.as_ref().unwrap().items[0].id, "4", "{db:?}");

        // Equal text: popularity decides; a typo match ranks below both.
        let r = search("halo", "track").await;
        let tracks = track_ids(&r);
        assert_eq!(&tracks[..2], ["halo", "halo-obscure"], "{db:?}: {tracks:?}");
        assert!(tracks.iter().position(|t| t == "hallo").is_none_or(|p| p >= 2), "{db:?}: {tracks:?}");
        seen.push(tracks);

        // Paging over the ranked results.
        let r = search("halo", "track").await;
        let total = r.tracks.as_ref().unwrap().total;
        let r2: SearchResponse = s
            .get("/v1/search?q=halo&type=track&limit=1&offset=1", Some(&user.token))
            .await
            .json()
            .await
            .unwrap();
        let p = r2.tracks.unwrap();
        assert_eq!((p.total, p.items.len()), (total, 1));
        assert_eq!(p.items[0].id.as_str(), "halo-obscure");
        assert_eq!(p.previous.as_deref(), Some("/v1/search?q=halo&type=track&offset=0&limit=1"));

        // Nothing searchable, and nothing found: empty pages, not errors.
        let r = search("!!", "track").await;
        assert_eq!(r.tracks.unwrap().total, 0);
        let r = search("zzzzqqq", "track,artist").await;
        assert_eq!((r.tracks.unwrap().total, r.artists.unwrap().total), (0, 0));

        // Renaming an artist re-indexes its tracks.
        let mut renamed = search_catalog();
        renamed.artists[0].name = "Los Asesinos".into();
        assert_eq!(s.import(&renamed).await.status(), 200);
        let r = search("asesinos", "track").await;
        assert_eq!(track_ids(&r), ["mr-b"], "{db:?}");
        let r = search("killers", "track").await;
        assert!(!track_ids(&r).contains(&"mr-b".to_owned()), "{db:?}");

        orders.push((db.kind.to_owned(), seen));
        s.stop().await.unwrap();
    }
    // The same ranking rule: the same results in the same order.
    for pair in orders.windows(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} vs {}", pair[0].0, pair[1].0);
    }
}

/// PostgreSQL's shortcuts give the candidates the whole index gives, on
/// both databases: the popular tier (rows at popularity 30+) answers alone
/// only with a full set of candidates, and a last word's prefix written as
/// its completions finds what the prefix finds, with many completions or
/// few.
#[tokio::test]
async fn search_tiers_and_completions_find_what_the_whole_index_finds() {
    /// Per database: each query's total and first page of ids.
    type Seen = Vec<(u64, Vec<String>)>;
    let mut orders: Vec<(String, Seen)> = Vec::new();
    for db in support::databases().await {
        let s = Server::start(&db.url).await;
        let mut catalog = search_catalog();
        // 150 popular and 120 obscure tracks with "lantern"; 250 popular
        // with "harbour"; 100 made-up words starting "zq0".
        let track = |id: String, title: String, popularity: u32| ImportTrack {
            id: id.parse().unwrap(),
            album_id: "hot-fuss".into(),
            title,
            track_number: 1,
            disc_number: None,
            explicit: None,
            isrc: None,
            artist_ids: vec!["killers".into()],
            manifest: None,
            duration_ms: Some(200_000),
            popularity: Some(popularity),
            audio_features: None,
        };
        for i in 0..150 {
            catalog.tracks.push(track(format!("lantern-hot-{i}"), format!("Lantern {i}"), 30 + i % 60));
        }
        for i in 0..120 {
            catalog.tracks.push(track(format!("lantern-cold-{i}"), format!("Lantern {i}"), i % 30));
        }
        for i in 0..250 {
            catalog.tracks.push(track(format!("harbour-{i}"), format!("Harbour {i}"), 30 + i % 70));
        }
        for i in 0..100 {
            catalog.tracks.push(track(format!("zq-{i}"), format!("zq0{i:02}x song"), i % 100));
        }
        // A rare word beside a common one (PostgreSQL asks its index for
        // the rare one only, once ANALYZE has seen the common one).
        catalog.tracks.push(track("rare-1".into(), "Lantern Quillowby".into(), 5));
        catalog.tracks.push(track("rare-2".into(), "Quillowby Harbour".into(), 50));
        let resp = s.import(&catalog).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        if db.kind == "postgres" {
            support::sql_exec(&db.url, "ANALYZE tracks").await;
        }
        let user = s.user(Tier::Free).await;
        let mut seen = Vec::new();
        for (q, total) in [
            // The tier holds 150 < 200: the whole index gives 200, obscure
            // ones among them.
            ("lantern", 200),
            // The tier holds 250: exactly the 200 most popular.
            ("harbour", 200),
            // 100 completions (kept as a prefix), then 10, then 1.
            ("zq0", 100),
            ("zq00", 10),
            ("zq000x", 1),
            ("zq050x son", 1),
            ("quillowby lantern", 1),
            ("quillowby lan", 1),
            ("lantern quillowby", 1),
            ("harbour quill", 1),
        ] {
            let path = format!("/v1/search?q={}&type=track&limit=50", q.replace(' ', "%20"));
            let r: SearchResponse = s.get(&path, Some(&user.token)).await.json().await.unwrap();
            let page = r.tracks.unwrap();
            assert_eq!(page.total, total, "{db:?}: {q}");
            let ids: Vec<String> = page.items.iter().map(|t| t.id.as_str().to_owned()).collect();
            if q == "lantern" {
                // Popularity orders equal text: the most popular first.
                assert_eq!(ids[0], "lantern-hot-119", "{db:?}"); // 89, and before "lantern-hot-59"
            }
            if q == "harbour" {
                assert!(ids.iter().all(|id| id.starts_with("harbour-")), "{db:?}: {ids:?}");
            }
            seen.push((page.total, ids));
        }
        // An obscure track made the most popular: out of the candidates
        // before, first after (SQLite moves its FTS5 row to its new band).
        let first_lantern = async || -> (u64, String) {
            let r: SearchResponse = s
                .get("/v1/search?q=lantern&type=track&limit=50", Some(&user.token))
                .await
                .json()
                .await
                .unwrap();
            let page = r.tracks.unwrap();
            assert!(!page.items.is_empty());
            (page.total, page.items[0].id.as_str().to_owned())
        };
        let r: SearchResponse = s
            .get("/v1/search?q=lantern&type=track&limit=50&offset=150", Some(&user.token))
            .await
            .json()
            .await
            .unwrap();
        let tail = r.tracks.unwrap();
        assert!(tail.items.iter().all(|t| t.id.as_str() != "lantern-cold-0"), "{db:?}");
        let mut update = catalog.clone();
        update.artists.clear();
        update.albums.clear();
        update.tracks.retain(|t| t.id.as_str() == "lantern-cold-0");
        update.tracks[0].popularity = Some(100);
        let resp = s.import(&update).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        assert_eq!(first_lantern().await, (200, "lantern-cold-0".to_owned()), "{db:?}");
        seen.push((200, vec!["lantern-cold-0".to_owned()]));
        orders.push((db.kind.to_owned(), seen));
        s.stop().await.unwrap();
    }
    for pair in orders.windows(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} vs {}", pair[0].0, pair[1].0);
    }
}

#[tokio::test]
async fn metadata_first_then_audio() {
    for db in support::databases().await {
        let s = Server::start(&db.url).await;
        let mut batch = support::catalog();
        let manifest = batch.tracks[1].manifest.take();
        batch.tracks[1].duration_ms = Some(31_000);
        batch.tracks[1].popularity = Some(12);
        assert_eq!(s.import(&batch).await.status(), 200);
        let user = s.user(Tier::Premium).await;
        let t: TrackResponse = s.get("/v1/tracks/t2", Some(&user.token)).await.json().await.unwrap();
        assert_eq!(
            (t.duration_ms, t.popularity, t.qualities.len(), t.loudness),
            (31_000, 12, 0, None),
            "{db:?}"
        );
        expect_error(s.get("/v1/audio-features/t2", Some(&user.token)).await, 404, "not_analysed").await;
        let resp =
            s.post("/v1/playback/stream", Some(&user.token), &serde_json::json!({"track_id": "t2"})).await;
        expect_error(resp, 409, "no_audio").await;

        // The audio arrives: files, loudness; popularity kept.
        batch.tracks[1].manifest = manifest;
        batch.tracks[1].duration_ms = None;
        batch.tracks[1].popularity = None;
        assert_eq!(s.import(&batch).await.status(), 200);
        let t: TrackResponse = s.get("/v1/tracks/t2", Some(&user.token)).await.json().await.unwrap();
        assert_eq!((t.popularity, t.qualities.clone()), (12, vec![96, 160]), "{db:?}");
        assert!(t.loudness.is_some());

        // A metadata-only re-import keeps the audio.
        batch.tracks[1].manifest = None;
        batch.tracks[1].duration_ms = Some(30_000);
        batch.tracks[1].title = "Renamed".into();
        assert_eq!(s.import(&batch).await.status(), 200);
        let t: TrackResponse = s.get("/v1/tracks/t2", Some(&user.token)).await.json().await.unwrap();
        assert_eq!((t.title.as_str(), t.qualities.clone()), ("Renamed", vec![96, 160]), "{db:?}");
        assert!(t.loudness.is_some());
        s.stop().await.unwrap();
    }
}

/// A re-import that changes only a track's credits (order or artists) is
/// written — an unchanged track is skipped, so "unchanged" must see them —
/// and one that changes nothing keeps `updated_at`.
#[tokio::test]
async fn reimport_writes_credit_changes_and_skips_the_unchanged() {
    for db in support::databases().await {
        let s = Server::start(&db.url).await;
        let batch = support::catalog();
        assert_eq!(s.import(&batch).await.status(), 200);
        let user = s.user(Tier::Premium).await;
        let artists = async |id: &str| -> Vec<String> {
            let t: TrackResponse =
                s.get(&format!("/v1/tracks/{id}"), Some(&user.token)).await.json().await.unwrap();
            t.artists.iter().map(|a| a.id.clone()).collect()
        };
        assert_eq!(artists("t1").await, ["ar2", "ar1"], "{db:?}");
        assert_eq!(artists("t2").await, ["ar1"], "{db:?}");

        // Metadata only (no manifests): the same, then credits changed.
        let mut again = batch.clone();
        again.artists.clear();
        again.albums.clear();
        for t in &mut again.tracks {
            t.manifest = None;
            t.audio_features = None;
            t.duration_ms = Some(200_000);
        }
        again.tracks.retain(|t| t.id.as_str() == "t1" || t.id.as_str() == "t2");
        let resp = s.import(&again).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        let stamp = "SELECT updated_at FROM tracks WHERE id = 't2'";
        let before = support::sql_i64(&db.url, stamp).await;
        assert_eq!(s.import(&again).await.status(), 200);
        assert_eq!(
            support::sql_i64(&db.url, stamp).await,
            before,
            "{db:?}: an unchanged track is not rewritten"
        );

        again.tracks[0].artist_ids = vec!["ar1".into(), "ar2".into()];
        again.tracks[1].artist_ids = vec!["ar1".into(), "ar2".into()];
        assert_eq!(s.import(&again).await.status(), 200);
        assert_eq!(artists("t1").await, ["ar1", "ar2"], "{db:?}: order");
        assert_eq!(artists("t2").await, ["ar1", "ar2"], "{db:?}: artist added");
        // The search text follows: t2 is found by its new artist's name.
        let r: SearchResponse =
            s.get("/v1/search?q=bjork%20byte&type=track", Some(&user.token)).await.json().await.unwrap();
        let ids: Vec<&str> = r.tracks.as_ref().unwrap().items.iter().map(|t| t.id.as_str()).collect();
        assert!(ids.contains(&"t2"), "{db:?}: {ids:?}");
        s.stop().await.unwrap();
    }
}
