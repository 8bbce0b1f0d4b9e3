//! Channel mixing and streaming sample-rate conversion (rubato's FFT
//! resampler).

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

/// Input chunk size of the FFT resampler. Larger chunks mean fewer, bigger
/// FFTs; the resampler rounds this to a multiple of the rate ratio's
/// minimum block.
const CHUNK: usize = 4096;
/// FFT sub-chunks per chunk. rubato's default (chunk / 256, for low
/// latency) makes short FFTs whose anti-aliasing filter starts cutting at
/// ~0.9 of the output's Nyquist frequency (about 9.9 kHz at 22.05 kHz);
/// one sub-chunk puts the cutoff at ~0.99 (10.9 kHz) at the cost of ~1,000
/// frames more delay, which is cut from the start anyway.
const SUB_CHUNKS: usize = 1;

/// `planes` as `channels` channels: mono to stereo duplicates, stereo to mono
/// averages `(L + R) / 2`.
pub(crate) fn mix_to(planes: &[Vec<f32>], channels: u8) -> Vec<Vec<f32>> {
    match (planes.len(), channels) {
        (2, 1) => vec![planes[0].iter().zip(&planes[1]).map(|(l, r)| (l + r) * 0.5).collect()],
        (1, 2) => vec![planes[0].clone(), planes[0].clone()],
        _ => planes.to_vec(),
    }
}

/// A sample-rate converter fed chunk by chunk. Its whole output is
/// `ceil(frames_in × to / from)` frames lined up with the input: the
/// resampler's delay is cut from the start, and [`finish`](Self::finish)
/// flushes the tail. Memory is a few chunks, whatever the length.
pub(crate) struct StreamResampler {
    resampler: Fft<f32>,
    from: u64,
    to: u64,
    channels: usize,
    /// Input not yet consumed (less than one resampler chunk after a push).
    pending: Vec<Vec<f32>>,
    /// Scratch output of one resampler call.
    scratch: Vec<Vec<f32>>,
    /// Output frames still to cut (the resampler's delay).
    to_trim: usize,
    frames_in: u64,
    frames_out: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("channels", &self.channels)
            .field("frames_in", &self.frames_in)
            .field("frames_out", &self.frames_out)
            .finish()
    }
}

