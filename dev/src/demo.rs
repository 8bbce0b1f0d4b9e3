//! The demo album: synthesised masters → the store's `masters/` → an ingest
//! job on the control plane → the stack's transcoder worker → published
//! ladder and catalog entries; and a premium demo listener. Every step is
//! idempotent, so a second start reuses what the first made (the worker
//! finds the ladders unchanged and only registers them again).

use std::path::{Path, PathBuf};

use cadenza_config::ingest::{JobState, JobStatus};
use cadenza_config::layout::MASTERS_PREFIX;
use cadenza_config::service::DemoConfig;
use cadenza_control::types::{
    AlbumType, CreateUserRequest, CreateUserResponse, ImportAlbum, ImportArtist, ImportRequest,
    IngestJobList, IngestRequest, IngestTrack, Tier,
};
use cadenza_origin::Store;
use cadenza_transcoder::synth::{self, DemoTrackSpec};
use serde::{Deserialize, Serialize};

use crate::DevError;
use crate::stack::DemoInfo;

/// Seed of the demo album's music and titles.
const SEED: u64 = 0xCADE_2A00;
const ARTIST_ID: &str = "demo-artist";
const ARTIST_NAME: &str = "The Cadenza Ensemble";
const ALBUM_ID: &str = "demo-album";
const ALBUM_TITLE: &str = "First Light";
/// How long the demo album's ingest may take (first start, debug build).
const JOB_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `masters/album.json`: which masters exist for which spec.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct MastersIndex {
    spec: Vec<(String, u32, u64)>,
    files: Vec<(PathBuf, String)>,
}

fn specs(demo: &DemoConfig) -> Vec<DemoTrackSpec> {
    let mut specs = DemoTrackSpec::album(SEED, usize::from(demo.tracks), demo.first_seconds);
    for (i, s) in specs.iter_mut().enumerate() {
        s.seconds = demo.first_seconds + demo.step_seconds * i as u32;
    }
    specs
}

/// Write the masters unless the same spec was written before.
fn masters(dir: &Path, demo: &DemoConfig) -> Result<Vec<(PathBuf, String)>, DevError> {
    let specs = specs(demo);
    let index_path = dir.join("album.json");
    let spec_key: Vec<_> = specs.iter().map(|s| (s.title.clone(), s.seconds, s.seed)).collect();
    if let Ok(text) = std::fs::read_to_string(&index_path)
        && let Ok(index) = serde_json::from_str::<MastersIndex>(&text)
        && index.spec == spec_key
        && index.files.iter().all(|(p, _)| p.is_file())
    {
        return Ok(index.files);
    }
    println!("synthesising {} demo masters into {}", specs.len(), dir.display());
    let tracks = synth::write_demo_album(dir, &specs).map_err(|e| DevError::Demo(e.to_string()))?;
    let files: Vec<_> = tracks.into_iter().map(|t| (t.path, t.title)).collect();
    let index = MastersIndex { spec: spec_key, files: files.clone() };
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index).expect("index serialises"))
        .map_err(|e| DevError::Io { path: index_path, source: e })?;
    Ok(files)
}

