//! The storage conformance suite: every backend must pass every case in
//! `cases`, plus the SQLite-only and PostgreSQL-only tests at the bottom
//! (files, schema versions, concurrency across handles, durability settings).
//!
//! PostgreSQL tests need a server: `KNOBS_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test works in a fresh
//! schema of its own and drops it at the end; without a server they fail.

use std::collections::BTreeMap;
use std::path::Path;

use knobs::Error;
use knobs::optim::Snapshot;
use knobs::space::{Config, Value};
use knobs::storage::{
    self, ClaimPlan, ClaimRequest, ClaimState, Finished, MemoryStorage, NewTrial, Owner, PostgresStorage,
    SnapshotPoint, SqliteStorage, StateFilter, Storage, StoredSnapshot, TrialPage,
};
use knobs::trial::TrialState;

/// Moves a study's clock readings this many seconds into the past.
type Ager = Box<dyn Fn(&str, f64)>;

/// A backend under test; keeps its temporary directory or schema alive
/// (fields drop in order: the storage before what it lives in).
struct Backend {
    storage: std::sync::Arc<dyn Storage>,
    /// Move every clock reading of a study (trial heartbeats, the run lock's
    /// heartbeat, idempotency keys) this many seconds into the past.
    age: Ager,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<pg::TestSchema>,
}

fn memory(_case: &str) -> Option<Backend> {
    let storage = std::sync::Arc::new(MemoryStorage::new());
    let aged = storage.clone();
    let age = Box::new(move |study: &str, secs: f64| aged.age(study, secs));
    Some(Backend { storage, age, _dir: None, _schema: None })
}

fn sqlite(_case: &str) -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("knobs.db");
    let storage = std::sync::Arc::new(SqliteStorage::open(&path).expect("open sqlite"));
    let age = Box::new(move |study: &str, secs: f64| {
        let shift = |table: &str, column: &str| {
            let sql = format!(
                "UPDATE {table} SET {column} = strftime('%Y-%m-%dT%H:%M:%fZ', {column}, ?2)
                 WHERE study_id = (SELECT id FROM studies WHERE name = ?1)"
            );
            raw(&path).execute(&sql, rusqlite::params![study, format!("-{secs} seconds")]).unwrap();
        };
        shift("trials", "heartbeat_at");
        shift("study_locks", "heartbeat_at");
        shift("claim_keys", "created_at");
    });
    Some(Backend { storage, age, _dir: Some(dir), _schema: None })
}

/// `None` when the PostgreSQL tests are skipped (see `pg`).
fn postgres(case: &str) -> Option<Backend> {
    let schema = pg::TestSchema::new_in(module_path!(), case)?;
    let storage = std::sync::Arc::new(schema.open());
    let name = schema.name.clone();
    let age = Box::new(move |study: &str, secs: f64| {
        let raw = pg::Raw::connect(&name);
        for (table, column) in
            [("trials", "heartbeat_at"), ("study_locks", "heartbeat_at"), ("claim_keys", "created_at")]
        {
            raw.must(&format!(
                "UPDATE {table} SET {column} = {column} - make_interval(secs => {secs})
                 WHERE study_id = (SELECT id FROM studies WHERE name = '{study}')"
            ));
        }
    });
    Some(Backend { storage, age, _dir: None, _schema: Some(schema) })
}

/// Runs every listed case on every listed backend, one `#[test]` each.
macro_rules! conformance {
    (backends: [$($backend:ident),* $(,)?], cases: $cases:tt) => {
        $( conformance!(@one $backend, $cases); )*
    };
    (@one $backend:ident, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let Some(b) = super::$backend(stringify!($case)) else { return };
                    super::cases::$case(&*b.storage);
                }
            )*
        }
    };
}

/// Runs every listed case that needs time to pass on every listed backend.
macro_rules! timed_conformance {
    (backends: [$($backend:ident),* $(,)?], cases: $cases:tt) => {
        $( timed_conformance!(@one $backend, $cases); )*
    };
    (@one $backend:ident, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let Some(b) = super::super::$backend(stringify!($case)) else { return };
                    super::super::timed::$case(&*b.storage, &*b.age);
                }
            )*
        }
    };
}

/// Cases that need time to pass: `age(study, seconds)` moves the study's
/// clock readings into the past.
mod timed {
    use super::*;
    use knobs::storage::{CLAIM_KEY_DAYS, LOCK_GRACE};

    /// Past the retention, a retried key claims anew at once (every backend
    /// drops expired keys before looking one up); a fresh key still replays.
    pub fn expired_claim_keys_claim_anew(s: &dyn Storage, age: &dyn Fn(&str, f64)) {
        s.open_study("a", &spec("a")).unwrap();
        let calls = std::cell::Cell::new(0);
        let first = s.claim_keyed("a", &claim_req("w1"), Some("old"), &mut plan_n(1, &calls)).unwrap();
        s.finish_trial("a", &complete(first[0].number, 0, 1.0), None).unwrap();
        age("a", 86_400.0 * f64::from(CLAIM_KEY_DAYS) + 60.0);
        let retried = s.claim_keyed("a", &claim_req("w1"), Some("old"), &mut plan_n(1, &calls)).unwrap();
        assert_ne!(retried[0].number, first[0].number, "an expired key claims anew");
        assert_eq!(calls.get(), 2);
        let fresh = s.claim_keyed("a", &claim_req("w1"), Some("fresh"), &mut plan_n(1, &calls)).unwrap();
        assert_eq!(s.claim_keyed("a", &claim_req("w1"), Some("fresh"), &mut plan_n(1, &calls)).unwrap(), fresh);
        // Just inside the retention, a key still replays.
        age("a", 86_400.0 * f64::from(CLAIM_KEY_DAYS) - 3600.0);
        assert_eq!(s.claim_keyed("a", &claim_req("w1"), Some("fresh"), &mut plan_n(1, &calls)).unwrap(), fresh);
        assert_eq!(calls.get(), 3);
    }

