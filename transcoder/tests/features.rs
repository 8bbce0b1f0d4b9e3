//! Audio features through the whole pipeline: masters with known answers
//! (a click track, a pure tone, white noise) are transcoded and the
//! manifest's `features` checked against those answers. Features are
//! computed on the master mixed to mono at 22.05 kHz.

mod signals;

use cadenza_config::manifest::{Manifest, TIMBRE_LEN};
use cadenza_transcoder::ogg::frames_to_ms;
use cadenza_transcoder::synth::write_wav;
use cadenza_transcoder::transcode;
use signals::{Rng, sine};

/// Transcode `planes` written as a 16-bit WAV at `rate`; check what every
/// manifest's features must satisfy; return the manifest.
fn manifest_of(name: &str, planes: &[Vec<f32>], rate: u32) -> Manifest {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.wav"));
    write_wav(&path, planes, rate, 16).unwrap();
    let t = transcode(&path, &format!("trk-{name}").parse().unwrap()).unwrap();
    let m = t.manifest.clone();
    let f = &m.features;
    println!(
        "{name}: tempo {} BPM (confidence {}), centroid {} Hz, ZCR {}, energy {}, timbre {:?}",
        f.tempo_bpm, f.tempo_confidence, f.spectral_centroid_hz, f.zero_crossing_rate, f.energy, f.timbre
    );
    assert_eq!(f.duration_ms, m.source.duration_ms);
    assert_eq!(f.duration_ms, frames_to_ms(planes[0].len() as u64, rate));
    assert_eq!(f.integrated_lufs, m.loudness.integrated_lufs);
    assert_eq!(f.loudness_range_lu, m.loudness.loudness_range_lu);
    assert_eq!(f.timbre.len(), TIMBRE_LEN);
    assert!(f.timbre.iter().all(|x| x.is_finite()), "{:?}", f.timbre);
    assert!(f.timbre[TIMBRE_LEN / 2..].iter().all(|&sd| sd >= 0.0), "deviations are never negative");
    assert!((0.0..=1.0).contains(&f.tempo_confidence) && (0.0..=1.0).contains(&f.zero_crossing_rate));
    // The manifest survives JSON exactly (every float reads back bit for
    // bit), and the JSON has no nulls (non-finite numbers).
    let json = serde_json::to_string(&m).unwrap();
    assert!(!json.contains("null"), "{json}");
    let back: Manifest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    assert_eq!(serde_json::from_str::<Manifest>(&serde_json::to_string_pretty(&m).unwrap()).unwrap(), m);
    m
}

fn within(x: f64, want: f64, fraction: f64) -> bool {
    (x - want).abs() <= want.abs() * fraction
}

#[test]
fn a_click_track_at_120_bpm_reads_120_bpm() {
    // 25 s, a click every half second: a burst of noise decaying with a
    // 4.5 ms time constant, 45 ms long; the same in both channels.
    let rate = 44_100u32;
    let n = 25 * rate as usize;
    let beat = rate as usize / 2;
    let mut rng = Rng::new(5);
    let click: Vec<f32> = (0..n)
        .map(|i| {
            let k = i % beat;
            if k < 2_000 { 0.8 * (-(k as f32) / 200.0).exp() * rng.uniform() } else { 0.0 }
        })
        .collect();
    let m = manifest_of("click", &[click.clone(), click], rate);
    let f = &m.features;
    assert!((f.tempo_bpm - 120.0).abs() <= 1.0, "tempo {} BPM", f.tempo_bpm);
    assert!(f.tempo_confidence > 0.5, "confidence {}", f.tempo_confidence);
}

#[test]
fn a_click_track_at_100_bpm_reads_100_bpm() {
    // Away from the prior's 120 BPM, and a beat that is not a whole number
    // of analysis hops (0.6 s = 51.7 hops of 256 samples at 22.05 kHz).
    let rate = 44_100u32;
    let n = 24 * rate as usize;
    let beat = rate as usize * 6 / 10;
    let mut rng = Rng::new(6);
    let click: Vec<f32> = (0..n)
        .map(|i| {
            let k = i % beat;
            if k < 2_000 { 0.8 * (-(k as f32) / 200.0).exp() * rng.uniform() } else { 0.0 }
        })
        .collect();
    let m = manifest_of("click100", &[click.clone(), click], rate);
    let f = &m.features;
    assert!((f.tempo_bpm - 100.0).abs() <= 1.0, "tempo {} BPM", f.tempo_bpm);
    assert!(f.tempo_confidence > 0.5, "confidence {}", f.tempo_confidence);
}

