//! Workload scenarios: the load a configuration must serve, built from a
//! recorded series and (except for `raw`) its forecast.
//!
//! The `workload:` section of a workload evaluator:
//!
//! ```yaml
//! workload:
//!   series: data/elb_request_count_8c0756.csv   # relative to the spec file
//!   kind: count          # count: events per step (rate = value / step); gauge: already a rate per second
//!   scale: 1.0           # multiplies every rate (e.g. queries per recorded request, or growth headroom)
//!   scenario: peak       # peak | typical_day | raw
//!   horizon: 7d          # how far the forecast looks ahead (peak, typical_day)
//!   level: 0.9           # nominal coverage of the forecast interval whose upper bound makes the peak
//!   peak_duration: 1h    # how long the peak is held
//!   until: 2015-04-16 00:00:00   # use only the recording before this time (backtesting a decision)
//!   window: 7d           # raw: the replayed window; peak/typical_day: the training window (default all)
//! ```
//!
//! Scenarios:
//! - `peak`: the highest upper bound of the forecast's `level` prediction
//!   interval over the horizon, held constant for `peak_duration`: the load
//!   to provision for.
//! - `typical_day`: the point forecast over the horizon (at least one day),
//!   folded by time of day and averaged: one day of `86400 / step` segments
//!   starting at midnight UTC.
//! - `raw`: the last `window` of the recording as it was, segment by
//!   segment (replay; no forecast).
//!
//! The forecaster is MSTL + AutoETS (`model: mstl_ets`, periods declared
//! with `period` or detected) or the seasonal naive forecast
//! (`model: seasonal_naive`, period declared or detected, else one day).
//! Negative forecasts are read as zero load.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, Result};
pub use crate::forecast::ForecastModel;
use crate::forecast::detect_periods;
use crate::telemetry::{self, SeriesKind, TelemetryConfig, format_time, parse_timestamp};
use crate::yaml::parse_duration;

/// Arrival rates over consecutive segments of equal length: the load a
/// configuration must serve. Models treat each segment as stationary at its
/// rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Length of each segment, seconds.
    pub step_s: f64,
    /// Mean arrival rate of each segment (events per second), in time order.
    pub rates: Vec<f64>,
    /// Unix time of the start of the first segment.
    pub start: i64,
    /// What this load is, for reports (e.g. "peak of the 80% upper bound over 7d").
    pub label: String,
}

impl Scenario {
    /// A constant `rate` for `duration_s` seconds, in one segment.
    pub fn constant(rate: f64, duration_s: f64) -> Scenario {
        Scenario { step_s: duration_s, rates: vec![rate], start: 0, label: format!("constant {rate}/s") }
    }

    /// Total length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.step_s * self.rates.len() as f64
    }

    /// Expected number of arrivals over the whole scenario.
    pub fn arrivals(&self) -> f64 {
        self.rates.iter().sum::<f64>() * self.step_s
    }

    /// The highest segment rate.
    pub fn peak(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }
}

/// Which load to build from the telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// The highest upper bound of the forecast's prediction interval over
    /// the horizon, held for `peak_duration`.
    #[default]
    Peak,
    /// The forecast's point forecast folded into one day: the mean per time
    /// of day over the horizon.
    TypicalDay,
    /// The last `window` of the recording, replayed as it was (no forecast).
    Raw,
}

/// The `workload:` section of a workload evaluator (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Recorded series (CSV, JSON lines, Prometheus JSON), relative to the spec file.
    pub series: String,
    /// Which series of a file that holds several (wide CSV, JSON lines).
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default = "count")]
    /// Events per step (`count`) or a rate per second already (`gauge`).
    pub kind: SeriesKind,
    /// Resampling step (default: the series' median step).
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default = "one")]
    /// Multiplies every rate (e.g. queries per recorded request, or headroom).
    pub scale: f64,
    #[serde(default)]
    /// Which load to build: `peak`, `typical_day` or `raw`.
    pub scenario: ScenarioKind,
    #[serde(default)]
    /// How far the forecast looks ahead (default 7d).
    pub horizon: Option<String>,
    #[serde(default = "level")]
    /// Nominal coverage of the forecast interval whose upper bound makes the peak.
    pub level: f64,
    #[serde(default)]
    /// Seasonal period of the forecast (default: detected).
    pub period: Option<String>,
    #[serde(default)]
    /// The forecaster.
    pub model: ForecastModel,
    #[serde(default)]
    /// How long the peak is held (default 1h).
    pub peak_duration: Option<String>,
    #[serde(default)]
    /// Use only the recording before this time (backtesting a decision).
    pub until: Option<String>,
    #[serde(default)]
    /// `raw`: the replayed window (default 7d); forecasts: the training window.
    pub window: Option<String>,
}

fn count() -> SeriesKind {
    SeriesKind::Count
}
fn one() -> f64 {
    1.0
}
fn level() -> f64 {
    0.8
}

const DEFAULT_HORIZON: i64 = 7 * 86400;
const DEFAULT_RAW_WINDOW: i64 = 7 * 86400;
const DEFAULT_PEAK_DURATION: i64 = 3600;

