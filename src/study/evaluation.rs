//! One evaluation path for every face (`knobs run`, `knobs worker`,
//! `knobs evaluate`, the library): evaluations run on a pool of threads,
//! a transient error is retried with backoff, a panicking evaluator fails
//! its trial instead of the process, and every result is judged into a
//! [`Judged`] trial outcome by the study's objectives.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::eval::{EvalContext, EvalError, Evaluator, Measurement};
use crate::objective::Objectives;
use crate::space::{Config, Space};
use crate::trial::TrialState;

/// How many times a transient evaluation error is retried.
const TRANSIENT_RETRIES: u32 = 2;

/// What one evaluation means for its trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// `Complete` when the objectives can score the metrics, `Failed` otherwise.
    pub state: TrialState,
    /// What the evaluator measured (empty when it failed).
    pub metrics: BTreeMap<String, f64>,
    /// Seconds the evaluation took, when it produced a measurement.
    pub elapsed_s: Option<f64>,
    /// The score's gradient in unit-cube coordinates, when the score is one
    /// metric whose derivatives the evaluator gave.
    pub gradient: Option<Vec<f64>>,
    /// The reason of a fatal evaluator error: the study should stop.
    pub fatal: Option<String>,
}

impl Judged {
    /// Judge an evaluation of the point `x` of `space`.
    pub fn new(
        objectives: &Objectives,
        space: &Space,
        x: &[f64],
        result: std::result::Result<Measurement, EvalError>,
    ) -> Judged {
        match result {
            Ok(m) => {
                let state = match objectives.score(&m.metrics) {
                    Ok(_) => TrialState::Complete,
                    Err(reason) => TrialState::Failed { reason },
                };
                let gradient = score_gradient(objectives, space, x, &m);
                Judged { state, metrics: m.metrics, elapsed_s: Some(m.elapsed.as_secs_f64()), gradient, fatal: None }
            }
            Err(EvalError::Fatal(reason)) => Judged {
                state: TrialState::Failed { reason: reason.clone() },
                metrics: BTreeMap::new(),
                elapsed_s: None,
                gradient: None,
                fatal: Some(reason),
            },
            Err(other) => Judged {
                state: TrialState::Failed { reason: other.to_string() },
                metrics: BTreeMap::new(),
                elapsed_s: None,
                gradient: None,
                fatal: None,
            },
        }
    }

    /// Whether the trial failed.
    pub fn failed(&self) -> bool {
        matches!(self.state, TrialState::Failed { .. })
    }
}

/// The score's gradient in unit-cube coordinates at `x`, when the score is
/// one metric (times a factor) whose derivatives the evaluator gave.
fn score_gradient(objectives: &Objectives, space: &Space, x: &[f64], m: &Measurement) -> Option<Vec<f64>> {
    let (metric, factor) = objectives.linear_score()?;
    let g = space.unit_gradient(x, m.gradients.get(metric)?)?;
    Some(g.into_iter().map(|v| v * factor).collect())
}

/// An evaluator with the threads it runs on.
pub struct Evaluations {
    pool: rayon::ThreadPool,
    evaluator: Arc<dyn Evaluator>,
    study: String,
    base_dir: PathBuf,
}

impl Evaluations {
    /// `parallelism` evaluation threads for the evaluator of `study`, whose
    /// relative paths resolve against `base_dir`.
    pub fn new(evaluator: Arc<dyn Evaluator>, parallelism: usize, study: &str, base_dir: PathBuf) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(parallelism.max(1))
            .thread_name(|i| format!("knobs-eval-{i}"))
            .build()
            .map_err(|e| Error::Config(format!("cannot start {parallelism} evaluation threads: {e}")))?;
        Ok(Evaluations { pool, evaluator, study: study.to_string(), base_dir })
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Arc<dyn Evaluator> {
        &self.evaluator
    }

    fn context(&self, trial: u64) -> EvalContext {
        EvalContext { study: self.study.clone(), trial, base_dir: self.base_dir.clone() }
    }

    /// Evaluate trials on the pool; each result arrives on the returned
    /// channel, with its trial number, as soon as it finishes.
    pub fn start(
        &self,
        trials: Vec<(u64, Config)>,
    ) -> mpsc::Receiver<(u64, std::result::Result<Measurement, EvalError>)> {
        let (tx, rx) = mpsc::channel();
        for (number, config) in trials {
            let tx = tx.clone();
            let evaluator = self.evaluator.clone();
            let ctx = self.context(number);
            self.pool.spawn(move || {
                let _ = tx.send((number, evaluate(&*evaluator, &config, &ctx)));
            });
        }
        rx
    }

    /// Evaluate one configuration on the calling thread.
    pub fn evaluate(&self, trial: u64, config: &Config) -> std::result::Result<Measurement, EvalError> {
        evaluate(&*self.evaluator, config, &self.context(trial))
    }
}

/// Run one evaluation: a panic becomes an invalid result, a transient error
/// is retried (twice, with backoff).
pub fn evaluate(
    evaluator: &dyn Evaluator,
    config: &Config,
    ctx: &EvalContext,
) -> std::result::Result<Measurement, EvalError> {
    let mut attempt = 0;
    loop {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluator.evaluate(config, ctx)))
            .unwrap_or_else(|_| Err(EvalError::Invalid("the evaluator panicked".into())));
        match r {
            Err(EvalError::Transient(m)) if attempt < TRANSIENT_RETRIES => {
                attempt += 1;
                tracing::warn!(trial = ctx.trial, attempt, "transient evaluation error, retrying: {m}");
                std::thread::sleep(Duration::from_millis(200 * 2u64.pow(attempt)));
            }
            other => return other,
        }
    }
}
