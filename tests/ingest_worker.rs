//! Ingest jobs end to end: masters uploaded to the store's `masters/`,
//! registered with a real control plane, transcoded by a real worker (the
//! library's `run_worker`, and the `cadenza transcode --worker` binary),
//! registered in the catalog. A worker that claims a job and dies loses it
//! to the next worker once its lease runs out; its late result is refused.

mod support;

use std::path::Path;
use std::time::Duration;

use cadenza_config::ids::{TrackId, UserId};
use cadenza_config::ingest::{ClaimRequest, CompleteRequest, IngestJob, JobState, JobStatus};
use cadenza_config::manifest::Manifest;
use cadenza_config::service::{
    ControlConfig, DatabaseConfig, EdgeEndpoint, IngestConfig, KeySpec, SigningConfig, TranscoderConfig,
    WorkerConfig,
};
use cadenza_config::token::SigningKey;
use cadenza_config::units::{HumanDuration, Secret};
use cadenza_control::ControlServer;
use cadenza_control::types::{
    AlbumType, CreateUserRequest, CreateUserResponse, ImportAlbum, ImportArtist, ImportRequest,
    IngestRequest, IngestTrack, Tier, TrackResponse,
};
use cadenza_transcoder::synth;
use tokio::sync::oneshot;

const ADMIN: &str = "test-admin-token-0123456789";
const WORKER: &str = "test-worker-token-0123456789";

