//! Changepoints: times where a series' level shifts and stays shifted — a deploy, a new
//! client, a migrated shard. A tuner must know about them: a forecast fitted across a shift
//! blends two regimes, and "last week" may no longer describe the load.
//!
//! Detection is augurs' Bayesian online changepoint detector (BOCPD, Adams & MacKay 2007, with a
//! Normal–Gamma prior), run on a prepared copy of the series:
//!
//! 1. **Blocks**: the series is averaged over blocks of about an hour (or its own step when that is
//!    longer), which tames sampling noise and keeps the detector's cost small.
//! 2. **Daily profile removed**: when the series covers at least three days and an hour divides a
//!    day, the median of each time-of-day slot is subtracted. Otherwise every morning ramp would be
//!    a "change".
//! 3. **Scaled** by a robust noise level: the MAD of first differences / √2, which a level shift
//!    does not inflate (the MAD of the values themselves would grow with the very shift we look
//!    for). Values are clipped at ±8 noise levels so one wild block cannot dominate.
//! 4. **BOCPD** with an expected time between changes of [`ChangepointConfig::expected_run_s`]
//!    (the hazard), and the maximum-a-posteriori run lengths traced back to segment starts.
//! 5. **Pruned**: a segment shorter than [`ChangepointConfig::min_segment_s`] (a spike, a burst) is
//!    merged into its neighbour, and while some boundary separates two segments whose mean levels
//!    differ by less than [`ChangepointConfig::min_shift`] noise levels, or by less than
//!    [`ChangepointConfig::min_change`] of the series' median level, the weakest such boundary is
//!    removed. What is left are sustained shifts of a material size.
//!
//! Changepoints are reported, never acted on: the series is not cut. `until:` in a scenario, or a
//! shorter recording, is how a user forecasts from the new regime only.

use augurs::changepoint::dist::NormalGamma;
use augurs::changepoint::{Detector, NormalGammaDetector};

use crate::error::{Error, Result};
use crate::stats;

/// Block length the series is averaged over before detection.
const BLOCK_S: i64 = 3600;
const DAY_S: i64 = 86_400;
/// Residuals are clipped at this many noise levels.
const CLIP: f64 = 8.0;

/// When a level shift is a changepoint.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChangepointConfig {
    /// Expected time between changes, seconds (the detector's hazard is one over this, in blocks).
    pub expected_run_s: i64,
    /// Shortest regime reported, seconds: shorter segments (spikes, bursts: outliers' business)
    /// are merged into a neighbour.
    pub min_segment_s: i64,
    /// Smallest shift of the mean level between two regimes, in noise levels (robust standard
    /// deviations of the de-seasonalised hourly series).
    pub min_shift: f64,
    /// Smallest shift of the mean level as a fraction of the series' typical level (its median):
    /// a shift can be certain and still too small to matter for sizing (2 ms on a 45 ms latency).
    pub min_change: f64,
}

impl Default for ChangepointConfig {
    fn default() -> Self {
        ChangepointConfig { expected_run_s: 7 * DAY_S, min_segment_s: 12 * 3600, min_shift: 3.0, min_change: 0.1 }
    }
}

impl ChangepointConfig {
    /// Refuses a non-positive duration or a negative or non-finite threshold, naming every bad
    /// field in one [`Error::Config`].
    pub fn check(&self) -> Result<()> {
        let mut bad = Vec::new();
        if self.expected_run_s <= 0 {
            bad.push(format!("changepoints.expected_run_s: must be > 0 seconds (got {})", self.expected_run_s));
        }
        if self.min_segment_s <= 0 {
            bad.push(format!("changepoints.min_segment_s: must be > 0 seconds (got {})", self.min_segment_s));
        }
        if !(self.min_shift.is_finite() && self.min_shift >= 0.0) {
            bad.push(format!("changepoints.min_shift: must be a finite number ≥ 0 (got {})", self.min_shift));
        }
        if !(self.min_change.is_finite() && self.min_change >= 0.0) {
            bad.push(format!("changepoints.min_change: must be a finite fraction ≥ 0 (got {})", self.min_change));
        }
        if bad.is_empty() { Ok(()) } else { Err(Error::Config(bad.join("; "))) }
    }
}

