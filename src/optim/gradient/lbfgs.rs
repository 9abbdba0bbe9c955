//! L-BFGS over ask/tell: replaying the current start through argmin against
//! its cache of frozen values, and the finite-difference gradients it reads
//! from that cache.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use argmin::core::{CostFunction, Executor, Gradient as GradientFn, State as _, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use super::config::Fd;
use super::state::{Known, Role, Run, Start, key};
use super::{CACHE_NUMBERS, FIRST_STEP, GRAD_TOL, Gradient};
use crate::optim::Candidate;
use crate::optim::Dim;
use crate::optim::bounds::to_unit;

/// A point a replay needs; for a stencil point, the coordinate it differs
/// in from its line-search point and that point's value of it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Needed {
    pub(super) x: Vec<f64>,
    pub(super) of: Option<(usize, f64)>,
}

impl Gradient {
    /// Replay the current start against its cache: the points it needs next,
    /// or how it ended.
    pub(super) fn replay(&self, start: &Start) -> Replayed {
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

    pub(super) fn ask_lbfgs(&mut self, n: usize) -> Option<Vec<Candidate>> {
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
}

/// What a replay found.
pub(super) enum Replayed {
    /// Values the start needs next (the first one, then its stencil).
    Need(Vec<Needed>),
    /// argmin terminated; `converged` for a gradient or cost tolerance.
    Ended { converged: bool },
}

/// The two coordinate values whose difference estimates the derivative of
/// coordinate `i` at `xi` (either may be `xi` itself): one level on each
/// side for discrete coordinates, the finite-difference step otherwise.
pub(super) fn neighbours(dim: Dim, xi: f64, fd: Fd) -> (f64, f64) {
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
pub(super) struct Memo {
    pub(super) start: Option<u32>,
    /// Cache entries indexed so far.
    pub(super) indexed: usize,
    /// Exact point → index into the start's cache (the first value counts;
    /// a point is never asked twice).
    pub(super) index: HashMap<Vec<u64>, usize>,
    /// Gradients computed so far, by exact point.
    pub(super) grads: HashMap<Vec<u64>, Vec<f64>>,
}

/// The values a replay can use, by exact point.
pub(super) struct Values<'a> {
    pub(super) dims: &'a [Dim],
    pub(super) fd: Fd,
    pub(super) known: &'a dyn Fn(&[u64]) -> Option<&'a Known>,
    pub(super) grads: Option<&'a RefCell<HashMap<Vec<u64>, Vec<f64>>>>,
    /// Ask line-search points without their continuous stencil.
    pub(super) expect_gradients: bool,
}

impl<'a> Values<'a> {
    pub(super) fn get(&self, x: &[f64]) -> Option<&'a Known> {
        (self.known)(&key(x))
    }

    /// The stencil points of `x` (coordinate, point), continuous coordinates
    /// only when `continuous`.
    pub(super) fn stencil(&self, x: &[f64], continuous: bool) -> Vec<(usize, Vec<f64>)> {
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
    pub(super) fn gradient(&self, x: &[f64]) -> std::result::Result<Vec<f64>, Vec<Needed>> {
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
pub(super) struct Local<'a> {
    pub(super) values: Values<'a>,
    pub(super) x0: &'a [f64],
    pub(super) z0: &'a [f64],
    pub(super) scale: f64,
    pub(super) need: RefCell<Option<Vec<Needed>>>,
    pub(super) calls: Cell<usize>,
    /// Guards against a line search cycling over known points forever.
    pub(super) max_calls: usize,
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
