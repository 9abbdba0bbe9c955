//! The batch run (`knobs run`): one process holds the study, runs the
//! ask → evaluate → tell loop with parallel evaluation and stop conditions,
//! and hands the trials to recommendations.
//!
//! Crash safety: the optimizer snapshot is stored with the trials an ask
//! produced (point `Asked`) and with the last trial of a batch after the
//! tell (point `Told`). A run killed mid-batch leaves completed trials
//! stored and the others `Running`; resuming restores the `Asked` snapshot,
//! re-evaluates the running trials with the same parameters, then tells the
//! whole batch — the same trajectory an uninterrupted run takes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::confirm::ConfirmReport;
use super::evaluation::{Evaluations, Judged};
use super::progress::{self, Progress};
use super::stored::{check_identity, stored_spec};
use crate::error::{Error, Result};
use crate::eval::Evaluator;
use crate::objective::{Objectives, Outcome};
use crate::optim::{self, Observed, Optimizer};
use crate::spec::Spec;
use crate::storage::{Finished, LOCK_HEARTBEAT, NewTrial, Owner, SnapshotPoint, Storage, StoredSnapshot};
use crate::trial::{Trial, TrialState};

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum StopReason {
    /// The study has all the trials its budget allows.
    Trials,
    /// The run's wall-time budget ran out.
    Time,
    /// The best value reached the target.
    Target,
    /// No improvement for `patience` trials.
    Patience,
    /// Too many failures in a row.
    Failures {
        /// Failed trials in a row when the run stopped.
        consecutive: u64,
        /// The last failure's reason.
        last_reason: String,
    },
    /// Interrupted (Ctrl-C / SIGTERM); finished trials are stored.
    Interrupted,
    /// The optimizer has nothing more to propose.
    OptimizerDone,
}

impl StopReason {
    /// One line for people, e.g. `trial budget reached`.
    pub fn describe(&self) -> String {
        match self {
            StopReason::Trials => "trial budget reached".into(),
            StopReason::Time => "time budget reached".into(),
            StopReason::Target => "target reached".into(),
            StopReason::Patience => "no improvement within the patience window".into(),
            StopReason::Failures { consecutive, last_reason } => {
                format!("{consecutive} trials failed in a row; the last one: {last_reason}")
            }
            StopReason::Interrupted => "interrupted; run again with --resume to continue".into(),
            StopReason::OptimizerDone => "the optimizer has converged and proposes nothing more".into(),
        }
    }

    /// Whether the search ended as planned, so that its best candidates are worth confirming.
    fn confirms(&self) -> bool {
        !matches!(self, StopReason::Failures { .. } | StopReason::Interrupted)
    }
}

/// Options of one run (not part of the study's identity).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Override the study's total trial budget.
    pub trials: Option<u64>,
    /// Run this many trials more than the study has now.
    pub add_trials: Option<u64>,
    /// Draw a progress bar (only shown on a terminal).
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The study's name.
    pub study: String,
    /// Why the run stopped.
    pub stop: StopReason,
    /// Trials this run added to the study.
    pub new_trials: u64,
    /// Trials the study has now, earlier runs' included.
    pub total_trials: u64,
    /// Wall-clock seconds the run took.
    pub elapsed_s: f64,
    /// True when the run continued a study that already had trials.
    pub resumed: bool,
    /// The confirmation phase, when the run had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<ConfirmReport>,
}

/// Running summaries of the finished trials, kept up to date as each one
/// finishes so that a check per trial costs O(1), not O(trials).
#[derive(Debug, Clone, Default)]
pub(super) struct Tally {
    best: Option<(f64, u64)>,
    /// In a Pareto study, the objective vectors of the feasible trials no other beats (the
    /// front so far): a trial that joins it is what resets `patience` there.
    front: crate::pareto::Archive,
    since_improvement: u64,
    consecutive_failures: u64,
    last_failure: String,
    pub(super) next_batch: u64,
    pub(super) finished: u64,
}

