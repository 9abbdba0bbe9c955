//! Forecasting a workload: a [`Forecaster`] trait, models backed by augurs,
//! and rolling-origin backtests.
//!
//! Models:
//! - [`SeasonalNaive`]: tomorrow repeats today (the value one season ago).
//!   Intervals from the spread of the seasonal differences, widened with the
//!   square root of the number of seasons ahead (the textbook formula for a
//!   seasonal random walk). The baseline every model must beat.
//! - [`MstlEts`]: MSTL decomposition (augurs) of one or more seasonal
//!   periods, with an automatically selected non-seasonal ETS model
//!   (augurs AutoETS) for the trend-plus-remainder. Periods are declared, or
//!   detected with augurs' periodogram detector. Intervals come from the ETS
//!   model (augurs shifts them by the seasonal component, so seasonal
//!   uncertainty is not in them; the backtests measure how well they cover).
//!
//! Series are plain `&[f64]` at a fixed step (resampled by
//! [`crate::telemetry`]); horizons count steps.

#![warn(missing_docs)]

use augurs::Fit;
use augurs::Predict;
use augurs::seasons::Detector as _;

use crate::error::{Error, Result};
use crate::stats::normal_quantile;

/// A point forecast with a prediction interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Forecast {
    /// Point forecast, one value per step ahead.
    pub point: Vec<f64>,
    /// Lower bound of the prediction interval.
    pub lower: Vec<f64>,
    /// Upper bound of the prediction interval.
    pub upper: Vec<f64>,
    /// Nominal coverage of [lower, upper], e.g. 0.8.
    pub level: f64,
}

/// The forecasting models by name: `--model` of `knobs forecast` and
/// `model:` of a workload scenario both choose one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastModel {
    /// [`MstlEts`]: MSTL decomposition with an AutoETS trend.
    #[default]
    MstlEts,
    /// [`SeasonalNaive`]: the value one season ago.
    SeasonalNaive,
}

impl ForecastModel {
    /// Every model, in the order help texts list them.
    pub const ALL: [ForecastModel; 2] = [ForecastModel::MstlEts, ForecastModel::SeasonalNaive];

    /// Its name in a spec (`mstl_ets`).
    pub fn name(self) -> &'static str {
        match self {
            ForecastModel::MstlEts => "mstl_ets",
            ForecastModel::SeasonalNaive => "seasonal_naive",
        }
    }

    /// Its name on the command line (`mstl-ets`): flags spell words with `-`.
    pub fn cli_name(self) -> &'static str {
        match self {
            ForecastModel::MstlEts => "mstl-ets",
            ForecastModel::SeasonalNaive => "seasonal-naive",
        }
    }

    /// One line for help texts.
    pub fn description(self) -> &'static str {
        match self {
            ForecastModel::MstlEts => "MSTL decomposition + AutoETS trend (augurs)",
            ForecastModel::SeasonalNaive => "the value one season ago",
        }
    }

    /// The forecaster: MSTL + AutoETS over `periods` (empty: detected when
    /// fitting), or the seasonal naive forecast at the first of `periods`,
    /// else at `naive_period()`.
    pub fn forecaster(self, periods: Vec<usize>, naive_period: impl FnOnce() -> usize) -> Box<dyn Forecaster> {
        match self {
            ForecastModel::MstlEts => Box::new(MstlEts { periods }),
            ForecastModel::SeasonalNaive => {
                Box::new(SeasonalNaive { period: periods.first().copied().unwrap_or_else(naive_period) })
            }
        }
    }
}

/// A model that forecasts a regularly sampled series.
///
/// ```
/// use knobs::forecast::{Forecast, Forecaster, SeasonalNaive};
///
/// /// The last value, repeated, within ±1.
/// struct Last;
///
/// impl Forecaster for Last {
///     fn name(&self) -> String {
///         "last".to_string()
///     }
///
///     fn forecast(&self, y: &[f64], horizon: usize, level: f64) -> knobs::Result<Forecast> {
///         let v = *y.last().ok_or_else(|| knobs::Error::Config("an empty series".to_string()))?;
///         Ok(Forecast { point: vec![v; horizon], lower: vec![v - 1.0; horizon], upper: vec![v + 1.0; horizon], level })
///     }
/// }
///
/// let days = [1.0, 5.0, 3.0, 1.0, 5.0, 3.0, 1.0, 5.0, 3.0];
/// assert_eq!(Last.forecast(&days, 2, 0.8).unwrap().point, [3.0, 3.0]);
/// // The built-in models answer through the same trait: here the last season repeats.
/// let naive: &dyn Forecaster = &SeasonalNaive { period: 3 };
/// assert_eq!(naive.forecast(&days, 3, 0.8).unwrap().point, [1.0, 5.0, 3.0]);
/// ```
pub trait Forecaster: Send + Sync {
    /// A short name for reports (`seasonal-naive(288)`, `mstl-ets(288)`).
    fn name(&self) -> String;
    /// Fit on `y` and forecast `horizon` steps with `level` intervals.
    fn forecast(&self, y: &[f64], horizon: usize, level: f64) -> Result<Forecast>;
}

