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

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use argmin::core::{CostFunction, Executor, Gradient as GradientFn, State as _, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use serde::{Deserialize, Serialize};

use super::bounds::{from_unit, to_unit};
use super::rng::Rng;
use super::{
    Candidate, Dim, Observed, Optimizer, OptionCheck, Pending, Problem, Settled, Snapshot, StateCodec, Ticketed,
    Tickets, reflect,
};
use crate::cube::sobol_point;
use crate::error::Result;

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
struct Settings {
    method: Method,
    fd: Fd,
    memory: usize,
    max_iters: u64,
    max_starts: Option<u32>,
    perturbation: f64,
    step: f64,
    pairs: usize,
    design_seed: u64,
}

/// Finite-difference scheme of continuous coordinates.
#[derive(Debug, Clone, Copy)]
struct Fd {
    central: bool,
    step: f64,
}

/// A point's value as the local search sees it, frozen when told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Known {
    /// The value, or the penalty of an infeasible or failed evaluation.
    cost: f64,
    /// d cost / dx from the evaluator (feasible points only).
    gradient: Option<Vec<f64>>,
    /// The evaluation failed: its gradient is taken as zero, unmeasured.
    failed: bool,
}

/// A point with what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    x: Vec<f64>,
    known: Known,
}

/// A value in a start's cache: at `points[at]`, with coordinate `shift.0`
/// set to `shift.1` for a stencil point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cached {
    at: usize,
    shift: Option<(usize, f64)>,
    known: Known,
}

/// A point a replay needs; for a stencil point, the coordinate it differs
/// in from its line-search point and that point's value of it.
#[derive(Debug, Clone, PartialEq)]
struct Needed {
    x: Vec<f64>,
    of: Option<(usize, f64)>,
}

/// What an asked point is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Role {
    /// A value the L-BFGS start `id` needs (`of` as in [`Needed`]).
    Start { id: u32, of: Option<(usize, f64)> },
    /// A design point handed out while the search waited.
    Scout,
    /// Side `side` (0: plus, 1: minus) of pair `pair` of SPSA walk `id`'s iteration `k`.
    Walk { id: u32, k: u64, pair: usize, side: usize },
}

/// A pending candidate and what it is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Asked {
    ticket: u64,
    x: Vec<f64>,
    role: Role,
}

impl Ticketed for Asked {
    fn ticket(&self) -> u64 {
        self.ticket
    }
    fn x(&self) -> &[f64] {
        &self.x
    }
}

/// One L-BFGS start: argmin runs from `z0` (which decodes to `x0` exactly).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Start {
    id: u32,
    x0: Vec<f64>,
    z0: Vec<f64>,
    /// Line-search points (some only as the base of stencil points).
    points: Vec<Vec<f64>>,
    cache: Vec<Cached>,
}

impl Start {
    /// The point of a cached value.
    fn point(&self, c: &Cached) -> Vec<f64> {
        let mut x = self.points[c.at].clone();
        if let Some((i, v)) = c.shift {
            x[i] = v;
        }
        x
    }

    fn insert(&mut self, x: &[f64], of: Option<(usize, f64)>, known: Known) {
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
    fn size(&self) -> usize {
        let d = self.x0.len();
        self.points.len() * d
            + self.cache.iter().map(|c| 5 + c.known.gradient.as_ref().map_or(0, Vec::len)).sum::<usize>()
    }
}

/// One SPSA perturbation pair of the current iteration.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pair {
    points: [Vec<f64>; 2],
    cost: [Option<f64>; 2],
    asked: [bool; 2],
}

/// One SPSA run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Walk {
    id: u32,
    theta: Vec<f64>,
    k: u64,
    /// Spall's `a`, calibrated on the first non-zero gradient estimate.
    gain: Option<f64>,
    pairs: Vec<Pair>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Run {
    Lbfgs(Start),
    Spsa(Walk),
}

impl Run {
    fn id(&self) -> u32 {
        match self {
            Run::Lbfgs(s) => s.id,
            Run::Spsa(w) => w.id,
        }
    }
}

