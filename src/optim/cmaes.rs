//! `cmaes`: the (mu/mu_w, lambda) CMA-ES with active covariance update and
//! BIPOP/IPOP restarts, searching the unit cube through a smooth periodic
//! boundary transform, with a variance margin for discrete coordinates.
//!
//! Follows Hansen's tutorial ("The CMA Evolution Strategy: A Tutorial",
//! arXiv:1604.00772) for the update equations and default parameters (cs
//! and damps as in pycma 4), Hansen 2009 (BIPOP) for the restart scheme,
//! pycma's `BoundTransform` for the bounds and Hamano et al. 2022 ("CMA-ES
//! with Margin") for integers and categoricals.
//!
//! Budget use beyond the textbook: a run also stops once its values agree
//! to a relative 1e-4, or when it trails an earlier run hopelessly, so the
//! budget buys restarts instead of digits of a local optimum; the best run
//! is kept and resumed to full precision ("polished") when a later run ends
//! at the same point or when the rest of a known budget is too short for
//! another restart.

use std::collections::VecDeque;

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use super::bounds;
use super::rng::Rng;
use super::{Candidate, Dim, Observed, Optimizer, OptionCheck, Problem, Snapshot, StateCodec, foreign, sanitized};
use crate::error::Result;
use crate::stats::{median, normal_quantile};

/// The registry name and state format of `cmaes`.
pub(crate) const CODEC: StateCodec = StateCodec::new("cmaes", 1);
/// RNG streams: restarts (means, regime draws) and each generation's samples.
const STREAM_MAIN: u64 = 0x00C3_A5E5;
const STREAM_GENERATION: u64 = 0x00C3_A5E6;
/// Longest fitness history a run keeps (for the stagnation test); bounds the
/// snapshot size of very long runs.
const HISTORY_CAP: usize = 1000;
/// A run stops once it trails an earlier run by this many times its
/// remaining prospects (see [`termination`]).
const HOPELESS_FACTOR: f64 = 10.0;
/// Beyond 2^10 times the default population a run cannot converge in any
/// sensible budget; IPOP keeps restarting at that size instead.
const MAX_DOUBLINGS: u32 = 10;
/// Runs stop once their recent values agree to this relative precision
/// (values near zero: to 1e-12 absolute). Refining a local optimum further
/// rarely pays while the budget can buy restarts; the best run is polished
/// later (see `State::paused`).
const TOLFUN_REL: f64 = 1e-4;
/// Share of a known budget kept to polish the best run stopped early.
const POLISH_SHARE: f64 = 0.05;
/// Two runs whose best points differ by less than this in every coordinate
/// found the same optimum.
const SAME_OPTIMUM: f64 = 0.01;
/// BIPOP's small-population regime may use this share of the evaluations
/// the large regime used (Hansen's BIPOP: 1). Less, because with the
/// budgets of parameter tuning the large runs are the better bet on
/// structured multimodal landscapes; Loshchilov's NBIPOP tilts the same way.
const SMALL_REGIME_SHARE: f64 = 0.5;
/// Largest useful std of one coordinate in genotype space: beyond it the
/// periodic transform already spreads samples over the whole side.
const MAX_STD: f64 = 1.0 / 3.0;

/// What to do when a run has converged or stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restarts {
    /// Two regimes (Hansen's BIPOP): doubling populations, for global
    /// structure (Rastrigin-like landscapes), and small populations with
    /// small random step sizes, for many scattered basins. A regime keeps
    /// the turn while its runs improve on the best so far; otherwise the
    /// small one runs while it has used less than half the large one's
    /// evaluations.
    #[default]
    Bipop,
    /// Double the population at every restart.
    Ipop,
    /// One run only; `ask` returns nothing once it has converged.
    None,
}

/// Options of `cmaes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmaEsConfig {
    /// Offspring per generation (lambda) of the first run. Default
    /// `4 + floor(3 ln d)`, raised to the parallelism so that one batch of
    /// workers fills one generation.
    pub population: Option<usize>,
    /// Initial step size as a fraction of the cube's side. Default 0.25,
    /// pycma's advice (a quarter of the domain's width): wide enough to see
    /// most of the cube from a random start, not so wide that samples pile
    /// onto its faces.
    pub sigma0: f64,
    /// Restart strategy once a run has converged or stalled.
    pub restarts: Restarts,
    /// Stop (ask returns nothing) after this many restarts; default: keep
    /// restarting until the caller's budget is used.
    pub max_restarts: Option<u32>,
}

impl Default for CmaEsConfig {
    fn default() -> Self {
        CmaEsConfig { population: None, sigma0: 0.25, restarts: Restarts::Bipop, max_restarts: None }
    }
}

/// Strategy parameters of one population size (tutorial defaults, with
/// negative weights for the active covariance update). Derived, never stored.
struct Params {
    lambda: usize,
    mu: usize,
    /// `lambda` weights: positive ones sum to 1, negative ones to `-alpha`.
    weights: Vec<f64>,
    sum_weights: f64,
    mueff: f64,
    cc: f64,
    cs: f64,
    c1: f64,
    cmu: f64,
    damps: f64,
    /// E||N(0, I)||.
    chi_n: f64,
    /// Generations between eigendecompositions.
    eigen_every: u64,
    /// Minimum internal std of a discrete coordinate, in units of its bin width.
    margin: f64,
}

impl Params {
    fn new(n: usize, lambda: usize) -> Params {
        let nf = n as f64;
        let lambda = lambda.max(2);
        let mu = lambda / 2;
        let raw: Vec<f64> = (1..=lambda).map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - (i as f64).ln()).collect();
        let pos_sum: f64 = raw[..mu].iter().sum();
        let pos_sq: f64 = raw[..mu].iter().map(|w| w * w).sum();
        let mueff = pos_sum * pos_sum / pos_sq;
        let neg_sum: f64 = raw[mu..].iter().filter(|w| **w < 0.0).sum::<f64>().abs();
        let neg_sq: f64 = raw[mu..].iter().filter(|w| **w < 0.0).map(|w| w * w).sum();
        let mueff_neg = if neg_sq > 0.0 { neg_sum * neg_sum / neg_sq } else { 0.0 };

