//! `gradient`: multi-start local search for smooth objectives with cheap
//! evaluations: L-BFGS (argmin, More-Thuente line search) on finite-difference
//! or evaluator-provided gradients, or SPSA when the objective is noisy.
//!
//! **Ask/tell over a pull-style solver.** argmin asks for costs and gradients
//! synchronously; this optimizer is told values later. So every `ask`
//! *replays* the current start from its first point against a cache of the
//! values told so far (exact bits of the point → value). argmin is
//! deterministic, so the replay retraces the same path until it needs a
//! point that is not in the cache; it then aborts and that point is asked,
//! together with the finite-difference stencil of its gradient (the line
//! search always wants both): one ask gives a batch of `d + 1` (forward) or
//! `2d` (central) points. Values are frozen when told (penalties for failed
//! and infeasible points too), so every replay sees the same numbers, and a
//! snapshot is the cache plus a little bookkeeping. The cache stores a
//! stencil point as its line-search point plus one changed coordinate, so a
//! start's state grows by O(d) numbers per gradient, not O(d²).
//!
//! **Bounds.** argmin's L-BFGS is unconstrained: it searches `z ∈ R^d`, and
//! each coordinate maps into the cube through a smooth periodic transform
//! (`super::bounds`, pycma's `BoundTransform`, shared with `cmaes`): the identity on
//! `[a, 1 - a]`, a quadratic in the margins that meets the face
//! with zero slope, mirrored beyond. The objective stays C¹ in `z`, a
//! minimum on a face is a smooth minimum in `z`, and any `z` a line search
//! extrapolates to decodes into the cube. Gradients are taken in the cube
//! (where evaluators give them) and mapped by the chain rule. Costs are
//! scaled per start so that the first step moves a tenth of the cube's side
//! (L-BFGS is scale-invariant after that step).
//!
//! **Discrete coordinates** are evaluated at their bin centres; their
//! derivative is the slope towards the better of the two neighbouring
//! levels (differences one level wide), and zero at a level better than
//! both, so they move by whole levels and settle on a best level.
//!
//! **Evaluator gradients** ([`Observed::gradient`]) replace the finite
//! differences of continuous coordinates: once the evaluator has shown that
//! it provides them, a line-search point is asked alone (plus the level
//! neighbours of discrete coordinates).
//!
//! **Starts.** The first start is the best foreign point told before the
//! first ask (the baseline), else the first point of a scrambled Sobol
//! design. When a start ends, the next one begins at the best point seen if
//! no start has begun there and no converged run ended there; otherwise at
//! the best design point evaluated while a start waited on pending results,
//! else at the next design point. A start ends when argmin terminates
//! (gradient or cost tolerance, `max_iters`, a failed line search) or when
//! its cache reaches a size bound; a start that stopped short of converging
//! and improved the best point is thus resumed from there with fresh
//! memory. Extra asks while every point a start needs is pending are
//! answered with design points.
//!
//! **SPSA** (Spall, "Implementation of the simultaneous perturbation
//! algorithm", 1998): each iteration evaluates `pairs` symmetric random
//! perturbations `θ ± c_k Δ` (at least one level for discrete coordinates),
//! averages their gradient estimates and steps `θ -= a_k ĝ` with Spall's
//! gains `a_k = a / (k + 1 + A)^0.602`, `c_k = c / (k + 1)^0.101`,
//! `A = max_iters / 10`; `a` is calibrated on the first estimate so that the
//! first step is `step` long, and one step moves a coordinate by at most a
//! fifth of the cube's side.

mod config;
mod lbfgs;
mod spsa;
mod state;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::HashMap;

use super::bounds::from_unit;
use super::rng::Rng;
use super::{Candidate, Dim, Observed, Optimizer, Pending, Problem, Settled, Snapshot, StateCodec, Tickets};
use crate::cube::sobol_point;
use crate::error::Result;
use config::Settings;
pub use config::{Differences, GradientConfig, Method};
use lbfgs::{Memo, Values};
use state::{Asked, Best, Entry, Known, Role, Run, Start, State, Walk, key};

/// The registry name and state format of `gradient`.
pub(crate) const CODEC: StateCodec = StateCodec::new("gradient", 1);
/// RNG streams: the design's scramble seed and SPSA's perturbations.
const STREAM_DESIGN: u64 = 0x06AD_1E47;
const STREAM_SPSA: u64 = 0x06AD_1E48;
/// Length of a start's first L-BFGS step in `z` (cube units).
const FIRST_STEP: f64 = 0.1;
/// Gradient tolerance of L-BFGS on the scaled problem: a run has converged
/// once its gradient is 1e-9 of the first one.
const GRAD_TOL: f64 = 1e-10;
/// Costs are clamped to ±BIG so that differences and their squares stay finite.
const BIG: f64 = 1e50;
/// A start's cache holds at most about this many numbers (it is in every
/// snapshot); a start that fills it ends and the search restarts.
const CACHE_NUMBERS: usize = 50_000;
/// Design points evaluated while a start waited, kept as candidate starts.
const SCOUTS_KEPT: usize = 64;
/// SPSA moves one coordinate by at most this much per step (Spall's "blocking").
const MAX_MOVE: f64 = 0.2;

