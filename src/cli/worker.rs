//! `knobs worker`: the arguments and the summary of the worker loop
//! ([`crate::study::run_worker`]) on a shared study.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Args;

use super::forecast::parse_duration;
use crate::error::{Error, Result};
use crate::eval::Evaluator;
use crate::spec::Spec;
use crate::storage;
use crate::study::{Leases, SharedStudy, WorkerOptions, WorkerStop, run_worker};

/// Arguments of `knobs worker` (the option help says what each one does).
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

/// Runs `knobs worker` until the study's budget is used or `stop` is set (by a signal handler);
/// returns exit code 130 when stopped by `stop`, else 0.
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
    let spec = shared.spec();
    let evaluator: Arc<dyn Evaluator> = Arc::from(spec.evaluator.build(&spec.space, &spec.base_dir)?);
    let mut opts = WorkerOptions::new(a.batch.unwrap_or(spec.parallelism));
    if let Some(id) = a.id {
        opts.id = id;
    }
    opts.trials = a.trials;
    opts.leases = Leases { grace_s: a.grace as f64, max_retries: a.max_retries };
    opts.heartbeat = Duration::from_secs_f64(a.heartbeat.map_or(a.grace as f64 / 6.0, |h| h as f64).max(0.05));
    opts.wait = !a.no_wait;
    let report = run_worker(&shared, evaluator, &opts, &stop)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(Error::json)?);
    } else {
        println!(
            "worker {} on study `{}`: {} complete, {} failed, {} refused (lease lost), {} taken over from stale workers, {:.1} s; stopped: {}",
            report.worker,
            report.study,
            report.complete,
            report.failed,
            report.refused,
            report.retried,
            report.elapsed_s,
            report.stop.describe()
        );
    }
    Ok(if report.stop == WorkerStop::Interrupted { 130 } else { 0 })
}
