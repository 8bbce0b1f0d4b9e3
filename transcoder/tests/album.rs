//! Albums: three masters at clearly different levels ingested together get
//! album loudness (EBU R128 over all of them as one programme) in every
//! manifest and `REPLAYGAIN_ALBUM_*` tags in every file; re-ingesting the
//! same album is a no-op, a different grouping re-encodes, a bad track
//! fails the whole album, and the same album always gives the same bytes.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadenza_config::ids::TrackId;
use cadenza_config::ladder::LADDER;
use cadenza_config::layout;
use cadenza_config::manifest::{Loudness, Manifest};
use cadenza_origin::{open_store, read_audio, read_manifest};
use cadenza_transcoder::ogg::{parse_comment, parse_pages};
use cadenza_transcoder::synth::write_wav;
use cadenza_transcoder::{
    IngestReport, Options, Outcome, TranscodeError, gain_db, ingest_album, transcode_album,
};
use common::{Recording, file_url, files_under, music};

const ALBUM: &str = "alb-1";
const SECONDS: u32 = 7;

/// Three masters: two at the synth's level, the middle one 12 dB down.
fn masters(dir: &Path) -> Vec<(TrackId, PathBuf)> {
    (0..3)
        .map(|i| {
            let mut planes = music(100 + i as u64, SECONDS);
            if i == 1 {
                let k = 10f32.powf(-12.0 / 20.0);
                planes.iter_mut().flatten().for_each(|x| *x *= k);
            }
            let path = dir.join(format!("{i}.wav"));
            write_wav(&path, &planes, 44_100, 24).unwrap();
            (format!("trk-alb-{i}").parse().unwrap(), path)
        })
        .collect()
}

/// The tags of file `bytes`, from its comment header (page 1).
fn tags_of(bytes: &[u8]) -> Vec<String> {
    let pages = parse_pages(bytes).unwrap();
    parse_comment(pages[1].body).expect("a Vorbis comment header on page 1").1
}

fn gain_tag(l: &Loudness) -> String {
    format!("{:.2} dB", -18.0 - l.integrated_lufs + 0.0)
}

fn peak_tag(l: &Loudness) -> String {
    format!("{:.6}", 10f64.powf(l.true_peak_dbtp / 20.0))
}

/// `l.gain_db` is the gain rule applied to `l`'s own numbers (to the
/// hundredth it is rounded to).
fn follows_gain_rule(l: &Loudness) -> bool {
    (l.gain_db - gain_db(l.integrated_lufs, l.true_peak_dbtp)).abs() < 0.0051
}

fn outcomes(reports: &[IngestReport]) -> Vec<Outcome> {
    reports.iter().map(|r| r.outcome).collect()
}

