//! Ingest helpers: a catalog with no tracks to ingest into, job requests,
//! and one call per worker route.

use cadenza_config::ingest::{
    ClaimRequest, CompleteRequest, FailRequest, IngestJob, JobStatus, LeaseRequest,
};
use cadenza_config::ladder::LADDER;
use cadenza_config::manifest::{AlbumLoudness, Loudness, Manifest};
use cadenza_control::types::{IngestRequest, IngestTrack};

use super::{ADMIN_TOKEN, Server, WORKER_TOKEN, catalog};

/// The fixture's artists and albums (`ar1`, `ar2`; `al1`, `al2`), no tracks:
/// what a label imports before ingesting masters.
pub(crate) fn catalog_without_tracks() -> cadenza_control::types::ImportRequest {
    let mut c = catalog();
    c.tracks.clear();
    c
}

/// Track `id` of `album`, credited to `ar2` then `ar1`, master
/// `masters/<album>/<id>.flac`.
pub(crate) fn ingest_track(id: &str, album: &str, number: u32) -> IngestTrack {
    IngestTrack {
        id: id.parse().unwrap(),
        album_id: album.into(),
        title: format!("Song {id}"),
        track_number: number,
        disc_number: None,
        explicit: None,
        isrc: None,
        artist_ids: vec!["ar2".into(), "ar1".into()],
        master: format!("masters/{album}/{id}.flac"),
    }
}

/// A job of `tracks`, ingested together as `album`.
pub(crate) fn album_request(album: &str, tracks: &[&str]) -> IngestRequest {
    IngestRequest {
        album_id: Some(album.into()),
        tracks: (1..).zip(tracks).map(|(n, t)| ingest_track(t, album, n)).collect(),
    }
}

/// A job of one track, no album.
pub(crate) fn single_request(track: &str, album: &str) -> IngestRequest {
    IngestRequest { album_id: None, tracks: vec![ingest_track(track, album, 1)] }
}

/// Register a job; asserts 202.
pub(crate) async fn register(s: &Server, req: &IngestRequest) -> JobStatus {
    let resp = s.post("/v1/admin/ingest", Some(ADMIN_TOKEN), req).await;
    assert_eq!(resp.status(), 202, "register: {}", resp.text().await.unwrap_or_default());
    resp.json().await.expect("job status json")
}

/// `GET /v1/admin/ingest/{id}`; asserts 200.
pub(crate) async fn status(s: &Server, id: &str) -> JobStatus {
    let resp = s.get(&format!("/v1/admin/ingest/{id}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(resp.status(), 200, "status of {id}");
    resp.json().await.expect("job status json")
}

/// Claim as `worker`: the job on 200, `None` on 204, a panic otherwise.
pub(crate) async fn claim(s: &Server, worker: &str, lease_seconds: u32) -> Option<IngestJob> {
    let body = ClaimRequest { worker: worker.into(), lease_seconds };
    let resp = s.post("/v1/ingest/claim", Some(WORKER_TOKEN), &body).await;
    match resp.status().as_u16() {
        200 => Some(resp.json().await.expect("job json")),
        204 => {
            assert!(resp.bytes().await.expect("body").is_empty(), "204 with a body");
            None
        }
        other => panic!("claim answered {other}: {}", resp.text().await.unwrap_or_default()),
    }
}

pub(crate) async fn heartbeat(s: &Server, job: &IngestJob, lease_seconds: u32) -> reqwest::Response {
    let body = LeaseRequest { lease: job.lease.clone(), lease_seconds };
    s.post(&format!("/v1/ingest/jobs/{}/heartbeat", job.id), Some(WORKER_TOKEN), &body).await
}

pub(crate) async fn complete(s: &Server, job: &IngestJob, manifests: Vec<Manifest>) -> reqwest::Response {
    let body = CompleteRequest { lease: job.lease.clone(), manifests };
    s.post(&format!("/v1/ingest/jobs/{}/complete", job.id), Some(WORKER_TOKEN), &body).await
}

pub(crate) async fn fail(s: &Server, job: &IngestJob, error: &str, retryable: bool) -> reqwest::Response {
    let body = FailRequest { lease: job.lease.clone(), error: error.into(), retryable };
    s.post(&format!("/v1/ingest/jobs/{}/fail", job.id), Some(WORKER_TOKEN), &body).await
}

/// A manifest of `track` ingested with the rest of `album` (`n` tracks):
/// album loudness on the manifest and on every rendition (2.5 dB below
/// the rendition's own gain).
pub(crate) fn album_manifest(track: &str, album: &str, n: u32) -> Manifest {
    let mut m = super::manifest(track, &LADDER);
    m.album =
        Some(AlbumLoudness { id: album.into(), tracks: n, members: "0".repeat(64), loudness: m.loudness });
    for r in &mut m.renditions {
        r.album_loudness = Some(Loudness { gain_db: r.loudness.gain_db - 2.5, ..r.loudness });
    }
    m
}
