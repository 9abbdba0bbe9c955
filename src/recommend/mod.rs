//! Recommendations: the best distinct feasible configurations of a study,
//! ranked, each with its metrics, how many times it was evaluated, and how
//! much better it is than the baseline (today's production values).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::cube::sobol_point;
use crate::format::fmt_num;
use crate::objective::Objectives;
use crate::space::{Config, Space};
use crate::surrogate::gp::kinds_of;
use crate::surrogate::importance::main_effects;
use crate::surrogate::subset::best_and_recent;
use crate::surrogate::{FitOptions, Gp, OutputTransform};
use crate::trial::{Trial, TrialState};

/// One configuration with the evidence for it.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// Position in the ranking, from 1 (the best).
    pub rank: usize,
    /// The configuration's parameter values.
    pub config: Config,
    /// Mean of each metric over the configuration's evaluations.
    pub metrics: BTreeMap<String, f64>,
    /// The objective in the user's units (the metric itself for one objective).
    pub value: f64,
    /// Always true: only feasible configurations are recommended.
    pub feasible: bool,
    /// How many complete trials evaluated this configuration.
    pub evaluations: usize,
    /// Spread of the objective over those evaluations (sample std), if more than one.
    pub value_std: Option<f64>,
    /// Numbers of the trials that evaluated it, in the order they were read.
    pub trials: Vec<u64>,
    /// Better than the baseline by this much (positive = better); `None` without a feasible,
    /// evaluated baseline.
    pub improvement: Option<Improvement>,
    /// What a GP fitted on the complete trials (at most 500: the best half and the most recent)
    /// predicts for this configuration; absent with fewer than [`MODEL_MIN_TRIALS`] scorable
    /// trials, or when the fit fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Predicted>,
}

/// A model prediction in the objective's units.
#[derive(Debug, Clone, Serialize)]
pub struct Predicted {
    /// The model's posterior mean.
    pub mean: f64,
    /// One standard deviation of the model's uncertainty about the mean.
    pub std: f64,
}

/// How much of the objective's variation one parameter explains, per the
/// GP (see [`crate::surrogate::importance`]).
#[derive(Debug, Clone, Serialize)]
pub struct Importance {
    /// The parameter's name.
    pub param: String,
    /// Its share of the explained variation, in [0, 1]; the shares of all parameters sum to 1
    /// (or are all 0 when the model is flat).
    pub importance: f64,
}

/// A GP needs this many complete trials before it is worth reporting.
pub const MODEL_MIN_TRIALS: usize = 8;
/// At most this many trials enter the reporting GP (the best half and the
/// most recent rest), so reports stay fast on long studies.
const MODEL_MAX_TRIALS: usize = 500;

/// How much better a recommendation is than the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Improvement {
    /// Objective difference in the user's units, signed so that positive is better.
    pub absolute: f64,
    /// `absolute` relative to the baseline's value, in percent (when the baseline is non-zero).
    pub percent: Option<f64>,
}

/// The baseline (the space's defaults, today's values) as the study measured it.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// The baseline's parameter values.
    pub config: Config,
    /// Mean of each metric over the baseline's complete trials.
    pub metrics: BTreeMap<String, f64>,
    /// The objective in the user's units, from the mean score.
    pub value: f64,
    /// False when its trials violated a constraint; recommendations then carry no improvement.
    pub feasible: bool,
}

/// Everything `knobs recommend` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendations {
    /// The study's name.
    pub study: String,
    /// The objective in words (see [`Objectives::describe`]).
    pub objective: String,
    /// Each constraint as text, e.g. `p99_latency_ms <= 50`.
    pub constraints: Vec<String>,
    /// Trials seen, in any state.
    pub trials: usize,
    /// Trials that completed (scorable or not).
    pub complete: usize,
    /// Trials that failed.
    pub failed: usize,
    /// The baseline; `None` when the space has none or it has no complete, scorable trial.
    pub baseline: Option<Baseline>,
    /// The best distinct feasible configurations, best first (at most the `k` asked for).
    pub recommendations: Vec<Recommendation>,
    /// Parameter importance, most important first (empty without a model).
    pub importance: Vec<Importance>,
}

/// The GP of a study's complete trials, on the scores (lower is better).
struct Model {
    gp: Gp,
    transform: OutputTransform,
}

