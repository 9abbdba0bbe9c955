//! Recommendations: the best distinct feasible configurations of a study,
//! ranked by an estimate that accounts for measurement noise, each with its
//! mean over its evaluations, an interval for its value, and how much better
//! it is than the baseline (today's production values) with the probability
//! that it really is; plus parameter importance and the warnings a careful
//! engineer would give.
//!
//! - Noise: pooled from configurations measured more than once and from the
//!   noise the GP fitted (`evidence.rs`). When it matters (above 1% of the
//!   spread of the study's values), candidates are ranked by the GP's
//!   posterior mean, which weighs a lucky single measurement against its
//!   neighbours, instead of by what was observed.
//! - Distinct: configurations within 5% of each range are one candidate,
//!   and up to half the list is kept for the best of each categorical choice
//!   the best does not make (`distinct.rs`).
//! - Importance: a variance decomposition of a GP fitted on trials that
//!   cover the space, integrated over the whole space (`model.rs`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::objective::Objectives;
use crate::space::{Config, Space, Value};
use crate::trial::{Trial, TrialState};

mod distinct;
pub(crate) mod evidence;
mod model;
pub mod pareto;
mod table;
#[cfg(test)]
mod tests;
mod warnings;

pub use evidence::{COVERAGE, NoiseSource};
pub use model::MODEL_MIN_TRIALS;
pub use warnings::{Warning, WarningKind};

use evidence::{Estimate, NoiseEstimate, difference, estimate};
use model::{Landscape, Model};

/// An unconfirmed configuration ranks ahead of the confirmed leader at this probability of
/// being better (its measurements against the leader's, under the pooled noise).
const CLEARLY_BETTER: f64 = 0.99;
/// At most this many of the best ranked configurations are merged into candidates and chosen
/// from (their near-copies further down count as `similar` no more).
const CANDIDATES: usize = 1000;

/// A recommendation is called better than the baseline when it is with at least this
/// probability.
pub const CONFIDENT: f64 = 0.8;

/// One configuration with the evidence for it.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// Position in the ranking, from 1 (the best).
    pub rank: usize,
    /// The configuration's parameter values.
    pub config: Config,
    /// Mean of each metric over the configuration's evaluations.
    pub metrics: BTreeMap<String, f64>,
    /// The objective in the user's units (the metric itself for one objective): the mean over
    /// its evaluations.
    pub value: f64,
    /// A [`COVERAGE`] interval for the configuration's true value, from the noise of its
    /// evaluations (pooled with the study's other repeats and the model's noise); absent
    /// when the noise is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_interval: Option<[f64; 2]>,
    /// Always true: only feasible configurations are recommended.
    pub feasible: bool,
    /// How many complete trials evaluated this configuration.
    pub evaluations: usize,
    /// Spread of the objective over those evaluations (sample std), if more than one.
    pub value_std: Option<f64>,
    /// Numbers of the trials that evaluated it, in the order they were read.
    pub trials: Vec<u64>,
    /// How many other evaluated configurations were so close to this one (within 5% of
    /// every range, same choices) that they count as the same candidate.
    pub similar: usize,
    /// The categorical choices this is the best configuration with, where the best overall
    /// makes other choices (e.g. the best with `eviction: lfu`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub best_with: Vec<Choice>,
    /// Better than the baseline by this much (positive = better); `None` without a feasible,
    /// evaluated baseline.
    pub improvement: Option<Improvement>,
    /// What a GP fitted on the complete trials (at most 500: the best half and the most recent)
    /// predicts for this configuration; absent with fewer than [`MODEL_MIN_TRIALS`] scorable
    /// trials, or when the fit fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Predicted>,
}

/// The best configuration left out of the recommendations because it makes risky choices
/// (see [`crate::space::Param::risky`]): what the safe ones give up.
#[derive(Debug, Clone, Serialize)]
pub struct RiskyBest {
    /// Its parameter values.
    pub config: Config,
    /// The risky choices it makes.
    pub risky: Vec<Choice>,
    /// Its value (mean over its evaluations).
    pub value: f64,
    /// How many complete trials evaluated it.
    pub evaluations: usize,
    /// Better than the baseline by this much, as for a recommendation.
    pub improvement: Option<Improvement>,
}

/// A parameter and one of its values.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    /// The parameter's name.
    pub param: String,
    /// The value.
    pub value: Value,
}

