//! One generation's update of the strategy (mean, evolution paths,
//! covariance, step size) and the tests that end a run.

use std::collections::VecDeque;

use nalgebra::{DMatrix, SymmetricEigen};

use super::params::Params;
use super::sampling::Sample;
use super::state::{Run, Told};
use super::{CmaEs, HISTORY_CAP, HOPELESS_FACTOR, MAX_STD, TOLFUN_REL};
use crate::optim::bounds;
use crate::stats::median;

impl CmaEs {
    /// One CMA-ES generation update from the first lambda results told.
    pub(super) fn update(&mut self) {
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
        let samples: Vec<&Sample> = ranked.iter().map(|m| &cache.samples[m.0]).collect();
        let told: Vec<Told> = ranked.iter().map(|m| m.1).collect();

        let (y_w, z_w) = recombine(run, &p, &samples);
        let (ps_norm, hsig) = step_size_path(run, &p, &z_w);
        adapt_covariance(run, &p, &samples, &y_w, hsig);
        adapt_step_size(run, &p, ps_norm);
        let current_values = record_generation(run, &p, &samples, &told);

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
}

/// Recombination: the weighted means `<y>_w`, `<z>_w` of the best `mu`
/// samples (ranked best first), and the mean moved by `sigma <y>_w`.
fn recombine(run: &mut Run, p: &Params, samples: &[&Sample]) -> (Vec<f64>, Vec<f64>) {
    let n = run.mean.len();
    let mut y_w = vec![0.0; n];
    let mut z_w = vec![0.0; n];
    for (&w, s) in p.weights.iter().zip(samples).take(p.mu) {
        for i in 0..n {
            y_w[i] += w * s.y[i];
            z_w[i] += w * s.z[i];
        }
    }
    for ((m, scale), y) in run.mean.iter_mut().zip(&run.current.scale).zip(&y_w) {
        *m += run.sigma * scale * y;
    }
    (y_w, z_w)
}

/// The step-size path, `C^{-1/2} <y>_w = B <z>_w`; returns its length and
/// whether it is short enough for the covariance path (`h_sigma`).
fn step_size_path(run: &mut Run, p: &Params, z_w: &[f64]) -> (f64, bool) {
    let n = run.mean.len();
    let csn = (p.cs * (2.0 - p.cs) * p.mueff).sqrt();
    for i in 0..n {
        let row = &run.basis[i * n..(i + 1) * n];
        let bz: f64 = row.iter().zip(z_w).map(|(b, z)| b * z).sum();
        run.ps[i] = (1.0 - p.cs) * run.ps[i] + csn * bz;
    }
    let ps_norm = run.ps.iter().map(|v| v * v).sum::<f64>().sqrt();
    let decay = 1.0 - (1.0 - p.cs).powf(2.0 * (run.generation + 1) as f64);
    let hsig = ps_norm / decay.max(1e-300).sqrt() / p.chi_n < 1.4 + 2.0 / (n as f64 + 1.0);
    (ps_norm, hsig)
}

/// The covariance path and the rank-one + rank-mu (active) update of `C`.
fn adapt_covariance(run: &mut Run, p: &Params, samples: &[&Sample], y_w: &[f64], hsig: bool) {
    let n = run.mean.len();
    let ccn = (p.cc * (2.0 - p.cc) * p.mueff).sqrt();
    for (pc, y) in run.pc.iter_mut().zip(y_w) {
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
                let z2: f64 = samples[r].z.iter().map(|v| v * v).sum();
                w * n as f64 / z2.max(1e-300)
            }
        })
        .collect();
    for i in 0..n {
        for j in 0..=i {
            let mut rank_mu = 0.0;
            for (r, c) in coef.iter().enumerate() {
                if *c != 0.0 {
                    let y = &samples[r].y;
                    rank_mu += c * y[i] * y[j];
                }
            }
            let v = keep * run.cov[i * n + j] + p.c1 * run.pc[i] * run.pc[j] + p.cmu * rank_mu;
            run.cov[i * n + j] = v;
            run.cov[j * n + i] = v;
        }
    }
}

/// Cumulative step-size adaptation, with the cube's bound on useful spread.
fn adapt_step_size(run: &mut Run, p: &Params, ps_norm: f64) {
    let n = run.mean.len();
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
}

/// The flat-fitness escape and the run's histories and best point; returns
/// the generation's feasible values, best first.
fn record_generation(run: &mut Run, p: &Params, samples: &[&Sample], told: &[Told]) -> Vec<f64> {
    let n = run.mean.len();
    // Flat fitness: the best and the k-th are indistinguishable: widen.
    let kth = ((0.1 + p.lambda as f64 / 4.0).ceil() as usize).clamp(1, p.lambda - 1);
    let flat = told[0].as_observed().cmp_quality(&told[kth].as_observed()).is_eq();
    if flat {
        run.sigma *= (0.2 + p.cs / p.damps).exp();
    }
    push_capped(&mut run.flat_history, flat, n.max(10));

    let best = told[0].feasible().unwrap_or(f64::MAX);
    let median = told[p.lambda / 2].feasible().unwrap_or(f64::MAX);
    push_capped(&mut run.best_history, best, HISTORY_CAP);
    push_capped(&mut run.median_history, median, HISTORY_CAP);
    let current_values: Vec<f64> = told.iter().filter_map(|t| t.feasible()).collect();
    if let Some(&v) = current_values.first()
        && run.best.is_none_or(|b| v < b)
    {
        run.best = Some(v);
        run.best_x = Some(samples[0].x.clone());
    }
    current_values
}

/// Why a run ended; `coarse` when only the relative tolerance stopped it.
pub(super) struct Stop {
    pub(super) reason: &'static str,
    pub(super) coarse: bool,
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
