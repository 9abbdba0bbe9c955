//! The confirmation phase through the library and the CLI: the best
//! candidates and the baseline re-measured side by side on a system that
//! drifts, rounded configurations, pairing that cancels the drift, and a
//! deterministic evaluator that gets its budget back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use knobs::eval::{EvalContext, EvalError, Evaluator, Measurement};
use knobs::recommend::recommend;
use knobs::space::{Config, Value};
use knobs::spec::Spec;
use knobs::storage::{MemoryStorage, Storage};
use knobs::study::{ConfirmStop, RunOptions, Study};

fn spec(extra: &str) -> Spec {
    let text = format!(
        r#"
name: drift
seed: 4
space:
  - {{name: a, type: float, low: 0, high: 1, default: 0.9}}
  - {{name: b, type: float, low: 0, high: 1, default: 0.5}}
evaluator: {{type: command, command: ["true"]}}
optimizer: sobol
{extra}
"#
    );
    Spec::parse(&text, "test.yaml", "drift", PathBuf::from(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn f(c: &Config, k: &str) -> f64 {
    match c.get(k) {
        Some(Value::Float(v)) => *v,
        other => panic!("{k}: {other:?}"),
    }
}

/// The true (noise- and drift-free) latency of a configuration.
fn truth(c: &Config) -> f64 {
    100.0 * (f(c, "a") - 0.3).powi(2) + 10.0 * (f(c, "b") - 0.5).powi(2) + 20.0
}

/// A system that slows down by 1 per trial (so later trials look worse than they are), with
/// measurement noise of sd ≈ 1 drawn from the trial number.
struct Drifting {
    deterministic: bool,
}

impl Evaluator for Drifting {
    fn evaluate(&self, config: &Config, ctx: &EvalContext) -> Result<Measurement, EvalError> {
        // A small hash of the trial number → two uniforms → one normal deviate.
        let h = |k: u64| ((ctx.trial * 2 + k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let noise = (-2.0 * h(1).max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * h(2)).cos();
        let v = if self.deterministic { truth(config) } else { truth(config) + ctx.trial as f64 + noise };
        Ok(Measurement::new(BTreeMap::from([("value".to_string(), v)]), Duration::from_millis(1)))
    }
}

#[test]
fn confirmation_measures_the_best_beside_the_baseline_and_pairing_cancels_drift() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let spec = spec("budget: {trials: 40}\nconfirm: {top: 2, repeats: 4}");
    let mut study =
        Study::open_with(spec.clone(), storage, Arc::new(Drifting { deterministic: false }), false).unwrap();
    let report = study.run(&RunOptions::default()).unwrap();
    let trials = study.trials();
    let c = report.confirmation.expect("a noisy evaluator is confirmed");
    // Reserved: 25% of 40 in whole rounds of baseline + 2 candidates: 4 rounds, 12 trials; a
    // ranking settled sooner gives the rest back to the search.
    assert!(c.rounds >= 3 && c.trials <= 12, "{c:?}");
    let end = 28 + c.trials as usize;
    assert!(c.stop.returns_budget() && c.trials < 12, "this drift settles before the phase's budget: {c:?}");
    assert_eq!(trials.len(), 40, "the search took what the phase left");
    let confirm: Vec<_> = trials.iter().filter(|t| t.confirm).collect();
    assert_eq!(confirm.len() as u64, c.trials);
    assert!(trials[..28].iter().all(|t| !t.confirm), "the search comes first");
    assert!(trials[28..end].iter().all(|t| t.confirm), "then the phase, in one piece");
    assert!(trials[end..].iter().all(|t| !t.confirm), "then the search again, with what the phase left");
    let mut batches: BTreeMap<u64, Vec<&knobs::trial::Trial>> = BTreeMap::new();
    for t in &confirm {
        batches.entry(t.batch).or_default().push(t);
    }
    for round in batches.values() {
        assert!(round[0].baseline, "each round measures the baseline first");
        for t in &round[1..] {
            for k in ["a", "b"] {
                let v = f(&t.config, k);
                assert_eq!((v * 1000.0).round() / 1000.0, v, "confirmed values are rounded: {v}");
            }
        }
    }
    let recs = recommend("drift", &spec.space, &spec.objectives, trials, 3);
    let base = recs.baseline.as_ref().unwrap();
    let best = &recs.recommendations[0];
    let imp = best.improvement.as_ref().unwrap();
    assert!(imp.paired_rounds >= 3, "{imp:?}");
    let true_gain = truth(&base.config) - truth(&best.config);
    assert!((imp.absolute - true_gain).abs() < 4.0, "paired estimate {} vs true {true_gain}", imp.absolute);
    let [lo, hi] = imp.interval.unwrap();
    assert!(lo < true_gain + 4.0 && hi > true_gain - 4.0 && lo > 0.0, "[{lo}, {hi}] vs {true_gain}");
    assert!(imp.probability_better.unwrap() > 0.99);
    // The plain difference of means carries the drift (the baseline was first measured at
    // trial 0, the candidate only later): pairing is what removes it.
    let unpaired = base.value - best.value;
    assert!((unpaired - true_gain).abs() > 4.0, "the test needs drift: {unpaired} vs {true_gain}");
    assert!(recs.noise.noisy && recs.noise.repeated >= 3, "{:?}", recs.noise);
}

#[test]
fn a_deterministic_evaluator_gets_its_confirmation_budget_back() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let spec = spec("budget: {trials: 30}");
    let mut study = Study::open_with(spec.clone(), storage, Arc::new(Drifting { deterministic: true }), false).unwrap();
    let report = study.run(&RunOptions::default()).unwrap();
    let c = report.confirmation.expect("an evaluator that does not say it is deterministic is confirmed");
    assert_eq!((c.rounds, c.stop), (1, ConfirmStop::Deterministic));
    assert_eq!(study.trials().len(), 30, "the search gets the rest of the budget back");
    assert_eq!(study.trials().iter().filter(|t| t.confirm).count(), 4);
    let recs = recommend("drift", &spec.space, &spec.objectives, study.trials(), 3);
    assert_eq!(recs.noise.std, Some(0.0), "identical repeats mean no noise: {:?}", recs.noise);
    assert!(!recs.noise.noisy);
}

#[test]
fn confirmation_can_be_turned_off_and_a_stored_study_confirmed_later() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let spec = spec("budget: {trials: 24}\nconfirm: false");
    let evaluator = Arc::new(Drifting { deterministic: false });
    let mut study = Study::open_with(spec.clone(), storage.clone(), evaluator.clone(), false).unwrap();
    let report = study.run(&RunOptions::default()).unwrap();
    assert!(report.confirmation.is_none());
    assert!(study.trials().iter().all(|t| !t.confirm));
    drop(study);
    let mut study = Study::open_with(spec.clone(), storage, evaluator, true).unwrap();
    let c = study.confirm(12, false).unwrap();
    assert!(c.rounds >= 3 && c.trials <= 12, "{c:?}");
    let recs = recommend("drift", &spec.space, &spec.objectives, study.trials(), 3);
    assert!(recs.recommendations[0].improvement.as_ref().unwrap().paired_rounds >= 2);
}

#[test]
fn knobs_confirm_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.yaml");
    let db = tmp.path().join("k.db");
    let knobs = || std::process::Command::new(env!("CARGO_BIN_EXE_knobs"));
    let run = knobs()
        .args(["-q", "run"])
        .arg(&spec)
        .args(["--trials", "30", "--plots", "none", "--json", "--storage"])
        .arg(&db)
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(v["run"].get("confirmation").is_none(), "a workload model is deterministic: no confirmation");
    let out = knobs()
        .args(["-q", "confirm", "quickstart", "--plots", "none", "--json", "--storage"])
        .arg(&db)
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["confirmation"]["stop"], "deterministic", "{v}");
    assert_eq!(v["confirmation"]["trials"], 4, "{v}");
    assert_eq!(v["noise"]["std"], 0.0, "{v}");
    let bad = knobs().args(["confirm", "quickstart", "--top", "0", "--storage"]).arg(&db).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--top"));
}

