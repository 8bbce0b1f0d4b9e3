//! Warm jobs: `POST /v1/admin/warm` and the job it reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/admin/warm`: what to put on which POPs, and when. Exactly one
/// of `album_id`, `track_ids` and `playlist_id`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album_id: Option<String>,
    /// 1 to 1000 tracks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlist_id: Option<String>,
    /// Bitrates (kbps) of the ladder to warm: 24, 96, 160, 320. Default:
    /// all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rungs: Option<Vec<u32>>,
    /// POPs by `cdn/pop` (or `pop` when the name is unique). Default: every
    /// healthy POP with an admin token, or those of `regions`. The shields
    /// they fill from are added and warmed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pops: Option<Vec<String>>,
    /// Only POPs of these regions (with `pops` absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    /// Unix seconds: do not start before. Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<i64>,
    /// With `album_id` of an album with a `release_at`: start this long
    /// before it (`"2h"`, `"30m"`), and make its release the default
    /// deadline. Not with `start_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_release: Option<String>,
    /// Unix seconds: the job fails if it is not done by then (the edge
    /// jobs are cancelled). A budget that cannot finish in time is refused
    /// up front (422 `deadline_unreachable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<i64>,
    /// Origin egress budget, bytes per second, shared by the POPs that
    /// fill from the origin (shields, and POPs without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_bytes_per_second: Option<u64>,
    /// Slices each POP fetches at once (at most its `warm.max_concurrent`).
    /// Default: the POP's `warm.max_concurrent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// A warm job: what it covers, where, and how far it got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WarmJob {
    pub id: String,
    pub href: String,
    /// `scheduled`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// The request as accepted.
    pub request: WarmRequest,
    /// Unix seconds.
    pub created_at: i64,
    pub start_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub deadline_at: Option<i64>,
    /// Why the job failed or stopped.
    pub error: Option<String>,
    /// Files to put on each POP (known once the job is planned).
    pub files_total: usize,
    /// Bytes to move in all: every file on every POP.
    pub bytes_total: u64,
    /// Bytes on the POPs so far (fetched, or found cached).
    pub bytes_done: u64,
    /// Seconds to go at the rate so far; absent until bytes move.
    pub eta_seconds: Option<f64>,
    pub files: Vec<WarmFile>,
    /// Shields first.
    pub pops: Vec<WarmPop>,
}

/// One file of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WarmFile {
    pub file_id: String,
    pub track_id: String,
    pub kbps: u32,
    pub size: u64,
}

/// One POP's part of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WarmPop {
    pub cdn: String,
    pub pop: String,
    /// `shield` or `edge`.
    pub role: String,
    /// The shield it fills from (`cdn/pop`), warmed before it.
    pub parent: Option<String>,
    /// `pending` (its shield is not done yet), `running`, `retrying`,
    /// `done`, `failed` or `cancelled`.
    pub state: String,
    /// Submissions to the POP so far.
    pub attempts: u32,
    /// The edge's own job id (`GET <admin_url>/admin/warm/<id>`).
    pub edge_job: Option<String>,
    /// The byte rate the POP was asked to keep to.
    pub max_bytes_per_second: Option<u64>,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub files_done: usize,
    pub files_failed: usize,
    /// Slices the POP had before this job asked.
    pub slices_already_cached: u64,
    pub eta_seconds: Option<f64>,
    /// The last errors (newest last).
    pub errors: Vec<String>,
    pub files: Vec<WarmPopFile>,
}

/// One file on one POP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WarmPopFile {
    pub file_id: String,
    /// `pending`, `running`, `done` or `failed`.
    pub state: String,
    pub bytes_done: u64,
    pub error: Option<String>,
}

/// `GET /v1/admin/warm`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WarmJobList {
    /// The newest 100 jobs, newest first, without their per-file detail.
    pub jobs: Vec<WarmJob>,
}
