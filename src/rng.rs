//! The seeded, serializable random number generator every optimizer uses.
//!
//! Xoshiro256++ (rand_xoshiro) has a small state that serializes into a
//! snapshot, so a restored optimizer continues with the same random stream.

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// A seeded Xoshiro256++ generator; cloning or serializing it keeps its position in the stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    /// A generator for one component: the same `(seed, stream)` always gives
    /// the same sequence, different streams are independent.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mixed = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        Rng(Xoshiro256PlusPlus::seed_from_u64(mixed))
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// Uniform integer in [0, n); `n` = 0 is taken as 1 (always 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }
    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.0)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    /// A point uniformly in the unit cube.
    pub fn unit_point(&mut self, d: usize) -> Vec<f64> {
        (0..d).map(|_| self.uniform()).collect()
    }
}