/// The best point told so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Best {
    told: Observed,
    entry: Entry,
    /// The run that found it (`None`: foreign or design point).
    found_in: Option<u32>,
    /// A start has begun here, or a converged run ended here.
    used: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: Tickets,
    /// Next index into the Sobol design.
    next_design: u64,
    next_run: u32,
    starts_done: u32,
    finished: bool,
    run: Option<Run>,
    pending: Pending<Asked>,
    best: Option<Best>,
    /// Design points evaluated while a start waited (best first).
    scouts: Vec<Entry>,
    /// Largest feasible value, and largest finite cost, told so far (penalties).
    worst_feasible: Option<f64>,
    worst_cost: Option<f64>,
    /// The latest evaluation came with a gradient.
    evaluator_gradients: bool,
}

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
        let settings = Settings {
            method: config.method,
            fd: Fd { central, step: fd_step },
            memory: config.memory.unwrap_or(7),
            max_iters,
            max_starts: config.max_starts,
            perturbation: config.perturbation.unwrap_or(0.05),
            step: config.step.unwrap_or(0.05),
            pairs,
            design_seed: Rng::new(problem.seed, STREAM_DESIGN).below(usize::MAX) as u64,
        };
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

    // ---------------------------------------------------------------- L-BFGS

    /// Replay the current start against its cache: the points it needs next,
    /// or how it ended.
    fn replay(&self, start: &Start) -> Replayed {
        if start.size() >= CACHE_NUMBERS {
            return Replayed::Ended { converged: false };
        }
        let mut memo = self.memo.borrow_mut();
        if memo.start != Some(start.id) {
            *memo = Memo { start: Some(start.id), ..Memo::default() };
        }
        for i in memo.indexed..start.cache.len() {
            memo.index.entry(key(&start.point(&start.cache[i]))).or_insert(i);
        }
        memo.indexed = start.cache.len();
        let grads = RefCell::new(std::mem::take(&mut memo.grads));
        let known = |k: &[u64]| memo.index.get(k).map(|&i| &start.cache[i].known);
        let values = Values {
            dims: &self.dims,
            fd: self.settings.fd,
            known: &known,
            grads: Some(&grads),
            expect_gradients: self.state.evaluator_gradients,
        };
        let replayed = self.run_argmin(start, values);
        memo.grads = grads.into_inner();
        replayed
    }

    /// Run argmin over the values a replay knows.
    fn run_argmin<'a>(&self, start: &'a Start, values: Values<'a>) -> Replayed {
        // The gradient at the start point sets the cost scale of this start.
        let g0 = match values.cost(&start.x0).and_then(|_| values.gradient(&start.x0)) {
            Ok(g) => g,
            Err(need) => return Replayed::Need(need),
        };
        let norm = g0.iter().zip(&start.z0).map(|(g, &z)| (g * to_unit(z).1).powi(2)).sum::<f64>().sqrt();
        // Bounded so that scaled costs (at most BIG) and their squares stay finite.
        let scale = if norm > 0.0 && norm.is_finite() { (FIRST_STEP / norm).min(1e12) } else { 1.0 };
        let local = Local {
            values,
            x0: &start.x0,
            z0: &start.z0,
            scale,
            need: RefCell::new(None),
            calls: Cell::new(0),
            max_calls: 20 * (start.cache.len() + 1) + 1000,
        };
        let run = LBFGS::new(MoreThuenteLineSearch::new(), self.settings.memory)
            .with_tolerance_grad(GRAD_TOL)
            .and_then(|solver| {
                Executor::new(&local, solver)
                    .configure(|s| s.param(start.z0.clone()).max_iters(self.settings.max_iters))
                    .ctrlc(false)
                    .run()
            });
        if let Some(need) = local.need.take() {
            return Replayed::Need(need);
        }
        let reason = run.ok().and_then(|r| r.state().get_termination_reason().cloned());
        Replayed::Ended {
            converged: matches!(
                reason,
                Some(TerminationReason::SolverConverged | TerminationReason::TargetCostReached)
            ),
        }
    }

    fn ask_lbfgs(&mut self, n: usize) -> Option<Vec<Candidate>> {
        let Some(Run::Lbfgs(start)) = &self.state.run else { return None };
        match self.replay(start) {
            Replayed::Need(points) => {
                let id = start.id;
                let pending: HashSet<Vec<u64>> = self.state.pending.iter().map(|p| key(&p.x)).collect();
                let fresh: Vec<Needed> = points.into_iter().filter(|p| !pending.contains(&key(&p.x))).take(n).collect();
                if fresh.is_empty() {
                    return Some(self.scouts(n));
                }
                Some(fresh.into_iter().map(|p| self.candidate(p.x, Role::Start { id, of: p.of })).collect())
            }
            Replayed::Ended { converged } => {
                self.next_run(converged);
                None
            }
        }
    }

    // ------------------------------------------------------------------ SPSA

    /// The perturbation pairs of `walk`'s current iteration.
    fn perturbations(&mut self, walk: &Walk) -> Vec<Pair> {
        let ck = self.settings.perturbation / ((walk.k + 1) as f64).powf(0.101);
        (0..self.settings.pairs)
            .map(|_| {
                let mut plus = walk.theta.clone();
                let mut minus = walk.theta.clone();
                for (i, dim) in self.dims.iter().enumerate() {
                    let sign = if self.state.rng.chance(0.5) { 1.0 } else { -1.0 };
                    let c = match dim.levels() {
                        Some(n) if n <= 1 => 0.0,
                        Some(n) => ck.max(1.0 / n as f64),
                        None => ck,
                    };
                    plus[i] = dim.snap(reflect(walk.theta[i] + sign * c));
                    minus[i] = dim.snap(reflect(walk.theta[i] - sign * c));
                }
                Pair { points: [plus, minus], cost: [None, None], asked: [false, false] }
            })
            .collect()
    }

    /// Step `theta` along the averaged gradient estimate of the told pairs.
    fn spsa_step(&self, walk: &mut Walk) {
        let d = self.dims.len();
        let mut g = vec![0.0; d];
        for pair in &walk.pairs {
            let (Some(plus), Some(minus)) = (pair.cost[0], pair.cost[1]) else { continue };
            for (i, gi) in g.iter_mut().enumerate() {
                let dx = pair.points[0][i] - pair.points[1][i];
                if dx != 0.0 {
                    *gi += (plus - minus) / dx / walk.pairs.len() as f64;
                }
            }
        }
        let big_a = 0.1 * self.settings.max_iters as f64;
        if walk.gain.is_none() {
            let mean = g.iter().map(|v| v.abs()).sum::<f64>() / d as f64;
            if mean > 0.0 && mean.is_finite() {
                walk.gain = Some(self.settings.step * (big_a + 1.0).powf(0.602) / mean);
            }
        }
        if let Some(a) = walk.gain {
            let ak = a / (walk.k as f64 + 1.0 + big_a).powf(0.602);
            for (t, gi) in walk.theta.iter_mut().zip(&g) {
                let step = (ak * gi).clamp(-MAX_MOVE, MAX_MOVE);
                if step.is_finite() {
                    *t = (*t - step).clamp(0.0, 1.0);
                }
            }
        }
        walk.k += 1;
    }

    fn ask_spsa(&mut self, n: usize) -> Option<Vec<Candidate>> {
        let Some(Run::Spsa(mut walk)) = self.state.run.take() else { return None };
        if walk.pairs.iter().all(|p| p.cost.iter().all(Option::is_some)) {
            self.spsa_step(&mut walk);
            if walk.k >= self.settings.max_iters {
                self.state.run = Some(Run::Spsa(walk));
                self.next_run(false);
                return None;
            }
            walk.pairs = self.perturbations(&walk);
            self.state.run = Some(Run::Spsa(walk));
            return None;
        }
        let mut out = Vec::new();
        let (id, k) = (walk.id, walk.k);
        for (p, pair) in walk.pairs.iter_mut().enumerate() {
            for side in 0..2 {
                if out.len() < n && !pair.asked[side] {
                    pair.asked[side] = true;
                    out.push((pair.points[side].clone(), Role::Walk { id, k, pair: p, side }));
                }
            }
        }
        self.state.run = Some(Run::Spsa(walk));
        if out.is_empty() {
            return Some(self.scouts(n));
        }
        Some(out.into_iter().map(|(x, role)| self.candidate(x, role)).collect())
    }

    // ----------------------------------------------------------------- tell

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
}

