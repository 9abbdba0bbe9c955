//! `random`: independent uniform sampling of the unit cube; the yardstick
//! every other optimizer must beat.

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::{Candidate, Dim, Observed, Optimizer, Problem, Snapshot, restore_from, snapshot_of};
use crate::error::Result;

/// `random` has no options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomConfig {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: u64,
}

pub struct RandomSearch {
    dims: Vec<Dim>,
    state: State,
}

const VERSION: u32 = 1;

impl RandomSearch {
    pub fn new(problem: &Problem, _config: RandomConfig) -> Self {
        RandomSearch { dims: problem.dims.clone(), state: State { rng: Rng::new(problem.seed, 1), next_ticket: 0 } }
    }
}

impl Optimizer for RandomSearch {
    fn name(&self) -> &'static str {
        "random"
    }
    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let x = self.state.rng.unit_point(self.dims.len());
            out.push(Candidate { ticket: self.state.next_ticket, x });
            self.state.next_ticket += 1;
        }
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