        let alpha_cov = 2.0;
        let c1 = alpha_cov / ((nf + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1)
            .min(alpha_cov * (0.25 + mueff + 1.0 / mueff - 2.0) / ((nf + 2.0).powi(2) + alpha_cov * mueff / 2.0))
            .max(0.0);
        // cs and damps as in pycma 4: a slightly faster path than the
        // tutorial's, and more damping for large populations (mueff >> n),
        // which keeps IPOP's big runs exploring instead of shrinking early.
        let cs = ((mueff + 2.0) / (nf + mueff + 3.0)).min(0.5);
        let damp_inner = (3.0 * (1.0 - 0.5f64.powf(nf / 9.0))).max(1.0);
        let damps = 1.0 + 2.0 * (damp_inner * ((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);

        let alpha_neg = if cmu > 0.0 && neg_sum > 0.0 {
            let a_mu = 1.0 + c1 / cmu;
            let a_mueff = 1.0 + 2.0 * mueff_neg / (mueff + 2.0);
            let a_posdef = (1.0 - c1 - cmu) / (nf * cmu);
            a_mu.min(a_mueff).min(a_posdef).max(0.0) / neg_sum
        } else {
            0.0
        };
        let weights: Vec<f64> = raw.iter().map(|&w| if w >= 0.0 { w / pos_sum } else { w * alpha_neg }).collect();
        let sum_weights = weights.iter().sum();
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let eigen_every = ((1.0 / ((c1 + cmu) * nf * 10.0)).floor() as u64).max(1);
        // Margin (Hamano et al.): a sample leaves the mean's bin with
        // probability at least alpha = 1/(n lambda) when the mean sits at the
        // bin's centre, so about one discrete coordinate moves per generation.
        let alpha = 1.0 / (nf * lambda as f64);
        let margin = 0.5 / normal_quantile(1.0 - alpha / 2.0);
        Params { lambda, mu, weights, sum_weights, mueff, cc, cs, c1, cmu, damps, chi_n, eigen_every, margin }
    }
}

/// Which BIPOP regime a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Regime {
    /// The first run, with the default population; counts for neither regime.
    First,
    Large,
    Small,
}

/// The result of one evaluation, sanitized so that it survives JSON (no
/// NaN or infinities) and ranks as [`Observed::cmp_quality`] says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Told {
    value: Option<f64>,
    violation: f64,
}

impl Told {
    fn of(o: &Observed) -> Told {
        let safe = sanitized(Vec::new(), o);
        Told { value: safe.value, violation: safe.violation }
    }
    fn as_observed(&self) -> Observed {
        Observed {
            ticket: None,
            x: Vec::new(),
            value: self.value,
            violation: self.violation,
            gradient: None,
            slacks: Vec::new(),
        }
    }
    /// The value when feasible.
    fn feasible(&self) -> Option<f64> {
        if self.violation <= 0.0 { self.value } else { None }
    }
}

/// The members of the current generation that were asked and told. Samples
/// are not stored: member `k` is the `k`-th draw of `rng`, recomputed on demand.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Generation {
    rng: Rng,
    first_ticket: u64,
    /// Members handed out so far (may exceed lambda when callers ask for
    /// more than one generation while results are pending).
    asked: usize,
    told: Vec<Option<Told>>,
    n_told: usize,
    /// Per-coordinate sampling scale (>= 1): the margin of discrete coordinates.
    scale: Vec<f64>,
}

/// One CMA-ES run (between restarts).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    lambda: usize,
    regime: Regime,
    /// Evaluation limit of this run (small BIPOP runs only).
    max_evals: Option<u64>,
    evals: u64,
    generation: u64,
    /// Mean, in genotype space (see [`bounds::to_unit`]).
    mean: Vec<f64>,
    sigma: f64,
    sigma0: f64,
    /// Covariance, row-major n x n.
    cov: Vec<f64>,
    /// Eigenvectors (columns of B, row-major) and sqrt eigenvalues of `cov`
    /// at generation `eigen_generation`.
    basis: Vec<f64>,
    axes: Vec<f64>,
    eigen_generation: u64,
    ps: Vec<f64>,
    pc: Vec<f64>,
    /// Best and median feasible value per generation (f64::MAX when none).
    best_history: VecDeque<f64>,
    median_history: VecDeque<f64>,
    /// Whether each of the recent generations had flat fitness.
    flat_history: VecDeque<bool>,
    /// Best feasible value of this run, and where (in the cube).
    best: Option<f64>,
    best_x: Option<Vec<f64>>,
    /// Resumed to refine the best solution with the rest of the budget:
    /// stops only at full precision.
    polishing: bool,
    current: Generation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Bipop {
    /// Evaluations spent by each regime (the first run counts for neither).
    large_evals: u64,
    small_evals: u64,
    /// Evaluations of the latest large (or the first) run: sizes a small
    /// run's budget.
    last_large_evals: u64,
    /// Population of the latest large run = default * 2^doublings.
    doublings: u32,
    /// The regime of the last run, if that run improved on all before it.
    last_improved: Option<Regime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: u64,
    default_lambda: usize,
    sigma0: f64,
    restarts: Restarts,
    max_restarts: Option<u32>,
    restarts_done: u32,
    finished: bool,
    /// Best foreign point told before the first ask: the first run's mean.
    foreign: Option<(Vec<f64>, Told)>,
    bipop: Bipop,
    /// Best feasible value of the finished runs, and where.
    incumbent: Option<f64>,
    incumbent_x: Option<Vec<f64>>,
    /// The run that found `incumbent`, when only the relative tolerance
    /// stopped it: resumed to full precision ("polished") when a later run
    /// ends at the same point, when a restart could not use the rest of a
    /// known budget, or in the last share of that budget.
    paused: Option<Run>,
    /// Evaluations used (asked members of finished generations).
    spent: u64,
    run: Option<Run>,
}

/// A sample of the current generation: `z ~ N(0, I)`, `y = B D z` and the
/// point in the cube.
#[derive(Debug, Clone)]
struct Sample {
    z: Vec<f64>,
    y: Vec<f64>,
    x: Vec<f64>,
}

/// Samples of the current generation drawn so far (rebuilt after a restore).
#[derive(Debug, Clone)]
struct SampleCache {
    cursor: Rng,
    samples: Vec<Sample>,
}

/// CMA-ES with restarts over the unit cube (see the module docs).
pub struct CmaEs {
    dims: Vec<Dim>,
    /// The planned number of evaluations (not part of the state: a resumed
    /// study may extend it).
    budget: Option<u64>,
    state: State,
    cache: Option<SampleCache>,
}

