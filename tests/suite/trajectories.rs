//! The same spec and seed give the same trials as before the engine was
//! rewritten: for every optimizer, a short study through the run loop and a
//! short shared study through claims are compared, trial by trial, with runs
//! recorded in `tests/fixtures/trajectories.json` by the code before the
//! rewrite. A change that moves any optimizer's trajectory fails here; when a
//! change is meant to move it, record again with
//! `KNOBS_RECORD_TRAJECTORIES=1 cargo test --test suite trajectories` and say why
//! in the commit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use knobs::eval::{EvalContext, EvalError, Evaluator, Measurement};
use knobs::space::{Config, Value};
use knobs::spec::Spec;
use knobs::storage::{MemoryStorage, Storage};
use knobs::study::{Leases, Report, RunOptions, SharedStudy, Study};
use knobs::trial::Trial;
use serde_json::{Value as Json, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trajectories.json");

/// A mixed space: a float with a failing corner, a log-scaled int, a stepped
/// int, a categorical and a bool; `p99` feeds a constraint.
struct Landscape;

fn num(c: &Config, k: &str) -> f64 {
    match c.get(k) {
        Some(Value::Float(v)) => *v,
        Some(Value::Int(v)) => *v as f64,
        other => panic!("{k}: {other:?}"),
    }
}

impl Evaluator for Landscape {
    fn evaluate(&self, c: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> {
        let x = num(c, "x");
        if x > 1.6 {
            return Err(EvalError::Invalid("crashed in the corner".into()));
        }
        let pool = num(c, "pool").ln();
        let batch = num(c, "batch");
        let mode = match c.get("mode") {
            Some(Value::Str(s)) if s == "b" => 0.0,
            Some(Value::Str(s)) if s == "c" => 0.3,
            _ => 0.8,
        };
        let flag = if c.get("fast") == Some(&Value::Bool(true)) { -0.2 } else { 0.0 };
        let value = (x - 0.4).powi(2) + (pool - 3.0).powi(2) / 4.0 + ((batch - 96.0) / 64.0).powi(2) + mode + flag;
        let p99 = 10.0 + 4.0 * x;
        Ok(Measurement::new(BTreeMap::from([("value".into(), value), ("p99".into(), p99)]), Duration::ZERO))
    }

    fn deterministic(&self) -> bool {
        true
    }
}

fn spec(optimizer: &str, trials: u64) -> Spec {
    let text = format!(
        r#"
name: traj-{optimizer}
seed: 5
space:
  - {{name: x, type: float, low: -2, high: 2, default: 1.5}}
  - {{name: pool, type: int, low: 1, high: 400, log: true, default: 64}}
  - {{name: batch, type: int, low: 16, high: 512, step: 16, default: 32}}
  - {{name: mode, type: categorical, choices: [a, b, c], default: a}}
  - {{name: fast, type: bool, default: false}}
constraints: ["p99 <= 13"]
optimizer: {optimizer}
evaluator: {{type: command, command: ["true"]}}
budget: {{trials: {trials}}}
parallelism: 3
"#
    );
    Spec::parse(&text, "trajectories.yaml", "t", PathBuf::from(".")).unwrap_or_else(|e| panic!("{e}"))
}

/// Continuous space where `auto` goes through bayes → cmaes → gradient.
fn auto_switching() -> Spec {
    let text = r#"
name: traj-auto-switch
seed: 9
space:
  - {name: a, type: float, low: -2, high: 2, default: 1}
  - {name: b, type: float, low: -2, high: 2, default: 1}
optimizer: {name: auto, model_trials: 8}
evaluator: {type: command, command: ["true"]}
budget: {trials: 60}
parallelism: 2
"#;
    Spec::parse(text, "trajectories.yaml", "t", PathBuf::from(".")).unwrap_or_else(|e| panic!("{e}"))
}

struct Bowl2;
impl Evaluator for Bowl2 {
    fn evaluate(&self, c: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> {
        let (a, b) = (num(c, "a"), num(c, "b"));
        let v = (a - 0.3).powi(2) + 10.0 * (b - a * a).powi(2);
        Ok(Measurement::new(BTreeMap::from([("value".into(), v)]), Duration::ZERO))
    }

    fn deterministic(&self) -> bool {
        true
    }
}

fn record(trials: &[Trial]) -> Json {
    Json::Array(
        trials
            .iter()
            .map(|t| {
                json!({
                    "number": t.number,
                    "batch": t.batch,
                    "config": t.config,
                    "state": t.state.label(),
                    "value": t.metrics.get("value"),
                })
            })
            .collect(),
    )
}

fn run_loop(spec: Spec, evaluator: Arc<dyn Evaluator>) -> Json {
    let mut study = Study::open_with(spec, Arc::new(MemoryStorage::new()), evaluator, false).unwrap();
    study.run(&RunOptions::default()).unwrap();
    record(study.trials())
}

/// One worker claiming two trials at a time until the budget is used.
fn run_shared(spec: Spec) -> Json {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let name = spec.name.clone();
    let shared = SharedStudy::open(spec, storage.clone()).unwrap();
    let ctx = EvalContext { study: name.clone(), trial: 0, base_dir: PathBuf::from(".") };
    for _ in 0..100 {
        let claimed = shared.ask("w", 2, Leases::default()).unwrap();
        if claimed.trials.is_empty() {
            break;
        }
        for t in &claimed.trials {
            let report = match Landscape.evaluate(&t.config, &ctx) {
                Ok(m) => Report::Complete { metrics: m.metrics, elapsed_s: Some(0.0) },
                Err(e) => Report::Failed { reason: e.to_string(), metrics: BTreeMap::new(), elapsed_s: Some(0.0) },
            };
            shared.tell(t.number, t.epoch, report).unwrap();
        }
    }
    record(&storage.trials(&name).unwrap())
}

fn optimizers() -> Vec<&'static str> {
    vec!["random", "sobol", "genetic", "cmaes", "swarm", "annealing", "bayes", "gradient", "auto"]
}

fn trajectories() -> BTreeMap<String, Json> {
    let mut out = BTreeMap::new();
    for name in optimizers() {
        let trials = if matches!(name, "bayes" | "auto") { 18 } else { 40 };
        out.insert(format!("run/{name}"), run_loop(spec(name, trials), Arc::new(Landscape)));
        out.insert(format!("shared/{name}"), run_shared(spec(name, trials)));
    }
    out.insert("run/auto-switching".into(), run_loop(auto_switching(), Arc::new(Bowl2)));
    out
}

#[test]
fn every_optimizer_follows_the_recorded_trajectory() {
    let got = trajectories();
    if std::env::var_os("KNOBS_RECORD_TRAJECTORIES").is_some() {
        let text = serde_json::to_string_pretty(&got).unwrap();
        std::fs::write(FIXTURE, text + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let want: BTreeMap<String, Json> = serde_json::from_str(&text).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "recorded runs");
    let mut moved = Vec::new();
    for (key, w) in &want {
        let (Json::Array(g), Json::Array(w)) = (&got[key], w) else { panic!("{key}: not a list") };
        if g.len() != w.len() {
            moved.push(format!("{key}: {} trials, recorded {}", g.len(), w.len()));
            continue;
        }
        if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
            moved.push(format!("{key}: trial {i} is {}, recorded {}", g[i], w[i]));
        }
    }
    assert!(moved.is_empty(), "trajectories moved:\n{}", moved.join("\n"));
}