fn err(model: &str, message: impl Into<String>) -> Error {
    Error::Config(format!("forecast ({model}): {}", message.into()))
}

fn check(model: &str, y: &[f64], horizon: usize, level: f64, min_len: usize) -> Result<()> {
    if y.len() < min_len {
        return Err(err(model, format!("needs at least {min_len} points, the series has {}", y.len())));
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(err(model, format!("value {i} is not a finite number")));
    }
    if horizon == 0 {
        return Err(err(model, "the horizon must be at least one step"));
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(err(model, format!("the interval level must be between 0 and 1, not {level}")));
    }
    Ok(())
}

/// The value one season ago, repeated.
#[derive(Debug, Clone)]
pub struct SeasonalNaive {
    /// Season length in steps.
    pub period: usize,
}

impl Forecaster for SeasonalNaive {
    fn name(&self) -> String {
        format!("seasonal-naive({})", self.period)
    }

    fn forecast(&self, y: &[f64], horizon: usize, level: f64) -> Result<Forecast> {
        let m = self.period.max(1);
        check(&self.name(), y, horizon, level, m + 2)?;
        let n = y.len();
        let diffs: Vec<f64> = (m..n).map(|t| y[t] - y[t - m]).collect();
        let sigma = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
        let z = normal_quantile(0.5 + level / 2.0);
        let mut f = Forecast { point: vec![], lower: vec![], upper: vec![], level };
        for h in 0..horizon {
            let p = y[n - m + (h % m)];
            let half = z * sigma * ((h / m + 1) as f64).sqrt();
            f.point.push(p);
            f.lower.push(p - half);
            f.upper.push(p + half);
        }
        Ok(f)
    }
}

/// MSTL + AutoETS (augurs); periods declared or detected.
#[derive(Debug, Clone, Default)]
pub struct MstlEts {
    /// Seasonal periods in steps; empty = detect them.
    pub periods: Vec<usize>,
}

/// Seasonal periods of `y` found by augurs' periodogram detector (on the
/// linearly detrended series, so that a trend does not pass for a long
/// season): at most two, strongest first, each seen at least twice.
pub fn detect_periods(y: &[f64]) -> Vec<usize> {
    let n = y.len();
    if n < 16 {
        return Vec::new();
    }
    let tm = (n as f64 - 1.0) / 2.0;
    let ym = y.iter().sum::<f64>() / n as f64;
    let sxy: f64 = y.iter().enumerate().map(|(t, v)| (t as f64 - tm) * (v - ym)).sum();
    let sxx: f64 = (0..n).map(|t| (t as f64 - tm).powi(2)).sum();
    let slope = sxy / sxx;
    let detrended: Vec<f64> = y.iter().enumerate().map(|(t, v)| v - ym - slope * (t as f64 - tm)).collect();
    let detector = augurs::seasons::PeriodogramDetector::builder().min_period(4).build();
    // `detect` lists peaks by increasing power.
    let mut periods: Vec<usize> =
        detector.detect(&detrended).into_iter().rev().map(|p| refine_period(&detrended, p as usize)).collect();
    periods.retain(|p| 2 * p <= n);
    periods.dedup();
    periods.truncate(2);
    periods
}

/// The periodogram's frequency grid is coarse (a 24-step day may show as
/// 25 or 26): move to the lag within ±20% with the highest autocorrelation.
fn refine_period(y: &[f64], p: usize) -> usize {
    let n = y.len();
    let acf = |lag: usize| -> f64 {
        if lag == 0 || lag >= n {
            return f64::NEG_INFINITY;
        }
        (lag..n).map(|t| y[t] * y[t - lag]).sum::<f64>() / (n - lag) as f64
    };
    let (lo, hi) = ((p * 4 / 5).max(2), (p * 6 / 5 + 1).min(n / 2));
    (lo..=hi).max_by(|&a, &b| acf(a).total_cmp(&acf(b))).unwrap_or(p)
}