impl StreamResampler {
    pub(crate) fn new(from: u32, to: u32, channels: usize) -> Result<Self, String> {
        if from == 0 || to == 0 || channels == 0 {
            return Err(format!("cannot resample {channels} channels from {from} Hz to {to} Hz"));
        }
        let resampler = Fft::<f32>::new_custom(
            from as usize,
            to as usize,
            CHUNK,
            SUB_CHUNKS,
            channels,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )
        .map_err(|e| e.to_string())?;
        let scratch = vec![vec![0.0; resampler.output_frames_max()]; channels];
        let to_trim = resampler.output_delay();
        Ok(Self {
            resampler,
            from: u64::from(from),
            to: u64::from(to),
            channels,
            pending: vec![Vec::with_capacity(2 * CHUNK); channels],
            scratch,
            to_trim,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Resample the next frames (one plane per channel, equal lengths);
    /// returns the output ready so far (possibly none).
    pub(crate) fn push(&mut self, input: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, String> {
        if input.len() != self.channels {
            return Err(format!("{} planes for {} channels", input.len(), self.channels));
        }
        for (p, i) in self.pending.iter_mut().zip(input) {
            p.extend_from_slice(i);
        }
        self.frames_in += input.first().map_or(0, Vec::len) as u64;
        let mut out = vec![Vec::new(); self.channels];
        let mut consumed = 0;
        let available = self.pending[0].len();
        while available - consumed >= self.resampler.input_frames_next() {
            let indexing = Indexing::new().input_offset(consumed);
            consumed += self.step(&indexing, &mut out)?;
        }
        for p in &mut self.pending {
            p.drain(..consumed);
        }
        Ok(out)
    }

    /// Flush the tail: the rest of the output, so that everything returned
    /// adds up to exactly `ceil(frames_in × to / from)` frames.
    pub(crate) fn finish(mut self) -> Result<Vec<Vec<f32>>, String> {
        let expected = (self.frames_in * self.to).div_ceil(self.from);
        let mut out = vec![Vec::new(); self.channels];
        let left = self.pending[0].len();
        if left > 0 {
            self.step(&Indexing::new().partial_len(left), &mut out)?;
        }
        // Pump silence until the delayed output has caught up.
        let mut guard = 0;
        while self.frames_out < expected {
            self.step(&Indexing::new().partial_len(0), &mut out)?;
            guard += 1;
            if guard > 64 {
                return Err("the resampler does not drain".into());
            }
        }
        let extra = (self.frames_out - expected) as usize;
        for p in &mut out {
            p.truncate(p.len() - extra.min(p.len()));
        }
        Ok(out)
    }

    /// One resampler call on `pending` (at `indexing`), its output appended
    /// to `out` after cutting the delay; returns the input frames consumed.
    fn step(&mut self, indexing: &Indexing, out: &mut [Vec<f32>]) -> Result<usize, String> {
        let frames = self.pending[0].len();
        let partial = indexing.partial_len.is_some();
        // A partial call still reads a whole chunk's worth of buffer.
        let padded;
        let input = if partial && frames < self.resampler.input_frames_next() {
            padded = self
                .pending
                .iter()
                .map(|p| {
                    let mut v = p.clone();
                    v.resize(self.resampler.input_frames_next(), 0.0);
                    v
                })
                .collect::<Vec<_>>();
            SequentialSliceOfVecs::new(&padded, self.channels, padded[0].len())
        } else {
            SequentialSliceOfVecs::new(&self.pending, self.channels, frames)
        }
        .map_err(|e| e.to_string())?;
        let out_len = self.scratch[0].len();
        let mut output = SequentialSliceOfVecs::new_mut(&mut self.scratch, self.channels, out_len)
            .map_err(|e| e.to_string())?;
        let (used, made) = self
            .resampler
            .process_into_buffer(&input, &mut output, Some(indexing))
            .map_err(|e| e.to_string())?;
        let skip = self.to_trim.min(made);
        self.to_trim -= skip;
        for (o, s) in out.iter_mut().zip(&self.scratch) {
            o.extend_from_slice(&s[skip..made]);
        }
        self.frames_out += (made - skip) as u64;
        Ok(used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    /// Resample all of `input` in pushes of `piece` frames.
    fn run(input: &[Vec<f32>], from: u32, to: u32, piece: usize) -> Vec<Vec<f32>> {
        let mut r = StreamResampler::new(from, to, input.len()).unwrap();
        let mut out = vec![Vec::new(); input.len()];
        let frames = input[0].len();
        let mut at = 0;
        while at < frames {
            let end = (at + piece).min(frames);
            let part: Vec<Vec<f32>> = input.iter().map(|p| p[at..end].to_vec()).collect();
            for (o, n) in out.iter_mut().zip(r.push(&part).unwrap()) {
                o.extend(n);
            }
            at = end;
        }
        for (o, n) in out.iter_mut().zip(r.finish().unwrap()) {
            o.extend(n);
        }
        out
    }

    #[test]
    fn lengths_follow_the_ratio_and_signal_survives() {
        let input = vec![sine(440.0, 44_100, 44_100); 2];
        let out = run(&input, 44_100, 22_050, 4096);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), 22_050);
        // RMS of a 0.5-amplitude sine is ~0.354; the middle must keep it.
        let mid = &out[0][5_000..17_000];
        let rms = (mid.iter().map(|s| s * s).sum::<f32>() / mid.len() as f32).sqrt();
        assert!((rms - 0.3536).abs() < 0.01, "rms {rms}");

        let out = run(&[sine(1000.0, 96_000, 9_600)], 96_000, 44_100, 1000);
        assert_eq!(out[0].len(), 4_410);
        for (from, to, frames) in [(192_000, 44_100, 192_001), (8_000, 44_100, 7_999), (88_200, 22_050, 5)] {
            let out = run(&[sine(300.0, from, frames)], from, to, 777);
            assert_eq!(out[0].len() as u64, (frames as u64 * u64::from(to)).div_ceil(u64::from(from)));
        }
    }

    #[test]
    fn output_is_aligned_and_independent_of_push_sizes() {
        // An impulse at 1 s stays at 1 s (the delay is cut).
        let mut x = vec![0.0f32; 96_000];
        x[48_000] = 1.0;
        let out = run(&[x.clone()], 48_000, 44_100, 4096);
        let peak = out[0].iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap().0;
        assert!(peak.abs_diff(44_100) <= 1, "impulse at {peak}");
        // Any way of cutting the input gives the same samples.
        assert_eq!(run(&[x.clone()], 48_000, 44_100, 1), out);
        assert_eq!(run(&[x.clone()], 48_000, 44_100, 10_000), out);
        assert_eq!(run(&[x], 48_000, 44_100, 96_000), out);
    }

    /// RMS of the middle half of a signal.
    fn rms(x: &[f32]) -> f32 {
        let mid = &x[x.len() / 4..3 * x.len() / 4];
        (mid.iter().map(|s| s * s).sum::<f32>() / mid.len() as f32).sqrt()
    }

    #[test]
    fn the_passband_reaches_close_to_nyquist_and_aliases_are_stopped() {
        // 44.1 -> 22.05 kHz: 10.6 kHz (96 % of the new Nyquist) passes,
        // 12 kHz (which would alias to 10.05 kHz) does not.
        let pass = run(&[sine(10_600.0, 44_100, 44_100)], 44_100, 22_050, 4096);
        let level = 20.0 * (rms(&pass[0]) / 0.3536).log10();
        assert!(level > -1.0, "10.6 kHz comes out at {level:.2} dB");
        let stop = run(&[sine(12_000.0, 44_100, 44_100)], 44_100, 22_050, 4096);
        let level = 20.0 * (rms(&stop[0]) / 0.3536).log10();
        assert!(level < -60.0, "12 kHz aliases at {level:.2} dB");
        // 96 -> 44.1 kHz: 20.5 kHz passes.
        let pass = run(&[sine(20_500.0, 96_000, 96_000)], 96_000, 44_100, 4096);
        let level = 20.0 * (rms(&pass[0]) / 0.3536).log10();
        assert!(level > -1.0, "20.5 kHz comes out at {level:.2} dB");
    }

    #[test]
    fn mixing() {
        let st = vec![vec![1.0, 0.0], vec![0.0, -1.0]];
        assert_eq!(mix_to(&st, 1), vec![vec![0.5, -0.5]]);
        assert_eq!(mix_to(&[vec![0.25]], 2), vec![vec![0.25], vec![0.25]]);
        assert_eq!(mix_to(&st, 2), st);
    }
}
