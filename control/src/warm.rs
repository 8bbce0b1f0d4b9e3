//! Warm jobs across POPs: a release manager names an album, tracks or a
//! playlist; the control plane plans which files go to which POPs, runs
//! each POP's part through that edge's own admin warm API
//! (`POST <admin_url>/admin/warm`), watches it, retries what fails, keeps
//! the origin's egress inside a budget, and reports per POP and per file.
//!
//! # Order: shields first
//!
//! A POP with a `parent` fills from that shield. Its part starts only when
//! the shield's part is done, so every slice it asks for is already on the
//! shield: the origin sends the album about once per shield, whatever the
//! number of children. The budget (`origin_bytes_per_second`) is split
//! among the POPs that fill from the origin (shields, and POPs without
//! one), which run at the same time.
//!
//! # Where a job runs
//!
//! Jobs live in the database (`warm_jobs`). [`runner`] on every replica
//! claims due jobs under a lease (a compare-and-set, [`db::warm::claim`]),
//! runs at most `warm.max_running` at once, and writes the run's progress
//! every `warm.poll_interval`, which renews the lease. A replica that dies
//! leaves its jobs to another once the lease runs out; the new holder
//! resumes from the stored progress, re-attaching to the edges' jobs by id.
//! A cancel (`DELETE /v1/admin/warm/{id}`) is a state change in the
//! database: the holder sees it at its next write and cancels the edge
//! jobs.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cadenza_config::ladder::Rung;
use cadenza_config::service::CdnKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::AppState;
use crate::cdn::health::ProbeState;
use crate::db::warm::{self as store, FileRow, Held, Target, WarmRow};
use crate::db::{catalog, now_ms};
use crate::error::{ApiError, ErrorKind};
use crate::types::{WarmFile, WarmJob, WarmPop, WarmPopFile, WarmRequest};
use crate::validate::{self, echo};

/// Tracks one job may name.
pub(crate) const MAX_TRACKS: usize = 1000;
/// Errors kept per POP.
const MAX_ERRORS: usize = 5;
/// Polls of an edge job that may fail in a row before the POP's part is
/// submitted again.
const MAX_POLL_ERRORS: u32 = 3;
/// Timeout of one request to an edge's admin API.
const EDGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The plan and state of a run: what `warm_jobs.progress` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) files: Vec<WarmFile>,
    pub(crate) pops: Vec<PopRun>,
}

/// One POP's part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PopRun {
    pub(crate) view: WarmPop,
    /// Unix ms before which a `retrying` part is not submitted again.
    #[serde(default)]
    retry_at_ms: i64,
    #[serde(default)]
    poll_errors: u32,
}

impl PopRun {
    fn key(&self) -> String {
        format!("{}/{}", self.view.cdn, self.view.pop)
    }

    fn terminal(&self) -> bool {
        matches!(self.view.state.as_str(), "done" | "failed" | "cancelled")
    }

    fn note(&mut self, error: String) {
        self.view.errors.push(error);
        let extra = self.view.errors.len().saturating_sub(MAX_ERRORS);
        self.view.errors.drain(..extra);
    }

    fn sum(&mut self, files: &[WarmFile]) {
        let v = &mut self.view;
        v.bytes_done = v.files.iter().map(|f| f.bytes_done).sum();
        v.bytes_total = files.iter().map(|f| f.size).sum();
        v.files_done = v.files.iter().filter(|f| f.state == "done").count();
        v.files_failed = v.files.iter().filter(|f| f.state == "failed").count();
    }
}

// ---------------------------------------------------------------- planning

