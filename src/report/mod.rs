//! Reports: plots of a study (convergence, parameter importance; a Pareto study's front and
//! hypervolume) and of
//! telemetry (a recorded series with its flags, a forecast), written as SVG
//! or PNG (chosen by the file's extension).
//!
//! Text is drawn with DejaVu Sans, embedded in the binary
//! (`assets/fonts/`, license alongside), so plots look the same everywhere
//! and need no system fonts.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::{Error, Result};

mod convergence;
mod front;
mod importance;
#[cfg(feature = "forecast")]
mod series;

pub use convergence::{BaselineLevel, Convergence, ConvergencePoint, convergence_plot};
pub use front::{FrontData, front_plot, hypervolume_history, hypervolume_plot};
pub use importance::importance_plot;
#[cfg(feature = "forecast")]
pub use series::{forecast_plot, telemetry_plot};

pub(crate) const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

pub(crate) const TAB_BLUE: RGBColor = RGBColor(31, 119, 180);
pub(crate) const TAB_ORANGE: RGBColor = RGBColor(230, 120, 10);
pub(crate) const TAB_RED: RGBColor = RGBColor(214, 39, 40);
pub(crate) const GRID: RGBColor = RGBColor(222, 222, 222);
pub(crate) const LIGHT_GRID: RGBColor = RGBColor(244, 244, 244);

/// Above this ratio of largest to smallest value (all positive), the y axis is logarithmic.
pub(crate) const LOG_AXIS_RATIO: f64 = 100.0;

pub(crate) const CONVERGENCE_SIZE: (u32, u32) = (1000, 600);

/// Draw with `$draw(root)` on an SVG or PNG backend of `$size` at `$path`,
/// as `$format` says, and write the file.
macro_rules! render {
    ($path:expr, $format:expr, $size:expr, |$root:ident| $draw:expr) => {
        match $format {
            $crate::report::PlotFormat::Svg => {
                let area = SVGBackend::new($path, $size).into_drawing_area();
                let $root = &area;
                $draw.and_then(|()| area.present()).map_err(|e| $crate::report::draw_error($path, e))
            }
            $crate::report::PlotFormat::Png => {
                let area = BitMapBackend::new($path, $size).into_drawing_area();
                let $root = &area;
                $draw.and_then(|()| area.present()).map_err(|e| $crate::report::draw_error($path, e))
            }
        }
    };
}
pub(crate) use render;

/// The file format of a plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// Scalable vector graphics.
    Svg,
    /// A bitmap.
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

/// Register the embedded font once per process; later calls return the first outcome.
pub(crate) fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded font assets/fonts/DejaVuSans.ttf cannot be read".to_string())
        })
        .clone()
        .map_err(Error::Config)
}

pub(crate) fn draw_error<E: std::error::Error + Send + Sync>(path: &Path, e: DrawingAreaErrorKind<E>) -> Error {
    Error::io(path.display().to_string(), std::io::Error::other(format!("cannot draw the plot: {e}")))
}

/// `text`, shortened with an ellipsis so that it is at most `max` pixels wide.
pub(crate) fn fit_text(font: &FontDesc<'_>, text: &str, max: u32) -> String {
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

#[cfg(test)]
mod tests;