/// A model prediction in the objective's units.
#[derive(Debug, Clone, Serialize)]
pub struct Predicted {
    /// The model's posterior mean.
    pub mean: f64,
    /// One standard deviation of the model's uncertainty about the mean.
    pub std: f64,
    /// One standard deviation of the measurement noise the model fitted.
    pub noise_std: f64,
    /// A [`COVERAGE`] predictive interval for one new measurement (model uncertainty and
    /// noise together).
    pub interval: [f64; 2],
}

/// How much one parameter explains of the objective's variation over the whole space, per
/// the GP (see [`crate::surrogate::importance`]).
#[derive(Debug, Clone, Serialize)]
pub struct Importance {
    /// The parameter's name.
    pub param: String,
    /// The share of the variation its main effect explains, in [0, 1]. The shares of all
    /// parameters sum to at most 1; the rest is explained by interactions.
    pub importance: f64,
    /// The same share within 10% of each range around the best recommendation (every choice
    /// of a categorical): what matters when fine-tuning around it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_best: Option<f64>,
}

/// An interaction between two parameters: variation neither explains alone.
#[derive(Debug, Clone, Serialize)]
pub struct Interaction {
    /// The two parameters.
    pub params: [String; 2],
    /// The share of the variation the pair explains beyond their main effects, in [0, 1].
    pub importance: f64,
}

/// How much better a recommendation is than the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Improvement {
    /// Objective difference in the user's units, signed so that positive is better.
    pub absolute: f64,
    /// `absolute` relative to the baseline's value, in percent (when the baseline is non-zero).
    pub percent: Option<f64>,
    /// A [`COVERAGE`] interval for the true `absolute`; absent when the noise is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// The same interval in percent of the baseline's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_percent: Option<[f64; 2]>,
    /// The probability that the configuration is truly better than the baseline; absent when
    /// the noise is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability_better: Option<f64>,
    /// How many confirmation rounds measured it beside the baseline. With two or more, the
    /// figures above compare those side-by-side measurements only (drift in the system
    /// between rounds cancels); otherwise every measurement of both.
    pub paired_rounds: usize,
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
    /// A [`COVERAGE`] interval for its true value, when the noise is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_interval: Option<[f64; 2]>,
    /// How many complete trials evaluated it.
    pub evaluations: usize,
    /// False when its trials violated a constraint; recommendations then carry no improvement.
    pub feasible: bool,
}

/// What the study's measurements say about their noise.
#[derive(Debug, Clone, Serialize)]
pub struct Noise {
    /// One standard deviation of a single measurement, in the objective's units; absent when
    /// unknown (no configuration measured twice and no model).
    pub std: Option<f64>,
    /// Where the figure comes from.
    pub source: NoiseSource,
    /// True when the noise is large enough to change the ranking (above 1% of the spread of
    /// the study's values): candidates are then ranked by the model's estimate.
    pub noisy: bool,
    /// How many configurations were measured more than once.
    pub repeated: usize,
    /// The noise's share of the variance between all the study's measurements, in [0, 1]:
    /// near 1, the differences between configurations are mostly noise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
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
    /// The measurement noise.
    pub noise: Noise,
    /// The best distinct feasible configurations, best first (at most the `k` asked for).
    pub recommendations: Vec<Recommendation>,
    /// Whether some recommendation is better than the baseline with at least [`CONFIDENT`]
    /// probability; `None` when there is nothing to compare.
    pub better_than_baseline: Option<bool>,
    /// The best configuration not recommended because it makes risky choices (unless they
    /// were allowed); absent when none was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risky_best: Option<RiskyBest>,
    /// What deserves a second look before deploying.
    pub warnings: Vec<Warning>,
    /// Parameter importance, most important first (empty without a model).
    pub importance: Vec<Importance>,
    /// The largest interactions between pairs of parameters (at least 1% each).
    pub interactions: Vec<Interaction>,
    /// In a Pareto study: the front, its hypervolume and reference point (`recommendations`
    /// is then empty: no configuration is best in every objective).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub pareto: Option<pareto::ParetoFront>,
}

/// The evidence for one distinct configuration.
struct Group {
    config: Config,
    /// The first trial that evaluated it: ties in score rank by it.
    first: u64,
    trials: Vec<u64>,
    /// Sum of each metric over the evaluations.
    metric_sums: BTreeMap<String, f64>,
    values: Vec<f64>,
    violation: f64,
}

