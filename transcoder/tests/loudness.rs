//! Per-rendition loudness: each file is measured as decoded, and its gain
//! comes from its own loudness, not the master's.
//!
//! The master here has a lot of decorrelated side content (independent
//! pink noise in each channel, a little white noise on top) and some tones
//! in the middle. The 24 kbps rung is mono, `(L + R) / 2`: the tones
//! survive, but two independent noises of equal power average to half the
//! power, so that rung must measure clearly quieter than the master (and
//! get a correspondingly larger gain), while the stereo rungs keep the
//! master's loudness.

mod signals;

use cadenza_config::ladder::Rung;
use cadenza_config::manifest::{Loudness, Manifest};
use cadenza_transcoder::synth::write_wav;
use cadenza_transcoder::{gain_db, transcode};
use ebur128::{Channel, EbuR128, Mode};
use signals::{Pink, Rng, decode_ogg_pcm, power_db, sine};

const RATE: u32 = 44_100;
const SECONDS: f64 = 8.0;

/// The master's planes: independent noise per channel plus shared tones.
fn wide_master() -> Vec<Vec<f32>> {
    let (mut pink_l, mut pink_r) = (Pink::new(1), Pink::new(2));
    let (mut white_l, mut white_r) = (Rng::new(3), Rng::new(4));
    let low = sine(440.0, 0.1, RATE, SECONDS);
    let high = sine(3_520.0, 0.033, RATE, SECONDS);
    let (pink, white) = (0.5, 0.03);
    let mut l = Vec::with_capacity(low.len());
    let mut r = Vec::with_capacity(low.len());
    for (a, b) in low.iter().zip(&high) {
        l.push(pink * pink_l.next() + white * white_l.uniform() + a + b);
        r.push(pink * pink_r.next() + white * white_r.uniform() + a + b);
    }
    vec![l, r]
}

/// EBU R128 of decoded planes, measured here with the meter configured by
/// this test (mono as dual mono, as it is played), not by the transcoder.
fn measure(planes: &[Vec<f32>], rate: u32) -> (f64, f64) {
    let mut meter = EbuR128::new(planes.len() as u32, rate, Mode::I | Mode::TRUE_PEAK).unwrap();
    if planes.len() == 1 {
        meter.set_channel(0, Channel::DualMono).unwrap();
    }
    let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
    meter.add_frames_planar_f32(&refs).unwrap();
    let peak = (0..planes.len() as u32).map(|c| meter.true_peak(c).unwrap()).fold(0.0, f64::max);
    (meter.loudness_global().unwrap(), 20.0 * peak.log10())
}

/// The gain is limited by loudness, not by the peak: `−14 − I`.
fn loudness_limited(l: &Loudness) -> bool {
    (l.gain_db - (-14.0 - l.integrated_lufs)).abs() < 0.0051
}