impl Tally {
    /// Add one finished trial.
    fn count(&mut self, objectives: &Objectives, t: &Trial) {
        self.finished += 1;
        if objectives.pareto {
            let joins = outcome(objectives, t)
                .filter(|o| o.feasible())
                .and_then(|_| objectives.signed_values(&t.metrics).ok())
                .is_some_and(|v| self.front.insert(v));
            if joins {
                self.since_improvement = 0;
            } else {
                self.since_improvement += 1;
            }
        } else {
            self.count_best(objectives, t);
        }
        match &t.state {
            TrialState::Failed { reason } => {
                self.consecutive_failures += 1;
                self.last_failure = reason.clone();
            }
            _ => self.consecutive_failures = 0,
        }
    }

    /// A single-objective study's best so far.
    fn count_best(&mut self, objectives: &Objectives, t: &Trial) {
        match outcome(objectives, t).filter(|o| o.feasible()) {
            Some(o) if self.best.is_none_or(|(b, _)| o.score < b) => {
                self.best = Some((o.score, t.number));
                self.since_improvement = 0;
            }
            _ => self.since_improvement += 1,
        }
    }
}

/// The score of a complete trial (`None` for failed, pruned or running ones).
fn outcome(objectives: &Objectives, t: &Trial) -> Option<Outcome> {
    match t.state {
        TrialState::Complete => objectives.score(&t.metrics).ok(),
        _ => None,
    }
}

/// What an optimizer is told about a stored trial.
pub(crate) fn observed(
    objectives: &Objectives,
    t: &Trial,
    ticket: Option<u64>,
    gradient: Option<Vec<f64>>,
) -> Observed {
    match outcome(objectives, t) {
        Some(o) => Observed {
            ticket,
            x: t.x.clone(),
            value: Some(o.score),
            violation: o.violation,
            gradient,
            slacks: objectives.slacks(&t.metrics).unwrap_or_default(),
            objectives: match objectives.pareto {
                true => objectives.signed_values(&t.metrics).unwrap_or_default(),
                false => Vec::new(),
            },
        },
        None => Observed::failed(ticket, t.x.clone()),
    }
}

/// An open study held by this process.
pub struct Study {
    pub(super) tally: Tally,
    /// The evaluator on `parallelism` threads, for the study's lifetime.
    pub(super) evals: Evaluations,
    pub(super) spec: Spec,
    storage: Arc<dyn Storage>,
    optimizer: Box<dyn Optimizer>,
    owner: Owner,
    pub(super) trials: Vec<Trial>,
    /// A batch whose candidates were asked but not yet told (after resume).
    pub(super) pending_batch: Option<u64>,
    resumed: bool,
    stop_flag: Arc<AtomicBool>,
    /// Score gradients (unit-cube coordinates) of evaluated trials not yet
    /// told, by trial number; see [`Study::observe`].
    gradients: BTreeMap<u64, Vec<f64>>,
    /// Configurations of an earlier study to evaluate first (see [`Study::warm_start`]).
    warm: Vec<NewTrial>,
    /// Keeps the run lock's heartbeat going while the study is open.
    lock_beat: LockBeat,
}

impl Drop for Study {
    fn drop(&mut self) {
        self.lock_beat.stop();
        let _ = self.storage.release(&self.spec.name, &self.owner);
    }
}

