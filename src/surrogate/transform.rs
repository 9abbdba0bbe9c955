//! Output transforms for the GP: half-rank warping of the worse half,
//! standardization, and a Yeo-Johnson power warp when the values are still
//! heavy-tailed (as HEBO does).
//!
//! Half-rank warping (the idea of Vizier's output warper): values worse
//! than the median (larger, since lower is better) are replaced by the
//! normal quantiles of their ranks, scaled by the spread of the better half
//! around the median. Their order is kept, their magnitudes are not: a
//! configuration 100x worse than typical stops dominating the fit, while
//! the better half, where the optimum is, keeps its exact shape.
//!
//! Real objectives are often skewed: a few saturated configurations cost
//! 100x the rest (a pool that is too small). A stationary GP fitted to such
//! values spends its variance on the outliers and flattens the region that
//! matters. When the skewness of the standardized values exceeds
//! [`SKEW_LIMIT`], the values are warped by the Yeo-Johnson transform with
//! the exponent `λ` that maximizes the normal log-likelihood (golden-section
//! search on [-2, 4]), then standardized again. The warp is monotone, so the
//! order of the values, and thus the incumbent, is unchanged.

use serde::{Deserialize, Serialize};

use crate::stats::normal_quantile;

/// Above this absolute skewness the values are warped.
pub const SKEW_LIMIT: f64 = 0.5;

/// A fitted, monotone map from raw objective values (lower is better) to the GP's standardized
/// scale, and back; see the module docs for its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputTransform {
    /// Half-rank warp of the worse half: sorted (raw, warped) pairs, and the median.
    median: f64,
    knots: Vec<(f64, f64)>,
    /// Pre-standardization (centre, scale) applied before the warp.
    centre: f64,
    scale: f64,
    /// Yeo-Johnson exponent, when warped.
    lambda: Option<f64>,
    /// Standardization after the warp.
    mean: f64,
    std: f64,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

fn skewness(v: &[f64]) -> f64 {
    let (m, s) = mean_std(v);
    if s <= 0.0 {
        return 0.0;
    }
    v.iter().map(|x| ((x - m) / s).powi(3)).sum::<f64>() / v.len() as f64
}

fn yeo_johnson(y: f64, l: f64) -> f64 {
    if y >= 0.0 {
        if l.abs() < 1e-9 { y.ln_1p() } else { ((y + 1.0).powf(l) - 1.0) / l }
    } else if (l - 2.0).abs() < 1e-9 {
        -(-y).ln_1p()
    } else {
        -((1.0 - y).powf(2.0 - l) - 1.0) / (2.0 - l)
    }
}

fn yeo_johnson_inverse(z: f64, l: f64) -> f64 {
    if z >= 0.0 {
        if l.abs() < 1e-9 { z.exp_m1() } else { (l * z + 1.0).max(1e-300).powf(1.0 / l) - 1.0 }
    } else if (l - 2.0).abs() < 1e-9 {
        -(-z).exp_m1()
    } else {
        1.0 - (1.0 - (2.0 - l) * z).max(1e-300).powf(1.0 / (2.0 - l))
    }
}

/// Normal log-likelihood of the warped values (profile over mean and variance).
fn yj_loglik(y: &[f64], l: f64) -> f64 {
    let z: Vec<f64> = y.iter().map(|&v| yeo_johnson(v, l)).collect();
    let (_, s) = mean_std(&z);
    if s.is_nan() || s <= 0.0 || !s.is_finite() {
        return f64::NEG_INFINITY;
    }
    let n = y.len() as f64;
    -0.5 * n * (s * s).ln() + (l - 1.0) * y.iter().map(|v| v.signum() * v.abs().ln_1p()).sum::<f64>()
}

/// Piecewise-linear map through sorted `(from, to)` knots, linear beyond them.
fn interpolate(
    knots: &[(f64, f64)],
    v: f64,
    from: impl Fn(&(f64, f64)) -> f64,
    to: impl Fn(&(f64, f64)) -> f64,
) -> f64 {
    let k = knots.partition_point(|p| from(p) < v);
    let (a, b) = match k {
        0 => (&knots[0], knots.get(1).unwrap_or(&knots[0])),
        k if k >= knots.len() => (&knots[knots.len().saturating_sub(2)], &knots[knots.len() - 1]),
        k => (&knots[k - 1], &knots[k]),
    };
    let span = from(b) - from(a);
    if span.abs() < 1e-300 { to(a) } else { to(a) + (v - from(a)) * (to(b) - to(a)) / span }
}

fn half_rank(ys: &[f64]) -> (f64, Vec<(f64, f64)>) {
    let mut sorted: Vec<f64> = ys.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n < 4 {
        return (f64::INFINITY, Vec::new());
    }
    let median = sorted[(n - 1) / 2];
    let good: Vec<f64> = sorted.iter().filter(|&&y| y <= median).map(|y| y - median).collect();
    let spread = (good.iter().map(|d| d * d).sum::<f64>() / good.len().max(1) as f64).sqrt();
    let spread = if spread > 0.0 { spread } else { mean_std(ys).1.max(1e-12) };
    // Knots: the median itself, then each distinct worse value at the
    // quantile of its (mid) rank.
    let mut knots = vec![(median, median)];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        if sorted[i] > median {
            let q = ((i + j) as f64 / 2.0 + 0.5) / n as f64;
            let w = median + spread * normal_quantile(q).max(0.0);
            let w = w.max(knots.last().map_or(median, |k| k.1 + 1e-12 * spread));
            knots.push((sorted[i], w));
        }
        i = j + 1;
    }
    (median, knots)
}

