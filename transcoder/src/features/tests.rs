//! Tests of the feature extractor on synthetic signals whose answer is known.
use super::*;

/// SplitMix64: a deterministic PRNG for test signals.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [−1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn extract(rate: u32, x: &[f32]) -> Features {
    let mut e = FeatureExtractor::new(rate);
    e.push(x);
    e.finish()
}

fn sine(rate: u32, hz: f64, amplitude: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (amplitude * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

fn noise(seed: u64, amplitude: f32, n: usize) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n).map(|_| amplitude * rng.uniform()).collect()
}

/// 2 kHz blips decaying with a 5 ms time constant, over faint noise.
fn clicks(rate: u32, bpm: f64, secs: f64) -> Vec<f32> {
    let r = f64::from(rate);
    let mut x = noise(7, 0.005, (secs * r) as usize);
    let blip = (0.04 * r) as usize;
    for k in 0.. {
        let start = (f64::from(k) * 60.0 / bpm * r).round() as usize;
        if start >= x.len() {
            break;
        }
        for (j, s) in x[start..].iter_mut().take(blip).enumerate() {
            let t = j as f64 / r;
            *s += (0.8 * (-t / 0.005).exp() * (std::f64::consts::TAU * 2000.0 * t).sin()) as f32;
        }
    }
    x
}

/// Decaying harmonic notes every 250 ms, a noise-burst drum every
/// 500 ms, a faint noise floor; `n` samples.
fn music(rate: u32, n: usize) -> Vec<f32> {
    let r = f64::from(rate);
    let mut rng = Rng(42);
    let mut x = noise(3, 0.01, n);
    let scale = [220.0, 246.9, 277.2, 329.6, 370.0, 440.0, 493.9];
    for (i, note) in x.chunks_mut(rate as usize / 4).enumerate() {
        let f = scale[(rng.next_u64() % scale.len() as u64) as usize];
        for (j, s) in note.iter_mut().enumerate() {
            let t = j as f64 / r;
            let phase = std::f64::consts::TAU * f * t;
            let tone = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
            let drum = if i % 2 == 0 { 0.5 * (-t / 0.01).exp() * f64::from(rng.uniform()) } else { 0.0 };
            *s += (0.3 * (-6.0 * t).exp() * tone + drum) as f32;
        }
    }
    x
}

