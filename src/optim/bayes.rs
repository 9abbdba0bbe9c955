//! `bayes`: Bayesian optimization with a Gaussian process surrogate.
//!
//! 1. **Initial design**: scrambled Sobol points, `max(5, 2d)` of them
//!    (at most 20, at most a third of a known budget), counting points told
//!    from elsewhere (the baseline).
//! 2. **Model**: the GP of [`crate::surrogate::gp`] (Matérn-5/2, ARD, MAP
//!    hyperparameters, warm-started from the previous ask) on the outputs
//!    transformed by [`crate::surrogate::transform`] (standardized, warped
//!    when heavy-tailed). Failed evaluations enter the model at the worst
//!    value observed so far, so the search steers away from regions that
//!    crash. Constraint violations are modelled by a second GP on the
//!    violation (feasible points at minus the typical violation), and the
//!    acquisition is multiplied by its probability of feasibility.
//! 3. **Acquisition**: log expected improvement over the best posterior
//!    mean among the feasible observations; UCB and PI selectable. With the
//!    default (log EI), when the fitted noise is at least a tenth of the
//!    output's variance, a point is instead the minimizer of one draw from
//!    the joint posterior over a Sobol set and perturbations of the best
//!    observations (Thompson sampling; constraints by a draw of each
//!    feasibility model): with noise, expected improvement over a plug-in
//!    incumbent turned greedy, re-sampling one edge of the box (on Branin
//!    with noise of 5% of its spread, 85, 76 and 74 of 100 trials at
//!    `x0 = 10`, far from all three minima; 12, 11 and 6 with draws; seeds
//!    0-2 of `benches/noisy.py`), while draws keep sampling where the optimum
//!    may be. The acquisition is maximized by scoring a Sobol set and
//!    perturbations of the best points (1%-15% steps on a random subset
//!    of coordinates), then running L-BFGS (argmin, analytic gradients) from
//!    the best few of them in parallel (rayon). argmin's L-BFGS has no box
//!    constraints, so it runs on `z` with `x = reflect(z)`: the cube is
//!    mirrored at its faces, a piecewise-linear map whose gradient is ±1.
//!    Ints are optimized relaxed (continuous) and rounded at the end;
//!    categoricals stay at their start's choice during L-BFGS; when the
//!    product of their choice counts is at most 12 every combination gets a
//!    start of its own (exact enumeration), otherwise each categorical of
//!    the winner is tried at each of its choices.
//! 4. **Batches and pending points**: points asked but not yet told, and
//!    the points already chosen for the current batch, enter the model as
//!    fantasies (kriging believer: the posterior mean; or constant liar: the
//!    worst value), so `parallelism: 8` gives 8 distinct, spread candidates.
//! 5. **Cost bounds**: hyperparameters are refitted at every ask while the
//!    model holds at most 200 observations, then only once it has grown by
//!    5% since the last fit (every 10th point at 200, every 25th at 500),
//!    always warm-started from the last fit (with two fresh starts every
//!    tenth ask); beyond 200 observations on a subset of 200 points (the
//!    best third, the rest drawn at random). The feasibility models are
//!    refitted at every ask up to 200 observations and keep their fit after.
//!    Beyond `max_points` observations (default 1000) the GP is conditioned
//!    on a subset of data: the best third and the most recent rest (subset
//!    of data, not a sparse approximation), so the ask time stays bounded;
//!    once that subset no longer grows, the hyperparameters stay as last
//!    fitted.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::{
    Candidate, Dim, Observed, Optimizer, OptionCheck, Pending, Problem, Snapshot, StateCodec, Tickets, foreign, reflect,
};
use crate::cube::sobol_point;
use crate::error::Result;
use crate::surrogate::gp::kinds_of;
use crate::surrogate::subset::best_and_recent;
use crate::surrogate::{Acquisition, FitOptions, Gp, Hyper, InputKind, OutputTransform, acquisition, lbfgs};

/// The registry name and state format of `bayes`.
pub(crate) const CODEC: StateCodec = StateCodec::new("bayes", 1);
const STREAM: u64 = 0xBA7E5;
/// Above this many observations hyperparameters are fitted on a subset.
const FIT_SUBSET: usize = 200;
/// Largest number of categorical combinations enumerated exactly.
const ENUMERATE_LIMIT: u64 = 12;
/// From this share of the output's variance fitted as noise on, proposals are Thompson draws.
const NOISY_SHARE: f64 = 0.1;
/// Most candidates one Thompson draw is taken over.
const THOMPSON_POINTS: usize = 512;

