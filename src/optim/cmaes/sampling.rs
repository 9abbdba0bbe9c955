//! Starting a run and drawing its generations' samples (recomputed from
//! the generation's generator, never stored).

use std::collections::VecDeque;

use super::params::Params;
use super::state::{Generation, Regime, Run};
use super::{CmaEs, STREAM_GENERATION};
use crate::optim::bounds;
use crate::optim::rng::Rng;

/// A sample of the current generation: `z ~ N(0, I)`, `y = B D z` and the
/// point in the cube.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    pub(super) z: Vec<f64>,
    pub(super) y: Vec<f64>,
    pub(super) x: Vec<f64>,
}

/// Samples of the current generation drawn so far (rebuilt after a restore).
#[derive(Debug, Clone)]
pub(super) struct SampleCache {
    pub(super) cursor: Rng,
    pub(super) samples: Vec<Sample>,
}

impl CmaEs {
    /// Start a run with the given mean (genotype), population and step size.
    pub(super) fn start_run(
        &mut self,
        mean: Vec<f64>,
        lambda: usize,
        sigma: f64,
        regime: Regime,
        max_evals: Option<u64>,
    ) {
        let n = self.n();
        let mut cov = vec![0.0; n * n];
        let mut basis = vec![0.0; n * n];
        for i in 0..n {
            cov[i * n + i] = 1.0;
            basis[i * n + i] = 1.0;
        }
        let current = self.new_generation_parts(lambda, sigma, &cov);
        self.state.run = Some(Run {
            lambda,
            regime,
            max_evals,
            evals: 0,
            generation: 0,
            mean,
            sigma,
            sigma0: sigma,
            cov,
            basis,
            axes: vec![1.0; n],
            eigen_generation: 0,
            ps: vec![0.0; n],
            pc: vec![0.0; n],
            best_history: VecDeque::new(),
            median_history: VecDeque::new(),
            flat_history: VecDeque::new(),
            best: None,
            best_x: None,
            polishing: false,
            current,
        });
        self.cache = None;
    }

    pub(super) fn new_generation_parts(&mut self, lambda: usize, sigma: f64, cov: &[f64]) -> Generation {
        let n = self.n();
        let params = Params::new(n, lambda);
        let scale = (0..n)
            .map(|i| match self.dims[i].levels() {
                Some(levels) if levels > 1 => {
                    let floor = params.margin / levels as f64;
                    let std = sigma * cov[i * n + i].max(0.0).sqrt();
                    if std < floor { (floor / std.max(1e-300)).min(1e300) } else { 1.0 }
                }
                _ => 1.0,
            })
            .collect();
        // A fresh generator per generation, so that member k can be redrawn
        // after a restore without storing the samples.
        let seed = (self.state.rng.uniform() * (1u64 << 53) as f64) as u64;
        Generation {
            rng: Rng::new(seed, STREAM_GENERATION),
            first_ticket: self.state.next_ticket,
            asked: 0,
            told: Vec::new(),
            n_told: 0,
            scale,
        }
    }

    /// Make sure samples `0..upto` of the current generation are cached.
    pub(super) fn ensure_samples(&mut self, upto: usize) {
        let n = self.n();
        let Some(run) = self.state.run.as_ref() else {
            return;
        };
        let cache =
            self.cache.get_or_insert_with(|| SampleCache { cursor: run.current.rng.clone(), samples: Vec::new() });
        while cache.samples.len() < upto {
            let z: Vec<f64> = (0..n).map(|_| cache.cursor.normal()).collect();
            let mut y = vec![0.0; n];
            for (i, yi) in y.iter_mut().enumerate() {
                let row = &run.basis[i * n..(i + 1) * n];
                *yi = row.iter().zip(&run.axes).zip(&z).map(|((b, d), z)| b * d * z).sum();
            }
            let x: Vec<f64> =
                (0..n).map(|i| bounds::to_unit(run.mean[i] + run.sigma * run.current.scale[i] * y[i]).0).collect();
            cache.samples.push(Sample { z, y, x });
        }
    }
}
