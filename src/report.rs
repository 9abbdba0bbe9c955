//! Reports: convergence and parameter-importance plots of a study, written
//! as SVG or PNG (chosen by the file's extension).
//!
//! Text is drawn with DejaVu Sans, embedded in the binary
//! (`assets/fonts/`, license alongside), so plots look the same everywhere
//! and need no system fonts.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::objective::Objectives;
use crate::format::fmt_num;
use crate::trial::{Trial, TrialState};

/// The font family every text of a plot uses (registered on first use).
const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

const TAB_BLUE: RGBColor = RGBColor(31, 119, 180);
const TAB_ORANGE: RGBColor = RGBColor(230, 120, 10);
const TAB_RED: RGBColor = RGBColor(214, 39, 40);
const GRID: RGBColor = RGBColor(222, 222, 222);
const LIGHT_GRID: RGBColor = RGBColor(244, 244, 244);

/// Above this ratio of largest to smallest value (all positive), the y axis is logarithmic.
const LOG_AXIS_RATIO: f64 = 100.0;

const CONVERGENCE_SIZE: (u32, u32) = (1000, 600);

/// The file format of a plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    Svg,
    Png,
}

impl PlotFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            PlotFormat::Svg => "svg",
            PlotFormat::Png => "png",
        }
    }

    /// The format a path's extension names (`.svg` or `.png`, any case).
    pub fn from_path(path: &Path) -> Result<PlotFormat> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Ok(PlotFormat::Svg),
            Some("png") => Ok(PlotFormat::Png),
            _ => Err(Error::Config(format!("{}: a plot file must end in .svg or .png", path.display()))),
        }
    }
}

/// One complete trial as the convergence plot shows it, in the objective's units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvergencePoint {
    pub trial: u64,
    pub value: f64,
    pub feasible: bool,
    /// Best feasible value up to and including this trial (`None` before the first feasible one).
    pub best: Option<f64>,
}

/// Where the baseline (the spec's defaults) stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaselineLevel {
    /// Mean objective value over the baseline's complete trials.
    pub value: f64,
    pub feasible: bool,
}

/// The data of a convergence plot: every complete trial in trial-number
/// order with the best value so far, and the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Convergence {
    /// What the values are (the objective's metric, or `score` for several).
    pub label: String,
    pub points: Vec<ConvergencePoint>,
    pub baseline: Option<BaselineLevel>,
}

impl Convergence {
    /// Collect the complete trials (failed, pruned and running ones are left
    /// out, and so are complete ones whose metrics cannot be scored);
    /// infeasible trials are shown but never count as the best.
    pub fn from_trials(objectives: &Objectives, trials: &[Trial]) -> Convergence {
        let mut scored: Vec<(&Trial, f64, bool)> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| objectives.score(&t.metrics).ok().map(|o| (t, o.score, o.feasible())))
            .collect();
        scored.sort_by_key(|(t, _, _)| t.number);

        let mut best: Option<f64> = None;
        let mut points = Vec::with_capacity(scored.len());
        let (mut base_sum, mut base_n, mut base_feasible) = (0.0, 0usize, true);
        for &(t, score, feasible) in &scored {
            if feasible && best.is_none_or(|b| score < b) {
                best = Some(score);
            }
            let value = objectives.display_value(score);
            if t.baseline {
                base_sum += value;
                base_n += 1;
                base_feasible &= feasible;
            }
            points.push(ConvergencePoint {
                trial: t.number,
                value,
                feasible,
                best: best.map(|b| objectives.display_value(b)),
            });
        }
        Convergence {
            label: objectives.label().to_string(),
            points,
            baseline: (base_n > 0).then(|| BaselineLevel { value: base_sum / base_n as f64, feasible: base_feasible }),
        }
    }

    /// True when there is no complete trial to plot.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The best feasible value of the study, if any trial was feasible.
    pub fn best(&self) -> Option<f64> {
        self.points.last().and_then(|p| p.best)
    }
}

