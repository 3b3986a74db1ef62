//! Progress: bars on a terminal, log lines elsewhere (CI, pipes).

use crate::report::{Event, Reporter, Stage};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::sync::Mutex;

pub struct Log {
    pub verbose: bool,
}

impl Reporter for Log {
    fn event(&self, e: Event<'_>) {
        match e {
            Event::StageStarted {
                stage,
                items,
                bytes,
            } => {
                if bytes > 0 {
                    tracing::info!(
                        "{}: {items} items, {}",
                        stage.name(),
                        super::human_bytes(bytes)
                    );
                } else if items > 0 {
                    tracing::info!("{}: {items} items", stage.name());
                } else {
                    tracing::info!("{}", stage.name());
                }
            }
            Event::Item {
                stage,
                name,
                bytes,
                cached,
            } if self.verbose => {
                let how = if cached {
                    " (cached)".to_owned()
                } else if bytes > 0 {
                    format!(" ({})", super::human_bytes(bytes))
                } else {
                    String::new()
                };
                tracing::info!("{}: {name}{how}", stage.name());
            }
            Event::Warning(w) => tracing::warn!("{w}"),
            _ => {}
        }
    }
}

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<Vec<(Stage, ProgressBar)>>,
}

impl Bars {
    pub fn new() -> Bars {
        Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(Vec::new()),
        }
    }
}

impl Reporter for Bars {
    fn event(&self, e: Event<'_>) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::StageStarted {
                stage,
                items,
                bytes,
            } => {
                let (len, tmpl) = if bytes > 0 && stage == Stage::Fetch {
                    (
                        bytes,
                        "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                    )
                } else {
                    (items.max(1), "{prefix:>9} [{bar:30}] {pos}/{len} {msg}")
                };
                let pb = self.multi.add(ProgressBar::new(len));
                pb.set_style(
                    ProgressStyle::with_template(tmpl)
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                pb.set_prefix(stage.name());
                bars.push((stage, pb));
            }
            Event::Item { stage, name, .. } => {
                if let Some((_, pb)) = bars.iter().find(|(s, _)| *s == stage) {
                    // A fetch bar in bytes moves with `Progress` events.
                    if !(stage == Stage::Fetch && bytes_bar(pb)) {
                        pb.inc(1)
                    }
                    pb.set_message(name.to_owned());
                }
            }
            Event::Progress { stage, bytes } => {
                if let Some((_, pb)) = bars.iter().find(|(s, _)| *s == stage)
                    && stage == Stage::Fetch
                    && bytes_bar(pb)
                {
                    pb.inc(bytes)
                }
            }
            Event::StageFinished { stage } => {
                if let Some((_, pb)) = bars.iter().find(|(s, _)| *s == stage) {
                    pb.set_message("done");
                    pb.finish();
                }
            }
            Event::Warning(w) => {
                let _ = self.multi.println(format!("warning: {w}"));
            }
        }
    }
}

/// Whether the bar counts bytes (the fetch stage, when the sizes are known).
fn bytes_bar(pb: &ProgressBar) -> bool {
    pb.length().unwrap_or(0) > 1
}