/// Check a request's fields, and where it has them, work out the start
/// and deadline (unix ms).
pub(crate) async fn validate(state: &AppState, req: &WarmRequest) -> Result<(i64, Option<i64>), ApiError> {
    target(req)?;
    let db = state.db();
    let mut release_at_ms = None;
    if let Some(album) = &req.album_id {
        validate::id("album_id", album)?;
        let row = catalog::albums_by_ids(db, std::slice::from_ref(album)).await?.pop().flatten();
        let Some(a) = row else {
            return Err(ApiError::new(
                ErrorKind::AlbumNotFound,
                format!("album_id: no album {}", echo(album)),
            ));
        };
        release_at_ms = a.release_at.map(|s| s.saturating_mul(1000));
    }
    if let Some(ids) = &req.track_ids {
        if !(1..=MAX_TRACKS).contains(&ids.len()) {
            return Err(ApiError::invalid(format!(
                "track_ids: give 1 to {MAX_TRACKS} tracks, not {}",
                ids.len()
            )));
        }
        for (i, id) in ids.iter().enumerate() {
            validate::id(&format!("track_ids[{i}]"), id)?;
        }
        let found = catalog::tracks_by_ids(db, ids).await?;
        if let Some(i) = found.iter().position(Option::is_none) {
            return Err(ApiError::new(
                ErrorKind::TrackNotFound,
                format!("track_ids[{i}]: no track {}", echo(&ids[i])),
            ));
        }
    }
    if let Some(id) = &req.playlist_id {
        validate::id("playlist_id", id)?;
        if !catalog::exists(db, "playlists", id).await? {
            return Err(ApiError::new(
                ErrorKind::PlaylistNotFound,
                format!("playlist_id: no playlist {}", echo(id)),
            ));
        }
    }
    if let Some(rungs) = &req.rungs {
        if rungs.is_empty() {
            return Err(ApiError::invalid("rungs: name at least one bitrate, or leave it out for all"));
        }
        for (i, k) in rungs.iter().enumerate() {
            if Rung::from_kbps(*k).is_none() {
                return Err(ApiError::invalid(format!(
                    "rungs[{i}]: {k} is not a bitrate of the ladder (24, 96, 160, 320)"
                )));
            }
        }
    }
    if req.pops.is_some() && req.regions.is_some() {
        return Err(ApiError::invalid("pops, regions: give one or neither"));
    }
    if let Some(regions) = &req.regions {
        for (i, r) in regions.iter().enumerate() {
            validate::id(&format!("regions[{i}]"), r)?;
        }
    }
    if req.origin_bytes_per_second == Some(0) {
        return Err(ApiError::invalid("origin_bytes_per_second: must be positive"));
    }
    if req.concurrency == Some(0) {
        return Err(ApiError::invalid("concurrency: must be positive"));
    }
    let now = now_ms();
    let start_at = match (req.start_at, &req.before_release) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("start_at, before_release: give one or neither")),
        (Some(s), None) => secs_to_ms("start_at", s)?,
        (None, Some(lead)) => {
            let lead: cadenza_config::units::HumanDuration = lead
                .parse()
                .map_err(|e| ApiError::invalid(format!("before_release: {e} (e.g. \"2h\", \"30m\")")))?;
            let Some(release) = release_at_ms else {
                return Err(ApiError::invalid(
                    "before_release: needs album_id of an album with a release_at",
                ));
            };
            release.saturating_sub(i64::try_from(lead.get().as_millis()).unwrap_or(i64::MAX))
        }
        (None, None) => now,
    };
    let deadline = match req.deadline_at {
        Some(d) => Some(secs_to_ms("deadline_at", d)?),
        // Warming ahead of a release: done by the release.
        None if req.before_release.is_some() => release_at_ms,
        None => None,
    };
    if let Some(d) = deadline
        && (d <= start_at.max(now))
    {
        return Err(ApiError::invalid("deadline_at: must be after the start and in the future"));
    }
    Ok((start_at, deadline))
}

/// What the request names: exactly one of an album, tracks, a playlist.
fn target(req: &WarmRequest) -> Result<Target<'_>, ApiError> {
    match (&req.album_id, &req.track_ids, &req.playlist_id) {
        (Some(a), None, None) => Ok(Target::Album(a)),
        (None, Some(t), None) => Ok(Target::Tracks(t)),
        (None, None, Some(p)) => Ok(Target::Playlist(p)),
        _ => Err(ApiError::invalid("album_id, track_ids, playlist_id: give exactly one")),
    }
}

fn secs_to_ms(field: &str, s: i64) -> Result<i64, ApiError> {
    // Year 1970 to 9999.
    if !(0..=253_402_300_799).contains(&s) {
        return Err(ApiError::invalid(format!("{field}: must be unix seconds, not {s}")));
    }
    Ok(s * 1000)
}

