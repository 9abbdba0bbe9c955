//! Multi-objective test functions with known Pareto fronts, from their published definitions:
//! ZDT1-3 (Zitzler, Deb and Thiele, "Comparison of multiobjective evolutionary algorithms:
//! empirical results", 2000) and DTLZ2 with three objectives (Deb, Thiele, Laumanns and
//! Zitzler, "Scalable multi-objective optimization test problems", 2002). Every variable lies
//! in `[0, 1]`; all objectives are minimized and reported as `f1`, `f2` (, `f3`).

use std::f64::consts::{FRAC_PI_2, PI};

/// The metric names of an `m`-objective function.
pub const METRICS: [&str; 3] = ["f1", "f2", "f3"];

/// ZDT's distance function: `1 + 9 · mean(x[1..])`.
fn zdt_g(x: &[f64]) -> f64 {
    1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64
}

/// ZDT1: convex front `f2 = 1 - sqrt(f1)`, reached where `x[1..] = 0`. Reads at least two
/// variables in `[0, 1]`.
pub fn zdt1(x: &[f64]) -> [f64; 2] {
    let g = zdt_g(x);
    [x[0], g * (1.0 - (x[0] / g).sqrt())]
}

/// ZDT2: concave front `f2 = 1 - f1²`.
pub fn zdt2(x: &[f64]) -> [f64; 2] {
    let g = zdt_g(x);
    [x[0], g * (1.0 - (x[0] / g).powi(2))]
}

/// ZDT3: a front in five disconnected pieces, `f2 = 1 - sqrt(f1) - f1 sin(10π f1)` where that
/// is non-dominated.
pub fn zdt3(x: &[f64]) -> [f64; 2] {
    let g = zdt_g(x);
    let r = x[0] / g;
    [x[0], g * (1.0 - r.sqrt() - r * (10.0 * PI * x[0]).sin())]
}

/// DTLZ2 with three objectives: the front is the positive part of the unit sphere, reached
/// where `x[2..] = 0.5`. Reads at least three variables in `[0, 1]`.
pub fn dtlz2(x: &[f64]) -> [f64; 3] {
    let g: f64 = x[2..].iter().map(|v| (v - 0.5) * (v - 0.5)).sum();
    let (a, b) = (x[0] * FRAC_PI_2, x[1] * FRAC_PI_2);
    [(1.0 + g) * a.cos() * b.cos(), (1.0 + g) * a.cos() * b.sin(), (1.0 + g) * a.sin()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fronts_are_where_the_papers_put_them() {
        for f1 in [0.0, 0.25, 0.64, 1.0] {
            let x = [f1, 0.0, 0.0, 0.0];
            assert_eq!(zdt1(&x), [f1, 1.0 - f64::sqrt(f1)]);
            assert_eq!(zdt2(&x), [f1, 1.0 - f1 * f1]);
            assert!((zdt3(&x)[1] - (1.0 - f1.sqrt() - f1 * (10.0 * PI * f1).sin())).abs() < 1e-15);
        }
        // Off the front, g > 1 lifts f2.
        assert!(zdt1(&[0.25, 0.5, 0.5, 0.5])[1] > 0.5);
        for (a, b) in [(0.0, 0.0), (0.3, 0.7), (1.0, 1.0)] {
            let on = dtlz2(&[a, b, 0.5, 0.5, 0.5]);
            assert!((on.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-12, "{on:?}");
            let off = dtlz2(&[a, b, 0.9, 0.5, 0.5]);
            assert!(off.iter().map(|v| v * v).sum::<f64>() > 1.0);
        }
    }
}
