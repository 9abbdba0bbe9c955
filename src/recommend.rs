//! Recommendations: the best distinct feasible configurations of a study,
//! ranked, each with its metrics, how many times it was evaluated, and how
//! much better it is than the baseline (today's production values).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::objective::Objectives;
use crate::space::{Config, Space};
use crate::study::fmt_num;
use crate::trial::{Trial, TrialState};

/// One configuration with the evidence for it.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub rank: usize,
    pub config: Config,
    /// Mean of each metric over the configuration's evaluations.
    pub metrics: BTreeMap<String, f64>,
    /// The objective in the user's units (the metric itself for one objective).
    pub value: f64,
    pub feasible: bool,
    /// How many complete trials evaluated this configuration.
    pub evaluations: usize,
    /// Spread of the objective over those evaluations (sample std), if more than one.
    pub value_std: Option<f64>,
    pub trials: Vec<u64>,
    /// Better than the baseline by this much (positive = better).
    pub improvement: Option<Improvement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Improvement {
    /// Objective difference in the user's units, signed so that positive is better.
    pub absolute: f64,
    /// `absolute` relative to the baseline's value, in percent (when the baseline is non-zero).
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub config: Config,
    pub metrics: BTreeMap<String, f64>,
    pub value: f64,
    pub feasible: bool,
}

/// Everything `knobs recommend` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendations {
    pub study: String,
    pub objective: String,
    pub constraints: Vec<String>,
    pub trials: usize,
    pub complete: usize,
    pub failed: usize,
    pub baseline: Option<Baseline>,
    pub recommendations: Vec<Recommendation>,
}

struct Group {
    config: Config,
    trials: Vec<u64>,
    metrics: Vec<BTreeMap<String, f64>>,
    values: Vec<f64>,
    violation: f64,
}

/// Rank the distinct complete configurations of a study; keep the top `k`.
pub fn recommend(study: &str, space: &Space, objectives: &Objectives, trials: &[Trial], k: usize) -> Recommendations {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for t in trials.iter().filter(|t| t.state == TrialState::Complete) {
        let Ok(outcome) = objectives.score(&t.metrics) else { continue };
        let key = serde_json::to_string(&t.config).unwrap_or_default();
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Group {
                config: t.config.clone(),
                trials: vec![],
                metrics: vec![],
                values: vec![],
                violation: 0.0,
            });
            groups.len() - 1
        });
        let g = &mut groups[i];
        g.trials.push(t.number);
        g.metrics.push(t.metrics.clone());
        g.values.push(outcome.score);
        g.violation += outcome.violation;
    }
    let summarize = |g: &Group| {
        let n = g.values.len() as f64;
        let mean_score = g.values.iter().sum::<f64>() / n;
        let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
        for m in &g.metrics {
            for (k, v) in m {
                *metrics.entry(k.clone()).or_default() += v / n;
            }
        }
        let std = (g.values.len() > 1).then(|| {
            let var = g.values.iter().map(|v| (v - mean_score).powi(2)).sum::<f64>() / (n - 1.0);
            objectives.display_value(var.sqrt()).abs()
        });
        (mean_score, g.violation / n, metrics, std)
    };

    let baseline = space.baseline().and_then(|b| {
        let key = serde_json::to_string(&b).unwrap_or_default();
        let g = &groups[*index.get(&key)?];
        let (score, violation, metrics, _) = summarize(g);
        Some((
            score,
            Baseline {
                config: g.config.clone(),
                metrics,
                value: objectives.display_value(score),
                feasible: violation <= 0.0,
            },
        ))
    });

    let mut ranked: Vec<(f64, f64, &Group)> = groups
        .iter()
        .map(|g| {
            let (s, v, _, _) = summarize(g);
            (s, v, g)
        })
        .collect();
    // Feasible by score, then infeasible by violation.
    ranked
        .sort_by(|a, b| (a.1 > 0.0, a.1, a.0).partial_cmp(&(b.1 > 0.0, b.1, b.0)).unwrap_or(std::cmp::Ordering::Equal));

    let recommendations = ranked
        .into_iter()
        .filter(|(_, v, _)| *v <= 0.0)
        .take(k)
        .enumerate()
        .map(|(i, (score, violation, g))| {
            let (_, _, metrics, value_std) = summarize(g);
            let improvement = baseline.as_ref().filter(|(_, b)| b.feasible).map(|(bs, b)| {
                // Positive = better, in the user's units.
                let absolute = (bs - score).signum() * (b.value - objectives.display_value(score)).abs();
                let percent = (b.value != 0.0).then(|| 100.0 * absolute / b.value.abs());
                Improvement { absolute, percent }
            });
            Recommendation {
                rank: i + 1,
                config: g.config.clone(),
                metrics,
                value: objectives.display_value(score),
                feasible: violation <= 0.0,
                evaluations: g.values.len(),
                value_std,
                trials: g.trials.clone(),
                improvement,
            }
        })
        .collect();

    Recommendations {
        study: study.to_string(),
        objective: objectives.describe(),
        constraints: objectives.constraints.iter().map(|c| c.to_string()).collect(),
        trials: trials.len(),
        complete: trials.iter().filter(|t| t.state == TrialState::Complete).count(),
        failed: trials.iter().filter(|t| matches!(t.state, TrialState::Failed { .. })).count(),
        baseline: baseline.map(|(_, b)| b),
        recommendations,
    }
}

impl Recommendations {
    /// A plain-text table for terminals.
    pub fn table(&self, space: &Space) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "study {}: {} trials ({} complete, {} failed); objective: {}\n",
            self.study, self.trials, self.complete, self.failed, self.objective
        ));
        if !self.constraints.is_empty() {
            out.push_str(&format!("constraints: {}\n", self.constraints.join(", ")));
        }
        let params: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
        let mut header = vec!["rank".to_string(), "value".into(), "vs baseline".into(), "evals".into()];
        header.extend(params.iter().map(|p| p.to_string()));
        let mut rows: Vec<Vec<String>> = vec![header];
        if let Some(b) = &self.baseline {
            let mut row = vec![
                "base".to_string(),
                format!("{}{}", fmt_num(b.value), if b.feasible { "" } else { " (infeasible)" }),
                "-".into(),
                "".into(),
            ];
            row.extend(params.iter().map(|p| b.config.get(*p).map(fmt_value).unwrap_or_else(|| "-".into())));
            rows.push(row);
        }
        for r in &self.recommendations {
            let vs = match &r.improvement {
                Some(Improvement { percent: Some(p), .. }) => format!("{:+.1}%", p),
                Some(Improvement { absolute, .. }) => format!("{:+}", fmt_num(*absolute)),
                None => "-".into(),
            };
            let value = match r.value_std {
                Some(s) => format!("{} ±{}", fmt_num(r.value), fmt_num(s)),
                None => fmt_num(r.value),
            };
            let mut row = vec![r.rank.to_string(), value, vs, r.evaluations.to_string()];
            row.extend(params.iter().map(|p| r.config.get(*p).map(fmt_value).unwrap_or_else(|| "-".into())));
            rows.push(row);
        }
        let widths: Vec<usize> =
            (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for (i, row) in rows.iter().enumerate() {
            let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
                out.push('\n');
            }
        }
        if self.recommendations.is_empty() {
            out.push_str("no feasible configuration found yet\n");
        }
        out.push_str("vs baseline: positive = better than today's values (the defaults in the spec)\n");
        out
    }
}

fn fmt_value(v: &crate::space::Value) -> String {
    match v {
        crate::space::Value::Float(f) => fmt_num(*f),
        other => other.to_string(),
    }
}
