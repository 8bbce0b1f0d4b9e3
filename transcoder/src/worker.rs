//! `cadenza transcode --worker`: take ingest jobs from the control plane.
//!
//! The loop: claim a job with a lease (`POST /v1/ingest/claim`); download
//! its masters from the store's `masters/…` into a work directory;
//! transcode and publish them (as one album when the job names one) while
//! a heartbeat renews the lease every third of its length; then report the
//! manifests (`…/complete`, which registers the tracks in the catalog) or
//! the error (`…/fail`, retryable unless the master itself is bad). A
//! worker that dies stops renewing, and the job goes to the next claim
//! once the lease runs out. A worker that finds its lease taken over
//! (409 `lease_lost`) drops its result: the new holder's will count.
//!
//! Transient trouble reaching the control plane is logged and retried with
//! backoff; only a refused token stops the worker. On shutdown it stops
//! claiming and finishes the job in hand.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cadenza_config::ids::TrackId;
use cadenza_config::ingest::{
    ClaimRequest, CompleteRequest, FailRequest, IngestJob, LeaseRequest, is_master_key,
};
use cadenza_config::service::TranscoderConfig;
use cadenza_origin::Store;
use reqwest::StatusCode;
use serde::Serialize;
use tokio::sync::watch;

use crate::{IngestReport, Options, Progress, ProgressEvent, TranscodeError, WorkDir, ingest_album};

/// Longest wait between attempts to reach an unreachable control plane.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Per-request deadline for control-plane calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest error text sent with a failure (the control plane keeps 2,000
/// characters).
const MAX_ERROR_TEXT: usize = 2000;

/// Why the worker stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Config(#[from] cadenza_config::ConfigError),
    #[error("opening the transcoder's store: {0}")]
    OpenStore(#[source] Box<cadenza_origin::StoreError>),
    #[error("building the control plane client: {0}")]
    Client(String),
    /// The control plane refused the worker's token (401/403): retrying
    /// will not help.
    #[error("the control plane at {url} refused the worker token ({status}): {message}")]
    Refused { url: String, status: u16, message: String },
}

/// What a worker did before it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Jobs reported complete.
    pub completed: u64,
    /// Jobs reported failed.
    pub failed: u64,
    /// Jobs whose lease was taken over before they finished.
    pub lost: u64,
}

/// Run the worker until `shutdown` resolves (then finish the job in hand),
/// `worker.max_jobs` jobs are done, or, with `worker.exit_when_idle`, a
/// claim finds nothing.
pub async fn run_worker(
    config: TranscoderConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<WorkerSummary, WorkerError> {
    use cadenza_config::ServiceConfig as _;
    config.validate()?;
    config.worker.require()?;
    cadenza_origin::install_crypto_provider();
    let store = cadenza_origin::open_store(&config.store).map_err(|e| WorkerError::OpenStore(Box::new(e)))?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| WorkerError::Client(e.to_string()))?;
    let name = if config.worker.name.is_empty() { default_name() } else { config.worker.name.clone() };
    let control =
        Control { client, base: config.worker.control_url.clone(), token: config.worker.token.clone() };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let lease_seconds = config.worker.lease.get().as_secs() as u32;
    let poll = config.worker.poll_interval.get();
    let options = Options { work_dir: config.work_dir.clone() };
    let mut summary = WorkerSummary::default();
    let mut backoff = poll;
    tracing::info!(worker = %name, control = %control.base, "ingest worker started");
    loop {
        if *stop_rx.borrow() {
            break;
        }
        let claim = ClaimRequest { worker: name.clone(), lease_seconds };
        let job = match control.claim(&claim).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                if config.worker.exit_when_idle {
                    break;
                }
                backoff = poll;
                if sleep_or_stop(poll, &stop_rx).await {
                    break;
                }
                continue;
            }
            Err(CallError::Refused { status, message }) => {
                return Err(WorkerError::Refused { url: control.base.clone(), status, message });
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot claim a job");
                if sleep_or_stop(backoff, &stop_rx).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = poll;
        match run_job(&control, &store, &options, job, lease_seconds).await {
            JobEnd::Completed => summary.completed += 1,
            JobEnd::Failed => summary.failed += 1,
            JobEnd::Lost => summary.lost += 1,
        }
        let done = summary.completed + summary.failed + summary.lost;
        if config.worker.max_jobs > 0 && done >= config.worker.max_jobs {
            break;
        }
    }
    tracing::info!(
        completed = summary.completed,
        failed = summary.failed,
        lost = summary.lost,
        "ingest worker stopped"
    );
    Ok(summary)
}

