//! In-memory storage: the reference backend for tests and one-off runs.
//! Nothing survives the process; semantics match [`super::SqliteStorage`]
//! exactly (same refusals, same messages, same numbering).

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::error::Result;
use crate::trial::{Trial, TrialState};

use super::claim::{self, ClaimTx, Hold, Read};
use super::common::{self, now_utc};
use super::lock::{self, Acquire, RunLock};
use super::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, NewTrial, Owner, Queued, SpecDocument, Storage, StoredSnapshot,
    StudyRecord, StudySummary, TrialPage,
};

/// Studies, trials, snapshots and locks in one mutex-guarded map.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: Mutex<Vec<MemStudy>>,
}

#[derive(Debug, Clone)]
struct MemStudy {
    record: StudyRecord,
    /// Index == trial number (numbers are consecutive from 0).
    trials: Vec<MemTrial>,
    snapshot: Option<StoredSnapshot>,
    lock: Option<MemLock>,
    /// Idempotency key → when it was stored and the trials that claim returned (encoded).
    claim_keys: std::collections::HashMap<String, (Instant, String)>,
    /// Enqueued configurations, oldest first.
    queue: std::collections::VecDeque<Queued>,
    /// The id the next enqueued configuration gets.
    next_queued: u64,
    /// A claim was made: workers or the API share the study.
    shared: bool,
    /// How far this study's clock runs ahead of the real one (see [`MemoryStorage::age`]).
    skew: std::time::Duration,
}

impl MemStudy {
    /// The study's clock.
    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }
}

#[derive(Debug, Clone)]
struct MemTrial {
    trial: Trial,
    worker: String,
    heartbeat: Instant,
    /// Told to the shared optimizer by a claim.
    told: bool,
    /// Times a stale lease was handed to another worker.
    retries: u32,
}

#[derive(Debug, Clone)]
struct MemLock {
    owner: Owner,
    acquired_at: String,
    heartbeat: Instant,
}

impl MemLock {
    fn stored(&self, now: Instant) -> RunLock {
        RunLock {
            owner: self.owner.clone(),
            acquired_at: self.acquired_at.clone(),
            heartbeat_age_s: now.saturating_duration_since(self.heartbeat).as_secs_f64(),
        }
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<MemStudy>> {
        // Every method validates before it mutates, so a panic elsewhere
        // cannot have left half a write behind.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Move every clock reading of the study `seconds` into the past (trial
    /// heartbeats, the run lock's heartbeat, idempotency keys), as if that
    /// much time had passed: what the SQL backends' tests do with an
    /// `UPDATE … SET heartbeat_at = heartbeat_at - interval` (see
    /// `storage::conformance`).
    pub fn age(&self, study: &str, seconds: f64) {
        let mut studies = self.lock();
        if let Ok(s) = find(&mut studies, study) {
            s.skew += std::time::Duration::from_secs_f64(seconds);
        }
    }
}

/// A running trial leased at `epoch`; the contract's refusals otherwise.
fn leased<'a>(s: &'a mut MemStudy, study: &str, number: u64, epoch: u64) -> Result<&'a mut MemTrial> {
    let t = usize::try_from(number)
        .ok()
        .and_then(|i| s.trials.get_mut(i))
        .ok_or_else(|| common::no_trial(study, number))?;
    if t.trial.state.is_finished() {
        return Err(common::already_finished(study, number, &t.trial.state));
    }
    if t.trial.epoch != epoch {
        return Err(common::stale_epoch(study, number, epoch, t.trial.epoch, &t.worker));
    }
    Ok(t)
}

/// Number, store as running for `worker`, and return new trials.
fn insert(s: &mut MemStudy, trials: &[NewTrial], worker: &str) -> Vec<Trial> {
    let first = s.trials.len() as u64;
    let started: Vec<Trial> = trials.iter().zip(first..).map(|(t, number)| t.started(number)).collect();
    let now = s.now();
    s.trials.extend(started.iter().map(|t| MemTrial {
        trial: t.clone(),
        worker: worker.to_string(),
        heartbeat: now,
        told: false,
        retries: 0,
    }));
    started
}

fn find<'a>(studies: &'a mut [MemStudy], name: &str) -> Result<&'a mut MemStudy> {
    studies.iter_mut().find(|s| s.record.name == name).ok_or_else(|| common::no_study(name))
}

impl Storage for MemoryStorage {
    fn open_study(&self, name: &str, spec: &SpecDocument) -> Result<StudyRecord> {
        common::check_study_name(name)?;
        let mut studies = self.lock();
        if let Some(s) = studies.iter().find(|s| s.record.name == name) {
            return Ok(s.record.clone());
        }
        let record = StudyRecord { name: name.to_string(), spec: spec.clone(), created_at: now_utc(), closed: false };
        studies.push(MemStudy {
            record: record.clone(),
            trials: Vec::new(),
            snapshot: None,
            lock: None,
            claim_keys: Default::default(),
            queue: Default::default(),
            next_queued: 1,
            shared: false,
            skew: std::time::Duration::ZERO,
        });
        Ok(record)
    }

