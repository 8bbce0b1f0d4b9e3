//! Test support: databases to run on, a real control server on loopback,
//! and a small catalog.
//!
//! [`databases`] always yields a fresh SQLite file in a temp dir, and — when
//! `CADENZA_TEST_DATABASE_URL` names a PostgreSQL server (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) — a fresh database created
//! on it for this test and dropped when the [`TestDb`] is dropped (best
//! effort). The same test bodies run on each.

#![allow(dead_code)] // each test binary uses a different part

pub(crate) mod events;
pub(crate) mod ingest;

use std::time::Duration;

use cadenza_config::ids::{FileId, random_id};
use cadenza_config::ladder::Rung;
use cadenza_config::manifest::{self, Loudness, Manifest, SeekPoint};
use cadenza_config::service::{
    ControlConfig, ControlWarmConfig, DatabaseConfig, EdgeEndpoint, HttpServerConfig, IngestConfig, KeySpec,
    PlaybackConfig, SigningConfig,
};
use cadenza_config::token::{KeyRing, SigningKey, TokenPolicy, Verifier};
use cadenza_config::units::{HumanDuration, Secret};
use cadenza_control::types::{
    AlbumType, CreateUserRequest, CreateUserResponse, ErrorResponse, ImportAlbum, ImportArtist,
    ImportRequest, ImportTrack, Tier,
};
use cadenza_control::{ControlError, ControlServer};
use sqlx::Connection as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// `ingest.worker_token` of the test servers.
pub(crate) const WORKER_TOKEN: &str = "test-worker-token-0123456789";
pub(crate) const ENV_DATABASE_URL: &str = "CADENZA_TEST_DATABASE_URL";

/// A database for one test.
pub(crate) struct TestDb {
    pub(crate) url: String,
    /// `sqlite` or `postgres`, for assertion messages.
    pub(crate) kind: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// Server URL and name of a PostgreSQL database to drop.
    drop_pg: Option<(String, String)>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} database", self.kind)
    }
}

/// The databases every test body runs on.
pub(crate) async fn databases() -> Vec<TestDb> {
    let mut out = vec![sqlite()];
    if let Ok(url) = std::env::var(ENV_DATABASE_URL)
        && !url.is_empty()
    {
        out.push(postgres(&url).await);
    }
    out
}

/// A fresh SQLite file (in a directory that does not exist yet, which the
/// server must create).
pub(crate) fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data").join("control.db");
    TestDb { url: format!("sqlite://{}", path.display()), kind: "sqlite", _dir: Some(dir), drop_pg: None }
}

async fn postgres(server_url: &str) -> TestDb {
    let (base, db_name) = split_db(server_url);
    let name = format!("{}_{}", db_name.unwrap_or("cadenza"), random_id(12).to_ascii_lowercase());
    let mut conn = sqlx::PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("{ENV_DATABASE_URL}: cannot connect: {e}"));
    let mut attempt = 0;
    loop {
        // Concurrent CREATE DATABASEs can collide on template1; retry a few.
        match sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 10 => {
                attempt += 1;
                eprintln!("create database {name}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("create database {name}: {e}"),
        }
    }
    let _ = conn.close().await;
    TestDb {
        url: format!("{base}/{name}"),
        kind: "postgres",
        _dir: None,
        drop_pg: Some((server_url.to_owned(), name)),
    }
}

/// `postgres://u@h:p/db?x` → (`postgres://u@h:p`, Some(`db`)).
fn split_db(url: &str) -> (&str, Option<&str>) {
    let url = url.split('?').next().unwrap_or(url);
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => {
            let (base, db) = url.split_at(after_scheme + i);
            let db = &db[1..];
            (base, (!db.is_empty()).then_some(db))
        }
        None => (url, None),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.drop_pg.take() else {
            return;
        };
        // Drop may run inside a runtime (or while panicking): use a thread
        // with its own small runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
                        eprintln!("drop database {name}: {e}");
                    }
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// Signing keys of the test servers: `k-old` is current, `k-new` is not, so
/// a URL signed with "the last key" would be caught.
pub(crate) fn signing_keys() -> (SigningKey, SigningKey) {
    (
        SigningKey::new("k-old".parse().unwrap(), vec![7; 32]).unwrap(),
        SigningKey::new("k-new".parse().unwrap(), vec![9; 32]).unwrap(),
    )
}

/// A verifier as an edge would hold it.
pub(crate) fn verifier() -> Verifier {
    let (a, b) = signing_keys();
    Verifier::new(
        KeyRing::new(vec![a, b], None).unwrap(),
        TokenPolicy { leeway: Duration::from_secs(30), max_lifetime: Duration::from_secs(24 * 3600) },
    )
}