/// What a replay found.
enum Replayed {
    /// Values the start needs next (the first one, then its stencil).
    Need(Vec<Needed>),
    /// argmin terminated; `converged` for a gradient or cost tolerance.
    Ended { converged: bool },
}

/// Exact bits of a point: the cache key.
fn key(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// The two coordinate values whose difference estimates the derivative of
/// coordinate `i` at `xi` (either may be `xi` itself): one level on each
/// side for discrete coordinates, the finite-difference step otherwise.
fn neighbours(dim: Dim, xi: f64, fd: Fd) -> (f64, f64) {
    match dim.levels() {
        Some(n) if n <= 1 => (xi, xi),
        Some(n) => {
            let nf = n as f64;
            let k = ((xi * nf).floor().max(0.0) as u64).min(n - 1);
            let centre = |k: u64| (k as f64 + 0.5) / nf;
            (if k > 0 { centre(k - 1) } else { xi }, if k + 1 < n { centre(k + 1) } else { xi })
        }
        None if fd.central => ((xi - fd.step).max(0.0), (xi + fd.step).min(1.0)),
        None if xi + fd.step <= 1.0 => (xi, xi + fd.step),
        None => (xi - fd.step, xi),
    }
}

/// Exact caches of pure functions of the current start's frozen values,
/// kept between asks so that a replay costs O(points · d), not O(values · d);
/// not part of the state (rebuilt after a restore).
#[derive(Debug, Default)]
struct Memo {
    start: Option<u32>,
    /// Cache entries indexed so far.
    indexed: usize,
    /// Exact point → index into the start's cache (the first value counts;
    /// a point is never asked twice).
    index: HashMap<Vec<u64>, usize>,
    /// Gradients computed so far, by exact point.
    grads: HashMap<Vec<u64>, Vec<f64>>,
}

/// The values a replay can use, by exact point.
struct Values<'a> {
    dims: &'a [Dim],
    fd: Fd,
    known: &'a dyn Fn(&[u64]) -> Option<&'a Known>,
    grads: Option<&'a RefCell<HashMap<Vec<u64>, Vec<f64>>>>,
    /// Ask line-search points without their continuous stencil.
    expect_gradients: bool,
}

