//! Decoding a master (WAV, AIFF, FLAC, MP3, AAC or ALAC in MP4, Ogg
//! Vorbis) into planar `f32` in memory, with symphonia; more than two
//! channels are mixed down to stereo on the way (ITU-R BS.775 weights).

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
    /// The container: `wav`, `aiff`, `flac`, `mp3`, `mp4` or `ogg`.
    pub(crate) format: &'static str,
    pub(crate) sample_rate: u32,
    /// Channels in the file (before any downmix).
    pub(crate) source_channels: u8,
    /// One plane per channel; 1 or 2 planes (more are mixed down to
    /// stereo while decoding), all the same length.
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
    let known_magic =
        [&b"RIFF"[..], b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3"].iter().any(|m| bytes.starts_with(m))
            || bytes.get(4..8) == Some(b"ftyp");

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
                not_audio("no wav, aiff, flac, mp3, mp4 or ogg header found".into())
            }
        })?;

    let format = match reader.format_info().short_name {
        "wave" => "wav",
        "aiff" => "aiff",
        "flac" => "flac",
        "mp3" | "mpa" => "mp3",
        "isomp4" => "mp4",
        "ogg" => "ogg",
        other => {
            return Err(unsupported(format!(
                "{other} masters are not accepted; use wav, aiff, flac, mp3, mp4 (AAC or ALAC) or ogg"
            )));
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
    let layout = params.channels.clone().ok_or_else(|| corrupt("no channel layout".into()))?;
    let channels = layout.count();
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(unsupported(format!("{channels} channels; masters may have 1 to {MAX_CHANNELS}")));
    }
    let downmix = (channels > 2).then(|| Downmix::new(&layout)).transpose().map_err(unsupported)?;
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
        "wav" | "aiff" => params.bits_per_sample.unwrap_or(8).div_ceil(8).max(1) as u64 * channels as u64,
        // FLAC needs well under 1 byte per sample for anything but noise,
        // lossy codecs far less.
        _ => channels as u64,
    };
    let reserve = declared_frames.unwrap_or(0).min(file_len / bytes_per_frame).min(max_frames) as usize;
    let kept = if downmix.is_some() { 2 } else { channels };
    let mut planes: Vec<Vec<f32>> = (0..kept).map(|_| Vec::with_capacity(reserve)).collect();
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
        match &downmix {
            Some(mix) => mix.apply(&scratch, &mut planes),
            None => {
                for (plane, new) in planes.iter_mut().zip(&scratch) {
                    plane.extend_from_slice(new);
                }
            }
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
    Ok(Master { format, sample_rate, source_channels: channels as u8, planes })
}

/// Most channels a master may have (7.1).
pub(crate) const MAX_CHANNELS: usize = 8;

/// −3 dB: the weight of a centre or surround channel in a stereo downmix.
const MINUS_3DB: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// A downmix of 3–8 channels to stereo with the ITU-R BS.775 coefficients:
/// front left/right at 1, centre at −3 dB into both, surrounds (side and
/// rear) at −3 dB into their side, a rear centre at −6 dB into both, the
/// LFE dropped. The weights are then scaled so that no output can exceed
/// full scale (the sum of each side's weights is at most 1), as ffmpeg's
/// default rematrix does; the loudness measured afterwards and the
/// manifest's playback gain make up the level.
#[derive(Debug)]
struct Downmix {
    /// Per input channel (in decode order): weight into left, into right.
    weights: Vec<(f32, f32)>,
}

