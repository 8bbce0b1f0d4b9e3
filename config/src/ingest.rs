//! The ingest-job protocol between the control plane and transcoder workers.
//!
//! A catalog team uploads masters to `masters/…` in the store and registers
//! them with the control plane (`POST /v1/admin/ingest`, whose body carries
//! the tracks' catalog metadata and is the control plane's own type). A
//! worker (`cadenza transcode --worker`) then:
//!
//! ```text
//! POST /v1/ingest/claim                 ClaimRequest    → 200 IngestJob | 204 (nothing to do)
//! POST /v1/ingest/jobs/{id}/heartbeat   LeaseRequest    → 200 JobStatus (lease extended)
//! POST /v1/ingest/jobs/{id}/complete    CompleteRequest → 200 JobStatus (tracks registered)
//! POST /v1/ingest/jobs/{id}/fail        FailRequest     → 200 JobStatus
//! GET  /v1/admin/ingest/{id}                            → 200 JobStatus
//! ```
//!
//! A claim leases the job for `lease_seconds`; a worker that dies stops
//! heartbeating, the lease runs out and the next claim hands the job to
//! another worker with a fresh lease token. Every later call names the
//! lease it holds, so a worker whose lease was taken over gets 409
//! `lease_lost` and its late result is never registered. One job is one
//! track, or a whole album ingested together (album ReplayGain needs every
//! track of it).

use serde::{Deserialize, Serialize};

use crate::ids::TrackId;
use crate::manifest::Manifest;

/// Shortest and longest lease a worker may ask for, in seconds.
pub const LEASE_SECONDS: std::ops::RangeInclusive<u32> = 10..=3600;
/// Most tracks in one job.
pub const MAX_JOB_TRACKS: usize = 200;

/// `POST /v1/ingest/claim`: give me the oldest job that is ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The worker's name, for status pages and logs (`[A-Za-z0-9_.-]{1,64}`).
    pub worker: String,
    /// How long the lease lasts without a heartbeat ([`LEASE_SECONDS`]).
    pub lease_seconds: u32,
}

/// A claimed job: what to transcode and the lease that proves the claim.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestJob {
    pub id: String,
    /// Opaque token of this claim; every later call for the job carries it.
    pub lease: String,
    /// 1 for the first claim, 2 after one lease ran out or one retryable
    /// failure, …
    pub attempt: u32,
    /// Unix seconds when the lease runs out unless renewed.
    pub lease_expires_at: u64,
    /// Set when the tracks are an album ingested together (album gain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album_id: Option<String>,
    pub tracks: Vec<JobTrack>,
}

/// The lease is a credential for the job: `Debug` hides it.
impl std::fmt::Debug for IngestJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestJob")
            .field("id", &self.id)
            .field("lease", &"<redacted>")
            .field("attempt", &self.attempt)
            .field("lease_expires_at", &self.lease_expires_at)
            .field("album_id", &self.album_id)
            .field("tracks", &self.tracks)
            .finish()
    }
}

/// One master of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTrack {
    pub track_id: TrackId,
    /// Store key of the master, under [`crate::layout::MASTERS_PREFIX`].
    pub master: String,
}

/// `POST /v1/ingest/jobs/{id}/heartbeat`: extend the lease.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub lease: String,
    /// New lease length from now ([`LEASE_SECONDS`]).
    pub lease_seconds: u32,
}

/// `POST /v1/ingest/jobs/{id}/complete`: the manifests of every track of the
/// job, already published to the store. The control plane registers the
/// tracks' files, loudness and features in the catalog in one transaction.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub lease: String,
    /// One per job track, same track ids.
    pub manifests: Vec<Manifest>,
}

/// `POST /v1/ingest/jobs/{id}/fail`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    pub lease: String,
    /// What went wrong, naming the master (at most 2,000 characters kept).
    pub error: String,
    /// `false` when the master itself is bad (corrupt, silent, unsupported):
    /// the job fails at once. `true` for anything else (store down, disk
    /// full): the job is queued again after a backoff, up to the control
    /// plane's attempt limit.
    pub retryable: bool,
}

macro_rules! redacted_lease_debug {
    ($($t:ident { $($f:ident),* }),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("lease", &"<redacted>")
                    $(.field(stringify!($f), &self.$f))*
                    .finish()
            }
        }
    )*};
}
redacted_lease_debug!(
    LeaseRequest { lease_seconds },
    CompleteRequest { manifests },
    FailRequest { error, retryable }
);

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker (possibly until `not_before`, after a retryable
    /// failure).
    Queued,
    /// Leased by a worker. A running job whose lease has run out is
    /// claimable again.
    Running,
    /// Manifests reported and tracks registered.
    Done,
    /// A bad master, or out of attempts; `last_error` says why.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }
}

/// A job as the control plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub state: JobState,
    /// Claims so far.
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album_id: Option<String>,
    pub tracks: Vec<JobTrack>,
    /// The worker holding (or that last held) the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Unix seconds; set while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<u64>,
    /// Unix seconds before which a queued job is not handed out (backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    pub updated_at: u64,
}

/// Is `key` an acceptable master key: under `masters/`, at most 512 bytes
/// of `[A-Za-z0-9._/-]`, no empty, `.` or `..` segment, not ending in `/`?
pub fn is_master_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(crate::layout::MASTERS_PREFIX) else {
        return false;
    };
    key.len() <= 512
        && !rest.is_empty()
        && key.bytes().all(|c| c.is_ascii_alphanumeric() || b"._/-".contains(&c))
        && rest.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Is `name` an acceptable worker name: `[A-Za-z0-9_.-]{1,64}`?
pub fn is_worker_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys() {
        for ok in ["masters/a.wav", "masters/label/2026/01-intro.flac", "masters/x"] {
            assert!(is_master_key(ok), "{ok}");
        }
        for bad in [
            "masters/",
            "masters",
            "audio/x.ogg",
            "masters/../audio/x.ogg",
            "masters/./x",
            "masters//x",
            "masters/x/",
            "masters/a b.wav",
            "masters/ä.wav",
            "/masters/x",
        ] {
            assert!(!is_master_key(bad), "{bad}");
        }
        assert!(!is_master_key(&format!("masters/{}", "a".repeat(600))));
    }

    #[test]
    fn leases_never_show_in_debug() {
        let job = IngestJob {
            id: "j1".into(),
            lease: "s3cret-lease".into(),
            attempt: 1,
            lease_expires_at: 0,
            album_id: None,
            tracks: vec![],
        };
        let fail = FailRequest { lease: "s3cret-lease".into(), error: "x".into(), retryable: true };
        let beat = LeaseRequest { lease: "s3cret-lease".into(), lease_seconds: 60 };
        for text in [format!("{job:?}"), format!("{fail:?}"), format!("{beat:?}")] {
            assert!(!text.contains("s3cret"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        assert_eq!(JobState::parse(JobState::Running.as_str()), Some(JobState::Running));
        assert!(is_worker_name("worker-1.example"));
        assert!(!is_worker_name("worker 1"));
    }
}