/// Make sure the demo album is published and registered, and that a demo
/// user exists; reuse `previous` where it still works.
pub(crate) async fn ensure(
    data_dir: &Path,
    demo: &DemoConfig,
    store: &Store,
    control_url: &str,
    admin_token: &str,
    previous: Option<&DemoInfo>,
) -> Result<DemoInfo, DevError> {
    let masters = masters(&data_dir.join("masters"), demo)?;
    let http = client();
    let post = |path: &str| http.post(format!("{control_url}{path}")).bearer_auth(admin_token);

    // The artist and the album first (an ingest job's tracks must name
    // entries the catalog has), then the masters into the store's
    // `masters/`, as a label's upload would put them.
    let catalog = ImportRequest {
        artists: vec![ImportArtist { id: ARTIST_ID.into(), name: ARTIST_NAME.into(), popularity: None }],
        albums: vec![ImportAlbum {
            id: ALBUM_ID.into(),
            title: ALBUM_TITLE.into(),
            album_type: AlbumType::Album,
            release_date: Some("2026-11-22".into()),
            release_at: None,
            artist_ids: vec![ARTIST_ID.into()],
            popularity: None,
        }],
        tracks: Vec::new(),
    };
    let resp = post("/v1/admin/import").json(&catalog).send().await;
    check(resp.map_err(|e| DevError::Http(format!("catalog import: {e}")))?, "catalog import").await?;
    let mut tracks = Vec::with_capacity(masters.len());
    for (i, (path, title)) in masters.iter().enumerate() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let key = format!("{MASTERS_PREFIX}{ALBUM_ID}/{name}");
        cadenza_origin::put_file(store.as_ref(), &key, path).await?;
        tracks.push(IngestTrack {
            id: format!("demo-{:02}", i + 1).parse().expect("demo track ids are valid"),
            album_id: ALBUM_ID.into(),
            title: title.clone(),
            track_number: (i + 1) as u32,
            disc_number: Some(1),
            explicit: Some(false),
            isrc: None,
            artist_ids: vec![ARTIST_ID.into()],
            master: key,
        });
    }
    let track_ids: Vec<String> = tracks.iter().map(|t| t.id.to_string()).collect();

    // One ingest job for the album; the stack's worker takes it. A job a
    // killed stack left behind is waited for instead.
    let request = IngestRequest { album_id: Some(ALBUM_ID.into()), tracks };
    let resp = post("/v1/admin/ingest").json(&request).send().await;
    let resp = resp.map_err(|e| DevError::Http(format!("ingest: {e}")))?;
    let job_id = if resp.status() == reqwest::StatusCode::CONFLICT {
        unfinished_job(&http, control_url, admin_token, &track_ids[0]).await?
    } else {
        let job: JobStatus =
            check(resp, "ingest").await?.json().await.map_err(|e| DevError::Http(format!("ingest: {e}")))?;
        job.id
    };
    println!("  ingest job {job_id}: {} masters of album {ALBUM_ID}", track_ids.len());
    let done = wait_for_job(&http, control_url, admin_token, &job_id).await?;
    println!(
        "  ingest job {job_id}: done (attempt {}, worker {})",
        done.attempts,
        done.worker.unwrap_or_default()
    );

    // Reuse the previous demo user if its token still works.
    if let Some(prev) = previous {
        let probe = http
            .get(format!("{control_url}/v1/tracks/{}", track_ids[0]))
            .bearer_auth(&prev.user_token)
            .send()
            .await
            .map_err(|e| DevError::Http(format!("user check: {e}")))?;
        if probe.status().is_success() {
            return Ok(DemoInfo { track_ids, ..prev.clone() });
        }
    }
    let user = CreateUserRequest {
        display_name: "Demo Listener".into(),
        tier: Tier::Premium,
        country: "SE".into(),
        id: None,
    };
    let resp = http
        .post(format!("{control_url}/v1/admin/users"))
        .bearer_auth(admin_token)
        .json(&user)
        .send()
        .await
        .map_err(|e| DevError::Http(format!("create demo user: {e}")))?;
    let created: CreateUserResponse = check(resp, "create demo user")
        .await?
        .json()
        .await
        .map_err(|e| DevError::Http(format!("create demo user: {e}")))?;
    Ok(DemoInfo {
        user_id: created.id.to_string(),
        user_token: created.token,
        artist_id: ARTIST_ID.into(),
        album_id: ALBUM_ID.into(),
        track_ids,
    })
}

/// The id of the queued or running job that holds `track`.
async fn unfinished_job(
    http: &reqwest::Client,
    control_url: &str,
    admin_token: &str,
    track: &str,
) -> Result<String, DevError> {
    for state in [JobState::Running, JobState::Queued] {
        let url = format!("{control_url}/v1/admin/ingest?state={}&limit=100", state.as_str());
        let resp = http.get(url).bearer_auth(admin_token).send().await;
        let resp =
            check(resp.map_err(|e| DevError::Http(format!("ingest jobs: {e}")))?, "ingest jobs").await?;
        let list: IngestJobList =
            resp.json().await.map_err(|e| DevError::Http(format!("ingest jobs: {e}")))?;
        if let Some(job) =
            list.jobs.into_iter().find(|j| j.tracks.iter().any(|t| t.track_id.as_str() == track))
        {
            return Ok(job.id);
        }
    }
    Err(DevError::Demo(format!(
        "the control plane reports an ingest in progress for {track}, but no such job"
    )))
}

/// Poll a job until it is done; an error if it fails or takes too long.
async fn wait_for_job(
    http: &reqwest::Client,
    control_url: &str,
    admin_token: &str,
    id: &str,
) -> Result<JobStatus, DevError> {
    let deadline = std::time::Instant::now() + JOB_DEADLINE;
    loop {
        let resp =
            http.get(format!("{control_url}/v1/admin/ingest/{id}")).bearer_auth(admin_token).send().await;
        let resp = check(resp.map_err(|e| DevError::Http(format!("ingest job: {e}")))?, "ingest job").await?;
        let job: JobStatus = resp.json().await.map_err(|e| DevError::Http(format!("ingest job: {e}")))?;
        match job.state {
            JobState::Done => return Ok(job),
            JobState::Failed => {
                return Err(DevError::Demo(format!(
                    "ingest job {id} failed: {}",
                    job.last_error.unwrap_or_default()
                )));
            }
            JobState::Queued | JobState::Running => {}
        }
        if std::time::Instant::now() > deadline {
            return Err(DevError::Demo(format!(
                "ingest job {id} is still {} after {JOB_DEADLINE:?}",
                job.state.as_str()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub(crate) fn client() -> reqwest::Client {
    cadenza_origin::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("HTTP client builds")
}

pub(crate) async fn check(resp: reqwest::Response, what: &str) -> Result<reqwest::Response, DevError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    Err(DevError::Http(format!("{what}: {status}: {body}")))
}
