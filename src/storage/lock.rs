//! The run lock a `knobs run` holds on its study: who holds it, and whether
//! the holder is still there. One rule for every backend and every host.
//!
//! The holder heartbeats the lock (by re-acquiring it) every
//! [`LOCK_HEARTBEAT`]; a lock whose heartbeat is older than [`LOCK_GRACE`]
//! by the storage's clock is taken over by the next process, on any host.
//! On the holder's own host a process that is gone is known at once (its
//! pid has no `/proc` entry), so a crashed run is taken over without
//! waiting; a reused pid is caught by the heartbeat.

use std::time::Duration;

use super::Owner;

/// A lock whose holder has not heartbeaten for this long is taken over.
pub const LOCK_GRACE: Duration = Duration::from_secs(60);

/// How often a holder heartbeats its lock.
pub const LOCK_HEARTBEAT: Duration = Duration::from_secs(10);

/// A study's run lock as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunLock {
    pub owner: Owner,
    /// When it was taken (UTC, as the storage writes times).
    pub acquired_at: String,
    /// Seconds since the holder last heartbeat it, by the storage's clock.
    pub heartbeat_age_s: f64,
}

impl RunLock {
    /// Whether the holder still runs: it heartbeat within [`LOCK_GRACE`],
    /// and, when it runs on this host, its process exists.
    pub fn alive(&self) -> bool {
        // A NaN age (a damaged clock reading) counts as silent.
        let fresh = self.heartbeat_age_s <= LOCK_GRACE.as_secs_f64();
        if !fresh {
            return false;
        }
        self.owner.host != Owner::current().host || self.owner.process_exists()
    }
}

/// What `acquire` does with the lock it found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Acquire {
    /// Nobody (alive) holds it: take it.
    Take,
    /// The caller holds it already: refresh the heartbeat.
    Refresh,
    /// Someone else holds it and is alive: refuse.
    Refuse(RunLock),
}

/// Decide what `owner`'s `acquire` does when `held` is the stored lock.
pub(crate) fn acquire(held: Option<RunLock>, owner: &Owner) -> Acquire {
    match held {
        Some(l) if l.owner.id == owner.id => Acquire::Refresh,
        Some(l) if l.alive() => Acquire::Refuse(l),
        _ => Acquire::Take,
    }
}
