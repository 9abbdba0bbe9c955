//! Telemetry in: reads recorded time series (CSV, JSON lines, Prometheus range-query JSON),
//! cleans them (sort, merge duplicates), resamples them to a fixed step, fills gaps, flags
//! outliers and changepoints, and says in a [`Report`] everything it did.
//!
//! Accepted inputs, chosen by the file's extension:
//!
//! - `.csv`: a header line, then one row per timestamp. The first column is the timestamp
//!   (any header name); every other column is one series. A single column named `value`
//!   (the long form `timestamp,value`) makes one series named after the file's stem; otherwise
//!   each column (the wide form `timestamp,metric_a,metric_b`) is a series named after its header.
//! - `.jsonl` / `.ndjson`: one JSON object per line (blank lines are skipped). The timestamp is the
//!   field `timestamp`, `ts` or `time`. Two shapes:
//!   - `{"ts": ..., "metric": "name", "value": 1.5}`: one sample of the series `name`;
//!     other fields are labels and are ignored.
//!   - `{"timestamp": ..., "value": 1.5, "cpu": 0.3}`: every numeric field is a sample of the
//!     series of that name (`value` is named after the file's stem, as in CSV); `null` is a
//!     missing sample; strings and other non-numeric fields are labels and are ignored.
//!
//!   A `value` given as a string (`"1.5"`) is accepted as a number.
//! - `.json`: the response of a Prometheus range query (`resultType` `matrix`); each result is
//!   one series named `__name__{label="value",...}` (labels sorted, `__name__` left out of them).
//!
//! Timestamps are `YYYY-MM-DD HH:MM:SS` (read as UTC), RFC 3339 with a zone
//! (`2024-05-01T12:00:00+02:00`), or unix seconds (integer or float, rounded to the nearest
//! second), as a string or a JSON number.
//!
//! A row with a bad timestamp, a value that is not a finite number, or a missing column is a bad
//! row. By default ([`BadRows::Reject`]) every bad row of a file is reported in one
//! [`Error::Invalid`] naming the file, the line (or the JSON path) and the
//! column; with [`BadRows::Skip`] they are dropped (in a wide CSV, only the bad cells) and listed
//! in the report. A file with no usable row is an error either way.
//!
//! Duplicate timestamps are merged (sum for counts, mean for gauges) and unsorted rows sorted; the
//! report counts both. Each series is resampled to the given step or, by default, its median step
//! (a series with a single timestamp takes the median step of the whole file); buckets start at
//! the first sample.
//!
//! Outliers are points whose robust z-score against a centred rolling median (6 hours by default,
//! see [`OutlierConfig`]) is above 5; they are listed in the report and kept in the series.
//! Changepoints are sustained shifts of the level, found by augurs' Bayesian online changepoint
//! detector on the hourly, de-seasonalised series (see [`ChangepointConfig`] and the module
//! `changepoints` for the steps); they are reported, and the series is not cut.
//!
//! Gaps are filled by linear interpolation for both kinds of series. For a gauge that is the usual
//! estimate. For a count it is a choice: a zero (the other obvious fill) would show a drop in load
//! that never happened, which a tuner would read as a real event, while a missing bucket almost
//! always means the sample was lost, not that nothing happened. Filled points are listed in
//! [`SeriesReport::filled`] so a caller can leave them out.

mod changepoints;
mod outliers;
mod parse;
mod report;
mod resample;

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

pub use changepoints::{Changepoint, ChangepointConfig, find_changepoints};
pub use outliers::{Outlier, OutlierConfig, find_outliers};
pub use parse::{Format, Recording, csv_rows, parse_str, parse_timestamp, read_file};
pub use report::{Report, SeriesReport, format_time};
pub use resample::{Cleaned, Resampled, infer_step, normalize, resample};

/// How a series aggregates: counts add up within a bucket, gauges average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// Events per interval (requests, bytes, mentions): summed when merged.
    Count,
    /// A level sampled at an instant (CPU %, latency, queue length): averaged when merged.
    #[default]
    Gauge,
}

impl std::fmt::Display for SeriesKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SeriesKind::Count => "count",
            SeriesKind::Gauge => "gauge",
        })
    }
}

/// One recorded series: `(unix seconds, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' name (the metric, or the column of a wide CSV).
    pub name: String,
    /// Whether resampling sums (count) or averages (gauge) its points.
    pub kind: SeriesKind,
    /// `(unix seconds, value)` pairs; sorted and evenly spaced once loaded, in file order in a
    /// [`Recording`].
    pub points: Vec<(i64, f64)>,
}

/// What to do with rows that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Any bad row fails the whole file, with every bad row listed in the error.
    #[default]
    Reject,
    /// Bad rows (in a wide CSV, bad cells) are dropped and listed in the report; a file with no
    /// usable row still fails.
    Skip,
}

