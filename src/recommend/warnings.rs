//! The warnings a careful engineer would give before deploying: an objective
//! that never varied, a baseline that failed or was never measured,
//! recommendations measured once on a noisy study, and no recommendation
//! that is clearly better than today's values.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::format::{fmt_num, fmt_spread};
use crate::objective::Objectives;
use crate::space::Space;
use crate::trial::{Trial, TrialState};

use super::{Baseline, CONFIDENT, Noise, Recommendation};

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// An objective's metric had the same value in every complete trial.
    ConstantObjective,
    /// The baseline's evaluation failed, so nothing can be compared with today's values.
    BaselineFailed,
    /// The space has a baseline but no complete evaluation of it.
    BaselineMissing,
    /// The baseline violates a constraint.
    BaselineInfeasible,
    /// Recommendations measured once while the study's measurements are noisy.
    MeasuredOnce,
    /// No recommendation is better than the baseline with reasonable confidence.
    NoClearGain,
    /// Confirmation measured the search's best candidate again and it is no longer first.
    ConfirmationReversed,
    /// Measurement noise is a quarter or more of the variance between all trials.
    NoiseDominates,
}

/// One warning: its kind (for programs) and a sentence (for people).
#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// What was seen and what to do about it.
    pub message: String,
}

/// Tallies taken while the trials are read.
#[derive(Default)]
pub(super) struct Seen {
    pub trials: usize,
    pub complete: usize,
    pub failed: usize,
    /// The reason the last failed baseline trial gave.
    baseline_failure: Option<String>,
    /// Per objective metric: smallest and largest value, and how many complete trials had it.
    ranges: BTreeMap<String, (f64, f64, usize)>,
}

impl Seen {
    pub fn trial(&mut self, t: &Trial, objectives: &Objectives) {
        self.trials += 1;
        match &t.state {
            TrialState::Complete => self.complete += 1,
            TrialState::Failed { reason } => {
                self.failed += 1;
                if t.baseline {
                    self.baseline_failure = Some(reason.clone());
                }
            }
            _ => {}
        }
        if t.state != TrialState::Complete {
            return;
        }
        for o in &objectives.objectives {
            if let Some(&v) = t.metrics.get(&o.metric).filter(|v| v.is_finite()) {
                let r = self.ranges.entry(o.metric.clone()).or_insert((v, v, 0));
                *r = (r.0.min(v), r.1.max(v), r.2 + 1);
            }
        }
    }

    pub fn warnings(
        &self,
        objectives: &Objectives,
        space: &Space,
        baseline: &Option<Baseline>,
        noise: &Noise,
        recommendations: &[Recommendation],
        better_than_baseline: Option<bool>,
    ) -> Vec<Warning> {
        let mut out = Vec::new();
        let mut warn = |kind, message: String| out.push(Warning { kind, message });
        for o in &objectives.objectives {
            if let Some(&(lo, _, n)) = self.ranges.get(&o.metric).filter(|r| r.2 >= 3 && r.0 == r.1) {
                warn(
                    WarningKind::ConstantObjective,
                    format!(
                        "objective `{}` was {} in all {n} complete trials: it cannot tell configurations apart, \
                         so the ranking ignores it (does the evaluator report it, and does the spec set what it \
                         depends on?)",
                        o.metric,
                        fmt_num(lo)
                    ),
                );
            }
        }
        match (baseline, &self.baseline_failure, space.baseline().is_some()) {
            (None, Some(reason), _) => warn(
                WarningKind::BaselineFailed,
                format!(
                    "the baseline (today's values) failed ({reason}): no improvement can be computed; fix the \
                     cause and measure it again (`knobs confirm` re-measures it beside the best)"
                ),
            ),
            (None, None, true) if self.complete > 0 => warn(
                WarningKind::BaselineMissing,
                "the baseline (today's values) has no complete evaluation: no improvement can be computed".into(),
            ),
            (Some(b), _, _) if !b.feasible => warn(
                WarningKind::BaselineInfeasible,
                format!(
                    "the baseline (today's values) violates a constraint ({}): improvements are not computed",
                    objectives.constraints.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
                ),
            ),
            _ => {}
        }
        let once: Vec<String> =
            recommendations.iter().filter(|r| r.evaluations == 1).map(|r| r.rank.to_string()).collect();
        if noise.noisy && !once.is_empty() {
            warn(
                WarningKind::MeasuredOnce,
                format!(
                    "{} measured once on a noisy study (one measurement varies by ±{}): a single value may \
                     be luck; re-measure beside the baseline with `knobs confirm`",
                    if once.len() == 1 {
                        format!("rank {} was", once[0])
                    } else {
                        format!("ranks {} were", once.join(", "))
                    },
                    noise.std.map_or("?".into(), fmt_spread)
                ),
            );
        }
        if let (Some(share), Some(sd)) = (noise.share.filter(|&s| s >= 0.25), noise.std) {
            warn(
                WarningKind::NoiseDominates,
                format!(
                    "one measurement's noise (±{}) makes up {:.0}% of the variance between all trials: the order \
                     of the ranks and the importance figures are uncertain (longer measurements, or more \
                     confirmation rounds, narrow it)",
                    fmt_spread(sd),
                    100.0 * share
                ),
            );
        }
        if better_than_baseline == Some(false) {
            warn(
                WarningKind::NoClearGain,
                format!(
                    "no recommendation is better than the baseline with {:.0}% probability: keep today's values, \
                     or measure more",
                    100.0 * CONFIDENT
                ),
            );
        }
        out
    }
}