impl<'a> Values<'a> {
    fn get(&self, x: &[f64]) -> Option<&'a Known> {
        (self.known)(&key(x))
    }

    /// The stencil points of `x` (coordinate, point), continuous coordinates
    /// only when `continuous`.
    fn stencil(&self, x: &[f64], continuous: bool) -> Vec<(usize, Vec<f64>)> {
        let mut out = Vec::new();
        for (i, &dim) in self.dims.iter().enumerate() {
            if dim == Dim::Continuous && !continuous {
                continue;
            }
            let (lo, hi) = neighbours(dim, x[i], self.fd);
            for v in [lo, hi] {
                if v != x[i] {
                    let mut p = x.to_vec();
                    p[i] = v;
                    out.push((i, p));
                }
            }
        }
        out
    }

    /// `x` and the stencil points its gradient will want, not known yet.
    fn missing_with(&self, x: &[f64]) -> Vec<Needed> {
        let mut out = vec![Needed { x: x.to_vec(), of: None }];
        for (i, p) in self.stencil(x, !self.expect_gradients) {
            if self.get(&p).is_none() {
                out.push(Needed { x: p, of: Some((i, x[i])) });
            }
        }
        out
    }

    fn cost(&self, x: &[f64]) -> std::result::Result<f64, Vec<Needed>> {
        self.get(x).map(|k| k.cost).ok_or_else(|| self.missing_with(x))
    }

    /// d cost / dx at `x`, or the points still needed to know it.
    fn gradient(&self, x: &[f64]) -> std::result::Result<Vec<f64>, Vec<Needed>> {
        let Some(grads) = self.grads else { return self.compute_gradient(x) };
        if let Some(g) = grads.borrow().get(&key(x)) {
            return Ok(g.clone());
        }
        let g = self.compute_gradient(x)?;
        grads.borrow_mut().insert(key(x), g.clone());
        Ok(g)
    }

    fn compute_gradient(&self, x: &[f64]) -> std::result::Result<Vec<f64>, Vec<Needed>> {
        let Some(e) = self.get(x) else { return Err(self.missing_with(x)) };
        let mut g = vec![0.0; x.len()];
        if e.failed {
            return Ok(g);
        }
        let mut missing = Vec::new();
        for (i, &dim) in self.dims.iter().enumerate() {
            if let (Dim::Continuous, Some(eg)) = (dim, &e.gradient) {
                g[i] = eg[i];
                continue;
            }
            let (lo, hi) = neighbours(dim, x[i], self.fd);
            if lo == hi {
                continue;
            }
            let mut at = |v: f64| {
                if v == x[i] {
                    return Some(e.cost);
                }
                let mut p = x.to_vec();
                p[i] = v;
                let c = self.get(&p).map(|k| k.cost);
                if c.is_none() {
                    missing.push(Needed { x: p, of: Some((i, x[i])) });
                }
                c
            };
            let (f_lo, f_hi) = (at(lo), at(hi));
            let (Some(f_lo), Some(f_hi)) = (f_lo, f_hi) else { continue };
            g[i] = if dim == Dim::Continuous {
                (f_hi - f_lo) / (hi - lo)
            } else {
                // Towards the better neighbouring level only: none at a level
                // that beats both (or sits on an edge and beats the other).
                let down = if f_lo < e.cost { (e.cost - f_lo) / (x[i] - lo) } else { 0.0 };
                let up = if f_hi < e.cost { (f_hi - e.cost) / (hi - x[i]) } else { 0.0 };
                if down >= -up { down } else { up }
            };
        }
        if missing.is_empty() { Ok(g) } else { Err(missing) }
    }
}

