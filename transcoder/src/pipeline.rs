//! The CPU part: masters in, checked and tagged ladders on local disk out.
//!
//! Per track, three phases:
//!
//! 1. **Encode**, streaming. The calling thread decodes the master chunk by
//!    chunk and hands each chunk (shared, not copied) to: the master's
//!    loudness meter; every encoder whose format is the master's; and one
//!    converter thread per other output format, which mixes and resamples
//!    once and feeds that format's encoders and, for 22.05 kHz mono, the
//!    feature extractor. Every stage is a thread joined by bounded
//!    channels, so memory is a few chunks whatever the length, and the four
//!    encoders run in parallel. Encoders write raw Ogg files to the work
//!    directory.
//! 2. **Measure** each raw rendition by decoding it with a real decoder
//!    (symphonia): its own loudness, and proof that every frame is there.
//! 3. **Tag** (once the whole album is measured, when there is one): write
//!    the ReplayGain tags into each file's comment header
//!    ([`crate::ogg::retag`]), hashing and checking the final bytes as they
//!    are written; the hash is the file id.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::ScopedJoinHandle;

use cadenza_config::ids::{FileId, TrackId};
use cadenza_config::ladder::{LADDER, Rung};
use cadenza_config::manifest::{
    AlbumLoudness, AudioFeatures, Loudness, MANIFEST_VERSION, Manifest, Rendition, Source as SourceInfo,
    album_members,
};
use sha2::{Digest, Sha256};

use crate::calibrate::Calibration;
use crate::decode::{MasterInfo, Source};
use crate::encode::{self, RungEncoder, Strategy};
use crate::features::FeatureExtractor;
use crate::loudness::{self, LoudnessError, Meter};
use crate::ogg::{self, frames_to_ms};
use crate::resample::{StreamResampler, mix_to};
use crate::{EncodedFile, Progress, ProgressEvent, TranscodeError, Transcoded, WorkDir};

/// `Content-Type` with codec, as recorded per rendition.
pub const RENDITION_MIME: &str = "audio/ogg; codecs=vorbis";
/// Shortest master we can measure: one EBU R128 gating block.
const MIN_DURATION_MS: u64 = 400;
/// Chunks in flight between two stages.
const DEPTH: usize = 4;
/// The format audio features are computed in: the 24 kbps rung's.
const ANALYSIS: (u32, u8) = (22_050, 1);

/// A decoded chunk, shared by every stage that reads it.
type Chunk = Arc<Vec<Vec<f32>>>;

/// One master to transcode.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) track_id: TrackId,
    pub(crate) path: PathBuf,
    pub(crate) sha256: [u8; 32],
}

/// SHA-256 of a file, read in 1 MiB blocks.
pub(crate) fn sha256_file(path: &Path) -> Result<[u8; 32], TranscodeError> {
    let read = |source| TranscodeError::Read { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(read)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read(e)),
        }
    }
    Ok(hash.finalize().into())
}

/// An error naming the first track id given twice, if any.
pub(crate) fn check_unique(jobs: &[Job]) -> Result<(), TranscodeError> {
    for (j, b) in jobs.iter().enumerate() {
        if let Some(a) = jobs[..j].iter().find(|a| a.track_id == b.track_id) {
            return Err(TranscodeError::DuplicateTrack {
                track: b.track_id.clone(),
                first: a.path.clone(),
                second: b.path.clone(),
            });
        }
    }
    Ok(())
}

