//! `sobol`: Owen-scrambled Sobol points (sobol_burley), a low-discrepancy
//! design that covers the cube more evenly than random sampling (the points
//! are [`crate::cube::sobol_point`], which the other optimizers' initial
//! designs use too).

use serde::{Deserialize, Serialize};

use super::{Candidate, Observed, Optimizer, Problem, Snapshot, StateCodec};
/// The design points, re-exported where they were before they moved to the cube
/// module (benches/gp.rs imports them from here).
pub use crate::cube::sobol_point;
use crate::error::Result;

/// `sobol` has no options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SobolConfig {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    next_index: u64,
}

/// Scrambled Sobol points; see the module docs.
pub struct Sobol {
    d: usize,
    seed: u64,
    state: State,
}

/// The registry name and state format of `sobol`.
pub(crate) const CODEC: StateCodec = StateCodec::new("sobol", 1);

impl Sobol {
    /// The Sobol sequence of the problem's dimension, scrambled by its seed.
    pub fn new(problem: &Problem, _config: SobolConfig) -> Self {
        Sobol { d: problem.dim(), seed: problem.seed, state: State { next_index: 0 } }
    }
}

impl Optimizer for Sobol {
    fn name(&self) -> &'static str {
        CODEC.name
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
        CODEC.snapshot(&self.state, self.d)
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = CODEC.restore(snapshot, self.d)?;
        Ok(())
    }
}
