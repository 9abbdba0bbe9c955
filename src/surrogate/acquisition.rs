//! Acquisition functions for minimization, as functions of the posterior
//! mean `μ` and standard deviation `σ` at a point, each with its partial
//! derivatives `(∂/∂μ, ∂/∂σ)` so that the Bayesian optimizer can chain them
//! with the GP's gradients.
//!
//! Log expected improvement is computed in log space throughout: with
//! `z = (best - μ)/σ`, `EI = σ h(z)`, `h(z) = φ(z) + zΦ(z)`. For `z < 0`,
//! `h(z) = φ(z) (1 - t R(t))` with `t = -z` and Mills' ratio
//! `R(t) = Φ(-t)/φ(t) = √(π/2) erfcx(t/√2)`; beyond `t = 30` (where erfc
//! underflows) the asymptotic series `1 - tR(t) ≈ t⁻² - 3t⁻⁴ + 15t⁻⁶` is used.
//! So `log EI` stays finite and has a useful gradient even when the
//! improvement is 1e-300, which is where a plain EI is flat zero and the
//! search stalls.

use serde::{Deserialize, Serialize};

use crate::stats::{normal_cdf as cdf, normal_log_pdf as log_phi};

/// Mills' ratio R(t) = Φ(-t)/φ(t) for t >= 0 (finite for any t).
fn mills(t: f64) -> f64 {
    if t < 30.0 {
        let u = t / std::f64::consts::SQRT_2;
        // erfcx(u) = exp(u²) erfc(u)
        (std::f64::consts::PI / 2.0).sqrt() * (u * u).exp() * libm::erfc(u)
    } else {
        let t2 = t * t;
        (1.0 - 1.0 / t2 + 3.0 / (t2 * t2) - 15.0 / (t2 * t2 * t2)) / t
    }
}

/// log Φ(z), finite for any z.
pub fn log_cdf(z: f64) -> f64 {
    if z > -5.0 { cdf(z).ln() } else { log_phi(z) + mills(-z).ln() }
}

/// d/dz log Φ(z) = φ(z)/Φ(z).
fn dlog_cdf(z: f64) -> f64 {
    if z > -5.0 { (log_phi(z) - cdf(z).ln()).exp() } else { 1.0 / mills(-z) }
}

/// log h(z) and h'(z)/h(z) = Φ(z)/h(z).
fn log_h(z: f64) -> (f64, f64) {
    if z >= -1.0 {
        let (p, c) = (log_phi(z).exp(), cdf(z));
        let h = p + z * c;
        (h.ln(), c / h)
    } else {
        let t = -z;
        let one_minus = if t < 30.0 {
            1.0 - t * mills(t)
        } else {
            let t2 = t * t;
            (1.0 - 3.0 / t2 + 15.0 / (t2 * t2)) / t2
        };
        // Φ(z)/h(z) = R(t) / (1 - t R(t))
        (log_phi(z) + one_minus.ln(), mills(t) / one_minus)
    }
}

/// Which acquisition function the Bayesian optimizer maximizes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Acquisition {
    /// log expected improvement (the default).
    #[default]
    LogEi,
    /// upper confidence bound (lower, for minimization): `-(μ - κσ)`.
    Ucb,
    /// log probability of improvement.
    Pi,
}

impl Acquisition {
    /// Value to maximize and its partials `(∂/∂μ, ∂/∂σ)`; `best` is the
    /// incumbent on the model's scale, `kappa` the UCB exploration weight.
    pub fn eval(self, mu: f64, sigma: f64, best: f64, kappa: f64) -> (f64, f64, f64) {
        let sigma = sigma.max(1e-12);
        match self {
            Acquisition::LogEi => {
                let z = (best - mu) / sigma;
                let (lh, ratio) = log_h(z);
                // ∂z/∂μ = -1/σ, ∂z/∂σ = -z/σ
                (lh + sigma.ln(), -ratio / sigma, 1.0 / sigma - ratio * z / sigma)
            }
            Acquisition::Pi => {
                let z = (best - mu) / sigma;
                let g = dlog_cdf(z);
                (log_cdf(z), -g / sigma, -g * z / sigma)
            }
            Acquisition::Ucb => (-(mu - kappa * sigma), -1.0, kappa),
        }
    }
}