impl Model {
    fn fit(space: &Space, points: &[(Vec<f64>, f64)]) -> Option<Model> {
        let dims = space.dims();
        let usable: Vec<&(Vec<f64>, f64)> =
            points.iter().filter(|(x, v)| x.len() == dims.len() && v.is_finite()).collect();
        if usable.len() < MODEL_MIN_TRIALS || dims.is_empty() {
            return None;
        }
        let values: Vec<f64> = usable.iter().map(|(_, v)| *v).collect();
        let chosen: Vec<&(Vec<f64>, f64)> =
            best_and_recent(&values, MODEL_MAX_TRIALS, MODEL_MAX_TRIALS / 2).into_iter().map(|i| usable[i]).collect();
        let xs: Vec<Vec<f64>> = chosen.iter().map(|(x, _)| x.clone()).collect();
        let transform = OutputTransform::fit(&chosen.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        let ys: Vec<f64> = chosen.iter().map(|(_, v)| transform.forward(*v)).collect();
        let gp = Gp::fit(&kinds_of(&dims), &xs, &ys, &FitOptions { restarts: 2, ..Default::default() }).ok()?;
        Some(Model { gp, transform })
    }

    /// Predicted score and its uncertainty, back on the score's scale.
    fn predict(&self, x: &[f64]) -> (f64, f64) {
        let (mu, var) = self.gp.predict(x);
        let s = var.sqrt();
        let t = &self.transform;
        (t.inverse(mu), ((t.inverse(mu + s) - t.inverse(mu - s)) / 2.0).abs())
    }

    fn importance(&self, space: &Space) -> Vec<Importance> {
        let base: Vec<Vec<f64>> = (0..64).map(|i| sobol_point(i, space.dim(), 0x1A9)).collect();
        let effects = main_effects(&self.gp, &base);
        let mut out: Vec<Importance> = space
            .params
            .iter()
            .zip(effects)
            .map(|(p, importance)| Importance { param: p.name.clone(), importance })
            .collect();
        out.sort_by(|a, b| b.importance.total_cmp(&a.importance));
        out
    }
}

/// The evidence for one distinct configuration (its JSON is the key it is
/// filed under; the configuration itself is parsed back only when shown).
struct Group {
    /// The first trial that evaluated it: ties in score rank by it.
    first: u64,
    trials: Vec<u64>,
    /// Sum of each metric over the evaluations.
    metric_sums: BTreeMap<String, f64>,
    values: Vec<f64>,
    violation: f64,
}

impl Group {
    fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    fn mean_metrics(&self) -> BTreeMap<String, f64> {
        let n = self.values.len() as f64;
        self.metric_sums.iter().map(|(k, v)| (k.clone(), v / n)).collect()
    }
}

/// Builds [`Recommendations`] from trials fed one at a time, so a study's
/// trials can be read page by page instead of all at once: it keeps per
/// distinct configuration only its trial numbers, scores and metric sums.
pub struct Recommender<'a> {
    space: &'a Space,
    objectives: &'a Objectives,
    groups: HashMap<String, Group>,
    points: Vec<(Vec<f64>, f64)>,
    trials: usize,
    complete: usize,
    failed: usize,
}

impl<'a> Recommender<'a> {
    /// An empty recommender for trials of `space` scored by `objectives`.
    pub fn new(space: &'a Space, objectives: &'a Objectives) -> Self {
        Recommender { space, objectives, groups: HashMap::new(), points: Vec::new(), trials: 0, complete: 0, failed: 0 }
    }

    /// Take one trial into account (any state).
    pub fn add(&mut self, t: &Trial) {
        self.trials += 1;
        match t.state {
            TrialState::Complete => self.complete += 1,
            TrialState::Failed { .. } => self.failed += 1,
            _ => {}
        }
        if t.state != TrialState::Complete {
            return;
        }
        let Ok(outcome) = self.objectives.score(&t.metrics) else { return };
        self.points.push((t.x.clone(), outcome.score));
        let key = serde_json::to_string(&t.config).unwrap_or_default();
        let g = self.groups.entry(key).or_insert_with(|| Group {
            first: t.number,
            trials: vec![],
            metric_sums: BTreeMap::new(),
            values: vec![],
            violation: 0.0,
        });
        g.trials.push(t.number);
        for (k, v) in &t.metrics {
            *g.metric_sums.entry(k.clone()).or_default() += v;
        }
        g.values.push(outcome.score);
        g.violation += outcome.violation;
    }