/// Transcode `jobs` (one track, or an album when `album_id` is set) into
/// `work`. Tracks are encoded one after another, each using every core.
pub(crate) fn transcode_jobs(
    jobs: &[Job],
    album_id: Option<&str>,
    work: Arc<WorkDir>,
    progress: &dyn Progress,
) -> Result<Vec<Transcoded>, TranscodeError> {
    check_unique(jobs)?;
    let mut measured = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        let encoded = encode_track(index, job, work.path(), progress)?;
        progress.event(index, ProgressEvent::Measuring);
        measured.push(measure_track(job, encoded)?);
    }
    let album = match album_id {
        Some(id) => Some(album_loudness(id, &measured, jobs)?),
        None => None,
    };
    let mut out = Vec::with_capacity(jobs.len());
    for (index, (job, track)) in jobs.iter().zip(&measured).enumerate() {
        progress.event(index, ProgressEvent::Tagging);
        out.push(tag_track(index, job, track, album.as_ref(), &work)?);
    }
    Ok(out)
}

// ------------------------------------------------------------------ phase 1

/// A track after phase 1.
struct Encoded {
    info: MasterInfo,
    frames: u64,
    master: Meter,
    features: crate::features::Features,
    rungs: Vec<RawRung>,
}

/// One raw rendition: encoded, not yet measured or tagged.
#[derive(Debug)]
struct RawRung {
    rung: Rung,
    rate: u32,
    channels: u8,
    path: PathBuf,
    /// How the encoder was asked for the bitrate.
    strategy: Strategy,
    /// Frames fed to the encoder.
    frames: u64,
}

/// Why the decode loop stopped early.
enum Stop {
    /// The master is bad (or unreadable).
    Input(TranscodeError),
    /// A stage hung up: its own error says why.
    StageGone,
}

/// What one pass over the master produced.
struct Pass {
    info: MasterInfo,
    frames: u64,
    /// The first pass also meters the master and extracts features.
    analysis: Option<(Meter, crate::features::Features)>,
    rungs: Vec<RawRung>,
}

/// Encode a track's rungs, each calibrated to its nominal bitrate
/// ([`crate::calibrate`]): the first pass also meters the master and
/// extracts its features; later passes decode the master again and encode
/// only the rungs still off their bitrate. The closest pass of each rung is
/// kept, the other files deleted.
fn encode_track(
    index: usize,
    job: &Job,
    work: &Path,
    progress: &dyn Progress,
) -> Result<Encoded, TranscodeError> {
    let path = job.path.as_path();
    let mut calibrations: Vec<Calibration> = LADDER.iter().map(|&r| Calibration::new(r)).collect();
    // Per rung, the file of every pass, by pass index.
    let mut files: Vec<Vec<RawRung>> = LADDER.iter().map(|_| Vec::new()).collect();
    let mut first: Option<(MasterInfo, u64, Meter, crate::features::Features)> = None;
    for pass in 1.. {
        let mut wanted = Vec::new();
        for (i, cal) in calibrations.iter_mut().enumerate() {
            while let Some(strategy) = cal.next() {
                let rate = first.as_ref().map(|f| f.0.sample_rate);
                // A target libvorbis refuses is recorded, and another asked.
                if let Some(rate) = rate
                    && !encode::accepts(cal.rung.output_rate(rate), cal.rung.channels(), strategy)
                {
                    cal.refused(strategy);
                    continue;
                }
                wanted.push((i, strategy));
                break;
            }
        }
        if wanted.is_empty() {
            break;
        }
        if pass > 1 {
            progress
                .event(index, ProgressEvent::Calibrating { pass: pass as u32, rungs: wanted.len() as u32 });
        }
        let specs: Vec<(Rung, Strategy, PathBuf)> = wanted
            .iter()
            .map(|&(i, strategy)| {
                let rung = calibrations[i].rung;
                (rung, strategy, work.join(format!("t{index}-{rung}.p{pass}.raw.ogg")))
            })
            .collect();
        let out = run_pass(index, job, &specs, first.is_none(), progress)?;
        match &first {
            None => {
                let duration_ms = frames_to_ms(out.frames, out.info.sample_rate);
                if duration_ms < MIN_DURATION_MS {
                    return Err(TranscodeError::Unsupported {
                        path: path.to_owned(),
                        reason: format!(
                            "it lasts {duration_ms} ms; at least {MIN_DURATION_MS} ms are needed to measure loudness"
                        ),
                    });
                }
                let (meter, features) =
                    out.analysis.ok_or_else(|| task(path, "the first pass did not meter"))?;
                first = Some((out.info, out.frames, meter, features));
            }
            Some((info, frames, ..)) => {
                if out.frames != *frames || out.info != *info {
                    return Err(TranscodeError::Corrupt {
                        path: path.to_owned(),
                        reason: format!(
                            "it changed while being transcoded ({} frames, then {})",
                            frames, out.frames
                        ),
                    });
                }
            }
        }
        for ((i, strategy), raw) in wanted.into_iter().zip(out.rungs) {
            let bytes = std::fs::metadata(&raw.path).map_err(|source| work_err(&raw.path, source))?.len();
            let seconds = raw.frames as f64 / f64::from(raw.rate);
            calibrations[i].record(strategy, bytes, seconds);
            files[i].push(raw);
        }
    }
    let (info, frames, master, features) = first.ok_or_else(|| task(path, "no pass ran"))?;
    let mut rungs = Vec::with_capacity(LADDER.len());
    for (cal, mut passes) in calibrations.iter().zip(files) {
        let best = cal.best().ok_or_else(|| task(path, "a rung was never encoded"))?;
        tracing::debug!(master = %path.display(), calibration = %cal.summary(), "rung calibrated");
        let kept = passes.swap_remove(best);
        for other in passes {
            // Only disk space is lost if this fails; the work dir goes anyway.
            let _ = std::fs::remove_file(&other.path);
        }
        rungs.push(kept);
    }
    Ok(Encoded { info, frames, master, features, rungs })
}