impl MstlEts {
    fn periods_for(&self, y: &[f64]) -> Vec<usize> {
        if self.periods.is_empty() { detect_periods(y) } else { self.periods.clone() }
    }
}

impl Forecaster for MstlEts {
    fn name(&self) -> String {
        if self.periods.is_empty() {
            "mstl-ets(auto)".into()
        } else {
            format!("mstl-ets({})", self.periods.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","))
        }
    }

    fn forecast(&self, y: &[f64], horizon: usize, level: f64) -> Result<Forecast> {
        let name = self.name();
        check(&name, y, horizon, level, 10)?;
        let periods: Vec<usize> = self.periods_for(y).into_iter().filter(|p| 2 * p <= y.len()).collect();
        let mut f = mstl_ets(&name, y, &periods, horizon, level)?;
        // Calibrate the intervals on the most recent `horizon` points of the
        // training data: forecast them from what precedes them, and scale
        // every half-width so that a `level` share of those errors would
        // have fallen inside (bounded to 0.2x..5x). The ETS intervals alone
        // ignore seasonal uncertainty and grow with the horizon as a random
        // walk's do; the backtests in benches/RESULTS.md show both effects.
        let longest = periods.iter().copied().max().unwrap_or(1);
        if y.len() >= 2 * horizon + 2 * longest + 10 {
            let cut = y.len() - horizon;
            let held = mstl_ets(&name, &y[..cut], &periods, horizon, level)?;
            let mut ratios: Vec<f64> = (0..horizon)
                .map(|i| {
                    let e = y[cut + i] - held.point[i];
                    let half = if e >= 0.0 { held.upper[i] - held.point[i] } else { held.point[i] - held.lower[i] };
                    e.abs() / half.max(1e-12)
                })
                .collect();
            ratios.sort_by(f64::total_cmp);
            let k = ((level * horizon as f64).ceil() as usize).clamp(1, horizon) - 1;
            let factor = ratios[k].clamp(0.2, 5.0);
            for i in 0..horizon {
                f.lower[i] = f.point[i] - (f.point[i] - f.lower[i]) * factor;
                f.upper[i] = f.point[i] + (f.upper[i] - f.point[i]) * factor;
            }
        }
        Ok(f)
    }
}

fn mstl_ets(name: &str, y: &[f64], periods: &[usize], horizon: usize, level: f64) -> Result<Forecast> {
    let trend = augurs::ets::trend::AutoETSTrendModel::from(augurs::ets::AutoETS::non_seasonal());
    let model = augurs::mstl::MSTLModel::new(periods.to_vec(), trend);
    let fitted = model.fit(y).map_err(|e| err(name, format!("fit failed: {e}")))?;
    let f = fitted.predict(horizon, level).map_err(|e| err(name, format!("forecast failed: {e}")))?;
    let (lower, upper) = match f.intervals {
        Some(i) => (i.lower, i.upper),
        None => return Err(err(name, "the model gave no prediction intervals")),
    };
    if f.point.iter().chain(&lower).chain(&upper).any(|v| !v.is_finite()) {
        return Err(err(name, "the model produced non-finite values"));
    }
    Ok(Forecast { point: f.point, lower, upper, level })
}

/// Accuracy of one model over a rolling-origin backtest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backtest {
    /// The model's name.
    pub model: String,
    /// Held-out windows.
    pub folds: usize,
    /// Mean absolute scaled error: MAE over the in-sample MAE of the
    /// seasonal naive forecast (period `mase_period`); below 1 beats it.
    pub mase: f64,
    /// Symmetric mean absolute percentage error, in percent (0-200).
    pub smape: f64,
    /// Share of held-out points inside the interval (nominal: `level`).
    pub coverage: f64,
    /// Nominal coverage of the intervals.
    pub level: f64,
    /// Seconds spent fitting and forecasting, all folds together.
    pub seconds: f64,
}