/// Plan a job: its files and POPs as they are now.
pub(crate) async fn plan(state: &AppState, req: &WarmRequest) -> Result<Run, ApiError> {
    let rows = store::files_of(state.db(), &target(req)?).await?;
    let mut seen = HashSet::new();
    let files: Vec<WarmFile> = rows
        .into_iter()
        .filter(|f: &FileRow| req.rungs.as_ref().is_none_or(|r| r.contains(&f.kbps)))
        .filter(|f| seen.insert(f.file_id.clone()))
        .map(|f| WarmFile { file_id: f.file_id, track_id: f.track_id, kbps: f.kbps, size: f.size })
        .collect();
    if files.is_empty() {
        return Err(ApiError::new(ErrorKind::NothingToWarm, "no published audio at the rungs asked for"));
    }

    let registry = state.cdns().snapshot();
    let all: Vec<(&crate::cdn::Cdn, &crate::cdn::Pop)> = registry
        .cdns
        .iter()
        .filter(|c| c.config.kind == CdnKind::Cadenza)
        .flat_map(|c| c.pops.iter().map(move |p| (c, p)))
        .collect();
    let mut chosen: Vec<(&crate::cdn::Cdn, &crate::cdn::Pop)> = Vec::new();
    match &req.pops {
        Some(names) => {
            if names.is_empty() {
                return Err(ApiError::invalid("pops: name at least one POP, or leave it out for all"));
            }
            for (i, name) in names.iter().enumerate() {
                let matches: Vec<_> = all
                    .iter()
                    .filter(|(c, p)| match name.split_once('/') {
                        Some((cdn, pop)) => c.config.name == cdn && p.config.name == pop,
                        None => p.config.name == *name,
                    })
                    .collect();
                let &&(c, p) = match matches.as_slice() {
                    [one] => one,
                    [] => return Err(ApiError::invalid(format!("pops[{i}]: no cadenza POP {}", echo(name)))),
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "pops[{i}]: {} is a POP of several CDNs; write cdn/pop",
                            echo(name)
                        )));
                    }
                };
                if !p.config.warmable() {
                    return Err(ApiError::invalid(format!(
                        "pops[{i}]: POP {}/{} has no admin_url and admin_token to warm through",
                        c.config.name, p.config.name
                    )));
                }
                chosen.push((c, p));
            }
        }
        None => {
            for &(c, p) in &all {
                let in_region = req
                    .regions
                    .as_ref()
                    .is_none_or(|rs| rs.iter().any(|r| r.eq_ignore_ascii_case(&p.config.region)));
                if !p.config.shield
                    && p.config.warmable()
                    && in_region
                    && p.health.state() != ProbeState::Down
                {
                    chosen.push((c, p));
                }
            }
        }
    }
    // The shields the chosen POPs fill from join them; shields go first
    // (a stable sort), each POP once.
    let parents: Vec<_> = chosen
        .iter()
        .filter_map(|&(c, p)| {
            let parent = p.config.parent.as_ref()?;
            let s = c.pops.iter().find(|s| &s.config.name == parent)?;
            s.config.warmable().then_some((c, s))
        })
        .collect();
    let mut ordered = chosen;
    ordered.extend(parents);
    ordered.sort_by_key(|(_, p)| !p.config.shield);
    let mut seen = HashSet::new();
    ordered.retain(|(c, p)| seen.insert((c.config.name.as_str(), p.config.name.as_str())));
    if ordered.is_empty() {
        return Err(ApiError::new(
            ErrorKind::NoWarmablePops,
            "no healthy cadenza POP with an admin_url and admin_token matches",
        ));
    }
    let warmed: HashSet<String> =
        ordered.iter().map(|(c, p)| format!("{}/{}", c.config.name, p.config.name)).collect();
    // A POP waits for its shield only if the shield is part of this job.
    let parent_of = |c: &crate::cdn::Cdn, p: &crate::cdn::Pop| {
        p.config.parent.as_ref().map(|s| format!("{}/{s}", c.config.name)).filter(|k| warmed.contains(k))
    };
    let from_origin = ordered.iter().filter(|(c, p)| parent_of(c, p).is_none()).count().max(1) as u64;
    let share = req.origin_bytes_per_second.map(|b| (b / from_origin).max(1));
    let pops = ordered
        .iter()
        .map(|&(c, p)| {
            let parent = parent_of(c, p);
            let mut run = PopRun {
                view: WarmPop {
                    cdn: c.config.name.clone(),
                    pop: p.config.name.clone(),
                    role: if p.config.shield { "shield" } else { "edge" }.into(),
                    max_bytes_per_second: if parent.is_none() { share } else { None },
                    parent,
                    state: "pending".into(),
                    attempts: 0,
                    edge_job: None,
                    bytes_total: 0,
                    bytes_done: 0,
                    files_done: 0,
                    files_failed: 0,
                    slices_already_cached: 0,
                    eta_seconds: None,
                    errors: Vec::new(),
                    files: files
                        .iter()
                        .map(|f| WarmPopFile {
                            file_id: f.file_id.clone(),
                            state: "pending".into(),
                            bytes_done: 0,
                            error: None,
                        })
                        .collect(),
                },
                retry_at_ms: 0,
                poll_errors: 0,
            };
            run.sum(&files);
            run
        })
        .collect();
    Ok(Run { files, pops })
}

