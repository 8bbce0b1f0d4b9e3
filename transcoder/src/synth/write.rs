//! Writing planar `f32` audio as WAV (hound) or FLAC (flacenc) masters.

use std::path::Path;

use flacenc::component::BitRepr as _;
use flacenc::error::Verify as _;

use super::SynthError;

fn encode_err(path: &Path, reason: impl std::fmt::Display) -> SynthError {
    SynthError::Encode { path: path.to_owned(), reason: reason.to_string() }
}

fn check_planes(path: &Path, planes: &[Vec<f32>]) -> Result<usize, SynthError> {
    let frames = planes.first().map_or(0, Vec::len);
    if planes.is_empty() || planes.len() > 8 || planes.iter().any(|p| p.len() != frames) {
        return Err(encode_err(path, "need 1-8 channels of equal length"));
    }
    Ok(frames)
}

/// Full-scale integer for `bits`, with `x` clamped to [−1, 1] and rounded.
fn quantise(x: f32, bits: u16) -> i32 {
    let max = ((1i64 << (bits - 1)) - 1) as f64;
    (f64::from(x.clamp(-1.0, 1.0)) * max).round() as i32
}

/// Write `planes` (one per channel) at `rate` Hz as a WAV file: `bits` 16 or
/// 24 for integer PCM, 32 for IEEE float (written as is, unclamped).
pub fn write_wav(path: &Path, planes: &[Vec<f32>], rate: u32, bits: u16) -> Result<(), SynthError> {
    let frames = check_planes(path, planes)?;
    let format = match bits {
        16 | 24 => hound::SampleFormat::Int,
        32 => hound::SampleFormat::Float,
        _ => return Err(encode_err(path, format!("unsupported bit depth {bits}"))),
    };
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    };
    let wav = |e: hound::Error| match e {
        hound::Error::IoError(source) => SynthError::Io { path: path.to_owned(), source },
        other => encode_err(path, other),
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(wav)?;
    for i in 0..frames {
        for p in planes {
            if bits == 32 {
                w.write_sample(p[i]).map_err(wav)?;
            } else {
                w.write_sample(quantise(p[i], bits)).map_err(wav)?;
            }
        }
    }
    w.finalize().map_err(wav)
}

/// Write `planes` (one per channel) at `rate` Hz as a FLAC file with `bits`
/// 16 or 24 bits per sample.
pub fn write_flac(path: &Path, planes: &[Vec<f32>], rate: u32, bits: u16) -> Result<(), SynthError> {
    let frames = check_planes(path, planes)?;
    if bits != 16 && bits != 24 {
        return Err(encode_err(path, format!("unsupported bit depth {bits}")));
    }
    let mut interleaved = Vec::with_capacity(frames * planes.len());
    for i in 0..frames {
        for p in planes {
            interleaved.push(quantise(p[i], bits));
        }
    }
    let mut config = flacenc::config::Encoder::default();
    // Single-threaded: the caller decides about parallelism.
    config.multithread = false;
    let config = config.into_verified().map_err(|(_, e)| encode_err(path, e))?;
    let source = flacenc::source::MemSource::from_samples(
        &interleaved,
        planes.len(),
        usize::from(bits),
        rate as usize,
    );
    let mut stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| encode_err(path, e))?;
    // flacenc records the short last block as the minimum block size, which
    // the FLAC format excludes ("minimum block size … excluding the last
    // block"); decoders then take the stream for variable-blocksize and
    // reject its fixed-blocksize frames. Every block but the last has the
    // maximum size, so say so.
    let info = stream.stream_info_mut();
    let max = info.max_block_size();
    info.set_block_sizes(max, max).map_err(|e| encode_err(path, e))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream.write(&mut sink).map_err(|e| encode_err(path, format!("{e:?}")))?;
    std::fs::write(path, sink.as_slice()).map_err(|source| SynthError::Io { path: path.to_owned(), source })
}