    /// A running trial whose heartbeat is older than the grace period is
    /// re-leased to the claiming worker (epoch + 1) while retries remain, then
    /// failed; finished and fresh trials are left alone. Another study's
    /// trials come first in the storage, so a backend that mixes up row ids
    /// and trial numbers fails here.
    pub fn stale_leases_are_re_leased_then_failed(s: &dyn Storage, age: &dyn Fn(&str, f64)) {
        s.open_study("z", &spec("z")).unwrap();
        s.start_trials("z", &[new_trial(1, 0.1), new_trial(1, 0.2), new_trial(1, 0.3)], "w0", None).unwrap();
        s.open_study("a", &spec("a")).unwrap();
        let calls = std::cell::Cell::new(0);
        let first = s.claim("a", &claim_req("w1"), &mut plan_n(3, &calls)).unwrap();
        assert_eq!(first.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1, 2]);
        s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
        age("a", 120.0);
        s.heartbeat("a", 2, 0).unwrap(); // trial 2's worker is alive
        let second = s.claim("a", &claim_req("w2"), &mut plan_n(1, &calls)).unwrap();
        assert_eq!(second.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(1, 1), (3, 0)], "{second:?}");
        assert!(storage_message(s.finish_trial("a", &complete(1, 0, 1.0), None)).contains("stale"));
        age("a", 120.0);
        s.heartbeat("a", 2, 0).unwrap();
        s.heartbeat("a", 3, 0).unwrap();
        let third = s.claim("a", &claim_req("w3"), &mut plan_n(0, &calls)).unwrap();
        assert!(third.is_empty(), "{third:?}");
        let trials = s.trials("a").unwrap();
        match &trials[1].state {
            TrialState::Failed { reason } => assert!(reason.contains("stale"), "{reason}"),
            other => panic!("trial 1 should have failed as stale, is {other:?}"),
        }
        assert_eq!(trials[0].state, TrialState::Complete);
        assert_eq!((trials[2].state.clone(), trials[3].state.clone()), (TrialState::Running, TrialState::Running));
        assert!(s.trials("z").unwrap().iter().all(|t| t.state == TrialState::Running && t.epoch == 0));
    }

    fn elsewhere() -> Owner {
        Owner { host: "another-machine.example".into(), pid: 1, id: "another-machine.example:1:0".into() }
    }

    /// A run lock held on another machine is respected while its holder
    /// heartbeats and taken over, from this host, once it stopped.
    pub fn a_silent_run_lock_is_taken_over_from_any_host(s: &dyn Storage, age: &dyn Fn(&str, f64)) {
        s.open_study("a", &spec("a")).unwrap();
        s.acquire("a", &elsewhere()).unwrap();
        let me = Owner::current();
        assert!(matches!(s.acquire("a", &me), Err(Error::Locked(_))), "a heartbeating holder elsewhere keeps it");
        age("a", 30.0);
        s.acquire("a", &elsewhere()).unwrap(); // its heartbeat
        age("a", LOCK_GRACE.as_secs_f64() - 5.0);
        assert!(matches!(s.acquire("a", &me), Err(Error::Locked(_))), "heartbeat {} s ago", LOCK_GRACE.as_secs() - 5);
        age("a", 10.0);
        s.acquire("a", &me).unwrap();
        assert!(matches!(s.acquire("a", &elsewhere()), Err(Error::Locked(_))), "the lock is ours now");
        // Claims are kept out by a live run on another machine, let in once it went silent.
        s.open_study("b", &spec("b")).unwrap();
        s.acquire("b", &elsewhere()).unwrap();
        let calls = std::cell::Cell::new(0);
        assert!(matches!(s.claim("b", &claim_req("w"), &mut plan_n(1, &calls)), Err(Error::Locked(_))));
        age("b", LOCK_GRACE.as_secs_f64() + 1.0);
        assert_eq!(s.claim("b", &claim_req("w"), &mut plan_n(1, &calls)).unwrap().len(), 1);
    }

    /// A holder on this host whose pid exists (a reused pid) but who stopped
    /// heartbeating is taken over; while it heartbeats, it is not.
    pub fn a_reused_pid_does_not_keep_a_silent_lock(s: &dyn Storage, age: &dyn Fn(&str, f64)) {
        s.open_study("a", &spec("a")).unwrap();
        let reused = other_live_owner();
        assert!(reused.process_exists());
        s.acquire("a", &reused).unwrap();
        assert!(matches!(s.acquire("a", &Owner::current()), Err(Error::Locked(_))));
        age("a", LOCK_GRACE.as_secs_f64() + 1.0);
        s.acquire("a", &Owner::current()).unwrap();
    }
}

mod clock {
    timed_conformance! {
        backends: [memory, sqlite, postgres],
        cases: [
            expired_claim_keys_claim_anew,
            stale_leases_are_re_leased_then_failed,
            a_silent_run_lock_is_taken_over_from_any_host,
            a_reused_pid_does_not_keep_a_silent_lock,
        ]
    }
}

conformance! {
    backends: [memory, sqlite, postgres],
    cases: [
        open_study_is_idempotent_and_listed,
        numbers_are_consecutive_per_study,
        started_trials_are_stored_as_given,
        finish_stores_results_bit_for_bit,
        finishing_twice_is_refused,
        wrong_epoch_is_refused,
        reclaim_bumps_epochs_and_old_epoch_is_refused,
        snapshot_is_atomic_with_start_and_finish,
        acquire_and_release,
        dead_owner_is_taken_over,
        trials_are_ordered_by_number,
        failed_and_pruned_trials_keep_their_state,
        unknown_study_and_trial_are_refused,
        bad_input_is_refused_without_a_trace,
        keyed_claims_return_the_same_trials,
        closed_studies_plan_no_new_trials,
        trials_are_paged_by_number_and_state,
        queued_configurations_are_handed_out_once_in_order,
        a_run_and_shared_claims_exclude_each_other,
    ]
}

fn spec(tag: &str) -> serde_json::Value {
    serde_json::json!({ "tag": tag, "space": [{ "name": "x", "low": 0.1, "high": 1e-7 }] })
}

fn new_trial(batch: u64, x: f64) -> NewTrial {
    let mut config = Config::new();
    config.insert("x".into(), Value::Float(x));
    NewTrial { batch, ticket: Some(batch * 100), x: vec![x], config, baseline: false }
}

fn snap(batch: u64, point: SnapshotPoint, tag: &str) -> StoredSnapshot {
    StoredSnapshot {
        batch,
        point,
        snapshot: Snapshot {
            optimizer: "random".into(),
            version: 1,
            state: serde_json::json!({ "tag": tag, "sigma": 0.1 + 0.2, "tiny": 5e-324 }),
        },
    }
}

fn complete(number: u64, epoch: u64, y: f64) -> Finished {
    Finished {
        number,
        epoch,
        state: TrialState::Complete,
        metrics: BTreeMap::from([("y".to_string(), y)]),
        elapsed_s: Some(0.25),
    }
}

fn other_live_owner() -> Owner {
    // Same host and pid as this test (so certainly alive), another run id.
    let me = Owner::current();
    Owner { id: format!("{}-other", me.id), ..me }
}

fn dead_owner() -> Owner {
    let me = Owner::current();
    Owner { pid: 999_999_999, id: format!("{}:999999999:0", me.host), host: me.host }
}

/// The message of a refused write (a finished trial, a stale lease).
fn storage_message(r: knobs::Result<()>) -> String {
    match r {
        Err(Error::Refused(m)) => m,
        other => panic!("expected Error::Refused, got {other:?}"),
    }
}

/// The message of a write to a trial that does not exist.
fn not_found(r: knobs::Result<()>) -> String {
    match r {
        Err(Error::NotFound(m)) => m,
        other => panic!("expected Error::NotFound, got {other:?}"),
    }
}

mod cases {
    use super::*;

    pub use super::keyed::*;

