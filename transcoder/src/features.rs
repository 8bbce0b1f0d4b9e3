//! Audio features for content-based recommendations, computed in one
//! streaming pass over the mono signal during the decode that feeds the
//! encoders (the pipeline passes 22.05 kHz; any rate from 8 to 48 kHz works).
//!
//! # What is computed, and how
//!
//! Samples arrive in chunks of any size. They are cut into *hops* of
//! `H = N / 4` samples at fixed positions of the stream, and every statistic
//! is updated once per completed hop, in stream order, so the result is
//! bit-identical whatever the chunking (only the samples and their order
//! matter). Nothing of the signal is kept beyond one analysis frame: memory
//! is O(1) in the track's length.
//!
//! - **Frames.** `N` is the power of two nearest to 1024 · rate / 22 050 (1024
//!   at 22.05 kHz, 2048 at 44.1/48 kHz, 512 at 8 kHz: about 46 ms, fine
//!   enough in frequency to put several bins in the narrowest mel band,
//!   short enough for onsets), periodic Hann window, one real FFT every hop
//!   (75 % overlap: onsets need the short hop; the timbre uses every second
//!   frame). The first frame ends at sample `H` (it is zero-padded on the
//!   left); at the end the partial hop is zero-padded and frames go on until
//!   the last sample has left the window, so every sample passes through
//!   every window position, and digital silence of whole MFCC hops before or
//!   after a track leaves its centroid and timbre bit-identical.
//! - **Energy**: `sqrt(mean(x²))` over all samples, summed in `f64` per hop.
//! - **Zero-crossing rate**: sign changes between consecutive samples (0
//!   counts as positive) over the number of pairs.
//! - **Spectral centroid**: `Σ f·|X(f)| / Σ |X(f)|` with both sums taken over
//!   the whole track (every second frame, i.e. hop `N / 2`), so a silent
//!   frame adds nothing and loud passages weigh more, as they sound.
//! - **Mel bands**: 40 triangular bands on the *Slaney* mel scale (linear
//!   below 1 kHz, logarithmic above; librosa's default) with edges evenly
//!   spaced from 0 Hz to Nyquist. Each band is the triangle-weighted *mean* of
//!   the bin powers (weights normalised to sum to 1, Slaney-style area
//!   normalisation), so white noise gives equal band levels. Power is scaled
//!   so that a full-scale sine reads 0 dB in its FFT bin, then taken as
//!   `10·log10(max(p, 1e-10))`: a floor at −100 dB keeps silence finite.
//! - **Timbre** (MFCC, every second frame: frame N, hop N / 2, i.e. 1024/512
//!   at 22.05 kHz): orthonormal DCT-II of the 40 log-mel levels (dB), keeping
//!   c0..c12. With an orthonormal DCT a level change of g dB moves only c0 (by
//!   g·√40). Frames whose (unwindowed) RMS is below −60 dBFS (0.001) are
//!   left out, so silence and fades do not skew the statistics; the 26
//!   numbers are the means of c0..c12 then their (population) standard
//!   deviations (Welford), all zeros when no frame qualified.
//! - **Tempo.** Onset strength per hop (11.6 ms at 22.05 kHz) is the
//!   half-wave-rectified rise of the 40 log-mel levels since the previous
//!   hop, averaged over bands (dB, so independent of the track's level; the
//!   first three, partly padded, frames give none, so the start of the track
//!   is not an onset). It is smoothed with a binomial kernel
//!   `[1 4 6 4 1] / 16` (σ = 1 hop: a beat period is rarely a whole number
//!   of hops, and without smoothing its autocorrelation peak splits between
//!   two lags and loses to its own double, an octave error), then its slow
//!   trend is removed by subtracting a 2 s exponential moving average (a
//!   high-pass far below 30 BPM, so that level changes between sections do
//!   not add correlation at every lag). The autocorrelation of that envelope
//!   is accumulated on the fly for lags 0..(2 s + 2 hops), which needs only
//!   the last 2 s of envelope. At the end, among the lags that are local
//!   maxima in 30–300 BPM, the one maximising `acf(lag) · prior(bpm)` wins,
//!   with librosa's perceptual prior, log-normal around 120 BPM with a
//!   standard deviation of one octave: `exp(−½ log2(bpm / 120)²)`. Its
//!   position is refined by parabolic interpolation and then, to go well below
//!   one BPM at fast tempi where one lag step is several BPM, by a
//!   least-squares fit of the interpolated peaks found near its multiples
//!   (period = Σ k·p_k / Σ k²).
//! - **Tempo confidence** is the normalised autocorrelation at the chosen
//!   (interpolated) peak, `acf(lag) / (acf(0) + T·ε²)`, clamped to 0..1: the
//!   fraction of the envelope's variance that repeats one beat later. A
//!   steady click track gives about 0.97, the transcoder's demo music 0.8–0.9;
//!   an aperiodic envelope (white noise) only correlates by chance, about
//!   1/√T for T hops (0.02 for 20 s); a steady tone has no onsets (0.0002).
//!   `ε = 0.1 dB` is a floor on the envelope's spread so that rounding noise
//!   of a perfectly steady signal cannot look periodic. When no lag
//!   qualifies, or the confidence is below 3/√T (three times chance: 0.07 for
//!   20 s, 0.02 for 3 min), no beat was found: tempo and confidence are 0.
//! - **Octaves.** An even pulse faster than 120·√2 ≈ 170 BPM is reported at
//!   half tempo (every second pulse is just as periodic, and the prior, like
//!   a listener tapping along, prefers the half); near 85 or 170 BPM, music
//!   with strong eighth notes may come out an octave off, as with any
//!   prior-based estimator.
//!
//! Samples are sanitised first: NaN counts as 0 and values (±∞ included) are
//! clamped to ±1e9 (180 dB above full scale), so no `f32` sum can overflow
//! and every output is finite. The result is deterministic for a given build and CPU;
//! rustfft picks its SIMD code path at run time, so two different CPUs may
//! differ in the last bits.