    fn find_study(&self, name: &str) -> Result<Option<StudyRecord>> {
        Ok(self.lock().iter().find(|s| s.record.name == name).map(|s| s.record.clone()))
    }

    fn list_studies(&self) -> Result<Vec<StudySummary>> {
        Ok(self
            .lock()
            .iter()
            .map(|s| {
                let count = |f: fn(&TrialState) -> bool| s.trials.iter().filter(|t| f(&t.trial.state)).count() as u64;
                StudySummary {
                    name: s.record.name.clone(),
                    created_at: s.record.created_at.clone(),
                    trials: s.trials.len() as u64,
                    complete: count(|st| matches!(st, TrialState::Complete)),
                    failed: count(|st| matches!(st, TrialState::Failed { .. })),
                    running: count(|st| matches!(st, TrialState::Running)),
                }
            })
            .collect())
    }

    fn acquire(&self, study: &str, owner: &Owner) -> Result<()> {
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        if s.shared {
            return Err(common::shared_study(study));
        }
        let now = s.now();
        match lock::acquire(s.lock.as_ref().map(|l| l.stored(now)), owner) {
            Acquire::Refuse(held) => return Err(common::locked(study, &held.owner, &held.acquired_at)),
            Acquire::Refresh => {
                if let Some(l) = &mut s.lock {
                    l.heartbeat = now;
                }
            }
            Acquire::Take => s.lock = Some(MemLock { owner: owner.clone(), acquired_at: now_utc(), heartbeat: now }),
        }
        Ok(())
    }

    fn release(&self, study: &str, owner: &Owner) -> Result<()> {
        let mut studies = self.lock();
        if let Ok(s) = find(&mut studies, study)
            && s.lock.as_ref().is_some_and(|l| l.owner.id == owner.id)
        {
            s.lock = None;
        }
        Ok(())
    }

    fn start_trials(
        &self,
        study: &str,
        trials: &[NewTrial],
        worker: &str,
        snapshot: Option<&StoredSnapshot>,
    ) -> Result<Vec<Trial>> {
        common::check_new_trials(study, trials)?;
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        let started = insert(s, trials, worker);
        if let Some(snap) = snapshot {
            s.snapshot = Some(snap.clone());
        }
        Ok(started)
    }

    fn finish_trial(&self, study: &str, finished: &Finished, snapshot: Option<&StoredSnapshot>) -> Result<()> {
        let elapsed_s = common::check_finished(study, finished)?;
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        let now = s.now();
        let t = leased(s, study, finished.number, finished.epoch)?;
        t.trial.state = finished.state.clone();
        t.trial.metrics = finished.metrics.clone();
        t.trial.elapsed_s = elapsed_s;
        t.heartbeat = now;
        if let Some(snap) = snapshot {
            s.snapshot = Some(snap.clone());
        }
        Ok(())
    }

    fn reclaim_running(&self, study: &str, worker: &str) -> Result<Vec<Trial>> {
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        let now = s.now();
        Ok(s.trials
            .iter_mut()
            .filter(|t| !t.trial.state.is_finished())
            .map(|t| {
                t.trial.epoch = t.trial.epoch.saturating_add(1);
                t.worker = worker.to_string();
                t.heartbeat = now;
                t.trial.clone()
            })
            .collect())
    }

    fn trials(&self, study: &str) -> Result<Vec<Trial>> {
        let mut studies = self.lock();
        Ok(find(&mut studies, study)?.trials.iter().map(|t| t.trial.clone()).collect())
    }

    fn latest_snapshot(&self, study: &str) -> Result<Option<StoredSnapshot>> {
        let mut studies = self.lock();
        Ok(find(&mut studies, study)?.snapshot.clone())
    }

    fn claim_keyed(
        &self,
        study: &str,
        req: &ClaimRequest,
        key: Option<&str>,
        plan: &mut dyn FnMut(&ClaimState) -> Result<ClaimPlan>,
    ) -> Result<Vec<Trial>> {
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        // The claim works on a copy, kept only when it succeeds.
        let mut tx = MemClaim { s: s.clone() };
        let out = claim::ready(claim::claim(&mut tx, study, req, key, plan))?;
        *s = tx.s;
        Ok(out)
    }

    fn enqueue(&self, study: &str, x: &[f64], config: &crate::space::Config) -> Result<u64> {
        common::check_enqueued(study, config)?;
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        if s.record.closed {
            return Err(common::closed(study));
        }
        s.queue.push_back(Queued { id: s.next_queued, x: x.to_vec(), config: config.clone() });
        s.next_queued += 1;
        Ok(s.queue.len() as u64)
    }

    fn queued(&self, study: &str) -> Result<u64> {
        let mut studies = self.lock();
        Ok(find(&mut studies, study)?.queue.len() as u64)
    }

