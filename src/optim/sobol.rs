//! `sobol`: Owen-scrambled Sobol points (sobol_burley), a low-discrepancy
//! design that covers the cube more evenly than random sampling (the points
//! are [`crate::cube::sobol_point`], which the other optimizers' initial
//! designs use too).

use serde::{Deserialize, Serialize};

use super::{Candidate, Observed, Optimizer, Problem, Snapshot, restore_from, snapshot_of};
use crate::cube::sobol_point;
use crate::error::Result;

/// `sobol` has no options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SobolConfig {}

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
