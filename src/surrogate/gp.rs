//! Gaussian-process regression on the unit cube.
//!
//! Model: `y = m + f(x) + ε`, `f ~ GP(0, σ_f² k(x, x'))`, `ε ~ N(0, σ_n²)`.
//!
//! - Kernel: Matérn-5/2 with automatic relevance determination,
//!   `k(r) = (1 + √5 r + 5r²/3) exp(-√5 r)`, `r² = Σ_j δ_j(x, x')² / ℓ_j²`.
//!   The per-dimension distance `δ_j` depends on the input kind:
//!   continuous `x_j - x'_j`; ordinal (ints) the same after rounding both to
//!   the centre of their level (so that points decoding to the same
//!   configuration are the same point); categorical `0` for the same choice
//!   and `1` otherwise, which is exactly a one-hot encoding with one length
//!   scale shared by the choices of a parameter.
//! - Constant mean `m`, profiled out by generalized least squares
//!   (`m = 1ᵀK⁻¹y / 1ᵀK⁻¹1`), so the likelihood's gradient with respect to
//!   the other hyperparameters is exact (envelope theorem).
//! - Hyperparameters `θ = (ln ℓ_1..ln ℓ_d, ln σ_f², ln σ_n²)` maximize the log
//!   marginal likelihood plus log priors: `ln ℓ ~ N(√2 + ½ ln d, 3)` (a
//!   dimension-scaled prior: long length scales unless the data insist, so
//!   that 10-20 points in 10 dimensions do not overfit), `ln σ_f² ~ N(0, 2²)`
//!   and `ln σ_n² ~ N(-8, 3²)` on standardized outputs, inside hard bounds.
//! - Repeated measurements of one point are one row (their mean, noise
//!   variance `σ_n²/count`) with the exact likelihood (see `repeats.rs`):
//!   confirmation rounds make a study's data repeat a few points many times.
//!   Optimization: multi-start L-BFGS (argmin) with analytic gradients,
//!   warm-started from the previous fit.
//! - Cholesky factorizations: faer's while fitting (the likelihood's
//!   inverse dominates each of its evaluations, and faer's is 3-4x faster
//!   there), nalgebra's for the conditioned model that predicts and takes
//!   fantasy points one row at a time. When one fails, the diagonal jitter
//!   grows tenfold from 1e-10 up to 1e-2 (relative to the signal variance);
//!   a likelihood that still cannot be factored counts as infinitely bad,
//!   and a model that cannot be conditioned is a clear error.
//!
//! Outputs are expected standardized (see [`super::transform`]).

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};
use serde::{Deserialize, Serialize};

use super::lbfgs;
use crate::error::{Error, Result};

/// How one input coordinate (in `[0,1]`) enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum InputKind {
    /// Any value in `[0, 1]`; distances are plain differences.
    Continuous,
    /// `levels` ordered values, one per equal-width bin of `[0,1]`.
    Ordinal {
        /// Number of values (0 is treated as 1).
        levels: u64,
    },
    /// `choices` unordered values, one per equal-width bin of `[0,1]`.
    Categorical {
        /// Number of choices (0 is treated as 1).
        choices: u32,
    },
}

/// How each optimizer coordinate enters the GP's kernel.
pub fn kinds_of(dims: &[crate::cube::Dim]) -> Vec<InputKind> {
    dims.iter()
        .map(|d| match *d {
            crate::cube::Dim::Continuous => InputKind::Continuous,
            crate::cube::Dim::Integer { levels } => InputKind::Ordinal { levels },
            crate::cube::Dim::Categorical { choices } => InputKind::Categorical { choices },
        })
        .collect()
}

impl InputKind {
    fn bins(&self) -> Option<f64> {
        match *self {
            InputKind::Continuous => None,
            InputKind::Ordinal { levels } => Some(levels.max(1) as f64),
            InputKind::Categorical { choices } => Some(choices.max(1) as f64),
        }
    }
    /// The kernel's view of a coordinate: ints at their level's centre,
    /// categoricals as their choice index; `relaxed` leaves ints continuous
    /// (for gradient-based search over a smooth interpolation).
    pub fn transform(&self, u: f64, relaxed: bool) -> f64 {
        let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
        match (self, self.bins()) {
            (InputKind::Continuous, _) | (InputKind::Ordinal { .. }, _) if relaxed => u,
            (_, None) => u,
            (InputKind::Categorical { .. }, Some(n)) => (u * n).floor().min(n - 1.0),
            (_, Some(n)) => ((u * n).floor().min(n - 1.0) + 0.5) / n,
        }
    }
    fn delta(&self, a: f64, b: f64) -> f64 {
        match self {
            InputKind::Categorical { .. } => {
                if a == b {
                    0.0
                } else {
                    1.0
                }
            }
            _ => a - b,
        }
    }
}

