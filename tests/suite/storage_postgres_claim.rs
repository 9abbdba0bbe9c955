//! `claim` and `heartbeat` on PostgreSQL: stale leases re-leased or failed
//! by the database's clock, `told` marking, rollback on a planner error, and
//! many workers claiming through separate handles at once.
//!
//! Needs a server: `KNOBS_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test works in a fresh
//! schema of its own. Without a server the tests fail.

use std::collections::BTreeSet;
use std::time::Duration;

use knobs::Error;
use knobs::space::Value;
use knobs::storage::conformance::{self, complete, new_trial};
use knobs::storage::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, PostgresStorage, SnapshotPoint, SpecDocument, Storage,
    StoredSnapshot,
};
use knobs::trial::{Trial, TrialState};

use crate::pg;

fn spec() -> SpecDocument {
    conformance::spec("claims")
}

fn snap(batch: u64, tag: &str) -> StoredSnapshot {
    conformance::snap(batch, SnapshotPoint::Asked, tag)
}

fn req(worker: &str, grace_s: f64, max_retries: u32) -> ClaimRequest {
    ClaimRequest { worker: worker.into(), grace_s, max_retries }
}

/// A plan of `n` new trials in the next batch, with a snapshot naming it.
fn ask(n: usize) -> impl FnMut(&ClaimState) -> knobs::Result<ClaimPlan> {
    move |st| {
        let batch = st.last_batch + 1;
        Ok(ClaimPlan {
            new: (0..n).map(|i| new_trial(batch, i as f64 / 10.0)).collect(),
            told: Vec::new(),
            snapshot: Some(snap(batch, &format!("batch {batch}"))),
            dequeued: Vec::new(),
        })
    }
}

/// Claim, and keep what the planner saw.
fn claim_seen(
    s: &dyn Storage,
    r: &ClaimRequest,
    mut plan: impl FnMut(&ClaimState) -> knobs::Result<ClaimPlan>,
) -> (knobs::Result<Vec<Trial>>, Option<ClaimState>) {
    let mut seen = None;
    let out = s.claim("a", r, &mut |st: &ClaimState| {
        seen = Some(st.clone());
        plan(st)
    });
    (out, seen)
}

