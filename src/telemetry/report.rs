//! What reading and preparing a recording did, for people (`Display`) and programs (fields).

use std::fmt;

use super::{Changepoint, Format, Outlier, SeriesKind};
use crate::error::Problem;

/// Most outliers or filled points written out per series when printed; all are in the fields.
const SHOWN: usize = 10;

/// Everything [`load`](super::load) did to one file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Where the file was read from (the path as given).
    pub source: String,
    /// The file's format.
    pub format: Format,
    /// Data rows seen.
    pub rows_read: usize,
    /// Rows dropped because something in them was unreadable (only with `BadRows::Skip`).
    pub bad_rows: usize,
    /// Why they were dropped (at most 50 listed, then a count).
    pub skipped: Vec<Problem>,
    /// One report per loaded series, in the order of [`Loaded::series`](super::Loaded::series).
    pub series: Vec<SeriesReport>,
}

/// What was done to one series.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesReport {
    /// The series' name.
    pub name: String,
    /// Whether resampling summed (count) or averaged (gauge) it.
    pub kind: SeriesKind,
    /// Distinct timestamps after merging duplicates.
    pub samples: usize,
    /// Samples that came earlier than the one before them (the series was sorted).
    pub out_of_order: usize,
    /// Samples merged into another at the same timestamp (sum for counts, mean for gauges).
    pub duplicates_merged: usize,
    /// Resampling step, seconds.
    pub step: i64,
    /// True when the step was inferred (the median step) rather than given.
    pub step_inferred: bool,
    /// Points after resampling.
    pub buckets: usize,
    /// Runs of empty buckets.
    pub gaps: usize,
    /// Empty buckets in all, over every gap (each was filled by linear interpolation).
    pub missing_buckets: usize,
    /// Empty buckets in the longest run.
    pub longest_gap: usize,
    /// Timestamps of the points filled by linear interpolation.
    pub filled: Vec<i64>,
    /// Points flagged as outliers, in time order; empty when flagging is off.
    pub outliers: Vec<Outlier>,
    /// Sustained level shifts, in time order.
    pub changepoints: Vec<Changepoint>,
}

/// `2014-04-10 00:04:00`, or the raw number when out of chrono's range.
pub fn format_time(t: i64) -> String {
    match chrono::DateTime::from_timestamp(t, 0) {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => t.to_string(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} read, {} dropped, {}",
            self.source,
            self.format,
            plural(self.rows_read, "row", "rows"),
            plural(self.bad_rows, "bad row", "bad rows"),
            plural(self.series.len(), "series", "series"),
        )?;
        for p in &self.skipped {
            write!(f, "\n  dropped {p}")?;
        }
        for s in &self.series {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for SeriesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  `{}` ({}): {}, step {} s ({}), {}",
            self.name,
            self.kind,
            plural(self.samples, "sample", "samples"),
            self.step,
            if self.step_inferred { "inferred: median step" } else { "given" },
            plural(self.buckets, "bucket", "buckets"),
        )?;
        if self.out_of_order > 0 {
            write!(f, "\n    sorted: {} out of order", plural(self.out_of_order, "sample was", "samples were"))?;
        }
        if self.duplicates_merged > 0 {
            let how = match self.kind {
                SeriesKind::Count => "summed",
                SeriesKind::Gauge => "averaged",
            };
            write!(
                f,
                "\n    merged {} at a repeated timestamp ({how})",
                plural(self.duplicates_merged, "sample", "samples")
            )?;
        }
        if self.gaps == 0 {
            write!(f, "\n    no gaps")?;
        } else {
            write!(
                f,
                "\n    {}, {} filled by linear interpolation; longest gap {} ({} s)",
                plural(self.gaps, "gap", "gaps"),
                plural(self.missing_buckets, "empty bucket", "empty buckets"),
                plural(self.longest_gap, "bucket", "buckets"),
                self.longest_gap as i64 * self.step,
            )?;
            if self.kind == SeriesKind::Count {
                write!(
                    f,
                    "\n    note: filled counts are estimates, not observed; leave them out of sums that must be exact"
                )?;
            }
            let shown: Vec<String> = self.filled.iter().take(SHOWN).map(|&t| format_time(t)).collect();
            let more = self.filled.len().saturating_sub(SHOWN);
            write!(
                f,
                "\n    filled at {}{}",
                shown.join(", "),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            )?;
        }
        if self.outliers.is_empty() {
            write!(f, "\n    no outliers")?;
        } else {
            write!(f, "\n    {} flagged (kept):", plural(self.outliers.len(), "outlier", "outliers"))?;
            for o in self.outliers.iter().take(SHOWN) {
                write!(
                    f,
                    "\n      {}  {} (rolling median {}, robust z {:.1})",
                    format_time(o.at),
                    o.value,
                    o.median,
                    o.z
                )?;
            }
            if self.outliers.len() > SHOWN {
                write!(f, "\n      and {} more", self.outliers.len() - SHOWN)?;
            }
        }
        if self.changepoints.is_empty() {
            write!(f, "\n    no changepoints")?;
        } else {
            write!(
                f,
                "\n    {} (level shifts; the series is kept whole):",
                plural(self.changepoints.len(), "changepoint", "changepoints")
            )?;
            for c in self.changepoints.iter().take(SHOWN) {
                let pct = if c.before != 0.0 {
                    format!(", {:+.0}%", 100.0 * (c.after - c.before) / c.before.abs())
                } else {
                    String::new()
                };
                write!(
                    f,
                    "\n      {}  level {} → {}{pct} ({:+.1} noise levels)",
                    format_time(c.at),
                    crate::format::fmt_num(c.before),
                    crate::format::fmt_num(c.after),
                    c.shift
                )?;
            }
            if self.changepoints.len() > SHOWN {
                write!(f, "\n      and {} more", self.changepoints.len() - SHOWN)?;
            }
        }
        Ok(())
    }
}