/// Draw best-so-far against trial number, every trial as a faint point and
/// the baseline as a dashed line, to `path` (`.svg` or `.png`).
///
/// An empty [`Convergence`] (no complete trial) is an error saying so;
/// callers that would rather skip the plot check [`Convergence::is_empty`].
pub fn convergence_plot(path: &Path, title: &str, convergence: &Convergence) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    if convergence.is_empty() {
        return Err(Error::Config(format!(
            "{}: no convergence plot without complete trials ({title})",
            path.display()
        )));
    }
    if let Some(bad) = convergence.points.iter().find(|p| !p.value.is_finite()) {
        return Err(Error::Config(format!("trial {}: value {} is not a finite number", bad.trial, bad.value)));
    }
    register_font()?;
    match format {
        PlotFormat::Svg => {
            let root = SVGBackend::new(path, CONVERGENCE_SIZE).into_drawing_area();
            draw_convergence(&root, title, convergence).and_then(|()| root.present()).map_err(|e| draw_error(path, e))
        }
        PlotFormat::Png => {
            let root = BitMapBackend::new(path, CONVERGENCE_SIZE).into_drawing_area();
            draw_convergence(&root, title, convergence).and_then(|()| root.present()).map_err(|e| draw_error(path, e))
        }
    }
}

/// Draw a forecast: the recent history, the point forecast and its interval
/// band, against hours from the last observation, to `path` (`.svg` or
/// `.png`). `forecast` rows are `(unix seconds, point, lower, upper)`.
pub fn forecast_plot(
    path: &Path,
    title: &str,
    history: &[(i64, f64)],
    forecast: &[(i64, f64, f64, f64)],
) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    let (Some(&(t0, _)), false) = (history.last(), forecast.is_empty()) else {
        return Err(Error::Config(format!("{}: a forecast plot needs history and a forecast", path.display())));
    };
    let values = history.iter().map(|p| p.1).chain(forecast.iter().flat_map(|f| [f.1, f.2, f.3]));
    if values.clone().any(|v| !v.is_finite()) {
        return Err(Error::Config(format!("{}: non-finite values in the forecast", path.display())));
    }
    register_font()?;
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let y = (lo - pad)..(hi + pad);
    match format {
        PlotFormat::Svg => {
            let root = SVGBackend::new(path, CONVERGENCE_SIZE).into_drawing_area();
            draw_forecast(&root, title, history, forecast, t0, y)
                .and_then(|()| root.present())
                .map_err(|e| draw_error(path, e))
        }
        PlotFormat::Png => {
            let root = BitMapBackend::new(path, CONVERGENCE_SIZE).into_drawing_area();
            draw_forecast(&root, title, history, forecast, t0, y)
                .and_then(|()| root.present())
                .map_err(|e| draw_error(path, e))
        }
    }
}

fn draw_forecast<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    history: &[(i64, f64)],
    forecast: &[(i64, f64, f64, f64)],
    t0: i64,
    y: Range<f64>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let hours = |t: i64| (t - t0) as f64 / 3600.0;
    let x = hours(history[0].0)..hours(forecast[forecast.len() - 1].0);
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .light_line_style(LIGHT_GRID)
        .bold_line_style(GRID)
        .x_desc("hours from the last observation")
        .y_desc("value")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    let mut band: Vec<(f64, f64)> = forecast.iter().map(|f| (hours(f.0), f.3)).collect();
    band.extend(forecast.iter().rev().map(|f| (hours(f.0), f.2)));
    chart
        .draw_series(std::iter::once(Polygon::new(band, TAB_ORANGE.mix(0.25).filled())))?
        .label("prediction interval")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], TAB_ORANGE.mix(0.25).filled()));
    chart
        .draw_series(LineSeries::new(history.iter().map(|p| (hours(p.0), p.1)), TAB_BLUE.stroke_width(1)))?
        .label("recorded")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], TAB_BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(forecast.iter().map(|f| (hours(f.0), f.1)), TAB_ORANGE.stroke_width(2)))?
        .label("forecast")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], TAB_ORANGE.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

