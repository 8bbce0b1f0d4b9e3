//! Reading Ogg pages one at a time from any `Read`, in constant memory.

use std::io::{self, Read};

use super::{CAPTURE, HEADER_LEN, OggError, Page, parse_page};

/// Reads back-to-back pages from a stream (strict, as [`super::parse_pages`]:
/// no junk between pages, no trailing bytes), verifying every CRC. Only the
/// current page is held in memory.
#[derive(Debug)]
pub struct PageReader<R> {
    inner: R,
    /// Byte offset of the next page in the stream.
    offset: u64,
    buf: Vec<u8>,
}

/// An I/O error while reading pages, or a malformed page.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Ogg(#[from] OggError),
}

impl<R: Read> PageReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, offset: 0, buf: Vec::with_capacity(8 * 1024) }
    }

    /// Bytes consumed so far: the offset of the next page.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next page, or `None` at a clean end of the stream. The page
    /// borrows the reader's buffer; its `offset` is its place in the stream.
    pub fn next_page(&mut self) -> Result<Option<Page<'_>>, ReadError> {
        let offset = usize::try_from(self.offset).map_err(|_| OggError::Truncated {
            offset: usize::MAX,
            needed: 0,
            available: 0,
        })?;
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        let got = read_full(&mut self.inner, &mut self.buf)?;
        if got == 0 {
            return Ok(None);
        }
        let truncated = |needed: usize, available: usize| OggError::Truncated { offset, needed, available };
        if got < HEADER_LEN {
            if !self.buf[..got.min(CAPTURE.len())].starts_with(&CAPTURE[..got.min(CAPTURE.len())]) {
                return Err(OggError::Capture { offset }.into());
            }
            return Err(truncated(HEADER_LEN, got).into());
        }
        let segments = usize::from(self.buf[26]);
        self.buf.resize(HEADER_LEN + segments, 0);
        let got = read_full(&mut self.inner, &mut self.buf[HEADER_LEN..])?;
        if got < segments {
            return Err(truncated(HEADER_LEN + segments, HEADER_LEN + got).into());
        }
        let body: usize = self.buf[HEADER_LEN..].iter().map(|&l| usize::from(l)).sum();
        let head = self.buf.len();
        self.buf.resize(head + body, 0);
        let got = read_full(&mut self.inner, &mut self.buf[head..])?;
        if got < body {
            return Err(truncated(head + body, head + got).into());
        }
        self.offset += self.buf.len() as u64;
        let mut page = parse_page(&self.buf, 0).map_err(|e| relocate(e, offset))?;
        page.offset = offset;
        Ok(Some(page))
    }
}

/// Read until `buf` is full or the stream ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `e`, found in a buffer holding one page, with the page's offset in the
/// stream.
fn relocate(e: OggError, at: usize) -> OggError {
    match e {
        OggError::Capture { offset } => OggError::Capture { offset: offset + at },
        OggError::Version { offset, version } => OggError::Version { offset: offset + at, version },
        OggError::Truncated { offset, needed, available } => {
            OggError::Truncated { offset: offset + at, needed, available }
        }
        OggError::Crc { offset, found, computed } => OggError::Crc { offset: offset + at, found, computed },
        OggError::Stream { offset, reason } => OggError::Stream { offset: offset + at, reason },
        OggError::Empty => OggError::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogg::{StreamChecker, parse_pages, vorbis_stream_info};

    fn tiny_stream() -> Vec<u8> {
        let planes = vec![vec![0.25f32; 22_050]];
        crate::encode::encode_to_vec(&planes, 22_050, 24, 9).unwrap()
    }

    #[test]
    fn reads_the_same_pages_as_the_slice_parser() {
        let bytes = tiny_stream();
        let pages = parse_pages(&bytes).unwrap();
        let mut reader = PageReader::new(&bytes[..]);
        let mut checker = StreamChecker::new();
        let mut n = 0;
        while let Some(page) = reader.next_page().unwrap() {
            assert_eq!(page, pages[n]);
            checker.page(&page).unwrap();
            n += 1;
        }
        assert_eq!(n, pages.len());
        assert_eq!(reader.offset(), bytes.len() as u64);
        assert_eq!(checker.finish().unwrap(), vorbis_stream_info(&bytes).unwrap());
    }

    #[test]
    fn damage_is_reported_where_it_is() {
        let bytes = tiny_stream();
        let second = parse_pages(&bytes).unwrap()[1].offset;
        let mut bad = bytes.clone();
        bad[second + 40] ^= 1;
        let mut reader = PageReader::new(&bad[..]);
        reader.next_page().unwrap();
        match reader.next_page() {
            Err(ReadError::Ogg(OggError::Crc { offset, .. })) => assert_eq!(offset, second),
            other => panic!("{other:?}"),
        }
        for cut in [1, 20, 27, bytes.len() - 1] {
            let mut reader = PageReader::new(&bytes[..cut]);
            let mut result = Ok(None);
            for _ in 0..1000 {
                result = reader.next_page().map(|p| p.map(|p| p.offset));
                if !matches!(result, Ok(Some(_))) {
                    break;
                }
            }
            assert!(
                matches!(result, Err(ReadError::Ogg(OggError::Truncated { .. }))),
                "cut {cut}: {result:?}"
            );
        }
        let mut reader = PageReader::new(&b"RIFF...."[..]);
        assert!(matches!(reader.next_page(), Err(ReadError::Ogg(OggError::Capture { offset: 0 }))));
    }
}
