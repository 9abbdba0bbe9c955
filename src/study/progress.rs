//! What a long run shows while it works: a progress bar with the best value
//! on a terminal, periodic log lines (and one per new best) otherwise, as
//! cron needs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::format::fmt_num;
use crate::spec::Spec;

/// One finished trial as progress reports it.
pub(crate) struct Finished<'a> {
    pub number: u64,
    pub state: &'a str,
    /// The objective's value in its own units, when the trial scored.
    pub value: Option<f64>,
}

/// The progress bar (terminal) or periodic log lines (otherwise).
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    study: String,
    label: String,
    total: u64,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// Progress of a run of `spec` towards `total` trials, `done` of them already there.
    pub fn new(enabled: bool, total: u64, done: u64, spec: &Spec) -> Self {
        use std::io::IsTerminal;
        let study = spec.name.clone();
        let label = spec.objectives.label().to_string();
        if !enabled || !std::io::stderr().is_terminal() {
            tracing::info!(study = %spec.name, total, done, objective = %spec.objectives.describe(), "run starts");
            return Progress { bar: None, study, label, total, last_log: Mutex::new(Instant::now()) };
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} trials  {msg}  ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(spec.name.clone());
        bar.set_position(done);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar), study, label, total, last_log: Mutex::new(Instant::now()) }
    }

    /// `done` trials finished, the best (value in the objective's units,
    /// trial) so far, and the trial that just finished.
    pub fn update(&self, done: u64, best: Option<(f64, u64)>, finished: Option<Finished<'_>>) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                if let Some((v, n)) = best {
                    bar.set_message(format!("best {} {} (trial {n})", self.label, fmt_num(v)));
                }
            }
            None => {
                let Some(t) = finished else { return };
                let value = t.value.map(fmt_num);
                let value = value.as_deref().unwrap_or("-");
                tracing::debug!(study = %self.study, trial = t.number, state = t.state, value, "trial finished");
                let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
                let new_best = best.is_some_and(|(_, n)| n == t.number);
                if new_best || last.elapsed() >= Duration::from_secs(10) {
                    *last = Instant::now();
                    tracing::info!(
                        study = %self.study,
                        done,
                        total = self.total,
                        best = best.map(|b| fmt_num(b.0)).as_deref().unwrap_or("-"),
                        best_trial = best.map(|b| b.1),
                        "{}",
                        if new_best { "new best" } else { "progress" }
                    );
                }
            }
        }
    }

    /// The run stopped: clear the bar and say why.
    pub fn finish(&self, done: u64, best: Option<(f64, u64)>, why: &str) {
        if let Some(bar) = &self.bar {
            self.update(done, best, None);
            bar.finish_and_clear();
        }
        tracing::info!(study = %self.study, "run stopped: {why}");
    }
}
