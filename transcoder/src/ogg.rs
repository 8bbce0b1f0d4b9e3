//! A small, strict Ogg page parser (RFC 3533) and the Vorbis facts we derive
//! from it: total frames, duration and the seek index.
//!
//! [`parse_pages`] and [`vorbis_stream_info`] take arbitrary bytes and never
//! panic: every length is bounds-checked and every sum is checked, so they
//! are safe to fuzz and to run on untrusted files. [`PageReader`] and
//! [`StreamChecker`] do the same one page at a time over any `Read`, so a
//! file of any length is checked in constant memory. [`retag`] rewrites a
//! stream's comment header (the ReplayGain tags are known only after the
//! file is encoded and measured) and renumbers the pages after it. The
//! transcoder runs these on its own output before publishing anything, so a
//! file with a bad page CRC, a torn page or a wrong sample count is never
//! published.

use std::fmt;

use cadenza_config::manifest::SeekPoint;

/// `OggS`, the capture pattern at the start of every page.
pub const CAPTURE: &[u8; 4] = b"OggS";
/// Bytes in a page header before the lacing values.
const HEADER_LEN: usize = 27;
/// Header-type flag: the page starts with the continuation of a packet.
pub const FLAG_CONTINUED: u8 = 0x01;
/// Header-type flag: first page of a logical stream.
pub const FLAG_BOS: u8 = 0x02;
/// Header-type flag: last page of a logical stream.
pub const FLAG_EOS: u8 = 0x04;
/// Granule position meaning "no packet finishes on this page".
pub const NO_GRANULE: u64 = u64::MAX;
/// One seek point per this many milliseconds of audio (see [`StreamChecker`]).
pub const SEEK_INTERVAL_MS: u64 = 1000;

/// One Ogg page, borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page<'a> {
    /// Byte offset of the page's `OggS` in the input.
    pub offset: usize,
    /// Total length of the page: header, lacing values and body.
    pub len: usize,
    /// Header-type flags ([`FLAG_CONTINUED`], [`FLAG_BOS`], [`FLAG_EOS`]).
    pub flags: u8,
    /// Granule position of the last packet that finishes on this page, or
    /// [`NO_GRANULE`] when none does. For Vorbis: samples per channel.
    pub granule: u64,
    /// Bitstream serial number.
    pub serial: u32,
    /// Page sequence number.
    pub sequence: u32,
    /// Lacing values (segment table).
    pub lacing: &'a [u8],
    /// Page body: the concatenated segments.
    pub body: &'a [u8],
}

impl Page<'_> {
    /// Packets that finish on this page: lacing values below 255.
    pub fn packets_finished(&self) -> usize {
        self.lacing.iter().filter(|&&l| l < 255).count()
    }

    /// True when the last segment is 255 bytes, so the last packet continues
    /// on the next page.
    pub fn ends_mid_packet(&self) -> bool {
        self.lacing.last() == Some(&255)
    }
}

/// Why bytes are not the Ogg stream we expect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OggError {
    #[error("no data")]
    Empty,
    #[error("no OggS capture pattern at byte {offset}")]
    Capture { offset: usize },
    #[error("page at byte {offset} has unsupported version {version}")]
    Version { offset: usize, version: u8 },
    #[error("page at byte {offset} is truncated: needs {needed} bytes, {available} left")]
    Truncated { offset: usize, needed: usize, available: usize },
    #[error("page at byte {offset} has crc {found:08x}, computed {computed:08x}")]
    Crc { offset: usize, found: u32, computed: u32 },
    #[error("page at byte {offset}: {reason}")]
    Stream { offset: usize, reason: Reason },
}

/// What is wrong with a page sequence that parsed as pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NotBos,
    UnexpectedBos,
    SerialChanged,
    SequenceGap,
    NotVorbis,
    BadIdentification,
    HeadersShareAudioPage,
    NoAudio,
    GranuleWentBack,
    NoEos,
    DataAfterEos,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::NotBos => "first page lacks the beginning-of-stream flag",
            Reason::UnexpectedBos => "beginning-of-stream flag after the first page",
            Reason::SerialChanged => "stream serial changes (multiplexed or chained)",
            Reason::SequenceGap => "page sequence number is not the previous plus one",
            Reason::NotVorbis => "first packet is not a vorbis identification header",
            Reason::BadIdentification => "vorbis identification header has zero rate or channels",
            Reason::HeadersShareAudioPage => "audio starts on the last header page",
            Reason::NoAudio => "no audio pages after the three header packets",
            Reason::GranuleWentBack => "granule position decreases",
            Reason::NoEos => "last page lacks the end-of-stream flag",
            Reason::DataAfterEos => "pages after the end-of-stream page",
        })
    }
}

