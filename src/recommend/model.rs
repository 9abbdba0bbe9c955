//! The GPs a report fits on a study's complete trials: one on the best and
//! the most recent trials to predict the candidates (where the optimizer
//! looked hardest), one on a space-covering subset for parameter importance
//! (so that the importance does not depend on where the trials clustered).

use crate::cube::{Dim, sobol_point};
use crate::space::Space;
use crate::surrogate::gp::kinds_of;
use crate::surrogate::importance::{Effects, decompose};
use crate::surrogate::subset::best_and_recent;
use crate::surrogate::{FitOptions, Gp, OutputTransform};

use super::evidence::sum_squares;
use super::{Importance, Interaction};

/// A GP needs this many complete trials before it is worth reporting.
pub const MODEL_MIN_TRIALS: usize = 8;
/// At most this many trials enter the predicting GP (the best half and the
/// most recent rest), so reports stay fast on long studies.
const MODEL_MAX_TRIALS: usize = 500;
/// At most this many trials enter the importance GP.
const COVER_MAX_TRIALS: usize = 300;
/// Of those, this many are the best trials (so the model knows how deep the optimum is);
/// the rest cover the space.
const COVER_BEST: usize = 30;
/// Base points the importance integrates over, and pairs of parameters examined.
const IMPORTANCE_BASE: u64 = 256;
const IMPORTANCE_PAIRS_OF: usize = 4;
/// Half the side, in the unit cube, of the box around the best in which the importance
/// near the best is taken.
pub const NEAR_BEST: f64 = 0.1;

/// A GP on scores (lower is better), with the transform that took the scores to its scale.
pub(super) struct Model {
    gp: Gp,
    transform: OutputTransform,
}

/// A prediction back on the score's scale.
pub(super) struct Prediction {
    /// The posterior mean (the median on the score's scale when the transform warps).
    pub mean: f64,
    /// One standard deviation of the model's uncertainty about the mean.
    pub std: f64,
    /// One standard deviation of the measurement noise the model fitted, at this mean.
    pub noise: f64,
}

fn usable<'p>(space: &Space, points: &'p [(Vec<f64>, f64)]) -> Option<Vec<&'p (Vec<f64>, f64)>> {
    let d = space.dim();
    let usable: Vec<&(Vec<f64>, f64)> = points.iter().filter(|(x, v)| x.len() == d && v.is_finite()).collect();
    (usable.len() >= MODEL_MIN_TRIALS && d > 0).then_some(usable)
}