/// One pass over the master: decode it and feed the rungs of `specs`
/// (each with its strategy and output file), and with `analyse` the
/// master's meter and the feature extractor.
fn run_pass(
    index: usize,
    job: &Job,
    specs: &[(Rung, Strategy, PathBuf)],
    analyse: bool,
    progress: &dyn Progress,
) -> Result<Pass, TranscodeError> {
    let path = job.path.as_path();
    let mut source = Source::open(path)?;
    let info = source.info().clone();
    let rate = info.sample_rate;
    let master_format = (rate, info.channels);
    let mut formats: Vec<(u32, u8)> = Vec::new();
    let analysis_format = analyse.then_some(ANALYSIS);
    for f in specs.iter().map(|(r, ..)| (r.output_rate(rate), r.channels())).chain(analysis_format) {
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    progress.event(
        index,
        ProgressEvent::Decoding { frames_done: 0, frames_total: info.declared_frames, sample_rate: rate },
    );

    std::thread::scope(|s| {
        let mut master_txs: Vec<SyncSender<Chunk>> = Vec::new();
        let meter = analyse.then(|| {
            let (tx, rx) = sync_channel::<Chunk>(DEPTH);
            master_txs.push(tx);
            s.spawn(move || -> Result<Meter, TranscodeError> {
                let mut meter = Meter::new(info.channels, rate).map_err(|_| meter_refused(path))?;
                for chunk in rx {
                    meter.add(&chunk).map_err(|_| meter_refused(path))?;
                }
                Ok(meter)
            })
        });
        let mut encoders: Vec<ScopedJoinHandle<'_, Result<RawRung, TranscodeError>>> = Vec::new();
        let mut features = None;
        let mut converters = Vec::new();
        for &format in &formats {
            let mut txs = Vec::new();
            for (rung, strategy, out) in
                specs.iter().filter(|(r, ..)| (r.output_rate(rate), r.channels()) == format)
            {
                let (tx, rx) = sync_channel::<Chunk>(DEPTH);
                txs.push(tx);
                let raw = RawRung {
                    rung: *rung,
                    rate: format.0,
                    channels: format.1,
                    path: out.clone(),
                    strategy: *strategy,
                    frames: 0,
                };
                let serial = encode::stream_serial(&job.sha256, *rung);
                encoders.push(s.spawn(move || encode_rung(path, raw, serial, rx)));
            }
            if Some(format) == analysis_format {
                let (tx, rx) = sync_channel::<Chunk>(DEPTH);
                txs.push(tx);
                features = Some(s.spawn(move || {
                    let mut extractor = FeatureExtractor::new(ANALYSIS.0);
                    for chunk in rx {
                        extractor.push(&chunk[0]);
                    }
                    extractor.finish()
                }));
            }
            if format == master_format {
                master_txs.extend(txs);
            } else {
                let (tx, rx) = sync_channel::<Chunk>(DEPTH);
                master_txs.push(tx);
                converters.push(s.spawn(move || convert(path, rx, txs, master_format, format)));
            }
        }

        let decoded = (|| {
            while let Some(chunk) = source.next_chunk().map_err(Stop::Input)? {
                let chunk = Arc::new(chunk);
                for tx in &master_txs {
                    tx.send(Arc::clone(&chunk)).map_err(|_| Stop::StageGone)?;
                }
                progress.event(
                    index,
                    ProgressEvent::Decoding {
                        frames_done: source.frames(),
                        frames_total: info.declared_frames,
                        sample_rate: rate,
                    },
                );
            }
            Ok(source.frames())
        })();
        // Hang up so every stage drains and ends, then collect them all:
        // no thread outlives the scope, whatever failed.
        drop(master_txs);
        let meter = meter.map(|m| join(path, m));
        let converted: Vec<_> = converters.into_iter().map(|c| join(path, c)).collect();
        let rungs: Vec<_> = encoders.into_iter().map(|e| join(path, e)).collect();
        let features = features.map(|f| f.join());

        let frames = match decoded {
            Ok(frames) => frames,
            Err(Stop::Input(e)) => return Err(e),
            Err(Stop::StageGone) => {
                // A stage hung up: report its own error.
                for c in converted {
                    c?;
                }
                for r in rungs {
                    r?;
                }
                meter.transpose()?;
                return Err(task(path, "a pipeline stage stopped without an error"));
            }
        };
        for c in converted {
            c?;
        }
        let rungs = rungs.into_iter().collect::<Result<Vec<_>, _>>()?;
        let analysis = match (meter.transpose()?, features) {
            (Some(meter), Some(Ok(features))) => Some((meter, features)),
            (None, None) => None,
            _ => return Err(task(path, "the feature extractor failed")),
        };
        Ok(Pass { info, frames, analysis, rungs })
    })
}

/// Encode one rung from its chunks into its raw file.
fn encode_rung(
    path: &Path,
    mut raw: RawRung,
    serial: i32,
    rx: Receiver<Chunk>,
) -> Result<RawRung, TranscodeError> {
    let encode_err =
        |reason: String| TranscodeError::Encode { path: path.to_owned(), rung: raw.rung, reason };
    let file = File::create(&raw.path).map_err(|source| work_err(&raw.path, source))?;
    let sink = BufWriter::with_capacity(256 * 1024, file);
    let mut encoder = RungEncoder::new(sink, raw.rate, raw.channels, raw.strategy, raw.rung.kbps(), serial)
        .map_err(encode_err)?;
    for chunk in rx {
        encoder.push(&chunk).map_err(encode_err)?;
    }
    raw.frames = encoder.frames();
    let mut sink = encoder.finish().map_err(encode_err)?;
    sink.flush().map_err(|source| work_err(&raw.path, source))?;
    Ok(raw)
}

/// Mix and resample the master's chunks into one output format, for every
/// stage that takes that format. Stops quietly when they hang up (their own
/// error is what gets reported).
fn convert(
    path: &Path,
    rx: Receiver<Chunk>,
    txs: Vec<SyncSender<Chunk>>,
    from: (u32, u8),
    to: (u32, u8),
) -> Result<(), TranscodeError> {
    let resample_err =
        |reason: String| TranscodeError::Resample { path: path.to_owned(), from: from.0, to: to.0, reason };
    let mut resampler = if from.0 == to.0 {
        None
    } else {
        Some(StreamResampler::new(from.0, to.0, usize::from(to.1)).map_err(resample_err)?)
    };
    let send = |planes: Vec<Vec<f32>>| -> bool {
        if planes.first().is_none_or(Vec::is_empty) {
            return true;
        }
        let chunk = Arc::new(planes);
        txs.iter().all(|tx| tx.send(Arc::clone(&chunk)).is_ok())
    };
    for chunk in rx {
        let mixed = if from.1 == to.1 { None } else { Some(mix_to(&chunk, to.1)) };
        let planes: &[Vec<f32>] = mixed.as_deref().unwrap_or(&chunk);
        let out = match &mut resampler {
            Some(r) => r.push(planes).map_err(resample_err)?,
            None => planes.to_vec(),
        };
        if !send(out) {
            return Ok(());
        }
    }
    if let Some(r) = resampler {
        send(r.finish().map_err(resample_err)?);
    }
    Ok(())
}

// ------------------------------------------------------------------ phase 2

/// A track after phase 2: every rendition decoded and measured.
struct Measured {
    info: MasterInfo,
    frames: u64,
    master: Meter,
    master_loudness: Loudness,
    features: crate::features::Features,
    rungs: Vec<(RawRung, Meter)>,
}

fn measure_track(job: &Job, encoded: Encoded) -> Result<Measured, TranscodeError> {
    let path = job.path.as_path();
    let master_loudness = encoded.master.loudness().map_err(|e| match e {
        LoudnessError::Silent => TranscodeError::Silent { path: path.to_owned() },
        LoudnessError::Meter => meter_refused(path),
    })?;
    let meters: Vec<Result<Meter, TranscodeError>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            encoded.rungs.iter().map(|raw| s.spawn(move || measure_rung(path, raw))).collect();
        handles.into_iter().map(|h| join(path, h)).collect()
    });
    let mut rungs = Vec::with_capacity(encoded.rungs.len());
    for (raw, meter) in encoded.rungs.into_iter().zip(meters) {
        rungs.push((raw, meter?));
    }
    Ok(Measured {
        info: encoded.info,
        frames: encoded.frames,
        master: encoded.master,
        master_loudness,
        features: encoded.features,
        rungs,
    })
}