impl OutputTransform {
    /// Choose the transform for these (finite) values.
    pub fn fit(ys: &[f64]) -> OutputTransform {
        let (median, knots) = half_rank(ys);
        let warp = |y: f64| if y > median && knots.len() > 1 { interpolate(&knots, y, |p| p.0, |p| p.1) } else { y };
        let ys: Vec<f64> = ys.iter().map(|&y| warp(y)).collect();
        let ys = &ys[..];
        let (centre, s) = mean_std(ys);
        let scale = if s > 0.0 && s.is_finite() { s } else { 1.0 };
        let pre: Vec<f64> = ys.iter().map(|y| (y - centre) / scale).collect();
        let lambda = if ys.len() >= 5 && skewness(&pre).abs() > SKEW_LIMIT {
            let (mut a, mut b) = (-2.0f64, 4.0f64);
            let g = (5f64.sqrt() - 1.0) / 2.0;
            for _ in 0..40 {
                let (c, d) = (b - g * (b - a), a + g * (b - a));
                if yj_loglik(&pre, c) > yj_loglik(&pre, d) {
                    b = d;
                } else {
                    a = c;
                }
            }
            Some((a + b) / 2.0)
        } else {
            None
        };
        let warped: Vec<f64> = pre.iter().map(|&v| lambda.map_or(v, |l| yeo_johnson(v, l))).collect();
        let (mean, std) = mean_std(&warped);
        let std = if std > 0.0 && std.is_finite() { std } else { 1.0 };
        OutputTransform { median, knots, centre, scale, lambda, mean, std }
    }

    fn rank_warp(&self, y: f64) -> f64 {
        if y > self.median && self.knots.len() > 1 { interpolate(&self.knots, y, |p| p.0, |p| p.1) } else { y }
    }

    fn rank_unwarp(&self, w: f64) -> f64 {
        if w > self.median && self.knots.len() > 1 { interpolate(&self.knots, w, |p| p.1, |p| p.0) } else { w }
    }

    /// True when the Yeo-Johnson power warp is applied (the values were too skewed).
    pub fn is_warped(&self) -> bool {
        self.lambda.is_some()
    }

    /// Raw value → model scale.
    pub fn forward(&self, y: f64) -> f64 {
        let v = (self.rank_warp(y) - self.centre) / self.scale;
        let w = self.lambda.map_or(v, |l| yeo_johnson(v, l));
        (w - self.mean) / self.std
    }

    /// Model scale → raw value.
    pub fn inverse(&self, z: f64) -> f64 {
        let w = z * self.std + self.mean;
        let v = self.lambda.map_or(w, |l| yeo_johnson_inverse(w, l));
        self.rank_unwarp(v * self.scale + self.centre)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_values_are_only_standardized() {
        let ys: Vec<f64> = (0..20).map(|i| i as f64).collect();
        let t = OutputTransform::fit(&ys);
        assert!(!t.is_warped());
        let z: Vec<f64> = ys.iter().map(|&y| t.forward(y)).collect();
        let (m, s) = mean_std(&z);
        assert!(m.abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
    }

    #[test]
    fn worse_half_is_rank_warped_and_better_half_kept() {
        let mut ys: Vec<f64> = (0..30).map(|i| 15.0 + (i as f64) * 0.3).collect();
        ys.extend([2000.0, 2500.0, 3100.0]);
        let t = OutputTransform::fit(&ys);
        // The outliers land within a few spreads of the rest.
        let z: Vec<f64> = ys.iter().map(|&y| t.forward(y)).collect();
        assert!(z.iter().cloned().fold(f64::NEG_INFINITY, f64::max) < 4.0, "{z:?}");
        // Below the median differences keep their ratios.
        let (a, b, c) = (t.forward(15.0), t.forward(15.3), t.forward(15.6));
        assert!(((b - a) - (c - b)).abs() < 1e-9 * (b - a).abs().max(1.0) || t.is_warped());
    }

    #[test]
    fn heavy_tail_is_warped_monotonically_and_inverts() {
        // Most values near 20, a few saturated ones near 2000.
        let mut ys: Vec<f64> = (0..30).map(|i| 15.0 + (i as f64) * 0.3).collect();
        ys.extend([2000.0, 2500.0, 3100.0]);
        let t = OutputTransform::fit(&ys);
        let z: Vec<f64> = ys.iter().map(|&y| t.forward(y)).collect();
        assert!(skewness(&z).abs() < skewness(&ys).abs());
        for w in ys.windows(2) {
            assert!(t.forward(w[0]) < t.forward(w[1]));
        }
        for &y in &ys {
            assert!((t.inverse(t.forward(y)) - y).abs() < 1e-6 * y.abs().max(1.0), "{y}");
        }
    }

    #[test]
    fn constant_values_do_not_divide_by_zero() {
        let t = OutputTransform::fit(&[3.0, 3.0, 3.0]);
        assert_eq!(t.forward(3.0), 0.0);
        assert!((t.inverse(0.0) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn yeo_johnson_round_trips_both_signs() {
        for l in [-1.5, 0.0, 0.5, 1.0, 2.0, 3.0] {
            for y in [-5.0, -0.5, 0.0, 0.7, 9.0] {
                assert!((yeo_johnson_inverse(yeo_johnson(y, l), l) - y).abs() < 1e-9, "l={l} y={y}");
            }
        }
    }
}