#[tokio::test]
async fn an_album_gets_album_loudness_in_manifests_and_tags() {
    let masters_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&file_url(root.path())).unwrap();
    let tracks = masters(masters_dir.path());

    let reports =
        ingest_album(&store, &tracks, Some(ALBUM), &Options::default(), Arc::new(())).await.unwrap();
    assert_eq!(outcomes(&reports), [Outcome::Published; 3]);
    let manifests: Vec<&Manifest> = reports.iter().map(|r| &r.manifest).collect();
    for ((report, (track, master)), m) in reports.iter().zip(&tracks).zip(&manifests) {
        assert_eq!(&report.track_id, track);
        assert_eq!(&report.master, master);
        assert_eq!(&m.track_id, track);
        assert_eq!(m.check(), Ok(()));
        // What a reader of the store finds is what was reported.
        assert_eq!(read_manifest(store.as_ref(), track).await.unwrap().as_ref(), Some(*m));
    }
    // The store holds 12 audio objects and 3 manifests, nothing else.
    let mut want: Vec<String> = manifests
        .iter()
        .flat_map(|m| m.renditions.iter().map(|r| layout::audio_key(&r.file_id)))
        .chain(tracks.iter().map(|(t, _)| layout::manifest_key(t)))
        .collect();
    want.sort();
    assert_eq!(files_under(root.path()), want);

    // The album as the manifests have it: the same in all three.
    let album = manifests[0].album.clone().expect("an album");
    assert_eq!((album.id.as_str(), album.tracks), (ALBUM, 3));
    for m in &manifests {
        assert_eq!(m.album.as_ref(), Some(&album));
    }
    let a = album.loudness;
    let track_lufs: Vec<f64> = manifests.iter().map(|m| m.loudness.integrated_lufs).collect();
    let track_tp: Vec<f64> = manifests.iter().map(|m| m.loudness.true_peak_dbtp).collect();
    println!("tracks {track_lufs:?} LUFS, peaks {track_tp:?} dBTP; album {a:?}");
    let quietest = track_lufs.iter().copied().fold(f64::INFINITY, f64::min);
    let loudest = track_lufs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(loudest - quietest > 10.0, "the levels are not clearly different: {track_lufs:?}");
    assert!(quietest < a.integrated_lufs && a.integrated_lufs < loudest, "{a:?} vs {track_lufs:?}");
    // A power mean, not a mean of decibels: nearer the loud tracks. (The
    // two loud tracks alone bound it from above; the ungated power mean of
    // the three, about 4 LU below the loud pair's, from below.)
    let arithmetic = track_lufs.iter().sum::<f64>() / 3.0;
    let power = 10.0 * (track_lufs.iter().map(|l| 10f64.powf(l / 10.0)).sum::<f64>() / 3.0).log10();
    println!("album {:.2} LUFS; arithmetic mean {arithmetic:.2}, power mean {power:.2}", a.integrated_lufs);
    assert!(a.integrated_lufs > arithmetic + 2.0, "{} vs arithmetic mean {arithmetic}", a.integrated_lufs);
    assert!(a.integrated_lufs >= power - 0.5, "{} vs power mean {power}", a.integrated_lufs);
    let mut sorted = track_lufs.clone();
    sorted.sort_by(f64::total_cmp);
    let loud_pair = 10.0 * ((10f64.powf(sorted[1] / 10.0) + 10f64.powf(sorted[2] / 10.0)) / 2.0).log10();
    assert!(a.integrated_lufs <= loud_pair + 0.05, "{} vs the loud pair's {loud_pair}", a.integrated_lufs);
    assert_eq!(a.true_peak_dbtp, track_tp.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    assert!(a.loudness_range_lu > 5.0, "a 12 dB step between tracks has a wide range: {a:?}");
    assert!(follows_gain_rule(&a), "{a:?}");

    // Per rung: every rendition has the album's loudness of that rung, the
    // same in all three manifests, consistent with the tracks' own.
    for (k, rung) in LADDER.into_iter().enumerate() {
        let renditions: Vec<_> = manifests.iter().map(|m| &m.renditions[k]).collect();
        assert!(renditions.iter().all(|r| r.bitrate_kbps == rung));
        let al = renditions[0].album_loudness.expect("album loudness on every rendition");
        for r in &renditions {
            assert_eq!(r.album_loudness, Some(al), "{rung}");
            assert!(follows_gain_rule(&r.loudness), "{rung}: {:?}", r.loudness);
        }
        assert!(follows_gain_rule(&al), "{rung}: {al:?}");
        let own: Vec<f64> = renditions.iter().map(|r| r.loudness.integrated_lufs).collect();
        let lo = own.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = own.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(lo < al.integrated_lufs && al.integrated_lufs < hi, "{rung}: {al:?} vs {own:?}");
        let peak = renditions.iter().map(|r| r.loudness.true_peak_dbtp).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(al.true_peak_dbtp, peak, "{rung}");
        // The 96 kbps and up measure like the master, so their album does.
        if k > 0 {
            assert!((al.integrated_lufs - a.integrated_lufs).abs() < 0.5, "{rung}: {al:?} vs {a:?}");
        }
    }

    // The files, as stored: album tags equal across the tracks for the
    // same rung and equal to the manifest; track tags differ.
    for (k, rung) in LADDER.into_iter().enumerate() {
        let mut track_tags = Vec::new();
        for m in &manifests {
            let r = &m.renditions[k];
            let bytes = read_audio(store.as_ref(), &r.file_id).await.unwrap();
            let al = r.album_loudness.unwrap();
            let tags = tags_of(&bytes);
            assert_eq!(
                tags,
                [
                    format!("REPLAYGAIN_TRACK_GAIN={}", gain_tag(&r.loudness)),
                    format!("REPLAYGAIN_TRACK_PEAK={}", peak_tag(&r.loudness)),
                    format!("REPLAYGAIN_ALBUM_GAIN={}", gain_tag(&al)),
                    format!("REPLAYGAIN_ALBUM_PEAK={}", peak_tag(&al)),
                    "REPLAYGAIN_REFERENCE_LOUDNESS=-18.00 LUFS".to_owned(),
                ],
                "{} at {rung}",
                m.track_id
            );
            track_tags.push(tags);
        }
        for t in &track_tags[1..] {
            assert_eq!(t[2..4], track_tags[0][2..4], "{rung}: album tags differ between tracks");
        }
        assert_ne!(track_tags[0][0], track_tags[1][0], "{rung}: track gains of a loud and a quiet track");
        assert_ne!(track_tags[0][0], track_tags[2][0], "{rung}: track gains of two different tracks");
    }

    // Re-ingesting the same album: unchanged, nothing written.
    let recorder = Arc::new(Recording::new(store.clone(), None));
    let rec_store: cadenza_origin::Store = recorder.clone();
    let again =
        ingest_album(&rec_store, &tracks, Some(ALBUM), &Options::default(), Arc::new(())).await.unwrap();
    assert_eq!(outcomes(&again), [Outcome::Unchanged; 3]);
    assert!(recorder.puts().is_empty(), "{:?}", recorder.puts());
    for (r, m) in again.iter().zip(&manifests) {
        assert_eq!(&r.manifest, *m);
    }

    // The first two tracks as a 2-track album: both re-encoded (the album
    // loudness changes), the third left alone.
    let recorder = Arc::new(Recording::new(store.clone(), None));
    let rec_store: cadenza_origin::Store = recorder.clone();
    let two =
        ingest_album(&rec_store, &tracks[..2], Some(ALBUM), &Options::default(), Arc::new(())).await.unwrap();
    assert_eq!(outcomes(&two), [Outcome::Published; 2]);
    for (r, old) in two.iter().zip(&manifests) {
        let al = r.manifest.album.as_ref().expect("still an album");
        assert_eq!((al.id.as_str(), al.tracks), (ALBUM, 2));
        assert_ne!(al.loudness, a, "two tracks are not the same programme as three");
        // The same encodes, so the tracks' own loudness is unchanged.
        assert_eq!(r.manifest.loudness, old.loudness);
        assert_eq!(read_manifest(store.as_ref(), &r.track_id).await.unwrap().as_ref(), Some(&r.manifest));
    }
    let puts = recorder.puts();
    assert_eq!(puts.len(), 2 * 4 + 2, "{puts:?}");
    assert!(!puts.contains(&layout::manifest_key(&tracks[2].0)), "{puts:?}");
    assert_eq!(read_manifest(store.as_ref(), &tracks[2].0).await.unwrap().as_ref(), Some(manifests[2]));

    // The three without an album: re-encoded, no album anywhere, no album
    // tags, but the same track loudness.
    let single = ingest_album(&store, &tracks, None, &Options::default(), Arc::new(())).await.unwrap();
    assert_eq!(outcomes(&single), [Outcome::Published; 3]);
    for (r, old) in single.iter().zip(&manifests) {
        let m = &r.manifest;
        assert_eq!(m.album, None);
        assert!(m.renditions.iter().all(|r| r.album_loudness.is_none()));
        assert_eq!(m.loudness, old.loudness);
        for (new, old) in m.renditions.iter().zip(&old.renditions) {
            assert_eq!(new.loudness, old.loudness);
            assert_ne!(new.file_id, old.file_id, "other tags, other bytes");
            let tags = tags_of(&read_audio(store.as_ref(), &new.file_id).await.unwrap());
            assert_eq!(tags.len(), 3, "{tags:?}");
            assert!(tags.iter().all(|t| !t.starts_with("REPLAYGAIN_ALBUM_")), "{tags:?}");
        }
        assert_eq!(read_manifest(store.as_ref(), &r.track_id).await.unwrap().as_ref(), Some(m));
    }
}