/// Decode a raw rendition with symphonia and meter it; every frame fed to
/// the encoder must come back.
fn measure_rung(path: &Path, raw: &RawRung) -> Result<Meter, TranscodeError> {
    let bad = |reason: String| TranscodeError::BadOutput { path: path.to_owned(), rung: raw.rung, reason };
    let mut decoded = Source::open(&raw.path).map_err(|e| bad(format!("a decoder refuses it: {e}")))?;
    let info = decoded.info();
    if (info.format, info.sample_rate, info.channels) != ("ogg", raw.rate, raw.channels) {
        return Err(bad(format!(
            "it decodes as {} {} Hz {} ch, expected ogg {} Hz {} ch",
            info.format, info.sample_rate, info.channels, raw.rate, raw.channels
        )));
    }
    let mut meter = Meter::new(raw.channels, raw.rate).map_err(|_| meter_refused(path))?;
    while let Some(chunk) = decoded.next_chunk().map_err(|e| bad(format!("decoding it failed: {e}")))? {
        meter.add(&chunk).map_err(|_| meter_refused(path))?;
    }
    if decoded.frames() != raw.frames {
        return Err(bad(format!("a decoder gets {} frames, {} were encoded", decoded.frames(), raw.frames)));
    }
    Ok(meter)
}

