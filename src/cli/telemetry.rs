//! `knobs telemetry`: read recordings and say what preparing them did: resampling, gaps filled,
//! outliers and changepoints flagged, rows dropped. Plots each series with its flags.

use std::path::PathBuf;

use clap::Args;

use super::Plots;
use super::forecast::{Kind, parse_duration};
use crate::error::{Error, Result};
use crate::report;
use crate::telemetry::{BadRows, ChangepointConfig, SeriesKind, TelemetryConfig, load};

/// Arguments of `knobs telemetry` (the option help says what each one does).
#[derive(Args, Debug)]
pub struct TelemetryArgs {
    /// Recordings: CSV (timestamp,value or wide), JSON lines, or Prometheus range-query JSON.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Series kind: `count` (events per step: resampling sums) or `gauge` (a level: resampling averages).
    #[arg(long, value_enum, default_value_t = Kind::Gauge)]
    pub kind: Kind,
    /// Resample to this step (e.g. 5m, 1h; default: each series' median step).
    #[arg(long, value_parser = parse_duration)]
    pub step: Option<i64>,
    /// Drop unreadable rows (listed in the report) instead of failing the file.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Smallest level shift flagged as a changepoint, in noise levels of the hourly de-seasonalised series.
    #[arg(long, default_value_t = ChangepointConfig::default().min_shift)]
    pub min_shift: f64,
    /// Smallest level shift flagged as a changepoint, as a fraction of the series' median level.
    #[arg(long, default_value_t = ChangepointConfig::default().min_change)]
    pub min_change: f64,
    /// Shortest regime a changepoint may start (e.g. 12h); shorter bursts are outliers' business.
    #[arg(long, value_parser = parse_duration, default_value = "12h")]
    pub min_segment: i64,
    /// Directory for telemetry-<series>.svg (or .png).
    #[arg(long, default_value = "knobs-out")]
    pub out: PathBuf,
    /// Plot format; `none` writes no plot.
    #[arg(long, value_enum, default_value_t = Plots::Svg)]
    pub plots: Plots,
    /// JSON on stdout: one report per file, with every flagged point.
    #[arg(long)]
    pub json: bool,
}

/// Runs `knobs telemetry`: prints what loading each file did and plots each series unless
/// `--plots none`; returns exit code 0.
pub fn telemetry_cmd(a: TelemetryArgs) -> Result<i32> {
    let config = TelemetryConfig {
        bad_rows: if a.skip_bad_rows { BadRows::Skip } else { BadRows::Reject },
        default_kind: if a.kind == Kind::Count { SeriesKind::Count } else { SeriesKind::Gauge },
        step: a.step,
        changepoints: Some(ChangepointConfig {
            min_shift: a.min_shift,
            min_segment_s: a.min_segment,
            min_change: a.min_change,
            ..ChangepointConfig::default()
        }),
        ..TelemetryConfig::default()
    };
    let mut reports = Vec::new();
    for path in &a.files {
        let loaded = load(path, &config)?;
        let mut plots = Vec::new();
        if let Some(format) = a.plots.format() {
            std::fs::create_dir_all(&a.out).map_err(|e| Error::io(a.out.display().to_string(), e))?;
            for (s, r) in loaded.series.iter().zip(&loaded.report.series) {
                let file =
                    a.out.join(format!("telemetry-{}.{}", super::forecast::sanitize(&s.name), format.extension()));
                let title = format!("{}: {} outliers, {} changepoints", s.name, r.outliers.len(), r.changepoints.len());
                report::telemetry_plot(&file, &title, &s.points, &r.outliers, &r.changepoints)?;
                plots.push(file.display().to_string());
            }
        }
        reports.push((loaded.report, plots));
    }
    if a.json {
        let v: Vec<serde_json::Value> = reports
            .iter()
            .map(|(r, plots)| {
                let mut o = serde_json::to_value(r).unwrap_or_default();
                o["plots"] = serde_json::json!(plots);
                o
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(Error::json)?);
        return Ok(0);
    }
    for (r, plots) in &reports {
        println!("{r}");
        for p in plots {
            println!("plot: {p}");
        }
    }
    Ok(0)
}
