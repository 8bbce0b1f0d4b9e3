//! The ladder end to end: synthesised WAV and FLAC masters, transcoded, then
//! every rendition decoded by a real decoder and checked against its
//! manifest entry.

mod common;

use cadenza_config::ids::FileId;
use cadenza_config::ladder::{LADDER, Rung};
use cadenza_config::manifest::MANIFEST_VERSION;
use cadenza_transcoder::ogg::parse_comment;
use cadenza_transcoder::{RENDITION_MIME, Transcoded, encoder_id, gain_db, ogg, transcode};
use common::{decode_ogg, music, write_master};
use sha2::{Digest, Sha256};

/// Check everything we can about one transcoded master.
fn check_ladder(t: &Transcoded, master_bytes: &[u8], rate: u32, channels: u8, seconds: f64) {
    let m = &t.manifest;
    assert_eq!(m.version, MANIFEST_VERSION);
    assert_eq!(m.encoder, encoder_id());
    assert_eq!(m.source.sha256, hex::encode(Sha256::digest(master_bytes)));
    assert_eq!(m.source.sample_rate, rate);
    assert_eq!(m.source.channels, channels);
    assert_eq!(m.source.frames, (seconds * f64::from(rate)).round() as u64);
    assert_eq!(m.source.duration_ms, (seconds * 1000.0).round() as u64);

    let l = m.loudness;
    assert!(l.integrated_lufs > -40.0 && l.integrated_lufs < 0.0, "{l:?}");
    assert!(l.true_peak_dbtp > -10.0 && l.true_peak_dbtp < 1.0, "{l:?}");
    assert!((l.gain_db - gain_db(l.integrated_lufs, l.true_peak_dbtp)).abs() < 0.011);
    assert!(l.true_peak_dbtp + l.gain_db <= -1.0 + 0.011, "{l:?}");
    assert!(m.album.is_none());
    assert_eq!(m.features.duration_ms, m.source.duration_ms);
    assert_eq!(m.features.integrated_lufs, l.integrated_lufs);
    assert!(m.encoder_vendor.contains("aoTuV") || m.encoder_vendor.contains("Xiph"), "{}", m.encoder_vendor);
    assert!(m.encoder.contains(&m.encoder_vendor), "{} / {}", m.encoder, m.encoder_vendor);

    let rungs: Vec<Rung> = m.renditions.iter().map(|r| r.bitrate_kbps).collect();
    assert_eq!(rungs, LADDER, "lowest first, one per rung");
    assert_eq!(t.files.len(), LADDER.len());
    for (i, (r, file)) in m.renditions.iter().zip(&t.files).enumerate() {
        let rung = r.bitrate_kbps;
        let bytes = &t.read_file(i).unwrap();
        assert_eq!(r.file_id, file.file_id);
        assert_eq!(FileId::of_content(bytes), r.file_id);
        assert_eq!(file.size, r.size);
        assert_eq!(r.size, bytes.len() as u64);
        assert_eq!(r.mime, RENDITION_MIME);
        assert_eq!(r.channels, rung.channels());
        assert_eq!(r.sample_rate, rung.output_rate(rate));
        let expect_ms = (seconds * 1000.0).round() as u64;
        assert!(r.duration_ms.abs_diff(expect_ms) <= 1, "{rung}: {} ms", r.duration_ms);

        // A real decoder agrees on format and length.
        let d = decode_ogg(bytes);
        assert_eq!(d.channels, usize::from(r.channels), "{rung}");
        assert_eq!(d.sample_rate, r.sample_rate, "{rung}");
        let diff = (d.duration_ms() - r.duration_ms as f64).abs();
        assert!(diff <= 50.0, "{rung}: decoded {} ms vs manifest {} ms", d.duration_ms(), r.duration_ms);

        // Exact lengths: the source's frames at the rendition's rate, and
        // a real decoder gets every one of them.
        let want = (m.source.frames * u64::from(r.sample_rate)).div_ceil(u64::from(m.source.sample_rate));
        assert!(r.frames.abs_diff(want) <= 1, "{rung}: {} frames, source x rate ratio = {want}", r.frames);
        assert_eq!(d.frames, r.frames, "{rung}: the decoder's frame count");

        // Our parser agrees with the manifest; CRCs all verify.
        let info = ogg::vorbis_stream_info(bytes).unwrap();
        assert_eq!(info.frames, r.frames);
        assert_eq!(info.seek, r.seek);

        // The rendition's own loudness, its gain, and the tags that carry
        // them; the vendor string as recorded.
        let rl = r.loudness;
        assert!(
            (rl.gain_db - gain_db(rl.integrated_lufs, rl.true_peak_dbtp)).abs() < 0.011,
            "{rung}: {rl:?}"
        );
        assert!((rl.integrated_lufs - l.integrated_lufs).abs() < 8.0, "{rung}: {rl:?} vs master {l:?}");
        assert!(r.album_loudness.is_none());
        let pages = ogg::parse_pages(bytes).unwrap();
        let nominal = u32::from_le_bytes(pages[0].body[20..24].try_into().unwrap());
        assert_eq!(nominal, rung.kbps() * 1000, "{rung}: the identification header's nominal bitrate");
        let (vendor, tags) = parse_comment(pages[1].body).unwrap();
        assert_eq!(vendor, m.encoder_vendor);
        assert_eq!(
            tags,
            [
                format!("REPLAYGAIN_TRACK_GAIN={:.2} dB", -18.0 - rl.integrated_lufs + 0.0),
                format!("REPLAYGAIN_TRACK_PEAK={:.6}", 10f64.powf(rl.true_peak_dbtp / 20.0)),
                "REPLAYGAIN_REFERENCE_LOUDNESS=-18.00 LUFS".to_owned(),
            ],
            "{rung}"
        );

        // Seek index: starts at the first audio page at 0 ms, ascending in
        // both fields, about one point per second, every offset an `OggS`.
        assert_eq!(r.seek[0].ms, 0);
        assert_eq!(r.seek[0].offset as usize, info.audio_offset);
        for w in r.seek.windows(2) {
            assert!(w[1].ms > w[0].ms && w[1].offset > w[0].offset, "{rung}: {w:?}");
            assert!(w[1].ms / 1000 > w[0].ms / 1000, "one per second: {w:?}");
            assert!(w[1].ms - w[0].ms < 2000, "{rung}: gap {w:?}");
        }
        for p in &r.seek {
            assert!(p.ms < r.duration_ms);
            assert_eq!(&bytes[p.offset as usize..][..4], b"OggS", "{rung}");
        }
        let secs = seconds.floor() as usize;
        assert!(r.seek.len() + 1 >= secs && r.seek.len() <= secs + 1, "{rung}: {} points", r.seek.len());

        // Achieved bitrate. Calibration holds it on real music; the 24 kbps rung
        // carries ~4 kB of headers, a visible share of a short file.
        let nominal = f64::from(rung.kbps());
        let ratio = r.achieved_kbps / nominal;
        println!(
            "{rung:>3} kbps: achieved {:.1} kbps ({:+.1} %), {} bytes, {} seek points",
            r.achieved_kbps,
            (ratio - 1.0) * 100.0,
            r.size,
            r.seek.len()
        );
        if rung == Rung::K24 {
            assert!(r.achieved_kbps <= 30.0, "24: {}", r.achieved_kbps);
        } else {
            assert!((0.90..=1.10).contains(&ratio), "{rung}: {}", r.achieved_kbps);
        }
    }
}