/// The album's loudness: the masters as one programme, and each rung as
/// one programme.
fn album_loudness(id: &str, tracks: &[Measured], jobs: &[Job]) -> Result<AlbumLevels, TranscodeError> {
    let first = jobs.first().map(|j| j.path.as_path()).unwrap_or(Path::new("album"));
    let fail = |e: LoudnessError| match e {
        LoudnessError::Silent => TranscodeError::Silent { path: first.to_owned() },
        LoudnessError::Meter => meter_refused(first),
    };
    let masters: Vec<&Meter> = tracks.iter().map(|t| &t.master).collect();
    let master = loudness::album(&masters).map_err(fail)?;
    let mut rungs = Vec::new();
    for rung in LADDER {
        let meters: Vec<&Meter> = tracks
            .iter()
            .flat_map(|t| t.rungs.iter().filter(|(r, _)| r.rung == rung).map(|(_, m)| m))
            .collect();
        rungs.push((rung, loudness::album(&meters).map_err(fail)?));
    }
    let members = album_members(jobs.iter().map(|j| (&j.track_id, &j.sha256)));
    Ok(AlbumLevels { id: id.to_owned(), tracks: tracks.len() as u32, members, master, rungs })
}

/// Album loudness, of the masters and per rung.
struct AlbumLevels {
    id: String,
    tracks: u32,
    members: String,
    master: Loudness,
    rungs: Vec<(Rung, Loudness)>,
}