    /// Rank the distinct complete configurations; keep the top `k`.
    pub fn finish(self, study: &str, k: usize) -> Recommendations {
        let (space, objectives) = (self.space, self.objectives);
        let config_of = |key: &str| serde_json::from_str::<Config>(key).unwrap_or_default();
        let baseline = space.baseline().and_then(|b| {
            let key = serde_json::to_string(&b).unwrap_or_default();
            let g = self.groups.get(&key)?;
            let baseline = Baseline {
                config: config_of(&key),
                metrics: g.mean_metrics(),
                value: objectives.display_value(g.mean()),
                feasible: g.violation <= 0.0,
            };
            Some((g.mean(), baseline))
        });

        // Only feasible configurations are recommended, best score first
        // (ties: the one evaluated first).
        let mut ranked: Vec<(f64, &String, &Group)> =
            self.groups.iter().filter(|(_, g)| g.violation <= 0.0).map(|(key, g)| (g.mean(), key, g)).collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.first.cmp(&b.2.first)));
        ranked.truncate(k);
        let model = if ranked.is_empty() { None } else { Model::fit(space, &self.points) };
        let recommendations = ranked
            .into_iter()
            .enumerate()
            .map(|(i, (score, key, g))| {
                let config = config_of(key);
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
                let predicted = model.as_ref().and_then(|m| {
                    let (mean, std) = m.predict(&space.encode(&config).ok()?);
                    Some(Predicted { mean: objectives.display_value(mean), std: objectives.display_value(std).abs() })
                });
                Recommendation {
                    rank: i + 1,
                    config,
                    metrics: g.mean_metrics(),
                    value: objectives.display_value(score),
                    feasible: true,
                    evaluations: g.values.len(),
                    value_std,
                    trials: g.trials.clone(),
                    improvement,
                    predicted,
                }
            })
            .collect();

        Recommendations {
            study: study.to_string(),
            objective: objectives.describe(),
            constraints: objectives.constraints.iter().map(|c| c.to_string()).collect(),
            trials: self.trials,
            complete: self.complete,
            failed: self.failed,
            baseline: baseline.map(|(_, b)| b),
            recommendations,
            importance: model.map(|m| m.importance(space)).unwrap_or_default(),
        }
    }
}

/// Rank the distinct complete configurations of a study; keep the top `k`.
pub fn recommend(study: &str, space: &Space, objectives: &Objectives, trials: &[Trial], k: usize) -> Recommendations {
    let mut r = Recommender::new(space, objectives);
    for t in trials {
        r.add(t);
    }
    r.finish(study, k)
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
        let model = self.recommendations.iter().any(|r| r.predicted.is_some());
        let mut header = vec!["rank".to_string(), "value".into(), "vs baseline".into(), "evals".into()];
        if model {
            header.push("model".into());
        }
        header.extend(params.iter().map(|p| p.to_string()));
        let mut rows: Vec<Vec<String>> = vec![header];
        if let Some(b) = &self.baseline {
            let mut row = vec![
                "base".to_string(),
                format!("{}{}", fmt_num(b.value), if b.feasible { "" } else { " (infeasible)" }),
                "-".into(),
                "".into(),
            ];
            if model {
                row.push("".into());
            }
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
            if model {
                row.push(
                    r.predicted.as_ref().map_or("-".into(), |p| format!("{} ±{}", fmt_num(p.mean), fmt_num(p.std))),
                );
            }
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
        if model {
            out.push_str("model: the Gaussian process's prediction for the configuration, ± one standard deviation\n");
        }
        if !self.importance.is_empty() {
            let parts: Vec<String> =
                self.importance.iter().map(|i| format!("{} {:.0}%", i.param, 100.0 * i.importance)).collect();
            out.push_str(&format!("parameter importance (GP main effects): {}\n", parts.join(", ")));
        }
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
            confirm: false,
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

    #[test]
    fn the_model_predicts_recommendations_and_ranks_parameter_importance() {
        // Two ints; only `a` matters: lat = (a - 7)^2.
        let int = |name: &str| Param {
            name: name.into(),
            domain: Domain::Int { low: 1, high: 10, log: false, step: 1 },
            default: None,
            when: vec![],
        };
        let space = Space { params: vec![int("a"), int("b")] };
        let mut trials = Vec::new();
        for i in 0..30u64 {
            let (a, b) = (1 + (i * 7 % 10) as i64, 1 + (i * 3 % 10) as i64);
            let config = Config::from([("a".to_string(), Value::Int(a)), ("b".to_string(), Value::Int(b))]);
            let lat = ((a - 7) * (a - 7)) as f64;
            let mut t = trial(i, 0, &[("lat", lat), ("err", 0.0)]);
            t.x = space.encode(&config).unwrap();
            t.config = config;
            t.baseline = false;
            trials.push(t);
        }
        let recs = recommend("s", &space, &objectives(Direction::Minimize), &trials, 3);
        assert_eq!(recs.importance[0].param, "a", "{:?}", recs.importance);
        assert!(recs.importance[0].importance > 0.9, "{:?}", recs.importance);
        let best = &recs.recommendations[0];
        let p = best.predicted.as_ref().expect("a model with 30 trials");
        // The objective is 2·lat (weight 2); the best configs have lat = 0.
        assert!((p.mean - best.value).abs() < 0.5, "{p:?} vs {}", best.value);
        assert!(recs.table(&space).contains("parameter importance"));
        // Too few trials: no model, no importance.
        let few = recommend("s", &space, &objectives(Direction::Minimize), &trials[..4], 3);
        assert!(few.importance.is_empty() && few.recommendations[0].predicted.is_none());
    }
}
