//! Shared studies: any number of workers, in any number of processes on any
//! number of machines (and the HTTP server), ask → evaluate → tell against one
//! study in one storage.
//!
//! **How the optimizer state is shared: rebuilt under the study's lock from a
//! versioned snapshot.** Every ask is one storage transaction holding the
//! study's write lock ([`Storage::claim`]): it restores the newest optimizer
//! snapshot, tells the optimizer every trial finished since (in trial-number
//! order, each exactly once: a `told` mark is written in the same
//! transaction), asks for the batch, inserts the trials and stores the new
//! snapshot. Asks are therefore serialized per study and see every tell that
//! committed before them; tells themselves only write their trial's row (no
//! study lock), so evaluation results land concurrently. We chose this over
//! optimistic compare-and-swap because a CAS loser would have to redo a
//! possibly expensive restore + ask (a GP fit) and retry under contention,
//! and over rebuilding from all trials because replaying thousands of trials
//! per ask costs more than one snapshot restore.
//!
//! **Queued configurations.** [`SharedStudy::enqueue`] stores a configuration
//! in the study's queue; the next claims hand queued configurations out
//! (after the baseline, before the optimizer's proposals) and the optimizer is
//! told their results as points it did not propose.
//!
//! **Leases.** A claimed trial is leased to its worker at an epoch. Workers
//! heartbeat running trials; a trial whose heartbeat is older than the grace
//! period is stale, and the next claim (by any worker) re-leases it once to
//! the claiming worker with the epoch bumped, or fails it when it was already
//! retried. A late tell or heartbeat from the stale worker carries the old
//! epoch and is refused, so no result is counted twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::confirm::{Plan, SharedStep, shared_step};
use super::stored::{check_identity, read_spec, stored_spec};
use crate::error::{Error, Problem, Problems, Result};
use crate::optim::{self, Observed};
use crate::spec::Spec;
use crate::storage::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, NewTrial, SnapshotPoint, Storage, StoredSnapshot, TrialPage,
};
use crate::trial::{Trial, TrialState};

/// Longest failure reason kept (bytes); a longer one is cut at a character boundary.
pub const MAX_REASON: usize = 4096;
/// Most metrics one tell may carry.
pub const MAX_METRICS: usize = 1000;
/// Longest metric name (bytes).
pub const MAX_METRIC_NAME: usize = 200;

/// A trial's result as a worker or an API client reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The evaluation produced these metrics; they must let the objectives
    /// score the trial (every objective and constraint metric, finite).
    Complete {
        /// Metric values by name.
        metrics: BTreeMap<String, f64>,
        /// Seconds the evaluation took, if measured.
        elapsed_s: Option<f64>,
    },
    /// The evaluation failed; the reason is kept (cut to `MAX_REASON` bytes).
    Failed {
        /// Why the evaluation failed.
        reason: String,
        /// Whatever was measured before it failed; may be empty.
        metrics: BTreeMap<String, f64>,
        /// Seconds the evaluation took, if measured.
        elapsed_s: Option<f64>,
    },
}

impl Report {
    /// The report of a judged evaluation (a failure keeps what was measured).
    pub fn from_judged(judged: super::Judged) -> Report {
        match judged.state {
            TrialState::Failed { reason } => {
                Report::Failed { reason, metrics: judged.metrics, elapsed_s: judged.elapsed_s }
            }
            _ => Report::Complete { metrics: judged.metrics, elapsed_s: judged.elapsed_s },
        }
    }
}

/// How leases behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leases {
    /// Seconds without a heartbeat after which a running trial is stale.
    pub grace_s: f64,
    /// Times a stale trial is handed to another worker before it is failed.
    pub max_retries: u32,
}

impl Default for Leases {
    fn default() -> Self {
        Leases { grace_s: 60.0, max_retries: 1 }
    }
}

/// What one ask returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Re-leased stale trials first, then new ones.
    pub trials: Vec<Trial>,
    /// Trials of the study now running (these included).
    pub running: u64,
    /// Trials in the study, any state.
    pub total: u64,
    /// Nothing more will be asked: the budget is fully started, the optimizer
    /// finished, or the study was closed.
    pub exhausted: bool,
    /// The study is closed: no new trials are handed out.
    pub closed: bool,
    /// A retried keyed ask: `trials` are those the first ask with the key
    /// returned, and the counts were not read (they are 0).
    pub replayed: bool,
}