impl Run {
    /// Seconds the origin-filling POPs need at the budget, if there is one.
    pub(crate) fn seconds_at_budget(&self, budget: Option<u64>) -> Option<f64> {
        let budget = budget?;
        let bytes: u64 =
            self.pops.iter().filter(|p| p.view.parent.is_none()).map(|p| p.view.bytes_total).sum();
        Some(bytes as f64 / budget as f64)
    }
}

// ----------------------------------------------------------------- viewing

/// The API's view of a stored job.
pub(crate) fn view(row: &WarmRow, with_files: bool) -> WarmJob {
    let request: WarmRequest = serde_json::from_str(&row.request).unwrap_or_default();
    let run: Run = row.progress.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default();
    let bytes_total: u64 = run.pops.iter().map(|p| p.view.bytes_total).sum();
    let bytes_done: u64 = run.pops.iter().map(|p| p.view.bytes_done).sum();
    let eta = match (row.state.as_str(), row.started_at) {
        ("running", Some(started)) if bytes_done > 0 => {
            let secs = (now_ms() - started).max(1) as f64 / 1000.0;
            Some(
                ((bytes_total.saturating_sub(bytes_done)) as f64 / (bytes_done as f64 / secs) * 10.0).round()
                    / 10.0,
            )
        }
        _ => None,
    };
    let secs = |ms: i64| ms.div_euclid(1000);
    let mut pops: Vec<WarmPop> = run.pops.into_iter().map(|p| p.view).collect();
    if !with_files {
        for p in &mut pops {
            p.files.clear();
        }
    }
    WarmJob {
        href: format!("/v1/admin/warm/{}", row.id),
        id: row.id.clone(),
        state: row.state.clone(),
        request,
        created_at: secs(row.created_at),
        start_at: secs(row.start_at),
        started_at: row.started_at.map(secs),
        finished_at: row.finished_at.map(secs),
        deadline_at: row.deadline_at.map(secs),
        error: row.error.clone(),
        files_total: run.files.len(),
        bytes_total,
        bytes_done,
        eta_seconds: eta,
        files: if with_files { run.files } else { Vec::new() },
        pops,
    }
}

// ----------------------------------------------------------------- running