/// Fitted hyperparameters, in log space (kept between fits for warm starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// Natural log of each input's length scale ℓ_j, on the unit cube; one per input.
    pub log_lengthscales: Vec<f64>,
    /// Natural log of the signal variance σ_f², on the standardized output.
    pub log_signal_var: f64,
    /// Natural log of the noise variance σ_n², on the standardized output.
    pub log_noise_var: f64,
}

const LN_LS: (f64, f64) = (-4.6, 4.6); // length scales 0.01..100 on the unit cube
const LN_SF2: (f64, f64) = (-3.0, 3.0);
const LN_SN2: (f64, f64) = (-13.8, 0.0); // noise variance 1e-6..1 of the standardized output
const PRIOR_SF2: (f64, f64) = (0.0, 2.0);
const PRIOR_SN2: (f64, f64) = (-8.0, 3.0);

fn prior_ls(d: usize) -> (f64, f64) {
    (std::f64::consts::SQRT_2 + 0.5 * (d.max(1) as f64).ln(), 3f64.sqrt())
}

impl Hyper {
    /// A neutral starting point for `d` inputs.
    pub fn initial(d: usize) -> Self {
        let ls = (0.3 * (d.max(1) as f64).sqrt()).ln();
        Hyper { log_lengthscales: vec![ls; d], log_signal_var: 0.0, log_noise_var: (1e-4f64).ln() }
    }
    fn to_vec(&self) -> Vec<f64> {
        let mut v = self.log_lengthscales.clone();
        v.push(self.log_signal_var);
        v.push(self.log_noise_var);
        v
    }
    fn from_vec(v: &[f64]) -> Self {
        let d = v.len() - 2;
        Hyper { log_lengthscales: v[..d].to_vec(), log_signal_var: v[d], log_noise_var: v[d + 1] }
    }
    fn bounds(i: usize, d: usize) -> (f64, f64) {
        if i < d {
            LN_LS
        } else if i == d {
            LN_SF2
        } else {
            LN_SN2
        }
    }
    /// The length scales ℓ_j (not their logs).
    pub fn lengthscales(&self) -> Vec<f64> {
        self.log_lengthscales.iter().map(|v| v.exp()).collect()
    }
    /// The noise variance σ_n² (not its log).
    pub fn noise_var(&self) -> f64 {
        self.log_noise_var.exp()
    }
    /// The signal variance σ_f² (not its log).
    pub fn signal_var(&self) -> f64 {
        self.log_signal_var.exp()
    }
}

/// How hard to fit the hyperparameters.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Previous hyperparameters to start from.
    pub warm: Option<Hyper>,
    /// Extra starts drawn around the neutral point (besides warm and neutral).
    pub restarts: usize,
    /// L-BFGS iterations per start.
    pub max_iters: u64,
    /// Indices of the points that enter the hyperparameter fit (every point
    /// still enters the conditioning); `None` = all.
    pub fit_subset: Option<Vec<usize>>,
    /// Seed of the random restarts: the same seed and data give the same fit.
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { warm: None, restarts: 1, max_iters: 60, fit_subset: None, seed: 0 }
    }
}

/// A Gaussian process conditioned on data.
#[derive(Debug, Clone)]
pub struct Gp {
    kinds: Vec<InputKind>,
    /// Distinct training inputs, kernel view (see [`InputKind::transform`]).
    x: Vec<Vec<f64>>,
    /// The mean output at each.
    y: Vec<f64>,
    /// Noise weight of each (1 / its number of measurements).
    w: Vec<f64>,
    /// For each training row as given, its distinct input.
    rows: Vec<usize>,
    /// The repeats' spread about their means: its likelihood term (see `repeats.rs`).
    spread: repeats::Spread,
    hyper: Hyper,
    inv_ls2: Vec<f64>,
    mean: f64,
    chol: Cholesky<f64, Dyn>,
    /// K⁻¹ (y - m)
    alpha: DVector<f64>,
    jitter: f64,
}

