//! Publishing into a real `file://` store: audio first, manifest last,
//! re-ingest is a no-op, a failed publish leaves no manifest.

mod common;

use std::sync::Arc;

use cadenza_config::layout;
use cadenza_config::service::TranscoderConfig;
use cadenza_origin::{open_store, read_audio, read_manifest};
use cadenza_transcoder::{Options, Outcome, TranscodeError, ingest, run, transcode};
use common::{Recording, decode_ogg, file_url, files_under, music, write_master};

#[tokio::test]
async fn ingest_publishes_and_reingest_is_a_no_op() {
    let masters = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&file_url(root.path())).unwrap();
    let path = write_master(masters.path(), "a.flac", &music(21, 6), 44_100);
    let track = "trk-a".parse().unwrap();

    let first = ingest(&store, &path, &track, &Options::default()).await.unwrap();
    assert_eq!(first.outcome, Outcome::Published);
    let m = &first.manifest;
    // The store holds exactly the four audio objects and the manifest.
    let mut want: Vec<String> = m.renditions.iter().map(|r| layout::audio_key(&r.file_id)).collect();
    want.push(layout::manifest_key(&track));
    want.sort();
    assert_eq!(files_under(root.path()), want);
    // What a reader finds is what ingest reported, and it decodes.
    assert_eq!(read_manifest(store.as_ref(), &track).await.unwrap().as_ref(), Some(m));
    for r in &m.renditions {
        let bytes = read_audio(store.as_ref(), &r.file_id).await.unwrap();
        assert_eq!(bytes.len() as u64, r.size);
        let d = decode_ogg(&bytes);
        assert!((d.duration_ms() - r.duration_ms as f64).abs() <= 50.0);
    }
    // The same as the CPU-only path.
    assert_eq!(transcode(&path, &track).unwrap().manifest, *m);

    // Re-ingest: nothing encoded, nothing written.
    let recorder = Arc::new(Recording::new(store.clone(), None));
    let rec_store: cadenza_origin::Store = recorder.clone();
    let again = ingest(&rec_store, &path, &track, &Options::default()).await.unwrap();
    assert_eq!(again.outcome, Outcome::Unchanged);
    assert_eq!(again.manifest, *m);
    assert!(recorder.puts().is_empty(), "{:?}", recorder.puts());

    // A changed master is re-published under the same track.
    let changed = write_master(masters.path(), "a.flac", &music(22, 6), 44_100);
    let third = ingest(&store, &changed, &track, &Options::default()).await.unwrap();
    assert_eq!(third.outcome, Outcome::Published);
    assert_ne!(third.manifest.source.sha256, m.source.sha256);
    assert_eq!(read_manifest(store.as_ref(), &track).await.unwrap().unwrap(), third.manifest);
}

#[tokio::test]
async fn the_manifest_is_written_last() {
    let masters = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let inner = open_store(&file_url(root.path())).unwrap();
    let recorder = Arc::new(Recording::new(inner, None));
    let store: cadenza_origin::Store = recorder.clone();
    let path = write_master(masters.path(), "b.wav", &music(23, 4), 44_100);
    let track = "trk-b".parse().unwrap();
    let report = ingest(&store, &path, &track, &Options::default()).await.unwrap();

    let puts = recorder.puts();
    let audio: Vec<String> =
        report.manifest.renditions.iter().map(|r| layout::audio_key(&r.file_id)).collect();
    assert_eq!(puts.len(), 5, "{puts:?}");
    assert_eq!(puts[..4], audio[..], "audio first, lowest bitrate first");
    assert_eq!(puts[4], layout::manifest_key(&track));
}

#[tokio::test]
async fn a_failed_publish_leaves_no_manifest_and_a_retry_completes_it() {
    let masters = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let inner = open_store(&file_url(root.path())).unwrap();
    let path = write_master(masters.path(), "c.wav", &music(24, 4), 44_100);
    let track = "trk-c".parse().unwrap();

    // The third audio put fails.
    let failing: cadenza_origin::Store = Arc::new(Recording::new(inner.clone(), Some(2)));
    let err = ingest(&failing, &path, &track, &Options::default()).await.unwrap_err();
    assert!(matches!(err, TranscodeError::Store { .. }), "{err}");
    assert!(!err.is_bad_input());
    let msg = err.to_string();
    assert!(msg.contains("c.wav") && msg.contains("trk-c") && msg.contains("injected failure"), "{msg}");
    assert_eq!(read_manifest(inner.as_ref(), &track).await.unwrap(), None);
    assert!(!files_under(root.path()).iter().any(|f| f.starts_with("tracks/")));

    // A retry against the healthy store publishes everything.
    let report = ingest(&inner, &path, &track, &Options::default()).await.unwrap();
    assert_eq!(report.outcome, Outcome::Published);
    assert_eq!(files_under(root.path()).len(), 5);
}

#[tokio::test]
async fn missing_audio_is_republished_not_reported_unchanged() {
    let masters = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&file_url(root.path())).unwrap();
    let path = write_master(masters.path(), "d.flac", &music(25, 3), 44_100);
    let track = "trk-d".parse().unwrap();
    let first = ingest(&store, &path, &track, &Options::default()).await.unwrap();
    let lost = &first.manifest.renditions[2];
    std::fs::remove_file(root.path().join(layout::audio_key(&lost.file_id))).unwrap();

    let again = ingest(&store, &path, &track, &Options::default()).await.unwrap();
    assert_eq!(again.outcome, Outcome::Published);
    assert_eq!(again.manifest, first.manifest);
    assert!(root.path().join(layout::audio_key(&lost.file_id)).exists());
}

#[tokio::test]
async fn run_opens_the_configured_store_and_ingests_in_order() {
    let masters = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a = write_master(masters.path(), "e.wav", &music(26, 2), 44_100);
    let b = write_master(masters.path(), "f.flac", &music(27, 2), 44_100);
    let config = TranscoderConfig { store: file_url(&root.path().join("store")), ..Default::default() };
    let inputs = vec![("trk-e".parse().unwrap(), a.clone()), ("trk-f".parse().unwrap(), b.clone())];
    let reports = run(config.clone(), inputs.clone(), None, Arc::new(())).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.outcome == Outcome::Published));
    assert_eq!(reports[1].manifest.track_id.as_str(), "trk-f");
    let again = run(config.clone(), inputs, None, Arc::new(())).await.unwrap();
    assert!(again.iter().all(|r| r.outcome == Outcome::Unchanged));

    // A bad store URL is reported as such.
    let bad = TranscoderConfig { store: "ftp://nowhere/".into(), ..Default::default() };
    let err = run(bad, vec![("t".parse().unwrap(), a)], None, Arc::new(())).await.unwrap_err();
    assert!(matches!(err, TranscodeError::OpenStore(_)), "{err}");
    assert!(err.to_string().contains("ftp://nowhere/"), "{err}");
}