use std::fmt;
use std::sync::Arc;

use cadenza_config::manifest::TIMBRE_LEN;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Mel bands.
const N_MELS: usize = 40;
/// MFCCs kept: c0..c12.
const N_MFCC: usize = TIMBRE_LEN / 2;
/// Frame length at the reference rate; scaled with the rate to a power of two.
const REF_FRAME: f64 = 1024.0;
const REF_RATE: f64 = 22_050.0;
/// Hops per frame (75 % overlap).
const HOPS_PER_FRAME: usize = 4;
/// Samples are clamped to this magnitude (180 dB over full scale).
const MAX_ABS: f32 = 1e9;
/// Power floor before the logarithm: −100 dB re a full-scale sine.
const POWER_FLOOR: f32 = 1e-10;
/// Frames quieter than this RMS (−60 dBFS) are left out of the timbre.
const GATE_RMS: f32 = 1e-3;
const MIN_BPM: f64 = 30.0;
const MAX_BPM: f64 = 300.0;
/// Centre and width (octaves) of the log-normal tempo prior.
const PRIOR_BPM: f64 = 120.0;
const PRIOR_OCTAVES: f64 = 1.0;
/// Binomial smoothing of the onset envelope, newest value first.
const SMOOTH: [f64; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
/// Time constant of the moving average removed from the onset envelope.
const DETREND_SECS: f64 = 2.0;
/// Floor on the onset envelope's spread, in dB (see the module docs).
const ONSET_NOISE_DB: f64 = 0.1;
/// No beat is reported below a confidence of this over √(envelope length):
/// an aperiodic envelope of T values correlates by chance about 1/√T.
const MIN_CONFIDENCE: f64 = 3.0;
/// Multiples of the beat period used to refine it.
const MAX_MULTIPLE: usize = 12;

/// Features of one track; see the module documentation for the method.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Features {
    /// Tempo in beats per minute, 30..=300, or 0 when no beat was found.
    pub(crate) tempo_bpm: f64,
    /// How clearly the tempo stands out, 0..=1.
    pub(crate) tempo_confidence: f64,
    /// RMS of the whole signal (a full-scale sine is 0.707).
    pub(crate) energy: f64,
    /// Magnitude-weighted mean frequency over the whole track, in Hz.
    pub(crate) spectral_centroid_hz: f64,
    /// Sign changes per pair of consecutive samples, 0..1.
    pub(crate) zero_crossing_rate: f64,
    /// [`TIMBRE_LEN`] values: means of MFCC c0..c12, then their standard
    /// deviations.
    pub(crate) timbre: Vec<f64>,
}

