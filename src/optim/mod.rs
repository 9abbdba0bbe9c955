//! Optimizers: pure decision-makers over the unit cube `[0,1]^d`.
//!
//! An optimizer never sees names, strings, files or sockets. It proposes
//! points ([`Candidate`]) and is told scores ([`Observed`], lower is better,
//! already sign-normalized). Each algorithm lives in one file (or folder);
//! [`registry`] maps the name used in a spec to its constructor. What they
//! all share is written once: the ticket book and the sanitizing of told
//! results (`tickets.rs`), and the snapshot codec ([`StateCodec`]).

#![warn(missing_docs)]

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod annealing;
pub mod auto;
pub mod bayes;
pub(crate) mod bounds;
pub mod cmaes;
mod codec;
pub mod genetic;
pub mod gradient;
pub mod nsga;
pub mod parego;
pub mod random;
pub mod registry;
pub use crate::rng;
pub mod sobol;
pub mod swarm;
mod tickets;
pub(crate) mod variation;

pub(crate) use crate::cube::reflect;
pub use crate::cube::{Dim, clamp_unit};
pub use codec::StateCodec;
pub use registry::{OptimizerOptions, OptimizerSpec, build, names};
pub(crate) use tickets::{Pending, Settled, Ticketed, Tickets, foreign, sanitized, ticketed};

/// The problem an optimizer is built for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    /// The space's coordinates, in order: how each maps onto `[0,1]`.
    pub dims: Vec<Dim>,
    /// Seeds every random choice: the same seed gives the same candidates.
    pub seed: u64,
    /// Total evaluations planned, when known (used to size populations and schedules).
    pub budget: Option<u64>,
    /// How many evaluations run at once (a hint for batch sizes).
    pub parallelism: usize,
    /// How many objectives a result carries: 1, or two and more in a Pareto study (results
    /// then carry [`Observed::objectives`]); only multi-objective optimizers accept more than 1.
    pub objectives: usize,
}

impl Problem {
    /// A problem with no known budget and one evaluation at a time.
    pub fn new(dims: Vec<Dim>, seed: u64) -> Self {
        Problem { dims, seed, budget: None, parallelism: 1, objectives: 1 }
    }
    /// The number of coordinates.
    pub fn dim(&self) -> usize {
        self.dims.len()
    }
}

/// A point proposed by an optimizer, with the ticket it will be told back under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Tells the result back ([`Observed::ticket`]); unique per optimizer.
    pub ticket: u64,
    /// The point, every coordinate in `[0,1]`.
    pub x: Vec<f64>,
}

/// The result of evaluating a point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The ticket from [`Candidate`], or `None` for a point the optimizer did
    /// not propose (the baseline, a replayed or user-enqueued trial).
    pub ticket: Option<u64>,
    /// The point evaluated (unit-cube coordinates).
    pub x: Vec<f64>,
    /// The scalarized score (lower is better); `None` when the evaluation failed.
    pub value: Option<f64>,
    /// Total constraint violation; 0 when feasible. Infeasible points rank
    /// below every feasible one, then by violation.
    pub violation: f64,
    /// d value / dx in unit-cube coordinates (same sign and scale as
    /// `value`), when the evaluator provides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient: Option<Vec<f64>>,
    /// Signed slack of each constraint (positive = violated by that much,
    /// negative = the margin), when known; empty otherwise. Lets a model
    /// learn where the feasible region's boundary runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slacks: Vec<f64>,
    /// In a Pareto study, every objective's value (sign-normalized, lower is better, in the
    /// spec's order; `value` is then their sum); empty otherwise. Multi-objective optimizers
    /// read this, and take `[value]` when it is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<f64>,
}

impl Observed {
    /// A feasible result with this value.
    pub fn ok(ticket: Option<u64>, x: Vec<f64>, value: f64) -> Self {
        Observed {
            ticket,
            x,
            value: Some(value),
            violation: 0.0,
            gradient: None,
            slacks: Vec::new(),
            objectives: Vec::new(),
        }
    }
    /// A failed evaluation (no value).
    pub fn failed(ticket: Option<u64>, x: Vec<f64>) -> Self {
        Observed { ticket, x, value: None, violation: 0.0, gradient: None, slacks: Vec::new(), objectives: Vec::new() }
    }
    /// The same result with the evaluator's gradient (unit-cube coordinates).
    pub fn with_gradient(mut self, gradient: Vec<f64>) -> Self {
        self.gradient = Some(gradient);
        self
    }
    /// A feasible result of a Pareto study: every objective's value (lower is better); the
    /// scalar `value` is their sum.
    pub fn vector(ticket: Option<u64>, x: Vec<f64>, objectives: Vec<f64>) -> Self {
        Observed { value: Some(objectives.iter().sum()), objectives, ..Observed::failed(ticket, x) }
    }
    /// The objective vector: [`Observed::objectives`], or `[value]` when that is empty;
    /// `None` for a failed evaluation.
    pub fn objective_vector(&self) -> Option<std::borrow::Cow<'_, [f64]>> {
        let v = self.value?;
        Some(if self.objectives.is_empty() { vec![v].into() } else { self.objectives.as_slice().into() })
    }
    /// Whether it has a value and violates no constraint.
    pub fn is_feasible(&self) -> bool {
        self.value.is_some() && self.violation <= 0.0
    }
    /// Total order used by every optimizer: feasible by value, then infeasible
    /// by violation (then value), then failed.
    pub fn cmp_quality(&self, other: &Observed) -> Ordering {
        rank_key(self).partial_cmp(&rank_key(other)).unwrap_or(Ordering::Equal)
    }
    /// A single number that respects [`Observed::cmp_quality`] given the
    /// worst feasible value seen so far; for algorithms that need magnitudes
    /// (annealing, swarm).
    pub fn penalized(&self, worst_feasible: f64) -> f64 {
        match self.value {
            None => f64::INFINITY,
            Some(v) if self.violation <= 0.0 => v,
            Some(v) => worst_feasible.max(v) + worst_feasible.abs().max(1.0) * (1.0 + self.violation),
        }
    }
}