/// One sustained level shift.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Changepoint {
    /// Unix seconds: the start of the first block of the new regime.
    pub at: i64,
    /// Level of the regime before, in the series' units: the median hourly value with the daily
    /// profile taken out and its mean added back (a median, so a burst inside does not move it).
    pub before: f64,
    /// Level of the regime after, the same way.
    pub after: f64,
    /// The shift of the de-seasonalised level, in noise levels (signed).
    pub shift: f64,
}

/// Flags sustained level shifts of an evenly spaced series (`step` seconds apart). Points marked
/// in `skip` (filled by interpolation) do not count in block means; `skip` may be empty.
///
/// Returns the changepoints in time order; none for a constant series, or one with fewer blocks
/// than two minimum segments (and never fewer than four).
pub fn find_changepoints(
    points: &[(i64, f64)],
    step: i64,
    skip: &[bool],
    config: &ChangepointConfig,
) -> Vec<Changepoint> {
    let step = step.max(1);
    let per_block = ((BLOCK_S + step - 1) / step).max(1) as usize;
    let block_s = per_block as i64 * step;
    // 1. Block means (blocks with no observed point are left out).
    let (starts, means) = block_means(points, skip, per_block);
    let n = means.len();
    let min_blocks = ((config.min_segment_s + block_s - 1) / block_s).max(1) as usize;
    if n < 2 * min_blocks.max(2) {
        return Vec::new();
    }
    // 2. Daily profile.
    let (resid, offset) = remove_daily_profile(&starts, &means, block_s);
    // 3. Robust noise level from first differences.
    let Some(noise) = noise_level(&resid) else {
        return Vec::new(); // a constant series has no changes
    };
    let mut sorted = resid.clone();
    let centre = stats::median(&mut sorted);
    let mut level = means.iter().map(|v| v.abs()).collect::<Vec<_>>();
    let level = stats::median(&mut level);
    let z: Vec<f64> = resid.iter().map(|r| ((r - centre) / noise).clamp(-CLIP, CLIP)).collect();
    // 4. BOCPD.
    let hazard = (config.expected_run_s as f64 / block_s as f64).max(2.0);
    let mut bounds = detect(&z, hazard);
    // 5. Prune: short segments, then weak boundaries.
    let regimes = Regimes { z: &z, resid: &resid };
    regimes.prune(&mut bounds, min_blocks, level, config);
    let edges = edges(&bounds, n);
    let level_of = |lo: usize, hi: usize| offset + stats::median(&mut resid[lo..hi].to_vec());
    (1..edges.len() - 1)
        .map(|k| Changepoint {
            at: starts[edges[k]],
            before: level_of(edges[k - 1], edges[k]),
            after: level_of(edges[k], edges[k + 1]),
            shift: (regimes.level(edges[k], edges[k + 1]) - regimes.level(edges[k - 1], edges[k])) / noise,
        })
        .collect()
}

/// Means of consecutive blocks of `per_block` points, with each block's start time; points marked
/// in `skip` are left out, and so are blocks with no other point.
fn block_means(points: &[(i64, f64)], skip: &[bool], per_block: usize) -> (Vec<i64>, Vec<f64>) {
    let mut starts = Vec::new();
    let mut means = Vec::new();
    for (b, chunk) in points.chunks(per_block).enumerate() {
        let first = b * per_block;
        let (mut sum, mut n) = (0.0, 0usize);
        for (k, p) in chunk.iter().enumerate() {
            if !skip.get(first + k).copied().unwrap_or(false) {
                sum += p.1;
                n += 1;
            }
        }
        if n > 0 {
            starts.push(chunk[0].0);
            means.push(sum / n as f64);
        }
    }
    (starts, means)
}

/// The block means with the median of each time-of-day slot subtracted, and the daily profile's
/// mean (added back so regime levels read in the series' units). Unchanged, with offset 0, when
/// the blocks do not divide a day or cover less than three days.
fn remove_daily_profile(starts: &[i64], means: &[f64], block_s: i64) -> (Vec<f64>, f64) {
    let mut resid = means.to_vec();
    let n = means.len();
    let slots = (DAY_S / block_s) as usize;
    if DAY_S % block_s != 0 || slots <= 1 || starts[n - 1] - starts[0] + block_s < 3 * DAY_S {
        return (resid, 0.0);
    }
    let slot = |t: i64| (t.rem_euclid(DAY_S) / block_s) as usize;
    let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); slots];
    for (t, v) in starts.iter().zip(means) {
        by_slot[slot(*t)].push(*v);
    }
    let profile: Vec<f64> = by_slot.iter_mut().map(|v| if v.is_empty() { 0.0 } else { stats::median(v) }).collect();
    let offset = profile.iter().sum::<f64>() / slots as f64;
    for (r, t) in resid.iter_mut().zip(starts) {
        *r -= profile[slot(*t)];
    }
    (resid, offset)
}