/// One study shared by many workers.
pub struct SharedStudy {
    spec: Spec,
    storage: Arc<dyn Storage>,
    /// The most trials a claim through this handle saw in the study (a lower bound of its
    /// size now: trials are only ever added), and whether the storage was looked at once.
    seen_total: AtomicU64,
    looked: AtomicBool,
}

impl SharedStudy {
    /// Create the study from a spec, or join it when it exists with the same
    /// space, objectives, optimizer and seed.
    pub fn open(spec: Spec, storage: Arc<dyn Storage>) -> Result<SharedStudy> {
        let name = spec.name.clone();
        if let Some(existing) = storage.find_study(&name)? {
            check_identity(&spec, &existing)?;
        }
        storage.open_study(&name, &stored_spec(&spec))?;
        Ok(SharedStudy::new(spec, storage))
    }

    /// Join an existing study by name, with the spec it was created with;
    /// relative paths in it resolve against `base_dir`.
    pub fn join(name: &str, storage: Arc<dyn Storage>, base_dir: PathBuf) -> Result<SharedStudy> {
        let record = storage
            .find_study(name)?
            .ok_or_else(|| Error::NotFound(format!("study `{name}` does not exist in this storage")))?;
        Ok(SharedStudy::new(read_spec(&record, base_dir)?, storage))
    }

    fn new(spec: Spec, storage: Arc<dyn Storage>) -> SharedStudy {
        SharedStudy { spec, storage, seen_total: AtomicU64::new(0), looked: AtomicBool::new(false) }
    }

    /// The study's checked spec, as stored with it.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The storage the study is shared through.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Claim up to `n` trials for `worker`: stale trials first, then new ones
    /// the optimizer proposes (the baseline first in an empty study), never
    /// past the study's trial budget.
    pub fn ask(&self, worker: &str, n: usize, leases: Leases) -> Result<Claimed> {
        self.ask_keyed(worker, n, leases, None)
    }

    /// [`SharedStudy::ask`] under an idempotency key: asking again with the
    /// same key returns the same trials instead of new ones (see
    /// [`Storage::claim_keyed`]).
    ///
    /// Once the search has used its share of the budget, claims hand out the confirmation
    /// phase (see [`crate::study`]): rounds of the best distinct candidates and the baseline,
    /// marked `confirm`, each round planned when the one before has finished (claims return
    /// nothing, not exhausted, while it runs).
    pub fn ask_keyed(&self, worker: &str, n: usize, leases: Leases, key: Option<&str>) -> Result<Claimed> {
        let plan = Plan::of(&self.spec);
        let budget = self.spec.budget.trials;
        let search = budget - plan.reserve(budget);
        let claimed = if search < budget && self.reached(search)? {
            let trials = self.storage.trials(&self.spec.name)?;
            match shared_step(&plan, &trials, budget, n) {
                SharedStep::Search(cap) => self.claim_search(worker, n, leases, key, cap, Phase::Search),
                SharedStep::Round { batch, items } => {
                    self.claim_round(worker, leases, key, trials.len() as u64, batch, items)
                }
                SharedStep::Wait => self.claim_search(worker, n, leases, key, 0, Phase::Wait),
                SharedStep::Done(_) => self.claim_search(worker, n, leases, key, 0, Phase::Over),
            }
        } else {
            self.claim_search(worker, n, leases, key, search, Phase::Search)
        }?;
        if !claimed.replayed {
            self.seen_total.fetch_max(claimed.total, Ordering::Relaxed);
        }
        Ok(claimed)
    }

    /// Whether the study has at least `k` trials. From what this handle's claims saw, with one
    /// look at the storage on its first ask (trials numbered 0, 1, …), so that a search claim
    /// costs no extra query. When other workers crossed `k` since, the claim capped at `k`
    /// hands out nothing (not exhausted) and the next one knows.
    fn reached(&self, k: u64) -> Result<bool> {
        if k == 0 || self.seen_total.load(Ordering::Relaxed) >= k {
            return Ok(true);
        }
        if self.looked.swap(true, Ordering::Relaxed) {
            return Ok(false);
        }
        let page = TrialPage { state: None, after: k.checked_sub(2), limit: 1 };
        let found = !self.storage.trials_page(&self.spec.name, &page)?.is_empty();
        if found {
            self.seen_total.fetch_max(k, Ordering::Relaxed);
        }
        Ok(found)
    }