/// Draw a recorded series against days from its first point, outliers as red rings and
/// changepoints as dashed vertical lines, to `path` (`.svg` or `.png`).
pub fn telemetry_plot(
    path: &Path,
    title: &str,
    points: &[(i64, f64)],
    outliers: &[crate::telemetry::Outlier],
    changepoints: &[crate::telemetry::Changepoint],
) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Err(Error::Config(format!("{}: nothing to plot", path.display())));
    };
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(Error::Config(format!("{}: non-finite values in the series", path.display())));
    }
    register_font()?;
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let t0 = first.0;
    let x = 0.0..((last.0 - t0) as f64 / 86_400.0).max(1e-9);
    let y = (lo - pad)..(hi + pad);
    match format {
        PlotFormat::Svg => {
            let root = SVGBackend::new(path, CONVERGENCE_SIZE).into_drawing_area();
            draw_telemetry(&root, title, points, outliers, changepoints, x, y)
                .and_then(|()| root.present())
                .map_err(|e| draw_error(path, e))
        }
        PlotFormat::Png => {
            let root = BitMapBackend::new(path, CONVERGENCE_SIZE).into_drawing_area();
            draw_telemetry(&root, title, points, outliers, changepoints, x, y)
                .and_then(|()| root.present())
                .map_err(|e| draw_error(path, e))
        }
    }
}

fn draw_telemetry<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[(i64, f64)],
    outliers: &[crate::telemetry::Outlier],
    changepoints: &[crate::telemetry::Changepoint],
    x: Range<f64>,
    y: Range<f64>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let t0 = points[0].0;
    let days = |t: i64| (t - t0) as f64 / 86_400.0;
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d(x.clone(), y.clone())?;
    chart
        .configure_mesh()
        .light_line_style(LIGHT_GRID)
        .bold_line_style(GRID)
        .x_desc(format!("days from {}", crate::telemetry::format_time(t0)))
        .y_desc("value")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    chart
        .draw_series(LineSeries::new(points.iter().map(|p| (days(p.0), p.1)), TAB_BLUE.stroke_width(1)))?
        .label("recorded (resampled)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], TAB_BLUE.stroke_width(2)));
    chart
        .draw_series(outliers.iter().map(|o| Circle::new((days(o.at), o.value), 4, TAB_RED.stroke_width(2))))?
        .label("outlier")
        .legend(|(x, y)| Circle::new((x + 9, y), 4, TAB_RED.stroke_width(2)));
    chart
        .draw_series(changepoints.iter().map(|c| {
            DashedPathElement::new(vec![(days(c.at), y.start), (days(c.at), y.end)], 6, 4, TAB_ORANGE.stroke_width(2))
        }))?
        .label("changepoint")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], TAB_ORANGE.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

/// Draw parameter importances as horizontal bars, most important on top,
/// to `path` (`.svg` or `.png`). Each importance must be a number in [0, 1];
/// bars are drawn in descending order whatever the input order.
pub fn importance_plot(path: &Path, title: &str, importances: &[(String, f64)]) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    if importances.is_empty() {
        return Err(Error::Config(format!("{}: no importance plot without parameters ({title})", path.display())));
    }
    let bad: Vec<String> = importances
        .iter()
        .filter(|(_, v)| !(0.0..=1.0).contains(v))
        .map(|(name, v)| format!("importance of `{name}` must be in [0, 1] (got {v})"))
        .collect();
    if !bad.is_empty() {
        return Err(Error::Config(format!("{}: {}", path.display(), bad.join("; "))));
    }
    let mut sorted: Vec<(&str, f64)> = importances.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    register_font()?;
    let label_font = (FONT, 15).into_font();
    // The widest name decides the label area, within reason; longer names are shortened.
    let max_label = 320;
    let names: Vec<String> = sorted.iter().map(|(n, _)| fit_text(&label_font, n, max_label)).collect();
    let label_width =
        names.iter().map(|n| label_font.box_size(n).map(|(w, _)| w).unwrap_or(max_label)).max().unwrap_or(0);
    let size = (900, (110 + 34 * sorted.len() as u32).max(220));
    let bars: Vec<(String, f64)> = names.into_iter().zip(sorted.iter().map(|(_, v)| *v)).collect();
    match format {
        PlotFormat::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_importance(&root, title, &bars, label_width + 20)
                .and_then(|()| root.present())
                .map_err(|e| draw_error(path, e))
        }
        PlotFormat::Png => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw_importance(&root, title, &bars, label_width + 20)
                .and_then(|()| root.present())
                .map_err(|e| draw_error(path, e))
        }
    }
}

