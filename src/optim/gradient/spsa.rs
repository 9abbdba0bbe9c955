//! SPSA over ask/tell: each iteration's perturbation pairs are asked, and
//! the walk steps once all of them are told.

use super::state::{Pair, Role, Run, Walk};
use super::{Gradient, MAX_MOVE};
use crate::optim::{Candidate, reflect};

impl Gradient {
    /// The perturbation pairs of `walk`'s current iteration.
    pub(super) fn perturbations(&mut self, walk: &Walk) -> Vec<Pair> {
        let ck = self.settings.perturbation / ((walk.k + 1) as f64).powf(0.101);
        (0..self.settings.pairs)
            .map(|_| {
                let mut plus = walk.theta.clone();
                let mut minus = walk.theta.clone();
                for (i, dim) in self.dims.iter().enumerate() {
                    let sign = if self.state.rng.chance(0.5) { 1.0 } else { -1.0 };
                    let c = match dim.levels() {
                        Some(n) if n <= 1 => 0.0,
                        Some(n) => ck.max(1.0 / n as f64),
                        None => ck,
                    };
                    plus[i] = dim.snap(reflect(walk.theta[i] + sign * c));
                    minus[i] = dim.snap(reflect(walk.theta[i] - sign * c));
                }
                Pair { points: [plus, minus], cost: [None, None], asked: [false, false] }
            })
            .collect()
    }

    /// Step `theta` along the averaged gradient estimate of the told pairs.
    fn spsa_step(&self, walk: &mut Walk) {
        let d = self.dims.len();
        let mut g = vec![0.0; d];
        for pair in &walk.pairs {
            let (Some(plus), Some(minus)) = (pair.cost[0], pair.cost[1]) else { continue };
            for (i, gi) in g.iter_mut().enumerate() {
                let dx = pair.points[0][i] - pair.points[1][i];
                if dx != 0.0 {
                    *gi += (plus - minus) / dx / walk.pairs.len() as f64;
                }
            }
        }
        let big_a = 0.1 * self.settings.max_iters as f64;
        if walk.gain.is_none() {
            let mean = g.iter().map(|v| v.abs()).sum::<f64>() / d as f64;
            if mean > 0.0 && mean.is_finite() {
                walk.gain = Some(self.settings.step * (big_a + 1.0).powf(0.602) / mean);
            }
        }
        if let Some(a) = walk.gain {
            let ak = a / (walk.k as f64 + 1.0 + big_a).powf(0.602);
            for (t, gi) in walk.theta.iter_mut().zip(&g) {
                let step = (ak * gi).clamp(-MAX_MOVE, MAX_MOVE);
                if step.is_finite() {
                    *t = (*t - step).clamp(0.0, 1.0);
                }
            }
        }
        walk.k += 1;
    }

    pub(super) fn ask_spsa(&mut self, n: usize) -> Option<Vec<Candidate>> {
        let Some(Run::Spsa(mut walk)) = self.state.run.take() else { return None };
        if walk.pairs.iter().all(|p| p.cost.iter().all(Option::is_some)) {
            self.spsa_step(&mut walk);
            if walk.k >= self.settings.max_iters {
                self.state.run = Some(Run::Spsa(walk));
                self.next_run(false);
                return None;
            }
            walk.pairs = self.perturbations(&walk);
            self.state.run = Some(Run::Spsa(walk));
            return None;
        }
        let mut out = Vec::new();
        let (id, k) = (walk.id, walk.k);
        for (p, pair) in walk.pairs.iter_mut().enumerate() {
            for side in 0..2 {
                if out.len() < n && !pair.asked[side] {
                    pair.asked[side] = true;
                    out.push((pair.points[side].clone(), Role::Walk { id, k, pair: p, side }));
                }
            }
        }
        self.state.run = Some(Run::Spsa(walk));
        if out.is_empty() {
            return Some(self.scouts(n));
        }
        Some(out.into_iter().map(|(x, role)| self.candidate(x, role)).collect())
    }
}
