//! The demo album: synthesised masters → transcoder → origin → catalog, and
//! a premium demo listener. Every step is idempotent, so a second start
//! reuses what the first made.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadenza_config::ids::TrackId;
use cadenza_config::service::DemoConfig;
use cadenza_control::types::{
    AlbumType, CreateUserRequest, CreateUserResponse, ImportAlbum, ImportArtist, ImportRequest, ImportTrack,
    Tier,
};
use cadenza_origin::Store;
use cadenza_transcoder::synth::{self, DemoTrackSpec};
use cadenza_transcoder::{Options, Outcome, ingest_album};
use serde::{Deserialize, Serialize};

use crate::DevError;
use crate::stack::DemoInfo;

/// Seed of the demo album's music and titles.
const SEED: u64 = 0xCADE_2A00;
const ARTIST_ID: &str = "demo-artist";
const ARTIST_NAME: &str = "The Cadenza Ensemble";
const ALBUM_ID: &str = "demo-album";
const ALBUM_TITLE: &str = "First Light";

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
    let ids: Vec<(TrackId, PathBuf)> = masters
        .iter()
        .enumerate()
        .map(|(i, (path, _))| {
            (format!("demo-{:02}", i + 1).parse().expect("demo track ids are valid"), path.clone())
        })
        .collect();
    // One album: album ReplayGain over all of its tracks.
    let reports = ingest_album(store, &ids, Some(ALBUM_ID), &Options::default(), Arc::new(()))
        .await
        .map_err(|e| DevError::Demo(e.to_string()))?;
    let mut tracks = Vec::with_capacity(masters.len());
    for (i, ((_, title), report)) in masters.iter().zip(reports).enumerate() {
        let id = report.track_id.clone();
        let verb = match report.outcome {
            Outcome::Published => "transcoded and published",
            Outcome::Unchanged => "already published",
        };
        println!("  {id}  {title:<20} {verb}");
        tracks.push(ImportTrack {
            id,
            album_id: ALBUM_ID.into(),
            title: title.clone(),
            track_number: (i + 1) as u32,
            disc_number: Some(1),
            explicit: Some(false),
            isrc: None,
            artist_ids: vec![ARTIST_ID.into()],
            manifest: report.manifest,
            audio_features: None,
        });
    }
    let track_ids: Vec<String> = tracks.iter().map(|t| t.id.to_string()).collect();
    let import = ImportRequest {
        artists: vec![ImportArtist { id: ARTIST_ID.into(), name: ARTIST_NAME.into() }],
        albums: vec![ImportAlbum {
            id: ALBUM_ID.into(),
            title: ALBUM_TITLE.into(),
            album_type: AlbumType::Album,
            release_date: Some("2026-11-22".into()),
            release_at: None,
            artist_ids: vec![ARTIST_ID.into()],
        }],
        tracks,
    };
    let http = client();
    let resp = http
        .post(format!("{control_url}/v1/admin/import"))
        .bearer_auth(admin_token)
        .json(&import)
        .send()
        .await
        .map_err(|e| DevError::Http(format!("catalog import: {e}")))?;
    check(resp, "catalog import").await?;

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