    pub fn open_study_is_idempotent_and_listed(s: &dyn Storage) {
        assert_eq!(s.find_study("a").unwrap(), None);
        assert!(s.list_studies().unwrap().is_empty());
        let a = s.open_study("a", &spec("first")).unwrap();
        assert_eq!(a.name, "a");
        assert_eq!(a.spec, spec("first"));
        assert!(!a.created_at.is_empty());
        // Opening again returns the study as created, whatever spec is passed.
        assert_eq!(s.open_study("a", &spec("second")).unwrap(), a);
        assert_eq!(s.find_study("a").unwrap(), Some(a.clone()));
        let b = s.open_study("b", &spec("b")).unwrap();

        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2), new_trial(1, 0.3), new_trial(1, 0.4)], "w", None)
            .unwrap();
        s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
        let failed = TrialState::Failed { reason: "exit 1".into() };
        s.finish_trial("a", &Finished { state: failed, ..complete(1, 0, 2.0) }, None).unwrap();
        s.finish_trial("a", &Finished { state: TrialState::Pruned, ..complete(2, 0, 3.0) }, None).unwrap();

        let list = s.list_studies().unwrap();
        let names: Vec<&str> = list.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "oldest first");
        assert_eq!((list[0].trials, list[0].complete, list[0].failed, list[0].running), (4, 1, 1, 1));
        assert_eq!(list[0].created_at, a.created_at);
        assert_eq!((list[1].trials, list[1].complete, list[1].failed, list[1].running), (0, 0, 0, 0));
        assert_eq!(list[1].created_at, b.created_at);
    }

    pub fn numbers_are_consecutive_per_study(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.open_study("b", &spec("b")).unwrap();
        let first = s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2), new_trial(1, 0.3)], "w", None).unwrap();
        assert_eq!(first.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1, 2]);
        let other = s.start_trials("b", &[new_trial(1, 0.5)], "w", None).unwrap();
        assert_eq!(other[0].number, 0, "numbering is per study");
        assert!(s.start_trials("a", &[], "w", None).unwrap().is_empty());
        let second = s.start_trials("a", &[new_trial(2, 0.4), new_trial(2, 0.5)], "w2", None).unwrap();
        assert_eq!(second.iter().map(|t| t.number).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(s.trials("a").unwrap().iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(s.trials("b").unwrap().len(), 1);
    }

    pub fn started_trials_are_stored_as_given(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        let mut config = Config::new();
        config.insert("f".into(), Value::Float(3.0));
        config.insert("i".into(), Value::Int(3));
        config.insert("big".into(), Value::Int(i64::MIN));
        config.insert("tiny".into(), Value::Float(5e-324));
        config.insert("third".into(), Value::Float(1.0 / 3.0));
        config.insert("neg0".into(), Value::Float(-0.0));
        config.insert("b".into(), Value::Bool(true));
        config.insert("s".into(), Value::Str("lru \"quoted\" ü\n".into()));
        let x = vec![0.0, -0.0, 1.0, 5e-324, 0.1 + 0.2, 1.0 - f64::EPSILON, f64::NAN, f64::INFINITY];
        let baseline = NewTrial { batch: 0, ticket: None, x: x.clone(), config: config.clone(), baseline: true };
        let last = NewTrial { batch: i64::MAX as u64, ticket: Some(i64::MAX as u64), ..new_trial(1, 0.5) };
        let started = s.start_trials("a", &[baseline, last], "w", None).unwrap();
        let stored = s.trials("a").unwrap();
        for got in [&started[0], &stored[0]] {
            assert_eq!(got.number, 0);
            assert_eq!(got.batch, 0);
            assert_eq!(got.ticket, None);
            assert!(got.baseline);
            assert_eq!(got.state, TrialState::Running);
            assert_eq!(got.epoch, 0);
            assert!(got.metrics.is_empty());
            assert_eq!(got.elapsed_s, None);
            assert_eq!(got.config, config, "config round trip (int stays int, float stays float)");
            assert_eq!(got.config["neg0"], Value::Float(-0.0));
            match &got.config["neg0"] {
                Value::Float(v) => assert!(v.is_sign_negative()),
                other => panic!("{other:?}"),
            }
            assert_eq!(got.x.len(), x.len());
            for (a, b) in got.x.iter().zip(&x) {
                assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{a} vs {b}");
            }
        }
        assert_eq!(stored[1], started[1]);
        assert_eq!((stored[1].batch, stored[1].ticket), (i64::MAX as u64, Some(i64::MAX as u64)));
        assert!(!stored[1].baseline);
    }

    pub fn finish_stores_results_bit_for_bit(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2)], "w", None).unwrap();
        let values = [
            ("tiny", 5e-324),
            ("min_normal", f64::MIN_POSITIVE),
            ("huge", f64::MAX),
            ("neg_huge", -1.7976931348623157e308),
            ("third", 1.0 / 3.0),
            ("sum", 0.1 + 0.2),
            ("neg_zero", -0.0),
            ("int_like", 12345678901234567.0),
            ("inf", f64::INFINITY),
            ("neg_inf", f64::NEG_INFINITY),
        ];
        let metrics: BTreeMap<String, f64> = values.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        let mut nan_metrics = metrics.clone();
        nan_metrics.insert("nan".into(), f64::NAN);
        let elapsed = 1.0 / 7.0 * 1e-9;
        let done = Finished {
            number: 1,
            epoch: 0,
            state: TrialState::Complete,
            metrics: nan_metrics,
            elapsed_s: Some(elapsed),
        };
        s.finish_trial("a", &done, None).unwrap();
        let trials = s.trials("a").unwrap();
        let t = &trials[1];
        assert_eq!(t.state, TrialState::Complete);
        assert_eq!(t.elapsed_s.map(f64::to_bits), Some(elapsed.to_bits()));
        assert_eq!(t.metrics.len(), values.len() + 1);
        for (k, v) in &metrics {
            assert_eq!(t.metrics[k].to_bits(), v.to_bits(), "metric {k}: {} vs {v}", t.metrics[k]);
        }
        assert!(t.metrics["nan"].is_nan());
        assert_eq!(trials[0].state, TrialState::Running, "other trials untouched");
    }

    pub fn finishing_twice_is_refused(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
        s.finish_trial("a", &complete(0, 0, 1.5), None).unwrap();
        let msg = storage_message(s.finish_trial("a", &complete(0, 0, 9.0), None));
        assert!(msg.contains("trial 0") && msg.contains("already complete") && msg.contains("never edited"), "{msg}");
        let failed = Finished { state: TrialState::Failed { reason: "late".into() }, ..complete(0, 0, 9.0) };
        storage_message(s.finish_trial("a", &failed, None));
        let t = &s.trials("a").unwrap()[0];
        assert_eq!(t.state, TrialState::Complete);
        assert_eq!(t.metrics["y"], 1.5, "the first result stands");
    }

    pub fn wrong_epoch_is_refused(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
        let msg = storage_message(s.finish_trial("a", &complete(0, 1, 1.0), None));
        assert!(msg.contains("epoch 1 is stale") && msg.contains("epoch 0"), "{msg}");
        assert_eq!(s.trials("a").unwrap()[0].state, TrialState::Running);
        s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
    }

    pub fn reclaim_bumps_epochs_and_old_epoch_is_refused(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.open_study("b", &spec("b")).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2), new_trial(1, 0.3)], "w1", None).unwrap();
        s.start_trials("b", &[new_trial(1, 0.1)], "w1", None).unwrap();
        s.finish_trial("a", &complete(1, 0, 1.0), None).unwrap();

        let reclaimed = s.reclaim_running("a", "w2").unwrap();
        assert_eq!(reclaimed.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(0, 1), (2, 1)]);
        assert!(reclaimed.iter().all(|t| t.state == TrialState::Running));
        let trials = s.trials("a").unwrap();
        assert_eq!(trials.iter().map(|t| t.epoch).collect::<Vec<_>>(), [1, 0, 1], "finished trial untouched");
        assert_eq!(trials[0], reclaimed[0]);
        assert_eq!(s.trials("b").unwrap()[0].epoch, 0, "other studies untouched");

        // The worker declared dead comes back late: refused, not counted twice.
        let msg = storage_message(s.finish_trial("a", &complete(0, 0, 5.0), None));
        assert!(msg.contains("stale") && msg.contains("w2"), "{msg}");
        s.finish_trial("a", &complete(0, 1, 6.0), None).unwrap();
        assert_eq!(s.trials("a").unwrap()[0].metrics["y"], 6.0);

        let again = s.reclaim_running("a", "w3").unwrap();
        assert_eq!(again.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(2, 2)]);
        assert!(s.reclaim_running("b", "w3").unwrap().iter().all(|t| t.epoch == 1));
    }

    pub fn snapshot_is_atomic_with_start_and_finish(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.open_study("b", &spec("b")).unwrap();
        assert_eq!(s.latest_snapshot("a").unwrap(), None);

        let asked = snap(1, SnapshotPoint::Asked, "asked-1");
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2)], "w", Some(&asked)).unwrap();
        assert_eq!(s.latest_snapshot("a").unwrap(), Some(asked.clone()));
        assert_eq!(s.latest_snapshot("b").unwrap(), None, "per study");

        let told = snap(1, SnapshotPoint::Told, "told-1");
        s.finish_trial("a", &complete(0, 0, 1.0), Some(&told)).unwrap();
        assert_eq!(s.latest_snapshot("a").unwrap(), Some(told.clone()));

        // Without a snapshot the latest one stays.
        s.start_trials("a", &[new_trial(2, 0.3)], "w", None).unwrap();
        s.finish_trial("a", &complete(1, 0, 1.0), None).unwrap();
        assert_eq!(s.latest_snapshot("a").unwrap(), Some(told.clone()));

        // A refused write stores neither its trial nor its snapshot.
        let refused = snap(9, SnapshotPoint::Told, "refused");
        assert!(s.finish_trial("a", &complete(0, 0, 2.0), Some(&refused)).is_err());
        assert!(s.finish_trial("a", &complete(2, 7, 2.0), Some(&refused)).is_err());
        let mut bad = new_trial(3, 0.4);
        bad.config.insert("x".into(), Value::Float(f64::NAN));
        assert!(s.start_trials("a", &[new_trial(3, 0.4), bad], "w", Some(&refused)).is_err());
        assert_eq!(s.latest_snapshot("a").unwrap(), Some(told));
        assert_eq!(s.trials("a").unwrap().len(), 3);

        // The newest wins, many times over.
        for i in 0..6 {
            let sn = snap(10 + i, SnapshotPoint::Asked, &format!("n{i}"));
            s.start_trials("a", &[], "w", Some(&sn)).unwrap();
            assert_eq!(s.latest_snapshot("a").unwrap(), Some(sn));
        }
    }

    pub fn acquire_and_release(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.open_study("b", &spec("b")).unwrap();
        let me = Owner::current();
        let other = other_live_owner();
        s.acquire("a", &me).unwrap();
        s.acquire("a", &me).unwrap(); // re-entrant for the holder

        match s.acquire("a", &other) {
            Err(Error::Locked(msg)) => {
                for part in [format!("pid {}", me.pid), format!("host {}", me.host), "`a`".into(), "wait for it".into()]
                {
                    assert!(msg.contains(&part), "{msg} lacks {part}");
                }
            }
            r => panic!("expected Error::Locked, got {r:?}"),
        }
        s.acquire("b", &other).unwrap(); // locks are per study

        s.release("a", &other).unwrap(); // not the holder: no-op
        assert!(matches!(s.acquire("a", &other), Err(Error::Locked(_))));
        s.release("missing", &me).unwrap();

        s.release("a", &me).unwrap();
        s.acquire("a", &other).unwrap();
        assert!(matches!(s.acquire("a", &me), Err(Error::Locked(_))));
        assert!(matches!(s.acquire("b", &me), Err(Error::Locked(_))));
        s.release("a", &other).unwrap();
        s.release("b", &other).unwrap();
        s.acquire("a", &me).unwrap();
        s.acquire("b", &me).unwrap();
    }

    pub fn dead_owner_is_taken_over(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        let dead = dead_owner();
        assert!(!dead.process_exists(), "pid 999999999 should not exist");
        s.acquire("a", &dead).unwrap();
        let me = Owner::current();
        s.acquire("a", &me).unwrap();
        // The taken-over lock is really ours now.
        assert!(matches!(s.acquire("a", &other_live_owner()), Err(Error::Locked(_))));
        assert!(matches!(s.acquire("a", &dead), Err(Error::Locked(_))));
        s.release("a", &dead).unwrap();
        assert!(matches!(s.acquire("a", &other_live_owner()), Err(Error::Locked(_))));
    }

    pub fn trials_are_ordered_by_number(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        for batch in 1..=4 {
            let batch_trials: Vec<NewTrial> = (0..3).map(|i| new_trial(batch, i as f64 / 10.0)).collect();
            s.start_trials("a", &batch_trials, "w", None).unwrap();
        }
        for n in [7, 2, 11, 0, 5] {
            s.finish_trial("a", &complete(n, 0, n as f64), None).unwrap();
        }
        s.reclaim_running("a", "w2").unwrap();
        let trials = s.trials("a").unwrap();
        assert_eq!(trials.iter().map(|t| t.number).collect::<Vec<_>>(), (0..12).collect::<Vec<_>>());
        assert_eq!(trials.iter().map(|t| t.batch).collect::<Vec<_>>(), [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
        for t in &trials {
            let done = [7, 2, 11, 0, 5].contains(&t.number);
            assert_eq!(t.state.is_finished(), done, "trial {}", t.number);
            assert_eq!(t.epoch, if done { 0 } else { 1 });
        }
    }

    pub fn failed_and_pruned_trials_keep_their_state(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2), new_trial(1, 0.3)], "w", None).unwrap();
        let reason = "command exited with status 1: stderr: \"boom\"\nline 2 ünïcødé; DROP TABLE trials;";
        let failed = Finished {
            number: 0,
            epoch: 0,
            state: TrialState::Failed { reason: reason.into() },
            metrics: BTreeMap::new(),
            elapsed_s: None,
        };
        s.finish_trial("a", &failed, None).unwrap();
        let empty_reason =
            Finished { number: 1, state: TrialState::Failed { reason: String::new() }, ..failed.clone() };
        s.finish_trial("a", &empty_reason, None).unwrap();
        s.finish_trial("a", &Finished { number: 2, state: TrialState::Pruned, ..failed.clone() }, None).unwrap();
        let trials = s.trials("a").unwrap();
        assert_eq!(trials[0].state, TrialState::Failed { reason: reason.into() });
        assert_eq!(trials[0].elapsed_s, None);
        assert!(trials[0].metrics.is_empty());
        assert_eq!(trials[1].state, TrialState::Failed { reason: String::new() });
        assert_eq!(trials[2].state, TrialState::Pruned);
        let msg = storage_message(s.finish_trial("a", &complete(0, 0, 1.0), None));
        assert!(msg.contains("already failed"), "{msg}");
        let sum = &s.list_studies().unwrap()[0];
        assert_eq!((sum.trials, sum.complete, sum.failed, sum.running), (3, 0, 2, 0));
    }

    pub fn unknown_study_and_trial_are_refused(s: &dyn Storage) {
        let unknown_study = |r: knobs::Result<()>| match r {
            Err(Error::NotFound(m)) => assert!(m.contains("`nope`"), "{m}"),
            other => panic!("expected Error::NotFound, got {other:?}"),
        };
        unknown_study(s.start_trials("nope", &[new_trial(1, 0.1)], "w", None).map(drop));
        unknown_study(s.finish_trial("nope", &complete(0, 0, 1.0), None));
        unknown_study(s.reclaim_running("nope", "w").map(drop));
        unknown_study(s.trials("nope").map(drop));
        unknown_study(s.latest_snapshot("nope").map(drop));
        unknown_study(s.acquire("nope", &Owner::current()));
        assert!(s.list_studies().unwrap().is_empty(), "nothing was created on the way");

        s.open_study("a", &spec("a")).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
        for n in [1, u64::MAX] {
            let msg = not_found(s.finish_trial("a", &complete(n, 0, 1.0), None));
            assert!(msg.contains(&format!("no trial {n}")), "{msg}");
        }
    }

    pub fn bad_input_is_refused_without_a_trace(s: &dyn Storage) {
        assert!(matches!(s.open_study("", &spec("a")), Err(Error::Config(_))));
        assert!(matches!(s.open_study(&"n".repeat(257), &spec("a")), Err(Error::Config(_))));
        assert!(s.list_studies().unwrap().is_empty());
        s.open_study("a", &spec("a")).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();

        let running = Finished { state: TrialState::Running, ..complete(0, 0, 1.0) };
        assert!(matches!(s.finish_trial("a", &running, None), Err(Error::Config(_))));
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            let f = Finished { elapsed_s: Some(bad), ..complete(0, 0, 1.0) };
            assert!(matches!(s.finish_trial("a", &f, None), Err(Error::Config(_))), "elapsed {bad}");
        }
        let mut inf_config = new_trial(1, 0.2);
        inf_config.config.insert("y".into(), Value::Float(f64::INFINITY));
        match s.start_trials("a", &[new_trial(1, 0.3), inf_config], "w", None) {
            Err(Error::Config(m)) => assert!(m.contains("`y`") && m.contains("finite"), "{m}"),
            other => panic!("expected Error::Config, got {other:?}"),
        }
        let huge_batch = NewTrial { batch: u64::MAX, ..new_trial(1, 0.2) };
        assert!(matches!(s.start_trials("a", &[huge_batch], "w", None), Err(Error::Config(_))));
        let huge_ticket = NewTrial { ticket: Some(u64::MAX), ..new_trial(1, 0.2) };
        assert!(matches!(s.start_trials("a", &[huge_ticket], "w", None), Err(Error::Config(_))));

        let trials = s.trials("a").unwrap();
        assert_eq!(trials.len(), 1, "no partial batch");
        assert_eq!(trials[0].state, TrialState::Running);
        // -0.0 seconds is stored as 0.0 by every backend.
        s.finish_trial("a", &Finished { elapsed_s: Some(-0.0), ..complete(0, 0, 1.0) }, None).unwrap();
        assert_eq!(s.trials("a").unwrap()[0].elapsed_s.map(f64::to_bits), Some(0.0f64.to_bits()));
    }
}

