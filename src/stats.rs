//! Small numeric helpers shared by the optimizers, the GP, the forecasts and
//! the recommendations: the standard normal and Student's t distributions,
//! and medians.

use special::Beta;

/// ln √(2π)
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Standard normal log density.
pub fn normal_log_pdf(z: f64) -> f64 {
    -0.5 * z * z - LN_SQRT_2PI
}

/// Standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// Quantile of the standard normal distribution for `p` in (0, 1) (clamped
/// to 1e-300..1-1e-16): Acklam's approximation refined by one Halley step
/// on the CDF, accurate to about machine precision.
pub fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let x = acklam(p);
    let e = normal_cdf(x) - p;
    let u = e * (std::f64::consts::TAU).sqrt() * (0.5 * x * x).exp();
    let refined = x - u / (1.0 + 0.5 * x * u);
    if refined.is_finite() { refined } else { x }
}

/// Acklam's rational approximation of the normal quantile (relative error
/// below 1.2e-9).
fn acklam(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// CDF of Student's t distribution with `dof` degrees of freedom (> 0; the
/// normal CDF beyond 1e6), through the regularized incomplete beta function.
pub fn student_t_cdf(t: f64, dof: f64) -> f64 {
    if dof.is_nan() || dof <= 0.0 || dof > 1e6 || !t.is_finite() {
        return normal_cdf(t);
    }
    let (a, b) = (dof / 2.0, 0.5);
    let x = dof / (dof + t * t);
    let tail = 0.5 * x.inc_beta(a, b, a.ln_beta(b));
    if t > 0.0 { 1.0 - tail } else { tail }
}

/// Quantile of Student's t distribution for `p` in (0, 1) with `dof` degrees
/// of freedom (the normal quantile beyond 1e6).
pub fn student_t_quantile(p: f64, dof: f64) -> f64 {
    if dof.is_nan() || dof <= 0.0 || dof > 1e6 {
        return normal_quantile(p);
    }
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let (a, b) = (dof / 2.0, 0.5);
    // P(|T| > t) = I_x(a, b) with x = dof / (dof + t²).
    let two_tail = 2.0 * p.min(1.0 - p);
    let x = two_tail.inv_inc_beta(a, b, a.ln_beta(b));
    let t = (dof * (1.0 - x) / x.max(1e-300)).sqrt();
    if p < 0.5 { -t } else { t }
}

/// Median of `v` (mean of the two middle values for an even length),
/// reordering `v`; NaN-free input expected (total order otherwise).
pub fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (lower, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + m) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_t_matches_tables_and_inverts() {
        // Two-sided 90% critical values: dof 1 → 6.314, 4 → 2.132, 30 → 1.697.
        for (dof, t95) in [(1.0, 6.3138), (4.0, 2.1318), (30.0, 1.6973)] {
            assert!((student_t_quantile(0.95, dof) - t95).abs() < 1e-3, "dof {dof}");
            assert!((student_t_cdf(t95, dof) - 0.95).abs() < 1e-4, "dof {dof}");
            assert!((student_t_cdf(-t95, dof) - 0.05).abs() < 1e-4, "dof {dof}");
        }
        assert!((student_t_quantile(0.95, 1e9) - 1.6449).abs() < 1e-3);
        assert_eq!(student_t_cdf(0.0, 3.0), 0.5);
    }

    #[test]
    fn normal_quantile_inverts_the_cdf() {
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!((normal_quantile(0.9) - 1.281_551_565_544_600_5).abs() < 1e-12);
        assert!(normal_quantile(0.5).abs() < 1e-15);
        for p in [1e-10, 0.001, 0.02, 0.3, 0.7, 0.98, 0.999] {
            assert!((normal_cdf(normal_quantile(p)) - p).abs() < 1e-12 * p.max(1e-3), "{p}");
        }
    }

    #[test]
    fn medians_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