/// A thread that heartbeats the study's run lock every [`LOCK_HEARTBEAT`]
/// (by taking it again), so that another host can tell this run from a
/// crashed one. When the lock was lost (taken over after this process
/// stalled past the grace period), it sets the stop flag.
struct LockBeat {
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LockBeat {
    fn start(storage: Arc<dyn Storage>, study: String, owner: Owner, stop: Arc<AtomicBool>) -> LockBeat {
        let quit = Arc::new(AtomicBool::new(false));
        let q = quit.clone();
        let thread = std::thread::Builder::new()
            .name("knobs-lock".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !q.load(AtomicOrdering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if last.elapsed() < LOCK_HEARTBEAT {
                        continue;
                    }
                    last = Instant::now();
                    match storage.acquire(&study, &owner) {
                        Ok(()) => {}
                        Err(e @ Error::Locked(_)) => {
                            tracing::error!(study = %study, "lost the study's lock, stopping after the trials in flight: {e}");
                            stop.store(true, AtomicOrdering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(study = %study, "could not heartbeat the study's lock, retrying: {e}"),
                    }
                }
            })
            .ok();
        LockBeat { quit, thread }
    }

    fn stop(&mut self) {
        self.quit.store(true, AtomicOrdering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Study {
    /// Open the study named by the spec (creating it, or resuming it when
    /// `resume`), take its lock, and bring the optimizer to where it was.
    pub fn open(spec: Spec, storage: Arc<dyn Storage>, resume: bool) -> Result<Study> {
        let evaluator: Arc<dyn Evaluator> = Arc::from(spec.evaluator.build(&spec.space, &spec.base_dir)?);
        Study::open_with(spec, storage, evaluator, resume)
    }

    /// [`Study::open`] with an evaluator of the caller's (the spec's
    /// `evaluator` section is then not used to build one).
    pub fn open_with(
        spec: Spec,
        storage: Arc<dyn Storage>,
        evaluator: Arc<dyn Evaluator>,
        resume: bool,
    ) -> Result<Study> {
        let name = spec.name.clone();
        if let Some(existing) = storage.find_study(&name)? {
            let trials = storage.trials(&name)?;
            if !trials.is_empty() && !resume {
                // A run that is live says so first: "add --resume" would only lead to the lock.
                let probe = Owner::current();
                storage.acquire(&name, &probe)?;
                storage.release(&name, &probe)?;
                return Err(Error::Config(format!(
                    "study `{name}` already has {} trials in this storage; add --resume to continue it, \
                     or give the spec another `name` to start a new study",
                    trials.len()
                )));
            }
            check_identity(&spec, &existing)?;
        }
        storage.open_study(&name, &stored_spec(&spec))?;
        let owner = Owner::current();
        storage.acquire(&name, &owner)?;
        let optimizer = optim::build(&spec.optimizer, &spec.problem())?;
        let evals = Evaluations::new(evaluator, spec.parallelism, &spec.name, spec.base_dir.clone())?;
        let stop_flag = Arc::new(AtomicBool::new(false));
        let lock_beat = LockBeat::start(storage.clone(), name.clone(), owner.clone(), stop_flag.clone());
        let mut study = Study {
            evals,
            spec,
            storage,
            optimizer,
            owner,
            trials: Vec::new(),
            pending_batch: None,
            resumed: false,
            stop_flag,
            lock_beat,
            tally: Tally { next_batch: 1, ..Tally::default() },
            gradients: BTreeMap::new(),
            warm: Vec::new(),
        };
        study.recover()?;
        study.retally();
        Ok(study)
    }

    /// Seed a new study from an earlier one in the same storage: the `top`
    /// best complete trials of `from` (scored by this study's objectives on
    /// their stored metrics, feasible first) are evaluated first, right after
    /// the baseline, and told to the optimizer as points it did not propose.
    /// They are re-measured, not copied: the workload changed, so their old
    /// metrics are evidence of where to look, not of how they do now.
    /// Parameters the earlier study lacked take this study's defaults;
    /// configurations outside this space are skipped. Returns how many were queued.
    pub fn warm_start(&mut self, from: &str, top: usize) -> Result<usize> {
        if !self.trials.is_empty() {
            return Err(Error::Config(format!(
                "--warm-start seeds a new study, but `{}` already has {} trials; give the spec a new `name`",
                self.spec.name,
                self.trials.len()
            )));
        }
        if from == self.spec.name {
            return Err(Error::Config("--warm-start must name another study than the one being run".into()));
        }
        if self.storage.find_study(from)?.is_none() {
            return Err(Error::NotFound(format!("--warm-start: study `{from}` does not exist in this storage")));
        }
        let mut ranked: Vec<(bool, f64, &Trial)> = Vec::new();
        let earlier = self.storage.trials(from)?;
        for t in &earlier {
            if let Some(o) = outcome(&self.spec.objectives, t) {
                ranked.push((!o.feasible(), o.score, t));
            }
        }
        ranked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut seen = std::collections::BTreeSet::new();
        let mut skipped = 0;
        for (_, _, t) in ranked {
            if self.warm.len() >= top {
                break;
            }
            // Parameters this space lacks are dropped; those the earlier study lacked take the defaults.
            let known: crate::space::Config = t
                .config
                .iter()
                .filter(|(k, _)| self.spec.space.param(k).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let Ok((config, x)) = self.spec.space.with_defaults(&known) else {
                skipped += 1;
                continue;
            };
            if !seen.insert(serde_json::to_string(&config).map_err(Error::json)?) {
                continue;
            }
            self.warm.push(NewTrial { batch: 0, ticket: None, x, config, baseline: false, confirm: false });
        }
        if skipped > 0 {
            tracing::info!(from, skipped, "warm start: configurations outside this space were skipped");
        }
        Ok(self.warm.len())
    }

    /// A flag that stops the run after the trials in flight (e.g. set by a signal handler).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop_flag.clone()
    }

    /// The checked spec the study runs.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Every trial of the study, those of earlier runs included.
    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    /// Bring the optimizer to the stored state: restore the latest snapshot
    /// (or replay the stored trials when it is missing or unusable), and find
    /// trials a killed run left running.
    fn recover(&mut self) -> Result<()> {
        let name = self.spec.name.clone();
        let running = self.storage.reclaim_running(&name, &self.owner.id)?;
        self.trials = self.storage.trials(&name)?;
        if self.trials.is_empty() {
            return Ok(());
        }
        self.resumed = true;
        if !running.is_empty() {
            tracing::info!(study = %name, trials = running.len(), "re-running trials an interrupted run left unfinished");
        }
        let snapshot = self.storage.latest_snapshot(&name)?;
        let restored = match &snapshot {
            Some(s) => match self.optimizer.restore(&s.snapshot) {
                Ok(()) => Some(s.clone()),
                Err(e) => {
                    tracing::warn!(study = %name, error = %e, "optimizer snapshot unusable; replaying the stored trials");
                    None
                }
            },
            None => None,
        };
        match restored {
            Some(s) => {
                // The snapshot covers every batch up to s.batch; a later batch can
                // only be the baseline's (batch 0) before any snapshot, handled below.
                if s.point == SnapshotPoint::Asked {
                    self.pending_batch = Some(s.batch);
                }
            }
            None => self.replay()?,
        }
        // Running baseline left over with no snapshot at all: re-run it as a batch.
        if self.pending_batch.is_none()
            && let Some(b) = self.trials.iter().find(|t| t.state == TrialState::Running).map(|t| t.batch)
        {
            self.pending_batch = Some(b);
        }
        Ok(())
    }

    /// Rebuild the optimizer by replaying every stored batch in order.
    fn replay(&mut self) -> Result<()> {
        self.optimizer = optim::build(&self.spec.optimizer, &self.spec.problem())?;
        let mut batches: BTreeMap<u64, Vec<Trial>> = BTreeMap::new();
        for t in &self.trials {
            batches.entry(t.batch).or_default().push(t.clone());
        }
        for (batch, trials) in batches {
            let foreign = trials.iter().all(|t| t.ticket.is_none());
            let tickets: Vec<Option<u64>> = if foreign {
                vec![None; trials.len()]
            } else {
                let asked = super::asking::ask_valid(self.optimizer.as_mut(), &self.spec.space, trials.len())?;
                trials.iter().map(|t| asked.iter().find(|c| c.x == t.x).map(|c| c.ticket)).collect()
            };
            if trials.iter().any(|t| t.state == TrialState::Running) {
                self.pending_batch = Some(batch);
                continue;
            }
            let obs: Vec<Observed> = trials.iter().zip(tickets).map(|(t, ticket)| self.observe(t, ticket)).collect();
            self.optimizer.tell(&obs)?;
        }
        Ok(())
    }

    fn outcome(&self, t: &Trial) -> Option<Outcome> {
        outcome(&self.spec.objectives, t)
    }

    /// What the optimizer is told about a trial. The score's gradient is
    /// passed on when the evaluator reported it in this process (gradients
    /// are not stored: a trial replayed from storage has none).
    fn observe(&self, t: &Trial, ticket: Option<u64>) -> Observed {
        observed(&self.spec.objectives, t, ticket, self.gradients.get(&t.number).cloned())
    }

    /// Best feasible outcome so far (score, trial number).
    pub fn best(&self) -> Option<(f64, u64)> {
        self.tally.best
    }

    /// Index of a trial in `self.trials`: numbers are consecutive from 0, so
    /// the number is the index (searched only if storage ever breaks that).
    fn index(&self, number: u64) -> Option<usize> {
        match self.trials.get(number as usize) {
            Some(t) if t.number == number => Some(number as usize),
            _ => self.trials.iter().position(|t| t.number == number),
        }
    }

    fn trial(&self, number: u64) -> Option<&Trial> {
        self.index(number).map(|i| &self.trials[i])
    }

    /// Rebuild the tally from every stored trial (once, when opening).
    fn retally(&mut self) {
        let mut tally =
            Tally { next_batch: self.trials.iter().map(|t| t.batch + 1).max().unwrap_or(1), ..Tally::default() };
        for t in self.trials.iter().filter(|t| t.state.is_finished()) {
            tally.count(&self.spec.objectives, t);
        }
        self.tally = tally;
    }

    fn target_reached(&self) -> bool {
        match (self.spec.budget.target, self.best()) {
            (Some(target), Some((best, _))) => best <= self.spec.objectives.target_score(target),
            _ => false,
        }
    }

    /// Run until a stop condition holds; then, unless the run was interrupted or failing,
    /// confirm the best candidates (see [`crate::study`]'s confirmation phase) with the share of
    /// the budget `confirm.budget_share` reserved for it.
    pub fn run(&mut self, opts: &RunOptions) -> Result<RunReport> {
        let start = Instant::now();
        let before = self.trials.len() as u64;
        let total = match (opts.add_trials, opts.trials) {
            (Some(add), _) => before + add,
            (None, Some(t)) => t,
            (None, None) => self.spec.budget.trials,
        };
        let reserve = self.plan().reserve(opts.add_trials.unwrap_or(total));
        let search_total = total.saturating_sub(reserve);
        let time = self.spec.budget.time;
        let search_time = time.map(|t| if reserve > 0 { t.mul_f64(1.0 - self.spec.confirm.budget_share) } else { t });
        let progress = Progress::new(opts.progress, total, before, &self.spec);
        progress.update(self.tally.finished, self.best_shown(), None);
        let mut stop = self.search(search_total, start, search_time, &progress)?;
        let confirmation = if reserve > 0 && stop.confirms() {
            let c = self.confirm_rounds(total, start, time, &progress)?;
            if c.stop.returns_budget() {
                // Settled early (or nothing to confirm after all): the rest goes back to the search.
                stop = self.search(total, start, time, &progress)?;
            }
            Some(c)
        } else {
            None
        };
        let mut said = stop.describe();
        if let Some(c) = &confirmation {
            said.push_str(&format!("; confirmed in {} trials ({})", c.trials, c.stop.describe()));
        }
        progress.finish(self.tally.finished, self.best_shown(), &said);
        Ok(RunReport {
            study: self.spec.name.clone(),
            stop,
            new_trials: self.trials.len() as u64 - before,
            total_trials: self.trials.len() as u64,
            elapsed_s: start.elapsed().as_secs_f64(),
            resumed: self.resumed,
            confirmation,
        })
    }

    /// Ask, evaluate and tell batches until a stop condition holds (at most `total` trials
    /// in the study, at most `time` since `start`).
    fn search(
        &mut self,
        total: u64,
        start: Instant,
        time: Option<Duration>,
        progress: &Progress,
    ) -> Result<StopReason> {
        Ok(loop {
            if let Some(stop) = self.should_stop(total, start, time) {
                break stop;
            }
            let trials = if let Some(batch) = self.pending_batch.take() {
                self.trials.iter().filter(|t| t.batch == batch).cloned().collect::<Vec<_>>()
            } else if self.trials.is_empty() && self.spec.space.baseline().is_some() {
                self.start_baseline()?
            } else if !self.warm.is_empty() {
                let room = (total - self.trials.len() as u64) as usize;
                let mut warm = std::mem::take(&mut self.warm);
                warm.truncate(room);
                self.start_foreign(warm)?
            } else {
                let room = (total - self.trials.len() as u64) as usize;
                let n = self.spec.parallelism.min(room).max(1);
                match self.start_batch(n)? {
                    Some(t) => t,
                    None => break StopReason::OptimizerDone,
                }
            };
            self.evaluate_batch(trials, progress)?;
        })
    }

    /// Why the confirmation phase must stop early: interrupted, failing, out of trials or
    /// time.
    pub(super) fn must_stop(&self, total: u64, start: Instant, time: Option<Duration>) -> Option<StopReason> {
        if self.stop_flag.load(AtomicOrdering::SeqCst) {
            return Some(StopReason::Interrupted);
        }
        let fails = self.tally.consecutive_failures;
        if fails >= self.spec.budget.max_consecutive_failures {
            return Some(StopReason::Failures { consecutive: fails, last_reason: self.tally.last_failure.clone() });
        }
        if self.trials.len() as u64 >= total {
            return Some(StopReason::Trials);
        }
        if let Some(t) = time
            && start.elapsed() >= t
        {
            return Some(StopReason::Time);
        }
        None
    }

    fn should_stop(&self, total: u64, start: Instant, time: Option<Duration>) -> Option<StopReason> {
        if self.pending_batch.is_some() {
            return None; // always finish what a killed run started
        }
        if let Some(stop) = self.must_stop(total, start, time) {
            return Some(stop);
        }
        if self.target_reached() {
            return Some(StopReason::Target);
        }
        match self.spec.budget.patience {
            Some(p) if self.tally.since_improvement >= p => Some(StopReason::Patience),
            _ => None,
        }
    }

    fn start_baseline(&mut self) -> Result<Vec<Trial>> {
        let config = self.spec.space.baseline().unwrap_or_default();
        let x = self.spec.space.encode(&config).map_err(Error::Config)?;
        let new = NewTrial { batch: 0, ticket: None, x, config, baseline: true, confirm: false };
        let started = self.storage.start_trials(&self.spec.name, &[new], &self.owner.id, None)?;
        self.trials.extend(started.iter().cloned());
        Ok(started)
    }

    /// Start points the optimizer did not propose (warm-start configurations) as one batch.
    pub(super) fn start_foreign(&mut self, mut new: Vec<NewTrial>) -> Result<Vec<Trial>> {
        let batch = self.tally.next_batch;
        self.tally.next_batch += 1;
        for t in &mut new {
            t.batch = batch;
        }
        let snap = StoredSnapshot { batch, point: SnapshotPoint::Asked, snapshot: self.optimizer.snapshot()? };
        let started = self.storage.start_trials(&self.spec.name, &new, &self.owner.id, Some(&snap))?;
        self.trials.extend(started.iter().cloned());
        Ok(started)
    }

    fn start_batch(&mut self, n: usize) -> Result<Option<Vec<Trial>>> {
        let cands = super::asking::ask_valid(self.optimizer.as_mut(), &self.spec.space, n)?;
        if cands.is_empty() {
            return Ok(None);
        }
        let batch = self.tally.next_batch;
        self.tally.next_batch += 1;
        let new: Vec<NewTrial> = cands
            .into_iter()
            .map(|mut c| {
                optim::clamp_unit(&mut c.x);
                let config = self.spec.space.decode(&c.x);
                NewTrial { batch, ticket: Some(c.ticket), x: c.x, config, baseline: false, confirm: false }
            })
            .collect();
        let snap = StoredSnapshot { batch, point: SnapshotPoint::Asked, snapshot: self.optimizer.snapshot()? };
        let started = self.storage.start_trials(&self.spec.name, &new, &self.owner.id, Some(&snap))?;
        self.trials.extend(started.iter().cloned());
        Ok(Some(started))
    }

    /// Evaluate a batch in parallel; store each trial as it finishes; tell
    /// the optimizer the whole batch and store its snapshot with the last trial.
    pub(super) fn evaluate_batch(&mut self, batch: Vec<Trial>, progress: &Progress) -> Result<()> {
        let to_run: Vec<(u64, crate::space::Config)> =
            batch.iter().filter(|t| t.state == TrialState::Running).map(|t| (t.number, t.config.clone())).collect();
        let numbers: Vec<u64> = batch.iter().map(|t| t.number).collect();
        let mut remaining = to_run.len();
        if remaining == 0 {
            // Every trial of the batch finished before a kill: only the tell is missing.
            return self.tell_batch(&numbers, None);
        }
        let mut fatal: Option<String> = None;
        for (number, result) in self.evals.start(to_run) {
            remaining -= 1;
            let i = self.index(number).ok_or_else(|| Error::Storage(format!("trial {number} is not in this study")))?;
            let judged = Judged::new(&self.spec.objectives, &self.spec.space, &self.trials[i].x, result);
            if let Some(g) = judged.gradient {
                self.gradients.insert(number, g);
            }
            if let Some(reason) = judged.fatal {
                fatal.get_or_insert(reason);
            }
            if let TrialState::Failed { reason } = &judged.state {
                tracing::warn!(study = %self.spec.name, trial = number, "trial failed: {reason}");
            }
            let t = &mut self.trials[i];
            t.state = judged.state.clone();
            t.metrics = judged.metrics.clone();
            t.elapsed_s = judged.elapsed_s;
            self.tally.count(&self.spec.objectives, &self.trials[i]);
            let finished = Finished {
                number,
                epoch: self.trials[i].epoch,
                state: judged.state,
                metrics: judged.metrics,
                elapsed_s: judged.elapsed_s,
            };
            if remaining == 0 {
                if let Some(reason) = fatal {
                    // Store the trial, leave the optimizer untold: a fixed evaluator resumes cleanly.
                    self.storage.finish_trial(&self.spec.name, &finished, None)?;
                    return Err(Error::Evaluator(reason));
                }
                self.tell_batch(&numbers, Some(finished))?;
            } else {
                self.storage.finish_trial(&self.spec.name, &finished, None)?;
            }
            self.report_progress(progress, number);
        }
        Ok(())
    }

    /// The best value so far in the objective's units, with its trial.
    fn best_shown(&self) -> Option<(f64, u64)> {
        self.best().map(|(s, n)| (self.spec.objectives.display_value(s), n))
    }

    fn report_progress(&self, progress: &Progress, number: u64) {
        let Some(t) = self.trial(number) else { return };
        let value = self.outcome(t).map(|o| self.spec.objectives.display_value(o.score));
        let finished = progress::Finished { number, state: t.state.label(), value };
        progress.update(self.tally.finished, self.best_shown(), Some(finished));
    }

    /// Tell the optimizer a fully evaluated batch; store the snapshot in the
    /// same transaction as `last` (or on its own when every trial is stored).
    fn tell_batch(&mut self, numbers: &[u64], last: Option<Finished>) -> Result<()> {
        let batch: Vec<&Trial> = numbers.iter().filter_map(|n| self.trial(*n)).collect();
        let obs: Vec<Observed> = batch.iter().map(|t| self.observe(t, t.ticket)).collect();
        let b = batch.first().map(|t| t.batch).unwrap_or(0);
        for n in numbers {
            self.gradients.remove(n);
        }
        self.optimizer.tell(&obs)?;
        let snap = StoredSnapshot { batch: b, point: SnapshotPoint::Told, snapshot: self.optimizer.snapshot()? };
        match last {
            Some(f) => self.storage.finish_trial(&self.spec.name, &f, Some(&snap)),
            // No trial left to finish: an empty start stores the snapshot alone.
            None => self.storage.start_trials(&self.spec.name, &[], &self.owner.id, Some(&snap)).map(|_| ()),
        }
    }
}
