//! Bad masters: each gets a clear error naming the file, nothing panics, and
//! nothing is published.

mod common;

use std::path::{Path, PathBuf};

use cadenza_origin::open_store;
use cadenza_transcoder::synth::{write_flac, write_wav};
use cadenza_transcoder::{Options, TranscodeError, ingest, transcode};
use common::{file_url, files_under, music};

/// Ingest `path` into a fresh store; expect an error that names the file
/// and matches `check`; expect the store to stay empty.
async fn rejects(path: &Path, check: impl Fn(&TranscodeError) -> bool, needle: &str) {
    let root = tempfile::tempdir().unwrap();
    let store = open_store(&file_url(root.path())).unwrap();
    let track = "trk-bad".parse().unwrap();
    let err = ingest(&store, path, &track, &Options::default()).await.unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(check(&err), "unexpected variant: {err:?}");
    assert!(msg.contains(&path.display().to_string()), "does not name the file: {msg}");
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    assert_eq!(msg, msg.trim_end_matches('.'), "trailing period: {msg}");
    assert!(msg.starts_with(|c: char| !c.is_uppercase()), "{msg}");
    assert!(err.is_bad_input(), "{err:?}");
    assert!(files_under(root.path()).is_empty(), "{:?}", files_under(root.path()));
    // The CPU-only path agrees.
    let again = transcode(path, &track).unwrap_err();
    assert_eq!(again.to_string(), msg);
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[tokio::test]
async fn nonexistent_file() {
    let d = dir();
    let p = d.path().join("missing.wav");
    rejects(&p, |e| matches!(e, TranscodeError::Read { .. }), "cannot read master").await;
}

#[tokio::test]
async fn not_audio() {
    let d = dir();
    let p = write(d.path(), "notes.wav", b"these are my liner notes, not audio\n".repeat(50).as_slice());
    rejects(&p, |e| matches!(e, TranscodeError::NotAudio { .. }), "not a recognised audio file").await;
    let p = write(d.path(), "empty.flac", b"");
    rejects(&p, |e| matches!(e, TranscodeError::NotAudio { .. }), "the file is empty").await;
}

#[tokio::test]
async fn unsupported_formats() {
    let d = dir();
    // Nine channels: more than 7.1, rejected rather than guessed at.
    let p = d.path().join("immersive.wav");
    let spec = hound::WavSpec {
        channels: 9,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&p, spec).unwrap();
    for i in 0..9 * 44_100 {
        w.write_sample((i % 1000) as i16).unwrap();
    }
    w.finalize().unwrap();
    rejects(&p, |e| matches!(e, TranscodeError::Unsupported { .. }), "9 channels; masters may have 1 to 8")
        .await;

    // A sample rate no one masters at.
    let p = d.path().join("slow.wav");
    write_wav(&p, &music(32, 1), 4_000, 16).unwrap();
    rejects(&p, |e| matches!(e, TranscodeError::Unsupported { .. }), "sample rate 4000 Hz").await;

    // Too short to measure loudness.
    let p = d.path().join("blip.wav");
    write_wav(&p, &[vec![0.5f32; 4_410], vec![0.5; 4_410]], 44_100, 16).unwrap();
    rejects(&p, |e| matches!(e, TranscodeError::Unsupported { .. }), "100 ms").await;
}

#[tokio::test]
async fn truncated_wav_and_flac() {
    let d = dir();
    let planes = music(33, 3);
    let wav = d.path().join("full.wav");
    write_wav(&wav, &planes, 44_100, 24).unwrap();
    let bytes = std::fs::read(&wav).unwrap();
    let p = write(d.path(), "cut.wav", &bytes[..bytes.len() / 2]);
    rejects(&p, |e| matches!(e, TranscodeError::Corrupt { .. }), "corrupt or truncated").await;
    // Cut inside the header.
    let p = write(d.path(), "stub.wav", &bytes[..30]);
    rejects(&p, |e| matches!(e, TranscodeError::Corrupt { .. }), "corrupt or truncated").await;

    let flac = d.path().join("full.flac");
    write_flac(&flac, &planes, 44_100, 16).unwrap();
    let bytes = std::fs::read(&flac).unwrap();
    let p = write(d.path(), "cut.flac", &bytes[..bytes.len() * 2 / 3]);
    rejects(&p, |e| matches!(e, TranscodeError::Corrupt { .. }), "corrupt or truncated").await;
}

#[tokio::test]
async fn corrupt_flac_frames() {
    let d = dir();
    let flac = d.path().join("ok.flac");
    write_flac(&flac, &music(34, 3), 44_100, 16).unwrap();
    let mut bytes = std::fs::read(&flac).unwrap();
    // Scribble over the middle of the audio frames.
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 2000] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let p = write(d.path(), "scribbled.flac", &bytes);
    rejects(&p, |e| matches!(e, TranscodeError::Corrupt { .. }), "corrupt or truncated").await;
}

#[tokio::test]
async fn zero_length_audio() {
    let d = dir();
    let p = d.path().join("nothing.wav");
    write_wav(&p, &[Vec::new(), Vec::new()], 44_100, 16).unwrap();
    rejects(&p, |e| matches!(e, TranscodeError::Empty { .. }), "contains no audio").await;
}

#[tokio::test]
async fn digital_silence() {
    let d = dir();
    let p = d.path().join("silence.flac");
    write_flac(&p, &vec![vec![0.0f32; 44_100 * 2]; 2], 44_100, 16).unwrap();
    rejects(&p, |e| matches!(e, TranscodeError::Silent { .. }), "digital silence").await;
}

#[tokio::test]
async fn non_finite_float_samples() {
    let d = dir();
    let mut planes = music(35, 2);
    planes[0][1000] = f32::NAN;
    let p = d.path().join("nan.wav");
    write_wav(&p, &planes, 44_100, 32).unwrap();
    rejects(&p, |e| matches!(e, TranscodeError::Corrupt { .. }), "NaN or infinite").await;
}

/// A 44.1 kHz stereo 16-bit WAV header declaring `data_len` bytes of audio,
/// followed by 4 KB of it.
fn lying_wav(data_len: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&2u16.to_le_bytes()); // channels
    h.extend_from_slice(&44_100u32.to_le_bytes());
    h.extend_from_slice(&(44_100u32 * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h.extend_from_slice(&[0u8; 4096]);
    h
}

#[tokio::test]
async fn absurd_duration() {
    // ~6.8 hours declared: refused from the header, before any decoding.
    let d = dir();
    let p = write(d.path(), "endless.wav", &lying_wav(0xFFFF_FF00));
    rejects(&p, |e| matches!(e, TranscodeError::TooLong { .. }), "longer than the 10800 s limit").await;
}

#[tokio::test]
async fn a_header_that_lies_within_the_limit() {
    // ~2.5 hours declared over 4 KB: must fail as truncated, without
    // reserving gigabytes on the header's word.
    let d = dir();
    let p = write(d.path(), "liar.wav", &lying_wav(0x6000_0000));
    rejects(&p, |e| matches!(e, TranscodeError::Corrupt { .. }), "ends mid-stream after 1024 frames").await;
}
