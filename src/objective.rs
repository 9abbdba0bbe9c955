//! Objectives and constraints: from an evaluation's metrics to one score
//! the optimizer minimizes, plus a constraint violation.
//!
//! Several objectives are combined by weighted scalarization (each term
//! sign-normalized so lower is better), unless the study asks for Pareto search
//! ([`Objectives::pareto`]): then each stays a coordinate of a vector
//! ([`Objectives::signed_values`]) and the study looks for the trade-offs. A trial that breaks
//! a constraint is infeasible and ranks below every feasible one.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether an objective's metric should go down or up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Lower is better; the metric enters the score as is.
    Minimize,
    /// Higher is better; the metric enters the score negated.
    Maximize,
}

/// One term of the score: `weight × metric`, negated when maximizing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Name of the metric the evaluator reports.
    pub metric: String,
    /// Whether lower or higher values of the metric are better.
    pub direction: Direction,
    /// Factor of the term in the score; with one objective it only rescales the score, and
    /// [`Objectives::display_value`] divides it out again. Always 1 in a Pareto study.
    pub weight: f64,
    /// In a Pareto study, the objective's value (in the metric's units) up to which the
    /// hypervolume is measured; `None`: the baseline's value, or the worst feasible value seen
    /// when the baseline has none or is no worse than a point of the front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<f64>,
}

impl Objective {
    /// An objective on `metric` with weight 1 and no reference point.
    pub fn new(metric: impl Into<String>, direction: Direction) -> Self {
        Objective { metric: metric.into(), direction, weight: 1.0, reference: None }
    }

    /// A value of the metric, signed so that lower is better.
    pub fn signed(&self, value: f64) -> f64 {
        if self.direction == Direction::Maximize { -value } else { value }
    }
}

/// The comparison of a [`Constraint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    /// metric <= bound
    #[serde(rename = "<=")]
    AtMost,
    /// metric >= bound
    #[serde(rename = ">=")]
    AtLeast,
}

/// A bound on a metric that a feasible configuration must meet, e.g. `p99_latency_ms <= 50`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// Name of the constrained metric.
    pub metric: String,
    /// Which side of `bound` is allowed (the bound itself always is).
    pub op: Bound,
    /// The limit, in the metric's units (finite when parsed).
    pub bound: f64,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        write!(f, "{} {op} {}", self.metric, self.bound)
    }
}

impl Constraint {
    /// Parse `"p99_latency_ms <= 50"` (also `<`, `>=`, `>`).
    pub fn parse(text: &str) -> Result<Constraint, String> {
        let ops = [("<=", Bound::AtMost), (">=", Bound::AtLeast), ("<", Bound::AtMost), (">", Bound::AtLeast)];
        for (sym, op) in ops {
            if let Some((l, r)) = text.split_once(sym) {
                let metric = l.trim();
                let r = r.trim().trim_start_matches('=').trim();
                if metric.is_empty() {
                    return Err(format!("`{text}` names no metric; write e.g. `p99_latency_ms <= 50`"));
                }
                return match r.parse::<f64>() {
                    Ok(b) if b.is_finite() => Ok(Constraint { metric: metric.to_string(), op, bound: b }),
                    _ => Err(format!("`{r}` is not a finite number; write e.g. `{metric} {sym} 50`")),
                };
            }
        }
        Err(format!("`{text}` has no comparison; write `metric <= number` or `metric >= number`"))
    }

    /// How far a value is on the wrong side, relative to the bound's size.
    pub fn violation(&self, value: f64) -> f64 {
        self.slack(value).max(0.0)
    }

    /// Signed distance to the bound, relative to the bound's size: positive
    /// on the wrong side, negative (the margin) on the right side. Models of
    /// feasibility learn from both sides.
    pub fn slack(&self, value: f64) -> f64 {
        let over = match self.op {
            Bound::AtMost => value - self.bound,
            Bound::AtLeast => self.bound - value,
        };
        over / self.bound.abs().max(1.0)
    }
}