/// log P(c(x) <= 0) for a constraint modelled as N(μ, σ²), with partials.
pub fn log_feasibility(mu: f64, sigma: f64) -> (f64, f64, f64) {
    let sigma = sigma.max(1e-12);
    let z = -mu / sigma;
    let g = dlog_cdf(z);
    (log_cdf(z), -g / sigma, -g * z / sigma)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ei_direct(mu: f64, sigma: f64, best: f64) -> f64 {
        let z = (best - mu) / sigma;
        sigma * (log_phi(z).exp() + z * cdf(z))
    }

    #[test]
    fn log_ei_matches_the_direct_formula_where_that_is_accurate() {
        for (mu, s, b) in [(0.0, 1.0, 0.0), (1.0, 0.5, 0.0), (-1.0, 2.0, 0.5), (3.0, 1.0, 0.0), (0.2, 0.1, 0.0)] {
            let (l, _, _) = Acquisition::LogEi.eval(mu, s, b, 0.0);
            let direct = ei_direct(mu, s, b).ln();
            assert!((l - direct).abs() < 1e-9, "mu={mu} s={s}: {l} vs {direct}");
        }
    }

    #[test]
    fn log_ei_stays_finite_and_ordered_for_tiny_improvements() {
        let mut last = f64::INFINITY;
        for mu in [5.0, 10.0, 20.0, 40.0, 100.0, 1000.0] {
            let (l, dmu, _) = Acquisition::LogEi.eval(mu, 1.0, 0.0, 0.0);
            assert!(l.is_finite() && l < last, "mu={mu}: {l}");
            assert!(dmu < 0.0 && dmu.is_finite());
            last = l;
        }
        // Continuity across the series switch at t = 30: the jump equals the
        // slope (about -t) times the step, to 1e-6.
        let (a, slope, _) = Acquisition::LogEi.eval(29.999999, 1.0, 0.0, 0.0);
        let b = Acquisition::LogEi.eval(30.000001, 1.0, 0.0, 0.0).0;
        assert!((b - a - slope * 2e-6).abs() < 1e-6, "{a} {b} {slope}");
    }

    #[test]
    fn partials_match_finite_differences() {
        for acq in [Acquisition::LogEi, Acquisition::Pi, Acquisition::Ucb] {
            for (mu, s) in [(0.3, 0.7), (4.0, 0.5), (-1.0, 1.3), (45.0, 1.0)] {
                let (_, dmu, ds) = acq.eval(mu, s, 0.0, 2.0);
                let h = 1e-6;
                let fmu = (acq.eval(mu + h, s, 0.0, 2.0).0 - acq.eval(mu - h, s, 0.0, 2.0).0) / (2.0 * h);
                let fs = (acq.eval(mu, s + h, 0.0, 2.0).0 - acq.eval(mu, s - h, 0.0, 2.0).0) / (2.0 * h);
                assert!((dmu - fmu).abs() < 1e-4 * (1.0 + fmu.abs()), "{acq:?} mu={mu}: {dmu} vs {fmu}");
                assert!((ds - fs).abs() < 1e-4 * (1.0 + fs.abs()), "{acq:?} s={s}: {ds} vs {fs}");
            }
        }
    }

    #[test]
    fn feasibility_is_a_probability() {
        assert!((log_feasibility(0.0, 1.0).0 - 0.5f64.ln()).abs() < 1e-12);
        assert!(log_feasibility(-10.0, 1.0).0 > -1e-12);
        let far = log_feasibility(50.0, 1.0).0;
        assert!(far.is_finite() && far < -1000.0);
    }
}
