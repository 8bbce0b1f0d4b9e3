//! Write a long demo-music master as a 44.1 kHz stereo WAV, for benchmarks:
//! consecutive demo tracks (each up to 10 min) from one seed, streamed to
//! the file, so any length fits in a few hundred MB of memory.
//!
//! ```text
//! cargo run --release -p cadenza-transcoder --example synth_master -- OUT.wav SECONDS [SEED] [BITS]
//! ```
//!
//! BITS is 16 (default), 24 or 32 (float).

use cadenza_transcoder::synth::{MAX_DEMO_SECONDS, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, seconds, rest @ ..] = args.as_slice() else {
        return Err("usage: synth_master OUT.wav SECONDS [SEED] [BITS]".into());
    };
    let seconds: u32 = seconds.parse()?;
    let seed: u64 = rest.first().map_or(Ok(1), |s| s.parse())?;
    let bits: u16 = rest.get(1).map_or(Ok(16), |s| s.parse())?;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: bits,
        sample_format: if bits == 32 { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(out, spec)?;
    let max = ((1i64 << (bits.min(31) - 1)) - 1) as f32;
    let mut left = seconds;
    let mut index = 0;
    while left > 0 {
        let part = left.min(MAX_DEMO_SECONDS);
        let [l, r] = render(seed, index, part);
        for (a, b) in l.iter().zip(&r) {
            for x in [a, b] {
                if bits == 32 {
                    w.write_sample(*x)?;
                } else {
                    w.write_sample((x.clamp(-1.0, 1.0) * max).round() as i32)?;
                }
            }
        }
        left -= part;
        index += 1;
    }
    w.finalize()?;
    Ok(())
}