fn assert_sane(f: &Features) {
    assert_eq!(f.timbre.len(), TIMBRE_LEN);
    for v in [f.tempo_bpm, f.tempo_confidence, f.energy, f.spectral_centroid_hz, f.zero_crossing_rate]
        .into_iter()
        .chain(f.timbre.iter().copied())
    {
        assert!(v.is_finite(), "{f:?}");
    }
    assert!(f.tempo_bpm == 0.0 || (MIN_BPM..=MAX_BPM).contains(&f.tempo_bpm), "{f:?}");
    assert!((0.0..=1.0).contains(&f.tempo_confidence), "{f:?}");
    assert!((0.0..=1.0).contains(&f.zero_crossing_rate), "{f:?}");
    assert!(f.energy >= 0.0 && f.spectral_centroid_hz >= 0.0, "{f:?}");
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

#[test]
fn extractor_is_send_and_debug() {
    fn send<T: Send>(_: &T) {}
    let e = FeatureExtractor::new(22_050);
    send(&e);
    assert!(format!("{e:?}").contains("frame_len: 1024"));
}

#[test]
fn sine_1khz() {
    let f = extract(22_050, &sine(22_050, 1000.0, 0.5, 20 * 22_050));
    println!("1 kHz sine: {f:?}");
    assert_sane(&f);
    assert!((f.spectral_centroid_hz - 1000.0).abs() < 20.0, "{f:?}");
    let zcr = 2.0 * 1000.0 / 22_050.0;
    assert!((f.zero_crossing_rate - zcr).abs() < 0.01 * zcr, "{f:?}");
    assert!((f.energy - 0.5 / 2f64.sqrt()).abs() < 0.001, "{f:?}");
    // A steady tone has no onsets: no beat at all.
    assert!(f.tempo_confidence < 0.05, "{f:?}");
}

#[test]
fn white_noise() {
    let a = 0.5;
    let f = extract(22_050, &noise(1, a, 20 * 22_050));
    println!("white noise: {f:?}");
    assert_sane(&f);
    assert!((f.spectral_centroid_hz - 5512.5).abs() < 0.05 * 5512.5, "{f:?}");
    assert!((f.zero_crossing_rate - 0.5).abs() < 0.02, "{f:?}");
    let rms = f64::from(a) / 3f64.sqrt();
    assert!((f.energy - rms).abs() < 0.01 * rms, "{f:?}");
    // Chance correlation only (about 2/√T, T ≈ 1700 hops).
    assert!(f.tempo_confidence < 0.1, "{f:?}");
}

fn check_tempo(rate: u32, bpm: f64, tolerance: f64) -> Features {
    let f = extract(rate, &clicks(rate, bpm, 30.0));
    println!("{bpm} BPM clicks at {rate} Hz: {} BPM, confidence {}", f.tempo_bpm, f.tempo_confidence);
    assert_sane(&f);
    assert!((f.tempo_bpm - bpm).abs() <= tolerance, "{bpm}: {f:?}");
    assert!(f.tempo_confidence > 0.5, "{bpm}: {f:?}");
    f
}

#[test]
fn click_tracks() {
    check_tempo(22_050, 120.0, 1.0);
    check_tempo(22_050, 90.0, 1.5);
    check_tempo(22_050, 150.0, 1.5);
    check_tempo(44_100, 120.0, 1.0);
}

#[test]
fn click_tracks_far_from_the_prior() {
    for bpm in [45.0, 60.0, 75.0, 100.0, 133.0, 165.0] {
        check_tempo(22_050, bpm, 1.0);
    }
}

#[test]
fn uniform_pulse_above_170_bpm_is_heard_at_half_tempo() {
    // Every second click is as periodic as every click, and above
    // 120·√2 BPM the prior prefers the half, as librosa's does.
    let f = extract(22_050, &clicks(22_050, 200.0, 30.0));
    assert!((f.tempo_bpm - 100.0).abs() < 1.0, "{f:?}");
}

#[test]
fn beat_confidence_beats_tone_and_noise() {
    let n = 30 * 22_050;
    let beat = extract(22_050, &clicks(22_050, 120.0, 30.0)).tempo_confidence;
    let tone = extract(22_050, &sine(22_050, 1000.0, 0.5, n)).tempo_confidence;
    let hiss = extract(22_050, &noise(9, 0.5, n)).tempo_confidence;
    println!("confidence: clicks {beat}, tone {tone}, noise {hiss}");
    assert!(beat > tone.max(hiss) + 0.5);
}

#[test]
fn level_moves_only_c0() {
    // A whole number of MFCC hops, so that the gate decides alike.
    let x = music(22_050, 800 * 512);
    let gain = 10f32.powf(-6.0 / 20.0);
    let quiet: Vec<f32> = x.iter().map(|&s| s * gain).collect();
    let (a, b) = (extract(22_050, &x), extract(22_050, &quiet));
    let shift = b.timbre[0] - a.timbre[0];
    let rest = (1..TIMBRE_LEN).map(|k| (a.timbre[k] - b.timbre[k]).abs()).fold(0.0, f64::max);
    println!("-6 dB: c0 mean moved by {shift}, the other 25 by at most {rest}");
    assert!((shift + 6.0 * (N_MELS as f64).sqrt()).abs() < 0.01, "c0 moved by {shift}");
    for k in 1..TIMBRE_LEN {
        assert!((a.timbre[k] - b.timbre[k]).abs() < 1e-3, "timbre[{k}]: {a:?} vs {b:?}");
    }
    assert!((a.spectral_centroid_hz - b.spectral_centroid_hz).abs() < 1e-3 * a.spectral_centroid_hz);
    assert!((a.tempo_bpm - b.tempo_bpm).abs() < 0.01);
}

#[test]
fn tone_and_noise_timbres_differ() {
    let tone = extract(22_050, &sine(22_050, 1000.0, 0.5, 5 * 22_050));
    let hiss = extract(22_050, &noise(5, 0.5, 5 * 22_050));
    let d = distance(&tone.timbre, &hiss.timbre);
    println!("timbre distance tone–noise: {d}");
    assert_sane(&tone);
    assert_sane(&hiss);
    assert!(d > 1.0);
}

#[test]
fn chunking_does_not_matter() {
    let mut x = music(22_050, 10 * 22_050 + 123);
    x.extend(clicks(22_050, 128.0, 3.0));
    let whole = extract(22_050, &x);
    assert_sane(&whole);
    for chunk in [1, 7, 100, 4096] {
        let mut e = FeatureExtractor::new(22_050);
        for c in x.chunks(chunk) {
            e.push(c);
        }
        assert_eq!(e.finish(), whole, "chunks of {chunk}");
    }
}

#[test]
fn silence_around_the_music_keeps_centroid_and_timbre() {
    // Silences of whole MFCC hops: the same frames, plus silent ones.
    let x = music(22_050, 5 * 22_050 + 77);
    let mut padded = vec![0.0; 20 * 512];
    padded.extend(&x);
    padded.extend(vec![0.0; 30 * 512]);
    let (a, b) = (extract(22_050, &x), extract(22_050, &padded));
    assert_eq!(a.timbre, b.timbre);
    assert_eq!(a.spectral_centroid_hz, b.spectral_centroid_hz);
    assert!(b.energy < a.energy);
}

#[test]
fn silence_and_tiny_inputs() {
    let zero = Features {
        tempo_bpm: 0.0,
        tempo_confidence: 0.0,
        energy: 0.0,
        spectral_centroid_hz: 0.0,
        zero_crossing_rate: 0.0,
        timbre: vec![0.0; TIMBRE_LEN],
    };
    assert_eq!(extract(22_050, &vec![0.0; 10 * 22_050]), zero);
    assert_eq!(extract(22_050, &[]), zero);
    assert_eq!(FeatureExtractor::new(22_050).finish(), zero);
    let one = extract(22_050, &[0.5]);
    println!("one sample: {one:?}");
    assert_sane(&one);
    assert_eq!(one.energy, 0.5);
    assert_eq!(one.zero_crossing_rate, 0.0);
    assert_eq!(one.tempo_bpm, 0.0);
    // An impulse has a flat spectrum.
    assert!((one.spectral_centroid_hz - 5512.5).abs() < 1.0, "{one:?}");
}

#[test]
fn extreme_inputs_stay_finite() {
    let n = 3 * 22_050;
    let square: Vec<f32> = (0..n).map(|i| if (i / 50) % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let f = extract(22_050, &square);
    assert_sane(&f);
    assert!((f.energy - 1.0).abs() < 1e-12 && f.spectral_centroid_hz > 220.0, "{f:?}");
    let dc = extract(22_050, &vec![1.0; n]);
    assert_sane(&dc);
    // Only the frames where the signal starts and stops see more than DC.
    assert!(dc.spectral_centroid_hz < 100.0 && dc.zero_crossing_rate == 0.0, "{dc:?}");
    let huge: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { f32::MAX } else { -f32::MAX }).collect();
    assert_sane(&extract(22_050, &huge));
    let tiny: Vec<f32> = noise(4, f32::MIN_POSITIVE, n);
    assert_sane(&extract(22_050, &tiny));
    let broken = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.1, f32::NAN, -0.3, f32::MAX, 1e-40];
    let mut junk = Vec::new();
    while junk.len() < n {
        junk.extend_from_slice(&broken);
    }
    assert_sane(&extract(22_050, &junk));
    for rate in [0, 1, 100, 8_000, 48_000, 96_000, 384_000] {
        assert_sane(&extract(rate, &square));
    }
}

