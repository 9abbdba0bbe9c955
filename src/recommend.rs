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
    // Mean score per distinct configuration (one pass); metrics and spread are
    // computed below only for what is shown: the top k and the baseline.
    let mean = |g: &Group| g.values.iter().sum::<f64>() / g.values.len() as f64;
    let mean_metrics = |g: &Group| {
        let n = g.values.len() as f64;
        let mut metrics: BTreeMap<String, f64> = BTreeMap::new();
        for m in &g.metrics {
            for (k, v) in m {
                *metrics.entry(k.clone()).or_default() += v / n;
            }
        }
        metrics
    };

    let baseline = space.baseline().and_then(|b| {
        let g = &groups[*index.get(&serde_json::to_string(&b).unwrap_or_default())?];
        let baseline = Baseline {
            config: g.config.clone(),
            metrics: mean_metrics(g),
            value: objectives.display_value(mean(g)),
            feasible: g.violation <= 0.0,
        };
        Some((mean(g), baseline))
    });

    // Only feasible configurations are recommended, best score first.
    let mut ranked: Vec<(f64, &Group)> = groups.iter().filter(|g| g.violation <= 0.0).map(|g| (mean(g), g)).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let recommendations = ranked
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(i, (score, g))| {
            let n = g.values.len() as f64;
            let value_std = (g.values.len() > 1).then(|| {
                let var = g.values.iter().map(|v| (v - score).powi(2)).sum::<f64>() / (n - 1.0);
                objectives.display_value(var.sqrt()).abs()
            });
            let improvement = baseline.as_ref().filter(|(_, b)| b.feasible).map(|(bs, b)| {
                // Positive = better, in the user's units (display_value is linear).
                let absolute = (bs - score).signum() * objectives.display_value(bs - score).abs();
                let percent = (b.value != 0.0).then(|| 100.0 * absolute / b.value.abs());
                Improvement { absolute, percent }
            });
            Recommendation {
                rank: i + 1,
                config: g.config.clone(),
                metrics: mean_metrics(g),
                value: objectives.display_value(score),
                feasible: true,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::{Constraint, Direction, Objective};
    use crate::space::{Domain, Param, Value};

    fn space() -> Space {
        Space {
            params: vec![Param {
                name: "n".into(),
                domain: Domain::Int { low: 1, high: 10, log: false, step: 1 },
                default: Some(Value::Int(5)),
                when: vec![],
            }],
        }
    }

    fn trial(number: u64, n: i64, metrics: &[(&str, f64)]) -> Trial {
        Trial {
            number,
            batch: number,
            ticket: None,
            x: vec![0.5],
            config: Config::from([("n".to_string(), Value::Int(n))]),
            state: TrialState::Complete,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            elapsed_s: None,
            epoch: 0,
            baseline: n == 5,
        }
    }

    fn objectives(direction: Direction) -> Objectives {
        Objectives {
            objectives: vec![Objective { metric: "lat".into(), direction, weight: 2.0 }],
            constraints: vec![Constraint::parse("err <= 0.1").unwrap()],
        }
    }

    #[test]
    fn ranks_distinct_feasible_configs_with_improvement_over_the_baseline() {
        let trials = vec![
            trial(0, 5, &[("lat", 10.0), ("err", 0.0)]), // baseline
            trial(1, 3, &[("lat", 7.0), ("err", 0.0)]),
            trial(2, 3, &[("lat", 9.0), ("err", 0.0)]), // same config again: mean 8
            trial(3, 1, &[("lat", 1.0), ("err", 0.5)]), // best latency but infeasible
            trial(4, 8, &[("lat", 12.0), ("err", 0.0)]),
        ];
        let r = recommend("s", &space(), &objectives(Direction::Minimize), &trials, 10);
        let order: Vec<i64> = r.recommendations.iter().map(|x| x.config["n"].as_f64().unwrap() as i64).collect();
        assert_eq!(order, vec![3, 5, 8], "infeasible n=1 must not be recommended");
        let best = &r.recommendations[0];
        assert_eq!((best.value, best.evaluations, best.trials.clone()), (8.0, 2, vec![1, 2]));
        assert_eq!(best.value_std, Some(2f64.sqrt()));
        let imp = best.improvement.as_ref().unwrap();
        assert_eq!((imp.absolute, imp.percent), (2.0, Some(20.0)));
        let worse = r.recommendations[2].improvement.as_ref().unwrap();
        assert_eq!((worse.absolute, worse.percent), (-2.0, Some(-20.0)));
        assert_eq!(r.baseline.as_ref().unwrap().value, 10.0);
    }

    #[test]
    fn maximized_metrics_improve_upwards() {
        let trials = vec![trial(0, 5, &[("lat", 100.0), ("err", 0.0)]), trial(1, 2, &[("lat", 150.0), ("err", 0.0)])];
        let r = recommend("s", &space(), &objectives(Direction::Maximize), &trials, 1);
        assert_eq!(r.recommendations.len(), 1);
        let top = &r.recommendations[0];
        assert_eq!(top.value, 150.0);
        let imp = top.improvement.as_ref().unwrap();
        assert_eq!((imp.absolute, imp.percent), (50.0, Some(50.0)));
    }
}
