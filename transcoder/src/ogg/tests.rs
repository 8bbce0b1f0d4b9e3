//! Unit tests of the Ogg parser on hand-built pages.

use super::*;

/// Build one page with a correct CRC.
fn page(flags: u8, granule: u64, serial: u32, seq: u32, packets: &[&[u8]]) -> Vec<u8> {
    let mut lacing = Vec::new();
    let mut body = Vec::new();
    for p in packets {
        let mut n = p.len();
        while n >= 255 {
            lacing.push(255);
            n -= 255;
        }
        lacing.push(n as u8);
        body.extend_from_slice(p);
    }
    let mut out = Vec::new();
    out.extend_from_slice(CAPTURE);
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    out.extend_from_slice(&body);
    let crc = crc32(&out);
    out[22..26].copy_from_slice(&crc.to_le_bytes());
    out
}

fn ident(rate: u32, channels: u8) -> Vec<u8> {
    let mut id = vec![1];
    id.extend_from_slice(b"vorbis");
    id.extend_from_slice(&0u32.to_le_bytes());
    id.push(channels);
    id.extend_from_slice(&rate.to_le_bytes());
    id.extend_from_slice(&[0; 13]);
    id
}

/// A synthetic stream: headers, then `n` audio pages of 1000 frames.
fn stream(n: u32) -> Vec<u8> {
    let mut out = page(FLAG_BOS, 0, 7, 0, &[&ident(1000, 1)]);
    out.extend(page(0, 0, 7, 1, &[b"\x03vorbis comment", b"\x05vorbis setup"]));
    for i in 0..n {
        let flags = if i + 1 == n { FLAG_EOS } else { 0 };
        out.extend(page(flags, u64::from(i + 1) * 1000, 7, i + 2, &[&[0u8; 40]]));
    }
    out
}

#[test]
fn crc_matches_the_reference_check_value() {
    // CRC-32 with poly 04c11db7, init 0, no reflection, no xorout is
    // CRC-32/CKSUM without its final inversion: 0x765e7680 ^ 0xffffffff.
    assert_eq!(crc32(b"123456789"), 0x89a1_897f);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn parses_a_synthetic_stream() {
    let bytes = stream(5);
    let info = vorbis_stream_info(&bytes).unwrap();
    assert_eq!((info.sample_rate, info.channels), (1000, 1));
    assert_eq!(info.frames, 5000);
    assert_eq!(info.duration_ms, 5000);
    assert_eq!(info.pages, 7);
    let ms: Vec<u64> = info.seek.iter().map(|p| p.ms).collect();
    assert_eq!(ms, [0, 1000, 2000, 3000, 4000]);
    assert_eq!(info.seek[0].offset as usize, info.audio_offset);
    for p in &info.seek {
        assert_eq!(&bytes[p.offset as usize..][..4], CAPTURE);
    }
}

#[test]
fn seek_index_takes_the_first_page_of_each_second() {
    let mut out = page(FLAG_BOS, 0, 7, 0, &[&ident(1000, 2)]);
    out.extend(page(0, 0, 7, 1, &[b"c", b"s"]));
    let granules = [300, 700, NO_GRANULE, 1100, 1900, 2050, 2300];
    for (i, g) in granules.iter().enumerate() {
        let flags = if i + 1 == granules.len() { FLAG_EOS } else { 0 };
        out.extend(page(flags, *g, 7, i as u32 + 2, &[b"a"]));
    }
    let info = vorbis_stream_info(&out).unwrap();
    let ms: Vec<u64> = info.seek.iter().map(|p| p.ms).collect();
    // Page starts: 0, 300, 700, (none), 700, 1100, 1900, 2050.
    assert_eq!(ms, [0, 1100, 2050]);
    assert_eq!(info.frames, 2300);
}

#[test]
fn long_packets_use_255_lacing() {
    let big = vec![9u8; 600];
    let p = page(FLAG_BOS, 3, 1, 0, &[&big, &[1, 2]]);
    let parsed = parse_page(&p, 0).unwrap();
    assert_eq!(parsed.lacing, &[255, 255, 90, 2]);
    assert_eq!(parsed.packets_finished(), 2);
    assert_eq!(parsed.body.len(), 602);
}

#[test]
fn rejects_bad_crc_and_structure() {
    let good = stream(3);
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(vorbis_stream_info(&bad), Err(OggError::Crc { .. })));

    // Drop the EOS page: the stream then has no end.
    let pages = parse_pages(&good).unwrap();
    let cut = pages.last().unwrap().offset;
    assert!(matches!(vorbis_stream_info(&good[..cut]), Err(OggError::Stream { reason: Reason::NoEos, .. })));
    // Cut mid-page.
    assert!(matches!(parse_pages(&good[..good.len() - 3]), Err(OggError::Truncated { .. })));
    // Junk after the last page.
    let mut junk = good.clone();
    junk.extend_from_slice(b"Og");
    assert!(matches!(parse_pages(&junk), Err(OggError::Truncated { .. })));
    junk.extend_from_slice(b"xxxx");
    assert!(matches!(parse_pages(&junk), Err(OggError::Capture { .. })));
    assert_eq!(parse_pages(b""), Err(OggError::Empty));
}

#[test]
fn rejects_granule_going_back_and_sequence_gaps() {
    let mut out = page(FLAG_BOS, 0, 7, 0, &[&ident(1000, 2)]);
    out.extend(page(0, 0, 7, 1, &[b"c", b"s"]));
    out.extend(page(0, 2000, 7, 2, &[b"a"]));
    out.extend(page(FLAG_EOS, 1000, 7, 3, &[b"a"]));
    assert!(matches!(
        vorbis_stream_info(&out),
        Err(OggError::Stream { reason: Reason::GranuleWentBack, .. })
    ));
    let mut out = page(FLAG_BOS, 0, 7, 0, &[&ident(1000, 2)]);
    out.extend(page(0, 0, 7, 1, &[b"c", b"s"]));
    out.extend(page(FLAG_EOS, 2000, 7, 5, &[b"a"]));
    assert!(matches!(vorbis_stream_info(&out), Err(OggError::Stream { reason: Reason::SequenceGap, .. })));
}

#[test]
fn never_panics_on_mutated_or_truncated_input() {
    // A deterministic mini-fuzz: every prefix, and many single-byte
    // mutations, of a valid stream must return, never panic.
    let good = stream(4);
    for end in 0..=good.len() {
        let _ = vorbis_stream_info(&good[..end]);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut m = good.clone();
        let at = (x as usize) % m.len();
        m[at] = (x >> 32) as u8;
        if x & 1 == 0 {
            // Fix the CRC so the structural checks run too.
            if let Ok(pages) = parse_pages(&good) {
                for p in pages {
                    if (p.offset..p.offset + p.len).contains(&at) && at >= p.offset + 27 {
                        let s = &mut m[p.offset..p.offset + p.len];
                        s[22..26].fill(0);
                        let crc = crc32(s);
                        s[22..26].copy_from_slice(&crc.to_le_bytes());
                    }
                }
            }
        }
        let _ = vorbis_stream_info(&m);
    }
    // Huge claimed granules and lacing must not overflow anything.
    let p = page(FLAG_BOS | FLAG_EOS, u64::MAX - 1, 0, 0, &[&ident(1, 1)]);
    let _ = vorbis_stream_info(&p);
    assert_eq!(frames_to_ms(u64::MAX, 1), u64::MAX);
}
