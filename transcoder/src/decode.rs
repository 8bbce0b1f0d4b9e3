//! Decoding a master (WAV or FLAC) into planar `f32` in memory, with
//! symphonia.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use bytes::Bytes;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::TranscodeError;

/// Masters longer than this are refused before decoding (3 h).
pub const MAX_DURATION_SECS: u64 = 3 * 3600;
/// Lowest accepted master sample rate, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest accepted master sample rate, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// A decoded master.
#[derive(Debug)]
pub(crate) struct Master {
    /// `wav` or `flac`.
    pub(crate) format: &'static str,
    pub(crate) sample_rate: u32,
    /// One plane per channel; 1 or 2 planes, all the same length.
    pub(crate) planes: Vec<Vec<f32>>,
}

impl Master {
    pub(crate) fn frames(&self) -> usize {
        self.planes.first().map_or(0, Vec::len)
    }

    pub(crate) fn channels(&self) -> u8 {
        // At most 2 planes, by construction in `decode`.
        self.planes.len() as u8
    }
}

/// Decode a whole master held in memory. `path` is for messages and the
/// extension hint only.
///
/// A master is untrusted input, and symphonia can panic on some damaged
/// headers (e.g. an arithmetic overflow on a WAV `fmt ` chunk in debug
/// builds); such a panic is caught and reported as a corrupt master.
pub(crate) fn decode(path: &Path, bytes: Bytes) -> Result<Master, TranscodeError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| decode_unguarded(path, bytes))).unwrap_or_else(|_| {
        Err(TranscodeError::Corrupt { path: path.to_owned(), reason: "the decoder crashed on it".into() })
    })
}

fn decode_unguarded(path: &Path, bytes: Bytes) -> Result<Master, TranscodeError> {
    let not_audio = |reason: String| TranscodeError::NotAudio { path: path.to_owned(), reason };
    let unsupported = |reason: String| TranscodeError::Unsupported { path: path.to_owned(), reason };
    let corrupt = |reason: String| TranscodeError::Corrupt { path: path.to_owned(), reason };
    let file_len = bytes.len() as u64;
    if bytes.is_empty() {
        return Err(not_audio("the file is empty".into()));
    }
    // A file that starts like a container we know but fails to open is
    // damaged rather than "not audio".
    let known_magic = [&b"RIFF"[..], b"RF64", b"fLaC", b"OggS"].iter().any(|m| bytes.starts_with(m));

    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(&ext.to_ascii_lowercase());
    }
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut reader = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| {
            if known_magic {
                corrupt(format!("cannot read the container: {e}"))
            } else {
                not_audio("no wav or flac header found".into())
            }
        })?;

    let format = match reader.format_info().short_name {
        "wave" => "wav",
        "flac" => "flac",
        other => {
            return Err(unsupported(format!("{other} masters are not accepted; use wav or flac")));
        }
    };
    let track = reader.default_track(TrackType::Audio).ok_or_else(|| not_audio("no audio track".into()))?;
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| not_audio("no audio codec parameters".into()))?
        .clone();
    let sample_rate = params.sample_rate.ok_or_else(|| corrupt("no sample rate".into()))?;
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(unsupported(format!(
            "sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )));
    }
    let channels =
        params.channels.as_ref().map(|c| c.count()).ok_or_else(|| corrupt("no channel layout".into()))?;
    if !(1..=2).contains(&channels) {
        return Err(unsupported(format!("{channels} channels; only mono and stereo masters are accepted")));
    }
    let max_frames = MAX_DURATION_SECS * u64::from(sample_rate);
    let too_long = |frames: u64| TranscodeError::TooLong {
        path: path.to_owned(),
        seconds: frames / u64::from(sample_rate),
        limit: MAX_DURATION_SECS,
    };
    if let Some(n) = declared_frames
        && n > max_frames
    {
        return Err(too_long(n));
    }

    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| unsupported(format!("codec: {e}")))?;

    // Reserve up front when the header says how long it is, but never more
    // than the file can hold: a header may lie, and a huge reservation
    // would abort the process instead of failing this one master.
    let bytes_per_frame = match format {
        "wav" => params.bits_per_sample.unwrap_or(8).div_ceil(8).max(1) as u64 * channels as u64,
        // FLAC needs well under 1 byte per sample for anything but noise.
        _ => channels as u64,
    };
    let reserve = declared_frames.unwrap_or(0).min(file_len / bytes_per_frame).min(max_frames) as usize;
    let mut planes: Vec<Vec<f32>> = (0..channels).map(|_| Vec::with_capacity(reserve)).collect();
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    loop {
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymError::ResetRequired) => {
                return Err(unsupported("chained streams are not accepted".into()));
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(corrupt(format!("the file ends mid-stream after {} frames", planes[0].len())));
            }
            Err(e) => return Err(corrupt(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder
            .decode(&packet)
            .map_err(|e| corrupt(format!("undecodable audio after {} frames: {e}", planes[0].len())))?;
        if buf.spec().channels().count() != channels {
            return Err(corrupt("channel count changes mid-stream".into()));
        }
        buf.copy_to_vecs_planar::<f32>(&mut scratch);
        for (plane, new) in planes.iter_mut().zip(&scratch) {
            plane.extend_from_slice(new);
        }
        if planes[0].len() as u64 > max_frames {
            return Err(too_long(planes[0].len() as u64));
        }
    }

    let frames = planes[0].len();
    if let Some(n) = declared_frames
        && (frames as u64) < n
    {
        return Err(corrupt(format!("the header declares {n} frames but only {frames} decode")));
    }
    if frames == 0 {
        return Err(TranscodeError::Empty { path: path.to_owned() });
    }
    if planes.iter().flatten().any(|s| !s.is_finite()) {
        return Err(corrupt("samples are NaN or infinite".into()));
    }
    Ok(Master { format, sample_rate, planes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    /// Mutated and truncated masters must give an error or audio, never a
    /// panic (a deterministic mini-fuzz over both decode paths).
    #[test]
    fn damaged_masters_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let planes = synth::render(5, 0, 1).to_vec();
        let wav = dir.path().join("m.wav");
        let flac = dir.path().join("m.flac");
        synth::write_wav(&wav, &planes, 44_100, 16).unwrap();
        synth::write_flac(&flac, &planes, 44_100, 16).unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for path in [&wav, &flac] {
            let good = std::fs::read(path).unwrap();
            assert!(decode(path, Bytes::from(good.clone())).is_ok());
            for i in 0..150 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut bad = good.clone();
                if i % 3 == 0 {
                    bad.truncate((x as usize) % good.len());
                } else {
                    // Mostly hit the headers, where lengths and counts live.
                    let span = if i % 2 == 0 { 128 } else { good.len() };
                    for k in 0..4 {
                        let at = ((x >> (k * 8)) as usize) % span.min(bad.len());
                        bad[at] = (x >> (32 + k * 8)) as u8;
                    }
                }
                let _ = decode(path, Bytes::from(bad));
            }
        }
    }
}