#[tokio::test]
async fn a_bad_track_fails_the_whole_album() {
    let masters_dir = tempfile::tempdir().unwrap();
    let mut tracks = masters(masters_dir.path());
    // Track 2 is a truncated WAV: its header promises twice the data.
    let bytes = std::fs::read(&tracks[1].1).unwrap();
    let cut = masters_dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    tracks[1].1 = cut.clone();

    // Into a fresh store: an error naming the bad master, and no manifest
    // (the first track was fine, but an album is all or nothing).
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&file_url(root.path())).unwrap();
    let err =
        ingest_album(&store, &tracks, Some(ALBUM), &Options::default(), Arc::new(())).await.unwrap_err();
    println!("{err}");
    assert!(matches!(err, TranscodeError::Corrupt { .. }), "{err:?}");
    assert!(err.is_bad_input());
    assert!(err.to_string().contains(&cut.display().to_string()), "{err}");
    let stored = files_under(root.path());
    assert!(!stored.iter().any(|f| f.starts_with("tracks/")), "{stored:?}");
    for (track, _) in &tracks {
        assert_eq!(read_manifest(store.as_ref(), track).await.unwrap(), None);
    }
    // The CPU-only path agrees.
    let err = transcode_album(&tracks, Some(ALBUM), &Options::default(), &()).unwrap_err();
    assert!(matches!(err, TranscodeError::Corrupt { .. }), "{err:?}");
}