/// Stops the run (as Ctrl-C does) once trial `at` has been measured.
struct StopAt {
    inner: Drifting,
    at: u64,
    flag: std::sync::Mutex<Option<Arc<std::sync::atomic::AtomicBool>>>,
}

impl Evaluator for StopAt {
    fn evaluate(&self, config: &Config, ctx: &EvalContext) -> Result<Measurement, EvalError> {
        if ctx.trial == self.at
            && let Some(flag) = self.flag.lock().unwrap().as_ref()
        {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.evaluate(config, ctx)
    }
}

#[test]
fn a_run_interrupted_mid_confirmation_resumes_the_same_phase() {
    let spec = spec("budget: {trials: 40}\nconfirm: {top: 2, repeats: 4}");
    let reference = {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let mut study =
            Study::open_with(spec.clone(), storage, Arc::new(Drifting { deterministic: false }), false).unwrap();
        study.run(&RunOptions::default()).unwrap();
        study.trials().to_vec()
    };
    assert!(reference.iter().filter(|t| t.confirm).count() >= 6);
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let stopper = Arc::new(StopAt { inner: Drifting { deterministic: false }, at: 31, flag: Default::default() });
    let mut study = Study::open_with(spec.clone(), storage.clone(), stopper.clone(), false).unwrap();
    *stopper.flag.lock().unwrap() = Some(study.stop_flag());
    let first = study.run(&RunOptions::default()).unwrap();
    let c = first.confirmation.expect("the interruption came during confirmation");
    assert_eq!(c.stop, ConfirmStop::Interrupted);
    let cut = study.trials().len();
    assert!(cut < reference.len() && study.trials()[cut - 1].confirm, "stopped mid-phase at {cut}");
    drop(study);
    let mut study = Study::open_with(spec, storage, Arc::new(Drifting { deterministic: false }), true).unwrap();
    study.run(&RunOptions::default()).unwrap();
    let strip = |v: &[knobs::trial::Trial]| {
        v.iter().map(|t| (t.config.clone(), t.metrics.clone(), t.baseline, t.confirm)).collect::<Vec<_>>()
    };
    assert_eq!(strip(study.trials()), strip(&reference), "the resumed phase measures what the uninterrupted one did");
}

/// Measures `10·((a−0.3)² + (b−0.3)²)` with noise of sd ≈ 0.3 and a drift of +0.05 per
/// measurement, as a caller of a [`Session`] would; returns the configurations asked, in order.
fn drive_session(s: &mut knobs::study::Session, noisy: bool) -> Vec<Config> {
    let mut asked = Vec::new();
    for round in 0..200u64 {
        let batch = s.ask(8).unwrap();
        if batch.is_empty() {
            break;
        }
        for (k, sug) in batch.into_iter().enumerate() {
            let (Value::Float(a), Value::Float(b)) = (&sug.params["a"], &sug.params["b"]) else { unreachable!() };
            let mut v = 10.0 * ((a - 0.3).powi(2) + (b - 0.3).powi(2));
            if noisy {
                let n = asked.len() as u64;
                let h = ((n * 31 + round + k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                    / (1u64 << 53) as f64;
                v += 0.05 * n as f64 + (h - 0.5);
            }
            asked.push(sug.params.clone());
            s.tell(sug.id, Some(v)).unwrap();
        }
    }
    asked
}

#[test]
fn a_session_with_a_budget_confirms_its_best_beside_the_baseline() {
    use knobs::study::{Session, SessionOptions};
    let space = knobs::space::Space::builder().float("a", 0.0, 1.0).default(0.9).float("b", 0.0, 1.0).default(0.9);
    let options = SessionOptions { seed: 3, budget: Some(40), ..Default::default() };
    let mut s = Session::new(space.build().unwrap(), "random", options).unwrap();
    let asked = drive_session(&mut s, true);
    assert_eq!(asked[0]["a"], Value::Float(0.9), "the baseline is measured first");
    assert!(asked.len() <= 40, "{} asked", asked.len());
    let stop = s.confirmation().expect("a confirmation phase ran");
    assert_ne!(stop, ConfirmStop::Deterministic);
    let base_measured = asked.iter().filter(|c| c["a"] == Value::Float(0.9) && c["b"] == Value::Float(0.9)).count();
    assert!(base_measured >= 3, "the baseline is re-measured in every round: {base_measured}");
    let recs = s.recommend(3);
    let top = &recs.recommendations[0];
    assert!(top.evaluations >= 3, "{top:?}");
    let imp = top.improvement.as_ref().expect("compared with the baseline");
    assert!(imp.paired_rounds >= 3 && imp.probability_better.unwrap() > 0.95, "{imp:?}");
}

#[test]
fn a_deterministic_session_gets_its_confirmation_budget_back() {
    use knobs::study::{Session, SessionOptions};
    let space = knobs::space::Space::builder().float("a", 0.0, 1.0).float("b", 0.0, 1.0).build().unwrap();
    let options = SessionOptions { seed: 5, budget: Some(30), ..Default::default() };
    let mut s = Session::new(space, "random", options).unwrap();
    let asked = drive_session(&mut s, false);
    assert_eq!(asked.len(), 30, "the whole budget is used");
    assert_eq!(s.confirmation(), Some(ConfirmStop::Deterministic));
    let distinct: std::collections::BTreeSet<String> =
        asked.iter().map(|c| serde_json::to_string(c).unwrap()).collect();
    // One round of three repeats, the rest new points.
    assert_eq!(distinct.len(), 27, "{asked:?}");
    // Told it is exact, it spends nothing on repeats.
    let options = SessionOptions { seed: 5, budget: Some(30), deterministic: true, ..Default::default() };
    let space = knobs::space::Space::builder().float("a", 0.0, 1.0).float("b", 0.0, 1.0).build().unwrap();
    let mut s = Session::new(space, "random", options).unwrap();
    let asked = drive_session(&mut s, false);
    let distinct: std::collections::BTreeSet<String> =
        asked.iter().map(|c| serde_json::to_string(c).unwrap()).collect();
    assert_eq!((asked.len(), distinct.len(), s.confirmation()), (30, 30, None));
}

/// Three workers share one study, each claiming one trial at a time and reporting in turn (so
/// that rounds are handed out over several claims); the values drift and are noisy unless
/// `deterministic`. Returns the study's trials.
fn shared_run(deterministic: bool) -> Vec<knobs::trial::Trial> {
    shared_run_with(if deterministic { 0.0 } else { 1.0 })
}

/// [`shared_run`] with drift and noise scaled by `scale` (0: exact measurements).
fn shared_run_with(scale: f64) -> Vec<knobs::trial::Trial> {
    use knobs::study::{Leases, Report, SharedStudy};
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let shared = SharedStudy::open(spec("budget: {trials: 48}"), storage).unwrap();
    let mut running: Vec<knobs::trial::Trial> = Vec::new();
    let mut told = 0u64;
    for step in 0..2000 {
        let claimed = shared.ask(&format!("w{}", step % 3), 1, Leases::default()).unwrap();
        running.extend(claimed.trials);
        if claimed.exhausted && running.is_empty() {
            break;
        }
        // Report the oldest running trial every other step, so that up to three are out.
        if (step % 2 == 1 || running.len() >= 3) && !running.is_empty() {
            let t = running.remove(0);
            let h = ((told * 2 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            let v = truth(&t.config) + scale * (0.3 * told as f64 + 2.0 * h);
            told += 1;
            let metrics = BTreeMap::from([("value".to_string(), v)]);
            shared.tell(t.number, t.epoch, Report::Complete { metrics, elapsed_s: None }).unwrap();
        }
    }
    assert!(running.is_empty(), "every claimed trial was reported");
    shared.storage().trials("drift").unwrap()
}

#[test]
fn workers_of_a_shared_study_confirm_round_by_round() {
    let trials = shared_run(false);
    assert!(trials.len() <= 48, "{} trials", trials.len());
    let first = trials.iter().position(|t| t.confirm).expect("a confirmation phase");
    assert!(trials[first..].iter().all(|t| t.confirm), "no search trial after the phase began");
    // Each round (a batch of confirmation trials) has the baseline once and distinct candidates.
    let mut rounds: BTreeMap<u64, Vec<&knobs::trial::Trial>> = BTreeMap::new();
    for t in &trials[first..] {
        rounds.entry(t.batch).or_default().push(t);
    }
    assert!(rounds.len() >= 3, "{} rounds", rounds.len());
    for (batch, round) in &rounds {
        assert_eq!(round.iter().filter(|t| t.baseline).count(), 1, "round {batch}");
        let keys: std::collections::BTreeSet<String> =
            round.iter().map(|t| serde_json::to_string(&t.config).unwrap()).collect();
        assert_eq!(keys.len(), round.len(), "round {batch} measures each configuration once");
    }
    let spec = spec("budget: {trials: 48}");
    let recs = knobs::study::recommendations(&spec, &trials, 3, false);
    let imp = recs.recommendations[0].improvement.as_ref().unwrap();
    assert!(imp.paired_rounds >= 3, "{imp:?}");
}

#[test]
fn a_shared_study_whose_phase_settles_early_searches_with_the_rest() {
    // Noise and drift a hundredth of the workers' above: three rounds settle the top.
    let trials = shared_run_with(0.01);
    assert_eq!(trials.len(), 48, "the whole budget is used");
    let first = trials.iter().position(|t| t.confirm).expect("a confirmation phase");
    let end = first + trials[first..].iter().position(|t| !t.confirm).expect("search trials after the phase");
    assert!(end - first <= 12, "the phase took {} trials, less than its share", end - first);
    assert!(trials[end..].iter().all(|t| !t.confirm), "the rest went to the search, not to a second phase");
}

#[test]
fn a_deterministic_shared_study_gets_its_confirmation_budget_back() {
    let trials = shared_run(true);
    assert_eq!(trials.len(), 48, "the whole budget is used");
    // At most two rounds of the baseline and three candidates (the first measures rounded
    // candidates, the second finds the repeats identical), then the search again.
    let confirmed = trials.iter().filter(|t| t.confirm).count();
    assert!((1..=8).contains(&confirmed), "{confirmed} confirmation trials");
    assert!(!trials[47].confirm, "the search took the rest of the budget");
}

#[test]
fn a_lucky_single_measurement_is_confirmed_not_trusted() {
    use knobs::study::{Session, SessionOptions};
    let space = knobs::space::Space::builder().float("a", 0.0, 1.0).default(0.95).build().unwrap();
    let confirm = knobs::spec::Confirm { top: 2, ..Default::default() };
    let options = SessionOptions { seed: 2, budget: Some(40), confirm, ..Default::default() };
    let mut s = Session::new(space.clone(), "random", options).unwrap();
    let truth = |a: f64| 40.0 * (a - 0.5).powi(2);
    let (mut lucky, mut n) = (None, 0u64);
    let mut confirmed: Vec<Config> = Vec::new();
    loop {
        let batch = s.ask(1).unwrap();
        let Some(sug) = batch.first() else { break };
        let a = f(&sug.params, "a");
        let h = ((n * 2 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let mut v = truth(a) + 2.0 * (h - 0.5);
        // One far point, in the search, measures 12 below its truth: the best single value.
        if n > 0 && n < 28 && lucky.is_none() && (a - 0.5).abs() > 0.3 {
            lucky = Some(sug.params.clone());
            v = truth(a) - 12.0;
        }
        if n >= 28 {
            confirmed.push(sug.params.clone());
        }
        n += 1;
        s.tell(sug.id, Some(v)).unwrap();
    }
    let lucky = space.round(&lucky.expect("the random search visits the edges"));
    assert!(confirmed.contains(&lucky), "the best single value is re-measured: {lucky:?} not in {confirmed:?}");
    let rec = &s.recommend(2).recommendations[0];
    assert!((f(&rec.config, "a") - 0.5).abs() < 0.2, "its repeats show it is not the best: {:?}", rec.config);
}

#[test]
fn a_worker_that_saw_the_study_before_the_phase_joins_it_after_one_empty_claim() {
    use knobs::study::{Leases, Report, SharedStudy};
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let a = SharedStudy::open(spec("budget: {trials: 48}"), storage.clone()).unwrap();
    let b = SharedStudy::join("drift", storage.clone(), PathBuf::from(".")).unwrap();
    let tell = |s: &SharedStudy, t: &knobs::trial::Trial| {
        let metrics = BTreeMap::from([("value".to_string(), truth(&t.config) + (t.number % 3) as f64)]);
        s.tell(t.number, t.epoch, Report::Complete { metrics, elapsed_s: None }).unwrap();
    };
    // b claims once early; a then runs the whole search.
    for t in b.ask("b", 1, Leases::default()).unwrap().trials {
        tell(&b, &t);
    }
    // 48 trials keep 3 rounds of the baseline and 3 candidates: the search takes 36.
    while storage.trials("drift").unwrap().len() < 36 {
        a.ask("a", 4, Leases::default()).unwrap().trials.iter().for_each(|t| tell(&a, t));
    }
    let before = storage.trials("drift").unwrap();
    assert!(before.len() == 36 && before.iter().all(|t| !t.confirm), "the search's share is used");
    // b does not know the search is over: its claim capped at the search's share is empty,
    // and not exhausted; its next claim is a confirmation trial.
    let first = b.ask("b", 1, Leases::default()).unwrap();
    assert!(first.trials.is_empty() && !first.exhausted, "{first:?}");
    let second = b.ask("b", 1, Leases::default()).unwrap();
    assert!(second.trials.len() == 1 && second.trials[0].confirm, "{second:?}");
}