/// The problem argmin sees during a replay: `z` space, values from the
/// cache, an error (and `need`) at the first unknown value.
struct Local<'a> {
    values: Values<'a>,
    x0: &'a [f64],
    z0: &'a [f64],
    scale: f64,
    need: RefCell<Option<Vec<Needed>>>,
    calls: Cell<usize>,
    /// Guards against a line search cycling over known points forever.
    max_calls: usize,
}

impl Local<'_> {
    /// The cube point of `z` and dx/dz; a coordinate still at its start
    /// value decodes to the start point exactly.
    fn decode(&self, z: &[f64]) -> std::result::Result<(Vec<f64>, Vec<f64>), argmin::core::Error> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() > self.max_calls {
            return Err(argmin::core::Error::msg("replay exceeded its call bound"));
        }
        if z.len() != self.z0.len() || z.iter().any(|v| !v.is_finite()) {
            return Err(argmin::core::Error::msg("non-finite parameter"));
        }
        let mut x = Vec::with_capacity(z.len());
        let mut slope = Vec::with_capacity(z.len());
        for (i, (&zi, dim)) in z.iter().zip(self.values.dims).enumerate() {
            let (u, s) = to_unit(zi);
            x.push(if zi.to_bits() == self.z0[i].to_bits() { self.x0[i] } else { dim.snap(u) });
            slope.push(s);
        }
        Ok((x, slope))
    }

    fn miss(&self, points: Vec<Needed>) -> argmin::core::Error {
        self.need.borrow_mut().get_or_insert(points);
        argmin::core::Error::msg("value not evaluated yet")
    }
}

impl CostFunction for &Local<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, z: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        let (x, _) = self.decode(z)?;
        self.values.cost(&x).map(|c| c * self.scale).map_err(|need| self.miss(need))
    }
}

impl GradientFn for &Local<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, z: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        let (x, slope) = self.decode(z)?;
        let g = self.values.gradient(&x).map_err(|need| self.miss(need))?;
        let g: Vec<f64> = g.iter().zip(&slope).map(|(g, s)| g * s * self.scale).collect();
        if g.iter().all(|v| v.is_finite()) { Ok(g) } else { Err(argmin::core::Error::msg("non-finite gradient")) }
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

