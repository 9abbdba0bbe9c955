//! Ask+tell cost of every registered optimizer (time outside the objective).
//!
//! `cargo bench --bench optimizers`. Each optimizer is warmed up with 500
//! evaluations of a 10-d sphere, then one iteration is one `ask(1)` + one
//! `tell` (the stdio protocol's worst case); a second group asks in batches
//! of 8. Figures go to benches/RESULTS.md. The model-based optimizers
//! (`bayes`, and `auto`, which starts with it) have their own bench against
//! the history size: benches/gp.rs.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use knobs::optim::{self, Dim, Observed, Optimizer, OptimizerSpec, Problem};

fn sphere(x: &[f64]) -> f64 {
    x.iter().enumerate().map(|(i, v)| (v - 0.3 - 0.04 * i as f64).powi(2)).sum()
}

fn warmed(name: &str, d: usize) -> Box<dyn Optimizer> {
    let mut p = Problem::new(vec![Dim::Continuous; d], 1);
    p.budget = Some(100_000);
    let mut opt = optim::build(&OptimizerSpec::named(name), &p).unwrap();
    let mut n = 0;
    while n < 500 {
        let c = opt.ask(8).unwrap();
        if c.is_empty() {
            break;
        }
        n += c.len();
        let obs: Vec<Observed> = c.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), sphere(&c.x))).collect();
        opt.tell(&obs).unwrap();
    }
    opt
}

fn step(opt: &mut dyn Optimizer, n: usize) {
    let c = opt.ask(n).unwrap();
    let obs: Vec<Observed> = c.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), sphere(&c.x))).collect();
    opt.tell(&obs).unwrap();
}

/// The population-based optimizers (cost independent of the history).
fn names() -> Vec<&'static str> {
    optim::names().into_iter().filter(|n| !matches!(*n, "bayes" | "auto")).collect()
}

fn bench(c: &mut Criterion) {
    for (batch, label) in [(1usize, "ask1_tell"), (8, "ask8_tell")] {
        let mut g = c.benchmark_group(label);
        for name in names() {
            // Run many steps on one warmed instance: cost in steady state.
            let mut opt = warmed(name, 10);
            g.bench_function(format!("{name}/d10"), |b| b.iter(|| step(opt.as_mut(), batch)));
        }
        g.finish();
    }
    let mut g = c.benchmark_group("snapshot_restore");
    for name in names() {
        g.bench_function(format!("{name}/d10"), |b| {
            b.iter_batched(
                || warmed(name, 10),
                |opt| {
                    let text = serde_json::to_string(&opt.snapshot().unwrap()).unwrap();
                    let mut p = Problem::new(vec![Dim::Continuous; 10], 1);
                    p.budget = Some(100_000);
                    let mut fresh = optim::build(&OptimizerSpec::named(name), &p).unwrap();
                    fresh.restore(&serde_json::from_str(&text).unwrap()).unwrap();
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
