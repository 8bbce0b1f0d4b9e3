//! Publishing a ladder to the origin store: audio first, manifest last.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use cadenza_config::ids::TrackId;
use cadenza_config::manifest::Manifest;
use cadenza_config::service::TranscoderConfig;
use cadenza_origin::{Store, StoreError};
use object_store::ObjectStoreExt as _;

use crate::{TranscodeError, Transcoded, encode, pipeline};

/// What [`ingest`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ladder was encoded and its audio and manifest written.
    Published,
    /// The store already holds this master's ladder from this encoder; no
    /// encoding was done and nothing was written.
    Unchanged,
}

/// The result of ingesting one master.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestReport {
    /// The manifest now in the store.
    pub manifest: Manifest,
    pub outcome: Outcome,
}

/// Transcode `master` and publish it as `track_id` in `store`.
///
/// Every `audio/<file_id>.ogg` is written before
/// `tracks/<track_id>/manifest.json`, so a reader that finds the manifest
/// finds all its files, and a failure part-way leaves the previous manifest
/// (if any) in place. If the store already has a manifest for this track with
/// the same master SHA-256 and the same [`crate::encoder_id`], and all its
/// audio objects are present, nothing is encoded and the outcome is
/// [`Outcome::Unchanged`]. The CPU work runs on tokio's blocking pool.
pub async fn ingest(
    store: &Store,
    master: &Path,
    track_id: &TrackId,
    threads: usize,
) -> Result<IngestReport, TranscodeError> {
    let store_err = |source: StoreError| TranscodeError::Store {
        path: master.to_owned(),
        track: track_id.clone(),
        source: Box::new(source),
    };
    let bytes = tokio::fs::read(master)
        .await
        .map_err(|source| TranscodeError::Read { path: master.to_owned(), source })?;
    let bytes = Bytes::from(bytes);

    let existing = match cadenza_origin::read_manifest(store.as_ref(), track_id).await {
        Ok(m) => m,
        // A damaged or foreign manifest is derived data: the master is the
        // source of truth, so re-publish over it.
        Err(e @ StoreError::BadManifest { .. }) => {
            tracing::warn!(track = %track_id, error = %e, "replacing unreadable manifest");
            None
        }
        Err(e) => return Err(store_err(e)),
    };
    let mut reusable = None;
    if let Some(m) = existing
        && m.encoder == encode::encoder_id()
        && all_audio_present(store, &m).await
    {
        reusable = Some(m);
    }

    let path: PathBuf = master.to_owned();
    let track = track_id.clone();
    let work = tokio::task::spawn_blocking(move || {
        let sha = hex::encode(pipeline::sha256(&bytes));
        match reusable {
            Some(m) if m.source.sha256 == sha => Ok(Work::Unchanged(m)),
            _ => pipeline::transcode_bytes(&path, bytes, &track, threads).map(Work::Encoded),
        }
    })
    .await
    .map_err(|e| TranscodeError::Task { path: master.to_owned(), reason: e.to_string() })??;

    let Transcoded { manifest, files } = match work {
        Work::Unchanged(unchanged) => {
            tracing::info!(track = %track_id, master = %master.display(), "master unchanged, nothing to publish");
            return Ok(IngestReport { manifest: unchanged, outcome: Outcome::Unchanged });
        }
        Work::Encoded(t) => t,
    };
    for (id, bytes) in files {
        let written = cadenza_origin::put_audio(store.as_ref(), &id, bytes).await.map_err(store_err)?;
        tracing::debug!(track = %track_id, file_id = %id, written, "audio object stored");
    }
    cadenza_origin::write_manifest(store.as_ref(), &manifest).await.map_err(store_err)?;
    tracing::info!(
        track = %track_id,
        master = %master.display(),
        renditions = manifest.renditions.len(),
        lufs = manifest.loudness.integrated_lufs,
        "track published"
    );
    Ok(IngestReport { manifest, outcome: Outcome::Published })
}

/// What the blocking part of [`ingest`] found to do.
enum Work {
    /// The stored manifest already describes this master.
    Unchanged(Manifest),
    Encoded(Transcoded),
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

/// `cadenza transcode`: open `config.store` and ingest each `(track, master)`
/// in order with `config.threads` encoder threads. Stops at the first
/// failure; tracks ingested before it stay published (each is complete).
pub async fn run(
    config: TranscoderConfig,
    inputs: Vec<(TrackId, PathBuf)>,
) -> Result<Vec<IngestReport>, TranscodeError> {
    let store =
        cadenza_origin::open_store(&config.store).map_err(|e| TranscodeError::OpenStore(Box::new(e)))?;
    let threads = config.threads as usize;
    let mut reports = Vec::with_capacity(inputs.len());
    for (track, master) in inputs {
        reports.push(ingest(&store, &master, &track, threads).await?);
    }
    Ok(reports)
}
