//! The serialized state of `gradient`: the runs (an L-BFGS start's cache
//! of frozen values, an SPSA walk), the pending candidates and the best
//! point (the snapshot format; renaming a field needs a new format version).

use serde::{Deserialize, Serialize};

use crate::optim::rng::Rng;
use crate::optim::{Observed, Pending, Tickets, ticketed};

/// Exact bits of a point: the cache key.
pub(super) fn key(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// A point's value as the local search sees it, frozen when told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Known {
    /// The value, or the penalty of an infeasible or failed evaluation.
    pub(super) cost: f64,
    /// d cost / dx from the evaluator (feasible points only).
    pub(super) gradient: Option<Vec<f64>>,
    /// The evaluation failed: its gradient is taken as zero, unmeasured.
    pub(super) failed: bool,
}

/// A point with what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) x: Vec<f64>,
    pub(super) known: Known,
}

/// A value in a start's cache: at `points[at]`, with coordinate `shift.0`
/// set to `shift.1` for a stencil point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Cached {
    pub(super) at: usize,
    pub(super) shift: Option<(usize, f64)>,
    pub(super) known: Known,
}

/// What an asked point is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Role {
    /// A value the L-BFGS start `id` needs (`of` as in [`Needed`]).
    Start { id: u32, of: Option<(usize, f64)> },
    /// A design point handed out while the search waited.
    Scout,
    /// Side `side` (0: plus, 1: minus) of pair `pair` of SPSA walk `id`'s iteration `k`.
    Walk { id: u32, k: u64, pair: usize, side: usize },
}

/// A pending candidate and what it is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Asked {
    pub(super) ticket: u64,
    pub(super) x: Vec<f64>,
    pub(super) role: Role,
}

ticketed!(Asked);

/// One L-BFGS start: argmin runs from `z0` (which decodes to `x0` exactly).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Start {
    pub(super) id: u32,
    pub(super) x0: Vec<f64>,
    pub(super) z0: Vec<f64>,
    /// Line-search points (some only as the base of stencil points).
    pub(super) points: Vec<Vec<f64>>,
    pub(super) cache: Vec<Cached>,
}

impl Start {
    /// The point of a cached value.
    pub(super) fn point(&self, c: &Cached) -> Vec<f64> {
        let mut x = self.points[c.at].clone();
        if let Some((i, v)) = c.shift {
            x[i] = v;
        }
        x
    }

    pub(super) fn insert(&mut self, x: &[f64], of: Option<(usize, f64)>, known: Known) {
        let mut base = x.to_vec();
        let shift = of.map(|(i, v)| {
            base[i] = v;
            (i, x[i])
        });
        let at = match self.points.iter().position(|p| key(p) == key(&base)) {
            Some(at) => at,
            None => {
                self.points.push(base);
                self.points.len() - 1
            }
        };
        let same =
            |c: &Cached| c.at == at && c.shift.map(|(i, v)| (i, v.to_bits())) == shift.map(|(i, v)| (i, v.to_bits()));
        if !self.cache.iter().any(same) {
            self.cache.push(Cached { at, shift, known });
        }
    }

    /// Numbers this start's state holds (bounded by [`CACHE_NUMBERS`]).
    pub(super) fn size(&self) -> usize {
        let d = self.x0.len();
        self.points.len() * d
            + self.cache.iter().map(|c| 5 + c.known.gradient.as_ref().map_or(0, Vec::len)).sum::<usize>()
    }
}

/// One SPSA perturbation pair of the current iteration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pair {
    pub(super) points: [Vec<f64>; 2],
    pub(super) cost: [Option<f64>; 2],
    pub(super) asked: [bool; 2],
}

/// One SPSA run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Walk {
    pub(super) id: u32,
    pub(super) theta: Vec<f64>,
    pub(super) k: u64,
    /// Spall's `a`, calibrated on the first non-zero gradient estimate.
    pub(super) gain: Option<f64>,
    pub(super) pairs: Vec<Pair>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Run {
    Lbfgs(Start),
    Spsa(Walk),
}

impl Run {
    pub(super) fn id(&self) -> u32 {
        match self {
            Run::Lbfgs(s) => s.id,
            Run::Spsa(w) => w.id,
        }
    }
}

/// The best point told so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Best {
    pub(super) told: Observed,
    pub(super) entry: Entry,
    /// The run that found it (`None`: foreign or design point).
    pub(super) found_in: Option<u32>,
    /// A start has begun here, or a converged run ended here.
    pub(super) used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) rng: Rng,
    pub(super) next_ticket: Tickets,
    /// Next index into the Sobol design.
    pub(super) next_design: u64,
    pub(super) next_run: u32,
    pub(super) starts_done: u32,
    pub(super) finished: bool,
    pub(super) run: Option<Run>,
    pub(super) pending: Pending<Asked>,
    pub(super) best: Option<Best>,
    /// Design points evaluated while a start waited (best first).
    pub(super) scouts: Vec<Entry>,
    /// Largest feasible value, and largest finite cost, told so far (penalties).
    pub(super) worst_feasible: Option<f64>,
    pub(super) worst_cost: Option<f64>,
    /// The latest evaluation came with a gradient.
    pub(super) evaluator_gradients: bool,
}