impl State {
    /// BIPOP's choice for the next run: stay with a regime while its runs
    /// keep improving on the best so far; otherwise the small regime runs
    /// while it has used less than its share of the large one's evaluations.
    fn next_is_small(&self) -> bool {
        if self.restarts != Restarts::Bipop {
            return false;
        }
        match self.bipop.last_improved {
            Some(Regime::Small) => true,
            Some(Regime::First | Regime::Large) => false,
            None => (self.bipop.small_evals as f64) < SMALL_REGIME_SHARE * self.bipop.large_evals as f64,
        }
    }
}

impl CmaEs {
    /// Check the options (population at least 2, sigma0 in (0, 1]); a
    /// space without parameters is an error too.
    pub fn new(problem: &Problem, config: CmaEsConfig) -> Result<Self> {
        let n = problem.dim();
        if n == 0 {
            return Err(CODEC.error("the space has no parameters to search"));
        }
        let mut check = OptionCheck::default();
        if let Some(p) = config.population
            && p < 2
        {
            check.bad("population", format!("must be at least 2 (got {p})"));
        }
        if !(config.sigma0.is_finite() && config.sigma0 > 0.0 && config.sigma0 <= 1.0) {
            check.bad("sigma0", format!("must be in (0, 1], a fraction of the cube's side (got {})", config.sigma0));
        }
        check.finish()?;
        let default_lambda = config
            .population
            .unwrap_or_else(|| (4 + (3.0 * (n as f64).ln()).floor() as usize).max(problem.parallelism));
        Ok(CmaEs {
            dims: problem.dims.clone(),
            budget: problem.budget,
            state: State {
                rng: Rng::new(problem.seed, STREAM_MAIN),
                next_ticket: 0,
                default_lambda,
                sigma0: config.sigma0,
                restarts: config.restarts,
                max_restarts: config.max_restarts,
                restarts_done: 0,
                finished: false,
                foreign: None,
                bipop: Bipop { large_evals: 0, small_evals: 0, last_large_evals: 0, doublings: 0, last_improved: None },
                incumbent: None,
                incumbent_x: None,
                paused: None,
                spent: 0,
                run: None,
            },
            cache: None,
        })
    }

    /// Restarts performed so far.
    pub fn restarts(&self) -> u32 {
        self.state.restarts_done
    }

    /// Population size of the current run.
    pub fn population(&self) -> Option<usize> {
        self.state.run.as_ref().map(|r| r.lambda)
    }

    fn n(&self) -> usize {
        self.dims.len()
    }

    /// Start a run with the given mean (genotype), population and step size.
    fn start_run(&mut self, mean: Vec<f64>, lambda: usize, sigma: f64, regime: Regime, max_evals: Option<u64>) {
        let n = self.n();
        let mut cov = vec![0.0; n * n];
        let mut basis = vec![0.0; n * n];
        for i in 0..n {
            cov[i * n + i] = 1.0;
            basis[i * n + i] = 1.0;
        }
        let current = self.new_generation_parts(lambda, sigma, &cov);
        self.state.run = Some(Run {
            lambda,
            regime,
            max_evals,
            evals: 0,
            generation: 0,
            mean,
            sigma,
            sigma0: sigma,
            cov,
            basis,
            axes: vec![1.0; n],
            eigen_generation: 0,
            ps: vec![0.0; n],
            pc: vec![0.0; n],
            best_history: VecDeque::new(),
            median_history: VecDeque::new(),
            flat_history: VecDeque::new(),
            best: None,
            best_x: None,
            polishing: false,
            current,
        });
        self.cache = None;
    }

    fn new_generation_parts(&mut self, lambda: usize, sigma: f64, cov: &[f64]) -> Generation {
        let n = self.n();
        let params = Params::new(n, lambda);
        let scale = (0..n)
            .map(|i| match self.dims[i].levels() {
                Some(levels) if levels > 1 => {
                    let floor = params.margin / levels as f64;
                    let std = sigma * cov[i * n + i].max(0.0).sqrt();
                    if std < floor { (floor / std.max(1e-300)).min(1e300) } else { 1.0 }
                }
                _ => 1.0,
            })
            .collect();
        // A fresh generator per generation, so that member k can be redrawn
        // after a restore without storing the samples.
        let seed = (self.state.rng.uniform() * (1u64 << 53) as f64) as u64;
        Generation {
            rng: Rng::new(seed, STREAM_GENERATION),
            first_ticket: self.state.next_ticket,
            asked: 0,
            told: Vec::new(),
            n_told: 0,
            scale,
        }
    }

    /// The first run: from the best foreign point told so far, else from a
    /// uniformly random point (never the centre: no free win on benchmarks
    /// whose optimum sits there).
    fn first_run(&mut self) {
        let n = self.n();
        let mean: Vec<f64> = match &self.state.foreign {
            Some((x, _)) => x.iter().map(|&u| bounds::from_unit(u)).collect(),
            None => (0..n).map(|_| bounds::from_unit(self.state.rng.uniform())).collect(),
        };
        let lambda = self.state.default_lambda;
        let sigma = self.state.sigma0;
        self.start_run(mean, lambda, sigma, Regime::First, None);
    }

    /// Make sure samples `0..upto` of the current generation are cached.
    fn ensure_samples(&mut self, upto: usize) {
        let n = self.n();
        let Some(run) = self.state.run.as_ref() else {
            return;
        };
        let cache =
            self.cache.get_or_insert_with(|| SampleCache { cursor: run.current.rng.clone(), samples: Vec::new() });
        while cache.samples.len() < upto {
            let z: Vec<f64> = (0..n).map(|_| cache.cursor.normal()).collect();
            let mut y = vec![0.0; n];
            for (i, yi) in y.iter_mut().enumerate() {
                let row = &run.basis[i * n..(i + 1) * n];
                *yi = row.iter().zip(&run.axes).zip(&z).map(|((b, d), z)| b * d * z).sum();
            }
            let x: Vec<f64> =
                (0..n).map(|i| bounds::to_unit(run.mean[i] + run.sigma * run.current.scale[i] * y[i]).0).collect();
            cache.samples.push(Sample { z, y, x });
        }
    }