/// A trial's score: lower is better; `violation` 0 means feasible.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The weighted sum of the objectives, each signed so that lower is better.
    pub score: f64,
    /// Sum of the constraints' relative violations (see [`Constraint::violation`]); ≥ 0.
    pub violation: f64,
}

impl Outcome {
    /// True when no constraint is violated.
    pub fn feasible(&self) -> bool {
        self.violation <= 0.0
    }
}

/// What a study optimizes: objectives scalarized into one score, and constraints. The default is
/// to minimize the metric `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objectives {
    /// The terms of the score, summed.
    pub objectives: Vec<Objective>,
    /// Bounds a trial must meet to be feasible; may be empty.
    pub constraints: Vec<Constraint>,
    /// Pareto search (`pareto: true` in a spec, two or more objectives): no weighted sum;
    /// the study looks for the configurations no other beats in every objective.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pareto: bool,
}

impl Default for Objectives {
    fn default() -> Self {
        Objectives {
            objectives: vec![Objective::new("value", Direction::Minimize)],
            constraints: Vec::new(),
            pareto: false,
        }
    }
}

impl Objectives {
    /// Each constraint's signed slack (see [`Constraint::slack`]), in order;
    /// `None` when a constrained metric is missing or not finite.
    pub fn slacks(&self, metrics: &BTreeMap<String, f64>) -> Option<Vec<f64>> {
        self.constraints.iter().map(|c| metrics.get(&c.metric).filter(|v| v.is_finite()).map(|&v| c.slack(v))).collect()
    }

    /// Metric names the study needs from every evaluation.
    pub fn required_metrics(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.objectives.iter().map(|o| o.metric.as_str()).collect();
        for c in &self.constraints {
            if !v.contains(&c.metric.as_str()) {
                v.push(&c.metric);
            }
        }
        v
    }

    /// Every objective's value, signed so that lower is better, in the spec's order; a missing
    /// or non-finite metric is an error naming it.
    pub fn signed_values(&self, metrics: &BTreeMap<String, f64>) -> Result<Vec<f64>, String> {
        self.objectives.iter().map(|o| Ok(o.signed(metric(metrics, &o.metric)?))).collect()
    }

    /// Score metrics; a missing or non-finite metric is an error naming it.
    pub fn score(&self, metrics: &BTreeMap<String, f64>) -> Result<Outcome, String> {
        let mut score = 0.0;
        for (o, v) in self.objectives.iter().zip(self.signed_values(metrics)?) {
            score += o.weight * v;
        }
        let mut violation = 0.0;
        for c in &self.constraints {
            violation += c.violation(metric(metrics, &c.metric)?);
        }
        Ok(Outcome { score, violation })
    }

    /// When the score is one metric times a factor (a single objective and
    /// no constraints): that metric and the factor (the weight, negated when
    /// maximizing). Derivatives of the metric then scale into the score's.
    pub fn linear_score(&self) -> Option<(&str, f64)> {
        match (self.objectives.as_slice(), self.constraints.is_empty()) {
            ([o], true) => Some((&o.metric, if o.direction == Direction::Maximize { -o.weight } else { o.weight })),
            _ => None,
        }
    }

    /// The score in the user's units: for one objective, the metric itself.
    pub fn display_value(&self, score: f64) -> f64 {
        match self.objectives.as_slice() {
            [o] if o.direction == Direction::Maximize => -score / o.weight,
            [o] => score / o.weight,
            _ => score,
        }
    }

    /// Turn a target in the user's units into a score threshold.
    pub fn target_score(&self, target: f64) -> f64 {
        match self.objectives.as_slice() {
            [o] if o.direction == Direction::Maximize => -target * o.weight,
            [o] => target * o.weight,
            _ => target,
        }
    }

