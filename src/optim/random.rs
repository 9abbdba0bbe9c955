//! `random`: independent uniform sampling of the unit cube; the yardstick
//! every other optimizer must beat.

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::{Candidate, Dim, Observed, Optimizer, Problem, Snapshot, StateCodec, Tickets};
use crate::error::Result;

/// `random` has no options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomConfig {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: Tickets,
}

/// Uniform random sampling; see the module docs.
pub struct RandomSearch {
    dims: Vec<Dim>,
    state: State,
}

/// The registry name and state format of `random`.
pub(crate) const CODEC: StateCodec = StateCodec::new("random", 1);

impl RandomSearch {
    /// Random search over the problem's space.
    pub fn new(problem: &Problem, _config: RandomConfig) -> Self {
        let state = State { rng: Rng::new(problem.seed, 1), next_ticket: Tickets::default() };
        RandomSearch { dims: problem.dims.clone(), state }
    }
}

impl Optimizer for RandomSearch {
    fn name(&self) -> &'static str {
        CODEC.name
    }
    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let x = self.state.rng.unit_point(self.dims.len());
            out.push(Candidate { ticket: self.state.next_ticket.issue(), x });
        }
        Ok(out)
    }
    fn tell(&mut self, _results: &[Observed]) -> Result<()> {
        Ok(())
    }
    fn snapshot(&self) -> Result<Snapshot> {
        CODEC.snapshot(&self.state, self.dims.len())
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = CODEC.restore(snapshot, self.dims.len())?;
        Ok(())
    }
}
