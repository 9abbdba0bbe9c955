//! The parameter-importance plot: horizontal bars, most important on top.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::*;

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
    render!(path, format, size, |root| draw_importance(root, title, &bars, label_width + 20))
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
