//! Plots of a Pareto study: the front (two objectives: one chart; three or more: a scatter
//! matrix of every pair) with the dominated trials faint and the baseline marked, and the
//! hypervolume against trials.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::*;
use crate::format::fmt_num;
use crate::objective::Objectives;
use crate::pareto;
use crate::recommend::pareto::ParetoFront;
use crate::trial::{Trial, TrialState};

/// At most this many checkpoints of the hypervolume curve (each computes a hypervolume).
const CHECKPOINTS: usize = 120;

/// What a front plot shows, in the metrics' units.
#[derive(Debug, Clone)]
pub struct FrontData {
    /// The objectives' metrics.
    pub names: Vec<String>,
    /// Every complete feasible trial's objectives (drawn faint).
    pub trials: Vec<Vec<f64>>,
    /// The front's points (drawn strong), knee first.
    pub front: Vec<Vec<f64>>,
    /// Position of the knee in `front`.
    pub knee: Option<usize>,
    /// The baseline's objectives, when it was measured and feasible.
    pub baseline: Option<Vec<f64>>,
}

impl FrontData {
    /// The plot's data from a study's trials and its front.
    pub fn new(objectives: &Objectives, trials: &[Trial], front: &ParetoFront, baseline: Option<Vec<f64>>) -> Self {
        let values = |t: &Trial| -> Option<Vec<f64>> {
            objectives.score(&t.metrics).ok().filter(|o| o.feasible())?;
            objectives.objectives.iter().map(|o| t.metrics.get(&o.metric).copied()).collect()
        };
        FrontData {
            names: front.objectives.clone(),
            trials: trials.iter().filter(|t| t.state == TrialState::Complete).filter_map(values).collect(),
            front: front.pareto_front.iter().map(|p| p.objectives.clone()).collect(),
            knee: front.pareto_front.iter().position(|p| p.knee),
            baseline,
        }
    }
}

/// The front to `path` (`.svg` or `.png`): one chart for two objectives, a scatter matrix of
/// every pair for more. An empty front is an error saying so.
pub fn front_plot(path: &Path, title: &str, data: &FrontData) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    if data.front.is_empty() {
        return Err(Error::Config(format!("{}: no front plot without a feasible trial ({title})", path.display())));
    }
    let m = data.names.len();
    if m < 2 || data.front.iter().chain(&data.trials).any(|p| p.len() != m || p.iter().any(|v| !v.is_finite())) {
        return Err(Error::Config(format!(
            "{}: a front plot needs two or more objectives and finite values ({title})",
            path.display()
        )));
    }
    register_font()?;
    let size = if m == 2 { CONVERGENCE_SIZE } else { (300 * m as u32 + 80, 300 * m as u32 + 60) };
    render!(path, format, size, |root| draw_front(root, title, data))
}

fn draw_front<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    data: &FrontData,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let m = data.names.len();
    if m == 2 {
        return draw_pair(root, Some(title), data, 0, 1, true);
    }
    let body = root.titled(title, (FONT, 22))?;
    let cells = body.split_evenly((m, m));
    for (c, cell) in cells.iter().enumerate() {
        let (row, col) = (c / m, c % m);
        if row == col {
            let style = TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
            let (w, h) = cell.dim_in_pixel();
            cell.draw(&Text::new(data.names[row].clone(), (w as i32 / 2, h as i32 / 2), style))?;
        } else {
            draw_pair(cell, None, data, col, row, row == 0 && col == 1)?;
        }
    }
    Ok(())
}

/// Range of a set of values with a margin.
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = if hi > lo { (hi - lo) * 0.05 } else { hi.abs().max(1.0) * 0.1 };
    (lo - pad)..(hi + pad)
}

