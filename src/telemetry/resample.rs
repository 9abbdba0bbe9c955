//! Sorting, merging duplicate timestamps, and resampling to a fixed step with gaps filled.

use super::{Series, SeriesKind};
use crate::error::{Error, Result};

/// More buckets than this is almost surely a wrong step (1 s over years), not a wish.
const MAX_BUCKETS: usize = 50_000_000;
/// Beyond [`SPARSE_FLOOR`] buckets, at most this many per point: a handful of rows far apart
/// would otherwise make a tiny file cost gigabytes (101 rows over 40 million one-second
/// buckets took 2.4 GB and 6 s) for a series of gaps.
const SPARSE_RATIO: usize = 100;
/// Up to this many buckets a series may be as sparse as it likes.
const SPARSE_FLOOR: usize = 100_000;

/// What [`normalize`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cleaned {
    /// Points whose timestamp was earlier than the one before them in the input.
    pub out_of_order: usize,
    /// Points folded into another with the same timestamp (sum for counts, mean for gauges).
    pub duplicates_merged: usize,
}

/// Sorts the points by time and merges equal timestamps: sum for counts, mean for gauges.
pub fn normalize(series: &mut Series) -> Cleaned {
    let out_of_order = series.points.windows(2).filter(|w| w[1].0 < w[0].0).count();
    series.points.sort_by_key(|p| p.0);
    let mut merged: Vec<(i64, f64)> = Vec::with_capacity(series.points.len());
    let mut run = 0usize;
    let mut duplicates_merged = 0;
    for &(t, v) in &series.points {
        match merged.last_mut() {
            Some(last) if last.0 == t => {
                last.1 += v;
                run += 1;
                duplicates_merged += 1;
            }
            _ => {
                finish_run(series.kind, merged.last_mut(), run);
                merged.push((t, v));
                run = 1;
            }
        }
    }
    finish_run(series.kind, merged.last_mut(), run);
    series.points = merged;
    Cleaned { out_of_order, duplicates_merged }
}

fn finish_run(kind: SeriesKind, last: Option<&mut (i64, f64)>, run: usize) {
    if let (SeriesKind::Gauge, Some(last)) = (kind, last)
        && run > 1
    {
        last.1 /= run as f64;
    }
}

/// The median step between consecutive distinct timestamps, or `None` with fewer than two.
pub fn infer_step(points: &[(i64, f64)]) -> Option<i64> {
    let mut ts: Vec<i64> = points.iter().map(|p| p.0).collect();
    ts.sort_unstable();
    ts.dedup();
    let mut steps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return None;
    }
    let mid = (steps.len() - 1) / 2;
    Some(*steps.select_nth_unstable(mid).1)
}

/// A series on a fixed grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Resampled {
    /// One point per bucket, at the bucket's start; buckets start at the first sample.
    pub series: Series,
    /// The grid's step, seconds (> 0).
    pub step: i64,
    /// The step was inferred (the median step) rather than given.
    pub step_inferred: bool,
    /// Runs of empty buckets.
    pub gaps: usize,
    /// Empty buckets in all.
    pub missing_buckets: usize,
    /// Empty buckets in the longest run.
    pub longest_gap: usize,
    /// Per point: filled by interpolation, not observed.
    pub filled: Vec<bool>,
}