#[inline]
fn matern52(r2: f64) -> (f64, f64) {
    // k(r) and A(r) = (5/3)(1 + √5 r) e^{-√5 r}, where dk/d(r²) = -A/2.
    let r = r2.max(0.0).sqrt();
    let s5r = 5f64.sqrt() * r;
    let e = (-s5r).exp();
    ((1.0 + s5r + 5.0 * r2 / 3.0) * e, (5.0 / 3.0) * (1.0 + s5r) * e)
}

/// Try a factorization with growing diagonal jitter: none, then 1e-10 up
/// to 1e-2 times the signal variance. `add_and_try(extra)` adds `extra` to
/// the diagonal and attempts the factorization; returns it with the jitter
/// that made it succeed.
fn with_jitter<T>(signal: f64, mut add_and_try: impl FnMut(f64) -> Option<T>) -> Option<(T, f64)> {
    let mut jitter = 0.0;
    for next in std::iter::once(0.0).chain((-10..=-2).map(|e| signal * 10f64.powi(e))) {
        if let Some(t) = add_and_try(next - jitter) {
            return Some((t, next));
        }
        jitter = next;
    }
    None
}

fn factor(mut k: DMatrix<f64>, signal: f64) -> Result<(Cholesky<f64, Dyn>, f64)> {
    let n = k.nrows();
    with_jitter(signal, |extra| {
        for i in 0..n {
            k[(i, i)] += extra;
        }
        Cholesky::new(k.clone())
    })
    .ok_or_else(|| {
        Error::optimizer(
            "gp",
            format!(
                "Gaussian process: the {n}x{n} covariance matrix is not positive definite even with a jitter of \
                 {:.1e} (duplicate points with contradictory values, or non-finite inputs)",
                signal * 1e-2
            ),
        )
    })
}

impl Gp {
    /// Fit hyperparameters (maximum a posteriori) and condition on `(xs, ys)`.
    /// `xs` are unit-cube points; `ys` standardized outputs.
    pub fn fit(kinds: &[InputKind], xs: &[Vec<f64>], ys: &[f64], opts: &FitOptions) -> Result<Gp> {
        let d = kinds.len();
        let tx: Vec<Vec<f64>> = xs.iter().map(|x| transform(kinds, x, false)).collect();
        let (fx, fy): (Vec<&Vec<f64>>, Vec<f64>) = match &opts.fit_subset {
            Some(idx) => idx.iter().map(|&i| (&tx[i], ys[i])).unzip(),
            None => (tx.iter().collect(), ys.to_vec()),
        };
        let data = FitData::new(kinds, repeats::Repeats::group(&fx, &fy));
        let objective = |theta: &[f64]| data.neg_log_posterior(theta);
        // From the previous fit when there is one, else from a neutral point;
        // `restarts` more around the neutral point.
        let mut starts = match &opts.warm {
            Some(w) if w.log_lengthscales.len() == d => vec![w.to_vec()],
            _ => vec![Hyper::initial(d).to_vec()],
        };
        let mut rng = crate::rng::Rng::new(opts.seed, 0x6770);
        for _ in 0..opts.restarts {
            let mut s = Hyper::initial(d).to_vec();
            for v in s.iter_mut().take(d) {
                *v += rng.normal();
            }
            starts.push(s);
        }
        let mut best: Option<lbfgs::Minimum> = None;
        for s in &starts {
            // Log-likelihood differences below 1e-4 do not change the model.
            let m = lbfgs::minimize_to(&objective, s, opts.max_iters, 1e-4, 1e-4);
            if best.as_ref().is_none_or(|b| m.value < b.value) {
                best = Some(m);
            }
        }
        let theta = clamp_theta(&best.map(|m| m.x).unwrap_or_else(|| starts[0].clone()));
        Gp::condition(kinds, &tx, ys, Hyper::from_vec(&theta))
    }

    /// Condition on `(xs, ys)` with the given hyperparameters (no fitting).
    pub fn with_hyper(kinds: &[InputKind], xs: &[Vec<f64>], ys: &[f64], hyper: Hyper) -> Result<Gp> {
        let tx: Vec<Vec<f64>> = xs.iter().map(|x| transform(kinds, x, false)).collect();
        Gp::condition(kinds, &tx, ys, hyper)
    }