    /// Record one result; runs the generation update when lambda are in.
    fn tell_one(&mut self, o: &Observed) {
        let Some(ticket) = o.ticket else {
            // Foreign points steer the first run's start; later ones cannot
            // enter a generation without biasing its update.
            if self.state.run.is_none()
                && let Some(o) = foreign(o, self.n())
                && o.value.is_some()
            {
                let told = Told::of(&o);
                let better = match &self.state.foreign {
                    None => true,
                    Some((_, best)) => told.as_observed().cmp_quality(&best.as_observed()).is_lt(),
                };
                if better {
                    self.state.foreign = Some((o.x, told));
                }
            }
            return;
        };
        let Some(run) = self.state.run.as_mut() else {
            return;
        };
        let generation = &mut run.current;
        if ticket < generation.first_ticket || ticket >= generation.first_ticket + generation.asked as u64 {
            return; // from a finished generation (or unknown): stale
        }
        let k = (ticket - generation.first_ticket) as usize;
        if generation.told[k].is_some() {
            return; // told twice: keep the first
        }
        generation.told[k] = Some(Told::of(o));
        generation.n_told += 1;
        if generation.n_told >= run.lambda {
            self.update();
        }
    }

    /// One CMA-ES generation update from the first lambda results told.
    fn update(&mut self) {
        let n = self.n();
        let (members, upto) = {
            let run = self.state.run.as_ref().expect("update needs a run");
            let members: Vec<(usize, Told)> =
                run.current.told.iter().enumerate().filter_map(|(k, t)| t.map(|t| (k, t))).take(run.lambda).collect();
            let upto = members.last().map_or(0, |m| m.0 + 1);
            (members, upto)
        };
        self.ensure_samples(upto);
        let cache = self.cache.take().expect("samples were just drawn");
        let run = self.state.run.as_mut().expect("update needs a run");
        let p = Params::new(n, run.lambda);

        let mut ranked = members;
        ranked.sort_by(|a, b| a.1.as_observed().cmp_quality(&b.1.as_observed()));
        let sample = |r: usize| &cache.samples[ranked[r].0];

        // Recombination.
        let mut y_w = vec![0.0; n];
        let mut z_w = vec![0.0; n];
        for r in 0..p.mu {
            let w = p.weights[r];
            let s = sample(r);
            for i in 0..n {
                y_w[i] += w * s.y[i];
                z_w[i] += w * s.z[i];
            }
        }
        for ((m, scale), y) in run.mean.iter_mut().zip(&run.current.scale).zip(&y_w) {
            *m += run.sigma * scale * y;
        }

        // Step-size path: C^{-1/2} <y>_w = B <z>_w.
        let csn = (p.cs * (2.0 - p.cs) * p.mueff).sqrt();
        for i in 0..n {
            let row = &run.basis[i * n..(i + 1) * n];
            let bz: f64 = row.iter().zip(&z_w).map(|(b, z)| b * z).sum();
            run.ps[i] = (1.0 - p.cs) * run.ps[i] + csn * bz;
        }
        let ps_norm = run.ps.iter().map(|v| v * v).sum::<f64>().sqrt();
        let decay = 1.0 - (1.0 - p.cs).powf(2.0 * (run.generation + 1) as f64);
        let hsig = ps_norm / decay.max(1e-300).sqrt() / p.chi_n < 1.4 + 2.0 / (n as f64 + 1.0);

        // Covariance path and rank-one + rank-mu (active) update.
        let ccn = (p.cc * (2.0 - p.cc) * p.mueff).sqrt();
        for (pc, y) in run.pc.iter_mut().zip(&y_w) {
            *pc = (1.0 - p.cc) * *pc + if hsig { ccn * y } else { 0.0 };
        }
        let delta_h = if hsig { 0.0 } else { p.cc * (2.0 - p.cc) };
        let keep = 1.0 + p.c1 * delta_h - p.c1 - p.cmu * p.sum_weights;
        let coef: Vec<f64> = (0..p.lambda)
            .map(|r| {
                let w = p.weights[r];
                if w >= 0.0 {
                    w
                } else {
                    // ||C^{-1/2} y||^2 = ||z||^2: negative weights shrink
                    // only as far as keeps C positive definite.
                    let z2: f64 = sample(r).z.iter().map(|v| v * v).sum();
                    w * n as f64 / z2.max(1e-300)
                }
            })
            .collect();
        for i in 0..n {
            for j in 0..=i {
                let mut rank_mu = 0.0;
                for (r, c) in coef.iter().enumerate() {
                    if *c != 0.0 {
                        let y = &sample(r).y;
                        rank_mu += c * y[i] * y[j];
                    }
                }
                let v = keep * run.cov[i * n + j] + p.c1 * run.pc[i] * run.pc[j] + p.cmu * rank_mu;
                run.cov[i * n + j] = v;
                run.cov[j * n + i] = v;
            }
        }

        // Cumulative step-size adaptation.
        run.sigma *= ((p.cs / p.damps) * (ps_norm / p.chi_n - 1.0)).min(1.0).exp();

        // The cube is bounded: beyond MAX_STD a coordinate is already sampled
        // uniformly (the transform wraps), so cap it there; otherwise neutral
        // coordinates inflate C without limit and end the run on its
        // condition number.
        let caps: Vec<f64> = (0..n)
            .map(|i| {
                let std = run.sigma * run.cov[i * n + i].max(0.0).sqrt();
                if std > MAX_STD { MAX_STD / std } else { 1.0 }
            })
            .collect();
        if caps.iter().any(|c| *c < 1.0) {
            for i in 0..n {
                for j in 0..n {
                    run.cov[i * n + j] *= caps[i] * caps[j];
                }
            }
        }
        // Shifting by whole periods of the transform changes no sample and
        // keeps the mean's numbers small.
        for m in run.mean.iter_mut() {
            *m = bounds::wrap(*m);
        }

        // Flat fitness: the best and the k-th are indistinguishable.
        let kth = ((0.1 + p.lambda as f64 / 4.0).ceil() as usize).clamp(1, p.lambda - 1);
        let flat = ranked[0].1.as_observed().cmp_quality(&ranked[kth].1.as_observed()).is_eq();
        if flat {
            run.sigma *= (0.2 + p.cs / p.damps).exp();
        }
        push_capped(&mut run.flat_history, flat, n.max(10));

        let best = ranked[0].1.feasible().unwrap_or(f64::MAX);
        let median = ranked[p.lambda / 2].1.feasible().unwrap_or(f64::MAX);
        push_capped(&mut run.best_history, best, HISTORY_CAP);
        push_capped(&mut run.median_history, median, HISTORY_CAP);
        let current_values: Vec<f64> = ranked.iter().filter_map(|m| m.1.feasible()).collect();
        if let Some(&v) = current_values.first()
            && run.best.is_none_or(|b| v < b)
        {
            run.best = Some(v);
            run.best_x = Some(sample(0).x.clone());
        }

        run.generation += 1;
        run.evals += run.current.asked as u64;
        self.state.spent += run.current.asked as u64;
        let eigen_ok = if run.generation - run.eigen_generation >= p.eigen_every {
            run.eigen_generation = run.generation;
            decompose(n, &mut run.cov, &mut run.basis, &mut run.axes)
        } else {
            true
        };

        let stop = if eigen_ok {
            termination(n, &p, run, &current_values, self.state.incumbent)
        } else {
            Some(Stop { reason: "eigendecomposition failed", coarse: false })
        };
        match stop {
            Some(stop) => self.end_run(stop),
            None if self.time_to_polish() => {
                self.end_run(Stop { reason: "budget nearly used: polishing the best run", coarse: false })
            }
            None => {
                let (lambda, sigma, cov) = {
                    let run = self.state.run.as_ref().expect("run");
                    (run.lambda, run.sigma, run.cov.clone())
                };
                let g = self.new_generation_parts(lambda, sigma, &cov);
                self.state.run.as_mut().expect("run").current = g;
                self.cache = None;
            }
        }
    }