#[test]
fn the_same_album_gives_the_same_bytes() {
    let masters_dir = tempfile::tempdir().unwrap();
    let tracks = masters(masters_dir.path());
    let work = tempfile::tempdir().unwrap();
    let a = transcode_album(&tracks, Some(ALBUM), &Options::default(), &()).unwrap();
    // The second run in a work directory of our own: where the work files
    // go changes nothing.
    let options = Options { work_dir: Some(work.path().to_owned()) };
    let b = transcode_album(&tracks, Some(ALBUM), &options, &()).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.manifest, y.manifest);
        assert!(x.manifest.album.is_some());
        assert_eq!(x.files.len(), 4);
        assert_eq!(
            x.files.iter().map(|f| f.file_id).collect::<Vec<_>>(),
            y.files.iter().map(|f| f.file_id).collect::<Vec<_>>()
        );
        for i in 0..4 {
            assert_eq!(x.read_file(i).unwrap(), y.read_file(i).unwrap(), "{} file {i}", x.manifest.track_id);
        }
        assert!(y.work_dir().starts_with(work.path()), "{}", y.work_dir().display());
    }
    // Twelve different files: no two renditions of the album share bytes.
    let mut ids: Vec<_> = a.iter().flat_map(|t| t.files.iter().map(|f| f.file_id)).collect();
    ids.sort_by_key(|id| id.to_string());
    ids.dedup();
    assert_eq!(ids.len(), 12);
    // The work directory empties when the results go.
    drop(b);
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

/// An album re-ingested with a different track list must not keep album
/// loudness measured over the old list. Here: [A, B, D] is ingested as
/// `alb-1`, then [A, B, C] (C replaces D; A and B get the new album
/// loudness), then [A, B, D] again. Every stored manifest now matches "its
/// album": same id, three tracks, same master, same encoder; so the call
/// reports all three `Unchanged`, and A and B keep the album loudness of
/// [A, B, C] while D has that of the first [A, B, D].
#[tokio::test]
async fn a_regrouped_album_is_measured_again() {
    let masters_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&file_url(root.path())).unwrap();
    let track = |name: &str, seed: u64, gain_db: f32| {
        let mut planes = music(seed, 3);
        let k = 10f32.powf(gain_db / 20.0);
        planes.iter_mut().flatten().for_each(|x| *x *= k);
        let path = masters_dir.path().join(format!("{name}.wav"));
        write_wav(&path, &planes, 44_100, 24).unwrap();
        (format!("trk-{name}").parse::<TrackId>().unwrap(), path)
    };
    let (a, b, c, d) = (track("a", 1, 0.0), track("b", 2, 0.0), track("c", 3, 0.0), track("d", 4, -15.0));
    let abd = [a.clone(), b.clone(), d.clone()];
    let abc = [a, b, c];
    let first = ingest_album(&store, &abd, Some(ALBUM), &Options::default(), Arc::new(())).await.unwrap();
    assert_eq!(outcomes(&first), [Outcome::Published; 3]);
    let second = ingest_album(&store, &abc, Some(ALBUM), &Options::default(), Arc::new(())).await.unwrap();
    assert_eq!(outcomes(&second), [Outcome::Published; 3]);
    let album_of = |r: &IngestReport| r.manifest.album.clone().unwrap().loudness;
    assert_ne!(album_of(&first[0]), album_of(&second[0]), "D is 15 dB quieter than C");

    let third = ingest_album(&store, &abd, Some(ALBUM), &Options::default(), Arc::new(())).await.unwrap();
    println!("{:?}", outcomes(&third));
    let mut stored = Vec::new();
    for (t, _) in &abd {
        stored.push(read_manifest(store.as_ref(), t).await.unwrap().unwrap());
    }
    for m in &stored[1..] {
        assert_eq!(m.album, stored[0].album, "{} and {} are one album", m.track_id, stored[0].track_id);
    }
    assert_eq!(stored[0].album.as_ref().map(|a| a.loudness), Some(album_of(&first[0])));
}