/// How to read and prepare a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Whether an unreadable row fails the file or is dropped and reported.
    pub bad_rows: BadRows,
    /// Kind of every series not named in `kinds`.
    pub default_kind: SeriesKind,
    /// Kind by series name.
    pub kinds: BTreeMap<String, SeriesKind>,
    /// Resampling step in seconds; `None` infers it as the median step of each series.
    pub step: Option<i64>,
    /// Outlier flagging; `None` turns it off.
    pub outliers: Option<OutlierConfig>,
    /// Changepoint flagging; `None` turns it off.
    pub changepoints: Option<ChangepointConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            bad_rows: BadRows::Reject,
            default_kind: SeriesKind::Gauge,
            kinds: BTreeMap::new(),
            step: None,
            outliers: Some(OutlierConfig::default()),
            changepoints: Some(ChangepointConfig::default()),
        }
    }
}

impl TelemetryConfig {
    /// The kind of the series `name`.
    pub fn kind_of(&self, name: &str) -> SeriesKind {
        self.kinds.get(name).copied().unwrap_or(self.default_kind)
    }

    fn check(&self) -> Result<()> {
        if let Some(step) = self.step
            && step <= 0
        {
            return Err(Error::Config(format!("telemetry.step: must be > 0 seconds (got {step})")));
        }
        if let Some(o) = &self.outliers {
            o.check()?;
        }
        if let Some(c) = &self.changepoints {
            c.check()?;
        }
        Ok(())
    }
}

/// Series ready to use: sorted, merged, resampled to a fixed step, gaps filled.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The prepared series, one per name.
    pub series: Vec<Series>,
    /// What reading and preparing did, per series.
    pub report: Report,
}

impl Loaded {
    /// The step (seconds) the series `name` was resampled to.
    pub fn step_of(&self, name: &str) -> Option<i64> {
        self.report.series.iter().find(|r| r.name == name).map(|r| r.step)
    }

    /// The series a caller asked for: `column` by name, or else the file's
    /// only series; errors name `field` (the setting that chooses it) and
    /// list the series the file holds.
    pub fn pick(&self, column: Option<&str>, field: &str) -> Result<&Series> {
        let names = || self.series.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        match column {
            Some(c) => self.series.iter().find(|s| s.name == c).ok_or_else(|| {
                Error::Config(format!(
                    "{field}: `{c}` is not a series of {}; it holds: {}",
                    self.report.source,
                    names()
                ))
            }),
            None if self.series.len() == 1 => Ok(&self.series[0]),
            None => Err(Error::Config(format!(
                "{field}: {} holds {} series ({}); name one",
                self.report.source,
                self.series.len(),
                names()
            ))),
        }
    }
}

/// Reads `path` and prepares every series in it: sort, merge duplicates, resample, fill gaps,
/// flag outliers and changepoints.
///
/// ```no_run
/// use knobs::telemetry::{self, SeriesKind, TelemetryConfig};
///
/// let mut config = TelemetryConfig::default();
/// config.kinds.insert("requests".into(), SeriesKind::Count);
/// let loaded = telemetry::load("recorded/load.csv", &config)?;
/// println!("{}", loaded.report);
/// for series in &loaded.series {
///     println!("{}: {} points", series.name, series.points.len());
/// }
/// # Ok::<(), knobs::Error>(())
/// ```
pub fn load(path: impl AsRef<Path>, config: &TelemetryConfig) -> Result<Loaded> {
    config.check()?;
    let recording = read_file(path.as_ref(), config)?;
    prepare(recording, config)
}

/// The steps of [`load`] after reading, for a recording parsed some other way.
pub fn prepare(recording: Recording, config: &TelemetryConfig) -> Result<Loaded> {
    config.check()?;
    // A series with a single timestamp borrows the step of the whole file.
    let all: Vec<(i64, f64)> = recording.series.iter().flat_map(|s| s.points.iter().copied()).collect();
    let file_step = infer_step(&all);
    let mut series = Vec::with_capacity(recording.series.len());
    let mut reports = Vec::with_capacity(recording.series.len());
    for mut s in recording.series {
        let cleaned = normalize(&mut s);
        let step = config.step.or_else(|| infer_step(&s.points).map_or(file_step, Some));
        let mut r = resample(&s, step).map_err(|e| match e {
            Error::Config(m) => Error::invalid(recording.source.clone(), format!("series `{}`", s.name), m),
            other => other,
        })?;
        r.step_inferred = config.step.is_none();
        let outliers = match &config.outliers {
            Some(o) => find_outliers(&r.series.points, r.step, &r.filled, o),
            None => Vec::new(),
        };
        let changepoints = match &config.changepoints {
            Some(c) => find_changepoints(&r.series.points, r.step, &r.filled, c),
            None => Vec::new(),
        };
        let filled = r.series.points.iter().zip(&r.filled).filter(|(_, f)| **f).map(|(p, _)| p.0).collect();
        reports.push(SeriesReport {
            name: s.name.clone(),
            kind: s.kind,
            samples: s.points.len(),
            out_of_order: cleaned.out_of_order,
            duplicates_merged: cleaned.duplicates_merged,
            step: r.step,
            step_inferred: r.step_inferred,
            buckets: r.series.points.len(),
            gaps: r.gaps,
            missing_buckets: r.missing_buckets,
            longest_gap: r.longest_gap,
            filled,
            outliers,
            changepoints,
        });
        series.push(r.series);
    }
    let report = Report {
        source: recording.source,
        format: recording.format,
        rows_read: recording.rows_read,
        bad_rows: recording.bad_rows,
        skipped: recording.skipped,
        series: reports,
    };
    Ok(Loaded { series, report })
}
