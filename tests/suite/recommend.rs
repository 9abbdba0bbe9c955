//! Recommendations on the shipped examples (importance near the best sees
//! the quickstart's eviction policy, an objective that never varies is called
//! out) and from an ask/tell session.

use std::path::Path;
use std::sync::Arc;

use knobs::recommend::{WarningKind, recommend};
use knobs::space::Value;
use knobs::spec::Spec;
use knobs::storage::{MemoryStorage, Storage};
use knobs::study::{RunOptions, Study};

fn run(spec: &Spec) -> Vec<knobs::trial::Trial> {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut study = Study::open(spec.clone(), storage, false).unwrap();
    study.run(&RunOptions::default()).unwrap();
    study.trials().to_vec()
}

#[test]
fn the_quickstart_importance_sees_the_eviction_policy_near_the_best() {
    let spec = Spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.yaml")).unwrap();
    let trials = run(&spec);
    let recs = recommend(&spec.name, &spec.space, &spec.objectives, &trials, 5);
    let eviction = recs.importance.iter().find(|i| i.param == "eviction").unwrap();
    // At the optimum lfu, lru and fifo differ by up to 15%: near the best that matters.
    assert!(eviction.near_best.unwrap() >= 0.01, "{:?}", recs.importance);
    // Distinct alternatives: the best with each eviction policy is on the list.
    let policies: std::collections::BTreeSet<String> =
        recs.recommendations.iter().map(|r| r.config["eviction"].to_string()).collect();
    assert_eq!(policies.len(), 3, "{:?}", recs.recommendations.iter().map(|r| &r.config).collect::<Vec<_>>());
}

#[test]
fn an_objective_that_never_varies_is_called_out() {
    // A pool spec that forgot `cost_per_connection`: the model reports cost 0 for every size.
    let text = r#"
name: pool-no-cost
space:
  - {name: pool_size, type: int, low: 1, high: 64, default: 32}
objectives:
  - {metric: wait_p99_ms, direction: minimize}
  - {metric: cost, direction: minimize}
evaluator:
  type: pool
  workload: {series: elb_request_count_8c0756.csv, scale: 50, scenario: raw, window: 2d}
  pool: {size: pool_size, service_time_ms: {series: ec2_request_latency_system_failure.csv}}
budget: {trials: 12}
"#;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/telemetry");
    let spec = Spec::parse(text, "pool.yaml", "pool", data).unwrap();
    let trials = run(&spec);
    let recs = recommend(&spec.name, &spec.space, &spec.objectives, &trials, 5);
    let w = recs.warnings.iter().find(|w| w.kind == WarningKind::ConstantObjective).expect("a warning");
    assert!(w.message.contains("`cost` was 0 in all 12"), "{}", w.message);
    assert!(recs.table(&spec.space).contains("warning: objective `cost`"));
}

#[test]
fn a_session_recommends_by_estimate_not_by_a_lucky_value() {
    use knobs::study::{Session, SessionOptions};
    let space = knobs::space::Space::builder().float("a", 0.0, 1.0).build().unwrap();
    let mut s = Session::new(space, "random", SessionOptions { seed: 2, ..Default::default() }).unwrap();
    let truth = |a: f64| 40.0 * (a - 0.5).powi(2);
    let mut lucky: Option<f64> = None;
    for i in 0..40u64 {
        for sug in s.ask(1).unwrap() {
            let Value::Float(a) = sug.params["a"] else { unreachable!() };
            // Noise of sd 1, and one far point that measures 9 below its truth.
            let h = ((i * 2 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            let mut v = truth(a) + 2.0 * (h - 0.5) * 1.7;
            if lucky.is_none() && (a - 0.5).abs() > 0.35 {
                lucky = Some(a);
                v = truth(a) - 12.0;
            }
            s.tell(sug.id, Some(v)).unwrap();
        }
    }
    let lucky = lucky.expect("the random search visits the edges");
    let (best, best_params) = s.best().unwrap();
    assert_eq!(best_params["a"], Value::Float(lucky), "the lucky value is the best single value ({best})");
    let recs = s.recommend(3);
    let rec = &recs.recommendations[0];
    assert_ne!(rec.config["a"], Value::Float(lucky), "{:?}", recs.recommendations);
    let Value::Float(a) = rec.config["a"] else { unreachable!() };
    assert!((a - 0.5).abs() < 0.2, "{:?}", rec.config);
}

#[test]
fn a_deterministic_evaluator_is_not_called_noisy_for_what_the_model_misses() {
    // Hartmann-6 by Sobol points: rugged enough that a GP fits some "noise" to it.
    let spec = Spec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/examples/sobol.yaml")).unwrap();
    let trials = run(&spec);
    let recs = knobs::study::recommendations(&spec, &trials, 5, false);
    assert_eq!(recs.noise.source, knobs::recommend::NoiseSource::Deterministic);
    assert!(!recs.noise.noisy && recs.noise.std == Some(0.0), "{:?}", recs.noise);
    assert!(recs.warnings.iter().all(|w| w.kind != WarningKind::MeasuredOnce), "{:?}", recs.warnings);
    // Ranked by what was measured: rank 1 is the best trial.
    let best = trials.iter().filter_map(|t| t.metrics.get("value")).fold(f64::INFINITY, |a, &b| a.min(b));
    assert_eq!(recs.recommendations[0].value, best);
}
