//! In-memory storage: the reference backend for tests and one-off runs.
//! Nothing survives the process; semantics match [`super::SqliteStorage`]
//! exactly (same refusals, same messages, same numbering).

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::error::Result;
use crate::trial::{Trial, TrialState};

use super::common::{self, now_utc};
use super::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, NewTrial, Owner, Queued, Storage, StoredSnapshot, StudyRecord,
    StudySummary, TrialPage,
};

/// Studies, trials, snapshots and locks in one mutex-guarded map.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: Mutex<Vec<MemStudy>>,
}

#[derive(Debug)]
struct MemStudy {
    record: StudyRecord,
    /// Index == trial number (numbers are consecutive from 0).
    trials: Vec<MemTrial>,
    snapshot: Option<StoredSnapshot>,
    lock: Option<MemLock>,
    /// Idempotency key → (number, epoch) of the trials that claim returned.
    claim_keys: std::collections::HashMap<String, (Instant, Vec<(u64, u64)>)>,
    /// Enqueued configurations, oldest first.
    queue: std::collections::VecDeque<Queued>,
    /// The id the next enqueued configuration gets.
    next_queued: u64,
    /// A claim was made: workers or the API share the study.
    shared: bool,
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

#[derive(Debug)]
struct MemLock {
    owner: Owner,
    acquired_at: String,
    #[allow(dead_code)]
    heartbeat_at: String,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<MemStudy>> {
        // Every method validates before it mutates, so a panic elsewhere
        // cannot have left half a write behind.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
    let now = Instant::now();
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
    fn open_study(&self, name: &str, spec: &serde_json::Value) -> Result<StudyRecord> {
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
        let now = now_utc();
        match &mut s.lock {
            Some(held) if held.owner.id == owner.id => held.heartbeat_at = now,
            Some(held) if held.owner.is_alive() => return Err(common::locked(study, &held.owner, &held.acquired_at)),
            _ => s.lock = Some(MemLock { owner: owner.clone(), acquired_at: now.clone(), heartbeat_at: now }),
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
        let t = leased(s, study, finished.number, finished.epoch)?;
        t.trial.state = finished.state.clone();
        t.trial.metrics = finished.metrics.clone();
        t.trial.elapsed_s = elapsed_s;
        t.heartbeat = Instant::now();
        if let Some(snap) = snapshot {
            s.snapshot = Some(snap.clone());
        }
        Ok(())
    }

    fn reclaim_running(&self, study: &str, worker: &str) -> Result<Vec<Trial>> {
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        let now = Instant::now();
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
        let grace = common::check_claim(req, key)?;
        let mut studies = self.lock();
        let s = find(&mut studies, study)?;
        let ttl = std::time::Duration::from_secs(86_400 * u64::from(super::CLAIM_KEY_DAYS));
        if key.is_some() {
            s.claim_keys.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        if let Some((_, claimed)) = key.and_then(|k| s.claim_keys.get(k)) {
            let found = claimed
                .iter()
                .filter_map(|&(n, _)| usize::try_from(n).ok().and_then(|i| s.trials.get(i)).map(|t| t.trial.clone()))
                .collect();
            return super::replayed(claimed, found, study);
        }
        if let Some(held) = s.lock.as_ref().filter(|l| l.owner.is_alive()) {
            return Err(common::run_holds(study, &held.owner, &held.acquired_at));
        }
        // Changes are made to a copy and kept only when the plan succeeds.
        let mut trials = s.trials.clone();
        let now = Instant::now();
        let mut retried = Vec::new();
        for t in trials.iter_mut().filter(|t| !t.trial.state.is_finished()) {
            if now.duration_since(t.heartbeat).as_secs_f64() <= grace {
                continue;
            }
            if t.retries < req.max_retries {
                t.retries += 1;
                t.trial.epoch = t.trial.epoch.saturating_add(1);
                t.worker = req.worker.clone();
                t.heartbeat = now;
                retried.push(t.trial.clone());
            } else {
                t.trial.state = TrialState::Failed { reason: common::stale_reason(grace, t.retries) };
                t.heartbeat = now;
            }
        }
        let state = ClaimState {
            snapshot: s.snapshot.clone(),
            untold: trials.iter().filter(|t| !t.told && t.trial.state.is_finished()).map(|t| t.trial.clone()).collect(),
            retried,
            total: trials.len() as u64,
            running: trials.iter().filter(|t| !t.trial.state.is_finished()).count() as u64,
            last_batch: trials.iter().map(|t| t.trial.batch).max().unwrap_or(0),
            closed: s.record.closed,
            queued: s.queue.iter().take(ClaimState::QUEUED_READ).cloned().collect(),
        };
        let p = plan(&state)?;
        common::check_new_trials(study, &p.new)?;
        common::check_dequeued(study, &state.queued, &p.dequeued)?;
        for n in &p.told {
            match usize::try_from(*n).ok().and_then(|i| trials.get_mut(i)) {
                Some(t) if t.trial.state.is_finished() => t.told = true,
                Some(_) => {}
                None => return Err(common::no_trial(study, *n)),
            }
        }
        s.trials = trials;
        s.shared = true;
        s.queue.retain(|q| !p.dequeued.contains(&q.id));
        let new = insert(s, &p.new, &req.worker);
        if let Some(snap) = p.snapshot {
            s.snapshot = Some(snap);
        }
        let mut out = state.retried;
        out.extend(new);
        if let Some(k) = key {
            s.claim_keys.insert(k.to_string(), (Instant::now(), out.iter().map(|t| (t.number, t.epoch)).collect()));
        }
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
        leased(s, study, number, epoch)?.heartbeat = Instant::now();
        Ok(())
    }
}