#[test]
fn wav_master_makes_a_checked_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_master(dir.path(), "a.wav", &music(11, 20), 44_100);
    let t = transcode(&path, &"trk-wav".parse().unwrap()).unwrap();
    assert_eq!(t.manifest.source.format, "wav");
    assert_eq!(t.manifest.track_id.as_str(), "trk-wav");
    check_ladder(&t, &std::fs::read(&path).unwrap(), 44_100, 2, 20.0);
}

#[test]
fn flac_master_makes_a_checked_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_master(dir.path(), "b.flac", &music(12, 20), 44_100);
    let t = transcode(&path, &"trk-flac".parse().unwrap()).unwrap();
    assert_eq!(t.manifest.source.format, "flac");
    check_ladder(&t, &std::fs::read(&path).unwrap(), 44_100, 2, 20.0);
}

#[test]
fn a_48_khz_master_stays_at_48_khz() {
    let dir = tempfile::tempdir().unwrap();
    // The synth renders at 44.1 kHz; resampling it with our own resampler is
    // not what is under test, so play it back at 48 kHz instead: the same
    // samples, just faster. 5 s of 44.1 kHz samples = 4.59375 s at 48 kHz.
    let planes = music(13, 5);
    let path = write_master(dir.path(), "c.wav", &planes, 48_000);
    let t = transcode(&path, &"trk-48".parse().unwrap()).unwrap();
    let seconds = planes[0].len() as f64 / 48_000.0;
    for r in &t.manifest.renditions {
        let want = if r.bitrate_kbps == Rung::K24 { 22_050 } else { 48_000 };
        assert_eq!(r.sample_rate, want);
        let i = t.files.iter().position(|f| f.file_id == r.file_id).unwrap();
        let d = decode_ogg(&t.read_file(i).unwrap());
        assert_eq!(d.sample_rate, want);
        assert!((d.duration_ms() - seconds * 1000.0).abs() <= 50.0);
    }
}

