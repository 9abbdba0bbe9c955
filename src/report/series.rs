//! Plots of telemetry: a recorded series with its outliers and
//! changepoints, and a forecast with its interval.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::*;

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
    render!(path, format, CONVERGENCE_SIZE, |root| draw_forecast(root, title, history, forecast, t0, y))
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
    let mut chart = series_chart(root, title, "hours from the last observation", x, y)?;
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
    upper_left_legend(&mut chart)
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
    render!(path, format, CONVERGENCE_SIZE, |root| draw_telemetry(root, title, points, outliers, changepoints, x, y))
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
    let x_desc = format!("days from {}", crate::telemetry::format_time(t0));
    let mut chart = series_chart(root, title, &x_desc, x.clone(), y.clone())?;
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
    upper_left_legend(&mut chart)
}

/// A chart of time (x) against value (y).
type SeriesChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The white, titled chart both series plots draw on, axes and grid drawn:
/// x is time (`x_desc` says in what), y the series' value.
fn series_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    x: Range<f64>,
    y: Range<f64>,
) -> Result<SeriesChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
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
        .x_desc(x_desc)
        .y_desc("value")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    Ok(chart)
}

/// The legend both series plots draw: upper left, on a translucent box.
fn upper_left_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font((FONT, 14))
        .draw()
}
