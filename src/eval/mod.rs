//! Evaluators: the only part of knobs that touches the workload.
//!
//! An evaluator turns a configuration into metrics. It never sees the
//! optimizer. Built-ins: test functions ([`functions`]), external
//! programs ([`command`]) and workload models fed by telemetry
//! ([`workload`]: `pool`, `cache`, `gc`, `service`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::space::Config;

mod buffer;
pub mod command;
pub mod functions;
mod spec;
pub mod workload;

pub use command::{CommandEvaluator, CommandSpec};
pub use functions::{FunctionEvaluator, FunctionSpec};
pub use spec::{EvaluatorSpec, ExternalSpec};

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub metrics: BTreeMap<String, f64>,
    /// Derivatives the evaluator could give: metric → (parameter → d metric
    /// / d parameter, in the parameter's own units). Empty when it gives none;
    /// the study passes them to the optimizer when the score is one metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gradients: BTreeMap<String, BTreeMap<String, f64>>,
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
    pub study: String,
    pub trial: u64,
    /// Directory relative paths in the evaluator spec are resolved against
    /// (the directory of the spec file).
    pub base_dir: PathBuf,
}

pub trait Evaluator: Send + Sync {
    fn evaluate(&self, config: &Config, ctx: &EvalContext) -> Result<Measurement, EvalError>;
    /// Metrics this evaluator is known to report (empty if unknown up front).
    fn metrics(&self) -> Vec<String> {
        Vec::new()
    }
}