impl Downmix {
    fn new(layout: &symphonia::core::audio::Channels) -> Result<Self, String> {
        use symphonia::core::audio::{Channels, Position};
        let positions: Vec<Position> = match layout {
            Channels::Positioned(mask) => mask.iter().collect(),
            // No positions given: WAVE's default order for the count
            // (L, R, C, LFE, Ls, Rs, Lc, Rc), as players assume.
            Channels::Discrete(n) => (0..*n).map(|i| Position::from_bits_truncate(1 << i)).collect(),
            other => return Err(format!("a {} channel layout cannot be mixed to stereo", describe(other))),
        };
        let weights = positions
            .iter()
            .map(|&p| match p {
                Position::FRONT_LEFT => (1.0, 0.0),
                Position::FRONT_RIGHT => (0.0, 1.0),
                Position::FRONT_CENTER => (MINUS_3DB, MINUS_3DB),
                Position::LFE1 | Position::LFE2 => (0.0, 0.0),
                Position::REAR_LEFT | Position::SIDE_LEFT | Position::FRONT_LEFT_CENTER => (MINUS_3DB, 0.0),
                Position::REAR_RIGHT | Position::SIDE_RIGHT | Position::FRONT_RIGHT_CENTER => {
                    (0.0, MINUS_3DB)
                }
                Position::REAR_CENTER => (0.5, 0.5),
                // Height and wide channels: half into both sides.
                _ => (0.5, 0.5),
            })
            .collect::<Vec<_>>();
        let (left, right) = weights.iter().fold((0.0f32, 0.0f32), |(l, r), w| (l + w.0, r + w.1));
        let scale = 1.0 / left.max(right).max(1.0);
        Ok(Self { weights: weights.into_iter().map(|(l, r)| (l * scale, r * scale)).collect() })
    }

    /// Mix one decoded buffer (`input`, a plane per channel) onto the
    /// stereo `out`.
    fn apply(&self, input: &[Vec<f32>], out: &mut [Vec<f32>]) {
        let frames = input.first().map_or(0, Vec::len);
        let (left, right) = out.split_at_mut(1);
        let (left, right) = (&mut left[0], &mut right[0]);
        let start = left.len();
        left.resize(start + frames, 0.0);
        right.resize(start + frames, 0.0);
        for (plane, &(wl, wr)) in input.iter().zip(&self.weights) {
            for (i, &x) in plane.iter().enumerate() {
                left[start + i] += wl * x;
                right[start + i] += wr * x;
            }
        }
    }
}

fn describe(c: &symphonia::core::audio::Channels) -> &'static str {
    use symphonia::core::audio::Channels;
    match c {
        Channels::Ambisonic(_) => "ambisonic",
        Channels::Custom(_) => "custom-labelled",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    #[test]
    fn five_one_mixes_to_stereo_with_the_standard_weights_and_never_clips() {
        use symphonia::core::audio::{Channels, Position};
        let layout = Channels::Positioned(
            Position::FRONT_LEFT
                | Position::FRONT_RIGHT
                | Position::FRONT_CENTER
                | Position::LFE1
                | Position::REAR_LEFT
                | Position::REAR_RIGHT,
        );
        let mix = Downmix::new(&layout).unwrap();
        // Each side: 1 + 0.707 + 0.707, scaled to 1.
        let k = 1.0 / (1.0 + 2.0 * MINUS_3DB);
        let w = &mix.weights;
        assert!((w[0].0 - k).abs() < 1e-6 && w[0].1 == 0.0, "front left");
        assert!((w[2].0 - MINUS_3DB * k).abs() < 1e-6 && (w[2].1 - MINUS_3DB * k).abs() < 1e-6, "centre");
        assert_eq!(w[3], (0.0, 0.0), "LFE dropped");
        assert!((w[5].1 - MINUS_3DB * k).abs() < 1e-6 && w[5].0 == 0.0, "rear right");
        // Full scale in every channel at once stays within full scale.
        let input = vec![vec![1.0f32; 4]; 6];
        let mut out = vec![Vec::new(), Vec::new()];
        mix.apply(&input, &mut out);
        assert!(out.iter().flatten().all(|&x| x <= 1.0 + 1e-6), "{out:?}");
        assert!((out[0][0] - 1.0).abs() < 1e-5);
    }

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