impl Model {
    fn fit_on(space: &Space, chosen: &[&(Vec<f64>, f64)]) -> Option<Model> {
        let xs: Vec<Vec<f64>> = chosen.iter().map(|(x, _)| x.clone()).collect();
        let transform = OutputTransform::fit(&chosen.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        let ys: Vec<f64> = chosen.iter().map(|(_, v)| transform.forward(*v)).collect();
        let gp = Gp::fit(&kinds_of(&space.dims()), &xs, &ys, &FitOptions { restarts: 2, ..Default::default() }).ok()?;
        Some(Model { gp, transform })
    }

    /// The predicting model: fitted on the best half and the most recent rest of the points
    /// (unit-cube position, score); `None` with too few points or when the fit fails.
    pub fn predicting(space: &Space, points: &[(Vec<f64>, f64)]) -> Option<Model> {
        let usable = usable(space, points)?;
        Model::fit_on(space, &predicting_subset(&usable))
    }

    /// Main effects near `best` (see [`main_effects_near`]).
    pub fn importance_near(&self, space: &Space, best: &[f64]) -> Vec<f64> {
        main_effects_near(&self.gp, space, best)
    }

    /// The posterior mean at `x` on the score's scale: O(n·d), for ranking many configurations.
    pub fn predict_mean(&self, x: &[f64]) -> f64 {
        self.transform.inverse(self.gp.predict_mean(x))
    }

    /// The prediction at `x` on the score's scale.
    pub fn predict(&self, x: &[f64]) -> Prediction {
        let (mu, var) = self.gp.predict(x);
        let half_width = |s: f64| {
            let t = &self.transform;
            ((t.inverse(mu + s) - t.inverse(mu - s)) / 2.0).abs()
        };
        Prediction {
            mean: self.transform.inverse(mu),
            std: half_width(var.sqrt()),
            noise: half_width(self.gp.hyper().noise_var().sqrt()),
        }
    }
}

/// A GP fitted to cover the space, for parameter importance.
pub(super) struct Landscape {
    gp: Gp,
}

impl Landscape {
    /// Fitted on the best few points and, for the rest, on points
    /// chosen to cover the cube (each the farthest from those chosen before it), on the
    /// scores only standardized (the decomposition is of the objective itself, as functional
    /// ANOVA defines it, not of the warped scale the search models).
    pub fn fit(space: &Space, points: &[(Vec<f64>, f64)]) -> Option<Landscape> {
        let usable = usable(space, points)?;
        let chosen: Vec<&(Vec<f64>, f64)> = covering_subset(&usable, COVER_MAX_TRIALS, COVER_BEST);
        let xs: Vec<Vec<f64>> = chosen.iter().map(|(x, _)| x.clone()).collect();
        let ys: Vec<f64> = chosen.iter().map(|(_, v)| *v).collect();
        let (ss, mean) = sum_squares(&ys);
        let sd = (ss / ys.len() as f64).sqrt();
        let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
        let zs: Vec<f64> = ys.iter().map(|y| (y - mean) / sd).collect();
        let gp = Gp::fit(&kinds_of(&space.dims()), &xs, &zs, &FitOptions { restarts: 2, ..Default::default() }).ok()?;
        Some(Landscape { gp })
    }

    /// Main effects near `best` (see [`main_effects_near`]).
    pub fn importance_near(&self, space: &Space, best: &[f64]) -> Vec<f64> {
        main_effects_near(&self.gp, space, best)
    }

    /// Parameter importance (main effects, in the space's order) and the largest pairwise
    /// interactions, from a decomposition over a Sobol sample of the whole space.
    pub fn importance(&self, space: &Space) -> (Vec<Importance>, Vec<Interaction>) {
        let effects = decompose_within(&self.gp, space, &vec![(0.0, 1.0); space.dim()]);
        let name = |i: usize| space.params[i].name.clone();
        let main: Vec<Importance> = effects
            .main
            .iter()
            .enumerate()
            .map(|(i, &importance)| Importance { param: name(i), importance, near_best: None })
            .collect();
        let pairs = effects
            .pairs
            .iter()
            .filter(|p| p.2 >= 0.01)
            .map(|&(i, j, importance)| Interaction { params: [name(i), name(j)], importance })
            .collect();
        (main, pairs)
    }
}

/// Main effects (one per parameter, in the space's order) of `gp`'s mean within
/// [`NEAR_BEST`] of `best` in every numeric coordinate (categoricals over all their choices):
/// what matters when fine-tuning around the best.
fn main_effects_near(gp: &Gp, space: &Space, best: &[f64]) -> Vec<f64> {
    let ranges: Vec<(f64, f64)> = best.iter().map(|&b| ((b - NEAR_BEST).max(0.0), (b + NEAR_BEST).min(1.0))).collect();
    decompose_within(gp, space, &ranges).main
}

/// The points the predicting model is fitted on: the best half and the most recent rest.
fn predicting_subset<'p>(usable: &[&'p (Vec<f64>, f64)]) -> Vec<&'p (Vec<f64>, f64)> {
    let values: Vec<f64> = usable.iter().map(|(_, v)| *v).collect();
    best_and_recent(&values, MODEL_MAX_TRIALS, MODEL_MAX_TRIALS / 2).into_iter().map(|i| usable[i]).collect()
}