impl Group {
    fn mean_metrics(&self) -> BTreeMap<String, f64> {
        let n = self.values.len() as f64;
        self.metric_sums.iter().map(|(k, v)| (k.clone(), v / n)).collect()
    }

    fn feasible(&self) -> bool {
        self.violation <= 0.0
    }
}

/// Builds [`Recommendations`] from trials fed one at a time, so a study's
/// trials can be read page by page instead of all at once: it keeps per
/// distinct configuration only its trial numbers, scores and metric sums.
pub struct Recommender<'a> {
    space: &'a Space,
    objectives: &'a Objectives,
    index: HashMap<String, usize>,
    groups: Vec<Group>,
    points: Vec<(Vec<f64>, f64)>,
    /// Confirmation rounds: per batch, the configurations (group indices) measured, their
    /// scores and trial numbers, in trial order.
    rounds: BTreeMap<u64, Vec<(usize, f64, u64)>>,
    /// The highest number of a trial that was not a confirmation (where the latest
    /// confirmation phase starts).
    last_search: Option<u64>,
    /// Recommend configurations with risky choices too.
    allow_risky: bool,
    /// The evaluator measures the same every time: no noise (a GP's fitted noise is misfit).
    deterministic: bool,
    /// Compute parameter importance (a second GP and a decomposition).
    importance: bool,
    seen: warnings::Seen,
}

impl<'a> Recommender<'a> {
    /// An empty recommender for trials of `space` scored by `objectives`.
    pub fn new(space: &'a Space, objectives: &'a Objectives) -> Self {
        Recommender {
            space,
            objectives,
            index: HashMap::new(),
            groups: Vec::new(),
            points: Vec::new(),
            rounds: BTreeMap::new(),
            last_search: None,
            allow_risky: false,
            deterministic: false,
            importance: true,
            seen: warnings::Seen::default(),
        }
    }

    /// Leave parameter importance out (empty `importance` and `interactions`): for a caller
    /// that needs only the ranking, such as the confirmation phase's planner.
    pub fn without_importance(mut self) -> Self {
        self.importance = false;
        self
    }

    /// Whether configurations that make risky choices may be recommended (by default they are
    /// not: the best of them is reported as [`Recommendations::risky_best`]).
    pub fn allow_risky(mut self, allow: bool) -> Self {
        self.allow_risky = allow;
        self
    }

    /// Whether the trials come from a deterministic evaluator (see
    /// [`crate::eval::Evaluator::deterministic`]): then there is no noise to estimate, and a
    /// model's fitted noise (its misfit on a rugged function) does not make the study noisy.
    pub fn deterministic(mut self, deterministic: bool) -> Self {
        self.deterministic = deterministic;
        self
    }

    /// Take one trial into account (any state).
    pub fn add(&mut self, t: &Trial) {
        self.seen.trial(t, self.objectives);
        if !t.confirm {
            self.last_search = self.last_search.max(Some(t.number));
        }
        if t.state != TrialState::Complete {
            return;
        }
        let Ok(outcome) = self.objectives.score(&t.metrics) else { return };
        self.points.push((t.x.clone(), outcome.score));
        let key = serde_json::to_string(&t.config).unwrap_or_default();
        let next = self.groups.len();
        let i = *self.index.entry(key).or_insert(next);
        if i == next {
            self.groups.push(Group {
                config: t.config.clone(),
                first: t.number,
                trials: vec![],
                metric_sums: BTreeMap::new(),
                values: vec![],
                violation: 0.0,
            });
        }
        let g = &mut self.groups[i];
        g.trials.push(t.number);
        for (k, v) in &t.metrics {
            *g.metric_sums.entry(k.clone()).or_default() += v;
        }
        g.values.push(outcome.score);
        g.violation += outcome.violation;
        if t.confirm {
            self.rounds.entry(t.batch).or_default().push((i, outcome.score, t.number));
        }
    }

    /// Side-by-side scores (of `b`, of `c`) of two groups in the confirmation rounds that
    /// measured both.
    fn pairs(&self, b: usize, c: usize) -> Vec<(f64, f64)> {
        let score = |r: &Vec<(usize, f64, u64)>, g: usize| r.iter().find(|m| m.0 == g).map(|m| m.1);
        self.rounds.values().filter_map(|r| Some((score(r, b)?, score(r, c)?))).collect()
    }