/// Claim and run due jobs, forever (abort to stop; the leases of the jobs
/// it held run out and another replica resumes them).
pub(crate) async fn runner(state: AppState) {
    let config = state.config().warm.clone();
    let owner = cadenza_config::ids::random_id(16);
    cadenza_net::tls::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(EDGE_TIMEOUT)
        .connect_timeout(EDGE_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "warm runner: no HTTP client; warm jobs do not run on this replica");
            return;
        }
    };
    let running = Arc::new(AtomicUsize::new(0));
    let mut jobs = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(config.poll_interval.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lease_ms = i64::try_from(config.lease.get().as_millis()).unwrap_or(i64::MAX);
    loop {
        tick.tick().await;
        while jobs.try_join_next().is_some() {}
        while running.load(Ordering::SeqCst) < config.max_running as usize {
            match store::claim(state.db(), &owner, lease_ms).await {
                Ok(Some(row)) => {
                    tracing::info!(job = %row.id, claims = row.claims, "warm job claimed");
                    let slot = Slot::take(&running);
                    let (state, client, owner) = (state.clone(), client.clone(), owner.clone());
                    jobs.spawn(async move {
                        // Held to the end, a panic included.
                        let _slot = slot;
                        let id = row.id.clone();
                        if let Err(e) = run_job(&state, &client, &owner, row).await {
                            tracing::warn!(job = %id, error = %e, "warm job: database error; the lease will run out and the job resume");
                        }
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "warm runner: cannot claim jobs");
                    break;
                }
            }
        }
    }
}

/// One of `warm.max_running`, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(running: &Arc<AtomicUsize>) -> Self {
        running.fetch_add(1, Ordering::SeqCst);
        Self(running.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a job's run ended for the runner.
enum Outcome {
    Finished(&'static str, Option<String>),
    Cancelled,
    Lost,
}

async fn run_job(
    state: &AppState,
    client: &reqwest::Client,
    owner: &str,
    row: WarmRow,
) -> Result<(), sqlx::Error> {
    let config = &state.config().warm;
    let lease_ms = i64::try_from(config.lease.get().as_millis()).unwrap_or(i64::MAX);
    let request: WarmRequest = match serde_json::from_str(&row.request) {
        Ok(r) => r,
        Err(e) => {
            store::finish(
                state.db(),
                &row.id,
                owner,
                row.claims,
                "failed",
                None,
                Some(&format!("stored request: {e}")),
            )
            .await?;
            return Ok(());
        }
    };
    let mut run = match row.progress.as_deref().map(serde_json::from_str::<Run>) {
        Some(Ok(run)) => run,
        _ => match plan(state, &request).await {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!(job = %row.id, error = %e.message(), "warm job cannot be planned");
                store::finish(state.db(), &row.id, owner, row.claims, "failed", None, Some(e.message()))
                    .await?;
                return Ok(());
            }
        },
    };
    let outcome = loop {
        let now = now_ms();
        if row.deadline_at.is_some_and(|d| now >= d) {
            stop_all(state, client, &mut run, "failed", "deadline passed").await;
            break Outcome::Finished("failed", Some("deadline_exceeded: not done by deadline_at".into()));
        }
        let before: Vec<(String, u32)> =
            run.pops.iter().map(|p| (p.view.state.clone(), p.view.attempts)).collect();
        step(state, client, &request, &mut run, now).await;
        for (p, (was, attempts)) in run.pops.iter().zip(&before) {
            let now_state = p.view.state.as_str();
            if now_state != was && matches!(now_state, "done" | "failed") {
                state.metrics().warm_part(now_state);
            } else if now_state == "retrying" && (was != "retrying" || p.view.attempts != *attempts) {
                state.metrics().warm_part("retried");
            }
        }
        let progress = serde_json::to_string(&run).expect("a run serialises");
        if run.pops.iter().all(PopRun::terminal) {
            let failed: Vec<String> =
                run.pops.iter().filter(|p| p.view.state != "done").map(PopRun::key).collect();
            break if failed.is_empty() {
                Outcome::Finished("done", None)
            } else {
                Outcome::Finished("failed", Some(format!("failed on {}", failed.join(", "))))
            };
        }
        match store::progress(state.db(), &row.id, owner, row.claims, &progress, lease_ms).await? {
            Held::Yes => {}
            Held::Cancelled => {
                stop_all(state, client, &mut run, "cancelled", "job cancelled").await;
                let progress = serde_json::to_string(&run).expect("a run serialises");
                store::progress(state.db(), &row.id, owner, row.claims, &progress, lease_ms).await?;
                break Outcome::Cancelled;
            }
            Held::Lost => break Outcome::Lost,
        }
        tokio::time::sleep(config.poll_interval.get()).await;
    };
    match outcome {
        Outcome::Finished(end, error) => {
            let progress = serde_json::to_string(&run).expect("a run serialises");
            let ended =
                store::finish(state.db(), &row.id, owner, row.claims, end, Some(&progress), error.as_deref())
                    .await?;
            if !ended {
                // Cancelled at the last moment: record what happened.
                store::progress(state.db(), &row.id, owner, row.claims, &progress, lease_ms).await?;
            }
            tracing::info!(job = %row.id, state = end, error = error.as_deref().unwrap_or(""), "warm job finished");
        }
        Outcome::Cancelled => tracing::info!(job = %row.id, "warm job cancelled"),
        Outcome::Lost => tracing::warn!(job = %row.id, "warm job lease lost to another replica"),
    }
    Ok(())
}

/// One round: submit what may start, poll what runs.
async fn step(state: &AppState, client: &reqwest::Client, request: &WarmRequest, run: &mut Run, now: i64) {
    let config = &state.config().warm;
    let registry = state.cdns().snapshot();
    let states: Vec<(String, String)> = run.pops.iter().map(|p| (p.key(), p.view.state.clone())).collect();
    let files = &run.files;
    let rounds = run.pops.iter_mut().map(|pop| {
        let parent_state = pop
            .view
            .parent
            .as_ref()
            .and_then(|k| states.iter().find(|(key, _)| key == k))
            .map(|(_, s)| s.clone());
        let registry = registry.clone();
        async move {
            let Some((_, p)) = registry.find(&pop.view.cdn, &pop.view.pop) else {
                if !pop.terminal() {
                    pop.view.state = "failed".into();
                    pop.note("the POP is no longer in the registry".into());
                }
                return;
            };
            let (Some(admin), token) = (p.config.admin_url.as_deref(), p.config.admin_token.expose()) else {
                pop.view.state = "failed".into();
                pop.note("the POP has no admin_url any more".into());
                return;
            };
            let edge = Edge { client, admin, token };
            match pop.view.state.as_str() {
                "pending" => match parent_state.as_deref() {
                    None | Some("done") => submit(&edge, request, pop, files, now, config).await,
                    Some("failed" | "cancelled") => {
                        pop.view.state = "failed".into();
                        let parent = pop.view.parent.clone().unwrap_or_default();
                        pop.note(format!("its shield {parent} failed; not filled through it"));
                    }
                    Some(_) => {}
                },
                "retrying" if now >= pop.retry_at_ms => submit(&edge, request, pop, files, now, config).await,
                "running" => poll(&edge, pop, files, now, config).await,
                _ => {}
            }
        }
    });
    futures_util::future::join_all(rounds).await;
}

/// A POP's admin API.
struct Edge<'a> {
    client: &'a reqwest::Client,
    admin: &'a str,
    token: &'a str,
}

async fn submit(
    edge: &Edge<'_>,
    request: &WarmRequest,
    pop: &mut PopRun,
    files: &[WarmFile],
    now: i64,
    config: &cadenza_config::service::ControlWarmConfig,
) {
    let wanted: Vec<&str> =
        pop.view.files.iter().filter(|f| f.state != "done").map(|f| f.file_id.as_str()).collect();
    if wanted.is_empty() {
        pop.view.state = "done".into();
        return;
    }
    pop.view.attempts += 1;
    let mut body = serde_json::json!({ "file_ids": wanted });
    if let Some(c) = request.concurrency {
        body["concurrency"] = c.into();
    }
    if let Some(rate) = pop.view.max_bytes_per_second {
        body["max_bytes_per_second"] = rate.into();
    }
    let sent = edge
        .client
        .post(format!("{}/admin/warm", edge.admin))
        .bearer_auth(edge.token)
        .json(&body)
        .send()
        .await;
    let failure = match sent {
        Ok(r) if r.status().is_success() => {
            match r.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_owned)) {
                Some(id) => {
                    tracing::debug!(pop = %pop.key(), edge_job = %id, files = wanted.len(), "warm part submitted");
                    pop.view.edge_job = Some(id);
                    pop.view.state = "running".into();
                    pop.poll_errors = 0;
                    for f in &mut pop.view.files {
                        if f.state != "done" {
                            f.state = "running".into();
                            f.error = None;
                        }
                    }
                    return;
                }
                None => (true, "the edge answered the warm request without a job id".to_owned()),
            }
        }
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            // A 4xx other than 429 will be refused again: fail now.
            let retry = status.is_server_error() || status.as_u16() == 429;
            (retry, format!("warm request refused: {} {}", status.as_u16(), error_text(&text)))
        }
        Err(e) => (true, format!("warm request failed: {}", describe(&e))),
    };
    retry_or_fail(pop, failure, now, config);
    pop.sum(files);
}