    /// Evaluations left of the planned budget, when known.
    fn remaining(&self) -> Option<u64> {
        self.budget.map(|b| b.saturating_sub(self.state.spent))
    }

    /// The last share of a known budget refines the best run stopped early,
    /// unless the current run is already better.
    fn time_to_polish(&self) -> bool {
        let (Some(left), Some(budget), Some(paused)) = (self.remaining(), self.budget, &self.state.paused) else {
            return false;
        };
        let current_best = self.state.run.as_ref().and_then(|r| r.best);
        left as f64 <= POLISH_SHARE * budget as f64
            && !self.state.run.as_ref().is_some_and(|r| r.polishing)
            && paused.best.is_some_and(|b| current_best.is_none_or(|c| b < c))
    }

    /// A restart that the rest of a known budget cannot take halfway is
    /// worth less than polishing the best run (and no restart may follow).
    fn polish_instead_of_restart(&self) -> bool {
        let s = &self.state;
        if s.paused.is_none() {
            return false;
        }
        if s.restarts == Restarts::None || s.max_restarts.is_some_and(|m| s.restarts_done >= m) {
            return true;
        }
        let Some(left) = self.remaining() else { return false };
        let last = s.bipop.last_large_evals;
        let expected = if s.next_is_small() {
            last / 2
        } else if s.bipop.doublings < MAX_DOUBLINGS {
            2 * last
        } else {
            last
        };
        left < expected / 4
    }

    /// Close the current run: account for it, keep it for polishing when it
    /// stopped early as the best so far, then polish or restart.
    fn end_run(&mut self, stop: Stop) {
        let run = self.state.run.take().expect("a run to end");
        self.cache = None;
        tracing::debug!(
            optimizer = CODEC.name,
            reason = stop.reason,
            evals = run.evals,
            lambda = run.lambda,
            best = run.best,
            "run ended"
        );
        // A polishing run was accounted for when it first stopped.
        if !run.polishing {
            let b = &mut self.state.bipop;
            match run.regime {
                Regime::First => b.last_large_evals = run.evals,
                Regime::Large => {
                    b.large_evals += run.evals;
                    b.last_large_evals = run.evals;
                }
                Regime::Small => b.small_evals += run.evals,
            }
        }
        // Two runs that end at the same point suggest one big basin: refine
        // it now rather than restarting into it again.
        let same_optimum = !run.polishing
            && match (&run.best_x, &self.state.incumbent_x) {
                (Some(a), Some(b)) => a.iter().zip(b).all(|(a, b)| (a - b).abs() < SAME_OPTIMUM),
                _ => false,
            };
        if let (Some(best), Some(best_x)) = (run.best, &run.best_x) {
            let improved = self.state.incumbent.is_none_or(|i| best < i);
            if !run.polishing {
                self.state.bipop.last_improved = improved.then_some(run.regime);
            }
            if improved {
                self.state.incumbent = Some(best);
                self.state.incumbent_x = Some(best_x.clone());
                self.state.paused = None;
                if stop.coarse && !run.polishing {
                    self.state.paused = Some(run);
                }
            }
        }
        if self.state.paused.is_some() && (same_optimum || self.time_to_polish() || self.polish_instead_of_restart()) {
            let mut run = self.state.paused.take().expect("checked above");
            run.polishing = true;
            run.max_evals = None;
            let g = self.new_generation_parts(run.lambda, run.sigma, &run.cov);
            run.current = g;
            self.state.run = Some(run);
        } else {
            self.restart();
        }
    }

    /// Start the next run per the restart strategy, or finish.
    fn restart(&mut self) {
        let s = &mut self.state;
        let limit_reached = s.max_restarts.is_some_and(|m| s.restarts_done >= m);
        if s.restarts == Restarts::None || limit_reached {
            s.finished = true;
            s.run = None;
            self.cache = None;
            return;
        }
        s.restarts_done += 1;
        let n = self.dims.len();
        let lambda_def = s.default_lambda;
        let small = s.next_is_small();
        let (lambda, sigma, regime, max_evals) = if small {
            let large = lambda_def << s.bipop.doublings;
            let u = s.rng.uniform();
            let lambda = (lambda_def as f64 * (0.5 * large as f64 / lambda_def as f64).powf(u * u)).floor() as usize;
            let sigma = s.sigma0 * 10f64.powf(-2.0 * s.rng.uniform());
            (lambda.max(2), sigma, Regime::Small, Some((s.bipop.last_large_evals / 2).max(1)))
        } else {
            s.bipop.doublings = (s.bipop.doublings + 1).min(MAX_DOUBLINGS);
            (lambda_def << s.bipop.doublings, s.sigma0, Regime::Large, None)
        };
        let mean: Vec<f64> = (0..n).map(|_| bounds::from_unit(s.rng.uniform())).collect();
        self.start_run(mean, lambda, sigma, regime, max_evals);
    }
}