// ------------------------------------------------------------------ phase 3

fn tag_track(
    index: usize,
    job: &Job,
    track: &Measured,
    album: Option<&AlbumLevels>,
    work: &Arc<WorkDir>,
) -> Result<Transcoded, TranscodeError> {
    let path = job.path.as_path();
    let results: Vec<Result<(Rendition, EncodedFile, String), TranscodeError>> = std::thread::scope(|s| {
        let handles: Vec<_> = track
            .rungs
            .iter()
            .map(|(raw, meter)| {
                let album = album.and_then(|a| a.rungs.iter().find(|(r, _)| *r == raw.rung)).map(|(_, l)| *l);
                s.spawn(move || tag_rung(index, path, raw, meter, album, work.path()))
            })
            .collect();
        handles.into_iter().map(|h| join(path, h)).collect()
    });
    let mut renditions = Vec::with_capacity(results.len());
    let mut files = Vec::with_capacity(results.len());
    let mut vendor = String::new();
    for r in results {
        let (rendition, file, v) = r?;
        renditions.push(rendition);
        files.push(file);
        vendor = v;
    }
    let info = &track.info;
    let duration_ms = frames_to_ms(track.frames, info.sample_rate);
    let l = track.master_loudness;
    let f = &track.features;
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        track_id: job.track_id.clone(),
        source: SourceInfo {
            sha256: hex::encode(job.sha256),
            format: info.format.to_owned(),
            sample_rate: info.sample_rate,
            channels: info.source_channels,
            frames: track.frames,
            duration_ms,
        },
        loudness: l,
        album: album.map(|a| AlbumLoudness {
            id: a.id.clone(),
            tracks: a.tracks,
            members: a.members.clone(),
            loudness: a.master,
        }),
        features: AudioFeatures {
            duration_ms,
            integrated_lufs: l.integrated_lufs,
            loudness_range_lu: l.loudness_range_lu,
            tempo_bpm: round_to(f.tempo_bpm, 2),
            tempo_confidence: round_to(f.tempo_confidence, 3),
            energy: round_to(f.energy, 6),
            spectral_centroid_hz: round_to(f.spectral_centroid_hz, 1),
            zero_crossing_rate: round_to(f.zero_crossing_rate, 6),
            timbre: f.timbre.iter().map(|&x| round_to(x, 4)).collect(),
        },
        encoder: encode::encoder_id().to_owned(),
        encoder_vendor: vendor,
        renditions,
    };
    manifest.check().map_err(|reason| task(path, &format!("the manifest it made is invalid: {reason}")))?;
    Ok(Transcoded { manifest, files, work: Arc::clone(work) })
}