    /// The search's best candidate as the latest confirmation phase took it (the first
    /// configuration of its first round that is not the baseline).
    fn search_leader(&self, baseline: Option<usize>) -> Option<usize> {
        let after = self.last_search.map_or(0, |n| n + 1);
        let first = self.rounds.values().find(|r| r.iter().all(|m| m.2 >= after))?;
        first.iter().map(|m| m.0).find(|&g| Some(g) != baseline)
    }

    /// Rank the distinct complete configurations; keep the top `k` (in a Pareto study: the
    /// whole front, see [`pareto`]).
    pub fn finish(self, study: &str, k: usize) -> Recommendations {
        if self.objectives.pareto {
            return self.finish_pareto(study);
        }
        let (space, objectives) = (self.space, self.objectives);
        let any_feasible = self.groups.iter().any(Group::feasible);
        let model = if any_feasible { Model::predicting(space, &self.points) } else { None };
        let scores: Vec<f64> = self.points.iter().map(|p| p.1).collect();
        let spread = (evidence::sum_squares(&scores).0 / scores.len().max(1) as f64).sqrt();
        let base_index = self.baseline_group();
        let (ranked, noise) = self.rank(model.as_ref(), spread, base_index);
        let noisy = noise.noisy(spread);
        let risky = |g: &usize| !self.allowed(*g);
        // The baseline has its own row: it is what the recommendations are compared with.
        let ranked: Vec<usize> = ranked.into_iter().filter(|&g| Some(g) != base_index).collect();
        let (risky_ranked, mut ranked): (Vec<usize>, Vec<usize>) = ranked.into_iter().partition(risky);
        // Candidates come from the best ranked configurations only: merging near-copies compares
        // each with every candidate kept so far, which must not grow with the study.
        ranked.truncate(CANDIDATES);
        let configs: Vec<&Config> = ranked.iter().map(|&g| &self.groups[g].config).collect();
        // Each candidate is shown by its most measured configuration (the best of those).
        let clusters: Vec<(usize, usize)> = distinct::cluster(space, &configs)
            .iter()
            .map(|c| {
                let most =
                    c.members.iter().copied().max_by_key(|&m| (self.groups[ranked[m]].values.len(), usize::MAX - m));
                (ranked[most.unwrap_or(c.members[0])], c.members.len() - 1)
            })
            .collect();
        let representatives: Vec<&Config> = clusters.iter().map(|&(g, _)| &self.groups[g].config).collect();
        let picks = distinct::select(space, &representatives, k);

        let base_estimate = base_index.map(|b| estimate(&self.groups[b].values, &noise));
        let recommendations: Vec<Recommendation> = picks
            .iter()
            .enumerate()
            .map(|(i, pick)| {
                let (g, similar) = clusters[pick.index];
                let mut r = self.recommendation(g, &noise, model.as_ref(), base_index.zip(base_estimate));
                r.rank = i + 1;
                r.similar = similar;
                r.best_with =
                    pick.best_with.iter().map(|(p, v)| Choice { param: p.clone(), value: v.clone() }).collect();
                r
            })
            .collect();

        let baseline = base_index.zip(base_estimate).map(|(b, est)| self.baseline(b, &est));
        let better_than_baseline = baseline.as_ref().filter(|b| b.feasible).and_then(|_| {
            let probabilities: Vec<f64> =
                recommendations.iter().filter_map(|r| r.improvement.as_ref()?.probability_better).collect();
            (!probabilities.is_empty()).then(|| probabilities.iter().any(|&p| p >= CONFIDENT))
        });
        let risky_best = risky_ranked.first().map(|&g| {
            let r = self.recommendation(g, &noise, model.as_ref(), base_index.zip(base_estimate));
            let risky =
                space.risky_choices(&r.config).into_iter().map(|(param, value)| Choice { param, value }).collect();
            RiskyBest {
                config: r.config,
                risky,
                value: r.value,
                evaluations: r.evaluations,
                improvement: r.improvement,
            }
        });
        let (importance, interactions) =
            if self.importance { self.importance(model.as_ref(), recommendations.first()) } else { Default::default() };
        let noise_summary = Noise {
            std: noise.known().then(|| noise.var.sqrt() * objectives.display_value(1.0).abs()),
            source: noise.source,
            noisy,
            repeated: self.groups.iter().filter(|g| g.values.len() > 1).count(),
            share: (noise.known() && spread > 0.0).then(|| (noise.var / (spread * spread)).min(1.0)),
        };
        let mut warnings =
            self.seen.warnings(objectives, space, &baseline, &noise_summary, &recommendations, better_than_baseline);
        warnings.extend(self.reversed(base_index, &recommendations, &noise));
        Recommendations {
            recommendations,
            better_than_baseline,
            risky_best,
            importance,
            interactions,
            ..self.summary(study, baseline, noise_summary, warnings)
        }
    }

