//! The convergence plot: best-so-far against trial number, every trial as a
//! faint point (infeasible ones as crosses), the baseline as a dashed line;
//! the y axis turns logarithmic when the values span decades.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use serde::Serialize;

use super::*;
use crate::format::fmt_num;
use crate::objective::Objectives;
use crate::trial::{Trial, TrialState};

/// One complete trial as the convergence plot shows it, in the objective's units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvergencePoint {
    /// The trial's number (see [`Trial::number`]).
    pub trial: u64,
    /// The trial's objective value in the objective's units (for several objectives, the
    /// weighted score, lower is better).
    pub value: f64,
    /// False when the trial broke a constraint; such a trial is drawn but never the best.
    pub feasible: bool,
    /// Best feasible value up to and including this trial (`None` before the first feasible one).
    pub best: Option<f64>,
}

/// Where the baseline (the spec's defaults) stands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaselineLevel {
    /// Mean objective value over the baseline's complete trials.
    pub value: f64,
    /// True only when every baseline trial met the constraints.
    pub feasible: bool,
}

/// The data of a convergence plot: every complete trial in trial-number
/// order with the best value so far, and the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Convergence {
    /// What the values are (the objective's metric, or `score` for several).
    pub label: String,
    /// Complete, scorable trials in ascending trial number.
    pub points: Vec<ConvergencePoint>,
    /// The baseline's level; `None` when the baseline has no complete, scorable trial.
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
    render!(path, format, CONVERGENCE_SIZE, |root| draw_convergence(root, title, convergence))
}

/// The y axis of a convergence plot: linear, or logarithmic when the values
/// are positive and span more than two decades (on a linear axis the first
/// trials would flatten everything after them into one line).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ValueAxis {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) log: bool,
}

impl ValueAxis {
    pub(super) fn fit(c: &Convergence) -> ValueAxis {
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

/// The chart a convergence plot draws on: trial number across, [`ValueAxis`] up.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, ValueAxis>>;
/// What a drawing step returns on backend `DB`.
type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Draws the whole plot on `root`: trials, best so far, baseline and a legend placed clear of them.
fn draw_convergence<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, c: &Convergence) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let first = c.points.first().map_or(0, |p| p.trial) as f64;
    let last = c.points.last().map_or(0, |p| p.trial) as f64;
    let pad = ((last - first) * 0.02).max(1.0);
    let x_range = (first - pad)..(last + pad);
    let y_axis = ValueAxis::fit(c);
    let mut chart = convergence_chart(root, title, &c.label, x_range.clone(), &y_axis)?;
    draw_trials(&mut chart, c)?;
    draw_best(&mut chart, c)?;
    draw_baseline(&mut chart, c, &x_range)?;
    chart
        .configure_series_labels()
        .position(legend_position(c, &y_axis))
        .margin(12)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    Ok(())
}

/// The titled chart with its axes, grid and tick labels drawn, nothing plotted yet.
fn convergence_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    label: &str,
    x_range: Range<f64>,
    y_axis: &ValueAxis,
) -> Result<Chart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(86)
        .build_cartesian_2d(x_range, y_axis.clone())?;
    chart
        .configure_mesh()
        .x_desc("trial")
        .y_desc(label)
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
    Ok(chart)
}

/// Every trial as a faint point; infeasible ones as red crosses (and in the legend only if any).
fn draw_trials<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, c: &Convergence) -> Drawn<DB> {
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
    Ok(())
}

/// Best so far as a step line: it holds until the trial that improves on it. Nothing when no
/// trial was feasible.
fn draw_best<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, c: &Convergence) -> Drawn<DB> {
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
    Ok(())
}

/// The baseline as a dashed line across the whole x range, if the study has one.
fn draw_baseline<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, c: &Convergence, x_range: &Range<f64>) -> Drawn<DB> {
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
    Ok(())
}

/// The legend goes in the third of the right edge farthest from the lines
/// that end there (best so far, baseline).
fn legend_position(c: &Convergence, y_axis: &ValueAxis) -> SeriesLabelPosition {
    let height = |v: f64| y_axis.map(&v, (0, 1000)) as f64 / 1000.0;
    let lines: Vec<f64> = c.best().into_iter().chain(c.baseline.map(|b| b.value)).map(height).collect();
    let clearance = |centre: f64| lines.iter().map(|h| (h - centre).abs()).fold(f64::INFINITY, f64::min);
    [
        (SeriesLabelPosition::UpperRight, 0.85),
        (SeriesLabelPosition::MiddleRight, 0.5),
        (SeriesLabelPosition::LowerRight, 0.15),
    ]
    .into_iter()
    .max_by(|a, b| clearance(a.1).total_cmp(&clearance(b.1)))
    .map_or(SeriesLabelPosition::UpperRight, |(p, _)| p)
}
