//! Channel mixing and sample-rate conversion (rubato's FFT resampler).

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

/// Input chunk size of the FFT resampler. Larger chunks mean fewer, bigger
/// FFTs; the resampler rounds this to a multiple of the rate ratio's
/// minimum block.
const CHUNK: usize = 4096;

/// `planes` as `channels` channels: mono to stereo duplicates, stereo to mono
/// averages `(L + R) / 2`.
pub(crate) fn mix_to(planes: &[Vec<f32>], channels: u8) -> Vec<Vec<f32>> {
    match (planes.len(), channels) {
        (2, 1) => vec![planes[0].iter().zip(&planes[1]).map(|(l, r)| (l + r) * 0.5).collect()],
        (1, 2) => vec![planes[0].clone(), planes[0].clone()],
        _ => planes.to_vec(),
    }
}

/// Resample planar audio from `from` Hz to `to` Hz. The output has
/// `ceil(frames × to / from)` frames with the resampler's delay removed, so
/// it lines up with the input. Returns the input unchanged when the rates
/// match.
pub(crate) fn resample(planes: Vec<Vec<f32>>, from: u32, to: u32) -> Result<Vec<Vec<f32>>, String> {
    if from == to {
        return Ok(planes);
    }
    let channels = planes.len();
    let frames = planes.first().map_or(0, Vec::len);
    if channels == 0 || frames == 0 {
        return Ok(planes);
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, CHUNK, channels, FixedSync::Input)
        .map_err(|e| e.to_string())?;
    let input = SequentialSliceOfVecs::new(&planes, channels, frames).map_err(|e| e.to_string())?;
    let out = resampler.process_all(&input, frames, None).map_err(|e| e.to_string())?;
    let data = out.take_data();
    let out_frames = data.len() / channels;
    let mut result: Vec<Vec<f32>> = (0..channels).map(|_| Vec::with_capacity(out_frames)).collect();
    for frame in data.chunks_exact(channels) {
        for (plane, &s) in result.iter_mut().zip(frame) {
            plane.push(s);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    #[test]
    fn lengths_follow_the_ratio_and_signal_survives() {
        let input = vec![sine(440.0, 44_100, 44_100); 2];
        let out = resample(input, 44_100, 22_050).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), 22_050);
        // RMS of a 0.5-amplitude sine is ~0.354; the middle must keep it.
        let mid = &out[0][5_000..17_000];
        let rms = (mid.iter().map(|s| s * s).sum::<f32>() / mid.len() as f32).sqrt();
        assert!((rms - 0.3536).abs() < 0.01, "rms {rms}");

        let out = resample(vec![sine(1000.0, 96_000, 9_600)], 96_000, 44_100).unwrap();
        assert_eq!(out[0].len(), 4_410);
    }

    #[test]
    fn mixing() {
        let st = vec![vec![1.0, 0.0], vec![0.0, -1.0]];
        assert_eq!(mix_to(&st, 1), vec![vec![0.5, -0.5]]);
        assert_eq!(mix_to(&[vec![0.25]], 2), vec![vec![0.25], vec![0.25]]);
        assert_eq!(mix_to(&st, 2), st);
    }
}
