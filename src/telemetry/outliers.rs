//! Outliers: points far from a rolling median, measured in median absolute deviations.
//! They are flagged, never removed: a spike may be the very event a tuner must see.

use crate::error::{Error, Result};
use crate::stats;

/// 1 / Φ⁻¹(3/4): makes the MAD estimate a standard deviation under normal noise.
const MAD_TO_SIGMA: f64 = 1.4826;
/// √(π/2): the same for the mean absolute deviation, used when the MAD is zero.
const MEAN_AD_TO_SIGMA: f64 = 1.2533;

/// When a point is an outlier.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutlierConfig {
    /// Flag points whose robust z-score (distance to the rolling median over the scaled MAD) is above this.
    pub threshold: f64,
    /// Width of the centred rolling window, in seconds (at least 5 steps are used).
    ///
    /// The default, 6 hours, is shorter than a daily cycle on purpose: the median must follow the
    /// cycle. Over a whole day it sits at the dominant level, and every point of a daytime plateau
    /// looks like an outlier (1488 of 4032 points of NAB's `art_daily_small_noise`, none at 6 h).
    pub window_s: i64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig { threshold: 5.0, window_s: 6 * 3600 }
    }
}

impl OutlierConfig {
    /// Refuses a threshold that is not a finite number > 0, or a window that is not > 0 seconds.
    pub fn check(&self) -> Result<()> {
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(Error::Config(format!(
                "outliers.threshold: must be a finite number > 0 (got {})",
                self.threshold
            )));
        }
        if self.window_s <= 0 {
            return Err(Error::Config(format!("outliers.window_s: must be > 0 seconds (got {})", self.window_s)));
        }
        Ok(())
    }

    /// Window length in points for a series of step `step` seconds: odd, at least 5.
    pub fn window_points(&self, step: i64) -> usize {
        let w = (self.window_s / step.max(1)).max(5) as usize;
        w | 1
    }
}

/// One flagged point.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Outlier {
    /// Unix seconds.
    pub at: i64,
    /// The point's value, in the series' units.
    pub value: f64,
    /// The rolling median around it.
    pub median: f64,
    /// Robust z-score: |value − median| / (1.4826 · MAD).
    pub z: f64,
}

/// Flags points of an evenly spaced series (`step` seconds apart) far from their rolling median.
/// Points marked in `skip` (filled by interpolation) are neither flagged nor used as neighbours;
/// `skip` may be empty, meaning none. When the MAD of a window is zero (a flat stretch), the mean
/// absolute deviation stands in, so a lone spike on a flat line is still flagged.
pub fn find_outliers(points: &[(i64, f64)], step: i64, skip: &[bool], config: &OutlierConfig) -> Vec<Outlier> {
    let half = config.window_points(step) / 2;
    let skipped = |i: usize| skip.get(i).copied().unwrap_or(false);
    let mut window = Vec::with_capacity(2 * half + 1);
    let mut out = Vec::new();
    for (i, &(at, value)) in points.iter().enumerate() {
        if skipped(i) {
            continue;
        }
        window.clear();
        let hi = (i + half + 1).min(points.len());
        window.extend((i.saturating_sub(half)..hi).filter(|&j| !skipped(j)).map(|j| points[j].1));
        let median = stats::median(&mut window);
        let mean_ad = window.iter().map(|v| (v - median).abs()).sum::<f64>() / window.len() as f64;
        for v in window.iter_mut() {
            *v = (*v - median).abs();
        }
        let mad = stats::median(&mut window);
        let scale = if mad > 0.0 { MAD_TO_SIGMA * mad } else { MEAN_AD_TO_SIGMA * mean_ad };
        if scale <= 0.0 {
            continue;
        }
        let z = (value - median).abs() / scale;
        if z > config.threshold {
            out.push(Outlier { at, value, median, z });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_on_a_flat_line_is_flagged() {
        let mut pts: Vec<(i64, f64)> = (0..50).map(|i| (i * 60, 7.0)).collect();
        pts[20].1 = 9.0;
        let found = find_outliers(&pts, 60, &[], &OutlierConfig { threshold: 5.0, window_s: 600 });
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].at, 20 * 60);
        assert_eq!(found[0].median, 7.0);
    }

    #[test]
    fn bad_config_is_refused() {
        assert!(OutlierConfig { threshold: f64::NAN, window_s: 60 }.check().is_err());
        assert!(OutlierConfig { threshold: 5.0, window_s: 0 }.check().is_err());
        assert!(OutlierConfig::default().check().is_ok());
    }
}