/// Rolling-origin backtest: `folds` consecutive windows of `horizon` steps
/// at the end of `y`; each model is fitted on everything before a window
/// and forecasts it. MASE is scaled per fold by the seasonal naive's
/// in-sample MAE at `mase_period`.
pub fn backtest(
    y: &[f64],
    models: &[&dyn Forecaster],
    horizon: usize,
    folds: usize,
    level: f64,
    mase_period: usize,
) -> Result<Vec<Backtest>> {
    let n = y.len();
    let m = mase_period.max(1);
    if folds == 0 || horizon == 0 || n < folds * horizon + 2 * m + 2 {
        return Err(Error::Config(format!(
            "backtest: {folds} folds of {horizon} steps need more than {} points after two seasons of {m}; the series has {n}",
            folds * horizon
        )));
    }
    let mut out = Vec::new();
    for model in models {
        let (mut abs_scaled, mut smape, mut covered, mut count) = (0.0, 0.0, 0usize, 0usize);
        let start = std::time::Instant::now();
        for k in 0..folds {
            let origin = n - (folds - k) * horizon;
            let (train, test) = (&y[..origin], &y[origin..origin + horizon]);
            let scale =
                (m..train.len()).map(|t| (train[t] - train[t - m]).abs()).sum::<f64>() / (train.len() - m) as f64;
            let f = model.forecast(train, horizon, level)?;
            for (i, &actual) in test.iter().enumerate() {
                let e = (actual - f.point[i]).abs();
                abs_scaled += if scale > 0.0 { e / scale } else { e };
                let denom = actual.abs() + f.point[i].abs();
                smape += if denom > 0.0 { 200.0 * e / denom } else { 0.0 };
                covered += usize::from(actual >= f.lower[i] && actual <= f.upper[i]);
                count += 1;
            }
        }
        out.push(Backtest {
            model: model.name(),
            folds,
            mase: abs_scaled / count as f64,
            smape: smape / count as f64,
            coverage: covered as f64 / count as f64,
            level,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hourly load with a daily cycle, a slow trend and deterministic noise.
    fn load(n: usize) -> Vec<f64> {
        (0..n)
            .map(|t| {
                let day = (2.0 * std::f64::consts::PI * t as f64 / 24.0).sin();
                let noise = ((t as f64 * 12.9898).sin() * 43758.5453).fract() - 0.5;
                100.0 + 0.05 * t as f64 + 20.0 * day + 2.0 * noise
            })
            .collect()
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season_with_growing_intervals() {
        let y = load(24 * 7);
        let f = SeasonalNaive { period: 24 }.forecast(&y, 48, 0.8).unwrap();
        assert_eq!(f.point[0], y[y.len() - 24]);
        assert_eq!(f.point[24], y[y.len() - 24]);
        let (w0, w1) = (f.upper[0] - f.lower[0], f.upper[24] - f.lower[24]);
        assert!((w1 / w0 - 2f64.sqrt()).abs() < 1e-9, "{w0} {w1}");
    }

    #[test]
    fn detects_the_daily_period() {
        let p = detect_periods(&load(24 * 14));
        assert!(p.contains(&24), "{p:?}");
    }

    #[test]
    fn mstl_ets_beats_seasonal_naive_on_a_trending_seasonal_load() {
        let y = load(24 * 21);
        let mstl = MstlEts { periods: vec![24] };
        let naive = SeasonalNaive { period: 24 };
        let r = backtest(&y, &[&mstl, &naive], 24, 5, 0.8, 24).unwrap();
        assert!(r[0].mase < r[1].mase, "{r:?}");
        assert!(r[0].coverage > 0.5, "{r:?}");
        // Detected periods give the same kind of result.
        let auto = MstlEts::default();
        let f = auto.forecast(&y, 24, 0.8).unwrap();
        assert_eq!(f.point.len(), 24);
        assert!(f.lower.iter().zip(&f.point).zip(&f.upper).all(|((l, p), u)| l <= p && p <= u));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let naive = SeasonalNaive { period: 24 };
        assert!(naive.forecast(&[1.0; 5], 3, 0.8).unwrap_err().to_string().contains("at least 26 points"));
        let mut y = load(100);
        y[7] = f64::NAN;
        assert!(MstlEts::default().forecast(&y, 3, 0.8).unwrap_err().to_string().contains("value 7"));
        assert!(naive.forecast(&load(100), 0, 0.8).is_err());
        assert!(naive.forecast(&load(100), 3, 1.5).is_err());
        assert!(backtest(&load(30), &[&naive], 24, 5, 0.8, 24).is_err());
    }
}
