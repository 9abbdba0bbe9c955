//! The options of `cmaes` and their checks.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::OptionCheck;

/// What to do when a run has converged or stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restarts {
    /// Two regimes (Hansen's BIPOP): doubling populations, for global
    /// structure (Rastrigin-like landscapes), and small populations with
    /// small random step sizes, for many scattered basins. A regime keeps
    /// the turn while its runs improve on the best so far; otherwise the
    /// small one runs while it has used less than half the large one's
    /// evaluations.
    #[default]
    Bipop,
    /// Double the population at every restart.
    Ipop,
    /// One run only; `ask` returns nothing once it has converged.
    None,
}

/// Options of `cmaes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmaEsConfig {
    /// Offspring per generation (lambda) of the first run. Default
    /// `4 + floor(3 ln d)`, raised to the parallelism so that one batch of
    /// workers fills one generation.
    pub population: Option<usize>,
    /// Initial step size as a fraction of the cube's side. Default 0.25,
    /// pycma's advice (a quarter of the domain's width): wide enough to see
    /// most of the cube from a random start, not so wide that samples pile
    /// onto its faces.
    pub sigma0: f64,
    /// Restart strategy once a run has converged or stalled.
    pub restarts: Restarts,
    /// Stop (ask returns nothing) after this many restarts; default: keep
    /// restarting until the caller's budget is used.
    pub max_restarts: Option<u32>,
}

impl Default for CmaEsConfig {
    fn default() -> Self {
        CmaEsConfig { population: None, sigma0: 0.25, restarts: Restarts::Bipop, max_restarts: None }
    }
}

impl CmaEsConfig {
    /// Every bad option, reported at once: a population of at least 2, and
    /// sigma0 in (0, 1].
    pub(super) fn check(&self) -> Result<()> {
        let mut check = OptionCheck::default();
        if let Some(p) = self.population
            && p < 2
        {
            check.bad("population", format!("must be at least 2 (got {p})"));
        }
        if !(self.sigma0.is_finite() && self.sigma0 > 0.0 && self.sigma0 <= 1.0) {
            check.bad("sigma0", format!("must be in (0, 1], a fraction of the cube's side (got {})", self.sigma0));
        }
        check.finish()
    }
}