/// Robust noise level of a series of at least two values: the MAD of first differences / √2
/// (scaled to a standard deviation), or their mean absolute value when the MAD is 0. `None`
/// for a constant series.
fn noise_level(resid: &[f64]) -> Option<f64> {
    let mut diffs: Vec<f64> = resid.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let mad = stats::median(&mut diffs);
    let mut noise = 1.4826 * mad / std::f64::consts::SQRT_2;
    if noise <= 0.0 {
        let mean_ad = resid.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (resid.len() - 1) as f64;
        noise = 1.2533 * mean_ad / std::f64::consts::SQRT_2;
    }
    (noise.is_finite() && noise > 0.0).then_some(noise)
}

/// BOCPD on the scaled series `z` with an expected run of `hazard` blocks: the indices where a
/// new segment starts, ascending, each in `1..z.len()`.
fn detect(z: &[f64], hazard: f64) -> Vec<usize> {
    let n = z.len();
    // The prior expects unit noise around 0 with little confidence in either.
    let mut detector = NormalGammaDetector::normal_gamma(hazard, NormalGamma::new_unchecked(0.0, 0.1, 1.0, 1.0));
    // augurs returns 0 and then, for each change, the index just before it.
    let mut bounds: Vec<usize> =
        detector.detect_changepoints(z).into_iter().filter(|&i| i > 0).map(|i| i + 1).filter(|&i| i < n).collect();
    bounds.dedup();
    bounds
}

/// Segment boundaries with the series' ends added: `0`, every bound, `n`.
fn edges(bounds: &[usize], n: usize) -> Vec<usize> {
    std::iter::once(0).chain(bounds.iter().copied()).chain(std::iter::once(n)).collect()
}

/// The prepared series that segments are measured on.
struct Regimes<'a> {
    /// Scaled and clipped residuals (noise levels).
    z: &'a [f64],
    /// De-seasonalised block means, unclipped (the series' units).
    resid: &'a [f64],
}