// ---------------------------------------------------------------- claims with keys, closing, pages

fn claim_req(worker: &str) -> ClaimRequest {
    ClaimRequest { worker: worker.into(), grace_s: 60.0, max_retries: 1 }
}

/// A plan of `n` new trials in the next batch; counts how often it ran.
fn plan_n(n: usize, calls: &std::cell::Cell<u32>) -> impl FnMut(&ClaimState) -> knobs::Result<ClaimPlan> + '_ {
    move |st| {
        calls.set(calls.get() + 1);
        let batch = st.last_batch + 1;
        let n = if st.closed { 0 } else { n };
        Ok(ClaimPlan {
            new: (0..n).map(|i| new_trial(batch, i as f64 / 10.0)).collect(),
            told: Vec::new(),
            snapshot: Some(snap(batch, SnapshotPoint::Asked, "claim")),
            dequeued: Vec::new(),
        })
    }
}

mod keyed {
    use super::*;

    pub fn keyed_claims_return_the_same_trials(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        let calls = std::cell::Cell::new(0);
        let first = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
        assert_eq!(first.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1]);
        // The retry: same trials, no planning, nothing new stored.
        let again = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
        assert_eq!(again, first);
        assert_eq!(calls.get(), 1, "a replayed key does not plan");
        assert_eq!(s.trials("a").unwrap().len(), 2);
        // Another key, or none, claims anew.
        let other = s.claim_keyed("a", &claim_req("w1"), Some("k2"), &mut plan_n(1, &calls)).unwrap();
        assert_eq!(other[0].number, 2);
        let plain = s.claim("a", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap();
        assert_eq!(plain[0].number, 3);
        // A finished trial is replayed as it is now, at the epoch it was claimed at.
        s.finish_trial("a", &complete(0, 0, 1.5), None).unwrap();
        let replay = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
        assert_eq!(replay.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(0, 0), (1, 0)]);
        assert_eq!(replay[0].state, TrialState::Complete);
        // After the lease moved on, the replay keeps the old epoch: its tell is refused.
        s.reclaim_running("a", "w2").unwrap();
        let replay = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
        assert_eq!(replay[1].epoch, 0);
        assert!(storage_message(s.finish_trial("a", &complete(1, replay[1].epoch, 1.0), None)).contains("stale"));
        // Keys are per study; a failed plan stores no key.
        s.open_study("b", &spec("b")).unwrap();
        let in_b = s.claim_keyed("b", &claim_req("w1"), Some("k1"), &mut plan_n(1, &calls)).unwrap();
        assert_eq!(in_b[0].number, 0);
        let failing =
            s.claim_keyed("b", &claim_req("w1"), Some("k3"), &mut |_: &ClaimState| Err(Error::Config("no".into())));
        assert!(failing.is_err());
        let after = s.claim_keyed("b", &claim_req("w1"), Some("k3"), &mut plan_n(1, &calls)).unwrap();
        assert_eq!(after[0].number, 1);
        assert!(matches!(
            s.claim_keyed("a", &claim_req("w1"), Some(""), &mut plan_n(1, &calls)),
            Err(Error::Config(_))
        ));
    }

    pub fn closed_studies_plan_no_new_trials(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        let calls = std::cell::Cell::new(0);
        s.claim("a", &claim_req("w1"), &mut plan_n(2, &calls)).unwrap();
        assert!(!s.find_study("a").unwrap().unwrap().closed);
        s.close_study("a").unwrap();
        s.close_study("a").unwrap();
        assert!(s.find_study("a").unwrap().unwrap().closed);
        let mut seen = None;
        let got = s
            .claim("a", &claim_req("w1"), &mut |st: &ClaimState| {
                seen = Some(st.closed);
                Ok(ClaimPlan::default())
            })
            .unwrap();
        assert!(got.is_empty());
        assert_eq!(seen, Some(true));
        // Running trials of a closed study may still be finished.
        s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
        assert!(matches!(s.close_study("nope"), Err(Error::NotFound(_))));
    }

    pub fn queued_configurations_are_handed_out_once_in_order(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.open_study("b", &spec("b")).unwrap();
        let config = |v: f64| knobs::space::Config::from([("x".to_string(), knobs::space::Value::Float(v))]);
        assert_eq!(s.queued("a").unwrap(), 0);
        assert_eq!(s.enqueue("a", &[0.25], &config(2.5)).unwrap(), 1);
        assert_eq!(s.enqueue("a", &[0.75], &config(7.5)).unwrap(), 2);
        assert_eq!(s.enqueue("b", &[0.5], &config(5.0)).unwrap(), 1);
        assert_eq!(s.queued("a").unwrap(), 2);
        // Non-finite configuration values are refused, and nothing is queued.
        assert!(matches!(s.enqueue("a", &[0.1], &config(f64::INFINITY)), Err(Error::Config(_))));
        assert!(matches!(s.enqueue("nope", &[0.1], &config(1.0)), Err(Error::NotFound(_))));
        // The planner sees the queue oldest first; what it takes leaves the queue with the claim.
        let mut seen = Vec::new();
        let got = s
            .claim("a", &claim_req("w1"), &mut |st: &ClaimState| {
                seen = st.queued.clone();
                let q = &st.queued[0];
                Ok(ClaimPlan {
                    new: vec![NewTrial {
                        batch: 1,
                        ticket: None,
                        x: q.x.clone(),
                        config: q.config.clone(),
                        baseline: false,
                    }],
                    dequeued: vec![q.id],
                    ..ClaimPlan::default()
                })
            })
            .unwrap();
        assert_eq!(seen.iter().map(|q| q.x.clone()).collect::<Vec<_>>(), [vec![0.25], vec![0.75]]);
        assert_eq!(seen[0].config, config(2.5));
        assert!(seen[0].id < seen[1].id);
        assert_eq!((got[0].number, got[0].ticket, got[0].config.clone()), (0, None, config(2.5)));
        assert_eq!(s.queued("a").unwrap(), 1);
        assert_eq!(s.queued("b").unwrap(), 1, "queues are per study");
        // A plan that names an id it was not given rolls back: the queue and trials stay.
        let bad = s.claim("a", &claim_req("w1"), &mut |_: &ClaimState| {
            Ok(ClaimPlan { new: vec![new_trial(2, 0.1)], dequeued: vec![u64::MAX], ..ClaimPlan::default() })
        });
        assert!(bad.is_err());
        assert_eq!((s.queued("a").unwrap(), s.trials("a").unwrap().len()), (1, 1));
        let mut rest = Vec::new();
        s.claim("a", &claim_req("w1"), &mut |st: &ClaimState| {
            rest = st.queued.iter().map(|q| q.x.clone()).collect();
            Ok(ClaimPlan { dequeued: st.queued.iter().map(|q| q.id).collect(), ..ClaimPlan::default() })
        })
        .unwrap();
        assert_eq!(rest, [vec![0.75]]);
        assert_eq!(s.queued("a").unwrap(), 0);
        // A closed study takes no new configurations.
        s.close_study("b").unwrap();
        assert!(matches!(s.enqueue("b", &[0.5], &config(5.0)), Err(Error::Locked(_))));
    }

    pub fn a_run_and_shared_claims_exclude_each_other(s: &dyn Storage) {
        let calls = std::cell::Cell::new(0);
        // A live `knobs run` holds the study: claims are refused, nothing is stored.
        s.open_study("a", &spec("a")).unwrap();
        let me = Owner::current();
        s.acquire("a", &me).unwrap();
        let e = s.claim("a", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap_err();
        assert!(matches!(&e, Error::Locked(m) if m.contains("knobs run")), "{e}");
        assert_eq!((calls.get(), s.trials("a").unwrap().len()), (0, 0));
        // Once it released the study, workers may share it; from then on `knobs run` is refused.
        s.release("a", &me).unwrap();
        s.claim("a", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap();
        let e = s.acquire("a", &me).unwrap_err();
        assert!(matches!(&e, Error::Config(m) if m.contains("shared")), "{e}");
        // A dead run's leftover lock does not keep workers out.
        s.open_study("b", &spec("b")).unwrap();
        s.acquire("b", &dead_owner()).unwrap();
        assert_eq!(s.claim("b", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap().len(), 1);
    }

    pub fn trials_are_paged_by_number_and_state(s: &dyn Storage) {
        s.open_study("a", &spec("a")).unwrap();
        s.open_study("b", &spec("b")).unwrap();
        s.start_trials("b", &[new_trial(1, 0.9)], "w", None).unwrap();
        let batch: Vec<NewTrial> = (0..7).map(|i| new_trial(1, i as f64 / 10.0)).collect();
        s.start_trials("a", &batch, "w", None).unwrap();
        for n in [1, 2, 5] {
            s.finish_trial("a", &complete(n, 0, n as f64), None).unwrap();
        }
        let page = |state, after, limit| {
            s.trials_page("a", &TrialPage { state, after, limit }).unwrap().iter().map(|t| t.number).collect::<Vec<_>>()
        };
        assert_eq!(page(None, None, 3), [0, 1, 2]);
        assert_eq!(page(None, Some(2), 3), [3, 4, 5]);
        assert_eq!(page(None, Some(5), 3), [6]);
        assert!(page(None, Some(6), 3).is_empty());
        assert!(page(None, Some(u64::MAX), 3).is_empty());
        assert_eq!(page(Some(StateFilter::Complete), None, 10), [1, 2, 5]);
        assert_eq!(page(Some(StateFilter::Complete), Some(1), 1), [2]);
        assert_eq!(page(Some(StateFilter::Running), Some(2), 10), [3, 4, 6]);
        assert!(page(Some(StateFilter::Failed), None, 10).is_empty());
        assert_eq!(
            s.trials_page("a", &TrialPage { state: None, after: None, limit: 100 }).unwrap(),
            s.trials("a").unwrap()
        );
        assert_eq!(s.trial("a", 5).unwrap().map(|t| t.state), Some(TrialState::Complete));
        assert_eq!(s.trial("a", 7).unwrap(), None);
        assert!(matches!(s.trials_page("nope", &TrialPage::default()), Err(Error::NotFound(_))));
    }
}

// ---------------------------------------------------------------- storage::open

#[test]
fn open_accepts_memory_sqlite_urls_and_db_paths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    for url in
        ["memory:".to_string(), format!("sqlite:{d}/a.db"), format!("sqlite://{d}/b.sqlite"), format!("{d}/c.db")]
    {
        let s = storage::open(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        s.open_study("a", &spec("a")).unwrap();
        assert_eq!(s.list_studies().unwrap().len(), 1, "{url}");
    }
    assert!(dir.path().join("a.db").exists() && dir.path().join("b.sqlite").exists());
    assert!(dir.path().join("c.db").exists());
    for bad in ["", "memory", "results.txt", "sqlite:", "postgres:/localhost/knobs"] {
        match storage::open(bad) {
            Err(Error::Config(m)) => assert!(m.contains(&format!("`{bad}`")), "{m}"),
            Err(e) => panic!("{bad}: expected Error::Config, got {e}"),
            Ok(_) => panic!("{bad}: accepted"),
        }
    }
}

// ---------------------------------------------------------------- SQLite only

fn raw(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

#[test]
fn sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    let me = Owner::current();
    let (record, told) = {
        let s = SqliteStorage::open(&path).unwrap();
        let record = s.open_study("a", &spec("a")).unwrap();
        s.acquire("a", &me).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 1.0 / 3.0), new_trial(1, 0.3)], "w", None).unwrap();
        let told = snap(1, SnapshotPoint::Told, "told");
        s.finish_trial("a", &complete(1, 0, 5e-324), Some(&told)).unwrap();
        s.reclaim_running("a", "w2").unwrap();
        (record, told)
    };
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.find_study("a").unwrap(), Some(record));
    let trials = s.trials("a").unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[1].metrics["y"].to_bits(), 5e-324f64.to_bits());
    assert_eq!(trials[1].x, [1.0 / 3.0]);
    assert_eq!(trials.iter().map(|t| t.epoch).collect::<Vec<_>>(), [1, 0, 1]);
    assert_eq!(s.latest_snapshot("a").unwrap(), Some(told));
    assert!(matches!(s.acquire("a", &other_live_owner()), Err(Error::Locked(_))), "the lock persists");
    let next = s.start_trials("a", &[new_trial(2, 0.5)], "w", None).unwrap();
    assert_eq!(next[0].number, 3);
}