fn numbers(trials: &[Trial]) -> Vec<u64> {
    trials.iter().map(|t| t.number).collect()
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

/// Move the heartbeats of these trials an hour into the past.
fn age(raw: &pg::Raw, trials: &[u64]) {
    let list: Vec<String> = trials.iter().map(u64::to_string).collect();
    raw.must(&format!(
        "UPDATE trials SET heartbeat_at = heartbeat_at - interval '1 hour' WHERE number IN ({})",
        list.join(", ")
    ));
}

#[test]
fn claim_writes_the_plan_and_shows_the_state() {
    let db = crate::pg_schema!("plan_and_state");
    let s = db.open();
    s.open_study("a", &spec()).unwrap();

    let (got, seen) = claim_seen(&s, &req("w1", 60.0, 2), ask(3));
    let got = got.unwrap();
    let seen = seen.expect("the planner ran");
    assert_eq!((seen.total, seen.running, seen.last_batch), (0, 0, 0));
    assert!(seen.snapshot.is_none() && seen.untold.is_empty() && seen.retried.is_empty());
    assert_eq!(numbers(&got), [0, 1, 2]);
    assert!(got.iter().all(|t| t.state == TrialState::Running && t.epoch == 0 && t.batch == 1));
    assert_eq!(s.trials("a").unwrap(), got, "returned as stored");
    assert_eq!(s.latest_snapshot("a").unwrap(), Some(snap(1, "batch 1")));

    s.finish_trial("a", &complete(1, 0, 2.5), None).unwrap();
    let failed = Finished { state: TrialState::Failed { reason: "boom".into() }, ..complete(2, 0, 0.0) };
    s.finish_trial("a", &failed, None).unwrap();
    // Told: the finished trial 1 (and the running 0, which is left as it is).
    let (got, seen) =
        claim_seen(&s, &req("w2", 60.0, 2), |st: &ClaimState| Ok(ClaimPlan { told: vec![0, 1], ..ask(2)(st)? }));
    let seen = seen.unwrap();
    assert_eq!((seen.total, seen.running, seen.last_batch), (3, 1, 1));
    assert_eq!(seen.snapshot, Some(snap(1, "batch 1")));
    assert_eq!(numbers(&seen.untold), [1, 2]);
    assert_eq!(seen.untold[0].metrics["y"], 2.5);
    assert_eq!(seen.untold[1].state, TrialState::Failed { reason: "boom".into() });
    assert_eq!(numbers(&got.unwrap()), [3, 4]);

    s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
    let (got, seen) = claim_seen(&s, &req("w1", 60.0, 2), |_: &ClaimState| Ok(ClaimPlan::default()));
    assert!(got.unwrap().is_empty());
    let seen = seen.unwrap();
    assert_eq!(numbers(&seen.untold), [0, 2], "1 was told; 0 was running when named, so it was not");
    assert_eq!((seen.total, seen.running, seen.last_batch), (5, 2, 2));
    assert_eq!(s.latest_snapshot("a").unwrap(), Some(snap(2, "batch 2")), "no snapshot in the plan: kept");
}

#[test]
fn stale_trials_are_re_leased_by_the_database_clock() {
    let db = crate::pg_schema!("re_leased");
    let s = db.open();
    s.open_study("a", &spec()).unwrap();
    s.claim("a", &req("w1", 60.0, 3), &mut ask(3)).unwrap();

    // Within the grace period nothing is stale.
    let (got, seen) = claim_seen(&s, &req("w2", 60.0, 3), |_: &ClaimState| Ok(ClaimPlan::default()));
    assert!(got.unwrap().is_empty() && seen.unwrap().retried.is_empty());

    age(&db.raw(), &[0, 2]);
    let (got, seen) = claim_seen(&s, &req("w2", 60.0, 3), ask(1));
    let got = got.unwrap();
    let seen = seen.unwrap();
    assert_eq!(seen.retried.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(0, 1), (2, 1)]);
    assert_eq!((seen.total, seen.running), (3, 3), "re-leased trials still run");
    assert_eq!(got.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(0, 1), (2, 1), (3, 0)], "retried first");
    let trials = s.trials("a").unwrap();
    assert_eq!(trials.iter().map(|t| t.epoch).collect::<Vec<_>>(), [1, 0, 1, 0]);
    assert_eq!(&trials[0], &got[0]);

    // The worker declared dead comes back late: refused, not counted twice.
    let msg = storage_message(s.finish_trial("a", &complete(0, 0, 9.0), None));
    assert!(msg.contains("epoch 0 is stale") && msg.contains("`w2`"), "{msg}");
    let msg = storage_message(s.heartbeat("a", 0, 0));
    assert!(msg.contains("epoch 0 is stale") && msg.contains("`w2`"), "{msg}");
    s.heartbeat("a", 0, 1).unwrap();
    s.finish_trial("a", &complete(0, 1, 3.0), None).unwrap();
    assert_eq!(s.trials("a").unwrap()[0].metrics["y"], 3.0);

    // A fresh lease right after: with no grace at all, any earlier heartbeat
    // is older than the database's clock now.
    std::thread::sleep(Duration::from_millis(20));
    let (_, seen) = claim_seen(&s, &req("w3", 0.0, 3), |_: &ClaimState| Ok(ClaimPlan::default()));
    let seen = seen.unwrap();
    assert_eq!(seen.retried.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(1, 1), (2, 2), (3, 1)]);
}

#[test]
fn heartbeats_keep_a_lease_and_refuse_like_finish() {
    let db = crate::pg_schema!("heartbeats");
    let s = db.open();
    s.open_study("a", &spec()).unwrap();
    s.claim("a", &req("w1", 60.0, 3), &mut ask(2)).unwrap();
    let raw = db.raw();
    age(&raw, &[0, 1]);
    s.heartbeat("a", 0, 0).unwrap();
    let (_, seen) = claim_seen(&s, &req("w2", 60.0, 3), |_: &ClaimState| Ok(ClaimPlan::default()));
    assert_eq!(numbers(&seen.unwrap().retried), [1], "the trial that beat is kept");

    let msg = storage_message(s.heartbeat("a", 1, 0));
    assert!(msg.contains("trial 1") && msg.contains("stale"), "{msg}");
    for n in [7, u64::MAX] {
        let msg = not_found(s.heartbeat("a", n, 0));
        assert!(msg.contains(&format!("no trial {n}")), "{msg}");
    }
    match s.heartbeat("nope", 0, 0) {
        Err(Error::NotFound(m)) => assert!(m.contains("`nope`"), "{m}"),
        other => panic!("expected Error::NotFound, got {other:?}"),
    }
    s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
    let msg = storage_message(s.heartbeat("a", 0, 0));
    assert!(msg.contains("already complete"), "{msg}");
}

