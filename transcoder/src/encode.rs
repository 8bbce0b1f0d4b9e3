//! Ogg Vorbis encoding of one rung (vorbis_rs, libvorbis aoTuV; VBR or ABR),
//! and the encoder identity recorded in manifests.

use std::io::Write;
use std::num::{NonZeroU8, NonZeroU32};
use std::sync::OnceLock;

use cadenza_config::ladder::Rung;
use cadenza_config::manifest::Loudness;
use sha2::{Digest, Sha256};
use vorbis_rs::{VorbisBitrateManagementStrategy, VorbisEncoder, VorbisEncoderBuilder};

use crate::loudness::REPLAYGAIN_REFERENCE_LUFS;

/// The vorbis_rs release this crate is built against (kept in step with the
/// workspace `Cargo.toml`).
const VORBIS_RS_VERSION: &str = "0.5.6";
/// Bump whenever the bytes this crate produces for the same master change
/// (new tags, different resampler settings, …) so that re-ingesting an
/// unchanged master re-encodes instead of reporting `Unchanged`.
const PIPELINE_REVISION: u32 = 5;
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
            "vorbis_rs {VORBIS_RS_VERSION} ({vendor}) calibrated vbr; cadenza-transcoder {} r{PIPELINE_REVISION}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// The vendor string libvorbis writes into the comment header, found by
/// encoding a tiny block of silence.
fn libvorbis_vendor() -> Option<String> {
    let silence = [vec![0.0f32; 64]];
    let bytes = encode_to_vec(&silence, 44_100, 64, 0).ok()?;
    let pages = crate::ogg::parse_pages(&bytes).ok()?;
    crate::ogg::parse_comment(pages.get(1)?.body).map(|(vendor, _)| vendor)
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

/// ReplayGain 2.0 tags for a rendition from its own loudness (and its
/// album's, when the album was ingested together), plus the reference
/// level. Fixed-precision text, so deterministic.
pub(crate) fn replaygain_tags(track: &Loudness, album: Option<&Loudness>) -> Vec<(&'static str, String)> {
    let gain = |l: &Loudness| format!("{:.2} dB", REPLAYGAIN_REFERENCE_LUFS - l.integrated_lufs + 0.0);
    let peak = |l: &Loudness| format!("{:.6}", 10f64.powf(l.true_peak_dbtp / 20.0));
    let mut tags = vec![("REPLAYGAIN_TRACK_GAIN", gain(track)), ("REPLAYGAIN_TRACK_PEAK", peak(track))];
    if let Some(album) = album {
        tags.push(("REPLAYGAIN_ALBUM_GAIN", gain(album)));
        tags.push(("REPLAYGAIN_ALBUM_PEAK", peak(album)));
    }
    tags.push(("REPLAYGAIN_REFERENCE_LOUDNESS", format!("{REPLAYGAIN_REFERENCE_LUFS:.2} LUFS")));
    tags
}

/// Bytes of packet data libogg gathers before ending a page: about half a
/// second of audio, capped at libogg's usual 4 kB. At 96 kbps and up that is
/// the default (pages of 0.1–0.35 s); at 24 kbps the default would make
/// 1.4 s pages, too coarse for a one-point-per-second seek index, at a
/// cost of ~1 % more page headers.
fn page_fill(kbps: u32) -> u16 {
    (kbps * 1000 / 8 / 2).clamp(512, 4096) as u16
}

/// Whether libvorbis takes `strategy` for `channels` at `rate` Hz (each
/// mode has a range of bitrates it can aim at).
pub(crate) fn accepts(rate: u32, channels: u8, strategy: Strategy) -> bool {
    RungEncoder::new(std::io::sink(), rate, channels, strategy, 96, 0).is_ok()
}

/// The average bitrate asked of libvorbis for `rung` in ABR mode (the
/// calibration's fallback), in bit/s. ABR aims
/// its packets at the nominal rate, and the Ogg page headers (27 bytes plus
/// one lacing value per packet) come on top: files come out about 1.5 %
/// over at 96 kbps and up and 3 % over at 24 kbps (where pages are smaller),
/// measured on the benchmark corpus (`loadtest/bench-transcode.sh`; oggenc
/// --managed shows the same overshoot). Asking for that much less puts the
/// file's bitrate on the nominal one; the 24 kbps rung's ~4 KB of headers
/// stay on top (0.2 kbps over 3 minutes).
pub(crate) fn abr_target(rung: Rung) -> u32 {
    let permille: u32 = match rung {
        Rung::K24 => 970,
        _ => 985,
    };
    rung.kbps() * permille
}

/// How libvorbis is asked for a bitrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Quality VBR chosen by libvorbis' estimate for this bitrate (bit/s),
    /// the rate-management engine off: fast, but the estimate misses.
    Vbr(u32),
    /// Average bitrate (bit/s) held by the rate-management engine: five
    /// times the CPU.
    Abr(u32),
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::Vbr(t) => write!(f, "vbr {:.2}", f64::from(*t) / 1000.0),
            Strategy::Abr(t) => write!(f, "abr {:.2}", f64::from(*t) / 1000.0),
        }
    }
}

