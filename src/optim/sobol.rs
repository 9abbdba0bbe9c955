//! `sobol`: Owen-scrambled Sobol points (sobol_burley), a low-discrepancy
//! design that covers the cube more evenly than random sampling. Also the
//! initial design of the other optimizers ([`sobol_point`]).

use serde::{Deserialize, Serialize};

use super::{Candidate, Observed, Optimizer, Problem, Snapshot, restore_from, snapshot_of};
use crate::error::Result;

/// `sobol` has no options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SobolConfig {}

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
            // f32 output: move from the bin's corner into the cube's interior.
            let v = sobol_burley::sample(i, (k % MAX_DIMS) as u32, s32) as f64;
            v.clamp(0.0, 1.0)
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    next_index: u64,
}

pub struct Sobol {
    d: usize,
    seed: u64,
    state: State,
}

const VERSION: u32 = 1;

impl Sobol {
    pub fn new(problem: &Problem, _config: SobolConfig) -> Self {
        Sobol { d: problem.dim(), seed: problem.seed, state: State { next_index: 0 } }
    }
}

impl Optimizer for Sobol {
    fn name(&self) -> &'static str {
        "sobol"
    }
    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let out = (0..n as u64)
            .map(|k| {
                let i = self.state.next_index + k;
                Candidate { ticket: i, x: sobol_point(i, self.d, self.seed) }
            })
            .collect();
        self.state.next_index += n as u64;
        Ok(out)
    }
    fn tell(&mut self, _results: &[Observed]) -> Result<()> {
        Ok(())
    }
    fn snapshot(&self) -> Result<Snapshot> {
        snapshot_of(self.name(), VERSION, &self.state)
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = restore_from(self.name(), VERSION, snapshot)?;
        Ok(())
    }
}