/// How pending points enter the model while a batch is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fantasy {
    /// The posterior mean at the pending point (Ginsbourger's kriging believer).
    #[default]
    KrigingBeliever,
    /// The worst value observed (a pessimistic constant liar: spreads batches most).
    ConstantLiar,
}

/// Options of `bayes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BayesConfig {
    /// Size of the Sobol initial design (default: max(5, 2·dims), at most 20).
    pub initial: Option<usize>,
    /// `log_ei` (default; Thompson draws while the model finds the evaluations noisy), `ucb` or `pi`.
    pub acquisition: Acquisition,
    /// Exploration weight of `ucb`.
    pub kappa: f64,
    /// `kriging_believer` (default) or `constant_liar`.
    pub fantasy: Fantasy,
    /// Observations beyond which the GP is conditioned on a subset.
    pub max_points: usize,
    /// L-BFGS starts for the acquisition (default 5).
    pub starts: usize,
}

impl Default for BayesConfig {
    fn default() -> Self {
        BayesConfig {
            initial: None,
            acquisition: Acquisition::LogEi,
            kappa: 2.0,
            fantasy: Fantasy::KrigingBeliever,
            max_points: 1000,
            starts: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Obs {
    x: Vec<f64>,
    value: Option<f64>,
    violation: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    slacks: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: Tickets,
    asks: u64,
    sobol_index: u64,
    observed: Vec<Obs>,
    pending: Pending<(u64, Vec<f64>)>,
    hyper: Option<Hyper>,
    hyper_n: usize,
    #[serde(default)]
    constraint_hyper: Vec<Hyper>,
}

/// Bayesian optimization with a Gaussian process; see the module docs.
pub struct Bayes {
    dims: Vec<Dim>,
    kinds: Vec<InputKind>,
    seed: u64,
    initial: usize,
    parallelism: usize,
    config: BayesConfig,
    state: State,
}

/// Size of the Sobol initial design: `initial` when given, else max(5, 2·dims), at most 20
/// and at most a third of a known budget (at least 2).
pub(crate) fn initial_design(problem: &Problem, initial: Option<usize>) -> usize {
    initial.unwrap_or_else(|| {
        let by_dim = (2 * problem.dim()).clamp(5, 20);
        problem.budget.map_or(by_dim, |b| by_dim.min((b as usize / 3).max(2)))
    })
}

impl Bayes {
    /// Check the options (every bad one is reported) and size the initial
    /// design for the problem.
    pub fn new(problem: &Problem, config: BayesConfig) -> Result<Self> {
        let mut check = OptionCheck::default();
        if config.initial == Some(0) {
            check.bad("initial", "must be at least 1");
        }
        if !(config.kappa.is_finite() && config.kappa >= 0.0) {
            check.bad("kappa", format!("must be a finite number >= 0, not {}", config.kappa));
        }
        if config.max_points < 50 {
            check.bad("max_points", format!("must be at least 50, not {}", config.max_points));
        }
        if config.starts == 0 || config.starts > 256 {
            check.bad("starts", format!("must be between 1 and 256, not {}", config.starts));
        }
        check.finish()?;
        let initial = initial_design(problem, config.initial);
        Ok(Bayes {
            dims: problem.dims.clone(),
            kinds: kinds_of(&problem.dims),
            seed: problem.seed,
            initial,
            parallelism: problem.parallelism.max(1),
            config,
            state: State {
                rng: Rng::new(problem.seed, STREAM),
                next_ticket: Tickets::default(),
                asks: 0,
                sobol_index: 0,
                observed: Vec::new(),
                pending: Pending::default(),
                hyper: None,
                hyper_n: 0,
                constraint_hyper: Vec::new(),
            },
        })
    }

    /// Treat `x` as asked and not yet told (a fantasy in every model) though this instance did
    /// not propose it: for an optimizer that builds a `bayes` per ask (`parego`). Its ticket
    /// is one no ask hands out.
    pub(crate) fn assume_pending(&mut self, x: Vec<f64>) {
        let ticket = u64::MAX - self.state.pending.len() as u64;
        self.state.pending.push((ticket, x));
    }

    fn snap(&self, x: &mut [f64]) {
        for (v, d) in x.iter_mut().zip(&self.dims) {
            *v = d.snap(*v);
        }
    }

    fn sobol(&mut self) -> Vec<f64> {
        let x = sobol_point(self.state.sobol_index, self.dims.len(), self.seed);
        self.state.sobol_index += 1;
        x
    }

    /// Indices of the observations the GP is conditioned on.
    fn conditioning_set(&self, values: &[f64]) -> Vec<usize> {
        best_and_recent(values, self.config.max_points, self.config.max_points / 3)
    }

    fn build_model(&mut self) -> Result<Option<Model>> {
        let obs = &self.state.observed;
        let finite: Vec<f64> = obs.iter().filter_map(|o| o.value).collect();
        if finite.is_empty() {
            return Ok(None);
        }
        let worst = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let raw: Vec<f64> = obs.iter().map(|o| o.value.unwrap_or(worst)).collect();
        let idx = self.conditioning_set(&raw);
        let xs: Vec<Vec<f64>> = idx.iter().map(|&i| obs[i].x.clone()).collect();
        let feasible: Vec<usize> =
            (0..idx.len()).filter(|&k| obs[idx[k]].value.is_some() && obs[idx[k]].violation <= 0.0).collect();
        let transform = OutputTransform::fit(&idx.iter().map(|&i| raw[i]).collect::<Vec<_>>());
        let ys: Vec<f64> = idx.iter().map(|&i| transform.forward(raw[i])).collect();
        let n = xs.len();
        // Hyperparameters move little with one more point once there are a
        // few hundred: refit at every ask up to 200 points, then once the
        // data grew by 5% (every 10th point at 200), always warm-started.
        let refit = self.state.hyper.is_none() || n <= 200 || n * 20 >= self.state.hyper_n * 21;
        let gp = if refit {
            let fit_subset = (n > FIT_SUBSET).then(|| self.fit_subset(&ys));
            let opts = FitOptions {
                warm: self.state.hyper.clone(),
                // Warm starts track the optimum as data arrive; a fresh look
                // from other starts now and then avoids being stuck in one
                // mode of the likelihood.
                restarts: if self.state.hyper.is_none() || self.state.asks.is_multiple_of(10) { 2 } else { 0 },
                max_iters: 50,
                fit_subset,
                seed: self.seed ^ self.state.asks,
            };
            let gp = Gp::fit(&self.kinds, &xs, &ys, &opts)?;
            self.state.hyper = Some(gp.hyper().clone());
            self.state.hyper_n = n;
            tracing::debug!(
                n,
                lengthscales = ?gp.hyper().lengthscales(),
                noise_var = gp.hyper().noise_var(),
                signal_var = gp.hyper().signal_var(),
                "bayes: GP refitted"
            );
            gp
        } else {
            Gp::with_hyper(&self.kinds, &xs, &ys, self.state.hyper.clone().expect("checked above"))?
        };
        let constraint = self.constraint_model(&idx)?;
        let means = gp.train_means();
        let incumbent = feasible.iter().map(|&k| means[k]).fold(f64::INFINITY, f64::min);
        let worst_z = ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        Ok(Some(Model {
            gp,
            constraint,
            incumbent: incumbent.is_finite().then_some(incumbent),
            acquisition: self.config.acquisition,
            kappa: self.config.kappa,
            worst: worst_z,
        }))
    }

    fn fit_subset(&mut self, ys: &[f64]) -> Vec<usize> {
        let n = ys.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| ys[a].total_cmp(&ys[b]));
        let mut chosen: Vec<usize> = order[..FIT_SUBSET / 3].to_vec();
        let mut rest: Vec<usize> = order[FIT_SUBSET / 3..].to_vec();
        while chosen.len() < FIT_SUBSET && !rest.is_empty() {
            let k = self.state.rng.below(rest.len());
            chosen.push(rest.swap_remove(k));
        }
        chosen.sort_unstable();
        chosen
    }

    /// Models of feasibility, once some observation violates a constraint:
    /// one GP per constraint on its signed slack when the observations carry
    /// slacks (the study passes them), else one GP on the total violation
    /// with feasible points at minus the median violation; fitted on the
    /// evaluations that succeeded. While no evaluation is feasible and some
    /// failed, one more GP models failure (failed +1, evaluated −1,
    /// threshold 0): with no incumbent, expected improvement is off and the
    /// failures' imputed values steer nothing, so without it the search keeps
    /// proposing the failing region (seen on the service experiment, where
    /// young ≥ heap fails). Once a feasible point exists, the imputed worst
    /// values repel failures through the objective model. Each model comes
    /// with the model-scale threshold that slack 0 maps to.
    fn constraint_model(&mut self, idx: &[usize]) -> Result<Vec<(Gp, f64)>> {
        let obs = &self.state.observed;
        let failed = |i: usize| obs[i].value.is_none();
        let mut sets: Vec<(Vec<usize>, Vec<f64>)> = Vec::new();
        if idx.iter().any(|&i| !failed(i) && obs[i].violation > 0.0) {
            let rows: Vec<usize> = idx.iter().copied().filter(|&i| !failed(i)).collect();
            let k = obs[rows[0]].slacks.len();
            let per_constraint = k > 0 && rows.iter().all(|&i| obs[i].slacks.len() == k);
            if per_constraint {
                for c in 0..k {
                    sets.push((rows.clone(), rows.iter().map(|&i| obs[i].slacks[c]).collect()));
                }
            } else {
                let mut viol: Vec<f64> = rows.iter().map(|&i| obs[i].violation).filter(|v| *v > 0.0).collect();
                viol.sort_by(f64::total_cmp);
                let typical = viol[viol.len() / 2].max(1e-12);
                let t =
                    rows.iter().map(|&i| if obs[i].violation > 0.0 { obs[i].violation } else { -typical }).collect();
                sets.push((rows, t));
            }
        }
        let any_feasible = idx.iter().any(|&i| !failed(i) && obs[i].violation <= 0.0);
        if !any_feasible && idx.iter().any(|&i| failed(i)) && idx.iter().any(|&i| !failed(i)) {
            sets.push((idx.to_vec(), idx.iter().map(|&i| if failed(i) { 1.0 } else { -1.0 }).collect()));
        }
        let mut models = Vec::with_capacity(sets.len());
        for (c, (rows, cs)) in sets.iter().enumerate() {
            let xs: Vec<Vec<f64>> = rows.iter().map(|&i| obs[i].x.clone()).collect();
            // A constraint that every point satisfies says nothing yet.
            if cs.iter().all(|v| *v <= 0.0) {
                continue;
            }
            let t = OutputTransform::fit(cs);
            let zs: Vec<f64> = cs.iter().map(|&v| t.forward(v)).collect();
            let warm = self.state.constraint_hyper.get(c).cloned();
            let gp = match warm {
                Some(h) if xs.len() > FIT_SUBSET => Gp::with_hyper(&self.kinds, &xs, &zs, h)?,
                warm => {
                    let opts = FitOptions { warm, restarts: 0, max_iters: 40, fit_subset: None, seed: self.seed };
                    Gp::fit(&self.kinds, &xs, &zs, &opts)?
                }
            };
            if self.state.constraint_hyper.len() <= c {
                self.state.constraint_hyper.resize(c + 1, gp.hyper().clone());
            }
            self.state.constraint_hyper[c] = gp.hyper().clone();
            models.push((gp, t.forward(0.0)));
        }
        Ok(models)
    }

    fn is_known(&self, x: &[f64], chosen: &[Vec<f64>]) -> bool {
        let same = |a: &[f64], b: &[f64]| {
            a.iter().zip(b).zip(&self.dims).all(|((p, q), d)| (d.snap(*p) - d.snap(*q)).abs() < 1e-9)
        };
        self.state.observed.iter().any(|o| same(&o.x, x))
            || self.state.pending.iter().any(|(_, p)| same(p, x))
            || chosen.iter().any(|c| same(c, x))
    }

    /// Choose one point: by Thompson sampling when the model finds the evaluations noisy, else
    /// by maximizing the acquisition.
    fn propose(&mut self, model: &Model, chosen: &[Vec<f64>]) -> Vec<f64> {
        let d = self.dims.len();
        let h = model.gp.hyper();
        if model.acquisition == Acquisition::LogEi
            && h.noise_var() >= NOISY_SHARE * (h.noise_var() + h.signal_var())
            && let Some(x) = self.thompson(model, chosen)
        {
            return x;
        }
        let cands = self.raw_candidates(model.gp.len());
        let mut scored: Vec<(f64, usize)> = cands.par_iter().map(|x| model.score(x)).zip(0..cands.len()).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut starts: Vec<Vec<f64>> = Vec::new();
        for &(_, i) in &scored {
            if starts.len() >= self.config.starts {
                break;
            }
            if !self.is_known(&cands[i], chosen) {
                starts.push(cands[i].clone());
            }
        }
        let cat: Vec<(usize, u32)> = self
            .dims
            .iter()
            .enumerate()
            .filter_map(|(j, d)| match d {
                Dim::Categorical { choices } => Some((j, *choices)),
                _ => None,
            })
            .collect();
        let combos: u64 = cat.iter().map(|&(_, c)| c as u64).product();
        if !cat.is_empty() && combos <= ENUMERATE_LIMIT && !starts.is_empty() {
            enumerate_choices(&mut starts, &cat, combos);
        }
        if starts.is_empty() {
            // Every scored candidate is known: fall back to a fresh random point.
            let mut x = self.state.rng.unit_point(d);
            self.snap(&mut x);
            return x;
        }
        let mut pick = self.polish(model, &starts, chosen);
        // Many categoricals: try each choice of each categorical in the winner.
        if combos > ENUMERATE_LIMIT
            && let Some(x0) = pick.clone()
        {
            pick = Some(self.best_choices(model, x0, &cat, chosen));
        }
        pick.unwrap_or_else(|| {
            let mut x = self.state.rng.unit_point(d);
            self.snap(&mut x);
            x
        })
    }

    /// The candidate that minimizes one draw from the model's joint posterior (Thompson
    /// sampling), among a Sobol set and perturbations of the best observations that are not
    /// known yet; with constraints, among the candidates that a draw of each feasibility model
    /// finds feasible. `None` when no candidate qualifies or the draw fails.
    fn thompson(&mut self, model: &Model, chosen: &[Vec<f64>]) -> Option<Vec<f64>> {
        let mut cands = self.raw_candidates(model.gp.len());
        cands.retain(|x| !self.is_known(x, chosen));
        // The joint draw costs O(m³): keep the perturbations (at the end) and enough of the Sobol set.
        if cands.len() > THOMPSON_POINTS {
            cands.drain(..cands.len() - THOMPSON_POINTS);
        }
        let draw = model.gp.sample_joint(&cands, &mut self.state.rng)?;
        let mut best: Option<(f64, usize)> = None;
        for (i, v) in draw.into_iter().enumerate() {
            let feasible = model.constraint.iter().all(|(c, zero)| {
                let (mu, var) = c.predict(&cands[i]);
                mu + var.sqrt() * self.state.rng.normal() <= *zero
            });
            if feasible && best.is_none_or(|(b, _)| v < b) {
                best = Some((v, i));
            }
        }
        best.map(|(_, i)| cands.swap_remove(i))
    }

    /// Points to score: a Sobol set and perturbations of the best
    /// observations, snapped to what they decode to.
    fn raw_candidates(&mut self, n: usize) -> Vec<Vec<f64>> {
        let d = self.dims.len();
        // Scoring cost is O(n²) per point: fewer raw candidates on long histories.
        let raw_count = ((4e8 / ((n * n).max(1) as f64)) as usize).clamp(128, 256 + 32 * d).min(2048);
        let salt = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(self.state.asks + 1));
        let mut cands: Vec<Vec<f64>> = (0..raw_count as u64).map(|i| sobol_point(i, d, salt)).collect();
        // Perturbations of the best observations.
        let mut best: Vec<&Obs> =
            self.state.observed.iter().filter(|o| o.value.is_some() && o.violation <= 0.0).collect();
        best.sort_by(|a, b| a.value.unwrap().total_cmp(&b.value.unwrap()));
        let best: Vec<Vec<f64>> = best.iter().take(5).map(|o| o.x.clone()).collect();
        for b in &best {
            for k in 0..24 {
                let scale = [0.01, 0.05, 0.15][k % 3];
                let mut x = b.clone();
                let p = (2.0 / d as f64).min(1.0);
                let mut moved = false;
                for (j, dim) in self.dims.iter().enumerate() {
                    if self.state.rng.chance(p) {
                        moved = true;
                        x[j] = match dim {
                            Dim::Categorical { .. } => self.state.rng.uniform(),
                            _ => reflect(x[j] + scale * self.state.rng.normal()),
                        };
                    }
                }
                if !moved {
                    let j = self.state.rng.below(d);
                    x[j] = reflect(x[j] + scale * self.state.rng.normal());
                }
                cands.push(x);
            }
        }
        for x in cands.iter_mut() {
            self.snap(x);
        }
        cands
    }

    /// L-BFGS on the acquisition from each start (categoricals fixed at the
    /// start's choices); the best point found that is not known yet.
    fn polish(&self, model: &Model, starts: &[Vec<f64>], chosen: &[Vec<f64>]) -> Option<Vec<f64>> {
        let free: Vec<bool> = self.dims.iter().map(|d| !d.is_categorical()).collect();
        let mut results: Vec<(f64, Vec<f64>)> = starts
            .par_iter()
            .map(|s| {
                let f = |z: &[f64]| model.cost_reflected(z, s, &free);
                let m = lbfgs::minimize_to(&f, s, 30, 1e-6, 1e-9);
                let mut x: Vec<f64> =
                    m.x.iter().zip(s).zip(&free).map(|((z, s0), f)| if *f { reflect(*z) } else { *s0 }).collect();
                for (v, dim) in x.iter_mut().zip(&self.dims) {
                    *v = dim.snap(*v);
                }
                (model.score(&x), x)
            })
            .collect();
        results.extend(starts.iter().map(|s| (model.score(s), s.clone())));
        results.sort_by(|a, b| b.0.total_cmp(&a.0));
        results.iter().find(|(_, x)| !self.is_known(x, chosen)).map(|(_, x)| x.clone())
    }

    /// `x0` with each categorical in turn set to its best-scoring choice.
    fn best_choices(&self, model: &Model, x0: Vec<f64>, cat: &[(usize, u32)], chosen: &[Vec<f64>]) -> Vec<f64> {
        let mut bx = x0;
        let mut bs = model.score(&bx);
        for &(j, choices) in cat {
            for c in 0..choices {
                let mut x = bx.clone();
                x[j] = (c as f64 + 0.5) / choices as f64;
                let s = model.score(&x);
                if s > bs && !self.is_known(&x, chosen) {
                    bs = s;
                    bx = x;
                }
            }
        }
        bx
    }
}

/// Add a start at the best start's other choices: every combination of the
/// categoricals `cat` (`combos` of them, few enough to enumerate).
fn enumerate_choices(starts: &mut Vec<Vec<f64>>, cat: &[(usize, u32)], combos: u64) {
    let base = starts[0].clone();
    for mut c in 0..combos {
        let mut x = base.clone();
        for &(j, choices) in cat {
            x[j] = ((c % choices as u64) as f64 + 0.5) / choices as f64;
            c /= choices as u64;
        }
        if !starts.contains(&x) {
            starts.push(x);
        }
    }
}

/// The conditioned models and the acquisition on top of them.
struct Model {
    gp: Gp,
    /// Feasibility models with the model-scale value of slack 0.
    constraint: Vec<(Gp, f64)>,
    /// Best posterior mean among feasible observations (model scale).
    incumbent: Option<f64>,
    acquisition: Acquisition,
    kappa: f64,
    /// Worst observed value (model scale), for the constant liar.
    worst: f64,
}

impl Model {
    /// Acquisition value (higher is better) at a point; ints as they decode.
    fn score(&self, x: &[f64]) -> f64 {
        let mut total = 0.0;
        if let Some(best) = self.incumbent {
            let (mu, var) = self.gp.predict(x);
            total += self.acquisition.eval(mu, var.sqrt(), best, self.kappa).0;
        }
        for (c, zero) in &self.constraint {
            let (mu, var) = c.predict(x);
            total += acquisition::log_feasibility(mu - zero, var.sqrt()).0;
        }
        total
    }

