//! `knobs worker`: the ask → evaluate → tell loop against a shared study,
//! any number of them on any number of machines (see [`crate::shared`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use super::forecast::parse_duration;
use crate::error::{Error, Result};
use crate::eval::{EvalContext, Evaluator};
use crate::shared::{Leases, SharedStudy};
use crate::spec::Spec;
use crate::storage;
use crate::trial::{Trial, TrialState};

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// A spec file: creates the study on first use, or joins it when it exists with the same space,
    /// objectives, optimizer and seed. Give either this or --study.
    #[arg(required_unless_present = "study", conflicts_with = "study")]
    pub spec: Option<PathBuf>,
    /// Join an existing study by name; its stored spec (evaluator included) is used, relative paths
    /// resolved against the current directory.
    #[arg(long)]
    pub study: Option<String>,
    /// Shared storage: `postgres://user@host:5432/db` (many machines), or a SQLite file (one machine).
    #[arg(long)]
    pub storage: String,
    /// Stop after this many trials evaluated by this worker (default: until the study's budget is used).
    #[arg(long)]
    pub trials: Option<u64>,
    /// Trials claimed and evaluated at once (default: the spec's parallelism).
    #[arg(long)]
    pub batch: Option<usize>,
    /// A running trial whose worker has not heartbeaten for this long is stale and retried by another
    /// worker (e.g. 30s, 5m). Every worker of a study should use the same value.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub grace: i64,
    /// How often this worker heartbeats its running trials (default: a sixth of --grace).
    #[arg(long, value_parser = parse_duration)]
    pub heartbeat: Option<i64>,
    /// Times a stale trial is retried before it is failed.
    #[arg(long, default_value_t = 1)]
    pub max_retries: u32,
    /// This worker's name in the storage (default: host:pid).
    #[arg(long)]
    pub id: Option<String>,
    /// Exit as soon as the budget is fully claimed, instead of waiting for other workers' trials to
    /// finish (and taking over the ones that go stale).
    #[arg(long)]
    pub no_wait: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What one worker did.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    worker: String,
    study: String,
    /// Trials this worker evaluated and stored.
    complete: u64,
    failed: u64,
    /// Results refused because the lease moved on (this worker was too slow and the trial was retried).
    refused: u64,
    /// Stale trials of other workers this worker took over.
    retried: u64,
    elapsed_s: f64,
    stop: &'static str,
}