#[test]
fn sqlite_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(SqliteStorage::open(&path).unwrap());
    let known = knobs::storage::sqlite::SCHEMA_VERSION;
    raw(&path).pragma_update(None, "user_version", known + 7).unwrap();
    let err = SqliteStorage::open(&path).expect_err("a newer file must be refused");
    let Error::Storage(msg) = err else { panic!("expected Error::Storage, got {err:?}") };
    let want = format!("was written by a newer knobs (schema {}, this binary knows {known}); upgrade knobs", known + 7);
    assert!(msg.contains(&want) && msg.contains("new.db"), "{msg}");
    // Nothing was changed by the refused open.
    let version: u32 = raw(&path).pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, known + 7);
}

#[test]
fn sqlite_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.db");
    std::fs::write(&text, "this is not a database, just some text that is long enough to hold a header..........")
        .unwrap();
    match SqliteStorage::open(&text) {
        Err(Error::Storage(m)) => assert!(m.contains("notes.db") && m.contains("not a knobs database"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
    let other = dir.path().join("other.db");
    raw(&other).execute_batch("CREATE TABLE mine (a INTEGER)").unwrap();
    match SqliteStorage::open(&other) {
        Err(Error::Storage(m)) => assert!(m.contains("other.db") && m.contains("not a knobs database"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
    let missing_dir = dir.path().join("no/such/dir/k.db");
    match SqliteStorage::open(&missing_dir) {
        Err(Error::Storage(m)) => assert!(m.contains("k.db"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
}

#[test]
fn sqlite_pragmas_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&dir.path().join("p.db")).unwrap();
    let p = s.pragmas().unwrap();
    assert_eq!(p.journal_mode, "wal");
    assert_eq!(p.synchronous, 2, "FULL");
    assert!(p.busy_timeout_ms >= 5_000, "{p:?}");
    assert!(p.foreign_keys);
    assert_eq!(p.user_version, i64::from(knobs::storage::sqlite::SCHEMA_VERSION));
    // WAL is a property of the file: a fresh connection sees it too.
    let mode: String = raw(&dir.path().join("p.db")).pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_trial_numbers_are_unique_by_constraint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let s = SqliteStorage::open(&path).unwrap();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
    let dup = raw(&path).execute(
        "INSERT INTO trials (study_id, number, batch, x, config, state, worker, heartbeat_at, started_at)
         SELECT study_id, number, batch, x, config, state, worker, heartbeat_at, started_at FROM trials",
        [],
    );
    let err = dup.expect_err("a duplicate number must violate a constraint");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
}

#[test]
fn sqlite_damaged_rows_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let s = SqliteStorage::open(&path).unwrap();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2)], "w", Some(&snap(1, SnapshotPoint::Asked, "s")))
        .unwrap();
    let expect_damaged = |r: knobs::Result<()>, needles: &[&str]| match r {
        Err(Error::Storage(m)) => {
            assert!(m.contains("d.db") && m.contains("damaged"), "{m}");
            for n in needles {
                assert!(m.contains(n), "{m} lacks {n}");
            }
        }
        other => panic!("expected Error::Storage, got {other:?}"),
    };
    let db = raw(&path);
    let cases: [(&str, &[&str]); 6] = [
        ("UPDATE trials SET x = 'not json' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET x = '[\"zero\"]' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET config = '[1, 2]' WHERE number = 1", &["trial 1", "`config`"]),
        ("UPDATE trials SET metrics = '{\"y\": true}' WHERE number = 1", &["trial 1", "`metrics`"]),
        ("UPDATE trials SET batch = 'soon' WHERE number = 1", &["trial 1", "`batch`"]),
        ("UPDATE trials SET state = 'exploded' WHERE number = 1", &["trial 1", "`state`"]),
    ];
    db.pragma_update(None, "ignore_check_constraints", true).unwrap();
    for (sql, needles) in cases {
        db.execute(sql, []).unwrap();
        expect_damaged(s.trials("a").map(drop), needles);
        // Restore the row for the next case.
        db.execute(
            "UPDATE trials SET x = '[0.2]', config = '{\"x\":0.2}', metrics = '{}', batch = 1, state = 'running'
             WHERE number = 1",
            [],
        )
        .unwrap();
        assert_eq!(s.trials("a").unwrap().len(), 2);
    }
    db.execute("UPDATE trials SET state = 'failed', fail_reason = NULL WHERE number = 1", []).unwrap();
    expect_damaged(s.finish_trial("a", &complete(1, 0, 1.0), None), &["trial 1", "`state`"]);
    db.execute("UPDATE snapshots SET snapshot = '{\"optimizer\": 3}'", []).unwrap();
    expect_damaged(s.latest_snapshot("a").map(drop), &["snapshot"]);
    db.execute("UPDATE studies SET spec = '{'", []).unwrap();
    expect_damaged(s.find_study("a").map(drop), &["study `a`", "`spec`"]);
}

#[test]
fn sqlite_two_handles_four_threads_number_uniquely() {
    const THREADS: usize = 4;
    const CALLS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let handles = [SqliteStorage::open(&path).unwrap(), SqliteStorage::open(&path).unwrap()];
    handles[0].open_study("a", &spec("a")).unwrap();
    let got: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let s = &handles[i % 2];
                scope.spawn(move || {
                    let mut numbers = Vec::new();
                    for call in 0..CALLS {
                        let sn = snap(call as u64, SnapshotPoint::Asked, &format!("t{i}c{call}"));
                        let trials = s
                            .start_trials("a", &[new_trial(call as u64, i as f64 / 10.0)], &format!("w{i}"), Some(&sn))
                            .unwrap_or_else(|e| panic!("thread {i} call {call}: {e}"));
                        numbers.extend(trials.iter().map(|t| t.number));
                    }
                    numbers
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).collect()
    });
    let mut all: Vec<u64> = got.iter().flatten().copied().collect();
    for numbers in &got {
        assert_eq!(numbers.len(), CALLS);
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "each thread sees increasing numbers");
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..(THREADS * CALLS) as u64).collect();
    assert_eq!(all, expected, "unique, consecutive, none lost");
    for s in &handles {
        let stored: Vec<u64> = s.trials("a").unwrap().iter().map(|t| t.number).collect();
        assert_eq!(stored, expected);
    }
    let integrity: String = raw(&path).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
}