/// Seconds of a duration field, pushing a problem when it does not parse.
fn seconds(v: &Option<String>, path: &str, problems: &mut Vec<Problem>) -> Option<i64> {
    let text = v.as_ref()?;
    match parse_duration(text) {
        Some(d) if d.as_secs_f64() >= 1.0 => Some(d.as_secs_f64().round() as i64),
        _ => {
            problems
                .push(Problem::new(path, format!("`{text}` is not a duration of at least 1s; write e.g. 5m, 6h, 7d")));
            None
        }
    }
}

impl ScenarioSpec {
    /// Check every field; paths start with `path` (e.g. `evaluator.workload`).
    pub fn check(&self, path: &str, problems: &mut Vec<Problem>) {
        let at = |f: &str| format!("{path}.{f}");
        if self.series.trim().is_empty() {
            problems.push(Problem::new(at("series"), "must name a recorded series file"));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            problems.push(Problem::new(at("scale"), format!("{} must be a number > 0", self.scale)));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            problems.push(Problem::new(at("level"), format!("{} must be between 0 and 1 (e.g. 0.9)", self.level)));
        }
        seconds(&self.step, &at("step"), problems);
        seconds(&self.horizon, &at("horizon"), problems);
        seconds(&self.period, &at("period"), problems);
        seconds(&self.peak_duration, &at("peak_duration"), problems);
        seconds(&self.window, &at("window"), problems);
        if let Some(u) = &self.until
            && parse_timestamp(u).is_none()
        {
            problems.push(Problem::new(
                at("until"),
                format!("`{u}` is not a time; write `YYYY-MM-DD HH:MM:SS` (UTC), RFC 3339 or unix seconds"),
            ));
        }
        let forecast_only = [("horizon", self.horizon.is_some()), ("period", self.period.is_some())];
        if self.scenario == ScenarioKind::Raw {
            for (name, set) in forecast_only {
                if set {
                    problems.push(Problem::new(at(name), "is for forecast scenarios (peak, typical_day), not raw"));
                }
            }
        }
        if self.scenario != ScenarioKind::Peak && self.peak_duration.is_some() {
            problems.push(Problem::new(at("peak_duration"), "is only for `scenario: peak`"));
        }
    }

    /// Read the series and build the scenario (`base_dir`: the spec file's
    /// directory). Call after [`ScenarioSpec::check`] found no problem.
    pub fn build(&self, base_dir: &Path) -> Result<Scenario> {
        let durations = self.durations()?;
        let recording = self.record(base_dir, &durations)?;
        match self.scenario {
            ScenarioKind::Raw => Ok(self.raw(&recording)),
            ScenarioKind::Peak => self.peak(&recording, &durations),
            ScenarioKind::TypicalDay => self.typical_day(&recording, &durations),
        }
    }

    /// The duration fields in seconds, defaults filled in.
    fn durations(&self) -> Result<Durations> {
        let mut p = Vec::new();
        let d = Durations {
            step: seconds(&self.step, "step", &mut p),
            horizon: seconds(&self.horizon, "horizon", &mut p).unwrap_or(DEFAULT_HORIZON),
            period: seconds(&self.period, "period", &mut p),
            peak_duration: seconds(&self.peak_duration, "peak_duration", &mut p).unwrap_or(DEFAULT_PEAK_DURATION),
            window: seconds(&self.window, "window", &mut p),
        };
        match p.first() {
            Some(first) => Err(Error::Config(format!("workload.{first}"))),
            None => Ok(d),
        }
    }

    /// The recorded points the scenario is built from: before `until`, within
    /// the window (`raw` replays the last week unless told otherwise).
    fn record(&self, base_dir: &Path, d: &Durations) -> Result<Recording> {
        let path = base_dir.join(&self.series);
        let config = TelemetryConfig {
            default_kind: self.kind,
            step: d.step,
            outliers: None,
            changepoints: None,
            ..Default::default()
        };
        let loaded = telemetry::load(&path, &config)?;
        let series = loaded.pick(self.column.as_deref(), "workload.column")?;
        let step_s = loaded
            .step_of(&series.name)
            .ok_or_else(|| Error::Config(format!("workload: cannot tell the step of {}", path.display())))?;
        let mut points: Vec<(i64, f64)> = series.points.clone();
        if let Some(u) = &self.until {
            let until = parse_timestamp(u).unwrap_or(i64::MAX);
            points.retain(|(t, _)| *t < until);
        }
        let default_window = if self.scenario == ScenarioKind::Raw { Some(DEFAULT_RAW_WINDOW) } else { None };
        if let (Some(w), Some(last)) = (d.window.or(default_window), points.last().map(|p| p.0)) {
            points.retain(|(t, _)| *t + w > last);
        }
        if points.len() < 2 {
            return Err(Error::Config(format!(
                "workload: {} has {} point(s) in the chosen window (until/window); at least 2 are needed",
                path.display(),
                points.len()
            )));
        }
        Ok(Recording { name: series.name.clone(), shown: path.display().to_string(), step_s, points })
    }