    fn condition(kinds: &[InputKind], tx: &[Vec<f64>], ys: &[f64], hyper: Hyper) -> Result<Gp> {
        if tx.is_empty() || ys.len() != tx.len() {
            return Err(Error::optimizer("gp", "Gaussian process: no data to condition on"));
        }
        if ys.iter().any(|v| !v.is_finite()) || tx.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::optimizer("gp", "Gaussian process: non-finite training data"));
        }
        let repeats::Repeats { x, y, w, rows, spread } = repeats::Repeats::group(&tx.iter().collect::<Vec<_>>(), ys);
        let n = x.len();
        let inv_ls2: Vec<f64> = hyper.log_lengthscales.iter().map(|l| (-2.0 * l).exp()).collect();
        let sf2 = hyper.signal_var();
        let mut k = DMatrix::<f64>::zeros(n, n);
        for i in 0..n {
            k[(i, i)] = sf2 + hyper.noise_var() * w[i];
            for j in 0..i {
                let v = sf2 * matern52(r2(kinds, &inv_ls2, &x[i], &x[j])).0;
                k[(i, j)] = v;
                k[(j, i)] = v;
            }
        }
        let (chol, jitter) = factor(k, sf2)?;
        let ones = DVector::from_element(n, 1.0);
        let yv = DVector::from_vec(y.clone());
        let ki1 = chol.solve(&ones);
        let mean = ki1.dot(&yv) / ki1.dot(&ones);
        let alpha = chol.solve(&yv.add_scalar(-mean));
        Ok(Gp { kinds: kinds.to_vec(), x, y, w, rows, spread, hyper, inv_ls2, mean, chol, alpha, jitter })
    }

    /// The fitted hyperparameters (a warm start for the next fit).
    pub fn hyper(&self) -> &Hyper {
        &self.hyper
    }
    /// Number of distinct points the GP is conditioned on (repeats of a point are one).
    pub fn len(&self) -> usize {
        self.x.len()
    }
    /// True when it is conditioned on no point.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
    /// The constant mean `m`, estimated by generalized least squares.
    pub fn mean_constant(&self) -> f64 {
        self.mean
    }
    /// What was added to the covariance's diagonal (beyond the noise variance) so that it could
    /// be factored; 0 when nothing was needed.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Posterior means at the training rows as given (a repeated point's mean for each of its
    /// rows; rows added by [`Gp::add_point`] after them), in O(n): from `(K_f + S)α = y - m`
    /// follows `m + K_f α = y - Sα`, with `S` the noise variance (over the count) plus the
    /// jitter.
    pub fn train_means(&self) -> Vec<f64> {
        let sn2 = self.hyper.noise_var();
        let distinct: Vec<f64> =
            (0..self.y.len()).map(|i| self.y[i] - (sn2 * self.w[i] + self.jitter) * self.alpha[i]).collect();
        self.rows.iter().map(|&g| distinct[g]).collect()
    }
    /// How each input coordinate enters the kernel, one per dimension.
    pub fn kinds(&self) -> &[InputKind] {
        &self.kinds
    }

    /// Log marginal likelihood of the conditioned data (no priors).
    pub fn log_marginal_likelihood(&self) -> f64 {
        let n = self.y.len() as f64;
        let r = DVector::from_vec(self.y.clone()).add_scalar(-self.mean);
        let logdet: f64 = self.chol.l_dirty().diagonal().iter().take(self.y.len()).map(|v| v.ln()).sum();
        let spread = self.spread.term(self.hyper.noise_var()).0;
        -0.5 * r.dot(&self.alpha) - logdet - 0.5 * n * (2.0 * std::f64::consts::PI).ln() + spread
    }

    fn kvec(&self, tx: &[f64]) -> (DVector<f64>, Vec<f64>) {
        let sf2 = self.hyper.signal_var();
        let n = self.x.len();
        let mut k = DVector::zeros(n);
        let mut a = vec![0.0; n];
        for (i, xi) in self.x.iter().enumerate() {
            let (kv, av) = matern52(r2(&self.kinds, &self.inv_ls2, tx, xi));
            k[i] = sf2 * kv;
            a[i] = sf2 * av;
        }
        (k, a)
    }

    /// Posterior mean and variance of `f` at a unit-cube point (ints rounded).
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        self.predict_t(&transform(&self.kinds, x, false))
    }

    /// Posterior mean only (O(n·d), no triangular solve).
    pub fn predict_mean(&self, x: &[f64]) -> f64 {
        let tx = transform(&self.kinds, x, false);
        let sf2 = self.hyper.signal_var();
        self.mean
            + self
                .x
                .iter()
                .zip(self.alpha.iter())
                .map(|(xi, a)| a * sf2 * matern52(r2(&self.kinds, &self.inv_ls2, &tx, xi)).0)
                .sum::<f64>()
    }

    /// As [`Gp::predict`], with ints left continuous (`relaxed`).
    pub fn predict_relaxed(&self, x: &[f64]) -> (f64, f64) {
        self.predict_t(&transform(&self.kinds, x, true))
    }

    fn predict_t(&self, tx: &[f64]) -> (f64, f64) {
        let (k, _) = self.kvec(tx);
        let mu = self.mean + k.dot(&self.alpha);
        let v = self.chol.l_dirty().solve_lower_triangular(&k).unwrap_or_else(|| k.clone());
        let var = (self.hyper.signal_var() - v.norm_squared()).max(1e-12);
        (mu, var)
    }

    /// One draw of `f` at several unit-cube points (ints rounded) from the joint posterior:
    /// the means plus `L z`, with `L L^T` the posterior covariance among the points (jitter
    /// added as for the training covariance when it is not positive definite). `None` when it
    /// cannot be factored even with jitter; an empty draw for no points.
    pub fn sample_joint(&self, xs: &[Vec<f64>], rng: &mut crate::rng::Rng) -> Option<Vec<f64>> {
        if xs.is_empty() {
            // nalgebra cannot build a matrix of no columns (found by the stdio fuzz target).
            return Some(Vec::new());
        }
        let txs: Vec<Vec<f64>> = xs.iter().map(|x| transform(&self.kinds, x, false)).collect();
        let m = txs.len();
        let sf2 = self.hyper.signal_var();
        let kxc = DMatrix::from_columns(&txs.iter().map(|tx| self.kvec(tx).0).collect::<Vec<_>>());
        let means: Vec<f64> = (0..m).map(|c| self.mean + kxc.column(c).dot(&self.alpha)).collect();
        let v = self.chol.l_dirty().solve_lower_triangular(&kxc)?;
        let mut cov =
            DMatrix::<f64>::from_fn(m, m, |a, b| sf2 * matern52(r2(&self.kinds, &self.inv_ls2, &txs[a], &txs[b])).0);
        cov -= v.transpose() * &v;
        let (chol, _) = factor(cov, sf2).ok()?;
        let z = DVector::from_fn(m, |_, _| rng.normal());
        let draw = chol.l_dirty().lower_triangle() * z;
        Some(means.iter().zip(draw.iter()).map(|(m, d)| m + d).collect())
    }

    /// Mean, variance and their gradients with respect to the unit-cube
    /// coordinates (ints relaxed; categorical coordinates get 0).
    pub fn predict_with_grad(&self, x: &[f64]) -> (f64, f64, Vec<f64>, Vec<f64>) {
        let tx = transform(&self.kinds, x, true);
        let d = tx.len();
        let (k, a) = self.kvec(&tx);
        let mu = self.mean + k.dot(&self.alpha);
        let l = self.chol.l_dirty();
        let v = l.solve_lower_triangular(&k).unwrap_or_else(|| k.clone());
        let var = (self.hyper.signal_var() - v.norm_squared()).max(1e-12);
        let w = l.tr_solve_lower_triangular(&v).unwrap_or_else(|| v.clone()); // K⁻¹ k
        let mut dmu = vec![0.0; d];
        let mut dvar = vec![0.0; d];
        for (i, xi) in self.x.iter().enumerate() {
            for j in 0..d {
                if matches!(self.kinds[j], InputKind::Categorical { .. }) {
                    continue;
                }
                // dk_i/dx_j = -A_i (x_j - xi_j) / ℓ_j²
                let dk = -a[i] * (tx[j] - xi[j]) * self.inv_ls2[j];
                dmu[j] += self.alpha[i] * dk;
                dvar[j] -= 2.0 * w[i] * dk;
            }
        }
        (mu, var, dmu, dvar)
    }

    /// Add one observation without refitting hyperparameters: the Cholesky
    /// factor grows by a row (O(n²)). Used for fantasies of pending points.
    pub fn add_point(&mut self, x: &[f64], y: f64) -> Result<()> {
        let tx = transform(&self.kinds, x, false);
        let (k, _) = self.kvec(&tx);
        let n = self.x.len();
        let l = self.chol.l_dirty();
        let row = l.solve_lower_triangular(&k).unwrap_or_else(|| k.clone());
        let kk = self.hyper.signal_var() + self.hyper.noise_var() + self.jitter;
        let diag2 = kk - row.norm_squared();
        let diag = diag2.max(self.hyper.signal_var() * 1e-10).sqrt();
        let mut big = DMatrix::<f64>::zeros(n + 1, n + 1);
        big.view_mut((0, 0), (n, n)).copy_from(&l.lower_triangle());
        for j in 0..n {
            big[(n, j)] = row[j];
        }
        big[(n, n)] = diag;
        self.chol = Cholesky::pack_dirty(big);
        self.x.push(tx);
        self.y.push(y);
        self.w.push(1.0);
        self.rows.push(self.x.len() - 1);
        let yv = DVector::from_vec(self.y.clone());
        self.alpha = self.chol.solve(&yv.add_scalar(-self.mean));
        Ok(())
    }
}

