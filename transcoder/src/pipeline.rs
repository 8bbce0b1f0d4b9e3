//! The CPU part: master bytes in, a checked ladder and its manifest out.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use cadenza_config::ids::{FileId, TrackId};
use cadenza_config::ladder::{LADDER, Rung};
use cadenza_config::manifest::{MANIFEST_VERSION, Manifest, Rendition, Source};
use sha2::{Digest, Sha256};

use crate::decode::{self, Master};
use crate::loudness::{self, LoudnessError};
use crate::ogg::{self, frames_to_ms};
use crate::{TranscodeError, Transcoded, encode, resample};

/// `Content-Type` with codec, as recorded per rendition.
pub const RENDITION_MIME: &str = "audio/ogg; codecs=vorbis";
/// Shortest master we can measure: one EBU R128 gating block.
const MIN_DURATION_MS: u64 = 400;

/// SHA-256 of a master's bytes.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Transcode a master already read into memory.
pub(crate) fn transcode_bytes(
    path: &Path,
    bytes: Bytes,
    track_id: &TrackId,
    threads: usize,
) -> Result<Transcoded, TranscodeError> {
    let digest = sha256(&bytes);
    let master = decode::decode(path, bytes)?;
    let frames = master.frames() as u64;
    let duration_ms = frames_to_ms(frames, master.sample_rate);
    if duration_ms < MIN_DURATION_MS {
        return Err(TranscodeError::Unsupported {
            path: path.to_owned(),
            reason: format!(
                "it lasts {duration_ms} ms; at least {MIN_DURATION_MS} ms are needed to measure loudness"
            ),
        });
    }
    let loudness = loudness::measure(&master.planes, master.sample_rate).map_err(|e| match e {
        LoudnessError::Silent => TranscodeError::Silent { path: path.to_owned() },
        LoudnessError::Meter => TranscodeError::Unsupported {
            path: path.to_owned(),
            reason: "the loudness meter refuses its format".into(),
        },
    })?;
    let tags = encode::replaygain_tags(&loudness);

    // One signal per distinct output format, resampled once and shared by
    // every rung in that format.
    let mut formats: Vec<(u32, u8)> = Vec::new();
    for rung in LADDER {
        let f = (rung.output_rate(master.sample_rate), rung.channels());
        if !formats.contains(&f) {
            formats.push(f);
        }
    }
    let signals = parallel_map(formats.clone(), threads, |(rate, channels)| {
        prepare(&master, rate, channels).map_err(|reason| TranscodeError::Resample {
            path: path.to_owned(),
            from: master.sample_rate,
            to: rate,
            reason,
        })
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;

    let encoded = parallel_map(LADDER.to_vec(), threads, |rung| {
        let format = (rung.output_rate(master.sample_rate), rung.channels());
        let i = formats.iter().position(|f| *f == format).unwrap_or(0);
        let signal = &signals[i];
        let serial = encode::stream_serial(&digest, rung);
        let bytes = encode::encode(signal, format.0, rung.kbps(), serial, &tags)
            .map_err(|reason| TranscodeError::Encode { path: path.to_owned(), rung, reason })?;
        let expected_frames = signal.first().map_or(0, Vec::len) as u64;
        rendition(path, rung, format, expected_frames, Bytes::from(bytes))
    });

    let mut renditions = Vec::with_capacity(LADDER.len());
    let mut files = Vec::with_capacity(LADDER.len());
    for result in encoded {
        let (rendition, bytes) = result?;
        files.push((rendition.file_id, bytes));
        renditions.push(rendition);
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        track_id: track_id.clone(),
        source: Source {
            sha256: hex::encode(digest),
            format: master.format.to_owned(),
            sample_rate: master.sample_rate,
            channels: master.source_channels,
            frames,
            duration_ms,
        },
        loudness,
        encoder: encode::encoder_id().to_owned(),
        renditions,
    };
    Ok(Transcoded { manifest, files })
}

/// The master as `channels` channels at `rate` Hz, borrowed when it already
/// is.
fn prepare(master: &Master, rate: u32, channels: u8) -> Result<Cow<'_, [Vec<f32>]>, String> {
    if rate == master.sample_rate && channels == master.channels() {
        return Ok(Cow::Borrowed(&master.planes));
    }
    let mixed = resample::mix_to(&master.planes, channels);
    resample::resample(mixed, master.sample_rate, rate).map(Cow::Owned)
}

/// Check an encoded file with our own Ogg parser and describe it. Anything
/// unexpected is a [`TranscodeError::BadOutput`], so it is never published.
fn rendition(
    path: &Path,
    rung: Rung,
    (rate, channels): (u32, u8),
    expected_frames: u64,
    bytes: Bytes,
) -> Result<(Rendition, Bytes), TranscodeError> {
    let bad = |reason: String| TranscodeError::BadOutput { path: path.to_owned(), rung, reason };
    let info = ogg::vorbis_stream_info(&bytes).map_err(|e| bad(e.to_string()))?;
    if (info.sample_rate, info.channels) != (rate, channels) {
        return Err(bad(format!(
            "it is {} Hz {} ch, expected {rate} Hz {channels} ch",
            info.sample_rate, info.channels
        )));
    }
    if info.frames != expected_frames {
        return Err(bad(format!("it has {} frames, expected {expected_frames}", info.frames)));
    }
    let size = bytes.len() as u64;
    let seconds = info.frames as f64 / f64::from(rate);
    let achieved_kbps = (size as f64 * 8.0 / seconds / 1000.0 * 100.0).round() / 100.0;
    let rendition = Rendition {
        bitrate_kbps: rung,
        file_id: FileId::of_content(&bytes),
        size,
        frames: info.frames,
        duration_ms: info.duration_ms,
        achieved_kbps,
        sample_rate: rate,
        channels,
        mime: RENDITION_MIME.to_owned(),
        seek: info.seek,
    };
    Ok((rendition, bytes))
}

/// Map `f` over `items` on up to `threads` scoped threads (`0` = one per
/// item), keeping the input order. With one thread it runs inline.
fn parallel_map<T, R, F>(items: Vec<T>, threads: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let n = items.len();
    let workers = if threads == 0 { n } else { threads.min(n) };
    if workers <= 1 {
        return items.into_iter().map(f).collect();
    }
    let inputs: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let outputs: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let item = inputs[i].lock().ok().and_then(|mut g| g.take());
                    if let Some(item) = item {
                        let r = f(item);
                        if let Ok(mut slot) = outputs[i].lock() {
                            *slot = Some(r);
                        }
                    }
                }
            });
        }
    });
    // A worker that panicked has already re-raised its panic from `scope`,
    // so every slot is filled here.
    outputs.into_iter().filter_map(|m| m.into_inner().ok().flatten()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order_for_any_thread_count() {
        for threads in [0, 1, 2, 3, 16] {
            let out = parallel_map((0..10).collect(), threads, |x: u32| x * x);
            assert_eq!(out, (0..10).map(|x| x * x).collect::<Vec<_>>());
        }
    }
}
