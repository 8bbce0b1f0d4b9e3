//! Bounded memory: the pipeline streams, so transcoding a master five
//! times as long needs no more memory.
//!
//! This file holds exactly one test, so its process is the test and the
//! process's peak resident set (`VmHWM` in `/proc/self/status`) is the
//! test's. The masters are 96 kHz / 24-bit stereo WAVs (the costliest
//! common master: two resamplers, the true-peak meter at full rate),
//! written sample by sample with hound, never held in memory. Before the
//! pipeline streamed, a 5-minute master at this rate needed about 230 MB
//! of decoded `f32` alone (185 MB more than the 1-minute one), plus its
//! resampled copies. The full-size check (a 60-minute master, peak RSS of
//! the release binary) is in `loadtest/README.md`.

mod signals;

use std::path::Path;
use std::time::Instant;

use cadenza_transcoder::transcode;
use signals::{Pink, db};

const RATE: u32 = 96_000;
/// Peak resident set allowed at any point, in MB.
const MAX_PEAK_MB: f64 = 300.0;
/// Allowed growth of the peak from the short master to the long one, in MB.
const MAX_GROWTH_MB: f64 = 40.0;

/// Write `seconds` of noise and tones at 96 kHz / 24-bit stereo to `path`,
/// one sample at a time.
fn write_streaming(path: &Path, seconds: u32, seed: u64) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let (mut left, mut right) = (Pink::new(seed), Pink::new(seed + 1));
    // Tones advanced by rotating (sin, cos) by a fixed angle each sample:
    // no per-sample trigonometry, so a debug build writes quickly.
    let mut tones: Vec<Osc> =
        [(220.0, 0.15), (660.0, 0.08), (3_300.0, 0.03)].iter().map(|&(hz, amp)| Osc::new(hz, amp)).collect();
    let noise = db(-22.0);
    let full = f64::from((1 << 23) - 1);
    for _ in 0..u64::from(seconds) * u64::from(RATE) {
        let tone: f64 = tones.iter_mut().map(Osc::next).sum();
        for x in [f64::from(noise * left.next()) + tone, f64::from(noise * right.next()) - tone] {
            w.write_sample((x.clamp(-1.0, 1.0) * full).round() as i32).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A sine oscillator by rotation.
struct Osc {
    sin: f64,
    cos: f64,
    step_cos: f64,
    step_sin: f64,
    amp: f64,
}

impl Osc {
    fn new(hz: f64, amp: f64) -> Self {
        let w = std::f64::consts::TAU * hz / f64::from(RATE);
        Self { sin: 0.0, cos: 1.0, step_cos: w.cos(), step_sin: w.sin(), amp }
    }

    fn next(&mut self) -> f64 {
        let sin = self.sin * self.step_cos + self.cos * self.step_sin;
        self.cos = self.cos * self.step_cos - self.sin * self.step_sin;
        self.sin = sin;
        self.amp * sin
    }
}

/// This process's peak resident set in MB, if `/proc` says.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[test]
fn memory_does_not_grow_with_the_masters_length() {
    if peak_rss_mb().is_none() {
        eprintln!("SKIPPED: no VmHWM in /proc/self/status on this system");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for (seconds, seed) in [(60u32, 1u64), (300, 3)] {
        let path = dir.path().join(format!("long-{seconds}.wav"));
        let start = Instant::now();
        write_streaming(&path, seconds, seed);
        let written = start.elapsed();
        let before = peak_rss_mb().unwrap();
        let start = Instant::now();
        let t = transcode(&path, &format!("trk-mem-{seconds}").parse().unwrap()).unwrap();
        let took = start.elapsed();
        let peak = peak_rss_mb().unwrap();
        let m = &t.manifest;
        // It really was the whole master: every frame, every rendition.
        assert_eq!(m.source.frames, u64::from(seconds) * u64::from(RATE));
        assert_eq!((m.source.sample_rate, m.source.channels), (RATE, 2));
        for r in &m.renditions {
            let want = (m.source.frames * u64::from(r.sample_rate)).div_ceil(u64::from(RATE));
            assert!(r.frames.abs_diff(want) <= 1, "{}: {} frames, want {want}", r.bitrate_kbps, r.frames);
        }
        let master_mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        println!(
            "{seconds:>3} s master ({master_mb:.0} MB WAV, written in {written:.1?}): transcoded in \
             {took:.1?}; peak RSS {before:.1} MB before, {peak:.1} MB after"
        );
        assert!(peak < MAX_PEAK_MB, "peak RSS {peak:.1} MB after the {seconds} s master");
        peaks.push(peak);
        drop(t);
        std::fs::remove_file(&path).unwrap();
    }
    let growth = peaks[1] - peaks[0];
    println!("peak RSS grew by {growth:.1} MB from the 1-minute master to the 5-minute one");
    assert!(growth < MAX_GROWTH_MB, "peak RSS grew by {growth:.1} MB: {peaks:?}");
}