/// Write the final file of one rung: the raw file with its ReplayGain tags,
/// checked and hashed as it is written. Returns its manifest entry, the
/// file, and the encoder's vendor string.
fn tag_rung(
    index: usize,
    path: &Path,
    raw: &RawRung,
    meter: &Meter,
    album: Option<Loudness>,
    work: &Path,
) -> Result<(Rendition, EncodedFile, String), TranscodeError> {
    let bad = |reason: String| TranscodeError::BadOutput { path: path.to_owned(), rung: raw.rung, reason };
    let loudness = meter.loudness().map_err(|e| match e {
        LoudnessError::Silent => bad("it measures silent (below -70 LUFS)".into()),
        LoudnessError::Meter => meter_refused(path),
    })?;
    let tags = encode::replaygain_tags(&loudness, album.as_ref());
    let input = File::open(&raw.path).map_err(|source| work_err(&raw.path, source))?;
    let out_path = work.join(format!("t{index}-{}.ogg", raw.rung));
    let output = File::create(&out_path).map_err(|source| work_err(&out_path, source))?;
    let tagged = ogg::retag(
        BufReader::with_capacity(256 * 1024, input),
        BufWriter::with_capacity(256 * 1024, output),
        &tags,
        Some(raw.rung.kbps() * 1000),
    )
    .map_err(|e| match e {
        ogg::RetagError::Output(source) => work_err(&out_path, source),
        other => bad(other.to_string()),
    })?;
    // The raw file is no longer needed; a failure to remove it only wastes
    // space until the work directory goes.
    let _ = std::fs::remove_file(&raw.path);
    let info = &tagged.info;
    if (info.sample_rate, info.channels) != (raw.rate, raw.channels) {
        return Err(bad(format!(
            "it is {} Hz {} ch, expected {} Hz {} ch",
            info.sample_rate, info.channels, raw.rate, raw.channels
        )));
    }
    if info.frames != raw.frames {
        return Err(bad(format!("it has {} frames, expected {}", info.frames, raw.frames)));
    }
    let seconds = info.frames as f64 / f64::from(raw.rate);
    let achieved_kbps = (tagged.size as f64 * 8.0 / seconds / 1000.0 * 100.0).round() / 100.0;
    let file_id = FileId::from_digest(&tagged.sha256);
    let rendition = Rendition {
        bitrate_kbps: raw.rung,
        file_id,
        size: tagged.size,
        frames: info.frames,
        duration_ms: info.duration_ms,
        achieved_kbps,
        sample_rate: raw.rate,
        channels: raw.channels,
        mime: RENDITION_MIME.to_owned(),
        loudness,
        album_loudness: album,
        seek: info.seek.clone(),
    };
    Ok((rendition, EncodedFile { file_id, path: out_path, size: tagged.size }, tagged.vendor))
}

// ------------------------------------------------------------------ helpers

/// `x` rounded to `decimals` places: short, stable JSON that reads back to
/// the very same `f64` (a full-precision float may not, by one ulp).
/// Adding `0.0` turns a `-0.0` into `0.0`.
fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale + 0.0
}

/// Join a stage; a panic in it is reported, not re-raised.
fn join<T>(
    path: &Path,
    handle: ScopedJoinHandle<'_, Result<T, TranscodeError>>,
) -> Result<T, TranscodeError> {
    handle.join().unwrap_or_else(|_| Err(task(path, "a pipeline thread panicked")))
}

fn task(path: &Path, reason: &str) -> TranscodeError {
    TranscodeError::Task { path: path.to_owned(), reason: reason.to_owned() }
}

fn meter_refused(path: &Path) -> TranscodeError {
    TranscodeError::Unsupported {
        path: path.to_owned(),
        reason: "the loudness meter refuses its format".into(),
    }
}

fn work_err(path: &Path, source: std::io::Error) -> TranscodeError {
    TranscodeError::Work { path: path.to_owned(), source }
}