    /// Value and gradient (relaxed ints) of the acquisition.
    fn value_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let d = x.len();
        let mut total = 0.0;
        let mut grad = vec![0.0; d];
        let mut add = |gp: &Gp, f: &dyn Fn(f64, f64) -> (f64, f64, f64)| {
            let (mu, var, dmu, dvar) = gp.predict_with_grad(x);
            let s = var.sqrt();
            let (v, a_mu, a_s) = f(mu, s);
            total += v;
            for j in 0..d {
                grad[j] += a_mu * dmu[j] + a_s * dvar[j] / (2.0 * s);
            }
        };
        if let Some(best) = self.incumbent {
            add(&self.gp, &|mu, s| self.acquisition.eval(mu, s, best, self.kappa));
        }
        for (c, zero) in &self.constraint {
            add(c, &|mu, s| acquisition::log_feasibility(mu - zero, s));
        }
        (total, grad)
    }

    /// Cost for L-BFGS over unconstrained `z`: minus the acquisition at
    /// `x = reflect(z)` on the free coordinates (the others fixed at `start`).
    fn cost_reflected(&self, z: &[f64], start: &[f64], free: &[bool]) -> (f64, Vec<f64>) {
        let mut x = start.to_vec();
        let mut sign = vec![0.0; z.len()];
        for j in 0..z.len() {
            if free[j] {
                x[j] = reflect(z[j]);
                // The mirror map's slope: +1 on even folds, -1 on odd ones.
                sign[j] = if z[j].rem_euclid(2.0) > 1.0 { -1.0 } else { 1.0 };
            }
        }
        let (v, g) = self.value_grad(&x);
        (-v, g.iter().zip(&sign).map(|(g, s)| -g * s).collect())
    }