#[test]
fn other_rates() {
    for rate in [8_000, 16_000, 32_000, 44_100, 48_000] {
        let n = 10 * rate as usize;
        let tone = extract(rate, &sine(rate, 1000.0, 0.5, n));
        println!("1 kHz sine at {rate} Hz: {tone:?}");
        assert_sane(&tone);
        assert!((tone.spectral_centroid_hz - 1000.0).abs() < 20.0, "{rate}: {tone:?}");
        let zcr = 2000.0 / f64::from(rate);
        assert!((tone.zero_crossing_rate - zcr).abs() < 0.01 * zcr, "{rate}: {tone:?}");
        assert!((tone.energy - 0.3536).abs() < 0.001, "{rate}: {tone:?}");
        let hiss = extract(rate, &noise(2, 0.5, n));
        assert!((hiss.spectral_centroid_hz / (f64::from(rate) / 4.0) - 1.0).abs() < 0.05, "{hiss:?}");
        assert!(distance(&tone.timbre, &hiss.timbre) > 1.0);
    }
    check_tempo(8_000, 120.0, 1.0);
    check_tempo(48_000, 100.0, 1.0);
}

/// CPU cost: one hour of 22.05 kHz music-like audio, in 4096-sample
/// chunks. Run with `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn cost_per_hour() {
    let x = music(22_050, 60 * 22_050);
    let start = std::time::Instant::now();
    let mut e = FeatureExtractor::new(22_050);
    for _ in 0..60 {
        for c in x.chunks(4096) {
            e.push(c);
        }
    }
    let f = e.finish();
    println!("one hour of audio: {:.3} s wall; {f:?}", start.elapsed().as_secs_f64());
}