#[test]
fn a_mono_96_khz_flac_master_is_resampled_and_upmixed() {
    let dir = tempfile::tempdir().unwrap();
    // One channel of demo music treated as 96 kHz.
    let planes = vec![music(14, 6).swap_remove(0)];
    let path = write_master(dir.path(), "d.flac", &planes, 96_000);
    let t = transcode(&path, &"trk-mono".parse().unwrap()).unwrap();
    let m = &t.manifest;
    assert_eq!((m.source.sample_rate, m.source.channels), (96_000, 1));
    let seconds = planes[0].len() as f64 / 96_000.0;
    for (i, r) in m.renditions.iter().enumerate() {
        assert_eq!(r.sample_rate, r.bitrate_kbps.output_rate(96_000));
        assert_eq!(r.channels, r.bitrate_kbps.channels());
        let d = decode_ogg(&t.read_file(i).unwrap());
        assert_eq!((d.sample_rate, d.channels), (r.sample_rate, usize::from(r.channels)));
        assert!((d.duration_ms() - seconds * 1000.0).abs() <= 50.0, "{}", d.duration_ms());
    }
}

/// Every file's bytes.
fn bytes_of(t: &Transcoded) -> Vec<Vec<u8>> {
    (0..t.files.len()).map(|i| t.read_file(i).unwrap()).collect()
}

#[test]
fn output_is_deterministic_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_master(dir.path(), "e.flac", &music(15, 5), 44_100);
    let track = "trk-det".parse().unwrap();
    let a = transcode(&path, &track).unwrap();
    let b = transcode(&path, &track).unwrap();
    assert_eq!(a.manifest, b.manifest, "same master, same manifest");
    assert_eq!(bytes_of(&a), bytes_of(&b), "same master, same bytes");
    assert_ne!(a.work_dir(), b.work_dir());
    // Same audio under another track id: the same files (content
    // addressing shares them), a different manifest.
    let c = transcode(&path, &"trk-other".parse().unwrap()).unwrap();
    assert_eq!(
        a.files.iter().map(|f| f.file_id).collect::<Vec<_>>(),
        c.files.iter().map(|f| f.file_id).collect::<Vec<_>>()
    );
    assert_ne!(a.manifest, c.manifest);
    // Different audio, different files; every rung has its own serial.
    let path2 = write_master(dir.path(), "f.flac", &music(16, 5), 44_100);
    let d = transcode(&path2, &track).unwrap();
    for (x, y) in bytes_of(&a).iter().zip(&bytes_of(&d)) {
        assert_ne!(x, y);
    }
    let serials: Vec<u32> = bytes_of(&a).iter().map(|b| ogg::parse_pages(b).unwrap()[0].serial).collect();
    for (i, s) in serials.iter().enumerate() {
        assert!(!serials[..i].contains(s), "serials {serials:?}");
    }
    // The work directory goes with the last value using it.
    let work = a.work_dir().to_owned();
    assert!(work.exists());
    drop(a);
    assert!(!work.exists());
}