fn rank_key(o: &Observed) -> (u8, f64, f64) {
    match o.value {
        None => (2, 0.0, 0.0),
        Some(v) if o.violation > 0.0 => (1, o.violation, v),
        Some(v) => (0, v, 0.0),
    }
}

/// Serialized optimizer state: enough to continue exactly where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The registry name of the optimizer that took it.
    pub optimizer: String,
    /// The version of that optimizer's state format.
    pub version: u32,
    /// The optimizer's state (with the dimension it was taken for), read
    /// only through the optimizer's [`StateCodec`].
    pub(crate) state: serde_json::Value,
}

/// An ask/tell optimizer over the unit cube.
///
/// Contract:
/// - `ask(n)` returns between 1 and `n` candidates, every coordinate in
///   `[0,1]`; an empty answer means the optimizer has finished (converged or
///   exhausted its own limits) and has nothing pending.
/// - every candidate is told back exactly once, in any order and in any
///   grouping; a failed evaluation is told with `value: None`.
/// - points it did not propose (`ticket: None`) may be told at any time; the
///   optimizer uses them when its algorithm can (e.g. the baseline).
/// - the same [`Problem`] (incl. seed) and the same sequence of calls give the
///   same candidates; `snapshot` then `restore` on a fresh instance continues
///   the identical trajectory.
///
/// Build one from the registry, ask, tell, and continue from a snapshot:
///
/// ```
/// use knobs::optim::{self, Dim, Observed, Optimizer, OptimizerSpec, Problem};
///
/// let problem = Problem::new(vec![Dim::Continuous, Dim::Integer { levels: 5 }], 7);
/// let mut opt = optim::build(&OptimizerSpec::named("cmaes"), &problem)?;
/// let asked = opt.ask(4)?;
/// assert!(!asked.is_empty() && asked.len() <= 4);
/// let told: Vec<Observed> =
///     asked.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), (c.x[0] - 0.3).powi(2))).collect();
/// opt.tell(&told)?;
///
/// // What a study stores, and a fresh instance restored from it.
/// let snapshot = opt.snapshot()?;
/// let mut resumed = optim::build(&OptimizerSpec::named("cmaes"), &problem)?;
/// resumed.restore(&snapshot)?;
/// assert_eq!(resumed.ask(2)?, opt.ask(2)?);
///
/// // A snapshot restores only into a space of the same dimension.
/// let wider = Problem::new(vec![Dim::Continuous; 3], 7);
/// assert!(optim::build(&OptimizerSpec::named("cmaes"), &wider)?.restore(&snapshot).is_err());
/// # Ok::<(), knobs::error::Error>(())
/// ```
pub trait Optimizer: Send {
    /// The registry name.
    fn name(&self) -> &'static str;
    /// Between 1 and `n` new candidates; none once the optimizer has
    /// finished and nothing is pending.
    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>>;
    /// Results of its own candidates (by ticket) and of points it did not
    /// propose (`ticket: None`), in any order and grouping.
    fn tell(&mut self, results: &[Observed]) -> Result<()>;
    /// The state needed to continue exactly here (see [`StateCodec`]).
    fn snapshot(&self) -> Result<Snapshot>;
    /// Continue from a snapshot of the same optimizer, format version and
    /// dimension; anything else is an error and leaves the optimizer as it was.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<()>;
}

/// Collects every bad option of an optimizer's config, so that a spec
/// reports them all at once, each at its path `optimizer.<option>`.
#[derive(Default)]
pub(crate) struct OptionCheck(Vec<crate::error::Problem>);

impl OptionCheck {
    pub(crate) fn bad(&mut self, option: &str, message: impl Into<String>) {
        self.0.push(crate::error::Problem::new(format!("optimizer.{option}"), message));
    }

    pub(crate) fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(crate::error::Problems { source: "spec".into(), items: self.0 }))
        }
    }
}