    /// A recorded value as events per second, scaled (never negative).
    fn per_second(&self, v: f64, step_s: i64) -> f64 {
        let r = match self.kind {
            SeriesKind::Count => v / step_s as f64,
            SeriesKind::Gauge => v,
        };
        (r * self.scale).max(0.0)
    }

    /// The recording replayed as it was.
    fn raw(&self, r: &Recording) -> Scenario {
        let (first, last) = (r.first(), r.last());
        Scenario {
            step_s: r.step_s as f64,
            rates: r.points.iter().map(|p| self.per_second(p.1, r.step_s)).collect(),
            start: first,
            label: format!(
                "raw load of {} from {} to {} ({} steps of {}s)",
                r.name,
                format_time(first),
                format_time(last + r.step_s),
                r.points.len(),
                r.step_s
            ),
        }
    }

    /// The forecast over the horizon, and the forecaster's name.
    fn forecast(&self, r: &Recording, d: &Durations) -> Result<(String, crate::forecast::Forecast)> {
        let y: Vec<f64> = r.points.iter().map(|p| p.1).collect();
        let steps = |secs: i64| ((secs as f64 / r.step_s as f64).round() as usize).max(2);
        let periods = d.period.map(steps).into_iter().collect();
        let naive_period = || detect_periods(&y).first().copied().unwrap_or(steps(86400));
        let forecaster = self.model.forecaster(periods, naive_period);
        let f = forecaster
            .forecast(&y, r.horizon_steps(d), self.level)
            .map_err(|e| Error::Config(format!("workload ({}): {e}", r.shown)))?;
        Ok((forecaster.name(), f))
    }

    /// The top of the forecast's upper bound, held for `peak_duration`.
    fn peak(&self, r: &Recording, d: &Durations) -> Result<Scenario> {
        let (name, f) = self.forecast(r, d)?;
        let (last, step_s) = (r.last(), r.step_s);
        let (i, top) = f.upper.iter().enumerate().fold((0, f64::MIN), |b, (i, v)| if *v > b.1 { (i, *v) } else { b });
        let rate = self.per_second(top, step_s);
        Ok(Scenario {
            step_s: d.peak_duration as f64,
            rates: vec![rate],
            start: last + step_s * (i as i64 + 1),
            label: format!(
                "peak of the {:.0}% upper bound of {} over {:.3}d after {}: {rate:.4}/s at {} (point forecast {:.4}/s)",
                100.0 * self.level,
                name,
                d.horizon as f64 / 86400.0,
                format_time(last + step_s),
                format_time(last + step_s * (i as i64 + 1)),
                self.per_second(f.point[i], step_s)
            ),
        })
    }

    /// The point forecast folded into one day by time of day.
    fn typical_day(&self, r: &Recording, d: &Durations) -> Result<Scenario> {
        let (last, step_s) = (r.last(), r.step_s);
        if 86400 % step_s != 0 {
            return Err(Error::Config(format!(
                "workload.scenario: typical_day needs a step that divides one day; the step is {step_s}s (set workload.step)"
            )));
        }
        let slots = (86400 / step_s) as usize;
        if r.horizon_steps(d) < slots {
            return Err(Error::Config(format!(
                "workload.horizon: typical_day needs a horizon of at least 1d, not {}s",
                d.horizon
            )));
        }
        let (name, f) = self.forecast(r, d)?;
        let (mut sum, mut n) = (vec![0.0; slots], vec![0usize; slots]);
        for (i, v) in f.point.iter().enumerate() {
            let t = last + step_s * (i as i64 + 1);
            let slot = (t.rem_euclid(86400) / step_s) as usize;
            sum[slot] += self.per_second(*v, step_s);
            n[slot] += 1;
        }
        let rates: Vec<f64> = sum.iter().zip(&n).map(|(s, k)| s / (*k).max(1) as f64).collect();
        Ok(Scenario {
            step_s: step_s as f64,
            label: format!(
                "typical day of the {} forecast over {:.3}d after {}: mean {:.4}/s, peak {:.4}/s",
                name,
                d.horizon as f64 / 86400.0,
                format_time(last + step_s),
                rates.iter().sum::<f64>() / slots as f64,
                rates.iter().copied().fold(0.0, f64::max)
            ),
            rates,
            start: 0,
        })
    }
}

/// The duration fields of a [`ScenarioSpec`], in seconds.
struct Durations {
    step: Option<i64>,
    horizon: i64,
    period: Option<i64>,
    peak_duration: i64,
    window: Option<i64>,
}

/// The recorded points a scenario is built from (at least two).
struct Recording {
    /// The series' name.
    name: String,
    /// The file, for messages.
    shown: String,
    step_s: i64,
    points: Vec<(i64, f64)>,
}

impl Recording {
    fn first(&self) -> i64 {
        self.points[0].0
    }

    fn last(&self) -> i64 {
        self.points[self.points.len() - 1].0
    }

    /// The horizon in steps (at least one).
    fn horizon_steps(&self, d: &Durations) -> usize {
        (d.horizon / self.step_s).max(1) as usize
    }
}