#[test]
fn each_rendition_carries_its_own_loudness_and_gain() {
    let dir = tempfile::tempdir().unwrap();
    let planes = wide_master();
    let path = dir.path().join("wide.wav");
    write_wav(&path, &planes, RATE, 24).unwrap();
    let t = transcode(&path, &"trk-wide".parse().unwrap()).unwrap();
    let m: &Manifest = &t.manifest;
    let master = m.loudness;
    println!("master: {master:?}");
    assert!((master.gain_db - gain_db(master.integrated_lufs, master.true_peak_dbtp)).abs() < 0.0051);
    assert!(loudness_limited(&master), "the test wants a loudness-limited gain: {master:?}");

    for r in &m.renditions {
        let l = r.loudness;
        let diff = l.integrated_lufs - master.integrated_lufs;
        println!(
            "{:>3} kbps: {:.2} LUFS ({diff:+.2} LU vs master), TP {:.2} dBTP, gain {:+.2} dB (master {:+.2})",
            r.bitrate_kbps, l.integrated_lufs, l.true_peak_dbtp, l.gain_db, master.gain_db
        );
        // Its gain is the rule applied to its own numbers.
        assert!((l.gain_db - gain_db(l.integrated_lufs, l.true_peak_dbtp)).abs() < 0.0051, "{l:?}");
        assert!(loudness_limited(&l), "{}: {l:?}", r.bitrate_kbps);
        if r.bitrate_kbps == Rung::K24 {
            assert!(diff <= -1.5, "24 kbps mono should measure well below the master: {diff:+.2} LU");
            // So its gain is larger by as much.
            let more = l.gain_db - master.gain_db;
            assert!((more + diff).abs() < 0.011, "gain {more:+.2} dB more for {diff:+.2} LU less");
        } else {
            assert!(diff.abs() <= 0.5, "{}: {diff:+.2} LU from the master", r.bitrate_kbps);
        }
    }

    // Decode the 24 and the 320 with a real decoder. (1) Metered here, they
    // read what the manifest says: the numbers are the files' loudness as
    // played. (2) Without any meter: the plain power of the decoded audio
    // (channel powers summed, mono counted on both speakers) moves the same
    // way as the manifest's loudness, by about as much: the 24 kbps file
    // really is quieter than the master and the 320 is not. (K-weighting
    // only reshapes the spectrum, and the noise is decorrelated at every
    // frequency, so the two measures agree to within a dB or so.)
    let master_power = power_db(&planes);
    for (i, r) in m.renditions.iter().enumerate() {
        if ![Rung::K24, Rung::K320].contains(&r.bitrate_kbps) {
            continue;
        }
        let pcm = decode_ogg_pcm(&t.read_file(i).unwrap());
        assert_eq!(pcm.planes.len(), usize::from(r.channels));
        assert_eq!(pcm.sample_rate, r.sample_rate);
        assert_eq!(pcm.planes[0].len() as u64, r.frames);
        let (lufs, tp) = measure(&pcm.planes, pcm.sample_rate);
        println!(
            "{:>3} kbps decoded here: {lufs:.3} LUFS, TP {tp:.3} dBTP (manifest {:.2} / {:.2})",
            r.bitrate_kbps, r.loudness.integrated_lufs, r.loudness.true_peak_dbtp
        );
        assert!((lufs - r.loudness.integrated_lufs).abs() < 0.01, "{}: {lufs}", r.bitrate_kbps);
        assert!((tp - r.loudness.true_peak_dbtp).abs() < 0.01, "{}: {tp}", r.bitrate_kbps);

        let mut power = power_db(&pcm.planes);
        if pcm.planes.len() == 1 {
            power += 10.0 * 2f64.log10();
        }
        let moved = power - master_power;
        let claimed = r.loudness.integrated_lufs - master.integrated_lufs;
        println!(
            "{:>3} kbps: power {moved:+.2} dB vs the master's; the manifest says {claimed:+.2} LU",
            r.bitrate_kbps
        );
        if r.bitrate_kbps == Rung::K24 {
            assert!(moved <= -1.5, "24: {moved:+.2} dB");
        } else {
            assert!(moved.abs() <= 0.5, "320: {moved:+.2} dB");
        }
        assert!(
            (moved - claimed).abs() < 1.0,
            "{}: power {moved:+.2} dB, loudness {claimed:+.2} LU",
            r.bitrate_kbps
        );
    }

    // Where the 24's drop comes from: mostly the mixdown. The master's own
    // mid channel, `(L + R) / 2` at 44.1 kHz, metered here as dual mono, is
    // already well below the master; the 24 kbps file is below that by
    // what libvorbis loses at 24 kbps on any material (about 1.4 dB: the
    // same on a pure tone, which has no mixdown loss; libvorbis' own
    // decoder, ffmpeg and symphonia all agree on it).
    let mid: Vec<f32> = planes[0].iter().zip(&planes[1]).map(|(l, r)| (l + r) / 2.0).collect();
    let (mid_lufs, _) = measure(&[mid], RATE);
    let k24 = m.rendition(Rung::K24).unwrap().loudness.integrated_lufs;
    println!("mid of the master: {mid_lufs:.2} LUFS; master {:.2}; 24 kbps {k24:.2}", master.integrated_lufs);
    assert!(mid_lufs - master.integrated_lufs <= -1.5, "the test's premise: {mid_lufs}");
    assert!(k24 < mid_lufs && k24 > mid_lufs - 2.0, "24 kbps {k24} vs the mid {mid_lufs}");
}