/// Streaming extractor over mono samples at a fixed rate.
pub(crate) struct FeatureExtractor {
    rate: f64,
    frame_len: usize,
    hop: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// `|X|²` → power re a full-scale sine.
    power_norm: f32,
    /// The last `frame_len` samples; its final hop is being filled.
    frame: Vec<f32>,
    /// Samples of the final hop already filled.
    fill: usize,
    fft_in: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
    magnitude: Vec<f32>,
    bin_hz: Vec<f32>,
    mel: MelBank,
    /// Orthonormal DCT-II rows c0..c12.
    dct: Vec<[f64; N_MELS]>,
    log_mel: [f32; N_MELS],
    prev_log_mel: [f32; N_MELS],
    /// Frames analysed so far.
    frames: u64,
    samples: SampleStats,
    centroid_num: f64,
    centroid_den: f64,
    mfcc: Moments,
    tempo: TempoTracker,
}

impl fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeatureExtractor")
            .field("sample_rate", &self.rate)
            .field("frame_len", &self.frame_len)
            .field("hop", &self.hop)
            .field("samples", &(self.samples.count + self.fill as u64))
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl FeatureExtractor {
    /// `sample_rate` of the mono input; the pipeline passes 22_050, but it
    /// must work for 8_000..=48_000.
    pub(crate) fn new(sample_rate: u32) -> Self {
        let rate = f64::from(sample_rate.max(1));
        let exponent = (REF_FRAME * rate / REF_RATE).log2().round().clamp(6.0, 14.0) as u32;
        let frame_len = 1usize << exponent;
        let hop = frame_len / HOPS_PER_FRAME;
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(frame_len);
        let window = (0..frame_len)
            .map(|n| (0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / frame_len as f64).cos()) as f32)
            .collect();
        // A sine of amplitude A peaks at |X| = A·N/4 under a Hann window.
        let power_norm = (16.0 / (frame_len as f64 * frame_len as f64)) as f32;
        let bins = frame_len / 2 + 1;
        let dct = (0..N_MFCC)
            .map(|k| {
                let scale = if k == 0 { (1.0 / N_MELS as f64).sqrt() } else { (2.0 / N_MELS as f64).sqrt() };
                std::array::from_fn(|m| {
                    scale * (std::f64::consts::PI * k as f64 * (m as f64 + 0.5) / N_MELS as f64).cos()
                })
            })
            .collect();
        FeatureExtractor {
            rate,
            frame_len,
            hop,
            window,
            power_norm,
            frame: vec![0.0; frame_len],
            fill: 0,
            fft_in: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            power: vec![0.0; bins],
            magnitude: vec![0.0; bins],
            bin_hz: (0..bins).map(|k| (k as f64 * rate / frame_len as f64) as f32).collect(),
            mel: MelBank::new(rate, frame_len),
            dct,
            log_mel: [10.0 * POWER_FLOOR.log10(); N_MELS],
            prev_log_mel: [10.0 * POWER_FLOOR.log10(); N_MELS],
            frames: 0,
            samples: SampleStats::default(),
            centroid_num: 0.0,
            centroid_den: 0.0,
            mfcc: Moments::default(),
            tempo: TempoTracker::new(rate / hop as f64),
        }
    }

    /// Feed the next samples; called with chunks of any length.
    pub(crate) fn push(&mut self, mono: &[f32]) {
        let mut rest = mono;
        while !rest.is_empty() {
            let start = self.frame_len - self.hop + self.fill;
            let take = (self.hop - self.fill).min(rest.len());
            let (now, later) = rest.split_at(take);
            for (dst, &x) in self.frame[start..start + take].iter_mut().zip(now) {
                *dst = sanitize(x);
            }
            self.fill += take;
            rest = later;
            if self.fill == self.hop {
                self.advance();
            }
        }
    }

    /// Finish and return the features.
    pub(crate) fn finish(mut self) -> Features {
        if self.fill > 0 {
            let tail = self.frame_len - self.hop;
            self.frame[tail + self.fill..].fill(0.0);
            self.advance();
        }
        // Go on until the last sample has left the window: frames end at
        // multiples of the hop, and the frame ending at e holds e - N..e.
        let n = self.samples.count;
        if n > 0 {
            let frames = (n - 1 + self.frame_len as u64) / self.hop as u64;
            let tail = self.frame_len - self.hop;
            while self.frames < frames {
                self.frame[tail..].fill(0.0);
                self.analyse_frame();
                self.frame.copy_within(self.hop.., 0);
            }
        }
        let energy = if n > 0 { (self.samples.sum_sq / n as f64).sqrt() } else { 0.0 };
        let zero_crossing_rate = if n > 1 { self.samples.crossings as f64 / (n - 1) as f64 } else { 0.0 };
        let spectral_centroid_hz =
            if self.centroid_den > 0.0 { self.centroid_num / self.centroid_den } else { 0.0 };
        let (tempo_bpm, tempo_confidence) = self.tempo.estimate();
        Features {
            tempo_bpm: finite_or_zero(tempo_bpm),
            tempo_confidence: finite_or_zero(tempo_confidence),
            energy: finite_or_zero(energy),
            spectral_centroid_hz: finite_or_zero(spectral_centroid_hz),
            zero_crossing_rate: finite_or_zero(zero_crossing_rate),
            timbre: self.mfcc.timbre().into_iter().map(finite_or_zero).collect(),
        }
    }

    /// The final hop of `frame` holds `fill` new samples (zero-padded to a
    /// whole hop at the end): count them, analyse the frame, slide by a hop.
    fn advance(&mut self) {
        let tail = self.frame_len - self.hop;
        self.samples.add(&self.frame[tail..tail + self.fill]);
        self.analyse_frame();
        self.frame.copy_within(self.hop.., 0);
        self.fill = 0;
    }

    fn analyse_frame(&mut self) {
        let index = self.frames;
        self.frames += 1;
        for ((dst, &x), &w) in self.fft_in.iter_mut().zip(&self.frame).zip(&self.window) {
            *dst = x * w;
        }
        // Cannot fail: every buffer was made by this plan.
        if self.fft.process_with_scratch(&mut self.fft_in, &mut self.spectrum, &mut self.scratch).is_err() {
            return;
        }
        let norm = self.power_norm;
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = (c.re * c.re + c.im * c.im) * norm;
        }
        self.mel.log_levels(&self.power, &mut self.log_mel);
        // The first frames are partly padding: their rise is the track's
        // start, not an onset.
        if index >= (HOPS_PER_FRAME - 1) as u64 {
            let rise: f32 = self
                .log_mel
                .iter()
                .zip(&self.prev_log_mel)
                .map(|(&now, &before)| (now - before).max(0.0))
                .sum();
            self.tempo.push(f64::from(rise) / N_MELS as f64);
        }
        self.prev_log_mel = self.log_mel;
        if index.is_multiple_of(2) {
            self.analyse_timbre_frame();
        }
    }

    /// Centroid sums and MFCCs, every second frame.
    fn analyse_timbre_frame(&mut self) {
        for (m, &p) in self.magnitude.iter_mut().zip(&self.power) {
            *m = p.sqrt();
        }
        self.centroid_num += f64::from(dot(&self.magnitude, &self.bin_hz));
        self.centroid_den += f64::from(sum(&self.magnitude));
        if dot(&self.frame, &self.frame) < GATE_RMS * GATE_RMS * self.frame_len as f32 {
            return;
        }
        let mut c = [0.0; N_MFCC];
        for (ck, row) in c.iter_mut().zip(&self.dct) {
            *ck = row.iter().zip(&self.log_mel).map(|(&d, &l)| d * f64::from(l)).sum();
        }
        self.mfcc.push(&c);
    }
}

