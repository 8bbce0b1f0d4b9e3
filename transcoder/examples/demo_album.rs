//! Synthesise a demo album, transcode every track and print what came out:
//! achieved bitrate per rung, loudness, and wall time.
//!
//! ```text
//! cargo run --release -p cadenza-transcoder --example demo_album -- [tracks] [seconds] [seed]
//! ```
//!
//! Defaults: 4 tracks of 30 s, seed 1. Masters are
//! written to a temporary directory and removed afterwards.

use std::time::Instant;

use cadenza_transcoder::synth::{DemoTrackSpec, write_demo_album};
use cadenza_transcoder::transcode;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| -> Result<u64, std::num::ParseIntError> {
        args.get(i).map_or(Ok(default), |s| s.parse())
    };
    let (count, seconds, seed) = (arg(0, 4)?, arg(1, 30)?, arg(2, 1)?);

    let dir = std::env::temp_dir().join(format!("cadenza-demo-album-{}", std::process::id()));
    let started = Instant::now();
    let specs = DemoTrackSpec::album(seed, count as usize, seconds as u32);
    let tracks = write_demo_album(&dir, &specs)?;
    println!("synthesised {count} × {seconds} s in {:.2} s", started.elapsed().as_secs_f64());

    let mut total = 0.0;
    for t in &tracks {
        let started = Instant::now();
        let id = format!("demo-{}", t.index + 1).parse()?;
        let out = transcode(&t.path, &id)?;
        let secs = started.elapsed().as_secs_f64();
        total += secs;
        let m = &out.manifest;
        let rates: Vec<String> =
            m.renditions.iter().map(|r| format!("{}→{:.1}", r.bitrate_kbps, r.achieved_kbps)).collect();
        println!(
            "{:<28} {:<4} {:>6.2} LUFS {:>6.2} dBTP gain {:>+6.2} dB | {} | {:.1} BPM | {:.2} s ({:.0}× realtime)",
            t.title,
            t.format,
            m.loudness.integrated_lufs,
            m.loudness.true_peak_dbtp,
            m.loudness.gain_db,
            rates.join(" "),
            m.features.tempo_bpm,
            secs,
            t.seconds as f64 / secs
        );
    }
    println!("transcoded {count} tracks in {total:.2} s");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