#[test]
fn exhausted_retries_fail_the_trial() {
    let db = crate::pg_schema!("exhausted");
    let s = db.open();
    s.open_study("a", &spec()).unwrap();
    s.claim("a", &req("w1", 60.0, 1), &mut ask(2)).unwrap();
    let raw = db.raw();
    age(&raw, &[0, 1]);
    // Trial 0: one retry allowed; trial 1 is failed at once by a claim that allows none.
    let (got, _) = claim_seen(&s, &req("w2", 60.0, 1), |_: &ClaimState| Ok(ClaimPlan::default()));
    assert_eq!(got.unwrap().iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(0, 1), (1, 1)]);
    age(&raw, &[0]);
    s.heartbeat("a", 1, 1).unwrap();
    let (got, seen) = claim_seen(&s, &req("w3", 60.0, 1), |_: &ClaimState| Ok(ClaimPlan::default()));
    assert!(got.unwrap().is_empty(), "retried once already: not handed on again");
    let seen = seen.unwrap();
    assert_eq!((seen.total, seen.running), (2, 1));
    assert_eq!(numbers(&seen.untold), [0], "the failed trial is for the optimizer to hear about");
    let TrialState::Failed { reason } = &seen.untold[0].state else { panic!("{:?}", seen.untold[0].state) };
    assert!(reason.contains("stopped heartbeating") && reason.contains("60"), "{reason}");
    assert_eq!(s.trials("a").unwrap()[0].state, seen.untold[0].state);
    let msg = storage_message(s.finish_trial("a", &complete(0, 1, 1.0), None));
    assert!(msg.contains("already failed") && msg.contains("never edited"), "{msg}");
    assert!(storage_message(s.heartbeat("a", 0, 1)).contains("already failed"));

    // max_retries 0: failed at the first staleness.
    age(&raw, &[1]);
    let (got, _) = claim_seen(&s, &req("w4", 60.0, 0), |_: &ClaimState| Ok(ClaimPlan::default()));
    assert!(got.unwrap().is_empty());
    let sum = &s.list_studies().unwrap()[0];
    assert_eq!((sum.trials, sum.failed, sum.running), (2, 2, 0));
}

#[test]
fn a_planner_error_rolls_everything_back() {
    let db = crate::pg_schema!("rollback");
    let s = db.open();
    s.open_study("a", &spec()).unwrap();
    s.claim("a", &req("w1", 60.0, 3), &mut ask(3)).unwrap();
    s.finish_trial("a", &complete(2, 0, 1.0), None).unwrap();
    age(&db.raw(), &[0, 1]);
    let before = s.trials("a").unwrap();
    let snapshot = s.latest_snapshot("a").unwrap();

    let mut called = 0;
    let r = s.claim("a", &req("w2", 60.0, 0), &mut |st: &ClaimState| {
        called += 1;
        assert_eq!(st.running, 0, "both stale trials are failed in the transaction");
        Err(Error::optimizer("random", "no more points"))
    });
    assert_eq!(called, 1);
    assert!(matches!(r, Err(Error::Optimizer { .. })), "the planner's own error: {r:?}");
    assert_eq!(s.trials("a").unwrap(), before, "no stale trial failed, nothing told");

    // A plan the storage refuses is rolled back the same way.
    let mut bad = new_trial(2, 0.5);
    bad.config.insert("x".into(), Value::Float(f64::NAN));
    let r = s.claim("a", &req("w2", 60.0, 3), &mut |_: &ClaimState| {
        Ok(ClaimPlan {
            new: vec![new_trial(2, 0.1), bad.clone()],
            told: vec![2],
            snapshot: Some(snap(9, "refused")),
            dequeued: vec![],
        })
    });
    assert!(matches!(r, Err(Error::Config(_))), "{r:?}");
    let r = s.claim("a", &req("w2", 60.0, 3), &mut |_: &ClaimState| {
        Ok(ClaimPlan {
            new: vec![new_trial(2, 0.1)],
            told: vec![2, 99],
            snapshot: Some(snap(9, "refused")),
            dequeued: vec![],
        })
    });
    match r {
        Err(Error::NotFound(m)) => assert!(m.contains("no trial 99"), "{m}"),
        other => panic!("expected Error::NotFound, got {other:?}"),
    }
    assert_eq!(s.trials("a").unwrap(), before, "no re-lease, no new trial");
    assert_eq!(s.latest_snapshot("a").unwrap(), snapshot);
    let (_, seen) = claim_seen(&s, &req("w2", 60.0, 3), |_: &ClaimState| Ok(ClaimPlan::default()));
    let seen = seen.unwrap();
    assert_eq!(numbers(&seen.untold), [2], "still untold");
    assert_eq!(numbers(&seen.retried), [0, 1], "still stale, re-leased now");

    // Requests are checked before anything is read.
    for bad in [req("", 1.0, 1), req("w", f64::NAN, 1), req("w", -1.0, 1), req("w", f64::INFINITY, 1)] {
        let r = s.claim("a", &bad, &mut |_: &ClaimState| panic!("the planner must not run"));
        assert!(matches!(r, Err(Error::Config(_))), "{bad:?}: {r:?}");
    }
    match s.claim("nope", &req("w", 1.0, 1), &mut |_: &ClaimState| panic!("the planner must not run")) {
        Err(Error::NotFound(m)) => assert!(m.contains("`nope`"), "{m}"),
        other => panic!("expected Error::NotFound, got {other:?}"),
    }
}

