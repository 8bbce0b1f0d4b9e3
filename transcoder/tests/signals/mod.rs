//! Test signals made here rather than by `synth` (noise, pink noise, tones,
//! clicks), a real decoder that returns the decoded samples, and plain
//! power arithmetic, so the tests can check the transcoder's numbers
//! against something it did not compute itself.

#![allow(dead_code, unreachable_pub)]

use std::io::Cursor;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// SplitMix64: a tiny deterministic PRNG, so every test signal is the same
/// on every run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [−1, 1): white noise with an RMS of 1/√3.
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f64 / (1u64 << 23) as f64 - 1.0) as f32
    }
}

/// Pink (−3 dB/octave) noise from white, with Paul Kellet's "refined"
/// filter (a sum of first-order sections), scaled by its usual 0.11.
#[derive(Clone, Debug)]
pub struct Pink {
    rng: Rng,
    b: [f32; 7],
}

impl Pink {
    pub fn new(seed: u64) -> Self {
        Self { rng: Rng::new(seed), b: [0.0; 7] }
    }

    pub fn next(&mut self) -> f32 {
        let white = self.rng.uniform();
        let b = &mut self.b;
        b[0] = 0.99886 * b[0] + white * 0.055_517_9;
        b[1] = 0.99332 * b[1] + white * 0.075_075_9;
        b[2] = 0.969 * b[2] + white * 0.153_852;
        b[3] = 0.8665 * b[3] + white * 0.310_485_6;
        b[4] = 0.55 * b[4] + white * 0.532_952_2;
        b[5] = -0.7616 * b[5] - white * 0.016_898;
        let out = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + white * 0.5362;
        b[6] = white * 0.115_926;
        out * 0.11
    }
}

/// `seconds` of a sine at `hz`, amplitude `amp`, at `rate`.
pub fn sine(hz: f64, amp: f32, rate: u32, seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| (amp as f64 * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Linear gain for `db` decibels.
pub fn db(db: f64) -> f32 {
    10f64.powf(db / 20.0) as f32
}

/// Mean square of every sample of every plane, summed over planes (as
/// BS.1770 sums channel powers, without its K-weighting), in dB.
pub fn power_db(planes: &[Vec<f32>]) -> f64 {
    let sum: f64 = planes
        .iter()
        .map(|p| p.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / p.len() as f64)
        .sum();
    10.0 * sum.log10()
}

/// Decoded audio: rate and one plane per channel.
#[derive(Debug)]
pub struct Pcm {
    pub sample_rate: u32,
    pub planes: Vec<Vec<f32>>,
}

/// Decode an Ogg Vorbis file completely with symphonia (a decoder that
/// shares no code with libvorbis, which made the file).
pub fn decode_ogg_pcm(bytes: &[u8]) -> Pcm {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("ogg");
    let mut reader = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .expect("symphonia opens the ogg");
    let track = reader.default_track(TrackType::Audio).expect("audio track");
    let id = track.id;
    let params = track.codec_params.as_ref().unwrap().audio().unwrap().clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .expect("vorbis decoder");
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let mut sample_rate = 0;
    while let Some(packet) = reader.next_packet().expect("demux") {
        if packet.track_id != id {
            continue;
        }
        let buf = decoder.decode(&packet).expect("decode");
        sample_rate = buf.spec().rate();
        buf.copy_to_vecs_planar::<f32>(&mut scratch);
        planes.resize_with(scratch.len(), Vec::new);
        for (p, s) in planes.iter_mut().zip(&scratch) {
            p.extend_from_slice(s);
        }
    }
    assert!(!planes.is_empty(), "decoded no audio");
    Pcm { sample_rate, planes }
}
