//! The strategy parameters CMA-ES derives from the dimension and the
//! population size.

use crate::stats::normal_quantile;

/// Strategy parameters of one population size (tutorial defaults, with
/// negative weights for the active covariance update). Derived, never stored.
pub(super) struct Params {
    pub(super) lambda: usize,
    pub(super) mu: usize,
    /// `lambda` weights: positive ones sum to 1, negative ones to `-alpha`.
    pub(super) weights: Vec<f64>,
    pub(super) sum_weights: f64,
    pub(super) mueff: f64,
    pub(super) cc: f64,
    pub(super) cs: f64,
    pub(super) c1: f64,
    pub(super) cmu: f64,
    pub(super) damps: f64,
    /// E||N(0, I)||.
    pub(super) chi_n: f64,
    /// Generations between eigendecompositions.
    pub(super) eigen_every: u64,
    /// Minimum internal std of a discrete coordinate, in units of its bin width.
    pub(super) margin: f64,
}

impl Params {
    pub(super) fn new(n: usize, lambda: usize) -> Params {
        let nf = n as f64;
        let lambda = lambda.max(2);
        let mu = lambda / 2;
        let raw: Vec<f64> = (1..=lambda).map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - (i as f64).ln()).collect();
        let pos_sum: f64 = raw[..mu].iter().sum();
        let pos_sq: f64 = raw[..mu].iter().map(|w| w * w).sum();
        let mueff = pos_sum * pos_sum / pos_sq;
        let neg_sum: f64 = raw[mu..].iter().filter(|w| **w < 0.0).sum::<f64>().abs();
        let neg_sq: f64 = raw[mu..].iter().filter(|w| **w < 0.0).map(|w| w * w).sum();
        let mueff_neg = if neg_sq > 0.0 { neg_sum * neg_sum / neg_sq } else { 0.0 };

        let alpha_cov = 2.0;
        let c1 = alpha_cov / ((nf + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1)
            .min(alpha_cov * (0.25 + mueff + 1.0 / mueff - 2.0) / ((nf + 2.0).powi(2) + alpha_cov * mueff / 2.0))
            .max(0.0);
        // cs and damps as in pycma 4: a slightly faster path than the
        // tutorial's, and more damping for large populations (mueff >> n),
        // which keeps IPOP's big runs exploring instead of shrinking early.
        let cs = ((mueff + 2.0) / (nf + mueff + 3.0)).min(0.5);
        let damp_inner = (3.0 * (1.0 - 0.5f64.powf(nf / 9.0))).max(1.0);
        let damps = 1.0 + 2.0 * (damp_inner * ((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);

        let alpha_neg = if cmu > 0.0 && neg_sum > 0.0 {
            let a_mu = 1.0 + c1 / cmu;
            let a_mueff = 1.0 + 2.0 * mueff_neg / (mueff + 2.0);
            let a_posdef = (1.0 - c1 - cmu) / (nf * cmu);
            a_mu.min(a_mueff).min(a_posdef).max(0.0) / neg_sum
        } else {
            0.0
        };
        let weights: Vec<f64> = raw.iter().map(|&w| if w >= 0.0 { w / pos_sum } else { w * alpha_neg }).collect();
        let sum_weights = weights.iter().sum();
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let eigen_every = ((1.0 / ((c1 + cmu) * nf * 10.0)).floor() as u64).max(1);
        // Margin (Hamano et al.): a sample leaves the mean's bin with
        // probability at least alpha = 1/(n lambda) when the mean sits at the
        // bin's centre, so about one discrete coordinate moves per generation.
        let alpha = 1.0 / (nf * lambda as f64);
        let margin = 0.5 / normal_quantile(1.0 - alpha / 2.0);
        Params { lambda, mu, weights, sum_weights, mueff, cc, cs, c1, cmu, damps, chi_n, eigen_every, margin }
    }
}