    /// What every kind of study reports: its name, objective, counts, baseline, noise and
    /// warnings; no ranking, importance or front yet.
    fn summary(
        &self,
        study: &str,
        baseline: Option<Baseline>,
        noise: Noise,
        warnings: Vec<Warning>,
    ) -> Recommendations {
        let objectives = self.objectives;
        Recommendations {
            study: study.to_string(),
            objective: objectives.describe(),
            constraints: objectives.constraints.iter().map(|c| c.to_string()).collect(),
            trials: self.seen.trials,
            complete: self.seen.complete,
            failed: self.seen.failed,
            baseline,
            noise,
            recommendations: Vec::new(),
            better_than_baseline: None,
            risky_best: None,
            warnings,
            importance: Vec::new(),
            interactions: Vec::new(),
            pareto: None,
        }
    }

    /// The group of the baseline (the space's defaults), when it was measured.
    fn baseline_group(&self) -> Option<usize> {
        self.space.baseline().and_then(|b| self.groups.iter().position(|g| g.config == b))
    }

    /// Whether group `g` may be recommended: no risky choice, or risky ones allowed.
    fn allowed(&self, g: usize) -> bool {
        self.allow_risky || self.space.risky_choices(&self.groups[g].config).is_empty()
    }

    /// A Pareto study's front (see [`pareto`]): every feasible, allowed configuration no other
    /// beats in every objective, by the means of their evaluations.
    fn finish_pareto(self, study: &str) -> Recommendations {
        let (space, objectives) = (self.space, self.objectives);
        let base_index = self.baseline_group();
        let candidates: Vec<pareto::Candidate> = (0..self.groups.len())
            .filter(|&i| Some(i) != base_index && self.groups[i].feasible() && self.allowed(i))
            .map(|i| {
                let g = &self.groups[i];
                pareto::Candidate {
                    config: &g.config,
                    metrics: g.mean_metrics(),
                    evaluations: g.values.len(),
                    trials: &g.trials,
                }
            })
            .collect();
        let baseline =
            base_index.map(|b| self.baseline(b, &estimate(&self.groups[b].values, &NoiseEstimate::unknown())));
        let front = pareto::front(objectives, candidates, baseline.as_ref().filter(|b| b.feasible).map(|b| &b.metrics));
        let source = if self.deterministic { NoiseSource::Deterministic } else { NoiseSource::Unknown };
        let noise = Noise { std: None, source, noisy: false, repeated: 0, share: None };
        let warnings = self.seen.warnings(objectives, space, &baseline, &noise, &[], None);
        Recommendations { pareto: Some(front), ..self.summary(study, baseline, noise, warnings) }
    }

