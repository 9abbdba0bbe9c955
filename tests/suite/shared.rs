//! Shared studies with real worker processes: `knobs worker` × N on one study in
//! SQLite and in PostgreSQL (the server on 127.0.0.1:5432, or `KNOBS_TEST_POSTGRES`;
//! these tests fail, never skip, when it cannot be reached).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use knobs::storage::{self, Storage};
use knobs::trial::{Trial, TrialState};
use serde_json::Value;

fn knobs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_knobs"));
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

use crate::pg;

enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test's study lives: a SQLite file in `dir`, or a fresh PostgreSQL
/// schema (dropped when the returned guard goes away).
fn storage_url(backend: &Backend, dir: &Path, tag: &str) -> (String, Option<pg::TestSchema>) {
    match backend {
        Backend::Sqlite => (dir.join("shared.db").display().to_string(), None),
        Backend::Postgres => {
            let schema =
                pg::TestSchema::new_in(module_path!(), &format!("shared_{tag}")).expect("the test checked pg::skip");
            (schema.url.clone(), Some(schema))
        }
    }
}

fn open(url: &str) -> Box<dyn Storage> {
    storage::open(url).unwrap_or_else(|e| panic!("cannot open {url}: {e} (is PostgreSQL running on 127.0.0.1:5432?)"))
}

fn write_spec(dir: &Path, name: &str, evaluator: &str, trials: u64) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "name: {name}\nseed: 5\nspace:\n  - {{name: x0, type: float, low: -5, high: 10}}\n  - {{name: x1, type: float, low: 0, high: 15}}\n\
             objectives: [{{metric: value, direction: minimize}}]\nevaluator: {evaluator}\noptimizer: random\nbudget: {{trials: {trials}}}\n"
        ),
    )
    .unwrap();
    path
}

/// Every trial of the study, checked: numbers 0..n, each once.
fn numbered(trials: &[Trial], n: u64) {
    let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "numbers must be 0..{n} with no gap or duplicate");
}

/// `workers` processes × `each` trials on one study; every trial numbered once, none lost
/// (the reliability plan's R2 on SQLite, R4 with 16 workers on PostgreSQL). With `enqueued`,
/// that many configurations are enqueued first, and each must be claimed exactly once (R3).
fn workers_share_one_study(backend: Backend, workers: u64, each: u64, enqueued: usize) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("share{workers}x{each}q{enqueued}");
    let (url, _schema) = storage_url(&backend, dir.path(), &name);
    let total = workers * each;
    let spec = write_spec(dir.path(), &name, "{type: function, name: branin}", total);
    if enqueued > 0 {
        let spec = knobs::Spec::load(&spec).unwrap();
        let shared = knobs::study::SharedStudy::open(spec, std::sync::Arc::from(open(&url))).unwrap();
        for i in 0..enqueued {
            let config = knobs::space::Config::from_iter([
                ("x0".to_string(), knobs::space::Value::Float(-5.0 + 15.0 * i as f64 / enqueued as f64)),
                ("x1".to_string(), knobs::space::Value::Float(7.25)),
            ]);
            shared.enqueue(&config).unwrap();
        }
    }
    let children: Vec<Child> = (0..workers)
        .map(|i| {
            knobs()
                .args(["worker", "--batch", "5", "--json", "--trials"])
                .arg(each.to_string())
                .arg("--id")
                .arg(format!("w{i}"))
                .arg("--storage")
                .arg(&url)
                .arg(&spec)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "worker failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["complete"], each, "{v}");
        assert_eq!(v["refused"], 0, "{v}");
    }
    let trials = open(&url).trials(&name).unwrap();
    numbered(&trials, total);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete && t.epoch == 0));
    // Each enqueued configuration once (no ticket: the optimizer did not propose it), the rest
    // asked by the shared optimizer.
    let mut queued: Vec<f64> = trials.iter().filter(|t| t.ticket.is_none()).map(|t| t.x[0]).collect();
    queued.sort_by(f64::total_cmp);
    queued.dedup();
    assert_eq!(queued.len(), enqueued, "every enqueued configuration exactly once");
    assert_eq!(trials.iter().filter(|t| t.ticket.is_none()).count(), enqueued);
    // One more worker finds the budget used and exits at once with 0.
    let out = knobs().args(["worker", "--study", &name, "--json", "--storage"]).arg(&url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["complete"].as_u64(), v["stop"].as_str()), (Some(0), Some("budget")), "{v}");
}

#[test]
fn eight_workers_share_one_study_in_sqlite() {
    workers_share_one_study(Backend::Sqlite, 8, 250, 0);
}

#[test]
fn sixteen_workers_share_one_study_in_postgres() {
    if pg::skip(module_path!()) {
        return;
    }
    workers_share_one_study(Backend::Postgres, 16, 125, 0);
}

#[test]
fn eight_workers_claim_each_enqueued_configuration_once_in_sqlite() {
    workers_share_one_study(Backend::Sqlite, 8, 50, 200);
}

#[test]
fn eight_workers_claim_each_enqueued_configuration_once_in_postgres() {
    if pg::skip(module_path!()) {
        return;
    }
    workers_share_one_study(Backend::Postgres, 8, 50, 200);
}

/// An evaluator that takes `secs` per trial: value = x0.
fn slow_evaluator(dir: &Path, secs: f64) -> String {
    std::fs::write(dir.join("eval.sh"), "sleep \"$1\"; echo \"{\\\"value\\\": $2}\"\n").unwrap();
    format!("{{type: command, command: [sh, eval.sh, \"{secs}\", \"{{x0}}\"], timeout_s: 60}}")
}