/// NaN → 0; anything else clamped to ±[`MAX_ABS`].
fn sanitize(x: f32) -> f32 {
    if x.is_nan() { 0.0 } else { x.clamp(-MAX_ABS, MAX_ABS) }
}

fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

/// Dot product with eight running sums: vectorisable, and the order of the
/// additions is fixed, so the result is deterministic.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

fn sum(a: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let a8 = a.chunks_exact(8);
    let rest: f32 = a8.remainder().iter().sum();
    for x in a8 {
        for (l, &x) in lanes.iter_mut().zip(x) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Per-sample statistics, updated a hop at a time.
#[derive(Debug, Default)]
struct SampleStats {
    count: u64,
    sum_sq: f64,
    crossings: u64,
    last_positive: Option<bool>,
}

impl SampleStats {
    fn add(&mut self, block: &[f32]) {
        let (Some(&first), Some(&last)) = (block.first(), block.last()) else { return };
        if self.last_positive.is_some_and(|positive| positive != (first >= 0.0)) {
            self.crossings += 1;
        }
        self.crossings += block.windows(2).filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0)).count() as u64;
        self.last_positive = Some(last >= 0.0);
        let mut lanes = [0.0f64; 4];
        let b4 = block.chunks_exact(4);
        let rest: f64 = b4.remainder().iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        for x in b4 {
            for (l, &x) in lanes.iter_mut().zip(x) {
                *l += f64::from(x) * f64::from(x);
            }
        }
        self.sum_sq += lanes.iter().sum::<f64>() + rest;
        self.count += block.len() as u64;
    }
}