    /// The feasible groups, best first, and the noise. Noise pools every repeated
    /// configuration with the model's; when it matters, groups rank by the model's estimate
    /// (which weighs a lucky single measurement against its neighbours), else by their mean.
    /// Configurations confirmed in two rounds or more come first, by their gain over the
    /// baseline measured beside them (by their confirmed mean without a baseline): the
    /// evidence for them is what drift cannot fake; ahead of them only a configuration whose
    /// measurements beat the confirmed leader's with probability [`CLEARLY_BETTER`]. Not when
    /// the measurements are exact.
    fn rank(&self, model: Option<&Model>, spread: f64, baseline: Option<usize>) -> (Vec<usize>, NoiseEstimate) {
        let mean = |g: usize| evidence::sum_squares(&self.groups[g].values).1;
        let x_of = |g: usize| self.space.encode(&self.groups[g].config).ok();
        let mut ranked: Vec<usize> = (0..self.groups.len()).filter(|&g| self.groups[g].feasible()).collect();
        let by = |key: &dyn Fn(usize) -> f64, ranked: &mut Vec<usize>| {
            let keys: Vec<f64> = ranked.iter().map(|&g| key(g)).collect();
            let mut order: Vec<usize> = (0..ranked.len()).collect();
            order.sort_by(|&a, &b| {
                keys[a].total_cmp(&keys[b]).then(self.groups[ranked[a]].first.cmp(&self.groups[ranked[b]].first))
            });
            *ranked = order.into_iter().map(|i| ranked[i]).collect();
        };
        by(&mean, &mut ranked);
        let model_var = model.zip(ranked.first().and_then(|&g| x_of(g))).map(|(m, x)| m.predict(&x).noise.powi(2));
        let all: Vec<&[f64]> = self.groups.iter().map(|g| g.values.as_slice()).collect();
        let noise =
            if self.deterministic { NoiseEstimate::none() } else { NoiseEstimate::pool(&all, model_var, spread) };
        if let (Some(m), true) = (model, noise.noisy(spread)) {
            by(&|g| x_of(g).map_or(mean(g), |x| m.predict_mean(&x)), &mut ranked);
        }
        if noise.known() && noise.var == 0.0 {
            // Exact measurements (declared, or repeats that came out identical): a confirmed
            // configuration is worth what it measured once.
            return (ranked, noise);
        }
        let confirmed = |g: usize| -> Option<f64> {
            match baseline {
                Some(b) if g != b => Some(-evidence::paired_difference(&self.pairs(b, g))?.gain),
                Some(_) => None,
                None => {
                    let v: Vec<f64> = self.rounds.values().flatten().filter(|m| m.0 == g).map(|m| m.1).collect();
                    (v.len() >= 2).then(|| evidence::sum_squares(&v).1)
                }
            }
        };
        let (mut first, rest): (Vec<usize>, Vec<usize>) = ranked.into_iter().partition(|&g| confirmed(g).is_some());
        by(&|g| confirmed(g).unwrap_or(f64::INFINITY), &mut first);
        // What the search measured after a phase that ended early goes ahead of the confirmed
        // leader only when its measurements beat the leader's beyond what the noise could do.
        let (mut ahead, rest): (Vec<usize>, Vec<usize>) = match first.first() {
            Some(&leader) => {
                let lead = estimate(&self.groups[leader].values, &noise);
                rest.into_iter().partition(|&g| {
                    difference(&estimate(&self.groups[g].values, &noise), &lead)
                        .probability_better
                        .is_some_and(|p| p >= CLEARLY_BETTER)
                })
            }
            _ => (Vec::new(), rest),
        };
        ahead.extend(first);
        ahead.extend(rest);
        (ahead, noise)
    }

    /// The baseline's row: group `b` with its estimate.
    fn baseline(&self, b: usize, est: &Estimate) -> Baseline {
        let g = &self.groups[b];
        Baseline {
            config: g.config.clone(),
            metrics: g.mean_metrics(),
            value: self.objectives.display_value(est.mean),
            value_interval: est.interval.map(|i| self.display_interval(i)),
            evaluations: g.values.len(),
            feasible: g.feasible(),
        }
    }

    /// A score interval in the user's units, low end first.
    fn display_interval(&self, (lo, hi): (f64, f64)) -> [f64; 2] {
        let (a, b) = (self.objectives.display_value(lo), self.objectives.display_value(hi));
        [a.min(b), a.max(b)]
    }

    /// The evidence for group `g` (rank, `similar` and `best_with` left for the caller):
    /// its mean, interval, model prediction and improvement over the baseline (`base`: its
    /// group and estimate), from the side-by-side confirmation rounds when there are two.
    fn recommendation(
        &self,
        g: usize,
        noise: &NoiseEstimate,
        model: Option<&Model>,
        base: Option<(usize, Estimate)>,
    ) -> Recommendation {
        let objectives = self.objectives;
        let scale = objectives.display_value(1.0).abs();
        let group = &self.groups[g];
        let est = estimate(&group.values, noise);
        let improvement = base.filter(|(b, _)| self.groups[*b].feasible()).map(|(b, base_est)| {
            let pairs = self.pairs(b, g);
            let d = evidence::paired_difference(&pairs).unwrap_or_else(|| difference(&est, &base_est));
            improvement(
                &d,
                scale,
                objectives.display_value(base_est.mean),
                if pairs.len() >= 2 { pairs.len() } else { 0 },
            )
        });
        let predicted = model.zip(self.space.encode(&group.config).ok()).map(|(m, x)| {
            let p = m.predict(&x);
            let h = evidence::normal_half_width(p.std.hypot(p.noise));
            Predicted {
                mean: objectives.display_value(p.mean),
                std: p.std * scale,
                noise_std: p.noise * scale,
                interval: self.display_interval((p.mean - h, p.mean + h)),
            }
        });
        let n = group.values.len();
        Recommendation {
            rank: 0,
            config: group.config.clone(),
            metrics: group.mean_metrics(),
            value: objectives.display_value(est.mean),
            value_interval: est.interval.map(|i| self.display_interval(i)),
            feasible: true,
            evaluations: n,
            value_std: (n > 1).then(|| (evidence::sum_squares(&group.values).0 / (n - 1) as f64).sqrt() * scale),
            trials: group.trials.clone(),
            similar: 0,
            best_with: vec![],
            improvement,
            predicted,
        }
    }