/// Register the embedded font once per process; later calls return the first outcome.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded font assets/fonts/DejaVuSans.ttf cannot be read".to_string())
        })
        .clone()
        .map_err(Error::Config)
}

fn draw_error<E: std::error::Error + Send + Sync>(path: &Path, e: DrawingAreaErrorKind<E>) -> Error {
    Error::io(path.display().to_string(), std::io::Error::other(format!("cannot draw the plot: {e}")))
}

/// `text`, shortened with an ellipsis so that it is at most `max` pixels wide.
fn fit_text(font: &FontDesc<'_>, text: &str, max: u32) -> String {
    let width = |s: &str| font.box_size(s).map(|(w, _)| w).unwrap_or(u32::MAX);
    if width(text) <= max {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().chain(std::iter::once(&'…')).collect();
        if width(&candidate) <= max {
            return candidate;
        }
    }
    "…".to_string()
}

/// The y axis of a convergence plot: linear, or logarithmic when the values
/// are positive and span more than two decades (on a linear axis the first
/// trials would flatten everything after them into one line).
#[derive(Debug, Clone, PartialEq)]
struct ValueAxis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl ValueAxis {
    fn fit(c: &Convergence) -> ValueAxis {
        let values = c.points.iter().map(|p| p.value).chain(c.baseline.map(|b| b.value));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > 0.0 && hi / lo > LOG_AXIS_RATIO {
            let pad = (hi / lo).powf(0.04);
            return ValueAxis { lo: lo / pad, hi: hi * pad, log: true };
        }
        let span = hi - lo;
        // All values equal: a band around them, so the line is not on the frame.
        let pad = if span > 0.0 { span * 0.06 } else { (hi.abs() * 0.1).max(1.0) };
        ValueAxis { lo: lo - pad, hi: hi + pad, log: false }
    }

    /// Ticks of a log axis: 1, 2 and 5 times the powers of ten (fewer when
    /// more than `max` would show); with `light`, every multiple 1..9 for the
    /// light grid lines.
    fn log_ticks(&self, max: usize, light: bool) -> Vec<f64> {
        let (first, last) = (self.lo.log10().floor() as i32, self.hi.log10().ceil() as i32);
        let with = |mantissas: &[f64]| -> Vec<f64> {
            (first..=last)
                .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
                .filter(|v| (self.lo..=self.hi).contains(v))
                .collect()
        };
        if light {
            let all = with(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
            return if all.len() <= max { all } else { Vec::new() };
        }
        for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0, 3.0], &[1.0]] {
            let ticks = with(mantissas);
            if ticks.len() <= max {
                return ticks;
            }
        }
        // Very many decades: every k-th power of ten.
        let powers = with(&[1.0]);
        let step = powers.len().div_ceil(max.max(1)).max(1);
        powers.into_iter().step_by(step).collect()
    }
}

