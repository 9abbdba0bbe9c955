//! Ending a run and choosing what follows: a restart (BIPOP/IPOP), the
//! polish of the best run stopped early, or the end of the search.

use super::state::Regime;
use super::update::Stop;
use super::{CODEC, CmaEs, MAX_DOUBLINGS, POLISH_SHARE, Restarts, SAME_OPTIMUM};
use crate::optim::bounds;

impl CmaEs {
    /// The first run: from the best foreign point told so far, else from a
    /// uniformly random point (never the centre: no free win on benchmarks
    /// whose optimum sits there).
    pub(super) fn first_run(&mut self) {
        let n = self.n();
        let mean: Vec<f64> = match &self.state.foreign {
            Some((x, _)) => x.iter().map(|&u| bounds::from_unit(u)).collect(),
            None => (0..n).map(|_| bounds::from_unit(self.state.rng.uniform())).collect(),
        };
        let lambda = self.state.default_lambda;
        let sigma = self.state.sigma0;
        self.start_run(mean, lambda, sigma, Regime::First, None);
    }

    /// Evaluations left of the planned budget, when known.
    pub(super) fn remaining(&self) -> Option<u64> {
        self.budget.map(|b| b.saturating_sub(self.state.spent))
    }

    /// The last share of a known budget refines the best run stopped early,
    /// unless the current run is already better.
    pub(super) fn time_to_polish(&self) -> bool {
        let (Some(left), Some(budget), Some(paused)) = (self.remaining(), self.budget, &self.state.paused) else {
            return false;
        };
        let current_best = self.state.run.as_ref().and_then(|r| r.best);
        left as f64 <= POLISH_SHARE * budget as f64
            && !self.state.run.as_ref().is_some_and(|r| r.polishing)
            && paused.best.is_some_and(|b| current_best.is_none_or(|c| b < c))
    }

    /// A restart that the rest of a known budget cannot take halfway is
    /// worth less than polishing the best run (and no restart may follow).
    fn polish_instead_of_restart(&self) -> bool {
        let s = &self.state;
        if s.paused.is_none() {
            return false;
        }
        if s.restarts == Restarts::None || s.max_restarts.is_some_and(|m| s.restarts_done >= m) {
            return true;
        }
        let Some(left) = self.remaining() else { return false };
        let last = s.bipop.last_large_evals;
        let expected = if s.next_is_small() {
            last / 2
        } else if s.bipop.doublings < MAX_DOUBLINGS {
            2 * last
        } else {
            last
        };
        left < expected / 4
    }

    /// Close the current run: account for it, keep it for polishing when it
    /// stopped early as the best so far, then polish or restart.
    pub(super) fn end_run(&mut self, stop: Stop) {
        let run = self.state.run.take().expect("a run to end");
        self.cache = None;
        tracing::debug!(
            optimizer = CODEC.name,
            reason = stop.reason,
            evals = run.evals,
            lambda = run.lambda,
            best = run.best,
            "run ended"
        );
        // A polishing run was accounted for when it first stopped.
        if !run.polishing {
            let b = &mut self.state.bipop;
            match run.regime {
                Regime::First => b.last_large_evals = run.evals,
                Regime::Large => {
                    b.large_evals += run.evals;
                    b.last_large_evals = run.evals;
                }
                Regime::Small => b.small_evals += run.evals,
            }
        }
        // Two runs that end at the same point suggest one big basin: refine
        // it now rather than restarting into it again.
        let same_optimum = !run.polishing
            && match (&run.best_x, &self.state.incumbent_x) {
                (Some(a), Some(b)) => a.iter().zip(b).all(|(a, b)| (a - b).abs() < SAME_OPTIMUM),
                _ => false,
            };
        if let (Some(best), Some(best_x)) = (run.best, &run.best_x) {
            let improved = self.state.incumbent.is_none_or(|i| best < i);
            if !run.polishing {
                self.state.bipop.last_improved = improved.then_some(run.regime);
            }
            if improved {
                self.state.incumbent = Some(best);
                self.state.incumbent_x = Some(best_x.clone());
                self.state.paused = None;
                if stop.coarse && !run.polishing {
                    self.state.paused = Some(run);
                }
            }
        }
        if self.state.paused.is_some() && (same_optimum || self.time_to_polish() || self.polish_instead_of_restart()) {
            let mut run = self.state.paused.take().expect("checked above");
            run.polishing = true;
            run.max_evals = None;
            let g = self.new_generation_parts(run.lambda, run.sigma, &run.cov);
            run.current = g;
            self.state.run = Some(run);
        } else {
            self.restart();
        }
    }

    /// Start the next run per the restart strategy, or finish.
    fn restart(&mut self) {
        let s = &mut self.state;
        let limit_reached = s.max_restarts.is_some_and(|m| s.restarts_done >= m);
        if s.restarts == Restarts::None || limit_reached {
            s.finished = true;
            s.run = None;
            self.cache = None;
            return;
        }
        s.restarts_done += 1;
        let n = self.dims.len();
        let lambda_def = s.default_lambda;
        let small = s.next_is_small();
        let (lambda, sigma, regime, max_evals) = if small {
            let large = lambda_def << s.bipop.doublings;
            let u = s.rng.uniform();
            let lambda = (lambda_def as f64 * (0.5 * large as f64 / lambda_def as f64).powf(u * u)).floor() as usize;
            let sigma = s.sigma0 * 10f64.powf(-2.0 * s.rng.uniform());
            (lambda.max(2), sigma, Regime::Small, Some((s.bipop.last_large_evals / 2).max(1)))
        } else {
            s.bipop.doublings = (s.bipop.doublings + 1).min(MAX_DOUBLINGS);
            (lambda_def << s.bipop.doublings, s.sigma0, Regime::Large, None)
        };
        let mean: Vec<f64> = (0..n).map(|_| bounds::from_unit(s.rng.uniform())).collect();
        self.start_run(mean, lambda, sigma, regime, max_evals);
    }
}