/// Running means and standard deviations of the MFCCs (Welford).
#[derive(Debug, Default)]
struct Moments {
    n: u64,
    mean: [f64; N_MFCC],
    m2: [f64; N_MFCC],
}

impl Moments {
    fn push(&mut self, c: &[f64; N_MFCC]) {
        self.n += 1;
        let n = self.n as f64;
        for ((mean, m2), &x) in self.mean.iter_mut().zip(&mut self.m2).zip(c) {
            let d = x - *mean;
            *mean += d / n;
            *m2 += d * (x - *mean);
        }
    }

    fn timbre(&self) -> Vec<f64> {
        if self.n == 0 {
            return vec![0.0; TIMBRE_LEN];
        }
        let n = self.n as f64;
        self.mean.iter().copied().chain(self.m2.iter().map(|&m2| (m2 / n).max(0.0).sqrt())).collect()
    }
}

/// Triangular filters on the Slaney mel scale, 0 Hz to Nyquist.
#[derive(Debug)]
struct MelBank {
    /// Per band: first FFT bin and weights summing to 1.
    bands: Vec<(usize, Vec<f32>)>,
}

impl MelBank {
    fn new(rate: f64, frame_len: usize) -> Self {
        let bins = frame_len / 2 + 1;
        let top = hz_to_mel(rate / 2.0);
        let edges: Vec<f64> =
            (0..N_MELS + 2).map(|i| mel_to_hz(top * i as f64 / (N_MELS + 1) as f64)).collect();
        let bin_hz = |k: usize| k as f64 * rate / frame_len as f64;
        let bands = edges
            .windows(3)
            .map(|e| {
                let (lo, centre, hi) = (e[0], e[1], e[2]);
                let weight = |k: usize| {
                    ((bin_hz(k) - lo) / (centre - lo)).min((hi - bin_hz(k)) / (hi - centre)).max(0.0)
                };
                let first = (0..bins).find(|&k| weight(k) > 0.0);
                let Some(first) = first else {
                    // Narrower than a bin: take the nearest bin.
                    let nearest = ((centre * frame_len as f64 / rate).round() as usize).min(bins - 1);
                    return (nearest, vec![1.0]);
                };
                let weights: Vec<f64> = (first..bins).map(weight).take_while(|&w| w > 0.0).collect();
                let total: f64 = weights.iter().sum();
                (first, weights.iter().map(|&w| (w / total) as f32).collect())
            })
            .collect();
        MelBank { bands }
    }

    /// Band levels in dB, floored at −100 dB.
    fn log_levels(&self, power: &[f32], out: &mut [f32; N_MELS]) {
        for (level, (first, weights)) in out.iter_mut().zip(&self.bands) {
            let p = power.get(*first..first + weights.len()).map_or(0.0, |bins| dot(bins, weights));
            *level = 10.0 * p.max(POWER_FLOOR).log10();
        }
    }
}

/// Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, then
/// logarithmic (27 mels per factor 6.4).
fn hz_to_mel(hz: f64) -> f64 {
    if hz < 1000.0 { hz * 3.0 / 200.0 } else { 15.0 + (hz / 1000.0).ln() * 27.0 / 6.4f64.ln() }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel < 15.0 { mel * 200.0 / 3.0 } else { 1000.0 * ((mel - 15.0) * 6.4f64.ln() / 27.0).exp() }
}

/// Onset envelope → running autocorrelation → tempo.
#[derive(Debug)]
struct TempoTracker {
    /// Envelope values per second.
    fps: f64,
    /// Weight of the newest value in the moving average.
    alpha: f64,
    /// The latest raw onset strengths, newest first.
    recent: [f64; SMOOTH.len()],
    pushed: u64,
    mean: f64,
    /// `history[l]`: the detrended envelope `l` hops ago.
    history: Vec<f64>,
    /// `acf[l] = Σ u(t)·u(t−l)`.
    acf: Vec<f64>,
}

