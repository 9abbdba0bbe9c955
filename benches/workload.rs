//! Time of one evaluation of each workload model on the experiments' real
//! loads (`cargo bench --bench workload`), from the specs in
//! `experiments/`:
//! - `pool/peak`: experiments/elb-pool (forecast peak, one segment);
//! - `pool/raw-week`: experiments/elb-pool/actual.yaml (2016 five-minute segments);
//! - `cache/peak`: experiments/twitter-cache (one hour at the forecast peak, simulated);
//! - `gc/raw-week`: the service's heap on last week's raw load;
//! - `service/peak`, `service/raw-week`: experiments/service-tuning forecast.yaml and lastweek.yaml.
//!
//! Each evaluates the spec's baseline; building the scenario (reading and
//! forecasting the telemetry, generating the trace) is done once, outside
//! the timing. `cache/million/POLICY` simulates a trace of a million
//! requests over 100,000 Zipf(0.9) keys with 5% writes, at capacity 10,000
//! and a 300 s TTL. Figures go to benches/RESULTS.md.

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use knobs::eval::EvalContext;
use knobs::eval::workload::cache::{CacheSpec, Policy};
use knobs::eval::workload::gc::Gc;
use knobs::eval::workload::{Knob, Scenario, WorkloadModel};
use knobs::spec::Spec;

fn evaluator(
    spec: &str,
    model: Option<&dyn WorkloadModel>,
) -> (Box<dyn knobs::eval::Evaluator>, knobs::space::Config, EvalContext) {
    let spec = Spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(spec)).unwrap();
    let config = spec.space.baseline().unwrap();
    let ctx = EvalContext { study: spec.name.clone(), trial: 0, base_dir: spec.base_dir.clone() };
    let evaluator: Box<dyn knobs::eval::Evaluator> = match model {
        None => spec.evaluator.build(&spec.space, &spec.base_dir).unwrap(),
        Some(m) => {
            let (_, w) = spec.evaluator.workload().unwrap();
            let mut w = w.clone();
            // Only the gc part of the service spec.
            for section in ["pool", "cache", "service"] {
                w.remove_section(section);
            }
            Box::new(w.build(m, &spec.base_dir).unwrap())
        }
    };
    (evaluator, config, ctx)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("workload");
    g.sample_size(20);
    let cases = [
        ("pool/peak", "experiments/elb-pool/spec.yaml", None),
        ("pool/raw-week", "experiments/elb-pool/actual.yaml", None),
        ("cache/peak", "experiments/twitter-cache/spec.yaml", None),
        ("gc/raw-week", "experiments/service-tuning/lastweek.yaml", Some(&Gc as &dyn WorkloadModel)),
        ("service/peak", "experiments/service-tuning/forecast.yaml", None),
        ("service/raw-week", "experiments/service-tuning/lastweek.yaml", None),
    ];
    for (name, spec, model) in cases {
        let (e, config, ctx) = evaluator(spec, model);
        g.bench_function(name, |b| b.iter(|| e.evaluate(&config, &ctx).unwrap()));
    }
    let mut spec = CacheSpec { keys: 100_000, zipf: 0.9, ..CacheSpec::new(Knob::Fixed(100.0), Knob::Fixed(60.0)) };
    spec.update_fraction = 0.05;
    let model = spec.build(&Scenario::constant(1000.0, 1000.0), Path::new("."), 1).unwrap();
    for policy in Policy::ALL {
        g.bench_function(format!("cache/million/{policy}"), |b| b.iter(|| model.simulate(10_000, 300.0, policy)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
