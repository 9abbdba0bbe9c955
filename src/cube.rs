//! The unit cube `[0,1]^d` every optimizer searches: what kind of values
//! each coordinate decodes to ([`Dim`]), the scrambled Sobol design used to
//! cover it, and folding points back into it. The bottom floor: the space,
//! the optimizers, the surrogate models and the reports all import it.

use serde::{Deserialize, Serialize};

/// What kind of values one coordinate of the unit cube decodes to.
///
/// Optimizers use this to treat ints and categoricals sensibly (e.g. uniform
/// crossover of categorical genes, mutation steps at least one level wide).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dim {
    /// Any value in `[0,1]` is meaningful.
    Continuous,
    /// `levels` ordered values; `[0,1]` is cut into `levels` equal bins.
    Integer {
        /// Number of values (≥ 1).
        levels: u64,
    },
    /// `choices` unordered values; `[0,1]` is cut into `choices` equal bins.
    Categorical {
        /// Number of choices (≥ 1).
        choices: u32,
    },
}

impl Dim {
    /// Number of distinct decoded values, if finite.
    pub fn levels(&self) -> Option<u64> {
        match *self {
            Dim::Continuous => None,
            Dim::Integer { levels } => Some(levels),
            Dim::Categorical { choices } => Some(choices as u64),
        }
    }
    /// True for unordered choices, whose bins have no meaningful distance between them.
    pub fn is_categorical(&self) -> bool {
        matches!(self, Dim::Categorical { .. })
    }
    /// Centre of the bin that `u` falls in; continuous dims just clamp `u` into `[0, 1]`.
    pub fn snap(&self, u: f64) -> f64 {
        match self.levels() {
            None => u.clamp(0.0, 1.0),
            Some(n) => {
                let n = n.max(1) as f64;
                let k = (u.clamp(0.0, 1.0) * n).floor().min(n - 1.0);
                (k + 0.5) / n
            }
        }
    }
}

/// Fold a value back into `[0,1]` by reflection at the bounds (non-finite → 0.5).
pub(crate) fn reflect(v: f64) -> f64 {
    if !v.is_finite() {
        return 0.5;
    }
    let v = v.rem_euclid(2.0);
    if v > 1.0 { 2.0 - v } else { v }
}

/// Clamp every coordinate into `[0,1]` (NaN becomes 0.5).
pub fn clamp_unit(x: &mut [f64]) {
    for v in x.iter_mut() {
        *v = if v.is_nan() { 0.5 } else { v.clamp(0.0, 1.0) };
    }
}

/// sobol_burley gives at most 256 dimensions and 65,536 points per seed;
/// beyond that we move to a fresh scramble seed, which keeps the points
/// well spread (each block is its own scrambled sequence).
const MAX_DIMS: usize = 256;
const MAX_POINTS: u64 = 65_536;

/// Point `index` of the scrambled Sobol sequence in `d` dimensions.
pub fn sobol_point(index: u64, d: usize, seed: u64) -> Vec<f64> {
    let block = index / MAX_POINTS;
    let i = (index % MAX_POINTS) as u32;
    (0..d)
        .map(|k| {
            let dim_block = (k / MAX_DIMS) as u64;
            let s =
                seed.wrapping_add(block.wrapping_mul(0x9E37_79B9)).wrapping_add(dim_block.wrapping_mul(0x85EB_CA6B));
            let s32 = (s ^ (s >> 32)) as u32;
            // An f32 in [0, 1); the clamp only guards the cube's bounds.
            let v = sobol_burley::sample(i, (k % MAX_DIMS) as u32, s32) as f64;
            v.clamp(0.0, 1.0)
        })
        .collect()
}
