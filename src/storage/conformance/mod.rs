//! The storage conformance suite: the cases every [`Storage`] backend must
//! pass, for a new backend's own tests (feature `conformance`).
//!
//! A backend's test file gives, per backend, a function from a case's name
//! to a fresh [`Backend`] (or `None` to skip, e.g. when its server is not
//! there), and calls [`storage_conformance!`](crate::storage_conformance)
//! with those functions' names. Every case then becomes its own `#[test]`,
//! named `<backend>::<case>`:
//!
//! ```
//! use std::sync::Arc;
//! use knobs::storage::MemoryStorage;
//! use knobs::storage::conformance::Backend;
//!
//! fn memory(_case: &str) -> Option<Backend> {
//!     let storage = Arc::new(MemoryStorage::new());
//!     let aged = storage.clone();
//!     Some(Backend { storage, age: Box::new(move |study, secs| aged.age(study, secs)), guard: Box::new(()) })
//! }
//!
//! knobs::storage_conformance!(memory);
//! # fn main() {
//! #     // A doctest runs no #[test]s: run a few cases by hand.
//! #     use knobs::storage::conformance::{cases, timed};
//! #     cases::open_study_is_idempotent_and_listed(&*memory("x").unwrap().storage);
//! #     let b = memory("y").unwrap();
//! #     timed::expired_claim_keys_claim_anew(&*b.storage, &*b.age);
//! # }
//! ```
//!
//! The cases test the contract's promises, not a backend's internals: one
//! transaction per call, trial numbering, epochs and stale leases, keyed
//! (idempotent) claims and their expiry, run locks and their takeover from
//! any host, snapshots stored atomically with trials, and bad input refused
//! without a trace.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, NewTrial, Owner, SnapshotPoint, SpecDocument, StateFilter, Storage,
    StoredSnapshot, TrialPage,
};
use crate::error::Error;
use crate::optim::Snapshot;
use crate::space::{Config, Value};
use crate::trial::TrialState;

pub mod cases;
mod keyed;
pub mod timed;

/// Moves a study's clock readings `seconds` into the past: `age(study, seconds)`.
pub type Ager = dyn Fn(&str, f64);

/// A backend under test, fresh for one case.
pub struct Backend {
    /// The storage the case runs on (empty).
    pub storage: Arc<dyn Storage>,
    /// Moves every clock reading of a study (trial heartbeats, the run
    /// lock's heartbeat, idempotency keys) this many seconds into the past,
    /// so the [`timed`] cases need not wait.
    pub age: Box<Ager>,
    /// Whatever must outlive the storage (a temporary directory, a schema
    /// dropped at the end); dropped last.
    pub guard: Box<dyn std::any::Any>,
}

/// Runs every conformance case on each named backend, one `#[test]` per
/// (backend, case). Each name is a function `fn(case: &str) ->
/// Option<Backend>` in scope where the macro is called; `None` skips.
#[macro_export]
macro_rules! storage_conformance {
    ($($backend:ident),* $(,)?) => {
        $(
            mod $backend {
                $crate::storage_conformance!(@cases $backend [
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
                ]);
                $crate::storage_conformance!(@timed $backend [
                    expired_claim_keys_claim_anew,
                    stale_leases_are_re_leased_then_failed,
                    a_silent_run_lock_is_taken_over_from_any_host,
                    a_reused_pid_does_not_keep_a_silent_lock,
                ]);
            }
        )*
    };
    (@cases $backend:ident [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                let Some(b) = super::$backend(stringify!($case)) else { return };
                $crate::storage::conformance::cases::$case(&*b.storage);
            }
        )*
    };
    (@timed $backend:ident [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                let Some(b) = super::$backend(stringify!($case)) else { return };
                $crate::storage::conformance::timed::$case(&*b.storage, &*b.age);
            }
        )*
    };
}

/// A stored spec told apart by `tag` (a backend keeps it bit for bit; the
/// numbers test that floats survive the round trip).
pub fn spec(tag: &str) -> SpecDocument {
    SpecDocument::new(serde_json::json!({ "tag": tag, "space": [{ "name": "x", "low": 0.1, "high": 1e-7 }] }))
}

/// A new trial of `batch` at `x` (one parameter `x`).
pub fn new_trial(batch: u64, x: f64) -> NewTrial {
    let mut config = Config::new();
    config.insert("x".into(), Value::Float(x));
    NewTrial { batch, ticket: Some(batch * 100), x: vec![x], config, baseline: false, confirm: false }
}

/// An optimizer snapshot told apart by `tag`.
pub fn snap(batch: u64, point: SnapshotPoint, tag: &str) -> StoredSnapshot {
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

/// Trial `number` (lease `epoch`) completed with metric `y`.
pub fn complete(number: u64, epoch: u64, y: f64) -> Finished {
    Finished {
        number,
        epoch,
        state: TrialState::Complete,
        metrics: BTreeMap::from([("y".to_string(), y)]),
        elapsed_s: Some(0.25),
    }
}

/// An owner that is alive (this process) but not this run.
pub fn other_live_owner() -> Owner {
    // Same host and pid as this test (so certainly alive), another run id.
    let me = Owner::current();
    Owner { id: format!("{}-other", me.id), ..me }
}

/// An owner on this host whose process does not exist.
pub fn dead_owner() -> Owner {
    let me = Owner::current();
    Owner { pid: 999_999_999, id: format!("{}:999999999:0", me.host), host: me.host }
}

/// The message of a refused write (a finished trial, a stale lease).
pub fn storage_message(r: crate::Result<()>) -> String {
    match r {
        Err(Error::Refused(m)) => m,
        other => panic!("expected Error::Refused, got {other:?}"),
    }
}

/// The message of a write to a trial that does not exist.
pub fn not_found(r: crate::Result<()>) -> String {
    match r {
        Err(Error::NotFound(m)) => m,
        other => panic!("expected Error::NotFound, got {other:?}"),
    }
}

/// A claim by `worker` (60 s grace, one retry of a stale trial).
pub fn claim_req(worker: &str) -> ClaimRequest {
    ClaimRequest { worker: worker.into(), grace_s: 60.0, max_retries: 1 }
}

/// A plan of `n` new trials in the next batch; counts how often it ran.
pub fn plan_n(n: usize, calls: &std::cell::Cell<u32>) -> impl FnMut(&ClaimState) -> crate::Result<ClaimPlan> + '_ {
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