    fn close_study(&self, study: &str) -> Result<()> {
        let mut studies = self.lock();
        find(&mut studies, study)?.record.closed = true;
        Ok(())
    }

    fn trials_page(&self, study: &str, page: &TrialPage) -> Result<Vec<Trial>> {
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        let first = page.after.map_or(0, |a| usize::try_from(a).unwrap_or(usize::MAX).saturating_add(1));
        Ok(s.trials
            .iter()
            .skip(first)
            .filter(|t| page.state.is_none_or(|f| f.matches(&t.trial.state)))
            .take(page.capped_limit())
            .map(|t| t.trial.clone())
            .collect())
    }

    fn heartbeat(&self, study: &str, number: u64, epoch: u64) -> Result<()> {
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        let now = s.now();
        leased(s, study, number, epoch)?.heartbeat = now;
        Ok(())
    }
}

/// A claim's transaction: a copy of the study, written back on success.
struct MemClaim {
    s: MemStudy,
}

impl MemClaim {
    fn trial(&mut self, number: u64) -> Option<&mut MemTrial> {
        usize::try_from(number).ok().and_then(|i| self.s.trials.get_mut(i))
    }
}

impl ClaimTx for MemClaim {
    async fn hold(&mut self) -> Result<Hold> {
        Ok(Hold { shared: self.s.shared, run_lock: self.s.lock.as_ref().map(|l| l.stored(self.s.now())) })
    }

    async fn find_key(&mut self, key: &str, days: u32) -> Result<Option<String>> {
        let ttl = std::time::Duration::from_secs(86_400 * u64::from(days));
        let now = self.s.now();
        self.s.claim_keys.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
        Ok(self.s.claim_keys.get(key).map(|(_, claimed)| claimed.clone()))
    }

    async fn trials(&mut self, numbers: &[u64]) -> Result<Vec<Trial>> {
        Ok(numbers.iter().filter_map(|&n| self.trial(n).map(|t| t.trial.clone())).collect())
    }

    async fn mark_shared(&mut self) -> Result<()> {
        self.s.shared = true;
        Ok(())
    }

    async fn stale(&mut self, grace_s: f64) -> Result<Vec<(u64, u64)>> {
        let now = self.s.now();
        Ok(self
            .s
            .trials
            .iter()
            .filter(|t| !t.trial.state.is_finished() && now.duration_since(t.heartbeat).as_secs_f64() > grace_s)
            .map(|t| (t.trial.number, u64::from(t.retries)))
            .collect())
    }

    async fn re_lease(&mut self, numbers: &[u64], worker: &str) -> Result<Vec<Trial>> {
        let now = self.s.now();
        let mut out = Vec::with_capacity(numbers.len());
        for &n in numbers {
            if let Some(t) = self.trial(n) {
                t.retries += 1;
                t.trial.epoch = t.trial.epoch.saturating_add(1);
                t.worker = worker.to_string();
                t.heartbeat = now;
                out.push(t.trial.clone());
            }
        }
        Ok(out)
    }

    async fn fail(&mut self, number: u64, reason: &str) -> Result<()> {
        let now = self.s.now();
        if let Some(t) = self.trial(number) {
            t.trial.state = TrialState::Failed { reason: reason.to_string() };
            t.heartbeat = now;
        }
        Ok(())
    }

    async fn read(&mut self) -> Result<Read> {
        let trials = &self.s.trials;
        Ok(Read {
            snapshot: self.s.snapshot.clone(),
            untold: trials.iter().filter(|t| !t.told && t.trial.state.is_finished()).map(|t| t.trial.clone()).collect(),
            total: trials.len() as u64,
            running: trials.iter().filter(|t| !t.trial.state.is_finished()).count() as u64,
            last_batch: trials.iter().map(|t| t.trial.batch).max().unwrap_or(0),
            closed: self.s.record.closed,
            queued: self.s.queue.iter().take(ClaimState::QUEUED_READ).cloned().collect(),
        })
    }

    async fn dequeue(&mut self, ids: &[u64]) -> Result<()> {
        self.s.queue.retain(|q| !ids.contains(&q.id));
        Ok(())
    }

    async fn mark_told(&mut self, numbers: &[u64]) -> Result<Vec<u64>> {
        let mut found = Vec::with_capacity(numbers.len());
        for &n in numbers {
            if let Some(t) = self.trial(n) {
                t.told |= t.trial.state.is_finished();
                found.push(n);
            }
        }
        Ok(found)
    }

    async fn insert(&mut self, _first: u64, trials: &[NewTrial], worker: &str) -> Result<Vec<Trial>> {
        Ok(insert(&mut self.s, trials, worker))
    }

    async fn store_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<()> {
        self.s.snapshot = Some(snapshot.clone());
        Ok(())
    }

    async fn store_key(&mut self, key: &str, claimed: &str) -> Result<()> {
        self.s.claim_keys.insert(key.to_string(), (self.s.now(), claimed.to_string()));
        Ok(())
    }
}