/// Wait until `worker` holds a running trial; fail with its output if it exits or a minute passes.
fn wait_for_running(url: &str, study: &str, worker: &mut Child) {
    let start = Instant::now();
    loop {
        let last = match storage::open(url).and_then(|s| s.trials(study)) {
            Ok(trials) if trials.iter().any(|t| t.state == TrialState::Running) => return,
            Ok(trials) => format!("{} trials, none running", trials.len()),
            Err(e) => e.to_string(),
        };
        if let Ok(Some(status)) = worker.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(worker.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the worker exited ({status}) before a trial was seen running ({last}): {err}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no trial seen running within a minute: {last}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn worker(url: &str, spec: &Path, id: &str, grace: &str) -> Command {
    let mut c = knobs();
    c.args(["worker", "--batch", "1", "--json", "--grace", grace, "--id", id, "--storage"]).arg(url).arg(spec);
    c.current_dir(spec.parent().unwrap()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn killed_worker_trial_is_retried_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, _schema) = storage_url(&backend, dir.path(), "kill");
    let spec = write_spec(dir.path(), "kill", &slow_evaluator(dir.path(), 0.5), 5);
    let mut a = worker(&url, &spec, "a", "2s").spawn().unwrap();
    wait_for_running(&url, "kill", &mut a);
    unsafe { libc::kill(a.id() as i32, libc::SIGKILL) };
    a.wait().unwrap();
    let running: Vec<u64> = open(&url)
        .trials("kill")
        .unwrap()
        .iter()
        .filter(|t| t.state == TrialState::Running)
        .map(|t| t.number)
        .collect();
    assert_eq!(running.len(), 1, "the killed worker held one trial");
    let start = Instant::now();
    let out = worker(&url, &spec, "b", "2s").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["retried"], 1, "{v}");
    assert!(start.elapsed() >= Duration::from_secs(2), "the trial was taken before its grace ran out");
    let trials = open(&url).trials("kill").unwrap();
    numbered(&trials, 5);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete), "{trials:?}");
    let retried = &trials[running[0] as usize];
    assert_eq!(retried.epoch, 1, "re-leased exactly once: {retried:?}");
    assert_eq!(trials.iter().filter(|t| t.epoch > 0).count(), 1);
}

#[test]
fn killed_worker_trial_is_retried_once_in_sqlite() {
    killed_worker_trial_is_retried_once(Backend::Sqlite);
}

#[test]
fn killed_worker_trial_is_retried_once_in_postgres() {
    if pg::skip(module_path!()) {
        return;
    }
    killed_worker_trial_is_retried_once(Backend::Postgres);
}

/// A worker frozen (SIGSTOP) past the grace period loses its lease; when it wakes, its result is
/// refused, not counted twice.
fn late_result_of_a_stale_worker_is_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (url, _schema) = storage_url(&backend, dir.path(), "late");
    let spec = write_spec(dir.path(), "late", &slow_evaluator(dir.path(), 0.3), 2);
    let mut a = worker(&url, &spec, "a", "1s").spawn().unwrap();
    wait_for_running(&url, "late", &mut a);
    unsafe { libc::kill(a.id() as i32, libc::SIGSTOP) };
    let out = worker(&url, &spec, "b", "1s").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((b["complete"].as_u64(), b["retried"].as_u64()), (Some(2), Some(1)), "{b}");
    unsafe { libc::kill(a.id() as i32, libc::SIGCONT) };
    let out = a.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((a["complete"].as_u64(), a["refused"].as_u64()), (Some(0), Some(1)), "{a}");
    let trials = open(&url).trials("late").unwrap();
    numbered(&trials, 2);
    assert!(trials.iter().all(|t| t.state == TrialState::Complete));
    assert_eq!(trials.iter().map(|t| t.epoch).sum::<u64>(), 1);
}

#[test]
fn late_result_of_a_stale_worker_is_refused_in_sqlite() {
    late_result_of_a_stale_worker_is_refused(Backend::Sqlite);
}

#[test]
fn late_result_of_a_stale_worker_is_refused_in_postgres() {
    if pg::skip(module_path!()) {
        return;
    }
    late_result_of_a_stale_worker_is_refused(Backend::Postgres);
}

#[test]
fn joining_an_unknown_study_or_a_changed_spec_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("s.db").display().to_string();
    let out = knobs().args(["worker", "--study", "nope", "--storage"]).arg(&url).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("study `nope` does not exist"));
    let spec = write_spec(dir.path(), "same", "{type: function, name: branin}", 3);
    assert!(knobs().args(["worker", "--json", "--storage"]).arg(&url).arg(&spec).output().unwrap().status.success());
    let changed = write_spec(dir.path(), "same", "{type: function, name: branin}", 3);
    let text = std::fs::read_to_string(&changed).unwrap().replace("seed: 5", "seed: 6");
    std::fs::write(&changed, text).unwrap();
    let out = knobs().args(["worker", "--storage"]).arg(&url).arg(&changed).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was created with a different seed"));
    // Workers shared the study: `knobs run --resume` on it is refused (it would reclaim their trials).
    let spec = write_spec(dir.path(), "same", "{type: function, name: branin}", 3);
    let out =
        knobs().args(["run", "--resume", "--add-trials", "2", "--storage"]).arg(&url).arg(&spec).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is shared") && stderr.contains("knobs worker --study same"), "{stderr}");
}
