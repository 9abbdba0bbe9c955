//! The cases that need no clock, one function each (see [`super`]).

use super::*;

pub use super::keyed::*;

/// Opening a study twice returns it as first created (whatever spec the second call passes);
/// `find_study` and `list_studies` see it.
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

/// Trial numbers count from 0 in each study, without gaps, whatever other studies do.
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

/// A started trial reads back exactly as given (batch, ticket, point, configuration, baseline
/// and confirmation flags), `Running` at epoch 0.
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
    let baseline =
        NewTrial { batch: 0, ticket: None, x: x.clone(), config: config.clone(), baseline: true, confirm: true };
    let last = NewTrial { batch: i64::MAX as u64, ticket: Some(i64::MAX as u64), ..new_trial(1, 0.5) };
    let started = s.start_trials("a", &[baseline, last], "w", None).unwrap();
    let stored = s.trials("a").unwrap();
    for got in [&started[0], &stored[0]] {
        assert_eq!(got.number, 0);
        assert_eq!(got.batch, 0);
        assert_eq!(got.ticket, None);
        assert!(got.baseline && got.confirm);
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
    assert!(!stored[1].baseline && !stored[1].confirm);
}

/// Metrics and elapsed time read back bit for bit (subnormals, -0.0, long fractions).
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
    let done =
        Finished { number: 1, epoch: 0, state: TrialState::Complete, metrics: nan_metrics, elapsed_s: Some(elapsed) };
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

/// A finished trial is never edited: a second finish is [`Error::Refused`].
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

/// A finish from a lease epoch other than the trial's is refused.
pub fn wrong_epoch_is_refused(s: &dyn Storage) {
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
    let msg = storage_message(s.finish_trial("a", &complete(0, 1, 1.0), None));
    // An epoch the trial never had is not "stale": the message says what happened.
    assert!(msg.contains("epoch 1 was never given out") && msg.contains("epoch 0"), "{msg}");
    assert_eq!(s.trials("a").unwrap()[0].state, TrialState::Running);
    s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
}

/// `reclaim_running` hands a worker's running trials back with the epoch bumped; the old epoch
/// can no longer finish them.
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

/// A snapshot is written in the same transaction as the start or finish it
/// comes with: a refused write keeps neither; without one, the latest stays;
/// the newest wins.
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

/// The run lock: one owner at a time, re-acquiring refreshes it, `release` frees it, releasing
/// what another holds does nothing.
pub fn acquire_and_release(s: &dyn Storage) {
    s.open_study("a", &spec("a")).unwrap();
    s.open_study("b", &spec("b")).unwrap();
    let me = Owner::current();
    let other = other_live_owner();
    s.acquire("a", &me).unwrap();
    s.acquire("a", &me).unwrap(); // re-entrant for the holder

    match s.acquire("a", &other) {
        Err(Error::Locked(msg)) => {
            for part in [format!("pid {}", me.pid), format!("host {}", me.host), "`a`".into(), "wait for it".into()] {
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

/// A lock whose owner on this host has no process is taken over at once.
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

/// `trials` returns a study's trials ordered by number, whatever order they finished in.
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

/// Failed (with their reason) and pruned trials read back in their state, with the metrics they
/// had.
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
    let empty_reason = Finished { number: 1, state: TrialState::Failed { reason: String::new() }, ..failed.clone() };
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

/// Writes to a study or trial that does not exist are [`Error::NotFound`], not silently
/// ignored.
pub fn unknown_study_and_trial_are_refused(s: &dyn Storage) {
    let unknown_study = |r: crate::Result<()>| match r {
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

/// Input a backend cannot store (a ticket beyond its integer range, …) is refused and leaves
/// nothing behind: no partial batch.
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
