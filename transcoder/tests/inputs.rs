//! Masters in every container and codec a label may send — AIFF, MP3, AAC
//! and ALAC in MP4, Ogg Vorbis (real files made by ffmpeg, in
//! `tests/fixtures/`, see `make.sh` there), 5.1 WAV, and WAV at every bit
//! depth (16/24-bit integer, 32-bit float) and at rates from 8 to 192 kHz —
//! each become a full ladder that a real decoder plays back at the right
//! length.

mod common;

use std::path::Path;

use cadenza_config::ladder::{LADDER, Rung};
use cadenza_transcoder::synth::write_wav;
use cadenza_transcoder::transcode;
use common::{decode_ogg, music};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Transcode `path`; check the source as detected (its length within
/// `slack` seconds above `seconds`) and every rendition's length as decoded,
/// and return the manifest.
fn ladder_of(
    path: &Path,
    format: &str,
    channels: u8,
    seconds: f64,
    slack: f64,
) -> cadenza_config::manifest::Manifest {
    let t = transcode(path, &"trk-in".parse().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let m = &t.manifest;
    assert_eq!(m.source.format, format, "{}", path.display());
    assert_eq!(m.source.channels, channels);
    assert_eq!(m.source.sample_rate, 44_100);
    let got = m.source.duration_ms as f64 / 1000.0;
    assert!(got >= seconds - 0.001 && got <= seconds + slack, "{}: {got} s", path.display());
    assert_eq!(t.files.len(), 4);
    for (i, r) in m.renditions.iter().enumerate() {
        let d = decode_ogg(&t.read_file(i).unwrap());
        assert_eq!(d.channels, usize::from(r.channels));
        assert!(
            (d.duration_ms() / 1000.0 - got).abs() < 0.03,
            "{} at {} kbps",
            path.display(),
            r.bitrate_kbps
        );
    }
    assert!(m.loudness.integrated_lufs.is_finite());
    t.manifest
}

#[test]
fn aiff_mp3_aac_alac_and_vorbis_masters_make_a_ladder() {
    // Lossless and Vorbis: exact. MP3 and AAC decode with their encoder's
    // priming and padding (AAC: 1,024 priming frames plus padding to a
    // whole 1,024-frame packet; symphonia does not apply MP4 edit lists):
    // up to 80 ms more.
    ladder_of(&fixture("tone.aiff"), "aiff", 2, 1.0, 0.001);
    ladder_of(&fixture("tone-alac.m4a"), "mp4", 2, 1.0, 0.001);
    ladder_of(&fixture("tone.ogg"), "ogg", 2, 1.0, 0.001);
    ladder_of(&fixture("tone.mp3"), "mp3", 2, 1.0, 0.08);
    ladder_of(&fixture("tone-aac.m4a"), "mp4", 2, 1.0, 0.08);
}

#[test]
fn a_five_one_master_is_mixed_down_to_stereo() {
    let dir = tempfile::tempdir().unwrap();
    // 5.1 (hound writes the WAVE channel mask L R C LFE Ls Rs): a tone in
    // the centre only must reach both sides equally; one in the LFE only
    // adds nothing.
    let n = 2 * 44_100;
    let tone: Vec<f32> =
        (0..n).map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0).sin()).collect();
    let mut planes = vec![vec![0.0f32; n]; 6];
    planes[2] = tone.clone();
    let centre = dir.path().join("centre.wav");
    write_wav(&centre, &planes, 44_100, 16).unwrap();
    let m = ladder_of(&centre, "wav", 6, 2.0, 0.001);
    assert_eq!(m.renditions.iter().map(|r| r.channels).collect::<Vec<_>>(), [1, 2, 2, 2]);
    // The same tone as a stereo master, at the level the downmix gives the
    // centre (−3 dB, scaled by 1 / (1 + 2 × 0.707)), measures the same.
    let k = std::f32::consts::FRAC_1_SQRT_2 / (1.0 + std::f32::consts::SQRT_2);
    let stereo = dir.path().join("stereo.wav");
    let scaled: Vec<f32> = tone.iter().map(|x| x * k).collect();
    write_wav(&stereo, &[scaled.clone(), scaled], 44_100, 16).unwrap();
    let reference = ladder_of(&stereo, "wav", 2, 2.0, 0.001);
    let diff = (m.loudness.integrated_lufs - reference.loudness.integrated_lufs).abs();
    assert!(
        diff < 0.1,
        "downmix {} LUFS vs reference {} LUFS",
        m.loudness.integrated_lufs,
        reference.loudness.integrated_lufs
    );

    // A tone in the LFE and one in the front left: only the left one counts.
    let mut planes = vec![vec![0.0f32; n]; 6];
    planes[0] = tone.clone();
    planes[3] = tone;
    let lfe = dir.path().join("lfe.wav");
    write_wav(&lfe, &planes, 44_100, 16).unwrap();
    let with_lfe = ladder_of(&lfe, "wav", 6, 2.0, 0.001);
    planes_without_lfe(dir.path(), &planes, &with_lfe);
}

