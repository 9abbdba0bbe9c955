//! `cmaes`: (being written).

use serde::{Deserialize, Serialize};

use super::{Candidate, Observed, Optimizer, Problem, Snapshot};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmaEsConfig {}

pub struct CmaEs;

impl CmaEs {
    pub fn new(_problem: &Problem, _config: CmaEsConfig) -> Result<Self> {
        Err(Error::optimizer("cmaes", "not available yet"))
    }
}

impl Optimizer for CmaEs {
    fn name(&self) -> &'static str { "cmaes" }
    fn ask(&mut self, _n: usize) -> Result<Vec<Candidate>> { unreachable!() }
    fn tell(&mut self, _r: &[Observed]) -> Result<()> { unreachable!() }
    fn snapshot(&self) -> Result<Snapshot> { unreachable!() }
    fn restore(&mut self, _s: &Snapshot) -> Result<()> { unreachable!() }
}
