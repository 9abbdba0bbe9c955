//! The claim protocol, written once over a narrow per-backend transaction
//! interface ([`ClaimTx`]): each backend opens its transaction (holding the
//! study's write lock) and implements small primitives; the order of the
//! steps, the key expiry, the run-lock check, what counts as stale and what
//! the planner sees are decided here, the same for every backend.
//!
//! The primitives are `async` because the PostgreSQL backend's client is;
//! the in-memory and SQLite backends answer at once and drive the protocol
//! with [`ready`].

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::common::{self, damaged};
use super::lock::RunLock;
use super::{CLAIM_KEY_DAYS, ClaimPlan, ClaimRequest, ClaimState, NewTrial, Queued, StoredSnapshot};
use crate::error::{Error, Result};
use crate::trial::Trial;

/// What a claim reads first, under the study's write lock.
pub(crate) struct Hold {
    /// Workers or the API already claimed from the study.
    pub shared: bool,
    /// The `knobs run` that holds the study, if any.
    pub run_lock: Option<RunLock>,
}

/// What the planner needs besides the re-leased trials, read under the lock.
pub(crate) struct Read {
    pub snapshot: Option<StoredSnapshot>,
    pub untold: Vec<Trial>,
    pub total: u64,
    pub running: u64,
    pub last_batch: u64,
    pub closed: bool,
    pub queued: Vec<Queued>,
}

/// One backend's claim transaction. Every method runs inside the
/// transaction the backend opened for the claim; an error rolls it all back.
pub(crate) trait ClaimTx {
    /// Take the study's write lock; say whether it is shared and who holds its run lock.
    async fn hold(&mut self) -> Result<Hold>;
    /// Drop the study's idempotency keys older than `days`, then return the
    /// encoded trials (`[[number, epoch], …]`) stored under `key`, if any.
    async fn find_key(&mut self, key: &str, days: u32) -> Result<Option<String>>;
    /// The study's trials with these numbers (any order).
    async fn trials(&mut self, numbers: &[u64]) -> Result<Vec<Trial>>;
    /// Remember that the study is shared (the first claim).
    async fn mark_shared(&mut self) -> Result<()>;
    /// Running trials whose heartbeat is older than `grace_s` seconds by the
    /// storage's clock, as `(number, retries)` in number order.
    async fn stale(&mut self, grace_s: f64) -> Result<Vec<(u64, u64)>>;
    /// Lease these running trials to `worker` again: epoch + 1, retries + 1,
    /// heartbeat now. Returns them as they now are, in number order.
    async fn re_lease(&mut self, numbers: &[u64], worker: &str) -> Result<Vec<Trial>>;
    /// Fail a running trial with `reason` (heartbeat and finish time now).
    async fn fail(&mut self, number: u64, reason: &str) -> Result<()>;
    /// The rest of the planner's view.
    async fn read(&mut self) -> Result<Read>;
    /// Remove these queued configurations.
    async fn dequeue(&mut self, ids: &[u64]) -> Result<()>;
    /// Mark these trials told when they are finished; return the numbers
    /// that exist in the study (running or not).
    async fn mark_told(&mut self, numbers: &[u64]) -> Result<Vec<u64>>;
    /// Insert new trials `Running` for `worker`, numbered from `first`.
    async fn insert(&mut self, first: u64, trials: &[NewTrial], worker: &str) -> Result<Vec<Trial>>;
    /// Store the optimizer snapshot.
    async fn store_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<()>;
    /// Store `key` with the encoded trials it returned.
    async fn store_key(&mut self, key: &str, claimed: &str) -> Result<()>;
}

/// [`super::Storage::claim_keyed`], the same on every backend.
pub(crate) async fn claim<T: ClaimTx>(
    tx: &mut T,
    study: &str,
    req: &ClaimRequest,
    key: Option<&str>,
    plan: &mut dyn FnMut(&ClaimState) -> Result<ClaimPlan>,
) -> Result<Vec<Trial>> {
    let grace = common::check_claim(req, key)?;
    let hold = tx.hold().await?;
    // 0. A key seen within its retention: the trials it claimed, nothing new.
    // Expired keys go first, so a retry past the retention claims anew.
    if let Some(k) = key
        && let Some(text) = tx.find_key(k, CLAIM_KEY_DAYS).await?
    {
        let claimed = super::decode_claimed(&text)
            .map_err(|e| damaged(format_args!("study `{study}`"), "a stored claim key", e))?;
        let numbers: Vec<u64> = claimed.iter().map(|c| c.0).collect();
        let found = tx.trials(&numbers).await?;
        return super::replayed(&claimed, found, study);
    }
    // A live `knobs run` holding the study keeps claims out.
    if let Some(held) = hold.run_lock.filter(RunLock::alive) {
        return Err(common::run_holds(study, &held.owner, &held.acquired_at));
    }
    if !hold.shared {
        tx.mark_shared().await?;
    }
    // 1. Stale leases: re-leased while retries remain, failed otherwise.
    let mut again = Vec::new();
    for (number, retries) in tx.stale(grace).await? {
        if retries < u64::from(req.max_retries) {
            again.push(number);
        } else {
            tx.fail(number, &common::stale_reason(grace, retries)).await?;
        }
    }
    let retried = if again.is_empty() { Vec::new() } else { tx.re_lease(&again, &req.worker).await? };
    // 2. The planner decides on what was read under the lock.
    let read = tx.read().await?;
    let state = ClaimState {
        snapshot: read.snapshot,
        untold: read.untold,
        retried,
        total: read.total,
        running: read.running,
        last_batch: read.last_batch,
        closed: read.closed,
        queued: read.queued,
    };
    let p = plan(&state)?;
    // 3. The plan, written in the same transaction.
    common::check_new_trials(study, &p.new)?;
    common::check_dequeued(study, &state.queued, &p.dequeued)?;
    if !p.dequeued.is_empty() {
        tx.dequeue(&p.dequeued).await?;
    }
    if !p.told.is_empty() {
        let found = tx.mark_told(&p.told).await?;
        if let Some(missing) = p.told.iter().find(|n| !found.contains(n)) {
            return Err(common::no_trial(study, *missing));
        }
    }
    let new = tx.insert(state.total, &p.new, &req.worker).await?;
    if let Some(snap) = &p.snapshot {
        tx.store_snapshot(snap).await?;
    }
    let mut out = state.retried;
    out.extend(new);
    if let Some(k) = key {
        tx.store_key(k, &super::encode_claimed(&out)).await?;
    }
    Ok(out)
}

/// Drive a future that never waits (the in-memory and SQLite claim
/// transactions answer at once).
pub(crate) fn ready<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(Error::Storage("internal: a synchronous claim transaction waited".into())),
    }
}