impl Gradient {
    /// Whether the evaluator provides gradients: as its latest answer did.
    fn note_gradient(&mut self, told: &Observed) {
        if told.value.is_some() {
            self.state.evaluator_gradients = told.gradient.as_ref().is_some_and(|g| g.len() == self.dims.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(cost: f64) -> Known {
        Known { cost, gradient: None, failed: false }
    }

    #[test]
    fn differences_stay_in_the_cube_and_are_one_level_wide_for_levels() {
        let fd = Fd { central: false, step: 1e-3 };
        assert_eq!(neighbours(Dim::Continuous, 0.5, fd), (0.5, 0.5 + 1e-3));
        assert_eq!(neighbours(Dim::Continuous, 1.0, fd), (1.0 - 1e-3, 1.0));
        let central = Fd { central: true, step: 1e-3 };
        assert_eq!(neighbours(Dim::Continuous, 0.0, central), (0.0, 1e-3));
        let int = Dim::Integer { levels: 4 };
        assert_eq!(neighbours(int, 0.375, fd), (0.125, 0.625));
        assert_eq!(neighbours(int, 0.125, fd), (0.125, 0.375));
        assert_eq!(neighbours(int, 0.875, fd), (0.625, 0.875));
        assert_eq!(neighbours(Dim::Categorical { choices: 1 }, 0.5, fd), (0.5, 0.5));
    }

    #[test]
    fn a_discrete_coordinate_moves_only_towards_a_better_level() {
        let dims = [Dim::Integer { levels: 4 }];
        let fd = Fd { central: false, step: 1e-3 };
        let gradient_with = |costs: [f64; 4], at: usize| {
            let entries: Vec<(Vec<u64>, Known)> =
                (0..4).map(|k| (key(&[(k as f64 + 0.5) / 4.0]), known(costs[k]))).collect();
            let lookup = |k: &[u64]| entries.iter().find(|(e, _)| e.as_slice() == k).map(|(_, v)| v);
            let values = Values { dims: &dims, fd, known: &lookup, grads: None, expect_gradients: false };
            values.gradient(&[(at as f64 + 0.5) / 4.0]).unwrap()[0]
        };
        assert_eq!(gradient_with([3.0, 1.0, 2.0, 5.0], 1), 0.0, "level 1 beats both neighbours");
        assert_eq!(gradient_with([3.0, 1.0, 2.0, 5.0], 0), -8.0, "towards level 1");
        assert_eq!(gradient_with([3.0, 1.0, 2.0, 5.0], 2), 4.0, "towards level 1");
        assert_eq!(gradient_with([3.0, 1.0, 2.0, 0.5], 2), -6.0, "the steeper of two better levels");
        assert_eq!(gradient_with([0.0, 1.0, 2.0, 5.0], 0), 0.0, "best level on the edge");
    }

    #[test]
    fn stencil_points_are_stored_as_one_changed_coordinate() {
        let mut start = Start { id: 0, x0: vec![0.5; 3], z0: vec![0.5; 3], points: Vec::new(), cache: Vec::new() };
        let x = vec![0.25, 0.5, 0.75];
        let mut s1 = x.clone();
        s1[1] = 0.5 + 1e-8;
        // The stencil point may be told before its line-search point.
        start.insert(&s1, Some((1, 0.5)), known(2.0));
        start.insert(&x, None, known(1.0));
        start.insert(&x, None, known(1.0));
        assert_eq!(start.points, vec![x.clone()]);
        assert_eq!(start.cache.len(), 2);
        let points: Vec<Vec<f64>> = start.cache.iter().map(|c| start.point(c)).collect();
        assert_eq!(points, vec![s1, x]);
    }

    #[test]
    fn a_long_start_keeps_its_state_bounded() {
        // A 30-d valley that takes many iterations: the cache bound ends the
        // start (and the search restarts) before its state grows past it.
        let d = 30;
        let f =
            |x: &[f64]| x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum::<f64>();
        let mut opt = Gradient::new(&Problem::new(vec![Dim::Continuous; d], 3), GradientConfig::default()).unwrap();
        let mut largest = 0;
        for _ in 0..400 {
            let c = opt.ask(31).unwrap();
            let told: Vec<Observed> = c.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
            opt.tell(&told).unwrap();
            if let Some(Run::Lbfgs(s)) = &opt.state.run {
                largest = largest.max(s.size());
            }
        }
        assert!(opt.starts() >= 2, "the bound never ended a start");
        assert!(largest > CACHE_NUMBERS * 8 / 10, "the first start ended early ({largest} numbers)");
        assert!(largest < CACHE_NUMBERS + 40 * d, "state grew to {largest} numbers");
        let text = serde_json::to_string(&opt.snapshot().unwrap()).unwrap();
        assert!(text.len() < 2_000_000, "snapshot of {} bytes", text.len());
    }
}
