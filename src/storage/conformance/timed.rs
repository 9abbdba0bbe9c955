//! Cases that need time to pass: `age(study, seconds)` moves the study's
//! clock readings into the past.

use super::*;
use crate::storage::{CLAIM_KEY_DAYS, LOCK_GRACE};

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