#[test]
fn a_tone_and_white_noise_have_their_known_brightness_noisiness_and_timbre() {
    // 1 kHz at −6 dBFS, 44.1 kHz stereo, 10 s.
    let rate = 44_100u32;
    let tone = sine(1_000.0, 0.5, rate, 10.0);
    let t = manifest_of("tone", &[tone.clone(), tone], rate);
    let f = &t.features;
    assert!(within(f.spectral_centroid_hz, 1_000.0, 0.03), "centroid {}", f.spectral_centroid_hz);
    let zcr = 2.0 * 1_000.0 / 22_050.0;
    assert!(within(f.zero_crossing_rate, zcr, 0.03), "ZCR {} vs {zcr}", f.zero_crossing_rate);
    assert!(f.tempo_confidence < 0.1, "a steady tone has no beat: {}", f.tempo_confidence);
    assert!(within(f.energy, 0.5 * std::f64::consts::FRAC_1_SQRT_2, 0.03), "energy {}", f.energy);

    // White noise, independent per channel, at 22.05 kHz (the analysis
    // rate itself: no resampler between the noise and the extractor, so
    // its spectrum is flat up to Nyquist): centroid at a quarter of the
    // rate, a sign change every other sample.
    let rate = 22_050u32;
    let (mut a, mut b) = (Rng::new(8), Rng::new(9));
    let l: Vec<f32> = (0..10 * rate).map(|_| 0.3 * a.uniform()).collect();
    let r: Vec<f32> = (0..10 * rate).map(|_| 0.3 * b.uniform()).collect();
    let w = manifest_of("noise22k", &[l, r], rate);
    let g = &w.features;
    assert!(within(g.spectral_centroid_hz, 5_512.5, 0.03), "centroid {}", g.spectral_centroid_hz);
    assert!((g.zero_crossing_rate - 0.5).abs() <= 0.02, "ZCR {}", g.zero_crossing_rate);
    assert!(g.tempo_confidence < 0.1, "noise has no beat: {}", g.tempo_confidence);

    // Timbre: a flat spectrum has a flat cepstrum (every mean MFCC but c0
    // near zero); a lone tone's is anything but. And the two differ.
    let shape = |x: &[f64]| x[1..TIMBRE_LEN / 2].iter().fold(0.0f64, |m, c| m.max(c.abs()));
    println!("largest mean c1..c12: tone {:.2}, noise {:.2}", shape(&f.timbre), shape(&g.timbre));
    assert!(shape(&g.timbre) < 3.0, "noise: {:?}", g.timbre);
    assert!(shape(&f.timbre) > 20.0, "tone: {:?}", f.timbre);
    let distance = f.timbre.iter().zip(&g.timbre).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    assert!(distance > 50.0, "timbre distance {distance}");
}

/// White noise at 44.1 kHz: mixed to mono at 22.05 kHz, its spectrum
/// should stay flat to (nearly) 11 kHz, so its centroid should be near
/// 5512 Hz as at 22.05 kHz. It measures 4929 Hz (−10.6 %) and a ZCR of
/// 0.458, because the resampler's anti-aliasing filter cuts off at 0.895 of
/// the output's Nyquist frequency (9.9 kHz).
#[test]
fn white_noise_at_44_1_khz_is_as_bright_as_at_22_05_khz() {
    let rate = 44_100u32;
    let (mut a, mut b) = (Rng::new(8), Rng::new(9));
    let l: Vec<f32> = (0..10 * rate).map(|_| 0.3 * a.uniform()).collect();
    let r: Vec<f32> = (0..10 * rate).map(|_| 0.3 * b.uniform()).collect();
    let w = manifest_of("noise44k", &[l, r], rate);
    let g = &w.features;
    assert!((g.zero_crossing_rate - 0.5).abs() <= 0.05, "ZCR {}", g.zero_crossing_rate);
    assert!(within(g.spectral_centroid_hz, 5_512.5, 0.10), "centroid {}", g.spectral_centroid_hz);
}