/// Objective `x` across, `y` up: the trials faint, the front strong, the knee and the baseline
/// marked; a legend when asked.
fn draw_pair<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: Option<&str>,
    data: &FrontData,
    x: usize,
    y: usize,
    legend: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let all = || data.trials.iter().chain(&data.front).chain(&data.baseline);
    let (xr, yr) = (padded(all().map(|p| p[x])), padded(all().map(|p| p[y])));
    let mut builder = ChartBuilder::on(area);
    if let Some(t) = title {
        builder.caption(t, (FONT, 22));
    }
    let small = title.is_none();
    let mut chart = builder
        .margin(if small { 6 } else { 16 })
        .margin_right(if small { 10 } else { 28 })
        .x_label_area_size(if small { 34 } else { 52 })
        .y_label_area_size(if small { 56 } else { 86 })
        .build_cartesian_2d(xr, yr)?;
    chart
        .configure_mesh()
        .x_desc(data.names[x].as_str())
        .y_desc(data.names[y].as_str())
        .axis_desc_style((FONT, if small { 13 } else { 17 }))
        .label_style((FONT, if small { 11 } else { 14 }))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_labels(if small { 4 } else { 8 })
        .y_labels(if small { 4 } else { 8 })
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .draw()?;
    let r = if small { 2 } else { 3 };
    chart
        .draw_series(
            data.trials.iter().map(|p| Circle::new((p[x], p[y]), r, RGBColor(160, 160, 160).mix(0.35).filled())),
        )?
        .label("trial")
        .legend(move |(px, py)| Circle::new((px + 10, py), 3, RGBColor(160, 160, 160).filled()));
    chart
        .draw_series(data.front.iter().map(|p| Circle::new((p[x], p[y]), r + 1, TAB_BLUE.filled())))?
        .label(format!("front ({} configurations)", data.front.len()))
        .legend(|(px, py)| Circle::new((px + 10, py), 4, TAB_BLUE.filled()));
    if data.names.len() == 2 {
        // The front as a staircase in the two objectives.
        let mut sorted: Vec<(f64, f64)> = data.front.iter().map(|p| (p[x], p[y])).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut steps = Vec::with_capacity(2 * sorted.len());
        for w in sorted.windows(2) {
            steps.push(w[0]);
            steps.push((w[1].0, w[0].1));
        }
        steps.extend(sorted.last());
        chart.draw_series(LineSeries::new(steps, TAB_BLUE.mix(0.6).stroke_width(1)))?;
    }
    if let Some(k) = data.knee.and_then(|k| data.front.get(k)) {
        chart
            .draw_series(std::iter::once(Circle::new((k[x], k[y]), r + 5, TAB_RED.stroke_width(2))))?
            .label("knee")
            .legend(|(px, py)| Circle::new((px + 10, py), 6, TAB_RED.stroke_width(2)));
    }
    if let Some(b) = &data.baseline {
        chart
            .draw_series(std::iter::once(TriangleMarker::new((b[x], b[y]), r + 5, TAB_ORANGE.filled())))?
            .label("baseline")
            .legend(|(px, py)| TriangleMarker::new((px + 10, py), 6, TAB_ORANGE.filled()));
    }
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(10)
            .label_font((FONT, if small { 12 } else { 15 }))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
    }
    Ok(())
}

/// The hypervolume of the front found up to each checkpoint (trial number, hypervolume),
/// measured from `reference` (signed: lower is better in every objective). At most
/// [`CHECKPOINTS`] points, the last at the last trial.
pub fn hypervolume_history(objectives: &Objectives, trials: &[Trial], reference: &[f64]) -> Vec<(u64, f64)> {
    let scored: Vec<(u64, Vec<f64>)> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter(|t| objectives.score(&t.metrics).is_ok_and(|o| o.feasible()))
        .filter_map(|t| Some((t.number, objectives.signed_values(&t.metrics).ok()?)))
        .collect();
    let n = scored.len();
    let step = n.div_ceil(CHECKPOINTS).max(1);
    let mut archive = pareto::Archive::default();
    let mut out = Vec::new();
    for (i, (number, v)) in scored.into_iter().enumerate() {
        archive.insert(v);
        if (i + 1) % step == 0 || i + 1 == n {
            out.push((number, pareto::hypervolume(&archive.members(), reference)));
        }
    }
    out
}

/// The hypervolume against trials to `path`. Fewer than two points is an error saying so.
pub fn hypervolume_plot(path: &Path, title: &str, history: &[(u64, f64)]) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    if history.len() < 2 {
        return Err(Error::Config(format!("{}: a hypervolume plot needs two checkpoints ({title})", path.display())));
    }
    register_font()?;
    render!(path, format, CONVERGENCE_SIZE, |root| draw_hypervolume(root, title, history))
}

fn draw_hypervolume<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    history: &[(u64, f64)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let last = history.last().map_or(1, |h| h.0) as f64;
    let top = history.iter().map(|h| h.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(86)
        .build_cartesian_2d(0.0..last * 1.02 + 1.0, 0.0..top * 1.08)?;
    chart
        .configure_mesh()
        .x_desc("trial")
        .y_desc("hypervolume")
        .axis_desc_style((FONT, 17))
        .label_style((FONT, 14))
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_label_formatter(&|v| format!("{}", v.round()))
        .y_label_formatter(&|v| fmt_num(*v))
        .draw()?;
    chart.draw_series(LineSeries::new(history.iter().map(|&(n, h)| (n as f64, h)), TAB_BLUE.stroke_width(3)))?;
    chart.draw_series(history.iter().map(|&(n, h)| Circle::new((n as f64, h), 3, TAB_BLUE.filled())))?;
    Ok(())
}
