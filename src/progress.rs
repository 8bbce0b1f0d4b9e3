//! `cadenza transcode`'s progress bars: one per master, on stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cadenza_config::ids::TrackId;
use cadenza_transcoder::{Progress, ProgressEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar per track, drawn only when stderr is a terminal and not `--quiet`.
pub(crate) struct Bars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl Bars {
    pub(crate) fn new(quiet: bool, tracks: &[(TrackId, PathBuf)]) -> Arc<Self> {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:<28!} [{bar:30}] {percent:>3}% {msg:<12} {elapsed:>4} eta {eta:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = tracks
            .iter()
            .map(|(_, path)| {
                let bar = multi.add(ProgressBar::new(1).with_style(style.clone()));
                bar.set_prefix(name(path));
                bar.set_message("waiting");
                bar
            })
            .collect();
        Arc::new(Self { multi, bars })
    }

    /// Remove the bars before the summary is printed.
    pub(crate) fn clear(&self) {
        for bar in &self.bars {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        let _ = self.multi.clear();
    }
}

impl Progress for Bars {
    fn event(&self, track: usize, event: ProgressEvent) {
        let Some(bar) = self.bars.get(track) else {
            return;
        };
        match event {
            ProgressEvent::Hashing => bar.set_message("hashing"),
            ProgressEvent::Decoding { frames_done, frames_total, .. } => {
                // Without a declared length the bar tracks what is done.
                bar.set_length(frames_total.unwrap_or(frames_done).max(frames_done).max(1));
                bar.set_position(frames_done);
                if matches!(&*bar.message(), "waiting" | "hashing") {
                    bar.set_message("encoding");
                }
            }
            ProgressEvent::Calibrating { pass, .. } => bar.set_message(format!("pass {pass}")),
            ProgressEvent::Measuring => bar.set_message("measuring"),
            ProgressEvent::Tagging => bar.set_message("tagging"),
            ProgressEvent::Publishing => bar.set_message("uploading"),
            ProgressEvent::Published => {
                bar.set_position(bar.length().unwrap_or(1));
                bar.finish_with_message("published");
            }
            ProgressEvent::Unchanged => {
                bar.set_position(bar.length().unwrap_or(1));
                bar.finish_with_message("unchanged");
            }
            _ => {}
        }
    }
}

fn name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}