/// The Ogg CRC-32: polynomial 0x04c11db7, initial value 0, no reflection, no
/// final xor (RFC 3533 §6).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(0, bytes)
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = (crc << 8) ^ CRC_TABLE[(((crc >> 24) as u8) ^ b) as usize];
    }
    crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 { (r << 1) ^ 0x04c1_1db7 } else { r << 1 };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

pub(crate) fn u32_le(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn u64_le(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// Parse one page starting exactly at `offset`, verifying its CRC.
pub fn parse_page(bytes: &[u8], offset: usize) -> Result<Page<'_>, OggError> {
    let rest = bytes.get(offset..).unwrap_or_default();
    let truncated = |needed: usize| OggError::Truncated { offset, needed, available: rest.len() };
    if rest.len() < CAPTURE.len() || &rest[..CAPTURE.len()] != CAPTURE {
        if rest.len() < CAPTURE.len() && CAPTURE.starts_with(rest) {
            return Err(truncated(HEADER_LEN));
        }
        return Err(OggError::Capture { offset });
    }
    if rest.len() < HEADER_LEN {
        return Err(truncated(HEADER_LEN));
    }
    let version = rest[4];
    if version != 0 {
        return Err(OggError::Version { offset, version });
    }
    let segments = usize::from(rest[26]);
    let lacing_end = HEADER_LEN + segments;
    let lacing = rest.get(HEADER_LEN..lacing_end).ok_or(truncated(lacing_end))?;
    let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
    let len = lacing_end + body_len;
    let page = rest.get(..len).ok_or(truncated(len))?;
    let found = u32_le(page, 22);
    let computed = {
        let crc = crc32_update(0, &page[..22]);
        let crc = crc32_update(crc, &[0; 4]);
        crc32_update(crc, &page[26..])
    };
    if found != computed {
        return Err(OggError::Crc { offset, found, computed });
    }
    Ok(Page {
        offset,
        len,
        flags: page[5],
        granule: u64_le(page, 6),
        serial: u32_le(page, 14),
        sequence: u32_le(page, 18),
        lacing,
        body: &page[lacing_end..],
    })
}

/// Parse `bytes` as back-to-back Ogg pages from byte 0 to the end, verifying
/// every CRC. Strict: no junk between pages and no trailing bytes, which is
/// what our encoder writes and what an edge serves.
pub fn parse_pages(bytes: &[u8]) -> Result<Vec<Page<'_>>, OggError> {
    if bytes.is_empty() {
        return Err(OggError::Empty);
    }
    let mut pages = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let page = parse_page(bytes, offset)?;
        offset += page.len;
        pages.push(page);
    }
    Ok(pages)
}

/// What a published Ogg Vorbis file is, as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// Sample rate from the identification header.
    pub sample_rate: u32,
    /// Channels from the identification header.
    pub channels: u8,
    /// Samples per channel: the last page's granule position.
    pub frames: u64,
    /// `frames` in milliseconds, rounded to nearest.
    pub duration_ms: u64,
    /// About one point per [`SEEK_INTERVAL_MS`]; see [`StreamChecker`].
    pub seek: Vec<SeekPoint>,
    /// Offset of the first audio page (after the three header packets).
    pub audio_offset: usize,
    /// Pages in the file.
    pub pages: usize,
}

/// Check that `bytes` is one complete logical Ogg Vorbis stream (BOS first,
/// EOS last, one serial, consecutive sequence numbers, good CRCs,
/// non-decreasing granules) and describe it.
pub fn vorbis_stream_info(bytes: &[u8]) -> Result<StreamInfo, OggError> {
    let pages = parse_pages(bytes)?;
    let mut checker = StreamChecker::new();
    for page in &pages {
        checker.page(page)?;
    }
    checker.finish()
}

/// The checks of [`vorbis_stream_info`], one page at a time, so a file of
/// any length can be checked as it streams past (see [`PageReader`]).
#[derive(Clone, Debug, Default)]
pub struct StreamChecker {
    /// From the first page: serial, rate, channels.
    first: Option<(u32, u32, u8)>,
    /// Sequence number, flags and offset of the previous page.
    prev: Option<(u32, u8, usize)>,
    /// Header packets completed so far (3 once audio starts).
    packets: usize,
    audio_offset: Option<usize>,
    seek: Vec<SeekPoint>,
    /// Granule of the last audio page on which a packet finished.
    granule: Option<u64>,
    pages: usize,
}