// ---------------------------------------------------------------- PostgreSQL only

use crate::pg;

#[test]
fn open_accepts_postgres_urls() {
    let db = crate::pg_schema!("open_urls");
    let url = db.url.clone();
    let s = storage::open(&url).unwrap_or_else(|e| panic!("{e}"));
    s.open_study("a", &spec("a")).unwrap();
    let other = url.replacen("postgres://", "postgresql://", 1);
    assert!(other.starts_with("postgresql://"), "{other}");
    let t = storage::open(&format!("  {other}  ")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.list_studies().unwrap().len(), 1, "the same schema through both spellings");
    drop((s, t));
    match storage::open("postgres://postgres@127.0.0.1:5432/test?schema=no-dashes").map(drop) {
        Err(Error::Config(m)) => {
            assert!(m.contains("no-dashes") && m.contains("letters, digits or underscores"), "{m}")
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn postgres_data_survives_reopening() {
    let db = crate::pg_schema!("survives");
    let me = Owner::current();
    let (record, told) = {
        let s = db.open();
        let record = s.open_study("a", &spec("a")).unwrap();
        s.acquire("a", &me).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 1.0 / 3.0), new_trial(1, 0.3)], "w", None).unwrap();
        let told = snap(1, SnapshotPoint::Told, "told");
        s.finish_trial("a", &complete(1, 0, 5e-324), Some(&told)).unwrap();
        s.reclaim_running("a", "w2").unwrap();
        (record, told)
    };
    let s = db.open();
    assert_eq!(s.find_study("a").unwrap(), Some(record.clone()));
    let c = &record.created_at;
    assert!(c.len() == 24 && &c[10..11] == "T" && &c[19..20] == "." && c.ends_with('Z'), "SQLite's shape: {c}");
    let trials = s.trials("a").unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[1].metrics["y"].to_bits(), 5e-324f64.to_bits());
    assert_eq!(trials[1].x, [1.0 / 3.0]);
    assert_eq!(trials.iter().map(|t| t.epoch).collect::<Vec<_>>(), [1, 0, 1]);
    assert_eq!(s.latest_snapshot("a").unwrap(), Some(told));
    assert!(matches!(s.acquire("a", &other_live_owner()), Err(Error::Locked(_))), "the lock persists");
    let next = s.start_trials("a", &[new_trial(2, 0.5)], "w", None).unwrap();
    assert_eq!(next[0].number, 3);
    let version = db.raw().i64("SELECT version::bigint FROM knobs_schema");
    assert_eq!(version, i64::from(knobs::storage::postgres::SCHEMA_VERSION));
}

