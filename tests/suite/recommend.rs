//! Recommendations on the shipped examples: importance near the best sees
//! the quickstart's eviction policy, and an objective that never varies is
//! called out.

use std::path::Path;
use std::sync::Arc;

use knobs::recommend::{WarningKind, recommend};
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
    assert!(recs.recommendations.iter().all(|r| r.similar < trials.len()));
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