    /// Claim confirmation trials of `batch` (a new batch when `None`), unless the study
    /// changed since it had `seen` trials (another claim took them first: this one returns
    /// nothing, and the next plans again).
    fn claim_round(
        &self,
        worker: &str,
        leases: Leases,
        key: Option<&str>,
        seen: u64,
        batch: Option<u64>,
        items: Vec<(crate::space::Config, bool)>,
    ) -> Result<Claimed> {
        let spec = &self.spec;
        let mut summary = None;
        let req = ClaimRequest { worker: worker.to_string(), grace_s: leases.grace_s, max_retries: leases.max_retries };
        let trials = self.storage.claim_keyed(&spec.name, &req, key, &mut |state: &ClaimState| {
            let mut new = Vec::new();
            if state.total == seen && !state.closed {
                let batch = batch.unwrap_or(state.last_batch + 1);
                for (config, baseline) in &items {
                    let x = spec.space.encode(config).map_err(Error::Config)?;
                    new.push(NewTrial {
                        batch,
                        ticket: None,
                        x,
                        config: config.clone(),
                        baseline: *baseline,
                        confirm: true,
                    });
                }
            }
            let added = new.len() as u64;
            summary = Some((state.total + added, state.running + added, state.closed, state.closed));
            Ok(ClaimPlan { new, told: Vec::new(), snapshot: None, dequeued: Vec::new() })
        })?;
        Ok(claimed(trials, summary))
    }

    /// Claim search trials: the optimizer's proposals up to `cap` trials in the study.
    fn claim_search(
        &self,
        worker: &str,
        n: usize,
        leases: Leases,
        key: Option<&str>,
        cap: u64,
        phase: Phase,
    ) -> Result<Claimed> {
        let spec = &self.spec;
        let problem = spec.problem();
        let mut summary = None;
        let req = ClaimRequest { worker: worker.to_string(), grace_s: leases.grace_s, max_retries: leases.max_retries };
        let trials = self.storage.claim_keyed(&spec.name, &req, key, &mut |state: &ClaimState| {
            let room = if state.closed { 0 } else { cap.saturating_sub(state.total) as usize };
            let want = n.saturating_sub(state.retried.len()).min(room);
            let mut optimizer = optim::build(&spec.optimizer, &problem)?;
            if let Some(s) = &state.snapshot {
                optimizer.restore(&s.snapshot).map_err(|e| {
                    Error::Storage(format!(
                        "study `{}`: the shared optimizer snapshot cannot be restored ({e}); \
                         start a new study with --warm-start {}",
                        spec.name, spec.name
                    ))
                })?;
            }
            let obs: Vec<Observed> =
                state.untold.iter().map(|t| super::observed(&spec.objectives, t, t.ticket, None)).collect();
            if !obs.is_empty() {
                optimizer.tell(&obs)?;
            }
            let mut new = Vec::new();
            let batch = state.last_batch + 1;
            let mut done = false;
            if want > 0
                && state.total == 0
                && let Some(config) = spec.space.baseline()
            {
                let x = spec.space.encode(&config).map_err(Error::Config)?;
                new.push(NewTrial { batch: 0, ticket: None, x, config, baseline: true, confirm: false });
            }
            // Enqueued configurations next (told to the optimizer as foreign points when they finish).
            let mut dequeued = Vec::new();
            for q in state.queued.iter().take(want.saturating_sub(new.len())) {
                new.push(NewTrial {
                    batch,
                    ticket: None,
                    x: q.x.clone(),
                    config: q.config.clone(),
                    baseline: false,
                    confirm: false,
                });
                dequeued.push(q.id);
            }
            if want > new.len() {
                let cands = super::asking::ask_valid(optimizer.as_mut(), &spec.space, want - new.len())?;
                done = cands.is_empty();
                for c in cands {
                    let config = spec.space.decode(&c.x);
                    new.push(NewTrial {
                        batch,
                        ticket: Some(c.ticket),
                        x: c.x,
                        config,
                        baseline: false,
                        confirm: false,
                    });
                }
            }
            let added = new.len() as u64;
            // Searching up to the whole budget: exhausted once it is handed out; up to the
            // search's share: the confirmation phase comes next.
            let exhausted = match phase {
                Phase::Over => true,
                Phase::Wait => state.closed,
                Phase::Search => state.closed || ((done || room as u64 <= added) && cap >= spec.budget.trials),
            };
            summary = Some((state.total + added, state.running + added, exhausted, state.closed));
            Ok(ClaimPlan {
                new,
                told: state.untold.iter().map(|t| t.number).collect(),
                snapshot: Some(StoredSnapshot { batch, point: SnapshotPoint::Asked, snapshot: optimizer.snapshot()? }),
                dequeued,
            })
        })?;
        Ok(claimed(trials, summary))
    }

