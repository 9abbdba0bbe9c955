//! `knobs forecast`: forecast a recorded series, and backtest the models.

use std::path::{Path, PathBuf};

use clap::builder::PossibleValue;
use clap::{Args, Subcommand, ValueEnum};

use super::Plots;
use crate::error::{Error, Result};
use crate::forecast::{Backtest, ForecastModel, Forecaster, MstlEts, SeasonalNaive, backtest, detect_periods};
use crate::report;
use crate::telemetry::{SeriesKind, TelemetryConfig, format_time, load};

/// `knobs forecast`: either forecast one series (`args`) or, with the `backtest` subcommand,
/// backtest the models; the two exclude each other.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ForecastCmd {
    /// `Some` when `knobs forecast backtest …` was given; `args` is then not used.
    #[command(subcommand)]
    pub backtest: Option<ForecastSub>,
    /// The forecast's arguments (used when `backtest` is `None`).
    #[command(flatten)]
    pub args: ForecastArgs,
}

/// The subcommands of `knobs forecast`.
#[derive(Subcommand, Debug)]
pub enum ForecastSub {
    /// Rolling-origin backtests of every model on each series: MASE (below 1 beats the seasonal
    /// naive forecast), sMAPE and interval coverage.
    Backtest(BacktestArgs),
}

/// `--model` takes the names and help of the one list of forecasting models.
impl ValueEnum for ForecastModel {
    fn value_variants<'a>() -> &'a [Self] {
        &ForecastModel::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.cli_name()).help(self.description()))
    }
}

/// How to read and model the series, shared by forecasts and backtests.
#[derive(Args, Debug)]
pub struct SeriesArgs {
    /// Series kind: `count` (events per step: resampling sums) or `gauge` (a level: resampling averages).
    #[arg(long, value_enum, default_value_t = Kind::Gauge)]
    pub kind: Kind,
    /// Resample to this step (e.g. 5m, 1h; default: the series' median step).
    #[arg(long, value_parser = parse_duration)]
    pub step: Option<i64>,
    /// Seasonal period (e.g. 1d; default: detected by a periodogram).
    #[arg(long, value_parser = parse_duration)]
    pub period: Option<i64>,
    /// Nominal coverage of the prediction intervals.
    #[arg(long, default_value_t = 0.8)]
    pub level: f64,
}

/// The `--kind` of a series: `count` (events per step, resampling sums them) or `gauge` (a level,
/// resampling averages it); the CLI's face of [`SeriesKind`].
///
/// The variants are described here rather than one by one: a doc comment on a variant would
/// become its help text and change the list of values in `--help`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Kind {
    Count,
    Gauge,
}

/// Arguments of `knobs forecast SERIES` (the option help says what each one does).
#[derive(Args, Debug)]
pub struct ForecastArgs {
    /// The recorded series: CSV (timestamp,value or wide), JSON lines, or Prometheus range-query JSON.
    #[arg(required = true)]
    pub series: Option<PathBuf>,
    /// How far ahead (e.g. 1d, 6h, 90m).
    #[arg(long, value_parser = parse_duration, default_value = "1d")]
    pub horizon: i64,
    /// Forecasting model.
    #[arg(long, value_enum, default_value_t = ForecastModel::MstlEts)]
    pub model: ForecastModel,
    /// Kind, step, period and interval level of the series.
    #[command(flatten)]
    pub common: SeriesArgs,
    /// Directory for forecast.svg (or .png).
    #[arg(long, default_value = "knobs-out")]
    pub out: PathBuf,
    /// Plot format; `none` writes no plot.
    #[arg(long, value_enum, default_value_t = Plots::Svg)]
    pub plots: Plots,
    /// JSON on stdout: timestamps, point forecast, lower and upper bounds.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `knobs forecast backtest SERIES...` (the option help says what each one does).
#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// One or more recorded series.
    #[arg(required = true)]
    pub series: Vec<PathBuf>,
    /// Length of each held-out window (e.g. 1d).
    #[arg(long, value_parser = parse_duration, default_value = "1d")]
    pub horizon: i64,
    /// Number of consecutive held-out windows at the end of each series.
    #[arg(long, default_value_t = 3)]
    pub folds: usize,
    /// Kind, step, period and interval level of the series.
    #[command(flatten)]
    pub common: SeriesArgs,
    /// JSON on stdout, one object per series and model.
    #[arg(long)]
    pub json: bool,
}