/// How one job ended, from this worker's side.
enum JobEnd {
    Completed,
    Failed,
    Lost,
}

async fn run_job(
    control: &Control,
    store: &Store,
    options: &Options,
    job: IngestJob,
    lease_seconds: u32,
) -> JobEnd {
    let span = tracing::info_span!("job", id = %job.id, attempt = job.attempt);
    let _enter = span.enter();
    tracing::info!(tracks = job.tracks.len(), album = job.album_id.as_deref().unwrap_or("-"), "job claimed");
    let (lost_tx, mut lost_rx) = watch::channel(false);
    let heartbeat = {
        let control = control.clone();
        let id = job.id.clone();
        let lease = job.lease.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs(u64::from(lease_seconds / 3).max(1));
            loop {
                tokio::time::sleep(every).await;
                match control.heartbeat(&id, &LeaseRequest { lease: lease.clone(), lease_seconds }).await {
                    Ok(()) => {}
                    Err(CallError::LeaseLost) => {
                        let _ = lost_tx.send(true);
                        return;
                    }
                    Err(e) => tracing::warn!(job = %id, error = %e, "heartbeat failed; retrying"),
                }
            }
        })
    };
    let work = tokio::select! {
        result = transcode_job(store, options, &job) => result,
        _ = lost_rx.wait_for(|lost| *lost) => Err(JobError::Lost),
    };
    heartbeat.abort();
    if *lost_rx.borrow() {
        tracing::warn!("lease lost to another worker; result dropped");
        return JobEnd::Lost;
    }
    let outcome = match work {
        Ok(reports) => {
            let manifests = reports.into_iter().map(|r| r.manifest).collect();
            let request = CompleteRequest { lease: job.lease.clone(), manifests };
            control.retrying(|| control.complete(&job.id, &request)).await.map(|()| JobEnd::Completed)
        }
        Err(JobError::Lost) => return JobEnd::Lost,
        Err(JobError::Failed { error, retryable }) => {
            tracing::warn!(error = %error, retryable, "job failed");
            let request = FailRequest { lease: job.lease.clone(), error: truncate(&error), retryable };
            control.retrying(|| control.fail(&job.id, &request)).await.map(|()| JobEnd::Failed)
        }
    };
    match outcome {
        Ok(end) => {
            if matches!(end, JobEnd::Completed) {
                tracing::info!("job complete; tracks registered");
            }
            end
        }
        Err(CallError::LeaseLost) => {
            // Also what a retry hears when an earlier attempt got through
            // but its answer was lost: the job is then done, not lost.
            tracing::warn!(
                "the control plane no longer takes this lease: the job was taken over, or an earlier \
                 report whose answer was lost already landed"
            );
            JobEnd::Lost
        }
        Err(e) => {
            // The lease will run out and another worker will redo the job.
            tracing::error!(error = %e, "could not report the job's result");
            JobEnd::Lost
        }
    }
}

/// Why a job did not produce manifests.
enum JobError {
    Lost,
    Failed { error: String, retryable: bool },
}

/// Download the job's masters and ingest them.
async fn transcode_job(
    store: &Store,
    options: &Options,
    job: &IngestJob,
) -> Result<Vec<IngestReport>, JobError> {
    let failed = |error: String, retryable: bool| JobError::Failed { error, retryable };
    let work = WorkDir::new(options).map_err(|e| failed(e.to_string(), true))?;
    let mut tracks: Vec<(TrackId, std::path::PathBuf)> = Vec::with_capacity(job.tracks.len());
    for (i, t) in job.tracks.iter().enumerate() {
        if !is_master_key(&t.master) {
            return Err(failed(format!("master key {:?} is not under masters/", t.master), false));
        }
        // Keep the name (its extension is a hint for the decoder).
        let name = t.master.rsplit('/').next().unwrap_or("master");
        let local = work.path().join(format!("{i:03}-{name}"));
        match cadenza_origin::download(store.as_ref(), &t.master, &local).await {
            Ok(bytes) => tracing::debug!(master = %t.master, bytes, "master downloaded"),
            Err(e) if e.is_not_found() => {
                return Err(failed(format!("master {} is not in the store", t.master), false));
            }
            Err(e) => return Err(failed(format!("downloading master {}: {e}", t.master), true)),
        }
        tracks.push((t.track_id.clone(), local));
    }
    let progress: Arc<dyn Progress> =
        Arc::new(LogProgress { masters: job.tracks.iter().map(|t| t.master.clone()).collect() });
    ingest_album(store, &tracks, job.album_id.as_deref(), options, progress).await.map_err(|e| {
        // Name the store key, not the work file the master was copied to.
        let mut text = e.to_string();
        for (t, (_, local)) in job.tracks.iter().zip(&tracks) {
            text = text.replace(&local.display().to_string(), &t.master);
        }
        failed(text, !e.is_bad_input() || matches!(e, TranscodeError::Read { .. }))
    })
}