/// Puts `series` on a grid of `step` seconds (or the median step): counts are summed per bucket,
/// gauges averaged, and empty buckets are filled by linear interpolation between their
/// neighbours, for counts too (see the module docs) — [`Resampled::filled`] marks them.
///
/// Errors with [`Error::Config`] when the step is not positive, cannot be inferred (one
/// timestamp), or would make an absurd number of buckets.
pub fn resample(series: &Series, step: Option<i64>) -> Result<Resampled> {
    let (step, step_inferred) = match step {
        Some(s) => (s, false),
        None => match infer_step(&series.points) {
            Some(s) => (s, true),
            None => {
                return Err(Error::Config(
                    "cannot infer a step from fewer than two distinct timestamps; give the step explicitly".into(),
                ));
            }
        },
    };
    if step <= 0 {
        return Err(Error::Config(format!("step must be > 0 seconds (got {step})")));
    }
    let (Some(first), Some(last)) = (series.points.iter().map(|p| p.0).min(), series.points.iter().map(|p| p.0).max())
    else {
        return Err(Error::Config("no points to resample".into()));
    };
    let n = ((last - first) / step) as usize + 1;
    let points = series.points.len();
    let limit = MAX_BUCKETS.min(SPARSE_FLOOR.max(SPARSE_RATIO.saturating_mul(points)));
    if n > limit {
        return Err(Error::Config(format!(
            "step {step} s over {} s makes {n} buckets for {points} points (more than {limit}: at most \
             {SPARSE_RATIO} per point beyond {SPARSE_FLOOR}, {MAX_BUCKETS} in all); expected a larger step",
            last - first
        )));
    }
    let mut sum = vec![0.0; n];
    let mut count = vec![0usize; n];
    for &(t, v) in &series.points {
        let b = ((t - first) / step) as usize;
        sum[b] += v;
        count[b] += 1;
    }
    let mut values: Vec<Option<f64>> = sum
        .iter()
        .zip(&count)
        .map(|(&s, &c)| match (c, series.kind) {
            (0, _) => None,
            (_, SeriesKind::Count) => Some(s),
            (c, SeriesKind::Gauge) => Some(s / c as f64),
        })
        .collect();

    let filled: Vec<bool> = values.iter().map(Option::is_none).collect();
    let (mut gaps, mut missing_buckets, mut longest_gap) = (0, 0, 0);
    let mut i = 0;
    while i < n {
        if values[i].is_some() {
            i += 1;
            continue;
        }
        // The first and last buckets hold the first and last samples, so a gap has both neighbours.
        let start = i;
        while values[i].is_none() {
            i += 1;
        }
        let (left, right) = (values[start - 1].unwrap_or(0.0), values[i].unwrap_or(0.0));
        let span = (i - start + 1) as f64;
        for (k, slot) in values[start..i].iter_mut().enumerate() {
            let w = (k + 1) as f64 / span;
            *slot = Some(left + (right - left) * w);
        }
        gaps += 1;
        missing_buckets += i - start;
        longest_gap = longest_gap.max(i - start);
    }
    let points = values.iter().enumerate().map(|(b, v)| (first + b as i64 * step, v.unwrap_or(0.0))).collect();
    Ok(Resampled {
        series: Series { name: series.name.clone(), kind: series.kind, points },
        step,
        step_inferred,
        gaps,
        missing_buckets,
        longest_gap,
        filled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(kind: SeriesKind, points: &[(i64, f64)]) -> Series {
        Series { name: "s".into(), kind, points: points.to_vec() }
    }

    #[test]
    fn a_few_points_far_apart_are_refused_before_any_bucket_is_allocated() {
        let mut pts: Vec<(i64, f64)> = (0..100).map(|i| (i, 1.0)).collect();
        pts.push((40_000_000, 1.0));
        let e = resample(&series(SeriesKind::Gauge, &pts), None).unwrap_err().to_string();
        assert!(e.contains("40000001 buckets for 101 points") && e.contains("larger step"), "{e}");
        // The same gap at a step that makes few enough buckets per point is fine.
        assert!(resample(&series(SeriesKind::Gauge, &pts), Some(4000)).is_ok());
    }

    #[test]
    fn normalize_sorts_and_merges_by_kind() {
        let pts = [(20, 1.0), (10, 2.0), (20, 3.0), (30, 4.0), (20, 5.0)];
        let mut g = series(SeriesKind::Gauge, &pts);
        let c = normalize(&mut g);
        assert_eq!(c, Cleaned { out_of_order: 2, duplicates_merged: 2 });
        assert_eq!(g.points, vec![(10, 2.0), (20, 3.0), (30, 4.0)]);
        let mut k = series(SeriesKind::Count, &pts);
        normalize(&mut k);
        assert_eq!(k.points, vec![(10, 2.0), (20, 9.0), (30, 4.0)]);
    }

    #[test]
    fn infer_step_is_the_median() {
        assert_eq!(infer_step(&[(0, 0.0), (60, 0.0), (120, 0.0), (600, 0.0), (660, 0.0)]), Some(60));
        assert_eq!(infer_step(&[(5, 0.0), (5, 1.0)]), None);
    }

    #[test]
    fn one_sample_needs_a_given_step() {
        let s = series(SeriesKind::Gauge, &[(100, 1.0)]);
        assert!(matches!(resample(&s, None), Err(Error::Config(_))));
        let r = resample(&s, Some(60)).expect("given step");
        assert_eq!(r.series.points, vec![(100, 1.0)]);
        assert!(matches!(resample(&s, Some(0)), Err(Error::Config(_))));
    }
}