/// Whether the predicting model's trials cover the box of [`NEAR_BEST`] around `best`: in
/// every numeric coordinate, those inside it span at least half its width. The predicting
/// model is trusted there only then (an optimizer that converged leaves its trials in a speck,
/// and a model of a speck says nothing about the box around it).
pub(super) fn covers_near(space: &Space, points: &[(Vec<f64>, f64)], best: &[f64]) -> bool {
    let Some(usable) = usable(space, points) else { return false };
    let dims = space.dims();
    let numeric = |j: usize| !matches!(dims[j], Dim::Categorical { .. });
    let inside: Vec<&Vec<f64>> = predicting_subset(&usable)
        .into_iter()
        .map(|p| &p.0)
        .filter(|x| x.iter().zip(best).enumerate().all(|(j, (a, b))| !numeric(j) || (a - b).abs() <= NEAR_BEST))
        .collect();
    dims.iter().enumerate().all(|(j, _)| {
        !numeric(j) || {
            let (lo, hi) =
                inside.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(x[j]), h.max(x[j])));
            hi - lo >= NEAR_BEST / 2.0
        }
    })
}

/// The decomposition of `gp`'s mean over a Sobol sample within `ranges` (categoricals over
/// all their choices).
fn decompose_within(gp: &Gp, space: &Space, ranges: &[(f64, f64)]) -> Effects {
    let dims = space.dims();
    let base: Vec<Vec<f64>> = (0..IMPORTANCE_BASE)
        .map(|i| {
            let u = sobol_point(i, space.dim(), 0x1A9);
            u.iter()
                .zip(ranges)
                .zip(&dims)
                .map(|((&u, &(lo, hi)), d)| match d {
                    Dim::Categorical { .. } => u,
                    _ => lo + (hi - lo) * u,
                })
                .collect()
        })
        .collect();
    decompose(gp, &base, ranges, IMPORTANCE_PAIRS_OF)
}

/// Indices into `points` of at most `max` of them: the `best` lowest, then greedily the point
/// farthest (in the unit cube) from every point chosen so far. Long studies are thinned
/// to an evenly spaced 5,000 first, which keeps this O(5,000 · max · d).
fn covering_subset<'p>(points: &[&'p (Vec<f64>, f64)], max: usize, best: usize) -> Vec<&'p (Vec<f64>, f64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let stride = points.len().div_ceil(5000);
    let mut pool: Vec<&(Vec<f64>, f64)> = points.iter().step_by(stride).copied().collect();
    let mut by_value: Vec<&(Vec<f64>, f64)> = points.to_vec();
    by_value.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut chosen: Vec<&(Vec<f64>, f64)> = by_value.into_iter().take(best.min(max)).collect();
    let dist2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
    let mut nearest: Vec<f64> =
        pool.iter().map(|p| chosen.iter().map(|c| dist2(&p.0, &c.0)).fold(f64::INFINITY, f64::min)).collect();
    while chosen.len() < max && !pool.is_empty() {
        let far = (0..pool.len()).max_by(|&a, &b| nearest[a].total_cmp(&nearest[b])).unwrap_or(0);
        let next = pool.swap_remove(far);
        nearest.swap_remove(far);
        for (p, n) in pool.iter().zip(nearest.iter_mut()) {
            *n = n.min(dist2(&p.0, &next.0));
        }
        chosen.push(next);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_covering_subset_keeps_the_best_and_spreads_the_rest() {
        // 900 points crowded near the corner (0.1, 0.1) and 100 spread over the square.
        let mut points: Vec<(Vec<f64>, f64)> =
            (0..900).map(|i| (vec![0.1 + 1e-4 * (i % 30) as f64, 0.1 + 1e-4 * (i / 30) as f64], 1.0)).collect();
        points.extend((0..100).map(|i| (sobol_point(i, 2, 3), 5.0 + i as f64)));
        points[450].1 = 0.0;
        let refs: Vec<&(Vec<f64>, f64)> = points.iter().collect();
        let chosen = covering_subset(&refs, 60, 5);
        assert_eq!(chosen.len(), 60);
        assert!(chosen.iter().any(|p| p.1 == 0.0), "the best point is kept");
        let spread = chosen.iter().filter(|p| p.1 >= 5.0).count();
        assert!(spread >= 45, "most of the subset covers the square, not the crowd: {spread}");
    }
}
