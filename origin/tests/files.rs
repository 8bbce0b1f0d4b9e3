//! Streaming uploads and downloads between local files and real stores:
//! `file://` (multipart on disk) and `memory://`.

use cadenza_config::ids::FileId;
use cadenza_origin::{UPLOAD_PART, download, open_store, put_audio_file, put_file, read_audio};
use object_store::ObjectStoreExt as _;

/// Deterministic bytes that are not a repeating pattern.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn files_go_up_and_come_down_whole_in_one_put_or_many_parts() {
    let dir = tempfile::tempdir().unwrap();
    let file_store = open_store(&format!("file://{}", dir.path().join("store").display())).unwrap();
    let memory = open_store("memory://").unwrap();
    // Empty, one byte, exactly one part, a part and a bit, several parts.
    let sizes = [0, 1, UPLOAD_PART, UPLOAD_PART + 1, 2 * UPLOAD_PART + 12_345];
    for store in [&file_store, &memory] {
        for (i, &n) in sizes.iter().enumerate() {
            let data = bytes(n, i as u64 + 7);
            let local = dir.path().join(format!("in-{i}"));
            std::fs::write(&local, &data).unwrap();
            let key = format!("masters/test/{i}.bin");
            assert_eq!(put_file(store.as_ref(), &key, &local).await.unwrap(), n as u64, "{store} {n}");
            let back = dir.path().join(format!("out-{i}"));
            assert_eq!(download(store.as_ref(), &key, &back).await.unwrap(), n as u64);
            assert!(std::fs::read(&back).unwrap() == data, "{store}: {n} bytes differ after the round trip");
        }
    }
}

#[tokio::test]
async fn audio_uploads_are_content_addressed_and_never_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().join("store").display())).unwrap();
    let data = bytes(UPLOAD_PART + 99, 3);
    let local = dir.path().join("a.ogg");
    std::fs::write(&local, &data).unwrap();
    let id = FileId::of_content(&data);
    assert!(put_audio_file(store.as_ref(), &id, &local, data.len() as u64).await.unwrap(), "written");
    assert!(!put_audio_file(store.as_ref(), &id, &local, data.len() as u64).await.unwrap(), "already there");
    assert_eq!(read_audio(store.as_ref(), &id).await.unwrap(), data);
    // Another size under the same id is a conflict, not an overwrite.
    let err = put_audio_file(store.as_ref(), &id, &local, 5).await.unwrap_err();
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    // A local file shorter than announced is refused, naming the file.
    let other = FileId::of_content(b"other");
    let err = put_audio_file(store.as_ref(), &other, &local, data.len() as u64 + 1).await.unwrap_err();
    assert!(err.to_string().contains("a.ogg"), "{err}");
}

#[tokio::test]
async fn missing_things_are_clear_errors_and_leave_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().join("store").display())).unwrap();
    let to = dir.path().join("never.wav");
    let err = download(store.as_ref(), "masters/none.wav", &to).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!to.exists());
    let err = put_file(store.as_ref(), "masters/x.wav", &dir.path().join("no-such-file")).await.unwrap_err();
    assert!(err.to_string().contains("no-such-file"), "{err}");
    assert!(store.head(&"masters/x.wav".into()).await.is_err(), "nothing was stored");
}