    /// Importance over the whole space, with the share near the best recommendation.
    /// Near the best, the predicting model (fitted where the search looked hardest) when the
    /// trials cover the box around it, else the covering one.
    fn importance(&self, model: Option<&Model>, best: Option<&Recommendation>) -> (Vec<Importance>, Vec<Interaction>) {
        let landscape = Landscape::fit(self.space, &self.points);
        let (mut importance, interactions) = landscape.as_ref().map(|m| m.importance(self.space)).unwrap_or_default();
        if let (Some(l), Some(x)) = (&landscape, best.and_then(|r| self.space.encode(&r.config).ok())) {
            let near = match model {
                Some(m) if model::covers_near(self.space, &self.points, &x) => m.importance_near(self.space, &x),
                _ => l.importance_near(self.space, &x),
            };
            for (imp, n) in importance.iter_mut().zip(near) {
                imp.near_best = Some(n);
            }
        }
        // Most important first; where the whole space cannot tell (a rounded 0%), near the best.
        importance.sort_by(|a, b| {
            let key = |i: &Importance| ((i.importance * 100.0).round(), i.near_best.unwrap_or(0.0));
            key(b).partial_cmp(&key(a)).unwrap_or(std::cmp::Ordering::Equal)
        });
        (importance, interactions)
    }

    /// A warning when the latest confirmation phase's leader (the search's best) is now
    /// beaten by another candidate with at least [`CONFIDENT`] probability (side by side when
    /// confirmation measured both twice, else from all their measurements).
    fn reversed(
        &self,
        baseline: Option<usize>,
        recommendations: &[Recommendation],
        noise: &NoiseEstimate,
    ) -> Option<Warning> {
        let l = self.search_leader(baseline)?;
        let leader = &self.groups[l];
        let top = recommendations.first()?;
        let t = self.groups.iter().position(|g| g.config == top.config)?;
        let beaten = evidence::paired_difference(&self.pairs(l, t))
            .unwrap_or_else(|| difference(&estimate(&self.groups[t].values, noise), &estimate(&leader.values, noise)))
            .probability_better
            .is_some_and(|p| p >= CONFIDENT);
        if t == l || !beaten {
            return None;
        }
        let confirmed: Vec<f64> = self.rounds.values().flatten().filter(|m| m.0 == l).map(|m| m.1).collect();
        let mean = self.objectives.display_value(evidence::sum_squares(&confirmed).1);
        Some(Warning {
            kind: WarningKind::ConfirmationReversed,
            message: format!(
                "confirmation changed the ranking: the search's best candidate (trial {}) re-measured at {} over {} \
                 confirmation round{}, and is no longer first",
                leader.first,
                crate::format::fmt_num(mean),
                confirmed.len(),
                if confirmed.len() == 1 { "" } else { "s" }
            ),
        })
    }
}

/// An improvement over the baseline in the user's units (`scale`: user units per score unit;
/// `base_value`: the baseline's value in the user's units), from `paired_rounds` side-by-side
/// rounds (0: from all measurements).
fn improvement(d: &evidence::Difference, scale: f64, base_value: f64, paired_rounds: usize) -> Improvement {
    let percent = |v: f64| (base_value != 0.0).then(|| 100.0 * v / base_value.abs());
    let interval = d.interval.map(|(lo, hi)| [lo * scale, hi * scale]);
    Improvement {
        absolute: d.gain * scale,
        percent: percent(d.gain * scale),
        interval,
        interval_percent: interval.and_then(|[lo, hi]| Some([percent(lo)?, percent(hi)?])),
        probability_better: d.probability_better,
        paired_rounds,
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