/// Multi-start L-BFGS / SPSA over the unit cube (see the module docs).
pub struct Gradient {
    dims: Vec<Dim>,
    settings: Settings,
    state: State,
    memo: RefCell<Memo>,
}

impl Gradient {
    /// Check the options (every bad one is reported, at `optimizer.<option>`);
    /// a space without parameters is an error too.
    pub fn new(problem: &Problem, config: GradientConfig) -> Result<Self> {
        let d = problem.dim();
        if d == 0 {
            return Err(CODEC.error("the space has no parameters to search"));
        }
        let settings = Settings::new(problem, &config)?;
        Ok(Gradient {
            dims: problem.dims.clone(),
            settings,
            state: State {
                rng: Rng::new(problem.seed, STREAM_SPSA),
                next_ticket: Tickets::default(),
                next_design: 0,
                next_run: 0,
                starts_done: 0,
                finished: false,
                run: None,
                pending: Pending::default(),
                best: None,
                scouts: Vec::new(),
                worst_feasible: None,
                worst_cost: None,
                evaluator_gradients: false,
            },
            memo: RefCell::new(Memo::default()),
        })
    }

    /// Starts begun so far (including the current one).
    pub fn starts(&self) -> u32 {
        self.state.next_run
    }

    fn snap(&self, mut x: Vec<f64>) -> Vec<f64> {
        for (v, dim) in x.iter_mut().zip(&self.dims) {
            *v = dim.snap(*v);
        }
        x
    }

    fn design_point(&mut self) -> Vec<f64> {
        let x = sobol_point(self.state.next_design, self.dims.len(), self.settings.design_seed);
        self.state.next_design += 1;
        self.snap(x)
    }

    fn candidate(&mut self, x: Vec<f64>, role: Role) -> Candidate {
        self.state.pending.hand_out(&mut self.state.next_ticket, |ticket| Asked { ticket, x, role })
    }

