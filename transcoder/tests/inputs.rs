//! Masters in every container and codec a label may send — AIFF, MP3, AAC
//! and ALAC in MP4, Ogg Vorbis (real files made by ffmpeg, in
//! `tests/fixtures/`, see `make.sh` there) and 5.1 WAV — each become a full
//! ladder that a real decoder plays back at the right length.

mod common;

use std::path::Path;

use cadenza_transcoder::synth::write_wav;
use cadenza_transcoder::transcode;
use common::decode_ogg;

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
