//! Evaluators: the only part of knobs that touches the workload.
//!
//! An evaluator turns a configuration into metrics. It never sees the
//! optimizer. Built-ins: test functions ([`functions`]), external
//! programs ([`command`]) and workload models fed by telemetry
//! ([`workload`]: `pool`, `cache`, `gc`, `service`).

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::space::Config;

#[cfg_attr(not(feature = "forecast"), allow(dead_code))] // only the workload variants use all of it
mod buffer;
pub mod command;
pub mod functions;
mod spec;
#[cfg(feature = "forecast")]
pub mod workload;

pub use command::{CommandEvaluator, CommandSpec};
pub use functions::{FunctionEvaluator, FunctionSpec};
pub use spec::{EvaluatorSpec, ExternalSpec};

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Metric name → value.
    pub metrics: BTreeMap<String, f64>,
    /// Derivatives the evaluator could give: metric → (parameter → d metric
    /// / d parameter, in the parameter's own units). Empty when it gives none;
    /// the study passes them to the optimizer when the score is one metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gradients: BTreeMap<String, BTreeMap<String, f64>>,
    /// Wall-clock time the evaluation took.
    pub elapsed: Duration,
}

impl Measurement {
    /// Metrics without gradients.
    pub fn new(metrics: BTreeMap<String, f64>, elapsed: Duration) -> Self {
        Measurement { metrics, gradients: BTreeMap::new(), elapsed }
    }
}

/// Why an evaluation did not produce a measurement.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum EvalError {
    /// Worth retrying (e.g. a resource was busy).
    #[error("transient: {0}")]
    Transient(String),
    /// This configuration failed (crash, timeout, garbage output, NaN): the
    /// trial fails, the study goes on.
    #[error("{0}")]
    Invalid(String),
    /// The evaluator cannot work at all (e.g. the program does not exist):
    /// the study stops.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// What the study tells the evaluator about the trial it evaluates.
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// The study's name.
    pub study: String,
    /// The trial's number within the study.
    pub trial: u64,
    /// Directory relative paths in the evaluator spec are resolved against
    /// (the directory of the spec file).
    pub base_dir: PathBuf,
}

/// Turns a configuration into metrics: what a study calls for every trial.
/// Evaluators are shared between threads (trials run in parallel) and never
/// see the optimizer.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::time::Instant;
///
/// use knobs::eval::{EvalContext, EvalError, Evaluator, Measurement};
/// use knobs::space::{Config, Value};
///
/// /// Latency falls as the pool grows.
/// struct Pool;
///
/// impl Evaluator for Pool {
///     fn evaluate(&self, config: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> {
///         let start = Instant::now();
///         let size = match config.get("pool_size") {
///             Some(Value::Int(n)) if *n > 0 => *n as f64,
///             other => return Err(EvalError::Invalid(format!("pool_size is {other:?}"))),
///         };
///         let metrics = BTreeMap::from([("latency_ms".to_string(), 10.0 + 100.0 / size)]);
///         Ok(Measurement::new(metrics, start.elapsed()))
///     }
///
///     fn metrics(&self) -> Vec<String> {
///         vec!["latency_ms".to_string()]
///     }
/// }
///
/// let ctx = EvalContext { study: "demo".into(), trial: 0, base_dir: ".".into() };
/// let config = Config::from([("pool_size".to_string(), Value::Int(20))]);
/// assert_eq!(Pool.evaluate(&config, &ctx).unwrap().metrics["latency_ms"], 15.0);
/// // A configuration the evaluator cannot measure fails that trial only.
/// assert!(matches!(Pool.evaluate(&Config::new(), &ctx), Err(EvalError::Invalid(_))));
/// ```
pub trait Evaluator: Send + Sync {
    /// Measure one configuration.
    fn evaluate(&self, config: &Config, ctx: &EvalContext) -> Result<Measurement, EvalError>;
    /// Metrics this evaluator is known to report (empty if unknown up front).
    fn metrics(&self) -> Vec<String> {
        Vec::new()
    }
    /// True when measuring a configuration again gives the same metrics (a model, a test
    /// function). A study's confirmation phase (`confirm: {when: auto}`) re-measures the best
    /// candidates only when this is false, as it is for real systems.
    fn deterministic(&self) -> bool {
        false
    }
}
