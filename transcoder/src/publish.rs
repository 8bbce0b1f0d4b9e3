//! Publishing ladders to the origin store: audio first, manifests last.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadenza_config::ids::TrackId;
use cadenza_config::manifest::{Manifest, album_members};
use cadenza_config::service::TranscoderConfig;
use cadenza_origin::{Store, StoreError};
use object_store::ObjectStoreExt as _;

use crate::pipeline::{self, Job};
use crate::{Options, Progress, ProgressEvent, TranscodeError, Transcoded, WorkDir, encode};

/// What [`ingest`] did with a track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ladder was encoded and its audio and manifest written.
    Published,
    /// The store already holds this master's ladder from this encoder (and,
    /// for an album, the same album); nothing was encoded or written.
    Unchanged,
}

/// The result of ingesting one master.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestReport {
    pub track_id: TrackId,
    pub master: PathBuf,
    /// The manifest now in the store.
    pub manifest: Manifest,
    pub outcome: Outcome,
}

/// Transcode `master` and publish it as `track_id` in `store`: one track,
/// no album. See [`ingest_album`].
pub async fn ingest(
    store: &Store,
    master: &Path,
    track_id: &TrackId,
    options: &Options,
) -> Result<IngestReport, TranscodeError> {
    let tracks = vec![(track_id.clone(), master.to_owned())];
    let mut reports = ingest_album(store, &tracks, None, options, Arc::new(())).await?;
    reports.pop().ok_or_else(|| TranscodeError::Task { path: master.to_owned(), reason: "no report".into() })
}

/// Transcode masters and publish them to `store`.
///
/// Every `audio/<file_id>.ogg` is written before any
/// `tracks/<track_id>/manifest.json`, so a reader that finds a manifest
/// finds all its files, and a failure part-way leaves the previous
/// manifests (if any) in place.
///
/// Without `album_id` the tracks are independent: a track whose stored
/// manifest has the same master SHA-256, the same [`crate::encoder_id`],
/// no album, and all its audio present is [`Outcome::Unchanged`] and not
/// encoded again. With `album_id` they are one album (album ReplayGain over
/// all of them): unchanged only if every track is, measured in the same
/// album (same id, same tracks and masters in the same order); otherwise all
/// are encoded and published again. A track id given twice is an error.
///
/// The CPU work runs on tokio's blocking pool.
pub async fn ingest_album(
    store: &Store,
    tracks: &[(TrackId, PathBuf)],
    album_id: Option<&str>,
    options: &Options,
    progress: Arc<dyn Progress>,
) -> Result<Vec<IngestReport>, TranscodeError> {
    let first = tracks.first().map(|t| t.1.clone()).unwrap_or_default();
    let store_err = |path: &Path, track: &TrackId, source: StoreError| TranscodeError::Store {
        path: path.to_owned(),
        track: track.clone(),
        source: Box::new(source),
    };
    for (i, (_, path)) in tracks.iter().enumerate() {
        progress.track(i, path);
    }

    // Hash the masters (blocking) and read what the store has.
    let hashed = {
        let tracks = tracks.to_vec();
        let progress = Arc::clone(&progress);
        blocking(&first, move || {
            tracks
                .into_iter()
                .enumerate()
                .map(|(i, (track_id, path))| {
                    progress.event(i, ProgressEvent::Hashing);
                    let sha256 = pipeline::sha256_file(&path)?;
                    Ok(Job { track_id, path, sha256 })
                })
                .collect::<Result<Vec<_>, TranscodeError>>()
        })
        .await?
    };
    pipeline::check_unique(&hashed)?;
    let members = album_members(hashed.iter().map(|j| (&j.track_id, &j.sha256)));
    let mut existing = Vec::with_capacity(hashed.len());
    for job in &hashed {
        let current = match cadenza_origin::read_manifest(store.as_ref(), &job.track_id).await {
            Ok(m) => m,
            // A damaged or foreign manifest is derived data: the master is
            // the source of truth, so re-publish over it.
            Err(e @ StoreError::BadManifest { .. }) => {
                tracing::warn!(track = %job.track_id, error = %e, "replacing unreadable manifest");
                None
            }
            Err(e) => return Err(store_err(&job.path, &job.track_id, e)),
        };
        let same = match current {
            Some(m) if is_same(&m, job, album_id, &members) && all_audio_present(store, &m).await => Some(m),
            _ => None,
        };
        existing.push(same);
    }

    // Decide what to encode.
    let todo: Vec<usize> = if album_id.is_some() {
        if existing.iter().all(Option::is_some) { Vec::new() } else { (0..hashed.len()).collect() }
    } else {
        (0..hashed.len()).filter(|&i| existing[i].is_none()).collect()
    };
    let mut reports: Vec<Option<IngestReport>> = vec![None; hashed.len()];
    for (i, job) in hashed.iter().enumerate() {
        if todo.contains(&i) {
            continue;
        }
        if let Some(manifest) = existing[i].take() {
            tracing::info!(track = %job.track_id, master = %job.path.display(), "master unchanged, nothing to publish");
            progress.event(i, ProgressEvent::Unchanged);
            reports[i] = Some(IngestReport {
                track_id: job.track_id.clone(),
                master: job.path.clone(),
                manifest,
                outcome: Outcome::Unchanged,
            });
        }
    }

    if !todo.is_empty() {
        let jobs: Vec<Job> = todo.iter().map(|&i| hashed[i].clone()).collect();
        let work = Arc::new(WorkDir::new(options)?);
        let album = album_id.map(str::to_owned);
        let transcoded: Vec<Transcoded> = {
            let progress = Arc::clone(&progress);
            let todo = todo.clone();
            blocking(&first, move || {
                let remap = Remap { inner: progress.as_ref(), indices: &todo };
                pipeline::transcode_jobs(&jobs, album.as_deref(), work, &remap)
            })
            .await?
        };
        // All audio first, then the manifests.
        for (&i, t) in todo.iter().zip(&transcoded) {
            progress.event(i, ProgressEvent::Publishing);
            let job = &hashed[i];
            for file in &t.files {
                let written =
                    cadenza_origin::put_audio_file(store.as_ref(), &file.file_id, &file.path, file.size)
                        .await
                        .map_err(|e| store_err(&job.path, &job.track_id, e))?;
                tracing::debug!(track = %job.track_id, file_id = %file.file_id, written, "audio object stored");
            }
        }
        for (&i, t) in todo.iter().zip(transcoded) {
            let job = &hashed[i];
            cadenza_origin::write_manifest(store.as_ref(), &t.manifest)
                .await
                .map_err(|e| store_err(&job.path, &job.track_id, e))?;
            tracing::info!(
                track = %job.track_id,
                master = %job.path.display(),
                lufs = t.manifest.loudness.integrated_lufs,
                album = album_id.unwrap_or("-"),
                "track published"
            );
            progress.event(i, ProgressEvent::Published);
            reports[i] = Some(IngestReport {
                track_id: job.track_id.clone(),
                master: job.path.clone(),
                manifest: t.manifest,
                outcome: Outcome::Published,
            });
        }
    }
    reports.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| TranscodeError::Task {
        path: first,
        reason: "a track was neither kept nor published".into(),
    })
}

