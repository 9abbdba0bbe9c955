//! `cmaes`: the (mu/mu_w, lambda) CMA-ES with active covariance update and
//! BIPOP/IPOP restarts, searching the unit cube through a smooth periodic
//! boundary transform, with a variance margin for discrete coordinates.
//!
//! Follows Hansen's tutorial ("The CMA Evolution Strategy: A Tutorial",
//! arXiv:1604.00772) for the update equations and default parameters (cs
//! and damps as in pycma 4), Hansen 2009 (BIPOP) for the restart scheme,
//! pycma's `BoundTransform` for the bounds and Hamano et al. 2022 ("CMA-ES
//! with Margin") for integers and categoricals.
//!
//! Budget use beyond the textbook: a run also stops once its values agree
//! to a relative 1e-4, or when it trails an earlier run hopelessly, so the
//! budget buys restarts instead of digits of a local optimum; the best run
//! is kept and resumed to full precision ("polished") when a later run ends
//! at the same point or when the rest of a known budget is too short for
//! another restart.

mod config;
mod params;
mod restarts;
mod sampling;
mod state;
#[cfg(test)]
mod tests;
mod update;

use super::{Candidate, Dim, Observed, Optimizer, Problem, Snapshot, StateCodec, foreign};
use crate::error::Result;
use crate::optim::rng::Rng;
pub use config::{CmaEsConfig, Restarts};
use sampling::SampleCache;
use state::{Bipop, State, Told};

/// The registry name and state format of `cmaes`.
pub(crate) const CODEC: StateCodec = StateCodec::new("cmaes", 1);
/// RNG streams: restarts (means, regime draws) and each generation's samples.
const STREAM_MAIN: u64 = 0x00C3_A5E5;
const STREAM_GENERATION: u64 = 0x00C3_A5E6;
/// Longest fitness history a run keeps (for the stagnation test); bounds the
/// snapshot size of very long runs.
const HISTORY_CAP: usize = 1000;
/// A run stops once it trails an earlier run by this many times its
/// remaining prospects (see `update::termination`).
const HOPELESS_FACTOR: f64 = 10.0;
/// Beyond 2^10 times the default population a run cannot converge in any
/// sensible budget; IPOP keeps restarting at that size instead.
const MAX_DOUBLINGS: u32 = 10;
/// Runs stop once their recent values agree to this relative precision
/// (values near zero: to 1e-12 absolute). Refining a local optimum further
/// rarely pays while the budget can buy restarts; the best run is polished
/// later (see `State::paused`).
const TOLFUN_REL: f64 = 1e-4;
/// Share of a known budget kept to polish the best run stopped early.
const POLISH_SHARE: f64 = 0.05;
/// Two runs whose best points differ by less than this in every coordinate
/// found the same optimum.
const SAME_OPTIMUM: f64 = 0.01;
/// BIPOP's small-population regime may use this share of the evaluations
/// the large regime used (Hansen's BIPOP: 1). Less, because with the
/// budgets of parameter tuning the large runs are the better bet on
/// structured multimodal landscapes; Loshchilov's NBIPOP tilts the same way.
const SMALL_REGIME_SHARE: f64 = 0.5;
/// Largest useful std of one coordinate in genotype space: beyond it the
/// periodic transform already spreads samples over the whole side.
const MAX_STD: f64 = 1.0 / 3.0;

/// CMA-ES with restarts over the unit cube (see the module docs).
pub struct CmaEs {
    dims: Vec<Dim>,
    /// The planned number of evaluations (not part of the state: a resumed
    /// study may extend it).
    budget: Option<u64>,
    state: State,
    cache: Option<SampleCache>,
}

