//! Rewriting the comment header of an Ogg Vorbis stream.
//!
//! The transcoder encodes first and measures the decoded file afterwards,
//! so the ReplayGain tags (and album tags, known only when the whole album
//! is done) cannot be in the comment header libvorbis writes. [`retag`]
//! copies a stream with a new comment packet: the identification page as
//! it was, the comment and setup packets laid out on fresh pages, then
//! every audio page with its sequence number shifted by the change in
//! header pages and its CRC recomputed. Audio bytes are untouched, so the
//! result decodes to exactly the same samples.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::read::ReadError;
use super::{
    CAPTURE, FLAG_BOS, FLAG_CONTINUED, NO_GRANULE, OggError, PageReader, Reason, StreamChecker, StreamInfo,
    crc32, parse_page, u32_le,
};

/// Most segments (lacing values) in one page.
const MAX_SEGMENTS: usize = 255;

/// What [`retag`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retagged {
    /// The output, checked page by page as it was written.
    pub info: StreamInfo,
    /// The encoder's vendor string, from the comment header.
    pub vendor: String,
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the bytes written.
    pub sha256: [u8; 32],
}

/// Why a stream could not be retagged.
#[derive(Debug, thiserror::Error)]
pub enum RetagError {
    /// The input is not a well-formed Ogg Vorbis stream.
    #[error("{0}")]
    Input(#[from] ReadError),
    /// Writing the output failed.
    #[error("writing the retagged stream: {0}")]
    Output(#[source] io::Error),
}

impl From<OggError> for RetagError {
    fn from(e: OggError) -> Self {
        RetagError::Input(ReadError::Ogg(e))
    }
}

/// Copy the Ogg Vorbis stream `input` to `output` with a comment header
/// holding the input's vendor string and `tags` (`KEY=value` each, keys as
/// given), and nothing else of the old comments. With `nominal_bitrate`
/// (bit/s), the identification header's nominal-bitrate hint is set to it:
/// a calibrated VBR encode otherwise shows the target of its last pass
/// there, not the rung. The output is checked as a whole stream
/// ([`StreamChecker`]) while it is written.
pub fn retag<R: Read, W: Write>(
    input: R,
    mut output: W,
    tags: &[(&str, String)],
    nominal_bitrate: Option<u32>,
) -> Result<Retagged, RetagError> {
    let mut reader = PageReader::new(input);
    let mut out = Sink { inner: &mut output, hash: Sha256::new(), size: 0, checker: StreamChecker::new() };

    // The identification header: alone on the first page.
    let (serial, first_flags, granule, id) = {
        let page = reader.next_page()?.ok_or(OggError::Empty)?;
        if page.flags & FLAG_BOS == 0 {
            return Err(OggError::Stream { offset: page.offset, reason: Reason::NotBos }.into());
        }
        if page.lacing.last().is_none_or(|&l| l == 255) || page.packets_finished() != 1 {
            return Err(OggError::Stream { offset: page.offset, reason: Reason::NotVorbis }.into());
        }
        let mut id = page.body.to_vec();
        // Vorbis I §4.2.2: bitrate_nominal is the i32 at bytes 20..24.
        if let (Some(n), Some(field)) = (nominal_bitrate, id.get_mut(20..24)) {
            field.copy_from_slice(&n.to_le_bytes());
        }
        (page.serial, page.flags, page.granule, id)
    };
    out.page(first_flags, granule, serial, 0, &lacing_of(id.len()), &id)?;

    // The comment and setup packets, which may span pages.
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    let mut old_header_pages = 1u32;
    while packets.len() < 2 {
        let page = reader.next_page()?.ok_or(OggError::Stream { offset: 0, reason: Reason::NoAudio })?;
        old_header_pages += 1;
        let mut at = 0;
        for &l in page.lacing {
            let len = usize::from(l);
            current.extend_from_slice(&page.body[at..at + len]);
            at += len;
            if l < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        if packets.len() > 2 || (packets.len() == 2 && !current.is_empty()) {
            return Err(
                OggError::Stream { offset: page.offset, reason: Reason::HeadersShareAudioPage }.into()
            );
        }
    }
    let vendor = parse_comment(&packets[0])
        .map(|(vendor, _)| vendor)
        .ok_or(OggError::Stream { offset: 0, reason: Reason::NotVorbis })?;
    let comment = comment_packet(&vendor, tags);
    let new_header_pages = 1 + out.packets(serial, 1, &[&comment, &packets[1]])?;

    // Audio pages: same bytes, shifted sequence numbers, fresh CRCs.
    while let Some(page) = reader.next_page()? {
        let sequence = i64::from(page.sequence) + i64::from(new_header_pages) - i64::from(old_header_pages);
        let sequence = u32::try_from(sequence)
            .map_err(|_| OggError::Stream { offset: page.offset, reason: Reason::SequenceGap })?;
        out.page(page.flags, page.granule, page.serial, sequence, page.lacing, page.body)?;
    }
    out.inner.flush().map_err(RetagError::Output)?;
    let info = out.checker.finish()?;
    Ok(Retagged { info, vendor, size: out.size, sha256: out.hash.finalize().into() })
}

/// Where [`retag`] writes: the output, its running hash and size, and the
/// checker every written page goes through.
struct Sink<'a, W> {
    inner: &'a mut W,
    hash: Sha256,
    size: u64,
    checker: StreamChecker,
}

impl<W: Write> Sink<'_, W> {
    /// Write one page and check it.
    fn page(
        &mut self,
        flags: u8,
        granule: u64,
        serial: u32,
        sequence: u32,
        lacing: &[u8],
        body: &[u8],
    ) -> Result<(), RetagError> {
        let mut page = Vec::with_capacity(27 + lacing.len() + body.len());
        page.extend_from_slice(CAPTURE);
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&serial.to_le_bytes());
        page.extend_from_slice(&sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(lacing);
        page.extend_from_slice(body);
        let crc = crc32(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        let mut parsed = parse_page(&page, 0)?;
        parsed.offset = usize::try_from(self.size).unwrap_or(usize::MAX);
        self.checker.page(&parsed)?;
        self.inner.write_all(&page).map_err(RetagError::Output)?;
        self.hash.update(&page);
        self.size += page.len() as u64;
        Ok(())
    }

    /// Lay `packets` out on pages of at most 255 segments, the first with
    /// sequence number `sequence`, as libogg's flush does: a page that
    /// starts inside a packet is flagged continued, and a page on which no
    /// packet finishes has no granule. Header packets have granule 0.
    /// Returns the pages written.
    fn packets(&mut self, serial: u32, sequence: u32, packets: &[&[u8]]) -> Result<u32, RetagError> {
        // (segment length, last segment of its packet?)
        let mut segments: Vec<(u8, bool)> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        for p in packets {
            let lacing = lacing_of(p.len());
            let n = lacing.len();
            segments.extend(lacing.into_iter().enumerate().map(|(i, l)| (l, i + 1 == n)));
            bytes.extend_from_slice(p);
        }
        let mut pages = 0;
        let mut at = 0;
        let mut continued = false;
        for chunk in segments.chunks(MAX_SEGMENTS) {
            let lacing: Vec<u8> = chunk.iter().map(|s| s.0).collect();
            let len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
            let finished = chunk.iter().any(|s| s.1);
            let flags = if continued { FLAG_CONTINUED } else { 0 };
            let granule = if finished { 0 } else { NO_GRANULE };
            self.page(flags, granule, serial, sequence + pages, &lacing, &bytes[at..at + len])?;
            at += len;
            pages += 1;
            continued = chunk.last().is_some_and(|s| !s.1);
        }
        Ok(pages)
    }
}

/// Lacing values of one packet of `len` bytes: 255 for each full segment,
/// then the remainder (0 when `len` is a multiple of 255).
fn lacing_of(len: usize) -> Vec<u8> {
    let mut lacing = vec![255u8; len / 255];
    lacing.push((len % 255) as u8);
    lacing
}

/// A Vorbis comment header packet (Vorbis I §5): vendor string, then
/// `KEY=value` for each tag, then the framing bit.
pub fn comment_packet(vendor: &str, tags: &[(&str, String)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(64 + vendor.len() + tags.len() * 40);
    p.push(3);
    p.extend_from_slice(b"vorbis");
    p.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    p.extend_from_slice(vendor.as_bytes());
    p.extend_from_slice(&(tags.len() as u32).to_le_bytes());
    for (key, value) in tags {
        let entry = format!("{key}={value}");
        p.extend_from_slice(&(entry.len() as u32).to_le_bytes());
        p.extend_from_slice(entry.as_bytes());
    }
    p.push(1);
    p
}

/// The vendor string and `KEY=value` entries of a comment header packet,
/// or `None` when it is not one.
pub fn parse_comment(p: &[u8]) -> Option<(String, Vec<String>)> {
    fn field(p: &[u8], at: &mut usize) -> Option<String> {
        let len = u32_le(p.get(*at..*at + 4)?, 0) as usize;
        let start = *at + 4;
        let s = p.get(start..start.checked_add(len)?)?;
        *at = start + len;
        String::from_utf8(s.to_vec()).ok()
    }
    if p.get(..7)? != b"\x03vorbis" {
        return None;
    }
    let mut at = 7;
    let vendor = field(p, &mut at)?;
    let count = u32_le(p.get(at..at + 4)?, 0);
    at += 4;
    // Each entry takes at least 4 bytes: a count beyond that is a lie.
    if count as usize > p.len() / 4 {
        return None;
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        entries.push(field(p, &mut at)?);
    }
    Some((vendor, entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogg::{parse_pages, vorbis_stream_info};

    fn encoded(seconds: usize) -> Vec<u8> {
        let planes: Vec<Vec<f32>> = (0..2)
            .map(|c| {
                (0..44_100 * seconds)
                    .map(|i| ((i * (c + 3)) as f32 * 0.01).sin() * 0.3 + ((i * 7919) % 101) as f32 * 1e-4)
                    .collect()
            })
            .collect();
        crate::encode::encode_to_vec(&planes, 44_100, 96, 42).unwrap()
    }

    fn retagged(input: &[u8], tags: &[(&str, String)]) -> (Vec<u8>, Retagged) {
        let mut out = Vec::new();
        let r = retag(input, &mut out, tags, None).unwrap();
        (out, r)
    }

    #[test]
    fn tags_change_only_the_comment_and_page_numbers() {
        let input = encoded(3);
        let tags = [("REPLAYGAIN_TRACK_GAIN", "-3.21 dB".to_owned()), ("TITLE", "x".to_owned())];
        let (out, r) = retagged(&input, &tags);
        assert_eq!(r.size, out.len() as u64);
        assert_eq!(r.sha256, <[u8; 32]>::from(Sha256::digest(&out)));
        assert_eq!(r.info, vorbis_stream_info(&out).unwrap());
        let before = vorbis_stream_info(&input).unwrap();
        assert_eq!(r.info.frames, before.frames);
        assert_eq!(r.info.pages, before.pages);
        // The comment carries the vendor and exactly our tags.
        let pages = parse_pages(&out).unwrap();
        let (vendor, entries) = parse_comment(pages[1].body).unwrap();
        assert_eq!(vendor, r.vendor);
        assert!(vendor.contains("Xiph") || vendor.contains("aoTuV"), "{vendor}");
        assert_eq!(entries, ["REPLAYGAIN_TRACK_GAIN=-3.21 dB", "TITLE=x"]);
        // Audio pages keep their bodies and granules.
        let old = parse_pages(&input).unwrap();
        for (a, b) in old.iter().zip(&pages).skip(2) {
            assert_eq!((a.body, a.granule, a.flags), (b.body, b.granule, b.flags));
        }
        // Retagging again with the same tags is byte-identical.
        assert_eq!(retagged(&out, &tags).0, out);
        // The identification header is kept, but for the nominal bitrate
        // when one is given.
        assert_eq!(pages[0].body, parse_pages(&input).unwrap()[0].body);
        let mut with_nominal = Vec::new();
        let r = retag(&input[..], &mut with_nominal, &tags, Some(96_000)).unwrap();
        let id = parse_pages(&with_nominal).unwrap()[0].body.to_vec();
        assert_eq!(u32::from_le_bytes(id[20..24].try_into().unwrap()), 96_000);
        assert_eq!(r.info, vorbis_stream_info(&with_nominal).unwrap());
    }

    #[test]
    fn a_comment_spanning_pages_renumbers_the_audio_pages() {
        let input = encoded(2);
        // 300 tags of 300 bytes: > 255 segments, so the headers need more
        // pages than before and every audio page moves up.
        let tags: Vec<(&str, String)> = (0..300).map(|i| ("NOTE", format!("{i:0>295}"))).collect();
        let (out, r) = retagged(&input, &tags);
        let before = vorbis_stream_info(&input).unwrap();
        assert!(r.info.pages > before.pages, "{} vs {}", r.info.pages, before.pages);
        assert_eq!(r.info.frames, before.frames);
        let pages = parse_pages(&out).unwrap();
        assert!(pages.iter().enumerate().all(|(i, p)| p.sequence == i as u32));
        assert!(pages[2].flags & FLAG_CONTINUED != 0);
        // And back to a short comment: fewer pages again, same audio.
        let (back, _) = retagged(&out, &[]);
        assert_eq!(vorbis_stream_info(&back).unwrap().pages, before.pages);
    }

    #[test]
    fn damaged_input_is_refused_and_nothing_panics() {
        let input = encoded(1);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bad = input.clone();
            if i % 2 == 0 {
                bad.truncate((x as usize) % input.len());
            } else {
                let at = (x as usize) % bad.len();
                bad[at] ^= 1 << (x % 8);
            }
            let result = retag(&bad[..], &mut Vec::new(), &[], None);
            assert!(result.is_err(), "damage {i} was not noticed");
        }
    }
}