/// Does stored manifest `m` describe exactly what ingesting `job` would
/// make? For an album, `members` names the album's tracks and masters: a
/// track measured with other tracks has another album loudness.
fn is_same(m: &Manifest, job: &Job, album_id: Option<&str>, members: &str) -> bool {
    let album_matches = match (album_id, &m.album) {
        (None, None) => true,
        (Some(id), Some(a)) => a.id == id && a.members == members,
        _ => false,
    };
    m.encoder == encode::encoder_id() && m.source.sha256 == hex::encode(job.sha256) && album_matches
}

/// True when every audio object `m` names exists with its recorded size.
async fn all_audio_present(store: &Store, m: &Manifest) -> bool {
    for r in &m.renditions {
        match store.head(&cadenza_origin::audio_path(&r.file_id)).await {
            Ok(meta) if meta.size == r.size => {}
            _ => return false,
        }
    }
    true
}

/// Run CPU work on the blocking pool.
async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, TranscodeError> + Send + 'static,
) -> Result<T, TranscodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TranscodeError::Task { path: path.to_owned(), reason: e.to_string() })?
}

/// Progress of a subset of the tracks, reported under their indices in the
/// whole call.
struct Remap<'a> {
    inner: &'a dyn Progress,
    indices: &'a [usize],
}

impl Progress for Remap<'_> {
    fn event(&self, track: usize, event: ProgressEvent) {
        self.inner.event(self.indices.get(track).copied().unwrap_or(track), event);
    }
}

/// `cadenza transcode`: open `config.store` and ingest `tracks`, as one
/// album when `album_id` is set. Stops at the first failure; with no album,
/// tracks ingested before it stay published (each is complete).
pub async fn run(
    config: TranscoderConfig,
    tracks: Vec<(TrackId, PathBuf)>,
    album_id: Option<String>,
    progress: Arc<dyn Progress>,
) -> Result<Vec<IngestReport>, TranscodeError> {
    let store =
        cadenza_origin::open_store(&config.store).map_err(|e| TranscodeError::OpenStore(Box::new(e)))?;
    let options = Options { work_dir: config.work_dir.clone() };
    if album_id.is_some() {
        return ingest_album(&store, &tracks, album_id.as_deref(), &options, progress).await;
    }
    let mut reports = Vec::with_capacity(tracks.len());
    for (i, track) in tracks.into_iter().enumerate() {
        let one = Offset { inner: Arc::clone(&progress), offset: i };
        let mut r = ingest_album(&store, &[track], None, &options, Arc::new(one)).await?;
        reports.append(&mut r);
    }
    Ok(reports)
}

/// Progress of a one-track call reported as track `offset` of a longer
/// list.
struct Offset {
    inner: Arc<dyn Progress>,
    offset: usize,
}

impl Progress for Offset {
    fn event(&self, track: usize, event: ProgressEvent) {
        self.inner.event(track + self.offset, event);
    }

    fn track(&self, track: usize, master: &Path) {
        self.inner.track(track + self.offset, master);
    }
}