pub(crate) const TTL_SECS: u64 = 1800;

/// A valid config for a server on `127.0.0.1:0` over `db_url`.
pub(crate) fn config(db_url: &str) -> ControlConfig {
    let (old, new) = signing_keys();
    let defaults = ControlConfig::default();
    ControlConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        admin_token: Secret::new(ADMIN_TOKEN),
        database: DatabaseConfig { url: db_url.to_owned(), max_connections: 4 },
        signing: SigningConfig {
            keys: vec![KeySpec::from_key(&old), KeySpec::from_key(&new)],
            current: Some("k-old".into()),
            ..defaults.signing
        },
        playback: PlaybackConfig { url_ttl: HumanDuration::secs(TTL_SECS), ..PlaybackConfig::default() },
        edges: vec![
            EdgeEndpoint { name: "pop-a".into(), url: "http://127.0.0.1:18410".into() },
            EdgeEndpoint { name: "pop-b".into(), url: "https://edge-b.example.net".into() },
        ],
        http: HttpServerConfig { shutdown_grace: HumanDuration::secs(5), ..defaults.http },
        ingest: IngestConfig { worker_token: Secret::new(WORKER_TOKEN), ..defaults.ingest },
        rate_limits: defaults.rate_limits,
        cache: defaults.cache,
        cdns: defaults.cdns,
        health: defaults.health,
        selection: defaults.selection,
        // Quick rounds, so warm tests finish in moments.
        warm: ControlWarmConfig {
            poll_interval: HumanDuration::millis(50),
            retry_backoff: HumanDuration::millis(50),
            ..defaults.warm
        },
    }
}

/// A running control server.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ControlError>>,
}

impl Server {
    pub(crate) async fn start(db_url: &str) -> Self {
        Self::start_with(config(db_url)).await
    }

    pub(crate) async fn start_with(config: ControlConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = ControlServer::bind(config).await.expect("bind control server");
        let base = format!("http://{}", server.local_addr());
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(server.serve(async {
            let _ = rx.await;
        }));
        Self {
            base,
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client"),
            shutdown: Some(tx),
            handle,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Shut down gracefully and return what `serve` returned.
    pub(crate) async fn stop(mut self) -> Result<(), ControlError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle).await.expect("server task")
    }

    pub(crate) async fn import(&self, batch: &ImportRequest) -> reqwest::Response {
        self.http
            .post(self.url("/v1/admin/import"))
            .bearer_auth(ADMIN_TOKEN)
            .json(batch)
            .send()
            .await
            .expect("import request")
    }

    /// Create a user and return their id and token.
    pub(crate) async fn user(&self, tier: Tier) -> CreateUserResponse {
        let resp = self
            .http
            .post(self.url("/v1/admin/users"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&CreateUserRequest {
                display_name: format!("{tier:?} listener"),
                tier,
                country: "SE".into(),
                id: None,
            })
            .send()
            .await
            .expect("create user");
        assert_eq!(resp.status(), 201, "create user");
        resp.json().await.expect("user json")
    }
}

impl Server {
    /// `POST path` with a JSON body and, if given, a bearer token.
    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl serde::Serialize,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// `GET path` with, if given, a bearer token.
    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// Assert `resp` is an error with `status` and `code` in the JSON shape,
/// and return its message.
pub(crate) async fn expect_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "status of {}", resp.url());
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let body: ErrorResponse = resp.json().await.expect("error json");
    assert_eq!(body.error.status, status);
    assert_eq!(body.error.code, code, "message: {}", body.error.message);
    assert!(!body.error.message.is_empty());
    body.error.message
}

/// A manifest for `track` with `rungs` published: [`manifest::example`]
/// with the fixture's numbers (30 s, master gain 5.5 dB, each rendition's
/// own gain [`rendition_gain`], file ids [`file_id`]).
pub(crate) fn manifest(track: &str, rungs: &[Rung]) -> Manifest {
    let mut m = manifest::example(track.parse().unwrap(), rungs);
    m.source.sha256 = "ab".repeat(32);
    m.source.frames = 44_100 * 30;
    m.source.duration_ms = 30_000;
    m.features.duration_ms = 30_000;
    m.loudness =
        Loudness { integrated_lufs: -19.5, loudness_range_lu: 7.0, true_peak_dbtp: -2.25, gain_db: 5.5 };
    m.encoder = "test-encoder".into();
    for r in &mut m.renditions {
        let rung = r.bitrate_kbps;
        r.file_id = file_id(track, rung);
        r.size = u64::from(rung.kbps()) * 30 * 125;
        r.frames = u64::from(rung.output_rate(44_100)) * 30;
        r.duration_ms = 30_000;
        r.achieved_kbps = f64::from(rung.kbps()) * 1.01;
        r.loudness = Loudness { gain_db: rendition_gain(rung), ..m.loudness };
        let page = u64::from(rung.kbps()) * 100;
        r.seek = (0..30).map(|s| SeekPoint { ms: s * 1000, offset: 4_000 + s * page }).collect();
    }
    m
}

