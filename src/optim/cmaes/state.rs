//! The serialized state of `cmaes`: the runs, their generations and the
//! restart bookkeeping (the snapshot format; renaming a field needs a new
//! format version).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Restarts, SMALL_REGIME_SHARE};
use crate::optim::rng::Rng;
use crate::optim::{Observed, sanitized};

/// Which BIPOP regime a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Regime {
    /// The first run, with the default population; counts for neither regime.
    First,
    Large,
    Small,
}

/// The result of one evaluation, sanitized so that it survives JSON (no
/// NaN or infinities) and ranks as [`Observed::cmp_quality`] says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Told {
    pub(super) value: Option<f64>,
    pub(super) violation: f64,
}

impl Told {
    pub(super) fn of(o: &Observed) -> Told {
        let safe = sanitized(Vec::new(), o);
        Told { value: safe.value, violation: safe.violation }
    }
    pub(super) fn as_observed(&self) -> Observed {
        Observed {
            ticket: None,
            x: Vec::new(),
            value: self.value,
            violation: self.violation,
            gradient: None,
            slacks: Vec::new(),
            objectives: Vec::new(),
        }
    }
    /// The value when feasible.
    pub(super) fn feasible(&self) -> Option<f64> {
        if self.violation <= 0.0 { self.value } else { None }
    }
}

/// The members of the current generation that were asked and told. Samples
/// are not stored: member `k` is the `k`-th draw of `rng`, recomputed on demand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Generation {
    pub(super) rng: Rng,
    pub(super) first_ticket: u64,
    /// Members handed out so far (may exceed lambda when callers ask for
    /// more than one generation while results are pending).
    pub(super) asked: usize,
    pub(super) told: Vec<Option<Told>>,
    pub(super) n_told: usize,
    /// Per-coordinate sampling scale (>= 1): the margin of discrete coordinates.
    pub(super) scale: Vec<f64>,
}

/// One CMA-ES run (between restarts).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Run {
    pub(super) lambda: usize,
    pub(super) regime: Regime,
    /// Evaluation limit of this run (small BIPOP runs only).
    pub(super) max_evals: Option<u64>,
    pub(super) evals: u64,
    pub(super) generation: u64,
    /// Mean, in genotype space (see [`bounds::to_unit`]).
    pub(super) mean: Vec<f64>,
    pub(super) sigma: f64,
    pub(super) sigma0: f64,
    /// Covariance, row-major n x n.
    pub(super) cov: Vec<f64>,
    /// Eigenvectors (columns of B, row-major) and sqrt eigenvalues of `cov`
    /// at generation `eigen_generation`.
    pub(super) basis: Vec<f64>,
    pub(super) axes: Vec<f64>,
    pub(super) eigen_generation: u64,
    pub(super) ps: Vec<f64>,
    pub(super) pc: Vec<f64>,
    /// Best and median feasible value per generation (f64::MAX when none).
    pub(super) best_history: VecDeque<f64>,
    pub(super) median_history: VecDeque<f64>,
    /// Whether each of the recent generations had flat fitness.
    pub(super) flat_history: VecDeque<bool>,
    /// Best feasible value of this run, and where (in the cube).
    pub(super) best: Option<f64>,
    pub(super) best_x: Option<Vec<f64>>,
    /// Resumed to refine the best solution with the rest of the budget:
    /// stops only at full precision.
    pub(super) polishing: bool,
    pub(super) current: Generation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Bipop {
    /// Evaluations spent by each regime (the first run counts for neither).
    pub(super) large_evals: u64,
    pub(super) small_evals: u64,
    /// Evaluations of the latest large (or the first) run: sizes a small
    /// run's budget.
    pub(super) last_large_evals: u64,
    /// Population of the latest large run = default * 2^doublings.
    pub(super) doublings: u32,
    /// The regime of the last run, if that run improved on all before it.
    pub(super) last_improved: Option<Regime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) rng: Rng,
    pub(super) next_ticket: u64,
    pub(super) default_lambda: usize,
    pub(super) sigma0: f64,
    pub(super) restarts: Restarts,
    pub(super) max_restarts: Option<u32>,
    pub(super) restarts_done: u32,
    pub(super) finished: bool,
    /// Best foreign point told before the first ask: the first run's mean.
    pub(super) foreign: Option<(Vec<f64>, Told)>,
    pub(super) bipop: Bipop,
    /// Best feasible value of the finished runs, and where.
    pub(super) incumbent: Option<f64>,
    pub(super) incumbent_x: Option<Vec<f64>>,
    /// The run that found `incumbent`, when only the relative tolerance
    /// stopped it: resumed to full precision ("polished") when a later run
    /// ends at the same point, when a restart could not use the rest of a
    /// known budget, or in the last share of that budget.
    pub(super) paused: Option<Run>,
    /// Evaluations used (asked members of finished generations).
    pub(super) spent: u64,
    pub(super) run: Option<Run>,
}

impl State {
    /// BIPOP's choice for the next run: stay with a regime while its runs
    /// keep improving on the best so far; otherwise the small regime runs
    /// while it has used less than its share of the large one's evaluations.
    pub(super) fn next_is_small(&self) -> bool {
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
