//! A small, robust front to argmin's L-BFGS for smooth minimization with
//! analytic gradients: the cost and the gradient come from one closure call
//! (cached, since argmin asks for them separately at the same point), the
//! best point ever evaluated is kept, and a failing line search ends the run
//! with that point instead of an error.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

/// The outcome of one local minimization.
#[derive(Debug, Clone)]
pub struct Minimum {
    /// The best point evaluated (not necessarily the last).
    pub x: Vec<f64>,
    /// The cost at `x`.
    pub value: f64,
    /// Cost evaluations used (each also computed the gradient).
    pub evaluations: usize,
}

/// The last point evaluated, its cost and its gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

struct Problem<'a, F> {
    f: &'a F,
    cache: RefCell<Option<Evaluated>>,
    best: RefCell<Option<(Vec<f64>, f64)>>,
    evaluations: RefCell<usize>,
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> Problem<'_, F> {
    fn eval(&self, x: &[f64]) -> (f64, Vec<f64>) {
        if let Some((cx, c, g)) = self.cache.borrow().as_ref()
            && cx.as_slice() == x
        {
            return (*c, g.clone());
        }
        let (mut c, mut g) = (self.f)(x);
        *self.evaluations.borrow_mut() += 1;
        if !c.is_finite() || g.iter().any(|v| !v.is_finite()) {
            // A huge but finite cost steers the line search back.
            c = if c.is_finite() { c } else { 1e300 };
            g = vec![0.0; x.len()];
        }
        let mut best = self.best.borrow_mut();
        if best.as_ref().is_none_or(|(_, b)| c < *b) {
            *best = Some((x.to_vec(), c));
        }
        *self.cache.borrow_mut() = Some((x.to_vec(), c, g.clone()));
        (c, g)
    }
}

/// Minimize `f` (returning cost and gradient) from `x0` with at most
/// `max_iters` L-BFGS iterations (memory 7), to tight tolerances.
pub fn minimize<F: Fn(&[f64]) -> (f64, Vec<f64>)>(f: &F, x0: &[f64], max_iters: u64) -> Minimum {
    minimize_to(f, x0, max_iters, 1e-7, 1e-12)
}

/// As [`minimize`], stopping once the gradient norm is below `tol_grad` or
/// the cost changed by less than `tol_cost` in an iteration.
pub fn minimize_to<F: Fn(&[f64]) -> (f64, Vec<f64>)>(
    f: &F,
    x0: &[f64],
    max_iters: u64,
    tol_grad: f64,
    tol_cost: f64,
) -> Minimum {
    let problem = Problem { f, cache: RefCell::new(None), best: RefCell::new(None), evaluations: RefCell::new(0) };
    // Evaluate the start first: it is the fallback if the solver fails at once.
    problem.eval(x0);
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 7);
    let solver = solver.with_tolerance_grad(tol_grad).and_then(|s| s.with_tolerance_cost(tol_cost));
    if let Ok(solver) = solver {
        let run = Executor::new(&problem, solver).configure(|s| s.param(x0.to_vec()).max_iters(max_iters)).run();
        if let Ok(result) = run
            && let Some(x) = result.state().get_best_param()
        {
            problem.eval(x);
        }
    }
    let evaluations = *problem.evaluations.borrow();
    let (x, value) = problem.best.into_inner().unwrap_or((x0.to_vec(), f64::INFINITY));
    Minimum { x, value, evaluations }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> CostFunction for &Problem<'_, F> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.eval(x).0)
    }
}

impl<F: Fn(&[f64]) -> (f64, Vec<f64>)> Gradient for &Problem<'_, F> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.eval(x).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimizes_rosenbrock() {
        let f = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            let c = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let g = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
            (c, g)
        };
        let m = minimize(&f, &[-1.2, 1.0], 200);
        assert!(m.value < 1e-8, "{m:?}");
        assert!((m.x[0] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn non_finite_costs_do_not_escape() {
        // log(x) is undefined below 0: the wrapper keeps the best finite point.
        let f = |x: &[f64]| {
            if x[0] <= 0.0 { (f64::NAN, vec![f64::NAN]) } else { (x[0] - x[0].ln(), vec![1.0 - 1.0 / x[0]]) }
        };
        let m = minimize(&f, &[3.0], 100);
        assert!(m.value.is_finite());
        assert!((m.x[0] - 1.0).abs() < 1e-3, "{m:?}");
    }
}