/// One rendition being encoded: an Ogg Vorbis stream written to
/// `W` as audio arrives, with an empty comment header (the tags are added
/// by [`crate::ogg::retag`] once the file has been measured).
pub(crate) struct RungEncoder<W: Write> {
    encoder: VorbisEncoder<W>,
    channels: usize,
    frames: u64,
}

impl<W: Write> std::fmt::Debug for RungEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RungEncoder").field("channels", &self.channels).field("frames", &self.frames).finish()
    }
}

impl<W: Write> RungEncoder<W> {
    /// Start a stream of `channels` at `rate` Hz averaging `bitrate` bit/s.
    pub(crate) fn new(
        sink: W,
        rate: u32,
        channels: u8,
        strategy: Strategy,
        kbps: u32,
        serial: i32,
    ) -> Result<Self, String> {
        let rate_nz = NonZeroU32::new(rate).ok_or("sample rate 0")?;
        let channels_nz = NonZeroU8::new(channels).ok_or("no channels")?;
        let management = match strategy {
            Strategy::Vbr(t) => VorbisBitrateManagementStrategy::Vbr {
                target_bitrate: NonZeroU32::new(t).ok_or("bitrate 0")?,
            },
            Strategy::Abr(t) => VorbisBitrateManagementStrategy::Abr {
                average_bitrate: NonZeroU32::new(t).ok_or("bitrate 0")?,
            },
        };
        let mut builder = VorbisEncoderBuilder::new_with_serial(rate_nz, channels_nz, sink, serial);
        builder.bitrate_management_strategy(management);
        builder.minimum_page_data_size(Some(page_fill(kbps)));
        let encoder = builder.build().map_err(|e| e.to_string())?;
        Ok(Self { encoder, channels: usize::from(channels), frames: 0 })
    }

    /// Encode the next frames (one plane per channel, equal lengths).
    pub(crate) fn push(&mut self, planes: &[Vec<f32>]) -> Result<(), String> {
        if planes.len() != self.channels {
            return Err(format!("{} planes for a {}-channel stream", planes.len(), self.channels));
        }
        let frames = planes[0].len();
        let mut start = 0;
        while start < frames {
            let end = (start + BLOCK_FRAMES).min(frames);
            let block: Vec<&[f32]> = planes.iter().map(|p| &p[start..end]).collect();
            self.encoder.encode_audio_block(&block).map_err(|e| e.to_string())?;
            start = end;
        }
        self.frames += frames as u64;
        Ok(())
    }

    /// Frames pushed so far.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// End the stream and hand back the sink.
    pub(crate) fn finish(self) -> Result<W, String> {
        self.encoder.finish().map_err(|e| e.to_string())
    }
}

/// Encode planar `planes` (one per channel, equal lengths, at `rate` Hz)
/// in memory, at `kbps` nominal (ABR, no bitrate correction). For tests and
/// the vendor probe.
pub(crate) fn encode_to_vec(
    planes: &[Vec<f32>],
    rate: u32,
    kbps: u32,
    serial: i32,
) -> Result<Vec<u8>, String> {
    let channels = u8::try_from(planes.len()).map_err(|_| "too many channels")?;
    let mut encoder = RungEncoder::new(Vec::new(), rate, channels, Strategy::Abr(kbps * 1000), kbps, serial)?;
    encoder.push(planes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_id_names_the_library() {
        let id = encoder_id();
        assert!(id.starts_with("vorbis_rs 0.5.6 ("), "{id}");
        assert!(!id.contains("unknown"), "{id}");
        let tail = format!(" calibrated vbr; cadenza-transcoder {} r5", env!("CARGO_PKG_VERSION"));
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
        assert!(encode_to_vec(&planes, 44_100, 24, 1).is_err());
        assert!(encode_to_vec(&planes[..1], 22_050, 24, 1).is_ok());
    }

    #[test]
    fn replaygain_tags_track_album_and_reference() {
        let track =
            Loudness { integrated_lufs: -9.5, loudness_range_lu: 5.0, true_peak_dbtp: -0.5, gain_db: -4.5 };
        let album = Loudness { integrated_lufs: -10.0, ..track };
        let tags = replaygain_tags(&track, Some(&album));
        let text: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            text,
            [
                "REPLAYGAIN_TRACK_GAIN=-8.50 dB",
                "REPLAYGAIN_TRACK_PEAK=0.944061",
                "REPLAYGAIN_ALBUM_GAIN=-8.00 dB",
                "REPLAYGAIN_ALBUM_PEAK=0.944061",
                "REPLAYGAIN_REFERENCE_LOUDNESS=-18.00 LUFS",
            ]
        );
        assert_eq!(replaygain_tags(&track, None).len(), 3);
    }
}