fn transform(kinds: &[InputKind], x: &[f64], relaxed: bool) -> Vec<f64> {
    kinds.iter().zip(x).map(|(k, &u)| k.transform(u, relaxed)).collect()
}

#[inline]
fn r2(kinds: &[InputKind], inv_ls2: &[f64], a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for j in 0..kinds.len() {
        let dl = kinds[j].delta(a[j], b[j]);
        s += dl * dl * inv_ls2[j];
    }
    s
}

fn clamp_theta(theta: &[f64]) -> Vec<f64> {
    let d = theta.len() - 2;
    theta
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (lo, hi) = Hyper::bounds(i, d);
            if v.is_finite() { v.clamp(lo, hi) } else { (lo + hi) / 2.0 }
        })
        .collect()
}

/// Training data of a hyperparameter fit, with the per-dimension squared
/// distances of every pair computed once.
struct FitData {
    n: usize,
    d: usize,
    y: Vec<f64>,
    /// Noise weight per point (1 / its count).
    w: Vec<f64>,
    /// pair p = (i, j), i > j, in row order; `delta2[p * d + k]`.
    delta2: Vec<f64>,
    /// The repeats' spread about the means `y`.
    spread: repeats::Spread,
}

impl FitData {
    fn new(kinds: &[InputKind], repeats: repeats::Repeats) -> Self {
        let repeats::Repeats { x, y, w, spread, .. } = repeats;
        let (n, d) = (x.len(), kinds.len());
        let mut delta2 = Vec::with_capacity(n * n.saturating_sub(1) / 2 * d);
        for i in 0..n {
            for j in 0..i {
                for k in 0..d {
                    let dl = kinds[k].delta(x[i][k], x[j][k]);
                    delta2.push(dl * dl);
                }
            }
        }
        FitData { n, d, y, w, delta2, spread }
    }