/// The playback gain the fixture gives each rendition: never the master's
/// 5.5 dB, exact in binary.
pub(crate) fn rendition_gain(rung: Rung) -> f64 {
    6.0 + f64::from(rung.kbps()) / 64.0
}

/// The file id the fixture gives `track` at `rung`.
pub(crate) fn file_id(track: &str, rung: Rung) -> FileId {
    FileId::of_content(format!("{track}@{rung}").as_bytes())
}

pub(crate) fn track(id: &str, album: &str, number: u32, artists: &[&str], rungs: &[Rung]) -> ImportTrack {
    ImportTrack {
        id: id.parse().unwrap(),
        album_id: album.into(),
        title: format!("Song {id}"),
        track_number: number,
        disc_number: None,
        explicit: None,
        isrc: None,
        artist_ids: artists.iter().map(|a| (*a).to_owned()).collect(),
        manifest: Some(manifest(id, rungs)),
        duration_ms: None,
        popularity: None,
        audio_features: None,
    }
}

/// The fixture catalog:
/// - `al1` "First Light" (released) by `ar1` + `ar2`: `t1` (all four rungs,
///   explicit, ISRC, artists ar2 then ar1), `t2` (96 and 160 only);
/// - `al2` "Tomorrow" embargoed for a day: `t3`.
pub(crate) fn catalog() -> ImportRequest {
    let tomorrow = i64::try_from(cadenza_config::unix_now()).unwrap() + 86_400;
    let mut t1 = track("t1", "al1", 1, &["ar2", "ar1"], &cadenza_config::ladder::LADDER);
    t1.explicit = Some(true);
    t1.isrc = Some("se-xyz-24-00001".into());
    t1.audio_features = Some(serde_json::json!({"tempo": 120.5, "energy": 0.8}).as_object().unwrap().clone());
    ImportRequest {
        artists: vec![
            ImportArtist { id: "ar1".into(), name: "Ada Lovelace Trio".into(), popularity: Some(40) },
            ImportArtist { id: "ar2".into(), name: "Björk Byte".into(), popularity: None },
        ],
        albums: vec![
            ImportAlbum {
                id: "al1".into(),
                title: "First Light".into(),
                album_type: AlbumType::Album,
                release_date: Some("2024-02-29".into()),
                release_at: None,
                artist_ids: vec!["ar1".into(), "ar2".into()],
                popularity: Some(30),
            },
            ImportAlbum {
                id: "al2".into(),
                title: "Tomorrow".into(),
                album_type: AlbumType::Single,
                release_date: None,
                release_at: Some(tomorrow),
                artist_ids: vec!["ar1".into()],
                popularity: None,
            },
        ],
        tracks: vec![
            t1,
            track("t2", "al1", 2, &["ar1"], &[Rung::K96, Rung::K160]),
            track("t3", "al2", 1, &["ar1"], &cadenza_config::ladder::LADDER),
        ],
    }
}

/// Run a SQL statement directly against a test database (for setting up
/// states the API cannot create, and for reading bookkeeping columns).
pub(crate) async fn sql_i64(db_url: &str, sql: &'static str) -> Option<i64> {
    use sqlx::Row as _;
    sqlx::any::install_default_drivers();
    let url = if db_url.starts_with("sqlite:") { format!("{db_url}?mode=rw") } else { db_url.to_owned() };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let row = sqlx::query(sql).fetch_optional(&mut conn).await.expect("sql");
    let _ = conn.close().await;
    row.map(|r| r.try_get::<i64, _>(0).expect("i64 column"))
}

pub(crate) async fn sql_exec(db_url: &str, sql: &'static str) {
    sqlx::any::install_default_drivers();
    let url = if db_url.starts_with("sqlite:") { format!("{db_url}?mode=rw") } else { db_url.to_owned() };
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::query(sql).execute(&mut conn).await.expect("sql");
    let _ = conn.close().await;
}