    /// Queue a configuration to be evaluated before the optimizer's next
    /// proposals (a known-good or today's production configuration).
    /// Parameters left out take the spec's defaults; inactive conditional
    /// parameters are dropped. Returns how many configurations wait now.
    pub fn enqueue(&self, params: &crate::space::Config) -> Result<u64> {
        let (config, x) = self.spec.space.with_defaults(params).map_err(|problems| {
            let items = problems.into_iter().map(|p| p.under("params")).collect();
            Error::Invalid(Problems { source: "enqueue".into(), items })
        })?;
        self.storage.enqueue(&self.spec.name, &x, &config)
    }

    /// Store a trial's result under the lease it was claimed with (`epoch`).
    /// A complete report whose metrics cannot score the trial, or that
    /// carries too many or badly named metrics, is refused as invalid (field
    /// `metrics`); a result for a trial that finished or was re-leased since
    /// is refused ([`Error::Refused`]), so it is never counted twice.
    /// Returns the state stored.
    pub fn tell(&self, number: u64, epoch: u64, report: Report) -> Result<TrialState> {
        let (state, metrics, elapsed_s) = match report {
            Report::Complete { metrics, elapsed_s } => {
                check_metrics(&metrics)?;
                if let Err(m) = self.spec.objectives.score(&metrics) {
                    return Err(Error::Invalid(Problems {
                        source: "tell".into(),
                        items: vec![Problem::new("metrics", m)],
                    }));
                }
                (TrialState::Complete, metrics, elapsed_s)
            }
            Report::Failed { mut reason, metrics, elapsed_s } => {
                check_metrics(&metrics)?;
                if reason.len() > MAX_REASON {
                    let mut end = MAX_REASON;
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    reason.truncate(end);
                }
                (TrialState::Failed { reason }, metrics, elapsed_s)
            }
        };
        let finished = Finished { number, epoch, state: state.clone(), metrics, elapsed_s };
        match self.storage.finish_trial(&self.spec.name, &finished, None) {
            Ok(()) => Ok(state),
            // The same result told again (a retry after a lost response) is the same success.
            Err(Error::Refused(why)) => match self.storage.trial(&self.spec.name, number)? {
                Some(t) if t.epoch == epoch && t.state == finished.state && t.metrics == finished.metrics => Ok(state),
                _ => Err(Error::Refused(why)),
            },
            Err(e) => Err(e),
        }
    }

    /// Keep a claimed trial's lease (`epoch`) alive. Refused when the trial
    /// finished or was re-leased since: the caller should abandon it.
    pub fn heartbeat(&self, number: u64, epoch: u64) -> Result<()> {
        self.storage.heartbeat(&self.spec.name, number, epoch)
    }
}

/// Where a claim finds the study: searching, waiting for a confirmation round to finish, or
/// with nothing left to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Search,
    Wait,
    Over,
}

/// The answer to a claim from what the planner saw (`None`: a retried keyed claim).
fn claimed(trials: Vec<Trial>, summary: Option<(u64, u64, bool, bool)>) -> Claimed {
    match summary {
        Some((total, running, exhausted, closed)) => {
            Claimed { trials, running, total, exhausted, closed, replayed: false }
        }
        None => Claimed { trials, running: 0, total: 0, exhausted: false, closed: false, replayed: true },
    }
}

/// Metrics a tell may carry: at most [`MAX_METRICS`], names of 1 to
/// [`MAX_METRIC_NAME`] bytes.
fn check_metrics(metrics: &BTreeMap<String, f64>) -> Result<()> {
    let problem = if metrics.len() > MAX_METRICS {
        format!("at most {MAX_METRICS} metrics (got {})", metrics.len())
    } else if metrics.keys().any(|k| k.is_empty() || k.len() > MAX_METRIC_NAME) {
        format!("names must be 1..{MAX_METRIC_NAME} bytes")
    } else {
        return Ok(());
    };
    Err(Error::Invalid(Problems { source: "tell".into(), items: vec![Problem::new("metrics", problem)] }))
}