    fn add_fantasy(&mut self, x: &[f64], fantasy: Fantasy) {
        let y = match fantasy {
            Fantasy::KrigingBeliever => self.gp.predict(x).0,
            Fantasy::ConstantLiar => self.worst,
        };
        let _ = self.gp.add_point(x, y);
        // A believed value below the incumbent becomes the incumbent, or the
        // same point would look like an improvement again.
        if let Some(best) = self.incumbent.as_mut() {
            *best = best.min(y);
        }
        for (c, _) in &mut self.constraint {
            let yc = c.predict(x).0;
            let _ = c.add_point(x, yc);
        }
    }
}

impl Optimizer for Bayes {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let n = n.max(1);
        self.state.asks += 1;
        let mut out: Vec<Vec<f64>> = Vec::with_capacity(n);
        let seen = self.state.observed.len() + self.state.pending.len();
        while out.len() < n && seen + out.len() < self.initial {
            out.push(self.sobol());
        }
        // Beyond the design, each point should see the results before it:
        // propose at most `parallelism` points per ask (the contract allows
        // fewer than asked; callers that want a batch set the parallelism).
        let n = if out.is_empty() { n.min(self.parallelism) } else { out.len() };
        if out.len() < n {
            let model = self.build_model().inspect_err(|e| tracing::warn!("bayes: {e}; sampling quasi-randomly"));
            match model {
                Ok(Some(mut model)) => {
                    for (_, x) in self.state.pending.iter() {
                        model.add_fantasy(x, self.config.fantasy);
                    }
                    for x in &out {
                        model.add_fantasy(x, self.config.fantasy);
                    }
                    while out.len() < n {
                        let x = self.propose(&model, &out);
                        model.add_fantasy(&x, self.config.fantasy);
                        out.push(x);
                    }
                }
                // No successful evaluation yet: keep exploring with the
                // quasi-random design. A model that cannot be fitted
                // (reported) does the same rather than stopping the study.
                Ok(None) | Err(_) => {
                    while out.len() < n {
                        out.push(self.sobol());
                    }
                }
            }
        }
        let state = &mut self.state;
        Ok(out.into_iter().map(|x| state.pending.hand_out(&mut state.next_ticket, |ticket| (ticket, x))).collect())
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for r in results {
            self.state.pending.take(r.ticket);
            // Own or not, a result is modelled at the point told (which is
            // where the trial was stored, after the caller's clamping).
            if let Some(o) = foreign(r, self.dims.len()) {
                self.state.observed.push(Obs { x: o.x, value: o.value, violation: o.violation, slacks: o.slacks });
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        CODEC.snapshot(&self.state, self.dims.len())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = CODEC.restore(snapshot, self.dims.len())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