/// `90s`, `5m`, `6h`, `1d`, `2w` (or plain seconds) → whole seconds, at least one.
pub fn parse_duration(text: &str) -> std::result::Result<i64, String> {
    let d = crate::yaml::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write e.g. 30m, 6h, 1d (units: ms, s, m, h, d, w)"))?;
    let secs = d.as_secs_f64().round();
    if secs >= 1.0 { Ok(secs as i64) } else { Err(format!("`{text}` must be at least one second")) }
}

/// One resampled series: its name, step and points.
struct Loaded {
    name: String,
    step: i64,
    points: Vec<(i64, f64)>,
}

fn read(path: &Path, a: &SeriesArgs) -> Result<Vec<Loaded>> {
    let config = TelemetryConfig {
        default_kind: if a.kind == Kind::Count { SeriesKind::Count } else { SeriesKind::Gauge },
        step: a.step,
        ..Default::default()
    };
    let loaded = load(path, &config)?;
    for r in &loaded.report.series {
        if let Some(last) = r.changepoints.last() {
            // A forecast fitted across a level shift blends two regimes: say so, not silently.
            eprintln!(
                "note: `{}` shifted level {} time(s), last at {} ({} → {}); the models fit the whole series \
                 (see `knobs telemetry {}`)",
                r.name,
                r.changepoints.len(),
                format_time(last.at),
                crate::format::fmt_num(last.before),
                crate::format::fmt_num(last.after),
                path.display()
            );
        }
    }
    loaded
        .series
        .iter()
        .map(|s| {
            let step = loaded
                .step_of(&s.name)
                .ok_or_else(|| Error::Config(format!("{}: cannot tell the step of `{}`", path.display(), s.name)))?;
            Ok(Loaded { name: s.name.clone(), step, points: s.points.clone() })
        })
        .collect()
}

fn period_steps(a: &SeriesArgs, step: i64, y: &[f64]) -> Vec<usize> {
    match a.period {
        Some(p) => vec![((p as f64 / step as f64).round() as usize).max(1)],
        None => detect_periods(y),
    }
}

fn check_level(level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(Error::Config(format!("--level must be between 0 and 1, not {level}")))
    }
}