#[test]
fn postgres_schemas_keep_studies_apart() {
    let one = crate::pg_schema!("apart_one");
    let two = crate::pg_schema!("apart_two");
    let (s1, s2) = (one.open(), two.open());
    s1.open_study("a", &spec("one")).unwrap();
    s1.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
    assert_eq!(s2.find_study("a").unwrap(), None);
    s2.open_study("a", &spec("two")).unwrap();
    assert!(s2.trials("a").unwrap().is_empty());
    assert_eq!(s1.find_study("a").unwrap().unwrap().spec, spec("one"));
    assert_eq!(s1.schema(), one.name);
    assert!(s1.target().contains(&one.name), "{}", s1.target());
}

#[test]
fn postgres_newer_schema_is_refused_clearly() {
    let db = crate::pg_schema!("newer");
    drop(db.open());
    let known = knobs::storage::postgres::SCHEMA_VERSION;
    db.raw().must(&format!("UPDATE knobs_schema SET version = {}", known + 7));
    let err = PostgresStorage::open(&db.url).expect_err("a newer schema must be refused");
    let Error::Storage(msg) = err else { panic!("expected Error::Storage, got {err:?}") };
    let want = format!("was written by a newer knobs (schema {}, this binary knows {known}); upgrade knobs", known + 7);
    assert!(msg.contains(&want) && msg.contains(&db.name), "{msg}");
    // Nothing was changed by the refused open.
    assert_eq!(db.raw().i64("SELECT version::bigint FROM knobs_schema"), i64::from(known + 7));
}