impl Optimizer for CmaEs {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        if n == 0 || self.state.finished {
            return Ok(Vec::new());
        }
        if self.state.run.is_none() {
            self.first_run();
        }
        let (start, count) = {
            let run = self.state.run.as_ref().expect("run started above");
            let g = &run.current;
            // Members of the generation first; once all are out and results
            // are pending, more samples of the same distribution (the update
            // then uses whichever lambda come back first).
            let count = if g.asked < run.lambda { n.min(run.lambda - g.asked) } else { n.min(run.lambda) };
            (g.asked, count)
        };
        self.ensure_samples(start + count);
        let cache = self.cache.as_ref().expect("samples were just drawn");
        let run = self.state.run.as_mut().expect("run started above");
        let g = &mut run.current;
        let out: Vec<Candidate> = (start..start + count)
            .map(|k| Candidate { ticket: g.first_ticket + k as u64, x: cache.samples[k].x.clone() })
            .collect();
        g.asked += count;
        g.told.resize(g.asked, None);
        self.state.next_ticket = g.first_ticket + g.asked as u64;
        Ok(out)
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for o in results {
            self.tell_one(o);
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        CODEC.snapshot(&self.state, self.n())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let state: State = CODEC.restore(snapshot, self.n())?;
        // Snapshots taken before they recorded their dimension: the run's mean tells it.
        if let Some(run) = &state.run
            && run.mean.len() != self.n()
        {
            return Err(CODEC.wrong_dim(run.mean.len(), self.n()));
        }
        self.state = state;
        self.cache = None;
        Ok(())
    }
}

/// Why a run ended; `coarse` when only the relative tolerance stopped it.
struct Stop {
    reason: &'static str,
    coarse: bool,
}

/// Why the run should end, if it should (Hansen's tutorial, appendix B, and
/// the BIPOP paper's criteria).
fn termination(n: usize, p: &Params, run: &Run, current: &[f64], incumbent: Option<f64>) -> Option<Stop> {
    if run.max_evals.is_some_and(|m| run.evals >= m) {
        return Some(Stop { reason: "evaluation limit of the run", coarse: false });
    }
    let sigma = run.sigma;
    if !sigma.is_finite() || sigma <= 0.0 || run.mean.iter().any(|m| !m.is_finite()) {
        return Some(Stop { reason: "numerical breakdown", coarse: false });
    }
    let max_axis = run.axes.iter().cloned().fold(0.0, f64::max);
    let min_axis = run.axes.iter().cloned().fold(f64::INFINITY, f64::min);
    if min_axis <= 0.0 || (max_axis / min_axis).powi(2) > 1e14 {
        return Some(Stop { reason: "condition number of C", coarse: false });
    }
    // TolX: all standard deviations and the path tiny.
    let tolx = 1e-12 * run.sigma0.max(1e-3);
    if (0..n).all(|i| sigma * run.pc[i].abs().max(run.cov[i * n + i].sqrt()) < tolx) {
        return Some(Stop { reason: "tolx", coarse: false });
    }
    // TolFun: recent bests and the whole current generation within tolfun.
    let window = 10 + (30.0 * n as f64 / p.lambda as f64).ceil() as usize;
    if run.best_history.len() >= window && !current.is_empty() {
        let recent = run.best_history.iter().rev().take(window).chain(current.iter());
        let (lo, hi) = recent.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let range = hi - lo;
        if hi < f64::MAX && range < 1e-12 * lo.abs().max(1.0) {
            return Some(Stop { reason: "tolfun", coarse: false });
        }
        // Relative to the values themselves: the budget is better spent on
        // the next restart (the best run is polished later).
        if hi < f64::MAX && !run.polishing && range < TOLFUN_REL * lo.abs() {
            return Some(Stop { reason: "relative tolfun", coarse: true });
        }
    }
    // Hopeless: the run is worse than an earlier run by far more than it
    // still improves (its recent progress and its generation's spread), so
    // refining its local optimum to full precision would waste the budget
    // the next restart can use.
    if let (Some(inc), Some(best)) = (incumbent, run.best)
        && !run.polishing
        && run.best_history.len() >= window
        && !current.is_empty()
    {
        let spread = current[current.len() - 1] - current[0];
        let before = run.best_history[run.best_history.len() - window];
        let progress = if before < f64::MAX { before - best } else { f64::INFINITY };
        if best - inc > HOPELESS_FACTOR * spread.max(progress) {
            return Some(Stop { reason: "far behind an earlier run", coarse: false });
        }
    }
    // Flat fitness in more than a third of the recent generations.
    if run.flat_history.len() >= n.max(10)
        && run.flat_history.iter().filter(|f| **f).count() * 3 > run.flat_history.len()
    {
        return Some(Stop { reason: "equal function values", coarse: false });
    }
    // No effect of a principal axis (cycled) or of a coordinate on the mean.
    let axis = (run.generation % n as u64) as usize;
    if (0..n).all(|j| {
        let m = run.mean[j];
        m + 0.1 * sigma * run.axes[axis] * run.basis[j * n + axis] == m
    }) {
        return Some(Stop { reason: "no effect axis", coarse: false });
    }
    if (0..n).any(|i| {
        let m = run.mean[i];
        m + 0.2 * sigma * run.cov[i * n + i].sqrt() == m
    }) {
        return Some(Stop { reason: "no effect coordinate", coarse: false });
    }
    // Stagnation: neither the best nor the median improved between the
    // oldest and the newest 30% of the last 20% of the run.
    let min_len = 120 + (30.0 * n as f64 / p.lambda as f64).ceil() as usize;
    let len = ((run.generation as f64 * 0.2) as usize).max(min_len).min(HISTORY_CAP);
    if run.best_history.len() >= len && run.generation as usize >= min_len {
        let third = ((len as f64) * 0.3).ceil() as usize;
        let stalled = |h: &VecDeque<f64>| {
            let recent: Vec<f64> = h.iter().rev().take(len).cloned().collect();
            median(&mut recent[..third].to_vec()) >= median(&mut recent[len - third..].to_vec())
        };
        if stalled(&run.best_history) && stalled(&run.median_history) {
            return Some(Stop { reason: "stagnation", coarse: false });
        }
    }
    None
}

/// Eigendecomposition of `cov` into `basis` (columns) and `axes` (sqrt
/// eigenvalues); returns false when it fails (the run then restarts).
fn decompose(n: usize, cov: &mut [f64], basis: &mut [f64], axes: &mut [f64]) -> bool {
    if cov.iter().any(|v| !v.is_finite()) {
        return false;
    }
    let m = DMatrix::from_row_slice(n, n, cov);
    let Some(eig) = SymmetricEigen::try_new(m, f64::EPSILON, 1000 * n.max(10)) else {
        return false;
    };
    let max_ev = eig.eigenvalues.iter().cloned().fold(0.0, f64::max);
    if max_ev <= 0.0 || !max_ev.is_finite() {
        return false;
    }
    for i in 0..n {
        for j in 0..n {
            basis[i * n + j] = eig.eigenvectors[(i, j)];
        }
    }
    for (a, ev) in axes.iter_mut().zip(eig.eigenvalues.iter()) {
        // Round-off can make tiny eigenvalues negative; the condition test
        // then ends the run.
        *a = ev.max(max_ev * 1e-20).sqrt();
    }
    true
}

