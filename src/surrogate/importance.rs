//! Parameter importance from a fitted GP: a functional ANOVA of the model's
//! posterior mean over the whole unit cube, not over where trials happen to
//! be.
//!
//! With `f` the posterior mean and `x` uniform on the cube, the variance of
//! `f` splits into a part per coordinate (its main effect,
//! `Var_{x_j} E[f | x_j]`), per pair of coordinates (their interaction), and
//! so on. Each expectation over the other coordinates is an average over the
//! same base points (a Sobol sample in reports), so the comparison between
//! values of `x_j` is free of sampling noise; `x_j` itself runs over every
//! level of a small int or categorical, else 17 cell midpoints. Shares
//! are fractions of the total variance of `f` over the base points: in the
//! model's units, so a parameter with a short length scale but a tiny
//! amplitude does not look important, and categoricals are treated alike.

use super::gp::{Gp, InputKind};

/// Values of a continuous coordinate along which its main effect is taken.
const GRID: usize = 17;
/// Values per coordinate for the pairwise interactions (fewer: a pair needs the square).
const PAIR_GRID: usize = 7;

/// How the variance of a model's mean over the cube splits between its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    /// Per coordinate, the share of the variance its main effect explains, in [0, 1].
    pub main: Vec<f64>,
    /// The largest pairwise interactions among the coordinates with the largest main
    /// effects: `(i, j, share)` with `i < j`, largest first, shares in [0, 1].
    pub pairs: Vec<(usize, usize, f64)>,
    /// The share no main effect explains (interactions of any order), in [0, 1].
    pub interactions: f64,
    /// The variance of the mean over the base points (0 when the model is flat).
    pub variance: f64,
}

/// Values of a coordinate of `kind` within `[lo, hi]` (a categorical always takes all its
/// choices): every level when there are at most `most`, else `most` cell midpoints.
fn grid(kind: &InputKind, (lo, hi): (f64, f64), most: usize) -> Vec<f64> {
    let (lo, hi, levels) = match *kind {
        InputKind::Continuous => (lo, hi, None),
        InputKind::Ordinal { levels } => {
            // The levels whose bin centres lie in [lo, hi].
            let first = (lo * levels as f64 - 0.5).ceil().max(0.0) as u64;
            let last = ((hi * levels as f64 - 0.5).floor() as u64).min(levels - 1).max(first);
            let n = last - first + 1;
            if n as usize <= most {
                return (first..=last).map(|k| (k as f64 + 0.5) / levels as f64).collect();
            }
            (lo, hi, None)
        }
        InputKind::Categorical { choices } => (0.0, 1.0, Some(choices as usize)),
    };
    let n = levels.filter(|&l| l <= most).unwrap_or(most);
    (0..n).map(|i| lo + (hi - lo) * (i as f64 + 0.5) / n as f64).collect()
}

fn variance(v: &[f64]) -> f64 {
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64
}

/// The mean of `f` over `base` with coordinate `j` set to each value of `values_j` (and `k`
/// to each of `values_k` when given): a row per value of `j`.
fn conditional_means(gp: &Gp, base: &[Vec<f64>], j: usize, vj: &[f64], k: Option<(usize, &[f64])>) -> Vec<Vec<f64>> {
    let vk: &[f64] = k.map_or(&[f64::NAN], |(_, v)| v);
    vj.iter()
        .map(|&a| {
            vk.iter()
                .map(|&b| {
                    let sum: f64 = base
                        .iter()
                        .map(|x| {
                            let mut x = x.clone();
                            x[j] = a;
                            if let Some((k, _)) = k {
                                x[k] = b;
                            }
                            gp.predict_mean(&x)
                        })
                        .sum();
                    sum / base.len() as f64
                })
                .collect()
        })
        .collect()
}