fn retry_or_fail(
    pop: &mut PopRun,
    (retry, error): (bool, String),
    now: i64,
    config: &cadenza_config::service::ControlWarmConfig,
) {
    tracing::debug!(pop = %pop.key(), attempts = pop.view.attempts, error, "warm part failed");
    pop.note(error);
    pop.view.edge_job = None;
    if retry && pop.view.attempts < config.max_attempts {
        let backoff = config.retry_backoff.get().as_millis() as i64;
        let doublings = pop.view.attempts.saturating_sub(1).min(16);
        pop.retry_at_ms = now + backoff.saturating_mul(1 << doublings).min(300_000);
        pop.view.state = "retrying".into();
    } else {
        pop.view.state = "failed".into();
    }
}

async fn poll(
    edge: &Edge<'_>,
    pop: &mut PopRun,
    files: &[WarmFile],
    now: i64,
    config: &cadenza_config::service::ControlWarmConfig,
) {
    let Some(job) = pop.view.edge_job.clone() else {
        pop.view.state = "retrying".into();
        return;
    };
    let got =
        edge.client.get(format!("{}/admin/warm/{job}", edge.admin)).bearer_auth(edge.token).send().await;
    let report = match got {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.map_err(|e| describe(&e)),
        Ok(r) if r.status().as_u16() == 404 => {
            // The edge forgot the job: it restarted. What it had fetched is
            // on its disk tier; submit the rest again.
            retry_or_fail(
                pop,
                (true, format!("the edge no longer knows job {job} (restarted?)")),
                now,
                config,
            );
            pop.retry_at_ms = now;
            return;
        }
        Ok(r) => Err(format!("progress request answered {}", r.status().as_u16())),
        Err(e) => Err(format!("progress request failed: {}", describe(&e))),
    };
    let report = match report {
        Ok(v) => v,
        Err(e) => {
            pop.poll_errors += 1;
            if pop.poll_errors >= MAX_POLL_ERRORS {
                retry_or_fail(pop, (true, e), now, config);
            }
            return;
        }
    };
    pop.poll_errors = 0;
    if let Some(reported) = report["files"].as_array() {
        for r in reported {
            let Some(id) = r["file_id"].as_str() else { continue };
            let Some(f) = pop.view.files.iter_mut().find(|f| f.file_id == id) else { continue };
            if f.state == "done" {
                continue;
            }
            f.bytes_done = r["bytes_done"].as_u64().unwrap_or(f.bytes_done);
            f.state = match r["state"].as_str() {
                Some("done") => "done",
                Some("failed") => "failed",
                Some("pending") => "pending",
                _ => "running",
            }
            .into();
            f.error = r["error"].as_str().map(str::to_owned);
        }
    }
    pop.view.slices_already_cached = report["slices_already_cached"].as_u64().unwrap_or(0);
    pop.view.eta_seconds = report["eta_seconds"].as_f64();
    pop.sum(files);
    match report["state"].as_str() {
        Some("running") | None => {}
        Some(_) if pop.view.files.iter().all(|f| f.state == "done") => {
            pop.view.state = "done".into();
            pop.view.eta_seconds = None;
        }
        Some(end) => {
            let first = pop
                .view
                .files
                .iter()
                .find_map(|f| f.error.clone())
                .unwrap_or_else(|| format!("edge job {end}"));
            let failed = pop.view.files.iter().filter(|f| f.state != "done").count();
            retry_or_fail(pop, (true, format!("{failed} files not warmed: {first}")), now, config);
        }
    }
}

/// Cancel every running edge job of `run` and end its open parts as `end`.
async fn stop_all(state: &AppState, client: &reqwest::Client, run: &mut Run, end: &str, why: &str) {
    let registry = state.cdns().snapshot();
    for pop in &mut run.pops {
        if pop.terminal() {
            continue;
        }
        if let (Some(job), Some((_, p))) = (&pop.view.edge_job, registry.find(&pop.view.cdn, &pop.view.pop))
            && let Some(admin) = &p.config.admin_url
        {
            let cancelled = client
                .delete(format!("{admin}/admin/warm/{job}"))
                .bearer_auth(p.config.admin_token.expose())
                .send()
                .await;
            if let Err(e) = cancelled {
                pop.note(format!("cancelling edge job {job}: {}", describe(&e)));
            }
        }
        pop.view.state = end.into();
        pop.view.eta_seconds = None;
        pop.note(why.into());
    }
}

/// A reqwest error without its URL (which holds no secret, but is long).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else if e.is_decode() {
        "unreadable answer".into()
    } else {
        "request error".into()
    }
}

/// The `message` of a JSON error body, else the start of the text.
fn error_text(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(200).collect())
}