/// Job progress, to the log.
struct LogProgress {
    masters: Vec<String>,
}

impl Progress for LogProgress {
    fn event(&self, track: usize, event: ProgressEvent) {
        let master = self.masters.get(track).map_or("?", String::as_str);
        match event {
            ProgressEvent::Published => tracing::info!(master, "published"),
            ProgressEvent::Unchanged => tracing::info!(master, "unchanged, already published"),
            ProgressEvent::Measuring => tracing::debug!(master, "encoded; measuring renditions"),
            _ => {}
        }
    }
}

/// A failed call to the control plane.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{0}")]
    Transport(String),
    #[error("the control plane answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("lease lost")]
    LeaseLost,
}

/// The control plane's worker routes.
#[derive(Clone, Debug)]
struct Control {
    client: reqwest::Client,
    base: String,
    token: cadenza_config::units::Secret,
}

impl Control {
    async fn claim(&self, req: &ClaimRequest) -> Result<Option<IngestJob>, CallError> {
        let resp = self.post("/v1/ingest/claim", req).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let resp = check(resp).await?;
        resp.json::<IngestJob>()
            .await
            .map(Some)
            .map_err(|e| CallError::Transport(format!("claim answer: {e}")))
    }

    async fn heartbeat(&self, id: &str, req: &LeaseRequest) -> Result<(), CallError> {
        check(self.post(&format!("/v1/ingest/jobs/{id}/heartbeat"), req).await?).await.map(drop)
    }

    async fn complete(&self, id: &str, req: &CompleteRequest) -> Result<(), CallError> {
        check(self.post(&format!("/v1/ingest/jobs/{id}/complete"), req).await?).await.map(drop)
    }

    async fn fail(&self, id: &str, req: &FailRequest) -> Result<(), CallError> {
        check(self.post(&format!("/v1/ingest/jobs/{id}/fail"), req).await?).await.map(drop)
    }

    async fn post(&self, path: &str, body: &impl Serialize) -> Result<reqwest::Response, CallError> {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Transport(format!("POST {path}: {e}")))
    }

    /// Call `f` until it succeeds or fails for a reason retrying will not
    /// change, for at most about two minutes.
    async fn retrying<F, Fut>(&self, f: F) -> Result<(), CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), CallError>>,
    {
        let mut wait = Duration::from_millis(500);
        for _ in 0..8 {
            match f().await {
                Err(e @ (CallError::Transport(_) | CallError::Status { status: 500.., .. })) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "reporting the job failed");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                other => return other,
            }
        }
        f().await
    }
}

/// Turn an answer into the body or a [`CallError`].
async fn check(resp: reqwest::Response) -> Result<reqwest::Response, CallError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
    let message = body["error"]["message"].as_str().unwrap_or_default().to_owned();
    Err(match status.as_u16() {
        409 if code == "lease_lost" => CallError::LeaseLost,
        401 | 403 => CallError::Refused { status: status.as_u16(), message },
        s => CallError::Status { status: s, message: format!("{code}: {message}") },
    })
}

/// Sleep `d`, or less if asked to stop; true when asked to stop.
async fn sleep_or_stop(d: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut waiting = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = waiting.wait_for(|s| *s) => true,
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "transcoder".into());
    let name = format!("{host}-{}", std::process::id());
    name.chars().rev().take(64).collect::<Vec<_>>().into_iter().rev().collect()
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_ERROR_TEXT {
        return s.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_truncation() {
        let name = default_name();
        assert!(cadenza_config::ingest::is_worker_name(&name), "{name}");
        assert_eq!(truncate("abc"), "abc");
        let long = "é".repeat(2000);
        let t = truncate(&long);
        assert!(t.len() <= MAX_ERROR_TEXT && long.starts_with(&t));
    }
}