    /// Negative log posterior (marginal likelihood + priors) and its gradient.
    fn neg_log_posterior(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let (n, d) = (self.n, self.d);
        let t = clamp_theta(theta);
        let inv_ls2: Vec<f64> = t[..d].iter().map(|l| (-2.0 * l).exp()).collect();
        let (sf2, sn2) = (t[d].exp(), t[d + 1].exp());
        // faer for the fit's dense algebra: its Cholesky-based inverse is
        // 3-4x faster than nalgebra's at these sizes, and the inverse
        // dominates each likelihood evaluation.
        let mut k = faer::Mat::<f64>::zeros(n, n);
        let pairs = self.delta2.len() / d.max(1);
        let mut a = vec![0.0; pairs];
        let mut kv_pair = vec![0.0; pairs];
        let mut p = 0;
        for i in 0..n {
            k[(i, i)] = sf2 + sn2 * self.w[i];
            for j in 0..i {
                let dd = &self.delta2[p * d..(p + 1) * d];
                let r2: f64 = dd.iter().zip(&inv_ls2).map(|(a, b)| a * b).sum();
                let (kv, av) = matern52(r2);
                k[(i, j)] = sf2 * kv;
                k[(j, i)] = sf2 * kv;
                kv_pair[p] = sf2 * kv;
                a[p] = sf2 * av;
                p += 1;
            }
        }
        let factored = with_jitter(sf2, |extra| {
            for i in 0..n {
                k[(i, i)] += extra;
            }
            k.llt(faer::Side::Lower).ok()
        });
        let Some((llt, _)) = factored else {
            return (f64::INFINITY, vec![0.0; d + 2]);
        };
        use faer::linalg::solvers::{DenseSolveCore, Solve};
        let rhs = faer::Mat::<f64>::from_fn(n, 2, |i, c| if c == 0 { 1.0 } else { self.y[i] });
        let sol = llt.solve(&rhs);
        let (mut one_k1, mut y_k1) = (0.0, 0.0);
        for i in 0..n {
            one_k1 += sol[(i, 0)];
            y_k1 += self.y[i] * sol[(i, 0)];
        }
        let mean = y_k1 / one_k1;
        // α = K⁻¹(y - m) = K⁻¹y - m K⁻¹1
        let alpha: Vec<f64> = (0..n).map(|i| sol[(i, 1)] - mean * sol[(i, 0)]).collect();
        let l = llt.L();
        let logdet: f64 = (0..n).map(|i| l[(i, i)].ln()).sum();
        let fit: f64 = (0..n).map(|i| (self.y[i] - mean) * alpha[i]).sum();
        let (spread, d_spread) = self.spread.term(sn2);
        let lml = -0.5 * fit - logdet - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln() + spread;
        // W = ααᵀ - K⁻¹; dLML/dθ = ½ tr(W dK/dθ).
        let kinv = llt.inverse();
        let mut grad = vec![0.0; d + 2];
        let mut p = 0;
        let mut g_sf2 = 0.0;
        for i in 0..n {
            let wii = alpha[i] * alpha[i] - kinv[(i, i)];
            g_sf2 += 0.5 * wii * sf2;
            grad[d + 1] += 0.5 * wii * sn2 * self.w[i];
            for j in 0..i {
                let w = alpha[i] * alpha[j] - kinv[(i, j)];
                // Off-diagonal pairs count twice in the trace; ½·2 = 1.
                g_sf2 += w * kv_pair[p];
                let aw = w * a[p];
                let dd = &self.delta2[p * d..(p + 1) * d];
                for kk in 0..d {
                    // dK/d ln ℓ_k = A δ_k² / ℓ_k²
                    grad[kk] += aw * dd[kk] * inv_ls2[kk];
                }
                p += 1;
            }
        }
        grad[d] = g_sf2;
        grad[d + 1] += d_spread;
        // Priors.
        let mut lp = 0.0;
        let (mu_l, s_l) = prior_ls(d);
        for kk in 0..d {
            lp += -0.5 * ((t[kk] - mu_l) / s_l).powi(2);
            grad[kk] += -(t[kk] - mu_l) / (s_l * s_l);
        }
        lp += -0.5 * ((t[d] - PRIOR_SF2.0) / PRIOR_SF2.1).powi(2);
        grad[d] += -(t[d] - PRIOR_SF2.0) / (PRIOR_SF2.1 * PRIOR_SF2.1);
        lp += -0.5 * ((t[d + 1] - PRIOR_SN2.0) / PRIOR_SN2.1).powi(2);
        grad[d + 1] += -(t[d + 1] - PRIOR_SN2.0) / (PRIOR_SN2.1 * PRIOR_SN2.1);
        // Minimize the negative; outside the bounds a quadratic wall.
        let mut cost = -(lml + lp);
        let mut g: Vec<f64> = grad.iter().map(|v| -v).collect();
        for i in 0..d + 2 {
            let excess = theta[i] - t[i];
            if excess != 0.0 && excess.is_finite() {
                cost += 100.0 * excess * excess;
                g[i] = 200.0 * excess;
            }
        }
        (cost, g)
    }
}

mod repeats;
#[cfg(test)]
mod tests;
