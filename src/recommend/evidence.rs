//! What repeated measurements (and the model, where there are few) say: the
//! noise of one measurement, intervals for a configuration's value, and the
//! difference from the baseline with the probability that it is better.
//!
//! Everything here is on the score's scale (lower is better); the caller
//! turns it into the user's units. Noise is taken to be the same everywhere
//! (pooled over every repeated configuration), except that a configuration
//! measured three or more times leans towards its own spread.

use crate::stats::{student_t_cdf, student_t_quantile};

/// Degrees of freedom the model's noise estimate counts as (it comes from many trials, but
/// through a model that can be wrong).
const MODEL_DOF: f64 = 10.0;
/// How many degrees of freedom of the pooled noise a configuration's own spread is weighed
/// against.
const PRIOR_DOF: f64 = 4.0;
/// Noise below this share of the spread of the study's values does not matter.
const NOISY_SHARE: f64 = 0.01;
/// Two-sided coverage of the intervals.
pub const COVERAGE: f64 = 0.90;

/// Where a noise estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseSource {
    /// Configurations measured more than once.
    Repeats,
    /// The noise the GP fitted.
    Model,
    /// Both, pooled.
    RepeatsAndModel,
    /// Neither: no repeats and no model.
    Unknown,
    /// The evaluator says it measures the same every time: no noise, whatever a model fitted.
    Deterministic,
}

/// The noise of one measurement, on the score's scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseEstimate {
    /// Variance of one measurement (0 when repeats came out identical).
    pub var: f64,
    /// Degrees of freedom behind `var`.
    pub dof: f64,
    /// Where it comes from.
    pub source: NoiseSource,
}

/// Sum of squared deviations from the mean, and the mean.
pub fn sum_squares(values: &[f64]) -> (f64, f64) {
    let m = values.iter().sum::<f64>() / values.len().max(1) as f64;
    (values.iter().map(|v| (v - m).powi(2)).sum(), m)
}

impl NoiseEstimate {
    /// Pool the spread of every repeated configuration (`groups`: each configuration's
    /// scores) with the model's noise variance, if any. Repeats that came out identical
    /// (an evaluator that is deterministic) give a variance of 0, whatever the model says.
    pub fn pool(groups: &[&[f64]], model_var: Option<f64>, scale: f64) -> NoiseEstimate {
        let (mut ss, mut dof) = (0.0, 0.0);
        for g in groups.iter().filter(|g| g.len() > 1) {
            ss += sum_squares(g).0;
            dof += (g.len() - 1) as f64;
        }
        let model_var = model_var.filter(|v| v.is_finite() && *v >= 0.0);
        let identical = ss <= (1e-12 * scale.max(f64::MIN_POSITIVE)).powi(2);
        match (dof > 0.0, model_var) {
            (true, _) if identical => NoiseEstimate { var: 0.0, dof, source: NoiseSource::Repeats },
            (true, Some(mv)) => NoiseEstimate {
                var: (ss + MODEL_DOF * mv) / (dof + MODEL_DOF),
                dof: dof + MODEL_DOF,
                source: NoiseSource::RepeatsAndModel,
            },
            (true, None) => NoiseEstimate { var: ss / dof, dof, source: NoiseSource::Repeats },
            (false, Some(mv)) => NoiseEstimate { var: mv, dof: MODEL_DOF, source: NoiseSource::Model },
            (false, None) => NoiseEstimate { var: f64::NAN, dof: 0.0, source: NoiseSource::Unknown },
        }
    }

    /// Nothing known about the noise (no interval is given).
    pub fn unknown() -> NoiseEstimate {
        NoiseEstimate { var: f64::NAN, dof: 0.0, source: NoiseSource::Unknown }
    }

    /// No noise: the evaluator is deterministic.
    pub fn none() -> NoiseEstimate {
        NoiseEstimate { var: 0.0, dof: f64::INFINITY, source: NoiseSource::Deterministic }
    }

    /// Whether the noise is known.
    pub fn known(&self) -> bool {
        self.source != NoiseSource::Unknown
    }

    /// Whether the noise matters next to `spread` (the standard deviation of the study's
    /// values).
    pub fn noisy(&self, spread: f64) -> bool {
        self.known() && self.var.sqrt() > NOISY_SHARE * spread
    }

    /// The variance of one measurement of a configuration measured `values`, and its degrees
    /// of freedom: the pooled noise, leaning towards the configuration's own spread when it
    /// was measured three times or more.
    fn for_group(&self, values: &[f64]) -> (f64, f64) {
        let n = values.len();
        if n < 3 || self.var == 0.0 {
            return (self.var, self.dof);
        }
        let prior = PRIOR_DOF.min(self.dof);
        let own = (n - 1) as f64;
        ((sum_squares(values).0 + prior * self.var) / (own + prior), own + prior)
    }
}

/// A configuration's mean with a [`COVERAGE`] interval for its true value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Mean of its measurements.
    pub mean: f64,
    /// Interval for the true mean; `None` when the noise is unknown.
    pub interval: Option<(f64, f64)>,
    /// Variance of `mean` (noise variance / count); NaN when unknown.
    pub var_of_mean: f64,
    /// Degrees of freedom of `var_of_mean`.
    pub dof: f64,
}

/// The mean of `values` (one configuration's scores) and its interval under `noise`.
pub fn estimate(values: &[f64], noise: &NoiseEstimate) -> Estimate {
    let (_, mean) = sum_squares(values);
    let (var, dof) = noise.for_group(values);
    let var_of_mean = var / values.len().max(1) as f64;
    let interval = noise.known().then(|| {
        let h = half_width(var_of_mean, dof);
        (mean - h, mean + h)
    });
    Estimate { mean, interval, var_of_mean, dof }
}