/// Decompose the variance of `gp`'s mean over `base` (unit-cube points within `ranges`, one
/// `(low, high)` per coordinate, e.g. 256 Sobol points over the whole cube): main effects of
/// every coordinate, and the interactions of each pair among the `pairs_of` coordinates with
/// the largest main effects. Categorical coordinates always range over all their choices.
pub fn decompose(gp: &Gp, base: &[Vec<f64>], ranges: &[(f64, f64)], pairs_of: usize) -> Effects {
    let kinds = gp.kinds().to_vec();
    let d = kinds.len();
    let flat = Effects { main: vec![0.0; d], pairs: vec![], interactions: 0.0, variance: 0.0 };
    if base.is_empty() || d == 0 || ranges.len() != d {
        return flat;
    }
    let at_base: Vec<f64> = base.iter().map(|x| gp.predict_mean(x)).collect();
    let mains: Vec<f64> = (0..d)
        .map(|j| {
            let g: Vec<f64> = conditional_means(gp, base, j, &grid(&kinds[j], ranges[j], GRID), None).concat();
            variance(&g)
        })
        .collect();
    // The base sample's variance and the grid's main effects are two estimates; the larger
    // total keeps every share within [0, 1].
    let total = variance(&at_base).max(mains.iter().sum());
    if total.is_nan() || total <= 1e-300 || !total.is_finite() {
        return flat;
    }
    let main: Vec<f64> = mains.iter().map(|v| (v / total).clamp(0.0, 1.0)).collect();
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| main[b].total_cmp(&main[a]));
    let top = &order[..pairs_of.min(d)];
    let mut pairs = Vec::new();
    for (a, &i) in top.iter().enumerate() {
        for &j in &top[a + 1..] {
            let (i, j) = (i.min(j), i.max(j));
            let (gi, gj) = (grid(&kinds[i], ranges[i], PAIR_GRID), grid(&kinds[j], ranges[j], PAIR_GRID));
            let table = conditional_means(gp, base, i, &gi, Some((j, &gj)));
            let rows: Vec<f64> = table.iter().map(|r| r.iter().sum::<f64>() / r.len() as f64).collect();
            let cols: Vec<f64> =
                (0..gj.len()).map(|c| table.iter().map(|r| r[c]).sum::<f64>() / table.len() as f64).collect();
            let joint = variance(&table.concat());
            let share = ((joint - variance(&rows) - variance(&cols)) / total).clamp(0.0, 1.0);
            pairs.push((i, j, share));
        }
    }
    pairs.sort_by(|a, b| b.2.total_cmp(&a.2));
    let interactions = (1.0 - main.iter().sum::<f64>()).clamp(0.0, 1.0);
    Effects { main, pairs, interactions, variance: total }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cube::sobol_point;
    use crate::surrogate::FitOptions;

    fn base(d: usize) -> Vec<Vec<f64>> {
        (0..256).map(|i| sobol_point(i, d, 9)).collect()
    }

    #[test]
    fn ranks_the_parameters_that_matter() {
        // y = 3·x0² + x2 (+ nothing from x1), x2 categorical-like step.
        let kinds = [InputKind::Continuous, InputKind::Continuous, InputKind::Categorical { choices: 2 }];
        let xs: Vec<Vec<f64>> = (0..40).map(|i| sobol_point(i, 3, 5)).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x[0] * x[0] + if x[2] > 0.5 { 0.5 } else { 0.0 }).collect();
        let gp = Gp::fit(&kinds, &xs, &ys, &FitOptions::default()).unwrap();
        let e = decompose(&gp, &base(3), &[(0.0, 1.0); 3], 3);
        assert!(e.main.iter().sum::<f64>() <= 1.0 + 1e-9);
        assert!(e.main[0] > e.main[2] && e.main[2] > e.main[1], "{e:?}");
        assert!(e.main[1] < 0.02, "{e:?}");
        // Additive: next to nothing is left for interactions.
        assert!(e.interactions < 0.05 && e.pairs.iter().all(|p| p.2 < 0.05), "{e:?}");
    }

    #[test]
    fn an_interaction_shows_as_a_pair_not_as_main_effects() {
        // y = (x0 - 0.5)(x1 - 0.5): no main effects at all, one interaction.
        let kinds = [InputKind::Continuous; 3];
        let xs: Vec<Vec<f64>> = (0..60).map(|i| sobol_point(i, 3, 3)).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (x[0] - 0.5) * (x[1] - 0.5)).collect();
        let gp = Gp::fit(&kinds, &xs, &ys, &FitOptions::default()).unwrap();
        let e = decompose(&gp, &base(3), &[(0.0, 1.0); 3], 3);
        assert!(e.main.iter().all(|&m| m < 0.05), "{e:?}");
        assert!(e.interactions > 0.9, "{e:?}");
        assert_eq!((e.pairs[0].0, e.pairs[0].1), (0, 1), "{e:?}");
        assert!(e.pairs[0].2 > 0.8, "{e:?}");
    }

    #[test]
    fn a_flat_model_has_no_importance() {
        let kinds = [InputKind::Continuous; 2];
        let xs: Vec<Vec<f64>> = (0..10).map(|i| sobol_point(i, 2, 1)).collect();
        let gp = Gp::fit(&kinds, &xs, &[1.0; 10], &FitOptions::default()).unwrap();
        let e = decompose(&gp, &base(2), &[(0.0, 1.0); 2], 2);
        assert!(e.main.iter().all(|&m| m < 1e-6) && e.variance < 1e-9, "{e:?}");
    }
}
