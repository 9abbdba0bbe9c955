//! `annealing`: (being written).

use serde::{Deserialize, Serialize};

use super::{Candidate, Observed, Optimizer, Problem, Snapshot};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnealingConfig {}

pub struct Annealing;

impl Annealing {
    pub fn new(_problem: &Problem, _config: AnnealingConfig) -> Result<Self> {
        Err(Error::optimizer("annealing", "not available yet"))
    }
}

impl Optimizer for Annealing {
    fn name(&self) -> &'static str { "annealing" }
    fn ask(&mut self, _n: usize) -> Result<Vec<Candidate>> { unreachable!() }
    fn tell(&mut self, _r: &[Observed]) -> Result<()> { unreachable!() }
    fn snapshot(&self) -> Result<Snapshot> { unreachable!() }
    fn restore(&mut self, _s: &Snapshot) -> Result<()> { unreachable!() }
}
