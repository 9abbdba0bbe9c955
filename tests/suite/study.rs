//! The study runner through the library: baseline first, parallel batches,
//! failures, constraints, stop conditions, determinism, replay.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use knobs::eval::{EvalContext, EvalError, Evaluator, Measurement};
use knobs::recommend::recommend;
use knobs::space::{Config, Value};
use knobs::spec::Spec;
use knobs::storage::{MemoryStorage, SqliteStorage, Storage};
use knobs::study::{RunOptions, StopReason, Study};
use knobs::trial::TrialState;

fn spec(extra: &str) -> Spec {
    let text = format!(
        r#"
name: s
seed: 11
space:
  - {{name: x, type: float, low: -2, high: 2, default: 1.5}}
  - {{name: y, type: float, low: -2, high: 2, default: -1.5}}
  - {{name: mode, type: categorical, choices: [a, b, c], default: a}}
evaluator: {{type: command, command: ["true"]}}
{extra}
"#
    );
    // The tests pass their own evaluator; the spec's only has to validate.
    Spec::parse(&text, "test.yaml", "s", PathBuf::from(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn x(c: &Config, k: &str) -> f64 {
    match c.get(k) {
        Some(Value::Float(v)) => *v,
        other => panic!("{k}: {other:?}"),
    }
}

/// Decides from the configuration and the call count whether an evaluation fails.
type FailIf = Box<dyn Fn(&Config, usize) -> Option<EvalError> + Send + Sync>;

/// Quadratic bowl with optimum (0.4, -0.3), mode b best; reports `value` and `p99`.
struct Bowl {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    sleep: Duration,
    fail_if: FailIf,
    seen: Mutex<Vec<Config>>,
}

impl Bowl {
    fn new() -> Self {
        Bowl {
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            sleep: Duration::ZERO,
            fail_if: Box::new(|_, _| None),
            seen: Mutex::new(Vec::new()),
        }
    }
}

impl Evaluator for Bowl {
    fn evaluate(&self, config: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.sleep);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(config.clone());
        if let Some(e) = (self.fail_if)(config, n) {
            return Err(e);
        }
        let mode = match config.get("mode") {
            Some(Value::Str(s)) if s == "b" => 0.0,
            _ => 0.5,
        };
        let v = (x(config, "x") - 0.4).powi(2) + (x(config, "y") + 0.3).powi(2) + mode;
        let metrics = BTreeMap::from([("value".to_string(), v), ("p99".to_string(), 10.0 + 5.0 * x(config, "x"))]);
        Ok(Measurement::new(metrics, Duration::from_millis(1)))
    }

    fn deterministic(&self) -> bool {
        true
    }
}

fn memory() -> Arc<dyn Storage> {
    Arc::new(MemoryStorage::new())
}

#[test]
fn baseline_first_then_search_improves_on_it() {
    let bowl = Arc::new(Bowl::new());
    let mut study = Study::open_with(spec("budget: {trials: 120}"), memory(), bowl.clone(), false).unwrap();
    let report = study.run(&RunOptions::default()).unwrap();
    assert_eq!(report.stop, StopReason::Trials);
    let trials = study.trials();
    assert_eq!(trials.len(), 120);
    assert!(trials[0].baseline);
    assert_eq!(trials[0].config.get("x"), Some(&Value::Float(1.5)));
    assert_eq!(bowl.seen.lock().unwrap()[0], trials[0].config, "the baseline is evaluated first");
    let s = study.spec();
    let recs = recommend("s", &s.space, &s.objectives, trials, 3);
    let best = &recs.recommendations[0];
    assert!(best.value < recs.baseline.as_ref().unwrap().value);
    assert!(best.improvement.as_ref().unwrap().percent.unwrap() > 50.0);
}

#[test]
fn batches_are_evaluated_in_parallel() {
    let mut bowl = Bowl::new();
    bowl.sleep = Duration::from_millis(30);
    let bowl = Arc::new(bowl);
    let mut study =
        Study::open_with(spec("budget: {trials: 25}\nparallelism: 4"), memory(), bowl.clone(), false).unwrap();
    study.run(&RunOptions::default()).unwrap();
    assert_eq!(study.trials().len(), 25);
    assert!(bowl.max_in_flight.load(Ordering::SeqCst) >= 2, "parallelism 4 never ran two evaluations at once");
    assert!(bowl.max_in_flight.load(Ordering::SeqCst) <= 4, "more evaluations at once than parallelism allows");
}

#[test]
fn failed_trials_are_recorded_and_the_study_goes_on() {
    let mut bowl = Bowl::new();
    bowl.fail_if = Box::new(|c, n| {
        if x(c, "x") > 1.0 && n > 0 {
            Some(EvalError::Invalid("crashed: exit status 139".into()))
        } else if n % 7 == 3 {
            Some(EvalError::Transient("busy".into())) // retried, then succeeds on the next call
        } else {
            None
        }
    });
    let bowl = Arc::new(bowl);
    let mut study = Study::open_with(spec("budget: {trials: 80}"), memory(), bowl, false).unwrap();
    study.run(&RunOptions::default()).unwrap();
    let trials = study.trials();
    assert_eq!(trials.len(), 80);
    let failed: Vec<_> = trials.iter().filter(|t| matches!(t.state, TrialState::Failed { .. })).collect();
    assert!(!failed.is_empty());
    for t in failed {
        let TrialState::Failed { reason } = &t.state else { unreachable!() };
        assert!(reason.contains("exit status 139"), "{reason}");
    }
}

#[test]
fn too_many_consecutive_failures_stop_the_study_with_the_reason() {
    let mut bowl = Bowl::new();
    bowl.fail_if = Box::new(|_, _| Some(EvalError::Invalid("no route to database".into())));
    let mut study =
        Study::open_with(spec("budget: {trials: 100, max_consecutive_failures: 5}"), memory(), Arc::new(bowl), false)
            .unwrap();
    let report = study.run(&RunOptions::default()).unwrap();
    match report.stop {
        StopReason::Failures { consecutive, last_reason } => {
            assert_eq!(consecutive, 5);
            assert!(last_reason.contains("no route to database"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(study.trials().len(), 5);
}

#[test]
fn a_fatal_evaluator_error_stops_the_run_with_an_error() {
    let mut bowl = Bowl::new();
    bowl.fail_if = Box::new(|_, n| (n == 3).then(|| EvalError::Fatal("program not found".into())));
    let mut study = Study::open_with(spec("budget: {trials: 100}"), memory(), Arc::new(bowl), false).unwrap();
    let err = study.run(&RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("program not found"), "{err}");
}

#[test]
fn constraints_make_trials_infeasible_and_they_are_never_recommended() {
    let bowl = Arc::new(Bowl::new());
    // p99 = 10 + 5x <= 11  <=>  x <= 0.2: the unconstrained optimum x = 0.4 is infeasible.
    let s = spec("budget: {trials: 150}\nobjectives: [value]\nconstraints: [\"p99 <= 11\"]");
    let mut study = Study::open_with(s, memory(), bowl, false).unwrap();
    study.run(&RunOptions::default()).unwrap();
    let s = study.spec();
    let recs = recommend("s", &s.space, &s.objectives, study.trials(), 5);
    assert!(!recs.recommendations.is_empty());
    for r in &recs.recommendations {
        assert!(r.metrics["p99"] <= 11.0, "recommended an infeasible configuration: {:?}", r.config);
    }
    assert!(!recs.baseline.unwrap().feasible, "the baseline (x = 1.5, p99 = 17.5) breaks the constraint");
}

#[test]
fn stop_conditions_target_patience_and_time() {
    let s = spec("budget: {trials: 1000, target: 0.6}");
    let mut study = Study::open_with(s, memory(), Arc::new(Bowl::new()), false).unwrap();
    assert_eq!(study.run(&RunOptions::default()).unwrap().stop, StopReason::Target);
    assert!(study.trials().len() < 1000);

    let s = spec("budget: {trials: 5000, patience: 15}");
    let mut study = Study::open_with(s, memory(), Arc::new(Bowl::new()), false).unwrap();
    assert_eq!(study.run(&RunOptions::default()).unwrap().stop, StopReason::Patience);

    let mut bowl = Bowl::new();
    bowl.sleep = Duration::from_millis(20);
    let s = spec("budget: {trials: 100000, time: 0.3s}");
    let mut study = Study::open_with(s, memory(), Arc::new(bowl), false).unwrap();
    assert_eq!(study.run(&RunOptions::default()).unwrap().stop, StopReason::Time);
}

#[test]
fn same_spec_and_seed_give_the_same_trials() {
    let run = |seed: u64| {
        let mut s = spec("budget: {trials: 60}\nparallelism: 3");
        s.seed = seed;
        let mut study = Study::open_with(s, memory(), Arc::new(Bowl::new()), false).unwrap();
        study.run(&RunOptions::default()).unwrap();
        study.trials().iter().map(|t| (t.config.clone(), t.metrics.clone())).collect::<Vec<_>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn resume_adds_trials_and_replays_when_the_snapshot_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let open = || -> Arc<dyn Storage> { Arc::new(SqliteStorage::open(&db).unwrap()) };
    let reference = {
        let mut st = Study::open_with(spec("budget: {trials: 70}"), memory(), Arc::new(Bowl::new()), false).unwrap();
        st.run(&RunOptions::default()).unwrap();
        st.trials().iter().map(|t| t.config.clone()).collect::<Vec<_>>()
    };
    {
        let mut st = Study::open_with(spec("budget: {trials: 70}"), open(), Arc::new(Bowl::new()), false).unwrap();
        st.run(&RunOptions { trials: Some(30), ..Default::default() }).unwrap();
        assert_eq!(st.trials().len(), 30);
    }
    // Refused without resume.
    let err = Study::open_with(spec("budget: {trials: 70}"), open(), Arc::new(Bowl::new()), false).err().unwrap();
    assert!(err.to_string().contains("--resume"));
    // Drop every snapshot: the optimizer must rebuild itself from the trials.
    rusqlite::Connection::open(&db).unwrap().execute("DELETE FROM snapshots", []).unwrap();
    let mut st = Study::open_with(spec("budget: {trials: 70}"), open(), Arc::new(Bowl::new()), true).unwrap();
    st.run(&RunOptions { add_trials: Some(40), ..Default::default() }).unwrap();
    let got: Vec<Config> = st.trials().iter().map(|t| t.config.clone()).collect();
    assert_eq!(got.len(), 70);
    assert_eq!(got, reference, "a replayed study must continue the same trajectory");
}

#[test]
fn a_changed_space_is_refused_on_resume() {
    let storage = memory();
    {
        let mut st =
            Study::open_with(spec("budget: {trials: 10}"), storage.clone(), Arc::new(Bowl::new()), false).unwrap();
        st.run(&RunOptions::default()).unwrap();
    }
    let mut changed = spec("budget: {trials: 10}");
    changed.space.params.pop();
    let err = Study::open_with(changed, storage, Arc::new(Bowl::new()), true).err().unwrap().to_string();
    assert!(err.contains("space"), "{err}");
}