/// A control plane on loopback with an empty catalog but for one artist
/// and one album.
struct Control {
    base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Control {
    async fn start(dir: &Path) -> Self {
        cadenza_origin::install_crypto_provider();
        let key = SigningKey::generate("k1".parse().unwrap());
        let config = ControlConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            admin_token: Secret::new(ADMIN),
            database: DatabaseConfig {
                url: format!("sqlite://{}", dir.join("control.db").display()),
                max_connections: 4,
            },
            signing: SigningConfig { keys: vec![KeySpec::from_key(&key)], ..SigningConfig::default() },
            edges: vec![EdgeEndpoint { name: "pop-a".into(), url: "http://127.0.0.1:18410".into() }],
            ingest: IngestConfig { worker_token: Secret::new(WORKER), ..IngestConfig::default() },
            ..ControlConfig::default()
        };
        let server = ControlServer::bind(config).await.unwrap();
        let base = format!("http://{}", server.local_addr());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(server.serve(async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let control = Self { base, http, stop: Some(tx) };
        let import = ImportRequest {
            artists: vec![ImportArtist { id: "art-1".into(), name: "The Testers".into(), popularity: None }],
            albums: vec![ImportAlbum {
                id: "alb-1".into(),
                title: "Leases".into(),
                album_type: AlbumType::Album,
                release_date: None,
                release_at: None,
                artist_ids: vec!["art-1".into()],
                popularity: None,
            }],
            tracks: vec![],
        };
        let resp = control.post("/v1/admin/import", ADMIN, &import).await;
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        control
    }

    async fn post(&self, path: &str, token: &str, body: &impl serde::Serialize) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(body).send().await.unwrap()
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, token: &str) -> T {
        let resp = self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Register `tracks` (id, master key) as one job of album `alb-1`.
    async fn register(&self, tracks: &[(&str, &str)]) -> JobStatus {
        let request = IngestRequest {
            album_id: Some("alb-1".into()),
            tracks: tracks
                .iter()
                .enumerate()
                .map(|(i, (id, master))| IngestTrack {
                    id: id.parse().unwrap(),
                    album_id: "alb-1".into(),
                    title: format!("Track {}", i + 1),
                    track_number: i as u32 + 1,
                    disc_number: None,
                    explicit: None,
                    isrc: None,
                    artist_ids: vec!["art-1".into()],
                    master: (*master).to_owned(),
                })
                .collect(),
        };
        let resp = self.post("/v1/admin/ingest", ADMIN, &request).await;
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A demo-music master of `seconds` written straight into the store's
/// directory under `key`, as an upload to the store would leave it.
fn upload_master(store_dir: &Path, key: &str, seed: u64, seconds: u32) {
    let path = store_dir.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    synth::write_wav(&path, &synth::render(seed, 0, seconds), 44_100, 16).unwrap();
}

/// Run the `cadenza` binary with `token` as the worker token, off the
/// runtime's threads (the control plane it talks to runs on them).
async fn cadenza(args: &[&str], token: &str) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let token = token.to_owned();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cadenza"))
            .args(&args)
            .env("CADENZA_TRANSCODER__WORKER__TOKEN", token)
            .env("RUST_LOG", "warn")
            .output()
            .expect("the binary runs")
    });
    tokio::time::timeout(Duration::from_secs(120), run).await.expect("the binary stops by itself").unwrap()
}

fn worker_config(store: &str, control: &str, lease: u64) -> TranscoderConfig {
    TranscoderConfig {
        store: store.to_owned(),
        work_dir: None,
        worker: WorkerConfig {
            control_url: control.to_owned(),
            token: Secret::new(WORKER),
            name: "worker-b".into(),
            lease: HumanDuration::secs(lease),
            poll_interval: HumanDuration::millis(200),
            max_jobs: 1,
            exit_when_idle: false,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_goes_to_the_next_worker_and_lands_in_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store_url = format!("file://{}", store_dir.display());
    upload_master(&store_dir, "masters/alb-1/01.wav", 3, 4);
    upload_master(&store_dir, "masters/alb-1/02.wav", 4, 5);
    let control = Control::start(dir.path()).await;
    let job = control.register(&[("trk-1", "masters/alb-1/01.wav"), ("trk-2", "masters/alb-1/02.wav")]).await;
    assert_eq!(job.state, JobState::Queued);

    // Worker A claims the job with the shortest lease and dies.
    let claim = ClaimRequest { worker: "worker-a".into(), lease_seconds: 10 };
    let resp = control.post("/v1/ingest/claim", WORKER, &claim).await;
    assert_eq!(resp.status(), 200);
    let dead: IngestJob = resp.json().await.unwrap();
    assert_eq!((dead.id.as_str(), dead.attempt), (job.id.as_str(), 1));
    assert_eq!(dead.album_id.as_deref(), Some("alb-1"));

    // Worker B polls; it gets the job once A's lease has run out, and
    // finishes it.
    let worker = tokio::spawn(cadenza_transcoder::run_worker(
        worker_config(&store_url, &control.base, 30),
        std::future::pending(),
    ));
    let summary = tokio::time::timeout(Duration::from_secs(180), worker).await.unwrap().unwrap().unwrap();
    assert_eq!((summary.completed, summary.failed, summary.lost), (1, 0, 0));

    let status: JobStatus = control.get(&format!("/v1/admin/ingest/{}", job.id), ADMIN).await;
    assert_eq!(status.state, JobState::Done, "{status:?}");
    assert_eq!(status.attempts, 2);
    assert_eq!(status.worker.as_deref(), Some("worker-b"));

    // The manifests are in the store, one album, and the catalog has the
    // tracks with every rung.
    let store = cadenza_origin::open_store(&store_url).unwrap();
    let mut manifests: Vec<Manifest> = Vec::new();
    for id in ["trk-1", "trk-2"] {
        let track: TrackId = id.parse().unwrap();
        let m =
            cadenza_origin::read_manifest(store.as_ref(), &track).await.unwrap().expect("manifest published");
        assert_eq!(m.album.as_ref().map(|a| (a.id.as_str(), a.tracks)), Some(("alb-1", 2)));
        manifests.push(m);
    }
    let user = control
        .post(
            "/v1/admin/users",
            ADMIN,
            &CreateUserRequest {
                display_name: "listener".into(),
                tier: Tier::Premium,
                country: "SE".into(),
                id: Some("u1".parse::<UserId>().unwrap()),
            },
        )
        .await;
    let user: CreateUserResponse = user.json().await.unwrap();
    for m in &manifests {
        let t: TrackResponse = control.get(&format!("/v1/tracks/{}", m.track_id), &user.token).await;
        assert_eq!(t.qualities, [24, 96, 160, 320]);
        assert_eq!(t.duration_ms, m.source.duration_ms);
        assert_eq!(t.loudness.unwrap().integrated_lufs, m.loudness.integrated_lufs);
    }

    // A's result, arriving late, is refused and changes nothing.
    let late = CompleteRequest { lease: dead.lease.clone(), manifests: manifests.clone() };
    let resp = control.post(&format!("/v1/ingest/jobs/{}/complete", dead.id), WORKER, &late).await;
    assert_eq!(resp.status(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "lease_lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_fails_a_bad_master_for_good_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store_url = format!("file://{}", store_dir.display());
    std::fs::create_dir_all(store_dir.join("masters/alb-1")).unwrap();
    std::fs::write(store_dir.join("masters/alb-1/notes.wav"), b"liner notes, not audio\n".repeat(40))
        .unwrap();
    let control = Control::start(dir.path()).await;
    let bad = control.register(&[("trk-bad", "masters/alb-1/notes.wav")]).await;
    let missing = control.register(&[("trk-gone", "masters/alb-1/missing.flac")]).await;

    let out = cadenza(
        &[
            "transcode",
            "--worker",
            "--control",
            &control.base,
            "--store",
            &store_url,
            "--set",
            "worker.exit_when_idle=true",
            "--set",
            "worker.poll_interval=200ms",
        ],
        WORKER,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("0 jobs completed, 2 failed"), "{stdout}");

    for (job, needle) in [(&bad, "masters/alb-1/notes.wav"), (&missing, "masters/alb-1/missing.flac")] {
        let status: JobStatus = control.get(&format!("/v1/admin/ingest/{}", job.id), ADMIN).await;
        assert_eq!(status.state, JobState::Failed, "{status:?}");
        assert_eq!(status.attempts, 1, "a bad master is not retried: {status:?}");
        let error = status.last_error.unwrap_or_default();
        assert!(error.contains(needle), "{error}");
        assert!(!error.contains("cadenza-transcode-"), "names the work file, not the master: {error}");
    }
    assert!(!store_dir.join("tracks").exists(), "nothing may be published");

    // A wrong token stops the worker at once, with a clear error.
    let out = cadenza(
        &["transcode", "--worker", "--control", &control.base, "--store", &store_url],
        "not-the-worker-token-at-all",
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the worker token"), "{stderr}");

    // Without a control plane URL, --worker names the missing key.
    let out = cadenza(&["transcode", "--worker", "--store", &store_url], WORKER).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker.control_url"));
}