/// Runs `knobs forecast`: prints the forecast of every series in the file and plots it unless
/// `--plots none`; returns exit code 0 (errors, e.g. `--level` outside (0, 1), are `Err`).
pub fn forecast_cmd(a: ForecastArgs) -> Result<i32> {
    check_level(a.common.level)?;
    let path = a.series.clone().expect("required by clap");
    let mut out = Vec::new();
    for s in read(&path, &a.common)? {
        let y: Vec<f64> = s.points.iter().map(|p| p.1).collect();
        let periods = period_steps(&a.common, s.step, &y);
        let horizon = ((a.horizon as f64 / s.step as f64).ceil() as usize).max(1);
        let model = a.model.forecaster(periods.clone(), || 1);
        let mut f = model.forecast(&y, horizon, a.common.level)?;
        if a.common.kind == Kind::Count {
            // Counts are never negative: clip the forecast and its interval at 0.
            for v in f.point.iter_mut().chain(f.lower.iter_mut()).chain(f.upper.iter_mut()) {
                *v = v.max(0.0);
            }
        }
        let last = s.points.last().map_or(0, |p| p.0);
        let times: Vec<i64> = (1..=horizon as i64).map(|h| last + h * s.step).collect();
        let mut plot = None;
        if let Some(format) = a.plots.format() {
            std::fs::create_dir_all(&a.out).map_err(|e| Error::io(a.out.display().to_string(), e))?;
            let file = a.out.join(format!("forecast-{}.{}", sanitize(&s.name), format.extension()));
            let keep = (3 * horizon).min(s.points.len());
            let rows: Vec<(i64, f64, f64, f64)> =
                (0..horizon).map(|i| (times[i], f.point[i], f.lower[i], f.upper[i])).collect();
            let title = format!("{}: {} forecast, {:.0}% interval", s.name, model.name(), 100.0 * f.level);
            report::forecast_plot(&file, &title, &s.points[s.points.len() - keep..], &rows)?;
            plot = Some(file);
        }
        out.push((s, model.name(), periods, times, f, plot));
    }
    if a.json {
        let v: Vec<serde_json::Value> = out
            .iter()
            .map(|(s, model, periods, times, f, plot)| {
                serde_json::json!({
                    "series": s.name, "model": model, "step_s": s.step, "periods": periods, "level": f.level,
                    "timestamps": times.iter().map(|t| format_time(*t)).collect::<Vec<_>>(),
                    "point": f.point, "lower": f.lower, "upper": f.upper,
                    "plot": plot.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(Error::json)?);
        return Ok(0);
    }
    for (s, model, periods, times, f, plot) in &out {
        let peak = f.upper.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{}: {} points every {} s; {model}, seasonal periods {:?} steps; {} steps ahead, {:.0}% intervals",
            s.name,
            s.points.len(),
            s.step,
            periods,
            times.len(),
            100.0 * f.level
        );
        println!("peak of the upper bound: {}", crate::format::fmt_num(peak));
        println!("{:<20}  {:>12}  {:>12}  {:>12}", "timestamp", "forecast", "lower", "upper");
        for (i, t) in times.iter().enumerate() {
            println!("{:<20}  {:>12.4}  {:>12.4}  {:>12.4}", format_time(*t), f.point[i], f.lower[i], f.upper[i]);
        }
        if let Some(p) = plot {
            println!("plot: {}", p.display());
        }
    }
    Ok(0)
}

pub(super) fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Runs `knobs forecast backtest`: prints every model's scores on every series; returns exit
/// code 0 (errors, e.g. `--level` outside (0, 1), are `Err`).
pub fn backtest_cmd(a: BacktestArgs) -> Result<i32> {
    check_level(a.common.level)?;
    let mut rows: Vec<(String, Backtest)> = Vec::new();
    for path in &a.series {
        for s in read(path, &a.common)? {
            let y: Vec<f64> = s.points.iter().map(|p| p.1).collect();
            let periods = period_steps(&a.common, s.step, &y);
            let m = periods.first().copied().unwrap_or(1);
            let horizon = ((a.horizon as f64 / s.step as f64).ceil() as usize).max(1);
            let mstl = MstlEts { periods: periods.clone() };
            let naive = SeasonalNaive { period: m };
            let models: [&dyn Forecaster; 2] = [&mstl, &naive];
            for b in backtest(&y, &models, horizon, a.folds, a.common.level, m)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            {
                rows.push((s.name.clone(), b));
            }
        }
    }
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, b)| {
                let mut o = serde_json::to_value(b).unwrap_or_default();
                o["series"] = serde_json::json!(name);
                o
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(Error::json)?);
        return Ok(0);
    }
    println!("{:<36}  {:<22}  {:>6}  {:>7}  {:>9}  {:>8}", "series", "model", "MASE", "sMAPE%", "coverage", "seconds");
    for (name, b) in &rows {
        println!(
            "{:<36}  {:<22}  {:>6.3}  {:>7.2}  {:>8.1}%  {:>8.3}",
            name,
            b.model,
            b.mase,
            b.smape,
            100.0 * b.coverage,
            b.seconds
        );
    }
    println!(
        "MASE below 1 beats the seasonal naive forecast's in-sample error; coverage is the share of held-out points \
         inside the {:.0}% intervals",
        100.0 * a.common.level
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1d"), Ok(86400));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("300"), Ok(300));
        assert_eq!(parse_duration("1.5h"), Ok(5400));
        assert!(parse_duration("3 parsecs").unwrap_err().contains("not a duration"));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
