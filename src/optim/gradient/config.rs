//! The options of `gradient`, their checks, and the settings they give.

use serde::{Deserialize, Serialize};

use super::STREAM_DESIGN;
use crate::error::Result;
use crate::optim::rng::Rng;
use crate::optim::{OptionCheck, Problem};

/// The local search algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// L-BFGS on finite-difference (or evaluator) gradients: for smooth,
    /// deterministic objectives.
    #[default]
    Lbfgs,
    /// Simultaneous perturbation stochastic approximation: two evaluations
    /// per gradient estimate whatever the dimension, robust to noise.
    Spsa,
}

/// How `lbfgs` estimates a gradient when the evaluator gives none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Differences {
    /// `d` extra points per gradient, error O(h).
    #[default]
    Forward,
    /// `2d` extra points per gradient, error O(h²).
    Central,
}

/// Options of `gradient`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradientConfig {
    /// `lbfgs` (default) or `spsa` (noisy objectives).
    pub method: Method,
    /// lbfgs: `forward` (default) or `central` finite differences.
    pub differences: Option<Differences>,
    /// lbfgs: finite-difference step of continuous coordinates, a fraction
    /// of the cube's side. Default √ε ≈ 1.5e-8 (forward) or ∛ε ≈ 6e-6
    /// (central); raise it when values carry round-off noise.
    pub fd_step: Option<f64>,
    /// lbfgs: number of correction pairs L-BFGS keeps (default 7).
    pub memory: Option<usize>,
    /// Iterations per start. Default 200 for lbfgs; for spsa, one run over
    /// the known budget (1000 without one).
    pub max_iters: Option<u64>,
    /// Stop (ask returns nothing) after this many starts; default: keep
    /// restarting until the caller's budget is used.
    pub max_starts: Option<u32>,
    /// spsa: perturbation size `c`, a fraction of the cube's side (default 0.05).
    pub perturbation: Option<f64>,
    /// spsa: length of the first step, a fraction of the cube's side (default 0.05).
    pub step: Option<f64>,
    /// spsa: perturbation pairs averaged per iteration (default: half the
    /// parallelism, at least 1).
    pub pairs: Option<usize>,
}

/// Options after checking, with the defaults filled in.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) method: Method,
    pub(super) fd: Fd,
    pub(super) memory: usize,
    pub(super) max_iters: u64,
    pub(super) max_starts: Option<u32>,
    pub(super) perturbation: f64,
    pub(super) step: f64,
    pub(super) pairs: usize,
    pub(super) design_seed: u64,
}

/// Finite-difference scheme of continuous coordinates.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fd {
    pub(super) central: bool,
    pub(super) step: f64,
}

impl Settings {
    /// Check the options (every bad one is reported, at `optimizer.<option>`)
    /// and fill in the defaults for the problem.
    pub(super) fn new(problem: &Problem, config: &GradientConfig) -> Result<Settings> {
        let mut check = OptionCheck::default();
        let spsa = config.method == Method::Spsa;
        let mut only = |option: &str, given: bool, for_spsa: bool| {
            if given && spsa != for_spsa {
                let (wanted, got) = if for_spsa { ("spsa", "lbfgs") } else { ("lbfgs", "spsa") };
                check.bad(option, format!("applies to method {wanted} only (method is {got})"));
            }
        };
        only("differences", config.differences.is_some(), false);
        only("fd_step", config.fd_step.is_some(), false);
        only("memory", config.memory.is_some(), false);
        only("perturbation", config.perturbation.is_some(), true);
        only("step", config.step.is_some(), true);
        only("pairs", config.pairs.is_some(), true);
        let fraction = |check: &mut OptionCheck, option: &str, v: Option<f64>, max: f64| {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0 && v <= max)
            {
                check.bad(option, format!("must be in (0, {max}], a fraction of the cube's side (got {v})"));
            }
        };
        fraction(&mut check, "fd_step", config.fd_step, 0.5);
        fraction(&mut check, "perturbation", config.perturbation, 0.5);
        fraction(&mut check, "step", config.step, 1.0);
        if config.memory == Some(0) {
            check.bad("memory", "must be at least 1 (got 0)");
        }
        if config.max_iters == Some(0) {
            check.bad("max_iters", "must be at least 1 (got 0)");
        }
        if config.max_starts == Some(0) {
            check.bad("max_starts", "must be at least 1 (got 0)");
        }
        if config.pairs == Some(0) {
            check.bad("pairs", "must be at least 1 (got 0)");
        }
        check.finish()?;

        let central = config.differences == Some(Differences::Central);
        let fd_step = config.fd_step.unwrap_or(if central { f64::EPSILON.cbrt() } else { f64::EPSILON.sqrt() });
        let pairs = config.pairs.unwrap_or((problem.parallelism / 2).max(1));
        let max_iters = match (config.max_iters, config.method) {
            (Some(n), _) => n,
            (None, Method::Lbfgs) => 200,
            (None, Method::Spsa) => problem.budget.map_or(1000, |b| (b / (2 * pairs as u64)).max(10)),
        };
        Ok(Settings {
            method: config.method,
            fd: Fd { central, step: fd_step },
            memory: config.memory.unwrap_or(7),
            max_iters,
            max_starts: config.max_starts,
            perturbation: config.perturbation.unwrap_or(0.05),
            step: config.step.unwrap_or(0.05),
            pairs,
            design_seed: Rng::new(problem.seed, STREAM_DESIGN).below(usize::MAX) as u64,
        })
    }
}
