//! The loop a `knobs worker` runs on a shared study: claim a batch,
//! evaluate it (heartbeating the leases meanwhile), tell each result as it
//! finishes, until the budget is used, this worker's own limit is reached
//! or it is stopped. Any number of workers, on any number of machines, run
//! it against one study (see [`super::SharedStudy`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::evaluation::{Evaluations, Judged};
use super::shared::{Leases, Report, SharedStudy};
use crate::error::{Error, Result};
use crate::eval::Evaluator;
use crate::storage::Owner;
use crate::trial::Trial;

/// How one worker runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// This worker's name in the storage.
    pub id: String,
    /// Stop after this many trials evaluated by this worker (`None`: until the budget is used).
    pub trials: Option<u64>,
    /// Trials claimed and evaluated at once.
    pub batch: usize,
    /// When a running trial goes stale, and how often it is retried.
    pub leases: Leases,
    /// How often running trials are heartbeaten (well under `leases.grace_s`).
    pub heartbeat: Duration,
    /// Once the budget is fully claimed, wait for the other workers' trials
    /// (and take over those that go stale) instead of exiting.
    pub wait: bool,
}

impl WorkerOptions {
    /// Defaults for a worker evaluating `batch` trials at once: named
    /// `host:pid`, leases of [`Leases::default`], heartbeats every sixth of
    /// the grace period, waiting for the others at the end.
    pub fn new(batch: usize) -> Self {
        let owner = Owner::current();
        let leases = Leases::default();
        WorkerOptions {
            id: format!("{}:{}", owner.host, owner.pid),
            trials: None,
            batch: batch.max(1),
            heartbeat: Duration::from_secs_f64(leases.grace_s / 6.0),
            leases,
            wait: true,
        }
    }
}

/// Why a worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStop {
    /// The stop flag was set (Ctrl-C / SIGTERM).
    Interrupted,
    /// This worker evaluated its own `trials` limit.
    WorkerTrials,
    /// The optimizer has nothing more to propose.
    OptimizerDone,
    /// The study's trial budget is used.
    Budget,
}

impl WorkerStop {
    /// In words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            WorkerStop::Interrupted => "interrupted",
            WorkerStop::WorkerTrials => "this worker's --trials",
            WorkerStop::OptimizerDone => "the optimizer has nothing more to try",
            WorkerStop::Budget => "the study's trial budget is used",
        }
    }
}

/// What one worker did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerReport {
    /// The worker's name.
    pub worker: String,
    /// The study it worked on.
    pub study: String,
    /// Trials this worker evaluated and stored as complete.
    pub complete: u64,
    /// Trials this worker evaluated and stored as failed.
    pub failed: u64,
    /// Results refused because the lease moved on (this worker was too slow and the trial was retried).
    pub refused: u64,
    /// Stale trials of other workers this worker took over.
    pub retried: u64,
    /// Wall time of the run.
    pub elapsed_s: f64,
    /// Why it stopped.
    pub stop: WorkerStop,
}

/// Run the worker loop on `shared` with `evaluator` until a stop condition
/// holds. A fatal evaluator error stops it with [`Error::Evaluator`] after
/// the batch's results are told.
pub fn run_worker(
    shared: &SharedStudy,
    evaluator: Arc<dyn Evaluator>,
    opts: &WorkerOptions,
    stop: &AtomicBool,
) -> Result<WorkerReport> {
    let spec = shared.spec();
    let evals = Evaluations::new(evaluator, opts.batch, &spec.name, spec.base_dir.clone())?;
    let start = Instant::now();
    let mut report = WorkerReport {
        worker: opts.id.clone(),
        study: spec.name.clone(),
        complete: 0,
        failed: 0,
        refused: 0,
        retried: 0,
        elapsed_s: 0.0,
        stop: WorkerStop::Budget,
    };
    // Running trials this worker holds, heartbeaten by a thread of their own.
    let held: Mutex<Vec<Trial>> = Mutex::new(Vec::new());
    let quit = AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| heartbeat_loop(shared, &held, &quit, opts.heartbeat));
        let outcome = claim_loop(shared, &evals, opts, stop, &held, &mut report);
        quit.store(true, Ordering::SeqCst);
        outcome
    });
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.stop = outcome?;
    Ok(report)
}

fn claim_loop(
    shared: &SharedStudy,
    evals: &Evaluations,
    opts: &WorkerOptions,
    stop: &AtomicBool,
    held: &Mutex<Vec<Trial>>,
    report: &mut WorkerReport,
) -> Result<WorkerStop> {
    let spec = shared.spec();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(WorkerStop::Interrupted);
        }
        let done = report.complete + report.failed;
        if opts.trials.is_some_and(|limit| done >= limit) {
            return Ok(WorkerStop::WorkerTrials);
        }
        let n = opts.trials.map_or(opts.batch, |limit| opts.batch.min((limit - done) as usize));
        let claimed = shared.ask(&opts.id, n, opts.leases)?;
        if claimed.trials.is_empty() {
            if !claimed.exhausted {
                return Ok(WorkerStop::OptimizerDone);
            }
            if claimed.running == 0 || !opts.wait {
                return Ok(WorkerStop::Budget);
            }
            // Others are still evaluating: wait, and take over what goes stale.
            std::thread::sleep(opts.heartbeat.min(Duration::from_secs(2)));
            continue;
        }
        report.retried += claimed.trials.iter().filter(|t| t.epoch > 0).count() as u64;
        *lock(held) = claimed.trials.clone();
        let mut fatal = None;
        let jobs = claimed.trials.iter().map(|t| (t.number, t.config.clone())).collect();
        for (number, result) in evals.start(jobs) {
            let Some(t) = claimed.trials.iter().find(|t| t.number == number) else { continue };
            let judged = Judged::new(&spec.objectives, &spec.space, &t.x, result);
            if let Some(reason) = &judged.fatal {
                fatal.get_or_insert(reason.clone());
            }
            lock(held).retain(|h| h.number != number);
            let failed = judged.failed();
            match shared.tell(number, t.epoch, Report::from_judged(judged)) {
                Ok(_) if failed => report.failed += 1,
                Ok(_) => report.complete += 1,
                Err(Error::Refused(m)) => {
                    tracing::warn!(trial = number, "result refused: {m}");
                    report.refused += 1;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(reason) = fatal {
            return Err(Error::Evaluator(reason));
        }
    }
}

/// Heartbeat the held trials every `every` until `quit`.
fn heartbeat_loop(shared: &SharedStudy, held: &Mutex<Vec<Trial>>, quit: &AtomicBool, every: Duration) {
    let every = every.max(Duration::from_millis(50));
    while !quit.load(Ordering::SeqCst) {
        let trials: Vec<Trial> = lock(held).clone();
        for t in trials {
            match shared.heartbeat(t.number, t.epoch) {
                Ok(()) => {}
                // Re-leased or finished elsewhere: stop beating it; its tell will be refused.
                Err(e @ (Error::Refused(_) | Error::NotFound(_))) => {
                    tracing::warn!(trial = t.number, "lease lost, the result will not count: {e}");
                    lock(held).retain(|h| h.number != t.number);
                }
                // The storage failed (a network blip, a restart): keep beating; the lease
                // only goes stale if it stays down past the grace period.
                Err(e) => tracing::warn!(trial = t.number, "heartbeat failed, retrying: {e}"),
            }
        }
        let until = Instant::now() + every;
        while Instant::now() < until && !quit.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(every));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