impl Regimes<'_> {
    /// Mean of blocks `lo..hi` in noise levels.
    fn mean(&self, lo: usize, hi: usize) -> f64 {
        self.z[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
    }

    /// Mean of blocks `lo..hi` in the series' units: the size of a shift, unclipped.
    fn level(&self, lo: usize, hi: usize) -> f64 {
        self.resid[lo..hi].iter().sum::<f64>() / (hi - lo) as f64
    }

    /// Removes boundaries until every segment is at least `min_blocks` long and every boundary
    /// separates levels at least `min_shift` noise levels and `min_change` of `level` apart.
    fn prune(&self, bounds: &mut Vec<usize>, min_blocks: usize, level: f64, config: &ChangepointConfig) {
        let n = self.z.len();
        loop {
            let edges = edges(bounds, n);
            // The shortest segment under the minimum goes first; it joins the neighbour nearer its level.
            let short = (0..edges.len() - 1)
                .filter(|&s| edges[s + 1] - edges[s] < min_blocks)
                .min_by_key(|&s| edges[s + 1] - edges[s]);
            if let Some(s) = short {
                if bounds.is_empty() {
                    break;
                }
                let m = self.mean(edges[s], edges[s + 1]);
                let left = (s > 0).then(|| (m - self.mean(edges[s - 1], edges[s])).abs());
                let right = (s + 2 < edges.len()).then(|| (m - self.mean(edges[s + 1], edges[s + 2])).abs());
                // bounds[k] is edges[k + 1]: dropping bound s-1 merges left, bound s merges right.
                let drop = match (left, right) {
                    (Some(l), Some(r)) if l <= r => s - 1,
                    (Some(_), None) => s - 1,
                    _ => s,
                };
                bounds.remove(drop);
                continue;
            }
            let weakest = (0..bounds.len())
                .map(|k| {
                    let d = (self.mean(edges[k + 1], edges[k + 2]) - self.mean(edges[k], edges[k + 1])).abs();
                    let size = (self.level(edges[k + 1], edges[k + 2]) - self.level(edges[k], edges[k + 1])).abs();
                    (k, d, size)
                })
                .filter(|&(_, d, size)| d < config.min_shift || (level > 0.0 && size < config.min_change * level))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match weakest {
                Some((k, _, _)) => {
                    bounds.remove(k);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Five-minute points over `days` with a daily cycle of amplitude 40 around 100, noise sd 5.
    fn daily(days: i64, seed: u64) -> Vec<(i64, f64)> {
        let mut rng = Rng::new(seed, 0);
        (0..days * 288)
            .map(|i| {
                let t = 1_400_000_000 - 1_400_000_000 % DAY_S + i * 300;
                let phase = (t % DAY_S) as f64 / DAY_S as f64 * std::f64::consts::TAU;
                (t, 100.0 + 40.0 * phase.sin() + 5.0 * rng.normal())
            })
            .collect()
    }

    #[test]
    fn a_daily_cycle_with_noise_has_no_changepoint() {
        for seed in 0..5 {
            let pts = daily(14, seed);
            let found = find_changepoints(&pts, 300, &[], &ChangepointConfig::default());
            assert!(found.is_empty(), "seed {seed}: {found:?}");
        }
    }

    #[test]
    fn a_level_shift_is_found_within_an_hour_with_its_levels() {
        for seed in 0..5 {
            let mut pts = daily(14, seed);
            let change = pts[0].0 + 9 * DAY_S + 5 * 3600;
            for p in pts.iter_mut().filter(|p| p.0 >= change) {
                p.1 += 15.0;
            }
            let found = find_changepoints(&pts, 300, &[], &ChangepointConfig::default());
            assert_eq!(found.len(), 1, "seed {seed}: {found:?}");
            assert!((found[0].at - change).abs() <= 3600, "seed {seed}: at {} vs {change}", found[0].at);
            assert!((found[0].after - found[0].before - 15.0).abs() < 6.0, "seed {seed}: {:?}", found[0]);
            assert!(found[0].shift > 0.0);
        }
    }

    #[test]
    fn a_certain_but_small_shift_is_left_alone() {
        // +4 on a level of 100 with noise 0.5: many noise levels, but 4% of the level.
        let mut rng = Rng::new(3, 0);
        let pts: Vec<(i64, f64)> = (0..14 * 288)
            .map(|i| (i * 300, 100.0 + if i > 7 * 288 { 4.0 } else { 0.0 } + 0.5 * rng.normal()))
            .collect();
        assert!(find_changepoints(&pts, 300, &[], &ChangepointConfig::default()).is_empty());
        let loose = ChangepointConfig { min_change: 0.01, ..ChangepointConfig::default() };
        assert_eq!(find_changepoints(&pts, 300, &[], &loose).len(), 1);
    }

    #[test]
    fn a_two_hour_burst_is_not_a_changepoint() {
        let mut pts = daily(14, 7);
        for p in &mut pts[3000..3024] {
            p.1 += 200.0;
        }
        assert!(find_changepoints(&pts, 300, &[], &ChangepointConfig::default()).is_empty());
    }

    #[test]
    fn constant_and_short_series_have_none() {
        let flat: Vec<(i64, f64)> = (0..2000).map(|i| (i * 60, 3.0)).collect();
        assert!(find_changepoints(&flat, 60, &[], &ChangepointConfig::default()).is_empty());
        let short: Vec<(i64, f64)> = (0..10).map(|i| (i * 60, i as f64)).collect();
        assert!(find_changepoints(&short, 60, &[], &ChangepointConfig::default()).is_empty());
    }

    #[test]
    fn bad_config_is_refused_with_every_field() {
        let e = ChangepointConfig { expected_run_s: 0, min_segment_s: -1, min_shift: f64::NAN, min_change: -0.1 }
            .check()
            .unwrap_err();
        let m = e.to_string();
        for field in ["expected_run_s", "min_segment_s", "min_shift", "min_change"] {
            assert!(m.contains(field), "{field} not in {m}");
        }
        assert!(ChangepointConfig::default().check().is_ok());
    }
}