fn push_capped<T>(h: &mut VecDeque<T>, v: T, cap: usize) {
    h.push_back(v);
    while h.len() > cap {
        h.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(dims: Vec<Dim>, seed: u64, config: CmaEsConfig) -> CmaEs {
        CmaEs::new(&Problem::new(dims, seed), config).expect("valid config")
    }

    /// Drive for `budget` evaluations in batches of `batch`; returns the best value.
    fn drive(opt: &mut CmaEs, f: &dyn Fn(&[f64]) -> f64, budget: usize, batch: usize) -> (f64, Vec<Candidate>) {
        let mut best = f64::INFINITY;
        let mut asked = Vec::new();
        while asked.len() < budget {
            let cands = opt.ask(batch.min(budget - asked.len())).unwrap();
            if cands.is_empty() {
                break;
            }
            let told: Vec<Observed> = cands
                .iter()
                .map(|c| {
                    let v = f(&c.x);
                    best = best.min(v);
                    Observed::ok(Some(c.ticket), c.x.clone(), v)
                })
                .collect();
            opt.tell(&told).unwrap();
            asked.extend(cands);
        }
        (best, asked)
    }

    /// Ellipsoid with condition 1e6 in a rotated frame, optimum off-centre.
    fn rotated_ellipsoid(x: &[f64]) -> f64 {
        let n = x.len();
        let z: Vec<f64> = x.iter().enumerate().map(|(i, v)| v - (0.7 - 0.04 * i as f64)).collect();
        // A fixed rotation: a product of Givens rotations on neighbours.
        let mut r = z.clone();
        for i in 0..n - 1 {
            let (c, s) = ((0.3 + i as f64).cos(), (0.3 + i as f64).sin());
            let (a, b) = (r[i], r[i + 1]);
            r[i] = c * a - s * b;
            r[i + 1] = s * a + c * b;
        }
        r.iter().enumerate().map(|(i, v)| 1e6f64.powf(i as f64 / (n - 1) as f64) * v * v).sum()
    }

    #[test]
    fn converges_on_a_rotated_ellipsoid_to_high_precision() {
        let config = CmaEsConfig { restarts: Restarts::None, ..Default::default() };
        let mut opt = build(vec![Dim::Continuous; 8], 3, config);
        let (best, _) = drive(&mut opt, &rotated_ellipsoid, 12_000, 10);
        assert!(best < 1e-10, "best {best}");
    }

    #[test]
    fn converges_on_a_sphere_in_a_corner() {
        // Optimum on the faces of the cube: x0 = 0, x1 = 1, others inside.
        let f = |x: &[f64]| x[0] * x[0] + (1.0 - x[1]).powi(2) + x[2..].iter().map(|v| (v - 0.3).powi(2)).sum::<f64>();
        let mut opt = build(vec![Dim::Continuous; 5], 11, CmaEsConfig::default());
        let (best, asked) = drive(&mut opt, &f, 3000, 8);
        assert!(best < 1e-10, "best {best}");
        assert!(asked.iter().all(|c| c.x.iter().all(|v| (0.0..=1.0).contains(v))));
    }

    fn rastrigin(x: &[f64]) -> f64 {
        x.iter()
            .map(|u| {
                let z = -5.12 + 10.24 * u - 1.1;
                z * z - 10.0 * (2.0 * std::f64::consts::PI * z).cos() + 10.0
            })
            .sum()
    }

    #[test]
    fn restarts_with_larger_populations_on_a_multimodal_function() {
        for restarts in [Restarts::Bipop, Restarts::Ipop] {
            let config = CmaEsConfig { restarts, ..Default::default() };
            let mut opt = build(vec![Dim::Continuous; 5], 1, config);
            let lambda0 = opt.state.default_lambda;
            let mut grew = false;
            let mut best = f64::INFINITY;
            for _ in 0..20 {
                best = best.min(drive(&mut opt, &rastrigin, 1000, 16).0);
                grew |= opt.population().is_some_and(|l| l > lambda0);
            }
            assert!(opt.restarts() >= 3, "{restarts:?}: {} restarts", opt.restarts());
            assert!(grew, "{restarts:?}: population never grew");
            assert!(best < 3.0, "{restarts:?}: best {best}");
        }
    }

    #[test]
    fn polishes_the_best_run_to_full_precision() {
        // Offset optimum (f* = 100): runs stop at the relative tolerance and
        // restart; the best run must still end up refined.
        let f = |x: &[f64]| 100.0 + x.iter().enumerate().map(|(i, v)| (v - 0.2 - 0.1 * i as f64).powi(2)).sum::<f64>();
        let mut problem = Problem::new(vec![Dim::Continuous; 6], 17);
        problem.budget = Some(4000);
        let mut opt = CmaEs::new(&problem, CmaEsConfig::default()).unwrap();
        let (best, _) = drive(&mut opt, &f, 4000, 12);
        assert!(opt.restarts() >= 1, "expected restarts after the coarse stop");
        assert!(best - 100.0 < 1e-10, "regret {}", best - 100.0);
    }

    #[test]
    fn without_restarts_it_converges_fully_then_finishes() {
        // Offset values: the relative tolerance stops the run early, and with
        // no restart to follow it is polished to full precision.
        let config = CmaEsConfig { restarts: Restarts::None, ..Default::default() };
        let mut opt = build(vec![Dim::Continuous; 2], 5, config);
        let f = |x: &[f64]| 5.0 + (x[0] - 0.2).powi(2) + (x[1] - 0.9).powi(2);
        let (best, asked) = drive(&mut opt, &f, 100_000, 6);
        assert!(asked.len() < 100_000, "never converged");
        assert!(best - 5.0 < 1e-10, "regret {}", best - 5.0);
        assert!(opt.ask(4).unwrap().is_empty());
        assert_eq!(opt.restarts(), 0);
    }

    #[test]
    fn first_run_starts_from_the_best_foreign_point() {
        let config = CmaEsConfig { sigma0: 1e-3, ..Default::default() };
        let mut opt = build(vec![Dim::Continuous; 3], 2, config);
        opt.tell(&[
            Observed::ok(None, vec![0.9, 0.9, 0.9], 5.0),
            Observed::ok(None, vec![0.12, 0.34, 0.56], 1.0),
            Observed::failed(None, vec![0.5, 0.5, 0.5]),
        ])
        .unwrap();
        let c = opt.ask(20).unwrap();
        for cand in &c {
            for (v, t) in cand.x.iter().zip([0.12, 0.34, 0.56]) {
                assert!((v - t).abs() < 0.01, "{:?}", cand.x);
            }
        }
    }

    #[test]
    fn tell_order_within_a_generation_does_not_matter() {
        let f = |x: &[f64]| rotated_ellipsoid(x);
        let mut a = build(vec![Dim::Continuous; 4], 8, CmaEsConfig::default());
        let mut b = build(vec![Dim::Continuous; 4], 8, CmaEsConfig::default());
        for _ in 0..30 {
            let ca = a.ask(100).unwrap();
            let cb = b.ask(100).unwrap();
            assert_eq!(ca, cb);
            let told: Vec<Observed> = ca.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
            a.tell(&told).unwrap();
            for o in told.iter().rev() {
                b.tell(std::slice::from_ref(o)).unwrap();
            }
        }
    }

    #[test]
    fn extra_samples_while_results_are_pending() {
        let mut opt = build(vec![Dim::Continuous; 3], 4, CmaEsConfig::default());
        let lambda = opt.state.default_lambda;
        let first = opt.ask(100).unwrap();
        assert_eq!(first.len(), lambda, "one generation at a time");
        let extra = opt.ask(3).unwrap();
        assert_eq!(extra.len(), 3, "more samples of the same generation");
        // The extras and all but three of the first batch complete: lambda
        // results, so the generation updates; the late ones are ignored.
        let done: Vec<Observed> = first[3..]
            .iter()
            .chain(&extra)
            .map(|c| Observed::ok(Some(c.ticket), c.x.clone(), rotated_ellipsoid(&c.x)))
            .collect();
        opt.tell(&done).unwrap();
        assert_eq!(opt.state.run.as_ref().unwrap().generation, 1);
        let late: Vec<Observed> = first[..3].iter().map(|c| Observed::failed(Some(c.ticket), c.x.clone())).collect();
        opt.tell(&late).unwrap();
        assert_eq!(opt.ask(100).unwrap().len(), lambda);
    }

    #[test]
    fn discrete_coordinates_keep_moving() {
        // Continuous part converges; the integer part must still try other
        // levels near the end of the run instead of freezing.
        let dims = vec![Dim::Continuous, Dim::Continuous, Dim::Integer { levels: 6 }, Dim::Categorical { choices: 3 }];
        let level = |u: f64, n: f64| (u * n).floor().min(n - 1.0);
        let f = move |x: &[f64]| {
            (x[0] - 0.3).powi(2) + (x[1] - 0.8).powi(2) + 0.1 * (level(x[2], 6.0) - 4.0).abs() + 0.1 * level(x[3], 3.0)
        };
        let config = CmaEsConfig { restarts: Restarts::None, ..Default::default() };
        let mut opt = build(dims, 6, config);
        let (best, asked) = drive(&mut opt, &f, 20_000, 8);
        assert!(best < 1e-8, "best {best}");
        let tail = &asked[asked.len().saturating_sub(400)..];
        let others = tail.iter().filter(|c| level(c.x[2], 6.0) != 4.0).count();
        assert!(others > 0, "integer coordinate froze");
        assert!(others < tail.len() / 2, "integer coordinate never settled ({others} of {})", tail.len());
    }

    #[test]
    fn snapshot_restores_mid_generation_with_extras() {
        let f = |x: &[f64]| rotated_ellipsoid(x);
        let mut a = build(vec![Dim::Continuous; 5], 12, CmaEsConfig::default());
        drive(&mut a, &f, 200, 7);
        let p1 = a.ask(100).unwrap();
        let p2 = a.ask(4).unwrap();
        let text = serde_json::to_string(&a.snapshot().unwrap()).unwrap();
        let mut b = build(vec![Dim::Continuous; 5], 12, CmaEsConfig::default());
        b.restore(&serde_json::from_str(&text).unwrap()).unwrap();
        for o in [&p2, &p1] {
            let told: Vec<Observed> = o.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
            a.tell(&told).unwrap();
            b.tell(&told).unwrap();
        }
        assert_eq!(drive(&mut a, &f, 300, 5).1, drive(&mut b, &f, 300, 5).1);
    }

    #[test]
    fn resumes_identically_with_a_paused_run_in_the_snapshot() {
        let f = |x: &[f64]| 100.0 + x.iter().enumerate().map(|(i, v)| (v - 0.2 - 0.1 * i as f64).powi(2)).sum::<f64>();
        let make = || {
            let mut problem = Problem::new(vec![Dim::Continuous; 4], 23);
            problem.budget = Some(3000);
            CmaEs::new(&problem, CmaEsConfig::default()).unwrap()
        };
        let (_, all) = drive(&mut make(), &f, 3000, 7);
        let mut saw_paused = false;
        for cut in [350, 700, 1400, 2100, 2800] {
            let mut first = make();
            let (_, head) = drive(&mut first, &f, cut, 7);
            saw_paused |= first.state.paused.is_some();
            let text = serde_json::to_string(&first.snapshot().unwrap()).unwrap();
            let mut second = make();
            second.restore(&serde_json::from_str(&text).unwrap()).unwrap();
            let (_, tail) = drive(&mut second, &f, 3000 - head.len(), 7);
            let joined: Vec<Candidate> = head.into_iter().chain(tail).collect();
            assert_eq!(joined, all, "resumed after {cut}");
        }
        assert!(saw_paused, "no snapshot held a paused run");
    }

    #[test]
    fn rejects_bad_options() {
        let p = Problem::new(vec![Dim::Continuous; 2], 1);
        assert!(CmaEs::new(&p, CmaEsConfig { population: Some(1), ..Default::default() }).is_err());
        assert!(CmaEs::new(&p, CmaEsConfig { sigma0: 0.0, ..Default::default() }).is_err());
        let bad: std::result::Result<CmaEsConfig, _> = serde_json::from_str(r#"{"popsize": 10}"#);
        assert!(bad.is_err());
        let ok: CmaEsConfig = serde_json::from_str(r#"{"restarts": "ipop", "max_restarts": 3}"#).unwrap();
        assert_eq!(ok.restarts, Restarts::Ipop);
        assert_eq!(ok.sigma0, 0.25);
    }
}