#[test]
fn postgres_foreign_schemas_and_bad_schema_names_are_refused() {
    let db = crate::pg_schema!("foreign");
    let raw = pg::Raw::connect("public");
    raw.must(&format!("CREATE SCHEMA {0}; CREATE TABLE {0}.trials (a INTEGER)", db.name));
    match PostgresStorage::open(&db.url) {
        Err(Error::Storage(m)) => assert!(m.contains(&db.name) && m.contains("not a knobs schema"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
    let base = pg::base_url();
    for bad in ["", "a-b", "a;drop", "\"x\"", &"s".repeat(64)] {
        match PostgresStorage::open(&pg::with_schema(&base, bad)) {
            Err(Error::Config(m)) => assert!(m.contains("schema"), "{m}"),
            other => panic!("schema {bad:?}: expected Error::Config, got {other:?}"),
        }
    }
}

#[test]
fn postgres_concurrent_opens_migrate_once() {
    let db = crate::pg_schema!("concurrent_open");
    let opened: Vec<PostgresStorage> = std::thread::scope(|scope| {
        let openers: Vec<_> = (0..4).map(|_| scope.spawn(|| PostgresStorage::open(&db.url))).collect();
        openers.into_iter().map(|o| o.join().expect("opener thread").unwrap_or_else(|e| panic!("{e}"))).collect()
    });
    opened[0].open_study("a", &spec("a")).unwrap();
    assert_eq!(opened[3].list_studies().unwrap().len(), 1);
    let raw = db.raw();
    assert_eq!(raw.i64("SELECT count(*) FROM knobs_schema"), 1);
    assert_eq!(
        raw.i64("SELECT version::bigint FROM knobs_schema"),
        i64::from(knobs::storage::postgres::SCHEMA_VERSION)
    );
}

#[test]
fn postgres_trial_numbers_are_unique_by_constraint() {
    let db = crate::pg_schema!("unique");
    let s = db.open();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
    let dup = db.raw().exec(
        "INSERT INTO trials (study_id, number, batch, x, config, state, worker, heartbeat_at, started_at)
         SELECT study_id, number, batch, x, config, state, worker, heartbeat_at, started_at FROM trials",
    );
    let err = dup.expect_err("a duplicate number must violate a constraint");
    assert!(err.contains("duplicate key") && err.contains("trials_study_id_number_key"), "{err}");
}

#[test]
fn postgres_damaged_rows_are_clear_errors() {
    let db = crate::pg_schema!("damaged");
    let s = db.open();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2)], "w", Some(&snap(1, SnapshotPoint::Asked, "s")))
        .unwrap();
    let expect_damaged = |r: knobs::Result<()>, needles: &[&str]| match r {
        Err(Error::Storage(m)) => {
            assert!(m.contains(&db.name) && m.contains("damaged"), "{m}");
            for n in needles {
                assert!(m.contains(n), "{m} lacks {n}");
            }
        }
        other => panic!("expected Error::Storage, got {other:?}"),
    };
    let raw = db.raw();
    // Garbage the constraints would stop, as if an older tool or a hand edit wrote it.
    raw.must("ALTER TABLE trials DROP CONSTRAINT trials_state_check, DROP CONSTRAINT trials_batch_check");
    let cases: [(&str, &[&str]); 6] = [
        ("UPDATE trials SET x = 'not json' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET x = '[\"zero\"]' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET config = '[1, 2]' WHERE number = 1", &["trial 1", "`config`"]),
        ("UPDATE trials SET metrics = '{\"y\": true}' WHERE number = 1", &["trial 1", "`metrics`"]),
        ("UPDATE trials SET batch = -5 WHERE number = 1", &["trial 1", "`batch`", "negative"]),
        ("UPDATE trials SET state = 'exploded' WHERE number = 1", &["trial 1", "`state`"]),
    ];
    for (sql, needles) in cases {
        raw.must(sql);
        expect_damaged(s.trials("a").map(drop), needles);
        // Restore the row for the next case.
        raw.must(
            "UPDATE trials SET x = '[0.2]', config = '{\"x\":0.2}', metrics = '{}', batch = 1, state = 'running'
             WHERE number = 1",
        );
        assert_eq!(s.trials("a").unwrap().len(), 2);
    }
    raw.must("UPDATE trials SET state = 'failed', fail_reason = NULL WHERE number = 1");
    expect_damaged(s.finish_trial("a", &complete(1, 0, 1.0), None), &["trial 1", "`state`"]);
    expect_damaged(s.heartbeat("a", 1, 0), &["trial 1", "`state`"]);
    raw.must("UPDATE snapshots SET snapshot = '{\"optimizer\": 3}'");
    expect_damaged(s.latest_snapshot("a").map(drop), &["snapshot"]);
    raw.must("UPDATE snapshots SET snapshot = '{}', point = 'sideways'");
    expect_damaged(s.latest_snapshot("a").map(drop), &["snapshot", "`point`"]);
    raw.must("UPDATE studies SET spec = '{'");
    expect_damaged(s.find_study("a").map(drop), &["study `a`", "`spec`"]);
    drop(s);
    raw.must("INSERT INTO knobs_schema (version) VALUES (1)");
    expect_damaged(PostgresStorage::open(&db.url).map(drop), &["knobs_schema"]);
}

#[test]
fn postgres_two_handles_four_threads_number_uniquely() {
    const THREADS: usize = 4;
    const CALLS: usize = 50;
    let db = crate::pg_schema!("two_handles");
    let handles = [db.open(), db.open()];
    handles[0].open_study("a", &spec("a")).unwrap();
    let got: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let s = &handles[i % 2];
                scope.spawn(move || {
                    let mut numbers = Vec::new();
                    for call in 0..CALLS {
                        let sn = snap(call as u64, SnapshotPoint::Asked, &format!("t{i}c{call}"));
                        let trials = s
                            .start_trials("a", &[new_trial(call as u64, i as f64 / 10.0)], &format!("w{i}"), Some(&sn))
                            .unwrap_or_else(|e| panic!("thread {i} call {call}: {e}"));
                        numbers.extend(trials.iter().map(|t| t.number));
                    }
                    numbers
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).collect()
    });
    let mut all: Vec<u64> = got.iter().flatten().copied().collect();
    for numbers in &got {
        assert_eq!(numbers.len(), CALLS);
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "each thread sees increasing numbers");
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..(THREADS * CALLS) as u64).collect();
    assert_eq!(all, expected, "unique, consecutive, none lost");
    for s in &handles {
        let stored: Vec<u64> = s.trials("a").unwrap().iter().map(|t| t.number).collect();
        assert_eq!(stored, expected);
    }
    assert_eq!(db.raw().i64("SELECT count(*) FROM snapshots"), 3, "older snapshots are pruned");
}

#[test]
fn postgres_connection_errors_name_the_server_but_never_the_password() {
    if pg::skip(module_path!()) {
        return;
    }
    let password = "s3cret-Pw-123";
    let config = pg::base_config();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let cases: [(String, Vec<String>); 2] = [
        // Nothing listens on port 1.
        (format!("postgres://knobs_user:{password}@127.0.0.1:1/test?schema=k"), vec!["127.0.0.1:1/test".into()]),
        (
            format!("postgres://postgres:{password}@{host}:{port}/knobs_no_such_db?schema=k"),
            vec![format!("{host}:{port}/knobs_no_such_db"), "does not exist".into()],
        ),
    ];
    for (url, needles) in &cases {
        for opened in [PostgresStorage::open(url).map(drop), storage::open(url).map(drop)] {
            let err = opened.expect_err("must not connect");
            let msg = err.to_string();
            // Nothing listening is a fault that may pass; a missing database is not.
            if url.contains(":1/") {
                assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
            } else {
                assert!(matches!(err, Error::Storage(_)), "{err:?}");
            }
            assert!(!msg.contains(password) && !format!("{err:?}").contains(password), "password leaked: {msg}");
            for n in needles {
                assert!(msg.contains(n.as_str()), "{msg} lacks {n}");
            }
        }
    }
    // A URL that does not parse is named with its password masked.
    let bad = format!("postgres://postgres:{password}@127.0.0.1:notaport/test");
    match PostgresStorage::open(&bad) {
        Err(Error::Config(m)) => assert!(!m.contains(password) && m.contains("postgres:***@127.0.0.1"), "{m}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn postgres_works_from_spawn_blocking_threads_of_another_runtime() {
    let db = crate::pg_schema!("spawn_blocking");
    let s = std::sync::Arc::new(db.open());
    s.open_study("a", &spec("a")).unwrap();
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let numbers: Vec<u64> = server.block_on(async {
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.start_trials("a", &[new_trial(1, i as f64 / 10.0)], "w", None))
            })
            .collect();
        let mut numbers = Vec::new();
        for c in calls {
            numbers.extend(c.await.expect("blocking task").unwrap_or_else(|e| panic!("{e}")).iter().map(|t| t.number));
        }
        numbers
    });
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3]);
    // The handle may even be dropped on the server's runtime.
    server.block_on(async move { drop(s) });
}

/// Eight handles creating one new file at the same moment (as eight `knobs worker`s
/// started together do): every one opens it, none calls it a foreign file.
#[test]
fn sqlite_many_handles_creating_one_file_at_once_all_open_it() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("new{round}.db"));
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    SqliteStorage::open(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
                });
            }
        });
    }
}