    /// What the objective's value is called: the metric for one objective, else `score`.
    pub fn label(&self) -> &str {
        match self.objectives.as_slice() {
            [o] => &o.metric,
            _ => "score",
        }
    }

    /// One line for humans, e.g. `minimize latency_ms`, `minimize 0.7*latency_ms -0.3*throughput`
    /// or `Pareto front of minimize p99_ms, minimize cost`.
    pub fn describe(&self) -> String {
        let word = |o: &Objective| if o.direction == Direction::Maximize { "maximize" } else { "minimize" };
        if self.pareto {
            let terms: Vec<String> = self.objectives.iter().map(|o| format!("{} {}", word(o), o.metric)).collect();
            return format!("Pareto front of {}", terms.join(", "));
        }
        match self.objectives.as_slice() {
            [o] => format!("{} {}", if o.direction == Direction::Maximize { "maximize" } else { "minimize" }, o.metric),
            many => {
                let terms: Vec<String> = many
                    .iter()
                    .map(|o| {
                        format!(
                            "{}{}*{}",
                            if o.direction == Direction::Maximize { "-" } else { "+" },
                            o.weight,
                            o.metric
                        )
                    })
                    .collect();
                format!("minimize {}", terms.join(" ").trim_start_matches('+'))
            }
        }
    }
}

/// A metric's finite value, or an error naming it (and what the evaluator did report).
fn metric(metrics: &BTreeMap<String, f64>, name: &str) -> Result<f64, String> {
    match metrics.get(name) {
        Some(v) if v.is_finite() => Ok(*v),
        Some(v) => Err(format!("metric `{name}` is {v}, not a finite number")),
        None => Err(format!(
            "metric `{name}` missing; the evaluator reported: {}",
            if metrics.is_empty() {
                "nothing".to_string()
            } else {
                metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn constraint_parsing() {
        let c = Constraint::parse("p99_latency_ms <= 50").unwrap();
        assert_eq!((c.metric.as_str(), c.op, c.bound), ("p99_latency_ms", Bound::AtMost, 50.0));
        assert_eq!(Constraint::parse("rps>=1e3").unwrap().op, Bound::AtLeast);
        assert!(Constraint::parse("p99 50").unwrap_err().contains("no comparison"));
        assert!(Constraint::parse("p99 <= fast").unwrap_err().contains("not a finite number"));
        assert!(Constraint::parse("<= 3").is_err());
    }

    #[test]
    fn weighted_scalarization_and_violation() {
        let o = Objectives {
            objectives: vec![
                Objective { weight: 2.0, ..Objective::new("lat", Direction::Minimize) },
                Objective { weight: 0.5, ..Objective::new("rps", Direction::Maximize) },
            ],
            constraints: vec![Constraint::parse("p99 <= 50").unwrap()],
            pareto: false,
        };
        let out = o.score(&m(&[("lat", 10.0), ("rps", 100.0), ("p99", 40.0)])).unwrap();
        assert_eq!(out, Outcome { score: 20.0 - 50.0, violation: 0.0 });
        let bad = o.score(&m(&[("lat", 10.0), ("rps", 100.0), ("p99", 75.0)])).unwrap();
        assert_eq!(bad.violation, 0.5);
        assert!(o.score(&m(&[("lat", 1.0)])).unwrap_err().contains("`rps` missing"));
        assert!(o.score(&m(&[("lat", f64::NAN), ("rps", 1.0), ("p99", 1.0)])).unwrap_err().contains("not a finite"));
    }

    #[test]
    fn display_value_round_trips_for_maximize() {
        let o = Objectives {
            objectives: vec![Objective::new("rps", Direction::Maximize)],
            constraints: vec![],
            pareto: false,
        };
        let s = o.score(&m(&[("rps", 123.0)])).unwrap().score;
        assert_eq!(o.display_value(s), 123.0);
        assert!(o.target_score(200.0) < s);
    }
}