impl TempoTracker {
    fn new(fps: f64) -> Self {
        let lags = (60.0 * fps / MIN_BPM).ceil() as usize + 3;
        TempoTracker {
            fps,
            alpha: 1.0 / (DETREND_SECS * fps).max(1.0),
            recent: [0.0; SMOOTH.len()],
            pushed: 0,
            mean: 0.0,
            history: vec![0.0; lags],
            acf: vec![0.0; lags],
        }
    }

    fn push(&mut self, onset: f64) {
        if self.pushed == 0 {
            self.recent = [onset; SMOOTH.len()];
        } else {
            self.recent.copy_within(..SMOOTH.len() - 1, 1);
            self.recent[0] = onset;
        }
        let smooth: f64 = SMOOTH.iter().zip(&self.recent).map(|(k, x)| k * x).sum();
        self.pushed += 1;
        // A plain running mean until the average spans its time constant.
        self.mean += (1.0 / self.pushed as f64).max(self.alpha) * (smooth - self.mean);
        let u = smooth - self.mean;
        let last = self.history.len() - 1;
        self.history.copy_within(..last, 1);
        self.history[0] = u;
        for (a, &h) in self.acf.iter_mut().zip(&self.history) {
            *a += u * h;
        }
    }

    /// `(bpm, confidence)`, or zeros when no beat stands out.
    fn estimate(&self) -> (f64, f64) {
        let acf = &self.acf;
        let denom = acf[0] + self.pushed as f64 * ONSET_NOISE_DB * ONSET_NOISE_DB;
        if !(denom > 0.0 && denom.is_finite()) {
            return (0.0, 0.0);
        }
        let lo = ((60.0 * self.fps / MAX_BPM).floor() as usize).max(2);
        let hi = ((60.0 * self.fps / MIN_BPM).ceil() as usize).min(acf.len() - 2);
        let mut best: Option<(usize, f64)> = None;
        for lag in lo..=hi {
            let y = acf[lag];
            if y > 0.0 && y >= acf[lag - 1] && y >= acf[lag + 1] {
                let score = y * prior(60.0 * self.fps / lag as f64);
                if best.is_none_or(|(_, s)| score > s) {
                    best = Some((lag, score));
                }
            }
        }
        let Some((lag, _)) = best else { return (0.0, 0.0) };
        let (period, peak) = parabolic_peak(acf, lag);
        let confidence = (peak / denom).clamp(0.0, 1.0);
        if confidence < MIN_CONFIDENCE / (self.pushed as f64).sqrt() {
            return (0.0, 0.0);
        }
        // Refine with the peaks near the period's multiples: their error
        // does not grow with k, so the period's shrinks as 1/k.
        let (mut num, mut den) = (period, 1.0);
        for k in 2..=MAX_MULTIPLE {
            let centre = (k as f64 * period).round() as usize;
            if centre + 3 >= acf.len() {
                break;
            }
            let Some(j) = (centre - 2..=centre + 2).max_by(|&a, &b| acf[a].total_cmp(&acf[b])) else { break };
            if j == centre - 2 || j == centre + 2 || acf[j] < 0.3 * peak {
                continue;
            }
            num += k as f64 * parabolic_peak(acf, j).0;
            den += (k * k) as f64;
        }
        ((60.0 * self.fps / (num / den)).clamp(MIN_BPM, MAX_BPM), confidence)
    }
}

/// Perceptual tempo prior: log-normal around [`PRIOR_BPM`].
fn prior(bpm: f64) -> f64 {
    let octaves = (bpm / PRIOR_BPM).log2() / PRIOR_OCTAVES;
    (-0.5 * octaves * octaves).exp()
}

/// Vertex `(position, value)` of the parabola through `y[i-1..=i+1]`.
fn parabolic_peak(y: &[f64], i: usize) -> (f64, f64) {
    let at = |j: Option<usize>| j.and_then(|j| y.get(j)).copied();
    let (Some(a), Some(b), Some(c)) = (at(i.checked_sub(1)), at(Some(i)), at(i.checked_add(1))) else {
        return (i as f64, y.get(i).copied().unwrap_or(0.0));
    };
    let curvature = a - 2.0 * b + c;
    if curvature.is_nan() || curvature >= 0.0 {
        return (i as f64, b);
    }
    let delta = (0.5 * (a - c) / curvature).clamp(-0.5, 0.5);
    (i as f64 + delta, b - 0.25 * (a - c) * delta)
}

#[cfg(test)]
mod tests;