impl Ranged for ValueAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = if self.log {
            (value.max(f64::MIN_POSITIVE).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (value - self.lo) / (self.hi - self.lo)
        };
        limit.0 + ((limit.1 - limit.0) as f64 * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if self.log {
            self.log_ticks(hint.max_num_points(), hint.weight().allow_light_points())
        } else {
            RangedCoordf64::from(self.lo..self.hi).key_points(hint)
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

fn draw_convergence<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    c: &Convergence,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let first = c.points.first().map_or(0, |p| p.trial) as f64;
    let last = c.points.last().map_or(0, |p| p.trial) as f64;
    let pad = ((last - first) * 0.02).max(1.0);
    let x_range = (first - pad)..(last + pad);
    let y_axis = ValueAxis::fit(c);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(86)
        .build_cartesian_2d(x_range.clone(), y_axis.clone())?;
    chart
        .configure_mesh()
        .x_desc("trial")
        .y_desc(c.label.as_str())
        .axis_desc_style((FONT, 17))
        .label_style((FONT, 14))
        .bold_line_style(GRID)
        .light_line_style(LIGHT_GRID)
        // Light lines only mark the 2..9 multiples of a log axis.
        .x_max_light_lines(0)
        .y_max_light_lines(if y_axis.log { 10 } else { 0 })
        .x_labels(10)
        .y_labels(10)
        .x_label_formatter(&|v| {
            // Trial numbers are whole; ticks in between stay unlabelled.
            let whole = v.round();
            if whole >= 0.0 && (v - whole).abs() < 1e-9 { format!("{whole}") } else { String::new() }
        })
        .y_label_formatter(&|v| fmt_num(*v))
        .draw()?;

    let feasible = c.points.iter().filter(|p| p.feasible).map(|p| (p.trial as f64, p.value));
    chart
        .draw_series(feasible.map(|xy| Circle::new(xy, 3, TAB_BLUE.mix(0.3).filled())))?
        .label("trial")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, TAB_BLUE.mix(0.5).filled()));
    if c.points.iter().any(|p| !p.feasible) {
        let infeasible = c.points.iter().filter(|p| !p.feasible).map(|p| (p.trial as f64, p.value));
        chart
            .draw_series(infeasible.map(|xy| Cross::new(xy, 4, TAB_RED.mix(0.45).stroke_width(1))))?
            .label("infeasible trial")
            .legend(|(x, y)| Cross::new((x + 10, y), 4, TAB_RED.stroke_width(1)));
    }

    // Best so far as a step line: it holds until the trial that improves on it.
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for p in &c.points {
        if let Some(b) = p.best {
            if let Some(&(_, prev)) = steps.last()
                && prev != b
            {
                steps.push((p.trial as f64, prev));
            }
            steps.push((p.trial as f64, b));
        }
    }
    if let Some(best) = c.best() {
        chart
            .draw_series(LineSeries::new(steps, TAB_BLUE.stroke_width(3)))?
            .label(format!("best so far ({})", fmt_num(best)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], TAB_BLUE.stroke_width(3)));
    }

    if let Some(base) = c.baseline {
        let label = if base.feasible {
            format!("baseline ({})", fmt_num(base.value))
        } else {
            format!("baseline ({}, infeasible)", fmt_num(base.value))
        };
        let line = [(x_range.start, base.value), (x_range.end, base.value)];
        chart
            .draw_series(DashedLineSeries::new(line, 10, 6, TAB_ORANGE.stroke_width(2)))?
            .label(label)
            .legend(|(x, y)| DashedPathElement::new(vec![(x, y), (x + 20, y)], 5, 3, TAB_ORANGE.stroke_width(2)));
    }

    // The legend goes in the third of the right edge farthest from the lines
    // that end there (best so far, baseline).
    let height = |v: f64| y_axis.map(&v, (0, 1000)) as f64 / 1000.0;
    let lines: Vec<f64> = c.best().into_iter().chain(c.baseline.map(|b| b.value)).map(height).collect();
    let clearance = |centre: f64| lines.iter().map(|h| (h - centre).abs()).fold(f64::INFINITY, f64::min);
    let position = [
        (SeriesLabelPosition::UpperRight, 0.85),
        (SeriesLabelPosition::MiddleRight, 0.5),
        (SeriesLabelPosition::LowerRight, 0.15),
    ]
    .into_iter()
    .max_by(|a, b| clearance(a.1).total_cmp(&clearance(b.1)))
    .map_or(SeriesLabelPosition::UpperRight, |(p, _)| p);
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    Ok(())
}