    /// Design points for asks that nothing else can answer.
    fn scouts(&mut self, n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|_| {
                let x = self.design_point();
                self.candidate(x, Role::Scout)
            })
            .collect()
    }

    /// The frozen cost of a told result; updates the worst values seen.
    fn cost_of(&mut self, o: &Observed) -> f64 {
        let cost = match o.value {
            Some(v) if o.violation <= 0.0 => {
                self.state.worst_feasible = Some(self.state.worst_feasible.map_or(v, |w| w.max(v)));
                v
            }
            Some(v) => o.penalized(self.state.worst_feasible.unwrap_or(v)),
            None => {
                let base = self.state.worst_cost.unwrap_or(0.0);
                return (base + base.abs().max(1.0)).clamp(-BIG, BIG);
            }
        }
        .clamp(-BIG, BIG);
        self.state.worst_cost = Some(self.state.worst_cost.map_or(cost, |w| w.max(cost)));
        cost
    }

    fn known_of(&mut self, o: &Observed) -> Known {
        let cost = self.cost_of(o);
        let gradient = o.gradient.clone().filter(|g| g.len() == self.dims.len() && o.is_feasible());
        Known { cost, gradient, failed: o.value.is_none() }
    }

    /// End the current run (if any) and begin the next one, unless the
    /// configured number of starts is done.
    fn next_run(&mut self, converged: bool) {
        let old = self.state.run.take();
        if let Some(run) = &old {
            self.state.starts_done += 1;
            if let Some(best) = &mut self.state.best
                && converged
                && best.found_in == Some(run.id())
            {
                best.used = true;
            }
        }
        if self.settings.max_starts.is_some_and(|m| self.state.starts_done >= m) {
            self.state.finished = true;
            return;
        }
        let mut known: Vec<Entry> = match &old {
            Some(Run::Lbfgs(s)) => s.cache.iter().map(|c| Entry { x: s.point(c), known: c.known.clone() }).collect(),
            _ => Vec::new(),
        };
        let x0 = match &mut self.state.best {
            Some(best) if !best.used => {
                best.used = true;
                known.push(best.entry.clone());
                best.entry.x.clone()
            }
            _ if !self.state.scouts.is_empty() => {
                let e = self.state.scouts.remove(0);
                let x = e.x.clone();
                known.push(e);
                x
            }
            _ => self.design_point(),
        };
        let mut x0 = x0;
        super::clamp_unit(&mut x0);
        let x0 = self.snap(x0);
        let id = self.state.next_run;
        self.state.next_run += 1;
        self.state.run = Some(match self.settings.method {
            Method::Lbfgs => {
                // Carry over what is known at the new start point and its stencil.
                let mut map: HashMap<Vec<u64>, &Known> = HashMap::new();
                for e in &known {
                    map.entry(key(&e.x)).or_insert(&e.known);
                }
                let lookup = |k: &[u64]| map.get(k).copied();
                let values = Values {
                    dims: &self.dims,
                    fd: self.settings.fd,
                    known: &lookup,
                    grads: None,
                    expect_gradients: false,
                };
                let z0 = x0.iter().map(|&v| from_unit(v)).collect();
                let mut start = Start { id, x0: x0.clone(), z0, points: vec![x0.clone()], cache: Vec::new() };
                if let Some(k) = values.get(&x0) {
                    start.insert(&x0, None, k.clone());
                }
                for (i, p) in values.stencil(&x0, true) {
                    if let Some(k) = values.get(&p) {
                        start.insert(&p, Some((i, x0[i])), k.clone());
                    }
                }
                Run::Lbfgs(start)
            }
            Method::Spsa => {
                let mut walk = Walk { id, theta: x0, k: 0, gain: None, pairs: Vec::new() };
                walk.pairs = self.perturbations(&walk);
                Run::Spsa(walk)
            }
        });
    }

    fn note_best(&mut self, told: Observed, entry: Entry, found_in: Option<u32>) {
        let better = match &self.state.best {
            None => true,
            Some(b) => told.cmp_quality(&b.told).is_lt(),
        };
        if better {
            self.state.best = Some(Best { told, entry, found_in, used: false });
        }
    }

    fn keep_scout(&mut self, entry: Entry) {
        let at = self.state.scouts.partition_point(|e| e.known.cost <= entry.known.cost);
        self.state.scouts.insert(at, entry);
        self.state.scouts.truncate(SCOUTS_KEPT);
    }

    /// Whether the evaluator provides gradients: as its latest answer did.
    fn note_gradient(&mut self, told: &Observed) {
        if told.value.is_some() {
            self.state.evaluator_gradients = told.gradient.as_ref().is_some_and(|g| g.len() == self.dims.len());
        }
    }
}

impl Optimizer for Gradient {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        // Each round answers, or ends a run or an SPSA iteration; a new run
        // needs a value within a few rounds, so the bound only guards
        // against a defect.
        for _ in 0..1000 {
            if self.state.finished {
                return Ok(Vec::new());
            }
            if self.state.run.is_none() {
                self.next_run(false);
                continue;
            }
            let answer = match self.settings.method {
                Method::Lbfgs => self.ask_lbfgs(n),
                Method::Spsa => self.ask_spsa(n),
            };
            if let Some(out) = answer {
                return Ok(out);
            }
        }
        Err(CODEC.error("found no point to ask in 1000 rounds (a defect; please report it)"))
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for o in results {
            let (pending, told) = match self.state.pending.settle(o, self.dims.len()) {
                Settled::Own(pending, told) => (pending, told),
                Settled::Foreign(told) => {
                    // A candidate start.
                    let known = self.known_of(&told);
                    self.note_gradient(&told);
                    let x = told.x.clone();
                    self.note_best(told, Entry { x, known }, None);
                    continue;
                }
                Settled::Unusable => continue,
            };
            let known = self.known_of(&told);
            self.note_gradient(&told);
            let found_in = match (pending.role, self.state.run.as_mut()) {
                (Role::Start { id, of }, Some(Run::Lbfgs(start))) if start.id == id => {
                    start.insert(&pending.x, of, known.clone());
                    Some(id)
                }
                (Role::Walk { id, k, pair, side }, Some(Run::Spsa(walk))) if walk.id == id && walk.k == k => {
                    if let Some(p) = walk.pairs.get_mut(pair) {
                        p.cost[side] = Some(known.cost);
                    }
                    Some(id)
                }
                (Role::Scout, _) => {
                    self.keep_scout(Entry { x: pending.x.clone(), known: known.clone() });
                    None
                }
                // A late result of a run that has ended.
                (Role::Start { id, .. } | Role::Walk { id, .. }, _) => Some(id),
            };
            self.note_best(told, Entry { x: pending.x, known }, found_in);
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        CODEC.snapshot(&self.state, self.dims.len())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = CODEC.restore(snapshot, self.dims.len())?;
        self.memo = RefCell::new(Memo::default());
        Ok(())
    }
}