pub fn worker_cmd(a: WorkerArgs, stop: Arc<AtomicBool>) -> Result<i32> {
    if a.grace <= 0 {
        return Err(Error::Config("--grace must be at least 1 s".into()));
    }
    let store: Arc<dyn storage::Storage> = Arc::from(storage::open(&a.storage)?);
    let shared = match (&a.spec, &a.study) {
        (Some(path), _) => SharedStudy::open(Spec::load(path)?, store)?,
        (None, Some(name)) => {
            let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
            SharedStudy::join(name, store, cwd)?
        }
        (None, None) => return Err(Error::Config("give a spec file or --study NAME".into())),
    };
    let spec = shared.spec().clone();
    let evaluator: Arc<dyn Evaluator> = Arc::from(spec.evaluator.build(&spec.space, &spec.base_dir)?);
    let worker = a.id.clone().unwrap_or_else(|| {
        let owner = storage::Owner::current();
        format!("{}:{}", owner.host, owner.pid)
    });
    let leases = Leases { grace_s: a.grace as f64, max_retries: a.max_retries };
    let beat = Duration::from_secs_f64(a.heartbeat.map_or(a.grace as f64 / 6.0, |h| h as f64).max(0.05));
    let batch = a.batch.unwrap_or(spec.parallelism).max(1);
    let start = Instant::now();
    let mut sum = Summary { worker: worker.clone(), study: spec.name.clone(), ..Summary::default() };

    // Running trials this worker holds, heartbeaten by a background thread.
    let held: Arc<Mutex<Vec<Trial>>> = Arc::new(Mutex::new(Vec::new()));
    let quit = Arc::new(AtomicBool::new(false));
    let beater = {
        let (held, quit) = (held.clone(), quit.clone());
        let shared_storage = shared.storage().clone();
        let name = spec.name.clone();
        std::thread::spawn(move || {
            while !quit.load(Ordering::SeqCst) {
                let trials: Vec<Trial> = held.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for t in trials {
                    match shared_storage.heartbeat(&name, t.number, t.epoch) {
                        Ok(()) => {}
                        // Re-leased or finished elsewhere: stop beating it; its tell will be refused.
                        Err(e @ (Error::Refused(_) | Error::NotFound(_))) => {
                            tracing::warn!(trial = t.number, "lease lost, the result will not count: {e}");
                            held.lock().unwrap_or_else(|e| e.into_inner()).retain(|h| h.number != t.number);
                        }
                        // The storage failed (a network blip, a restart): keep beating; the lease
                        // only goes stale if it stays down past the grace period.
                        Err(e) => tracing::warn!(trial = t.number, "heartbeat failed, retrying: {e}"),
                    }
                }
                let until = Instant::now() + beat;
                while Instant::now() < until && !quit.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20).min(beat));
                }
            }
        })
    };

    let outcome = (|| -> Result<&'static str> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok("interrupted");
            }
            let done = sum.complete + sum.failed;
            if a.trials.is_some_and(|limit| done >= limit) {
                return Ok("worker_trials");
            }
            let n = a.trials.map_or(batch, |limit| batch.min((limit - done) as usize));
            let claimed = shared.ask(&worker, n, leases)?;
            if claimed.trials.is_empty() {
                if !claimed.exhausted {
                    return Ok("optimizer_done");
                }
                if claimed.running == 0 || a.no_wait {
                    return Ok("budget");
                }
                // Others are still evaluating: wait, and take over what goes stale.
                std::thread::sleep(beat.min(Duration::from_secs(2)));
                continue;
            }
            sum.retried += claimed.trials.iter().filter(|t| t.epoch > 0).count() as u64;
            *held.lock().unwrap_or_else(|e| e.into_inner()) = claimed.trials.clone();
            let results: Vec<(Trial, _)> = std::thread::scope(|s| {
                let handles: Vec<_> = claimed
                    .trials
                    .iter()
                    .map(|t| {
                        let evaluator = evaluator.clone();
                        let ctx =
                            EvalContext { study: spec.name.clone(), trial: t.number, base_dir: spec.base_dir.clone() };
                        s.spawn(move || crate::study::evaluate_with_retries(&*evaluator, &t.config, &ctx))
                    })
                    .collect();
                claimed.trials.iter().cloned().zip(handles.into_iter().map(|h| h.join())).collect()
            });
            held.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let mut fatal = None;
            for (t, joined) in results {
                let result =
                    joined.unwrap_or_else(|_| Err(crate::eval::EvalError::Invalid("the evaluator panicked".into())));
                let (state, metrics, elapsed, fatal_reason) = crate::study::judge(&spec.objectives, result);
                if let Some(r) = fatal_reason {
                    fatal.get_or_insert(r);
                }
                let failed = matches!(state, TrialState::Failed { .. });
                match shared.tell(&t, state, metrics, elapsed) {
                    Ok(()) if failed => sum.failed += 1,
                    Ok(()) => sum.complete += 1,
                    Err(Error::Refused(m)) => {
                        tracing::warn!(trial = t.number, "result refused: {m}");
                        sum.refused += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(reason) = fatal {
                return Err(Error::Evaluator(reason));
            }
        }
    })();
    quit.store(true, Ordering::SeqCst);
    let _ = beater.join();
    sum.elapsed_s = start.elapsed().as_secs_f64();
    let stop_reason = outcome?;
    sum.stop = stop_reason;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&sum)?);
    } else {
        println!(
            "worker {} on study `{}`: {} complete, {} failed, {} refused (lease lost), {} taken over from stale workers, {:.1} s; stopped: {}",
            sum.worker,
            sum.study,
            sum.complete,
            sum.failed,
            sum.refused,
            sum.retried,
            sum.elapsed_s,
            match stop_reason {
                "interrupted" => "interrupted",
                "worker_trials" => "this worker's --trials",
                "optimizer_done" => "the optimizer has nothing more to try",
                _ => "the study's trial budget is used",
            }
        );
    }
    Ok(if stop_reason == "interrupted" { 130 } else { 0 })
}
