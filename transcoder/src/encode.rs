//! Ogg Vorbis encoding of one rung (vorbis_rs, libvorbis aoTuV, ABR mode),
//! and the encoder identity recorded in manifests.

use std::num::{NonZeroU8, NonZeroU32};
use std::sync::OnceLock;

use cadenza_config::ladder::Rung;
use cadenza_config::manifest::Loudness;
use sha2::{Digest, Sha256};
use vorbis_rs::{VorbisBitrateManagementStrategy, VorbisEncoderBuilder};

use crate::loudness::REPLAYGAIN_REFERENCE_LUFS;

/// The vorbis_rs release this crate is built against (kept in step with the
/// workspace `Cargo.toml`).
const VORBIS_RS_VERSION: &str = "0.5.6";
/// Bump whenever the bytes this crate produces for the same master change
/// (new tags, different resampler settings, …) so that re-ingesting an
/// unchanged master re-encodes instead of reporting `Unchanged`.
const PIPELINE_REVISION: u32 = 1;
/// Frames handed to libvorbis per call; "1024 is a reasonable choice", a few
/// thousand keeps the per-call overhead negligible.
const BLOCK_FRAMES: usize = 4096;

/// The encoder string recorded in every manifest: the Rust binding, the
/// libvorbis vendor string it actually links, the mode, and this crate. Two
/// manifests with the same source hash and the same encoder string name the
/// same bytes.
pub fn encoder_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let vendor = libvorbis_vendor().unwrap_or_else(|| "unknown libvorbis".into());
        format!(
            "vorbis_rs {VORBIS_RS_VERSION} ({vendor}) abr; cadenza-transcoder {} r{PIPELINE_REVISION}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// The vendor string libvorbis writes into the comment header, found by
/// encoding a tiny block of silence.
fn libvorbis_vendor() -> Option<String> {
    let silence = [vec![0.0f32; 64]];
    let bytes = encode(&silence, 44_100, 64, 0, &[]).ok()?;
    let pages = crate::ogg::parse_pages(&bytes).ok()?;
    // The comment header starts the second page: 0x03 "vorbis" u32 length.
    let body = pages.get(1)?.body;
    if body.get(..7)? != b"\x03vorbis" {
        return None;
    }
    let len = u32::from_le_bytes(body.get(7..11)?.try_into().ok()?) as usize;
    let vendor = body.get(11..11usize.checked_add(len)?)?;
    String::from_utf8(vendor.to_vec()).ok()
}

/// The Ogg stream serial for `rung` of a master: the first 4 bytes of
/// SHA-256(master SHA-256 ‖ kbps as u32 big-endian). Content-derived, so the
/// same master always yields the same bytes, and the rungs differ.
pub(crate) fn stream_serial(master_sha256: &[u8; 32], rung: Rung) -> i32 {
    let mut h = Sha256::new();
    h.update(master_sha256);
    h.update(rung.kbps().to_be_bytes());
    let d = h.finalize();
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Vorbis comments for a rendition: ReplayGain 2.0 track gain and peak from
/// the master's loudness. Values are fixed-precision text, so deterministic.
pub(crate) fn replaygain_tags(l: &Loudness) -> Vec<(&'static str, String)> {
    vec![
        ("REPLAYGAIN_TRACK_GAIN", format!("{:.2} dB", REPLAYGAIN_REFERENCE_LUFS - l.integrated_lufs)),
        ("REPLAYGAIN_TRACK_PEAK", format!("{:.6}", 10f64.powf(l.true_peak_dbtp / 20.0))),
    ]
}

/// Bytes of packet data libogg gathers before ending a page: about half a
/// second of audio, capped at libogg's usual 4 kB. At 96 kbps and up that is
/// the default (pages of 0.1–0.35 s); at 24 kbps the default would make
/// 1.4 s pages, too coarse for a one-point-per-second seek index, at a
/// cost of ~1 % more page headers.
fn page_fill(kbps: u32) -> u16 {
    (kbps * 1000 / 8 / 2).clamp(512, 4096) as u16
}

/// Encode planar `planes` (one per channel, equal lengths, at `rate` Hz) as
/// an Ogg Vorbis stream in ABR mode at `kbps`.
pub(crate) fn encode(
    planes: &[Vec<f32>],
    rate: u32,
    kbps: u32,
    serial: i32,
    tags: &[(&str, String)],
) -> Result<Vec<u8>, String> {
    let rate_nz = NonZeroU32::new(rate).ok_or("sample rate 0")?;
    let channels =
        u8::try_from(planes.len()).ok().and_then(NonZeroU8::new).ok_or("unsupported channel count")?;
    let bitrate = NonZeroU32::new(kbps * 1000).ok_or("bitrate 0")?;
    let frames = planes[0].len();
    let mut out = Vec::with_capacity(frames / rate.max(1) as usize * kbps as usize * 125 + 8192);
    let mut builder = VorbisEncoderBuilder::new_with_serial(rate_nz, channels, &mut out, serial);
    builder.bitrate_management_strategy(VorbisBitrateManagementStrategy::Abr { average_bitrate: bitrate });
    for (tag, value) in tags {
        builder.comment_tag(*tag, value.as_str()).map_err(|e| e.to_string())?;
    }
    builder.minimum_page_data_size(Some(page_fill(kbps)));
    let mut encoder = builder.build().map_err(|e| e.to_string())?;
    let mut start = 0;
    while start < frames {
        let end = (start + BLOCK_FRAMES).min(frames);
        let block: Vec<&[f32]> = planes.iter().map(|p| &p[start..end]).collect();
        encoder.encode_audio_block(&block).map_err(|e| e.to_string())?;
        start = end;
    }
    encoder.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_id_names_the_library() {
        let id = encoder_id();
        assert!(id.starts_with("vorbis_rs 0.5.6 ("), "{id}");
        assert!(!id.contains("unknown"), "{id}");
        let tail = format!(" abr; cadenza-transcoder {} r1", env!("CARGO_PKG_VERSION"));
        assert!(id.ends_with(&tail), "{id}");
    }

    #[test]
    fn serials_are_per_rung_and_stable() {
        let sha = [7u8; 32];
        assert_eq!(stream_serial(&sha, Rung::K96), stream_serial(&sha, Rung::K96));
        assert_ne!(stream_serial(&sha, Rung::K96), stream_serial(&sha, Rung::K160));
    }

    #[test]
    fn libvorbis_refuses_24_kbps_at_44_1_khz_stereo() {
        // The reason the 24 kbps rung is 22.05 kHz mono.
        let planes = vec![vec![0.0f32; 4410]; 2];
        assert!(encode(&planes, 44_100, 24, 1, &[]).is_err());
        assert!(encode(&planes[..1], 22_050, 24, 1, &[]).is_ok());
    }
}