impl StreamChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Check the next page of the stream.
    pub fn page(&mut self, page: &Page<'_>) -> Result<(), OggError> {
        let stream = |reason| OggError::Stream { offset: page.offset, reason };
        self.pages += 1;
        let Some((serial, rate, _)) = self.first else {
            if page.flags & FLAG_BOS == 0 {
                return Err(stream(Reason::NotBos));
            }
            // Identification header: packet type 1, "vorbis", version u32,
            // channels u8, rate u32 (Vorbis I §4.2.2). It is alone on the
            // first page.
            let id = page.body;
            if id.len() < 16 || id[0] != 1 || &id[1..7] != b"vorbis" || u32_le(id, 7) != 0 {
                return Err(stream(Reason::NotVorbis));
            }
            let (channels, rate) = (id[11], u32_le(id, 12));
            if channels == 0 || rate == 0 {
                return Err(stream(Reason::BadIdentification));
            }
            self.first = Some((page.serial, rate, channels));
            self.prev = Some((page.sequence, page.flags, page.offset));
            return self.header_packets(page);
        };
        if let Some((sequence, flags, _)) = self.prev {
            if page.flags & FLAG_BOS != 0 {
                return Err(stream(Reason::UnexpectedBos));
            }
            if page.serial != serial {
                return Err(stream(Reason::SerialChanged));
            }
            if Some(page.sequence) != sequence.checked_add(1) {
                return Err(stream(Reason::SequenceGap));
            }
            if flags & FLAG_EOS != 0 {
                return Err(stream(Reason::DataAfterEos));
            }
        }
        self.prev = Some((page.sequence, page.flags, page.offset));
        if self.audio_offset.is_none() {
            if self.packets < 3 {
                return self.header_packets(page);
            }
            self.audio_offset = Some(page.offset);
        }
        // An audio page. Its start time is the previous page's granule;
        // pages on which no packet finishes are skipped, since decoding
        // cannot start there.
        if page.granule == NO_GRANULE {
            return Ok(());
        }
        let prev = self.granule.unwrap_or(0);
        if page.granule < prev {
            return Err(stream(Reason::GranuleWentBack));
        }
        let ms = frames_to_ms(prev, rate);
        if self.seek.last().is_none_or(|p| ms / SEEK_INTERVAL_MS > p.ms / SEEK_INTERVAL_MS) {
            self.seek.push(SeekPoint { ms, offset: page.offset as u64 });
        }
        self.granule = Some(page.granule);
        Ok(())
    }

    /// Count the header packets finishing on `page`; the third must end
    /// its page (Vorbis I §A.2).
    fn header_packets(&mut self, page: &Page<'_>) -> Result<(), OggError> {
        self.packets += page.packets_finished();
        if self.packets > 3 || (self.packets == 3 && page.ends_mid_packet()) {
            return Err(OggError::Stream { offset: page.offset, reason: Reason::HeadersShareAudioPage });
        }
        Ok(())
    }

    /// The stream is over: check it ended properly and describe it.
    pub fn finish(self) -> Result<StreamInfo, OggError> {
        let Some((_, sample_rate, channels)) = self.first else {
            return Err(OggError::Empty);
        };
        let (_, flags, last) = self.prev.ok_or(OggError::Empty)?;
        let stream = |reason| OggError::Stream { offset: last, reason };
        if flags & FLAG_EOS == 0 {
            return Err(stream(Reason::NoEos));
        }
        let (Some(audio_offset), Some(frames)) = (self.audio_offset, self.granule) else {
            return Err(stream(Reason::NoAudio));
        };
        Ok(StreamInfo {
            sample_rate,
            channels,
            frames,
            duration_ms: frames_to_ms(frames, sample_rate),
            seek: self.seek,
            audio_offset,
            pages: self.pages,
        })
    }
}

/// `frames` at `rate` in milliseconds, rounded to nearest; saturates instead
/// of overflowing.
pub fn frames_to_ms(frames: u64, rate: u32) -> u64 {
    if rate == 0 {
        return 0;
    }
    let ms = (u128::from(frames) * 1000 + u128::from(rate) / 2) / u128::from(rate);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

mod read;
mod retag;

pub use read::PageReader;
pub use retag::{RetagError, Retagged, comment_packet, parse_comment, retag};

#[cfg(test)]
mod tests;
