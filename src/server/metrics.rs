//! Counters and the ask latency histogram, written in the Prometheus text
//! exposition format (version 0.0.4) by `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::storage::StudySummary;

/// Upper bounds (seconds) of the ask latency buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
pub struct Metrics {
    asks: AtomicU64,
    asked_trials: AtomicU64,
    tells_complete: AtomicU64,
    tells_failed: AtomicU64,
    tells_refused: AtomicU64,
    /// Count per bucket (not cumulative); the last slot is +Inf.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub fn ask(&self, trials: usize, took: Duration) {
        self.asks.fetch_add(1, Ordering::Relaxed);
        self.asked_trials.fetch_add(trials as u64, Ordering::Relaxed);
        let s = took.as_secs_f64();
        let slot = BUCKETS.iter().position(|&b| s <= b).unwrap_or(BUCKETS.len());
        self.latency[slot].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(took.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    pub fn tell(&self, complete: bool) {
        if complete { &self.tells_complete } else { &self.tells_failed }.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tell_refused(&self) {
        self.tells_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text; `studies` gives the trials by state.
    pub fn render(&self, studies: &[StudySummary]) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(out, "# HELP knobs_asks_total Ask requests answered.\n# TYPE knobs_asks_total counter");
        let _ = writeln!(out, "knobs_asks_total {}", get(&self.asks));
        let _ = writeln!(
            out,
            "# HELP knobs_asked_trials_total Trials handed out by asks.\n# TYPE knobs_asked_trials_total counter"
        );
        let _ = writeln!(out, "knobs_asked_trials_total {}", get(&self.asked_trials));
        let _ = writeln!(out, "# HELP knobs_tells_total Tells stored, by outcome.\n# TYPE knobs_tells_total counter");
        let _ = writeln!(out, "knobs_tells_total{{state=\"complete\"}} {}", get(&self.tells_complete));
        let _ = writeln!(out, "knobs_tells_total{{state=\"failed\"}} {}", get(&self.tells_failed));
        let _ = writeln!(
            out,
            "# HELP knobs_tells_refused_total Tells refused (finished trial or stale lease).\n\
             # TYPE knobs_tells_refused_total counter"
        );
        let _ = writeln!(out, "knobs_tells_refused_total {}", get(&self.tells_refused));
        let _ = writeln!(
            out,
            "# HELP knobs_ask_duration_seconds Time to answer an ask.\n# TYPE knobs_ask_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += get(&self.latency[i]);
            let _ = writeln!(out, "knobs_ask_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += get(&self.latency[BUCKETS.len()]);
        let _ = writeln!(out, "knobs_ask_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "knobs_ask_duration_seconds_sum {}", get(&self.latency_sum_us) as f64 / 1e6);
        let _ = writeln!(out, "knobs_ask_duration_seconds_count {cumulative}");
        let _ = writeln!(out, "# HELP knobs_trials Trials in the storage, by state.\n# TYPE knobs_trials gauge");
        let sum = |f: fn(&StudySummary) -> u64| studies.iter().map(f).sum::<u64>();
        let (complete, failed, running, all) =
            (sum(|s| s.complete), sum(|s| s.failed), sum(|s| s.running), sum(|s| s.trials));
        let pruned = all.saturating_sub(complete + failed + running);
        for (state, n) in [("running", running), ("complete", complete), ("failed", failed), ("pruned", pruned)] {
            let _ = writeln!(out, "knobs_trials{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP knobs_studies Studies in the storage.\n# TYPE knobs_studies gauge");
        let _ = writeln!(out, "knobs_studies {}", studies.len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::default();
        m.ask(2, Duration::from_micros(500));
        m.ask(1, Duration::from_millis(30));
        m.ask(1, Duration::from_secs(20));
        let text = m.render(&[]);
        assert!(text.contains("knobs_ask_duration_seconds_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("knobs_ask_duration_seconds_bucket{le=\"0.05\"} 2\n"), "{text}");
        assert!(text.contains("knobs_ask_duration_seconds_bucket{le=\"10\"} 2\n"), "{text}");
        assert!(text.contains("knobs_ask_duration_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("knobs_ask_duration_seconds_count 3\n"), "{text}");
        assert!(text.contains("knobs_asked_trials_total 4\n"), "{text}");
    }
}