/// Half the width of a [`COVERAGE`] interval of a normal distribution with standard
/// deviation `sd`.
pub fn normal_half_width(sd: f64) -> f64 {
    crate::stats::normal_quantile(0.5 + COVERAGE / 2.0) * sd
}

fn half_width(var: f64, dof: f64) -> f64 {
    if var == 0.0 { 0.0 } else { student_t_quantile(0.5 + COVERAGE / 2.0, dof) * var.sqrt() }
}

/// How much better (lower) a configuration's score is than the baseline's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// Baseline minus candidate: positive = the candidate is better.
    pub gain: f64,
    /// [`COVERAGE`] interval for the true gain; `None` when the noise is unknown.
    pub interval: Option<(f64, f64)>,
    /// Probability that the true gain is positive; `None` when the noise is unknown.
    pub probability_better: Option<f64>,
}

/// Compare a candidate's estimate with the baseline's (Welch's comparison of two means, with
/// the smaller of the two degrees of freedom).
pub fn difference(candidate: &Estimate, baseline: &Estimate) -> Difference {
    let gain = baseline.mean - candidate.mean;
    let var = candidate.var_of_mean + baseline.var_of_mean;
    if !var.is_finite() {
        return Difference { gain, interval: None, probability_better: None };
    }
    let dof = candidate.dof.min(baseline.dof);
    gain_with(gain, var, dof)
}

fn gain_with(gain: f64, var: f64, dof: f64) -> Difference {
    let h = half_width(var, dof);
    let p = match (var == 0.0, gain.total_cmp(&0.0)) {
        (false, _) => student_t_cdf(gain / var.sqrt(), dof),
        (true, std::cmp::Ordering::Greater) => 1.0,
        (true, std::cmp::Ordering::Less) => 0.0,
        (true, std::cmp::Ordering::Equal) => 0.5,
    };
    Difference { gain, interval: Some((gain - h, gain + h)), probability_better: Some(p) }
}

/// The same comparison from paired measurements: `pairs` of (baseline, candidate) scores taken
/// side by side, so that drift in the system between pairs cancels. Needs two pairs or more.
pub fn paired_difference(pairs: &[(f64, f64)]) -> Option<Difference> {
    if pairs.len() < 2 {
        return None;
    }
    let gains: Vec<f64> = pairs.iter().map(|(b, c)| b - c).collect();
    let (ss, gain) = sum_squares(&gains);
    let dof = (gains.len() - 1) as f64;
    Some(gain_with(gain, ss / dof / gains.len() as f64, dof))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_pool_and_identical_repeats_mean_no_noise() {
        let a = [10.0, 12.0];
        let b = [5.0, 7.0, 6.0];
        let n = NoiseEstimate::pool(&[&a, &b, &[3.0]], None, 10.0);
        // ss = 2 + 2, dof = 1 + 2.
        assert_eq!((n.var, n.dof, n.source), (4.0 / 3.0, 3.0, NoiseSource::Repeats));
        let with_model = NoiseEstimate::pool(&[&a, &b], Some(1.0), 10.0);
        assert!((with_model.var - (4.0 + 10.0) / 13.0).abs() < 1e-12);
        let same = NoiseEstimate::pool(&[&[4.0, 4.0]], Some(0.3), 10.0);
        assert_eq!((same.var, same.source), (0.0, NoiseSource::Repeats));
        assert!(!same.noisy(1.0));
        let none = NoiseEstimate::pool(&[&[1.0]], None, 1.0);
        assert!(!none.known() && estimate(&[1.0], &none).interval.is_none());
    }

    #[test]
    fn intervals_follow_students_t() {
        let noise = NoiseEstimate { var: 4.0, dof: 4.0, source: NoiseSource::Repeats };
        let e = estimate(&[10.0], &noise);
        let (lo, hi) = e.interval.unwrap();
        assert!((hi - 10.0 - 2.1318 * 2.0).abs() < 1e-3 && (10.0 - lo - (hi - 10.0)).abs() < 1e-12);
        // Four measurements halve the width (same dof: below three it is the pooled noise).
        let b = estimate(&[20.0, 20.0], &noise);
        let d = difference(&e, &b);
        assert_eq!(d.gain, 10.0);
        let se = (4.0f64 + 2.0).sqrt();
        assert!((d.probability_better.unwrap() - student_t_cdf(10.0 / se, 4.0)).abs() < 1e-12);
        let (dl, dh) = d.interval.unwrap();
        assert!(dl < 10.0 && dh > 10.0 && (dh - dl - 2.0 * 2.1318 * se).abs() < 1e-3);
    }

    #[test]
    fn pairing_cancels_drift() {
        // The system slows down by 10 per round; the candidate is always 1 better.
        let pairs: Vec<(f64, f64)> = (0..5).map(|r| (100.0 + 10.0 * r as f64, 99.0 + 10.0 * r as f64)).collect();
        let d = paired_difference(&pairs).unwrap();
        assert_eq!((d.gain, d.probability_better), (1.0, Some(1.0)));
        // Unpaired, the drift swamps the gain.
        let noise = NoiseEstimate::pool(
            &[&pairs.iter().map(|p| p.0).collect::<Vec<_>>(), &pairs.iter().map(|p| p.1).collect::<Vec<_>>()],
            None,
            1.0,
        );
        let base = estimate(&pairs.iter().map(|p| p.0).collect::<Vec<_>>(), &noise);
        let cand = estimate(&pairs.iter().map(|p| p.1).collect::<Vec<_>>(), &noise);
        assert!(difference(&cand, &base).probability_better.unwrap() < 0.6);
        assert!(paired_difference(&pairs[..1]).is_none());
    }
}