impl CmaEs {
    /// Check the options (population at least 2, sigma0 in (0, 1]); a
    /// space without parameters is an error too.
    pub fn new(problem: &Problem, config: CmaEsConfig) -> Result<Self> {
        let n = problem.dim();
        if n == 0 {
            return Err(CODEC.error("the space has no parameters to search"));
        }
        config.check()?;
        let default_lambda = config
            .population
            .unwrap_or_else(|| (4 + (3.0 * (n as f64).ln()).floor() as usize).max(problem.parallelism));
        Ok(CmaEs {
            dims: problem.dims.clone(),
            budget: problem.budget,
            state: State {
                rng: Rng::new(problem.seed, STREAM_MAIN),
                next_ticket: 0,
                default_lambda,
                sigma0: config.sigma0,
                restarts: config.restarts,
                max_restarts: config.max_restarts,
                restarts_done: 0,
                finished: false,
                foreign: None,
                bipop: Bipop { large_evals: 0, small_evals: 0, last_large_evals: 0, doublings: 0, last_improved: None },
                incumbent: None,
                incumbent_x: None,
                paused: None,
                spent: 0,
                run: None,
            },
            cache: None,
        })
    }

    /// Restarts performed so far.
    pub fn restarts(&self) -> u32 {
        self.state.restarts_done
    }

    /// Population size of the current run.
    pub fn population(&self) -> Option<usize> {
        self.state.run.as_ref().map(|r| r.lambda)
    }

    fn n(&self) -> usize {
        self.dims.len()
    }

    /// Record one result; runs the generation update when lambda are in.
    fn tell_one(&mut self, o: &Observed) {
        let Some(ticket) = o.ticket else {
            // Foreign points steer the first run's start; later ones cannot
            // enter a generation without biasing its update.
            if self.state.run.is_none()
                && let Some(o) = foreign(o, self.n())
                && o.value.is_some()
            {
                let told = Told::of(&o);
                let better = match &self.state.foreign {
                    None => true,
                    Some((_, best)) => told.as_observed().cmp_quality(&best.as_observed()).is_lt(),
                };
                if better {
                    self.state.foreign = Some((o.x, told));
                }
            }
            return;
        };
        let Some(run) = self.state.run.as_mut() else {
            return;
        };
        let generation = &mut run.current;
        if ticket < generation.first_ticket || ticket >= generation.first_ticket + generation.asked as u64 {
            return; // from a finished generation (or unknown): stale
        }
        let k = (ticket - generation.first_ticket) as usize;
        if generation.told[k].is_some() {
            return; // told twice: keep the first
        }
        generation.told[k] = Some(Told::of(o));
        generation.n_told += 1;
        if generation.n_told >= run.lambda {
            self.update();
        }
    }
}

impl Optimizer for CmaEs {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        if n == 0 || self.state.finished {
            return Ok(Vec::new());
        }
        if self.state.run.is_none() {
            self.first_run();
        }
        let (start, count) = {
            let run = self.state.run.as_ref().expect("run started above");
            let g = &run.current;
            // Members of the generation first; once all are out and results
            // are pending, more samples of the same distribution (the update
            // then uses whichever lambda come back first).
            let count = if g.asked < run.lambda { n.min(run.lambda - g.asked) } else { n.min(run.lambda) };
            (g.asked, count)
        };
        self.ensure_samples(start + count);
        let cache = self.cache.as_ref().expect("samples were just drawn");
        let run = self.state.run.as_mut().expect("run started above");
        let g = &mut run.current;
        let out: Vec<Candidate> = (start..start + count)
            .map(|k| Candidate { ticket: g.first_ticket + k as u64, x: cache.samples[k].x.clone() })
            .collect();
        g.asked += count;
        g.told.resize(g.asked, None);
        self.state.next_ticket = g.first_ticket + g.asked as u64;
        Ok(out)
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for o in results {
            self.tell_one(o);
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        CODEC.snapshot(&self.state, self.n())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let state: State = CODEC.restore(snapshot, self.n())?;
        // Snapshots taken before they recorded their dimension: the run's mean tells it.
        if let Some(run) = &state.run
            && run.mean.len() != self.n()
        {
            return Err(CODEC.wrong_dim(run.mean.len(), self.n()));
        }
        self.state = state;
        self.cache = None;
        Ok(())
    }
}
