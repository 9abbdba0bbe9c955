//! Parameter importance from a fitted GP: a variance-based main-effect
//! measure on the model's posterior mean.
//!
//! For each parameter `j`, the mean is evaluated along a grid of `x_j`
//! (every level of a small int or categorical, else 17 evenly spaced
//! values) at each of the given base points (64 Sobol points in reports) for the other coordinates; the
//! variance along the grid, averaged over the base points, is the
//! parameter's effect. Effects are normalized to sum to 1. Unlike inverse
//! length scales this is in the objective's units, so a parameter with a
//! short length scale but a tiny amplitude does not look important, and it
//! treats categoricals (whose length scale means something else) alike.

use super::gp::{Gp, InputKind};

const GRID: usize = 17;

/// One importance per input coordinate, non-negative, summing to 1 (all 0
/// when the model is flat); `base` are the base points (unit cube, e.g. 64
/// Sobol points).
pub fn main_effects(gp: &Gp, base: &[Vec<f64>]) -> Vec<f64> {
    let kinds = gp.kinds().to_vec();
    let d = kinds.len();
    let grid = |k: &InputKind| -> Vec<f64> {
        let bins = match *k {
            InputKind::Continuous => None,
            InputKind::Ordinal { levels } => Some(levels),
            InputKind::Categorical { choices } => Some(choices as u64),
        };
        match bins {
            Some(b) if b as usize <= GRID => (0..b).map(|i| (i as f64 + 0.5) / b as f64).collect(),
            _ => (0..GRID).map(|i| i as f64 / (GRID - 1) as f64).collect(),
        }
    };
    let mut effects = vec![0.0; d];
    for base in base {
        for j in 0..d {
            let values: Vec<f64> = grid(&kinds[j])
                .into_iter()
                .map(|v| {
                    let mut x = base.clone();
                    x[j] = v;
                    gp.predict_mean(&x)
                })
                .collect();
            let m = values.iter().sum::<f64>() / values.len() as f64;
            effects[j] += values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / values.len() as f64;
        }
    }
    let total: f64 = effects.iter().sum();
    if total > 0.0 && total.is_finite() {
        effects.iter_mut().for_each(|e| *e /= total);
    } else {
        effects.iter_mut().for_each(|e| *e = 0.0);
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surrogate::FitOptions;

    #[test]
    fn ranks_the_parameters_that_matter() {
        // y = 3·x0² + x2 (+ nothing from x1), x2 categorical-like step.
        let kinds = [InputKind::Continuous, InputKind::Continuous, InputKind::Categorical { choices: 2 }];
        let xs: Vec<Vec<f64>> = (0..40).map(|i| crate::cube::sobol_point(i, 3, 5)).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 * x[0] * x[0] + if x[2] > 0.5 { 0.5 } else { 0.0 }).collect();
        let gp = Gp::fit(&kinds, &xs, &ys, &FitOptions::default()).unwrap();
        let base: Vec<Vec<f64>> = (0..64).map(|i| crate::cube::sobol_point(i, 3, 9)).collect();
        let e = main_effects(&gp, &base);
        assert!((e.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(e[0] > e[2] && e[2] > e[1], "{e:?}");
        assert!(e[1] < 0.02, "{e:?}");
    }
}