/// The same master with its LFE silenced measures the same: the LFE is
/// dropped.
fn planes_without_lfe(dir: &Path, planes: &[Vec<f32>], with_lfe: &cadenza_config::manifest::Manifest) {
    let mut quiet = planes.to_vec();
    quiet[3] = vec![0.0; quiet[3].len()];
    let p = dir.join("no-lfe.wav");
    write_wav(&p, &quiet, 44_100, 16).unwrap();
    let without = ladder_of(&p, "wav", 6, 2.0, 0.001);
    assert!((with_lfe.loudness.integrated_lufs - without.loudness.integrated_lufs).abs() < 0.01);
}

/// Transcode `path`, a `rate` Hz master of `channels` channels holding
/// `frames` frames, and check the whole ladder exactly: every rendition at
/// [`Rung::output_rate`] with [`Rung::channels`], holding
/// `ceil(frames × its rate / rate)` frames (±1), every one of which a real
/// decoder gets back.
fn exact_ladder(path: &Path, rate: u32, channels: u8, frames: u64) {
    let what = path.display();
    let t = transcode(path, &"trk-rate".parse().unwrap()).unwrap_or_else(|e| panic!("{e}"));
    let m = &t.manifest;
    assert_eq!(m.source.format, "wav", "{what}");
    assert_eq!(
        (m.source.sample_rate, m.source.channels, m.source.frames),
        (rate, channels, frames),
        "{what}"
    );
    let rungs: Vec<Rung> = m.renditions.iter().map(|r| r.bitrate_kbps).collect();
    assert_eq!(rungs, LADDER, "{what}");
    for (i, r) in m.renditions.iter().enumerate() {
        let rung = r.bitrate_kbps;
        assert_eq!(r.sample_rate, rung.output_rate(rate), "{what} at {rung}");
        assert_eq!(r.channels, rung.channels(), "{what} at {rung}");
        let want = (frames * u64::from(r.sample_rate)).div_ceil(u64::from(rate));
        assert!(r.frames.abs_diff(want) <= 1, "{what} at {rung}: {} frames, want {want}", r.frames);
        let d = decode_ogg(&t.read_file(i).unwrap());
        assert_eq!((d.sample_rate, d.channels), (r.sample_rate, usize::from(r.channels)), "{what} at {rung}");
        assert_eq!(d.frames, r.frames, "{what} at {rung}: the decoder's frame count");
        println!(
            "{what} at {rung}: {} Hz, {} ch, {} frames (ratio {want})",
            r.sample_rate, r.channels, r.frames
        );
    }
}

/// The first `frames` frames of demo music (rendered at 44.1 kHz), to be
/// written at any rate: the same samples, played faster or slower.
fn demo_frames(seed: u64, frames: usize, channels: usize) -> Vec<Vec<f32>> {
    let seconds = (frames as u32).div_ceil(44_100);
    let mut planes = music(seed, seconds);
    planes.truncate(channels);
    for p in &mut planes {
        p.truncate(frames);
    }
    planes
}

#[test]
fn wav_bit_depths_and_sample_rates_make_exact_ladders() {
    let dir = tempfile::tempdir().unwrap();
    // (name, rate, channels, bits, frames): odd frame counts, so that the
    // ratio is rarely a whole number.
    let cases: [(&str, u32, usize, u16, usize); 6] = [
        ("int24-44k.wav", 44_100, 2, 24, 3 * 44_100 + 17),
        ("float32-44k.wav", 44_100, 2, 32, 3 * 44_100 + 5),
        ("mono16-8k.wav", 8_000, 1, 16, 3 * 8_000 + 1),
        ("stereo24-192k.wav", 192_000, 2, 24, 3 * 192_000 - 7),
        ("stereo24-88k.wav", 88_200, 2, 24, 3 * 88_200 + 3),
        ("float32-96k.wav", 96_000, 2, 32, 2 * 96_000 + 11),
    ];
    for (i, (name, rate, channels, bits, frames)) in cases.into_iter().enumerate() {
        let path = dir.path().join(name);
        write_wav(&path, &demo_frames(60 + i as u64, frames, channels), rate, bits).unwrap();
        exact_ladder(&path, rate, channels as u8, frames as u64);
    }
}
