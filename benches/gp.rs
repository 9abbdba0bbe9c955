//! GP fit and `bayes` ask time against the number of completed trials.
//!
//! `cargo bench --bench gp`. History: n points of a 6-d problem (Hartmann-6
//! on Sobol points plus the optimizer's own proposals is not needed: the
//! cost depends on n and d only). Groups:
//! - `gp_fit/n`: hyperparameter fit + conditioning as `bayes` does it (all
//!   points up to 200, beyond that a 200-point subset for the
//!   hyperparameters and every point, up to 1000, for the conditioning);
//! - `bayes_ask/n`: one `ask(1)` of a `bayes` optimizer restored with n told
//!   trials and no fitted hyperparameters yet (the worst case: a resumed
//!   study's first ask, fit included).
//!
//! Figures go to benches/RESULTS.md.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use knobs::cube::sobol_point;
use knobs::eval::functions::hartmann6;
use knobs::optim::{self, Dim, Observed, Optimizer, OptimizerSpec, Problem, Snapshot};
use knobs::surrogate::{FitOptions, Gp, InputKind, OutputTransform};

const D: usize = 6;
const SIZES: [usize; 6] = [50, 100, 200, 500, 1000, 2000];

fn history(n: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let xs: Vec<Vec<f64>> = (0..n as u64).map(|i| sobol_point(i, D, 3)).collect();
    let ys = xs.iter().map(|x| hartmann6(x)).collect();
    (xs, ys)
}

fn bayes_with(n: usize) -> (Problem, Snapshot) {
    let problem = Problem::new(vec![Dim::Continuous; D], 1);
    let mut opt = optim::build(&OptimizerSpec::named("bayes"), &problem).unwrap();
    let (xs, ys) = history(n);
    let obs: Vec<Observed> = xs.into_iter().zip(ys).map(|(x, y)| Observed::ok(None, x, y)).collect();
    opt.tell(&obs).unwrap();
    (problem, opt.snapshot().unwrap())
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("gp_fit");
    for n in SIZES {
        let (xs, ys) = history(n);
        let t = OutputTransform::fit(&ys);
        let zs: Vec<f64> = ys.iter().map(|&y| t.forward(y)).collect();
        let (xs, zs) = (xs[xs.len().saturating_sub(1000)..].to_vec(), zs[zs.len().saturating_sub(1000)..].to_vec());
        let subset = (xs.len() > 200).then(|| (0..xs.len()).step_by(xs.len() / 200).take(200).collect());
        let opts = FitOptions { fit_subset: subset, restarts: 0, ..Default::default() };
        let kinds = vec![InputKind::Continuous; D];
        g.bench_function(format!("{n}"), |b| b.iter(|| Gp::fit(&kinds, &xs, &zs, &opts).unwrap()));
    }
    g.finish();
    let mut g = c.benchmark_group("bayes_ask");
    for n in SIZES {
        let (problem, snap) = bayes_with(n);
        g.bench_function(format!("{n}"), |b| {
            b.iter_batched(
                || {
                    let mut o = optim::build(&OptimizerSpec::named("bayes"), &problem).unwrap();
                    o.restore(&snap).unwrap();
                    o
                },
                |mut o: Box<dyn Optimizer>| o.ask(1).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots().sample_size(10).warm_up_time(std::time::Duration::from_millis(200)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