fn draw_importance<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    bars: &[(String, f64)],
    label_area: u32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let n = bars.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .margin_right(24)
        .x_label_area_size(52)
        .y_label_area_size(label_area)
        .build_cartesian_2d(0.0..1.12, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .x_desc("importance")
        .axis_desc_style((FONT, 17))
        .label_style((FONT, 15))
        .disable_y_mesh()
        .y_labels(0)
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_labels(7)
        .x_label_formatter(&|v| if *v <= 1.0 + 1e-9 { format!("{v:.1}") } else { String::new() })
        .draw()?;
    // Row n-1 (the top) holds the first, most important bar.
    let row = |i: usize| (n - 1 - i) as f64;
    chart.draw_series(
        bars.iter()
            .enumerate()
            .map(|(i, (_, v))| Rectangle::new([(0.0, row(i) + 0.18), (*v, row(i) + 0.82)], TAB_BLUE.filled())),
    )?;
    let value_style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(
        bars.iter()
            .enumerate()
            .map(|(i, (_, v))| Text::new(format!("{v:.2}"), (v + 0.012, row(i) + 0.5), value_style.clone())),
    )?;
    // Names go in the label area, beside their bar: drawn on the whole
    // canvas at the bar's pixel row, since the chart clips to its plot area.
    let name_style = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, (name, _)) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, row(i) + 0.5));
        root.draw(&Text::new(name.as_str(), (x - 10, y), name_style.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::{Constraint, Direction, Objective};
    use crate::space::Config;
    use std::collections::BTreeMap;

    fn objectives(direction: Direction) -> Objectives {
        Objectives {
            objectives: vec![Objective { metric: "latency_ms".into(), direction, weight: 1.0 }],
            constraints: vec![Constraint::parse("err <= 0.1").unwrap()],
        }
    }

    fn trial(number: u64, state: TrialState, latency: f64, err: f64) -> Trial {
        let metrics: BTreeMap<String, f64> = if state == TrialState::Complete {
            [("latency_ms".to_string(), latency), ("err".to_string(), err)].into()
        } else {
            BTreeMap::new()
        };
        Trial {
            number,
            batch: number,
            ticket: None,
            x: vec![],
            config: Config::new(),
            state,
            metrics,
            elapsed_s: None,
            epoch: 0,
            baseline: number == 0,
        }
    }

    fn ok(number: u64, latency: f64) -> Trial {
        trial(number, TrialState::Complete, latency, 0.0)
    }

    #[test]
    fn best_so_far_skips_failed_and_ignores_infeasible_trials() {
        let trials = vec![
            ok(3, 7.0),
            ok(0, 10.0), // baseline; out of order on purpose
            trial(1, TrialState::Failed { reason: "boom".into() }, 0.0, 0.0),
            trial(2, TrialState::Complete, 1.0, 0.5), // best value but infeasible
            ok(4, 9.0),
            trial(5, TrialState::Running, 0.0, 0.0),
        ];
        let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
        let got: Vec<(u64, f64, bool, Option<f64>)> =
            c.points.iter().map(|p| (p.trial, p.value, p.feasible, p.best)).collect();
        assert_eq!(
            got,
            vec![
                (0, 10.0, true, Some(10.0)),
                (2, 1.0, false, Some(10.0)),
                (3, 7.0, true, Some(7.0)),
                (4, 9.0, true, Some(7.0)),
            ]
        );
        assert_eq!(c.baseline, Some(BaselineLevel { value: 10.0, feasible: true }));
        assert_eq!(c.best(), Some(7.0));
        assert_eq!(c.label, "latency_ms");
    }

    #[test]
    fn maximized_objectives_are_shown_in_their_own_units() {
        let trials = vec![ok(0, 100.0), ok(1, 150.0), ok(2, 120.0)];
        let c = Convergence::from_trials(&objectives(Direction::Maximize), &trials);
        let best: Vec<Option<f64>> = c.points.iter().map(|p| p.best).collect();
        assert_eq!(best, vec![Some(100.0), Some(150.0), Some(150.0)]);
    }

    #[test]
    fn svg_has_title_axis_labels_and_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("convergence.svg");
        let trials: Vec<Trial> = (0..40).map(|i| ok(i, 50.0 / (1.0 + i as f64) + (i % 3) as f64)).collect();
        let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
        convergence_plot(&path, "study demo: minimize latency_ms", &c).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        let texts = svg_texts(&svg);
        for text in ["study demo: minimize latency_ms", "trial", "latency_ms", "baseline (50)", "best so far (1.25)"] {
            assert!(texts.iter().any(|t| t == text), "no text {text:?} in the SVG; texts: {texts:?}");
        }
        assert_eq!(svg.matches("<circle").count(), 40 + 1, "one point per trial, one in the legend");
    }

    #[test]
    fn png_is_a_valid_png_of_the_plot_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("convergence.png");
        // Values over four decades: the log axis path.
        let trials: Vec<Trial> = (0..60).map(|i| ok(i, 3000.0 / (1.0 + (i * i) as f64) + 0.2)).collect();
        let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
        assert!(ValueAxis::fit(&c).log, "values over four decades should get a log axis");
        convergence_plot(&path, "log axis", &c).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(png_size(&bytes), CONVERGENCE_SIZE);
    }

    #[test]
    fn no_complete_trials_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("convergence.svg");
        let trials = vec![trial(0, TrialState::Failed { reason: "boom".into() }, 0.0, 0.0)];
        let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
        assert!(c.is_empty());
        let err = convergence_plot(&path, "empty", &c).unwrap_err().to_string();
        assert!(err.contains("no convergence plot without complete trials"), "{err}");
        assert!(!path.exists());
        let empty = Convergence::from_trials(&objectives(Direction::Minimize), &[]);
        assert!(convergence_plot(&path, "empty", &empty).is_err());
    }

    #[test]
    fn single_trial_all_equal_and_all_infeasible_values_draw() {
        let dir = tempfile::tempdir().unwrap();
        let o = objectives(Direction::Minimize);
        let cases: Vec<(&str, Vec<Trial>)> = vec![
            ("single", vec![ok(0, 5.0)]),
            ("equal", (0..10).map(|i| ok(i, 2.5)).collect()),
            ("zeros", (0..10).map(|i| ok(i, 0.0)).collect()),
            ("infeasible", (0..5).map(|i| trial(i, TrialState::Complete, i as f64, 1.0)).collect()),
            ("negative", (0..10).map(|i| ok(i, -1000.0 * i as f64)).collect()),
        ];
        for (name, trials) in cases {
            let c = Convergence::from_trials(&o, &trials);
            let ValueAxis { lo, hi, .. } = ValueAxis::fit(&c);
            assert!(lo < hi, "{name}: empty y range {lo}..{hi}");
            for ext in ["svg", "png"] {
                let path = dir.path().join(format!("{name}.{ext}"));
                convergence_plot(&path, name, &c).unwrap_or_else(|e| panic!("{name}.{ext}: {e}"));
                assert!(std::fs::metadata(&path).unwrap().len() > 0, "{name}.{ext} is empty");
            }
        }
        let texts = svg_texts(&std::fs::read_to_string(dir.path().join("infeasible.svg")).unwrap());
        assert!(texts.iter().any(|t| t == "infeasible trial"), "{texts:?}");
        assert!(!texts.iter().any(|t| t.starts_with("best so far")), "no feasible trial, no best line: {texts:?}");
    }

    #[test]
    fn unknown_extensions_are_refused() {
        let c = Convergence::from_trials(&objectives(Direction::Minimize), &[ok(0, 1.0)]);
        let err = convergence_plot(Path::new("plot.jpg"), "t", &c).unwrap_err().to_string();
        assert!(err.contains("must end in .svg or .png"), "{err}");
        assert_eq!(PlotFormat::from_path(Path::new("a/B.PNG")).unwrap(), PlotFormat::Png);
    }

    #[test]
    fn importance_plot_draws_bars_most_important_first() {
        let dir = tempfile::tempdir().unwrap();
        let importances = vec![
            ("cache_ttl_s".to_string(), 0.15),
            ("pool_size".to_string(), 0.7),
            ("a_parameter_with_a_rather_long_name_indeed_that_goes_on".to_string(), 0.05),
            ("eviction".to_string(), 1.0),
            ("gc_threshold".to_string(), 0.0),
        ];
        let svg_path = dir.path().join("importance.svg");
        importance_plot(&svg_path, "demo: parameter importance", &importances).unwrap();
        let texts = svg_texts(&std::fs::read_to_string(&svg_path).unwrap());
        for text in ["demo: parameter importance", "importance", "pool_size", "0.70", "1.00", "0.00"] {
            assert!(texts.iter().any(|t| t == text), "no text {text:?} in the SVG; texts: {texts:?}");
        }
        // Most important on top: SVG y grows downwards.
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        let y = |name: &str| svg_text_y(&svg, name).unwrap_or_else(|| panic!("no label {name}"));
        let long = texts.iter().find(|t| t.starts_with("a_parameter_with")).expect("the long name, shortened");
        assert!(long.ends_with('…') && long.len() < importances[2].0.len(), "{long}");
        let order = ["eviction", "pool_size", "cache_ttl_s", long.as_str(), "gc_threshold"];
        assert!(order.windows(2).all(|w| y(w[0]) < y(w[1])), "{:?}", order.map(|n| (n, y(n))));

        let png_path = dir.path().join("importance.png");
        importance_plot(&png_path, "demo: parameter importance", &importances).unwrap();
        assert_eq!(png_size(&std::fs::read(&png_path).unwrap()), (900, 110 + 34 * 5));
    }

    #[test]
    fn importance_plot_refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("importance.svg");
        assert!(importance_plot(&path, "t", &[]).unwrap_err().to_string().contains("without parameters"));
        let bad = vec![("a".to_string(), 1.5), ("b".to_string(), f64::NAN), ("c".to_string(), 0.5)];
        let err = importance_plot(&path, "t", &bad).unwrap_err().to_string();
        assert!(err.contains("`a` must be in [0, 1] (got 1.5)") && err.contains("`b`"), "{err}");
        assert!(!err.contains("`c`"), "{err}");
        assert!(!path.exists());
    }

    /// The text of every `<text>` element of an SVG, trimmed.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    /// The y position of the first `<text>` element whose text is `text`.
    fn svg_text_y(svg: &str, text: &str) -> Option<f64> {
        svg.split("<text").skip(1).find_map(|t| {
            let (attrs, rest) = t.split_once('>')?;
            (rest.split_once("</text>")?.0.trim() == text).then_some(())?;
            attrs.split_once(" y=\"")?.1.split_once('"')?.0.parse().ok()
        })
    }

    /// Check a PNG's structure (signature, every chunk's CRC, IHDR first,
    /// image data present, IEND last) and return its width and height.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "no PNG signature");
        let mut at = 8;
        let mut chunks: Vec<[u8; 4]> = Vec::new();
        let mut size = (0, 0);
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().unwrap();
            let data = &bytes[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(bytes[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(
                crc32(&bytes[at + 4..at + 8 + len]),
                crc,
                "bad CRC in chunk {:?}",
                String::from_utf8_lossy(&kind)
            );
            if &kind == b"IHDR" {
                size = (
                    u32::from_be_bytes(data[0..4].try_into().unwrap()),
                    u32::from_be_bytes(data[4..8].try_into().unwrap()),
                );
            }
            chunks.push(kind);
            at += 12 + len;
        }
        assert_eq!(chunks.first(), Some(b"IHDR"));
        assert_eq!(chunks.last(), Some(b"IEND"));
        assert!(chunks.iter().any(|c| c == b"IDAT"), "no image data");
        size
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