#[test]
fn four_workers_on_four_handles_number_each_trial_once() {
    const WORKERS: usize = 4;
    const CLAIMS: usize = 10;
    const BATCH: usize = 5;
    let db = crate::pg_schema!("four_workers");
    let handles: Vec<PostgresStorage> = (0..WORKERS).map(|_| db.open()).collect();
    handles[0].open_study("a", &spec()).unwrap();
    let got: Vec<Vec<(u64, u64)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, s)| {
                scope.spawn(move || {
                    let worker = format!("w{i}");
                    let mut out = Vec::new();
                    for call in 0..CLAIMS {
                        let mut total = 0;
                        let mut plan = |st: &ClaimState| {
                            total = st.total;
                            ask(BATCH)(st)
                        };
                        let trials = s
                            .claim("a", &req(&worker, 3600.0, 3), &mut plan)
                            .unwrap_or_else(|e| panic!("{worker} claim {call}: {e}"));
                        assert_eq!(trials.len(), BATCH);
                        // Numbered right after what the planner saw: nobody slipped in between.
                        assert_eq!(trials[0].number, total, "{worker} claim {call}");
                        out.extend(trials.iter().map(|t| (t.number, t.batch)));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).collect()
    });
    let n = (WORKERS * CLAIMS * BATCH) as u64;
    let mut all: Vec<u64> = got.iter().flatten().map(|&(number, _)| number).collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "every number once, none lost");
    let batches: BTreeSet<u64> = got.iter().flatten().map(|&(_, batch)| batch).collect();
    assert_eq!(batches, (1..=(WORKERS * CLAIMS) as u64).collect(), "one batch per claim: claims were serialized");
    let stored = handles[1].trials("a").unwrap();
    assert_eq!(numbers(&stored), (0..n).collect::<Vec<_>>());
    assert!(stored.iter().all(|t| t.state == TrialState::Running && t.epoch == 0));
}

#[test]
fn concurrent_claims_re_lease_each_stale_trial_once() {
    const WORKERS: usize = 4;
    let db = crate::pg_schema!("stale_once");
    let handles: Vec<PostgresStorage> = (0..WORKERS).map(|_| db.open()).collect();
    handles[0].open_study("a", &spec()).unwrap();
    handles[0].claim("a", &req("dead", 60.0, 3), &mut ask(12)).unwrap();
    age(&db.raw(), &(0..12).collect::<Vec<_>>());
    let got: Vec<Vec<Trial>> = std::thread::scope(|scope| {
        let workers: Vec<_> = handles
            .iter()
            .enumerate()
            .map(|(i, s)| {
                scope.spawn(move || {
                    s.claim("a", &req(&format!("w{i}"), 60.0, 3), &mut |_: &ClaimState| Ok(ClaimPlan::default()))
                        .unwrap_or_else(|e| panic!("w{i}: {e}"))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).collect()
    });
    let mut all: Vec<u64> = got.iter().flatten().map(|t| t.number).collect();
    all.sort_unstable();
    assert_eq!(all, (0..12).collect::<Vec<_>>(), "each stale trial handed to exactly one worker");
    assert!(got.iter().flatten().all(|t| t.epoch == 1));
    assert!(handles[2].trials("a").unwrap().iter().all(|t| t.epoch == 1 && t.state == TrialState::Running));
}
